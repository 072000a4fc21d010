"""The trainer: resume equivalence, atomic checkpoints, divergence, and bad input."""

import json

import numpy as np
import pytest

from lstmkit import io
from lstmkit.tasks import get_task
from lstmkit.train import BEST, CHECKPOINT, METRICS, Trainer, TrainingDiverged

SMALL = dict(hidden_size=16, epochs=3, batch_size=64)


def digits_trainer(out, **overrides):
    task_class = get_task("digits")
    return Trainer(
        task_class(task_class.make_config(**{**SMALL, **overrides})), out, progress=False, log=lambda _: None
    )


def weights(path):
    arrays, meta = io.load_checkpoint(path)
    return arrays, meta


def test_resume_ends_with_the_weights_of_an_uninterrupted_run(tmp_path):
    straight = digits_trainer(tmp_path / "straight", dropout=0.3, num_layers=2)
    straight.fit()
    interrupted = digits_trainer(tmp_path / "resumed", dropout=0.3, num_layers=2)
    assert interrupted.fit(stop_after=2) == {"stopped_after_epoch": 2}
    resumed = digits_trainer(tmp_path / "resumed", dropout=0.3, num_layers=2)  # a new process, in effect
    resumed.fit(resume=True)
    expected, expected_meta = weights(tmp_path / "straight" / CHECKPOINT)
    actual, actual_meta = weights(tmp_path / "resumed" / CHECKPOINT)
    assert sorted(expected) == sorted(actual) and any(name.startswith("optimizer/") for name in actual)
    for name in expected:
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)
    assert actual_meta["epoch"] == 3
    strip = lambda history: [{k: v for k, v in r.items() if k != "train_seconds"} for r in history]  # noqa: E731
    assert strip(actual_meta["history"]) == strip(expected_meta["history"])
    lines = (tmp_path / "resumed" / METRICS).read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]


def test_resume_refuses_other_options(tmp_path):
    digits_trainer(tmp_path, epochs=1).fit()
    with pytest.raises(io.CheckpointError, match="hidden_size: checkpoint 16, now 32"):
        digits_trainer(tmp_path, epochs=1, hidden_size=32).fit(resume=True)


def test_killed_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    trainer = digits_trainer(tmp_path)
    trainer.fit(stop_after=1)
    before, _ = weights(tmp_path / CHECKPOINT)

    def dying_savez(handle, **entries):
        handle.write(b"PK\x03\x04 half a zip file")
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(io.np, "savez", dying_savez)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(stop_after=1)
    after, meta = weights(tmp_path / CHECKPOINT)
    assert meta["epoch"] == 1
    for name in before:
        np.testing.assert_array_equal(after[name], before[name])
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_non_finite_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    trainer = digits_trainer(tmp_path)
    trainer.fit(stop_after=1)
    original = trainer.task.train_step
    calls = []

    def poisoned(model, batch):
        calls.append(1)
        loss, count = original(model, batch)
        return (float("nan") if len(calls) == 3 else loss), count

    monkeypatch.setattr(trainer.task, "train_step", poisoned)
    with pytest.raises(
        TrainingDiverged,
        match=r"epoch 2, batch 3: the loss is nan; training stopped. The last good checkpoint \(epoch 1\)",
    ):
        trainer.fit()
    _, meta = weights(tmp_path / CHECKPOINT)
    assert meta["epoch"] == 1
    assert (tmp_path / BEST).exists()


def test_checkpoints_never_unpickle_and_corrupt_files_are_refused(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(io.CheckpointError, match="is not an lstmkit checkpoint: expected an .npz file"):
        io.load_checkpoint(bad)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, __meta__=np.array([{"format": "lstmkit-checkpoint"}], dtype=object))
    with pytest.raises(io.CheckpointError, match="not a readable lstmkit checkpoint") as refused:
        io.load_checkpoint(pickled)
    assert "holds pickled objects, which lstmkit never loads" in str(refused.value)
    assert "allow_pickle" not in str(refused.value)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.zeros(3))
    with pytest.raises(io.CheckpointError, match="not an lstmkit checkpoint"):
        io.load_checkpoint(foreign)
    with pytest.raises(io.CheckpointError, match="no checkpoint at"):
        io.load_checkpoint(tmp_path / "missing.npz")


def test_reports_are_written(tmp_path):
    summary = digits_trainer(tmp_path, epochs=2).fit()
    assert (tmp_path / "training_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "summary.json").read_text())["test"] == summary["test"]
    assert summary["best_epoch"] in (1, 2)
