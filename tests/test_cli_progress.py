"""The training progress bar: a total, a percentage, an ETA and labelled throughput, and a counter that moves."""

import math
import re

from lstmkit.data.text import lm_batches
from lstmkit.tasks import get_task
from lstmkit.train import Trainer


def trainer_for(task_name: str, tmp_path, **options) -> Trainer:
    task_class = get_task(task_name)
    return Trainer(task_class(task_class.make_config(**options)), tmp_path, progress=True, log=lambda line: None)


def test_the_bar_shows_percentage_count_of_total_eta_and_samples_per_second(tmp_path):
    trainer = trainer_for("digits", tmp_path, hidden_size=8, epochs=3)
    with trainer.progress_bar(2) as bar:
        assert bar.total == 1297  # digits' training images
        bar.update(100)
        shown = str(bar)
    pattern = r"epoch 2/3:\s+8%\|.*\| 100/1297 samples \[\d\d:\d\d elapsed, ETA \d\d:\d\d, [\d.]+ samples/s\]"
    assert re.fullmatch(pattern, shown), shown


def test_a_real_epoch_counts_every_sample_and_ends_at_100_percent(tmp_path, capsys):
    trainer = trainer_for("digits", tmp_path, hidden_size=8, epochs=1, max_batches=5)
    assert trainer.progress_bar(1).total == 5 * 32
    trainer.train_epoch(1)
    shown = capsys.readouterr().err.replace("\r", "\n")
    assert re.search(r"epoch 1/1: 100%\|.*\| 160/160 samples \[.*ETA 00:00, [\d.]+ samples/s, loss=[\d.]+\]", shown), (
        shown
    )


def test_language_models_count_characters_with_and_without_max_batches(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 40, encoding="utf-8")
    trainer = trainer_for("text", tmp_path, file=str(text), hidden_size=8, batch_size=4, bptt=16)
    task = trainer.task
    assert task.progress_unit == "chars" and get_task("ptb").progress_unit == "words"
    batches = list(lm_batches(task.corpus.parts["train"], 4, 16))
    assert task.epoch_size() == sum(targets.size for _, targets in batches)
    capped = trainer_for("text", tmp_path, file=str(text), hidden_size=8, batch_size=4, bptt=16, max_batches=3)
    assert capped.task.epoch_size() == 3 * 16 * 4
    assert math.ceil(capped.task.epoch_size() / (16 * 4)) < len(batches)
