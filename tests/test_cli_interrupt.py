"""Ctrl-C (SIGINT) and SIGTERM stop ``lstmkit train`` with one line: the kept checkpoint and the resume command.

Real signals to a real training process; the printed command is then run and resumes the run.
"""

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from lstmkit import io
from lstmkit.cli_guard import resume_command

ENVIRONMENT = {**os.environ, "PYTHONUNBUFFERED": "1"}  # each epoch's line arrives as it is printed


def _default_ctrl_c() -> None:
    """A shell starts background jobs with Ctrl-C ignored, and children inherit that: give it back."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENVIRONMENT,
        preexec_fn=_default_ctrl_c,  # runs in the child between fork and exec
    )


def signal_after(process: subprocess.Popen, prefix: str, signum: int) -> tuple[list[str], str]:
    """Send ``signum`` once a stdout line starts with ``prefix``; the lines read so far and stderr."""
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith(prefix):
            process.send_signal(signum)
            break
    lines += process.stdout.readlines()
    return lines, process.stderr.read()


def test_ctrl_c_then_sigterm_each_end_with_one_line_that_resumes(tmp_path):
    out = tmp_path / "digits"
    options = ["train", "digits", "--hidden-size", "16", "--epochs", "1000", "--no-progress", "--out", str(out)]
    first = start([sys.executable, "-m", "lstmkit", *options])
    _, stderr = signal_after(first, "epoch 2:", signal.SIGINT)
    assert first.wait(timeout=60) == 130
    _, meta = io.load_checkpoint(out / "checkpoint.npz")
    resume = shlex.join(["lstmkit", *options, "--resume"])
    assert stderr == (
        f"lstmkit train: interrupted (Ctrl-C); the checkpoint of epoch {meta['epoch']} is kept in "
        f"{out / 'checkpoint.npz'}; resume with: {resume}\n"
    )
    assert meta["epoch"] >= 2

    printed_command = shlex.split(stderr.split("resume with: ")[1])
    assert printed_command[0] == "lstmkit"
    second = start([sys.executable, "-m", "lstmkit", *printed_command[1:]])
    lines, stderr = signal_after(second, f"epoch {meta['epoch'] + 1}:", signal.SIGTERM)
    assert second.wait(timeout=60) == 143
    assert f"resumed from {out / 'checkpoint.npz'} after epoch {meta['epoch']}\n" in lines
    _, resumed = io.load_checkpoint(out / "checkpoint.npz")
    assert resumed["epoch"] > meta["epoch"]
    assert stderr == (
        f"lstmkit train: stopped by SIGTERM; the checkpoint of epoch {resumed['epoch']} is kept in "
        f"{out / 'checkpoint.npz'}; resume with: {resume}\n"
    )


def test_ctrl_c_before_the_first_checkpoint_says_nothing_was_kept(tmp_path):
    out = tmp_path / "mnist"  # an mnist epoch of a 256-unit LSTM takes seconds: the signal lands inside it
    command = [
        sys.executable,
        "-m",
        "lstmkit",
        "train",
        "mnist",
        "--hidden-size",
        "256",
        "--epochs",
        "3",
        "--no-progress",
        "--out",
        str(out),
    ]
    process = start(command)
    _, stderr = signal_after(process, "model:", signal.SIGINT)  # the line printed just before epoch 1 starts
    assert process.wait(timeout=60) == 130
    assert not (out / "checkpoint.npz").exists()
    assert (
        stderr == f"lstmkit train: interrupted (Ctrl-C) before the first checkpoint in {out}: nothing to resume there\n"
    )


def test_the_resume_command_keeps_the_options_names_the_folder_and_drops_force():
    assert resume_command(["train", "digits", "--epochs", "3", "--force"], Path("runs/digits")) == (
        "lstmkit train digits --epochs 3 --out runs/digits --resume"
    )
    assert resume_command(["train", "text", "--file", "my notes.txt", "--out=x", "--resume"], Path("x")) == (
        "lstmkit train text --file 'my notes.txt' --out=x --resume"
    )
