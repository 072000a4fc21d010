"""One process with 2 threads against 2 MPI ranks with 1 thread each, on this machine.

    python benchmarks/bench_distributed.py [--json benchmarks/results-distributed.json]

Runs ``lstmkit train mnist --epochs 4`` (epochs 2-4 timed) and ``lstmkit train ptb --epochs 1`` twice each: alone
(OpenBLAS and lstmkit's helper thread on: 2 threads) and under ``mpiexec -n 2`` (one thread a rank),
and reports the training time per epoch and the share of it spent in the Allreduce (each run's
metrics.jsonl: ``train_seconds``, ``allreduce_seconds``), plus the compute time per training item.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

RUNS = {"mnist": ["--epochs", "4"], "ptb": ["--epochs", "1"]}  # mnist's first epoch (compilation) is left out


def train(task: str, options: list[str], ranks: int, folder: Path) -> dict:
    out = folder / f"{task}-{ranks}"
    command = [sys.executable, "-m", "lstmkit", "train", task, *options, "--no-progress", "--out", str(out)]
    if ranks == 1:
        environment = {**os.environ, "OPENBLAS_NUM_THREADS": "2", "LSTMKIT_HELPER_THREAD": "1"}
    else:
        command = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(ranks), *command]
        environment = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "LSTMKIT_HELPER_THREAD": "0"}
    subprocess.run(command, check=True, env=environment, capture_output=True)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    records = records[1:] or records  # past the first epoch, whose calls compile the kernels
    seconds = sum(r["train_seconds"] for r in records) / len(records)
    reducing = sum(r.get("allreduce_seconds", 0.0) for r in records) / len(records)
    return {"ranks": ranks, "seconds_per_epoch": seconds, "allreduce_seconds_per_epoch": reducing}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for task, options in RUNS.items():
            results[task] = [train(task, options, ranks, Path(folder)) for ranks in (1, 2)]
    print("| task | processes | training time per epoch | of it in Allreduce | speed-up |")
    print("|---|---|---|---|---|")
    for task, (one, two) in results.items():
        for run in (one, two):
            share = run["allreduce_seconds_per_epoch"] / run["seconds_per_epoch"]
            label = "1 process, 2 threads" if run["ranks"] == 1 else "2 ranks, 1 thread each"
            speed = one["seconds_per_epoch"] / run["seconds_per_epoch"]
            print(f"| {task} | {label} | {run['seconds_per_epoch']:.1f} s | {share:.1%} | {speed:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
