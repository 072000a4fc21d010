"""``lstmkit export``: trained mnist and ptb checkpoints as ONNX graphs that give, in onnxruntime,
the predictions and the metrics of ``lstmkit evaluate``; and the command protects existing files."""

from __future__ import annotations

import json
import math

import numpy as np
import onnxruntime
import pytest

from lstmkit.cli import main
from lstmkit.cli_train import trained_model
from lstmkit.data.text import lm_batches


def train(tmp_path, task: str, *options: str):
    out = tmp_path / task
    command = ["train", task, "--epochs", "1", "--max-batches", "3", "--no-progress", "--out", str(out), *options]
    assert main(command) == 0
    return out / "best.npz"


def export(capsys, checkpoint, path, *more: str) -> dict:
    assert main(["export", str(checkpoint), "--onnx", str(path), *more]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def evaluated(capsys, checkpoint) -> dict:
    assert main(["evaluate", str(checkpoint)]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_exported_mnist_model_predicts_what_evaluate_measures(tmp_path, capsys):
    checkpoint = train(tmp_path, "mnist", "--hidden-size", "16", "--num-layers", "2", "--bidirectional")
    written = export(capsys, checkpoint, tmp_path / "mnist.onnx")
    assert (written["inputs"], written["outputs"]) == (["input"], ["output"])
    model, task, _ = trained_model(checkpoint)
    runner = onnxruntime.InferenceSession(str(tmp_path / "mnist.onnx"), providers=["CPUExecutionProvider"])
    test = task.parts["test"]
    logits = np.concatenate([runner.run(None, {"input": test.x[i : i + 1000]})[0] for i in range(0, len(test.y), 1000)])
    np.testing.assert_allclose(logits, model(test.x), rtol=0, atol=1e-4)
    assert np.array_equal(logits.argmax(axis=1), model(test.x).argmax(axis=1))
    accuracy = float(np.mean(logits.argmax(axis=1) == test.y))
    assert accuracy == evaluated(capsys, checkpoint)["test"]["accuracy"]


def test_exported_ptb_model_gives_evaluates_perplexity(tmp_path, capsys):
    checkpoint = train(tmp_path, "ptb", "--hidden-size", "16", "--num-layers", "2")
    export(capsys, checkpoint, tmp_path / "ptb.onnx")
    _, task, _ = trained_model(checkpoint)
    runner = onnxruntime.InferenceSession(str(tmp_path / "ptb.onnx"), providers=["CPUExecutionProvider"])
    total, count, feeds = 0.0, 0, {}
    for inputs, targets in lm_batches(task.corpus.parts["test"], task.config["eval_batch_size"], 200):
        logits, h_n, c_n = runner.run(None, {"tokens": inputs.astype(np.int64), **feeds})
        feeds = {"h0": h_n, "c0": c_n}  # the state carries over between batches, as evaluate's does
        shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
        log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        total -= float(np.take_along_axis(log_probabilities, targets[..., None], axis=-1).sum())
        count += targets.size
    expected = evaluated(capsys, checkpoint)["test"]["perplexity"]
    assert math.exp(total / count) == pytest.approx(expected, rel=1e-5)


def test_export_protects_files_and_says_what_it_needs(tmp_path, capsys):
    checkpoint = train(tmp_path, "sunspots", "--hidden-size", "4", "--repeats", "1")
    target = tmp_path / "model.onnx"
    target.write_text("keep me")
    assert main(["export", str(checkpoint), "--onnx", str(target)]) == 2
    assert "exists; give --force" in capsys.readouterr().err
    assert target.read_text() == "keep me"
    assert main(["export", str(checkpoint), "--onnx", str(checkpoint), "--force"]) == 2
    assert "is the checkpoint itself" in capsys.readouterr().err
    assert main(["export", str(checkpoint)]) == 2
    assert "nothing to write" in capsys.readouterr().err
    same = str(tmp_path / "both")
    assert main(["export", str(checkpoint), "--onnx", same, "--safetensors", same]) == 2
    assert "name the same file" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing.npz"), "--onnx", str(tmp_path / "x.onnx")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    export(capsys, checkpoint, target, "--force")
    assert target.read_bytes()[:2] != b"ke"
