"""Data-parallel training over MPI (``mpiexec -n K``): the same weights as one process, rank 0's files,
evaluation split across ranks, and a killed rank that ends the job instead of hanging it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lstmkit import distributed, io

SCRIPTS = Path(__file__).parent / "scripts"
MPIEXEC = Path(sys.executable).parent / "mpiexec"
needs_mpi = pytest.mark.skipif(
    not MPIEXEC.exists() or subprocess.run([sys.executable, "-c", "import mpi4py"]).returncode != 0,
    reason="the mpi extra (mpi4py, mpich) is not installed: pip install 'lstmkit[mpi]'",
)
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "LSTMKIT_HELPER_THREAD": "0"}


def mpiexec(ranks: int, *command, timeout=240, **options):
    return subprocess.run(
        [str(MPIEXEC), "-n", str(ranks), *command], capture_output=True, text=True, timeout=timeout, env=ONE_THREAD,
        **options,
    )  # fmt: skip


def test_one_process_without_mpiexec_imports_no_mpi():
    code = "import sys, lstmkit; c = lstmkit.distributed.init(); print(c.rank, c.size, 'mpi4py' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ONE_THREAD, check=True)
    assert result.stdout.split() == ["0", "1", "False"]


def test_shards_are_contiguous_and_cover_the_batch():
    class Rank(distributed.Communicator):
        def __init__(self, rank, size):
            self.rank, self.size = rank, size

    for count in (1, 7, 30):
        for size in (1, 2, 4):
            rows = [distributed.shard(count, Rank(rank, size)) for rank in range(size)]
            assert [r.start for r in rows] == [0] + [r.stop for r in rows[:-1]] and rows[-1].stop == count
            assert max(r.stop - r.start for r in rows) - min(r.stop - r.start for r in rows) <= 1


@needs_mpi
def test_the_api_gives_one_process_weights_with_2_and_4_ranks(tmp_path):
    """float64: K = 1, 2, 4 ranks end with the weights of one process to 1e-10 (only the sums' order differs)."""
    script = str(SCRIPTS / "data_parallel_loop.py")
    alone = tmp_path / "alone.npz"
    subprocess.run([sys.executable, script, str(alone)], check=True, env=ONE_THREAD, timeout=240)
    expected = np.load(alone)
    for ranks in (1, 2, 4):
        out = tmp_path / f"ranks{ranks}.npz"
        result = mpiexec(ranks, sys.executable, script, str(out))
        assert result.returncode == 0, result.stderr
        actual = np.load(out)
        for name in expected.files:
            np.testing.assert_allclose(actual[name], expected[name], rtol=0, atol=1e-10, err_msg=f"{ranks} {name}")


def train_digits(out, ranks=None, *more, timeout=240):
    command = [sys.executable, "-m", "lstmkit", "train", "digits", "--hidden-size", "16", "--epochs", "2"]
    command += ["--no-progress", "--out", str(out), *more]
    if ranks is None:
        return subprocess.run(command, capture_output=True, text=True, env=ONE_THREAD, timeout=timeout)
    return mpiexec(ranks, *command, timeout=timeout)


def history(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@needs_mpi
def test_the_cli_with_2_ranks_follows_one_process(tmp_path):
    """float32: the loss curve and the validation metric of 2 ranks agree with one process to 1e-5 relative;
    rank 0 alone writes the run's files and prints."""
    assert train_digits(tmp_path / "one").returncode == 0
    two = train_digits(tmp_path / "two", 2)
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("digits seed 0: test") == 1  # printed once, by rank 0
    for single, parallel in zip(history(tmp_path / "one"), history(tmp_path / "two"), strict=True):
        assert parallel["ranks"] == 2 and parallel["allreduce_seconds"] >= 0
        assert parallel["train_loss"] == pytest.approx(single["train_loss"], rel=1e-5)
        assert parallel["valid_accuracy"] == pytest.approx(single["valid_accuracy"], abs=1e-12)
    test_one = json.loads((tmp_path / "one" / "summary.json").read_text())["test"]
    test_two = json.loads((tmp_path / "two" / "summary.json").read_text())["test"]
    assert test_two["loss"] == pytest.approx(test_one["loss"], rel=1e-5)


@needs_mpi
def test_a_killed_rank_ends_the_job_and_the_run_resumes(tmp_path):
    """SIGKILL to one rank mid-run: the job exits non-zero within 60 s naming the rank's pid; --resume with
    the same number of ranks then ends with the weights of an uninterrupted run, and with one process
    with them up to the order of the sums."""
    epochs = "20"  # long enough to be killed mid-run
    assert train_digits(tmp_path / "straight", 2, "--epochs", epochs).returncode == 0
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "lstmkit", "train", "digits", "--hidden-size", "16", "--epochs", epochs]
    job = subprocess.Popen(
        [str(MPIEXEC), "-n", "2", *command, "--no-progress", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ONE_THREAD,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.npz").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    ranks = subprocess.run(["pgrep", "-f", "--", f"--out {out}"], capture_output=True, text=True).stdout.split()
    workers = [int(pid) for pid in ranks if int(pid) != job.pid]
    os.kill(max(workers), signal.SIGKILL)  # the rank started last
    killed_at = time.monotonic()
    stdout, _ = job.communicate(timeout=60)
    assert time.monotonic() - killed_at < 60 and job.returncode != 0
    killed = max(workers)
    assert f"rank 1 pid {killed}" in stdout or f"rank 0 pid {killed}" in stdout  # which rank the pid was
    assert "BAD TERMINATION" in stdout and f"PID {killed}" in stdout, stdout  # MPICH's launcher names it
    io.load_checkpoint(out / "checkpoint.npz")  # intact
    shutil.copytree(out, tmp_path / "alone")  # the same checkpoint, to resume with one process
    resumed = mpiexec(2, *command, "--no-progress", "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    expected, _ = io.load_checkpoint(tmp_path / "straight" / "checkpoint.npz")
    actual, meta = io.load_checkpoint(out / "checkpoint.npz")
    assert meta["epoch"] == int(epochs)
    for name in expected:
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)
    # --resume with another number of ranks: the same run, up to the order of the sums (float32)
    alone = subprocess.run(
        [*command, "--no-progress", "--out", str(tmp_path / "alone"), "--resume"], env=ONE_THREAD, capture_output=True
    )
    assert alone.returncode == 0, alone.stderr
    actual, meta = io.load_checkpoint(tmp_path / "alone" / "checkpoint.npz")
    assert meta["epoch"] == int(epochs)
    for name in expected:
        if name.startswith("model/"):
            np.testing.assert_allclose(actual[name], expected[name], rtol=1e-3, atol=1e-4, err_msg=name)


@needs_mpi
def test_seeds_spread_over_rank_groups(tmp_path):
    """--repeats 2 under mpiexec -n 2: one rank a seed, the results gathered in rank 0's result.json,
    each seed's run equal to the same seed trained alone."""
    command = ["--repeats", "2", "--epochs", "1"]
    spread = train_digits(tmp_path / "spread", 2, *command)
    assert spread.returncode == 0, spread.stderr
    assert train_digits(tmp_path / "alone", None, *command).returncode == 0
    ours, alone = (json.loads((tmp_path / name / "result.json").read_text()) for name in ("spread", "alone"))
    assert [r["config"]["seed"] for r in ours["runs"]] == [0, 1]
    for mine, single in zip(ours["runs"], alone["runs"], strict=True):
        assert mine["test"]["loss"] == pytest.approx(single["test"]["loss"], rel=1e-6)
    assert ours["median_test"]["accuracy"] == pytest.approx(alone["median_test"]["accuracy"])


@needs_mpi
def test_a_sweep_spreads_its_configurations_over_rank_groups(tmp_path):
    """--sweep lr=...,... --sweep hidden-size=... under mpiexec -n 2: every configuration once, in its own
    folder, each equal to the same configuration trained alone; the best chosen by validation."""
    command = ["--epochs", "1", "--sweep", "lr=1e-3,3e-3", "--sweep", "num-layers=1,2"]
    assert train_digits(tmp_path / "alone", None, *command).returncode == 0
    spread = train_digits(tmp_path / "spread", 2, *command)
    assert spread.returncode == 0, spread.stderr
    ours, alone = (json.loads((tmp_path / name / "result.json").read_text()) for name in ("spread", "alone"))
    assert [row["settings"] for row in ours["sweep"]] == [
        {"lr": 0.001, "num_layers": 1}, {"lr": 0.001, "num_layers": 2},
        {"lr": 0.003, "num_layers": 1}, {"lr": 0.003, "num_layers": 2},
    ]  # fmt: skip
    for mine, single in zip(ours["sweep"], alone["sweep"], strict=True):
        assert mine["median_test"] == pytest.approx(single["median_test"])
    best = [row for row in ours["sweep"] if row["best"]]
    assert len(best) == 1 and best[0]["median_valid"] == max(row["median_valid"] for row in ours["sweep"])
    assert (tmp_path / "spread" / "lr=0.003,num_layers=2" / "best.npz").exists()


def test_a_sweep_of_an_unknown_option_is_refused(capsys):
    from lstmkit.cli import main

    with pytest.raises(SystemExit):
        main(["train", "digits", "--sweep", "learning=1"])
    assert "expected NAME=V1,V2 with NAME one of" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "digits", "--sweep", "lr=1e-3,abc"])
    assert "--sweep" in capsys.readouterr().err
