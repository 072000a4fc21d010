"""Predicted data-parallel scaling on a cluster, from what bench_distributed.py measured here.

    python benchmarks/scaling_model.py benchmarks/results-distributed.json

The model: a step's time with K ranks is its compute, split K ways, plus one ring Allreduce of
the gradients (lstmkit sends them in one buffer, float32 for a float32 model) and a fixed
per-step overhead (packing the buffer, waiting for the slowest rank):

    step(K) = c · tokens / K  +  overhead  +  2 (K - 1) / K · bytes / bandwidth  +  2 (K - 1) · latency

Fitted on this machine's 2-rank runs: ``c``, the compute time per token of one rank with one
thread, from PTB's time outside the Allreduce; the overhead and this machine's Allreduce
bandwidth from the Allreduce times of PTB (18.8 MB a step) and mnist (0.3 MB a step) together.
So the model reproduces those two runs by construction; it was not checked on a real cluster.
The large model's ``c`` is scaled by its work per token. Efficiency is step(1) / (K · step(K)).
A batch cannot be split into more shares than it has streams: the tables assume 64 streams
(PTB's recipe has 20, which stops at K = 20).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PTB_TRAIN_TOKENS = 929_589
PTB_STEPS = -(-PTB_TRAIN_TOKENS // (20 * 35))  # the recipe's batches of 20 streams x 35 steps
MNIST_STEPS, MNIST_PARAMETERS = -(-3_500 // 128), 82_186  # the mnist recipe's batches and model
BYTES = 4  # float32 gradients
VOCABULARY = 10_000
LATENCY = 5e-6  # seconds per message on a cluster network
STREAMS, BPTT = 64, 35
RANKS = (2, 4, 8, 16, 32, 64)
GIGABITS = (10, 25, 100)


def lstm_language_model(hidden: int, layers: int = 2) -> dict:
    """Parameters and multiply-adds per token of Zaremba et al.'s model (embedding = hidden)."""
    lstm = layers * (4 * hidden * 2 * hidden + 8 * hidden)
    decoder = hidden * VOCABULARY + VOCABULARY
    return {"parameters": VOCABULARY * hidden + lstm + decoder, "work_per_token": lstm + decoder}


MODELS = {"PTB small (2x200)": lstm_language_model(200), "large (2x1500)": lstm_language_model(1500)}


def step_seconds(compute_per_token: float, parameters: int, ranks: int, gigabits: float, overhead: float) -> float:
    tokens = STREAMS * BPTT
    if ranks == 1:
        return compute_per_token * tokens
    exchange = 2 * (ranks - 1) / ranks * BYTES * (parameters + 2) / (gigabits * 1e9 / 8)
    return compute_per_token * tokens / ranks + overhead + exchange + 2 * (ranks - 1) * LATENCY


def main() -> int:
    measured = json.loads(Path(sys.argv[1]).read_text())
    _, ptb = measured["ptb"]
    _, mnist = measured["mnist"]
    compute = (ptb["seconds_per_epoch"] - ptb["allreduce_seconds_per_epoch"]) * 2 / PTB_TRAIN_TOKENS
    small = MODELS["PTB small (2x200)"]
    # per step: overhead + bytes / bandwidth, for PTB and for mnist (the 2-rank ring sends bytes / 1 each way)
    ptb_step = ptb["allreduce_seconds_per_epoch"] / PTB_STEPS
    mnist_step = mnist["allreduce_seconds_per_epoch"] / MNIST_STEPS
    ptb_bytes, mnist_bytes = BYTES * small["parameters"], BYTES * MNIST_PARAMETERS
    seconds_per_byte = max((ptb_step - mnist_step) / (ptb_bytes - mnist_bytes), 1e-12)
    overhead = max(mnist_step - mnist_bytes * seconds_per_byte, 0.0)
    print(f"compute per token, one rank, one thread: {compute * 1e6:.1f} µs (PTB small)")
    print(
        f"fitted here: a fixed {overhead * 1e3:.1f} ms per step and {1 / seconds_per_byte / 1e9:.2f} GB/s; "
        f"2-rank Allreduce per step: PTB {ptb_step * 1e3:.1f} ms, mnist {mnist_step * 1e3:.1f} ms"
    )
    for name, model in MODELS.items():
        per_token = compute * model["work_per_token"] / small["work_per_token"]
        megabytes = BYTES * model["parameters"] / 1e6
        print(f"\n{name}: {model['parameters'] / 1e6:.1f} M parameters, {megabytes:.0f} MB exchanged per step")
        print("| K | " + " | ".join(f"{g} Gb/s: step, efficiency" for g in GIGABITS) + " |")
        print("|---|" + "---|" * len(GIGABITS))
        base = step_seconds(per_token, model["parameters"], 1, GIGABITS[0], overhead)
        for ranks in RANKS:
            cells = []
            for gigabits in GIGABITS:
                step = step_seconds(per_token, model["parameters"], ranks, gigabits, overhead)
                cells.append(f"{step * 1e3:.0f} ms, {base / (ranks * step):.0%}")
            print(f"| {ranks} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
