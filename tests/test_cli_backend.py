"""``lstmkit train --backend``: the reference equations and the fast paths train the same run."""

import json

import pytest

from lstmkit.cli import main
from lstmkit.nn.rnn_base import RNNBase
from lstmkit.tasks import get_task
from lstmkit.train import Trainer


def test_reference_and_fast_backends_train_the_same_run(tmp_path, capsys):
    runs = {}
    for backend in ("reference", "fast"):
        out = tmp_path / backend
        command = ["train", "digits", "--hidden-size", "8", "--epochs", "2", "--max-batches", "6", "--no-progress"]
        assert main([*command, "--backend", backend, "--out", str(out)]) == 0
        metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        runs[backend] = (metrics, json.loads((out / "summary.json").read_text()))
    (reference_metrics, reference), (fast_metrics, fast) = runs["reference"], runs["fast"]
    for ours, theirs in zip(reference_metrics, fast_metrics):
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-5)
        assert ours["valid_loss"] == pytest.approx(theirs["valid_loss"], rel=1e-5)
    assert reference["test"]["loss"] == pytest.approx(fast["test"]["loss"], rel=1e-5)
    assert reference["config"] == fast["config"]  # the backend is no part of the run's options


@pytest.mark.parametrize("backend", ["reference", "fast", "auto"])
def test_the_trainer_sets_the_backend_on_the_lstm(tmp_path, backend):
    task_class = get_task("digits")
    trainer = Trainer(task_class(task_class.make_config(hidden_size=4)), tmp_path, progress=False, backend=backend)
    assert [module.backend for module in trainer.model.modules() if isinstance(module, RNNBase)] == [backend]


def test_an_unknown_backend_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        main(["train", "digits", "--backend", "gpu"])
    assert "argument --backend: invalid choice: 'gpu'" in capsys.readouterr().err
