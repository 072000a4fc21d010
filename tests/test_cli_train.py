"""``lstmkit train / evaluate / generate`` end to end, export to torch, and CLI errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from lstmkit import io
from lstmkit.cli import main
from lstmkit.nn.rnn_base import RNNBase

FAST = ["--hidden-size", "16", "--epochs", "2", "--no-progress"]


def test_train_then_evaluate_digits(tmp_path, capsys):
    out = tmp_path / "digits"
    assert main(["train", "digits", *FAST, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "digits seed 0: test" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert main(["evaluate", str(out / "best.npz")]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert evaluated["test"]["accuracy"] == pytest.approx(summary["test"]["accuracy"])


def test_trained_lstm_exports_to_torch(tmp_path):
    out = tmp_path / "mnist"
    assert (
        main(
            [
                "train",
                "mnist",
                "--hidden-size",
                "12",
                "--epochs",
                "1",
                "--max-batches",
                "5",
                "--no-progress",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    arrays, meta = io.load_checkpoint(out / "best.npz")
    from lstmkit.tasks import get_task

    task = get_task("mnist")(meta["config"])
    model = task.build_model()
    model.load_state_dict(io.prefixed(arrays, "model"))
    lstm = next(module for module in model.modules() if isinstance(module, RNNBase))
    reference = torch.nn.LSTM(28, 12, batch_first=True)
    reference.load_state_dict(io.torch_state_dict(lstm))
    images = task.parts["test"].x[:8]
    output, (h_n, c_n) = lstm(images)
    out_t, (h_t, c_t) = reference(torch.from_numpy(images))
    np.testing.assert_allclose(output, out_t.detach().numpy(), atol=2e-6)
    np.testing.assert_allclose(c_n, c_t.detach().numpy(), atol=2e-6)


def test_generate_from_a_text_model(tmp_path, capsys):
    text = tmp_path / "abc.txt"
    text.write_text("abcabcabd " * 40, encoding="utf-8")
    out = tmp_path / "lm"
    assert (
        main(
            [
                "train",
                "text",
                "--file",
                str(text),
                "--hidden-size",
                "16",
                "--epochs",
                "6",
                "--no-progress",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["generate", str(out / "best.npz"), "--prompt", "ab", "--length", "20", "--temperature", "0.5"]) == 0
    generated = capsys.readouterr().out.strip()
    assert generated.startswith("ab") and len(generated) == 22 and set(generated) <= set("abcd ")
    assert main(["generate", str(out / "best.npz"), "--prompt", "xyz"]) == 2
    assert "the prompt holds characters this model never saw: ['x', 'y', 'z']" in capsys.readouterr().err


def test_cli_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "imagenet"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'imagenet'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "digits", "--learning-rate", "3"])
    assert "unrecognized arguments: --learning-rate" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"\x00" * 100)
    assert main(["evaluate", str(corrupt)]) == 2
    assert "is not an lstmkit checkpoint: expected an .npz file" in capsys.readouterr().err
    assert main(["train", "text", "--no-progress", "--out", str(tmp_path / "t")]) == 2
    assert "give the file to learn with --file PATH" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "digits", "--optimizer", "rmsprop", "--no-progress", "--out", str(tmp_path / "d")])
    assert "argument --optimizer: invalid choice: 'rmsprop' (choose from" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_generate_refuses_a_classifier(tmp_path, capsys):
    out = tmp_path / "digits"
    assert main(["train", "digits", "--hidden-size", "8", "--epochs", "1", "--no-progress", "--out", str(out)]) == 0
    assert main(["generate", str(out / "best.npz")]) == 2
    assert "is a digits checkpoint; generate needs a language model" in capsys.readouterr().err


def test_resume_after_a_real_kill(tmp_path):
    """A training process killed with SIGKILL mid-run resumes from its last checkpoint."""
    out = tmp_path / "killed"
    command = [
        sys.executable,
        "-m",
        "lstmkit.cli",
        "train",
        "digits",
        "--hidden-size",
        "8",
        "--epochs",
        "40",
        "--no-progress",
        "--out",
        str(out),
    ]
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}  # each epoch's line arrives as it is printed
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment)
    for line in process.stdout:
        if line.startswith("epoch 3:"):
            process.kill()
            break
    process.wait()
    _, meta = io.load_checkpoint(out / "checkpoint.npz")
    assert 3 <= meta["epoch"] < 40
    finished = subprocess.run(command + ["--resume"], capture_output=True, text=True, check=True)
    assert f"resumed from {out / 'checkpoint.npz'} after epoch {meta['epoch']}" in finished.stdout
    _, final = io.load_checkpoint(out / "checkpoint.npz")
    assert final["epoch"] == 40
