"""Every dataset loads from its package, and a short training run clearly beats chance."""

import math

import numpy as np
import pytest

from lstmkit.data import MissingDatasetPackage, require
from lstmkit.data.images import load_digits, load_mnist
from lstmkit.data.sunspots import baselines, load_sunspots
from lstmkit.data.text import lm_batches, load_ptb, load_text_file
from lstmkit.tasks import get_task
from lstmkit.train import Trainer


def short_run(tmp_path, task_name, **overrides):
    task_class = get_task(task_name)
    trainer = Trainer(task_class(task_class.make_config(**overrides)), tmp_path, progress=False, log=lambda _: None)
    return trainer.fit()


def test_mnist_split_and_short_run(tmp_path):
    parts = load_mnist()
    assert {k: v.x.shape for k, v in parts.items()} == {
        "train": (3500, 28, 28),
        "valid": (500, 28, 28),
        "test": (1000, 28, 28),
    }
    assert parts["train"].x.min() >= 0.0 and parts["train"].x.max() <= 1.0
    again = load_mnist()
    np.testing.assert_array_equal(again["test"].y, parts["test"].y)  # the split is fixed
    summary = short_run(tmp_path, "mnist", hidden_size=32, epochs=4, lr=5e-3)
    assert summary["test"]["accuracy"] > 0.5, summary  # chance is 0.1


def test_digits_short_run(tmp_path):
    assert {k: len(v.y) for k, v in load_digits().items()} == {"train": 1297, "valid": 200, "test": 300}
    summary = short_run(tmp_path, "digits", hidden_size=32, epochs=4)
    assert summary["test"]["accuracy"] > 0.5, summary


def test_sunspots_windows_baselines_and_short_run(tmp_path):
    series = load_sunspots()
    assert series.years[0] == 1700 and series.years[-1] == 2008 and len(series.values) == 309
    numbers = baselines(series)
    assert 16 < numbers["arima_9_0_0_rmse"] < 18 and 30 < numbers["persistence_rmse"] < 31
    summary = short_run(tmp_path, "sunspots", epochs=15)
    predict_mean = float(np.std(series.values[-50:]))  # RMSE of always predicting the test mean
    assert summary["test"]["rmse"] < 0.8 * predict_mean, summary


def test_ptb_corpus_and_a_short_run_beats_uniform(tmp_path):
    corpus = load_ptb()
    assert len(corpus.vocabulary) == 10000 and "<eos>" in corpus.vocabulary and "<unk>" in corpus.vocabulary
    assert [len(corpus.parts[p]) for p in ("train", "valid", "test")] == [929589, 73760, 82430]
    task_class = get_task("ptb")
    task = task_class(task_class.make_config(hidden_size=32, embedding_size=32, max_batches=60, epochs=1))
    trainer = Trainer(task, tmp_path, progress=False, log=lambda _: None)
    record = trainer.train_epoch(1)
    assert record["train_loss"] < math.log(10000)
    valid = task.evaluate(trainer.model, "valid")
    assert valid["perplexity"] < 1500, valid  # uniform guessing: 10,000


def test_lm_batches_carry_each_column_on():
    ids = np.arange(101)
    batches = list(lm_batches(ids, batch_size=4, bptt=10))
    inputs = np.concatenate([x for x, _ in batches])
    targets = np.concatenate([y for _, y in batches])
    assert inputs.shape == (25, 4)
    np.testing.assert_array_equal(targets, inputs + 1)
    np.testing.assert_array_equal(inputs[:, 1], np.arange(25, 50))  # column 1 continues across batches


def test_text_file_short_run(tmp_path):
    path = tmp_path / "poem.txt"
    path.write_text("the quick brown fox jumps over the lazy dog. " * 60, encoding="utf-8")
    summary = short_run(
        tmp_path / "run",
        "text",
        file=str(path),
        hidden_size=32,
        embedding_size=16,
        epochs=15,
        bptt=32,
        batch_size=8,
        lr=1e-2,
    )
    vocabulary = len(set(path.read_text()))
    assert summary["test"]["perplexity"] < vocabulary / 3, summary


def test_text_file_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="must hold at least 200 characters to train on, got 0"):
        load_text_file(empty)
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("café ".encode("latin-1") * 100)
    with pytest.raises(ValueError, match="is not UTF-8 text"):
        load_text_file(latin)
    with pytest.raises(FileNotFoundError, match="no file at"):
        load_text_file(tmp_path / "missing.txt")


def test_missing_package_says_what_to_install():
    with pytest.raises(
        MissingDatasetPackage,
        match=r"comes from the package 'nopackage', which is not installed: run  pip install 'lstmkit\[data\]'",
    ):
        require("nopackage_that_does_not_exist", "nopackage", "imaginary")
