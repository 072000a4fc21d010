"""lstmkit against torch.nn.LSTM / torch.nn.GRU on this machine's CPU, side by side in one process.

For every configuration: build both layers with identical weights, check that their outputs
agree, then time inference (forward storing nothing for backward) and a training step (forward
plus backward with parameter gradients), alternating the two frameworks, median of --repeats
runs after warm-up. Prints a table (times, ratio lstmkit/torch, GFLOP/s, % of the float32 matrix
product peak measured in the same run) and writes JSON.

    python benchmarks/bench_recurrent.py --json benchmarks/results.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np
import torch

import lstmkit

GRID = [(28, 64, 28, 128), (100, 32, 64, 128), (100, 64, 256, 256), (50, 128, 512, 512), (200, 16, 32, 64),
        (100, 1, 64, 128), (1000, 1, 32, 32)]
GATES = {"LSTM": 4, "GRU": 3}


def matmul_peak(size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of a float32 (size x size) matrix product with NumPy's BLAS (the best of ``repeats``)."""
    a, b = (np.random.default_rng(0).standard_normal((size, size)).astype(np.float32) for _ in range(2))
    a @ b
    best = min(_seconds(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _seconds(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def forward_flops(kind, steps, batch, features, hidden, layers=1, directions=1) -> float:
    """Multiply-adds x 2 of the matrix products of one forward pass (the elementwise work is not counted)."""
    gates = GATES[kind] * hidden
    total = 0
    for layer in range(layers):
        layer_input = features if layer == 0 else directions * hidden
        total += directions * 2 * steps * batch * gates * (layer_input + hidden)
    return float(total)


def build(kind, features, hidden, layers, bidirectional):
    ours = getattr(lstmkit, kind)(features, hidden, layers, bidirectional=bidirectional, seed=0)
    theirs = getattr(torch.nn, kind)(features, hidden, layers, bidirectional=bidirectional)
    theirs.load_state_dict({name: torch.from_numpy(value) for name, value in ours.state_dict().items()})
    return ours, theirs


def measure(kind, steps, batch, features, hidden, layers=1, bidirectional=False, repeats=7):
    ours, theirs = build(kind, features, hidden, layers, bidirectional)
    x = np.random.default_rng(1).standard_normal((steps, batch, features)).astype(np.float32)
    x_torch = torch.from_numpy(x)
    with lstmkit.no_grad():
        out_ours = ours(x)[0]
    with torch.inference_mode():
        out_theirs = theirs(x_torch)[0].numpy()
    error = float(np.max(np.abs(out_ours - out_theirs)))
    if error > 1e-4:
        raise AssertionError(f"{kind} {steps, batch, features, hidden}: outputs differ by {error}")
    dout = np.ones_like(out_ours)
    dout_torch = torch.from_numpy(dout)

    def ours_inference():
        with lstmkit.no_grad():
            ours(x)

    def theirs_inference():
        with torch.inference_mode():
            theirs(x_torch)

    def ours_training():
        ours.zero_grad()
        output, _ = ours(x)
        ours.backward(dout)

    x_grad = x_torch.clone().requires_grad_(True)

    def theirs_training():
        theirs.zero_grad()
        output, _ = theirs(x_grad)
        output.backward(dout_torch)

    times = {name: [] for name in ("ours_inference", "theirs_inference", "ours_training", "theirs_training")}
    functions = {"ours_inference": ours_inference, "theirs_inference": theirs_inference,
                 "ours_training": ours_training, "theirs_training": theirs_training}
    for function in functions.values():  # warm-up
        function()
    for _ in range(repeats):  # alternate, so drifts of the machine hit both alike
        for name, function in functions.items():
            times[name].append(_seconds(function))
    medians = {name: statistics.median(values) for name, values in times.items()}
    flops = forward_flops(kind, steps, batch, features, hidden, layers, 2 if bidirectional else 1)
    return {"kind": kind, "T": steps, "N": batch, "I": features, "H": hidden, "layers": layers,
            "bidirectional": bidirectional, "max_abs_difference": error, "forward_gflop": flops / 1e9, **medians}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--kinds", nargs="+", default=["LSTM", "GRU"], choices=list(GATES))
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(torch.get_num_threads())
    peak = matmul_peak()
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads, numpy {np.__version__}; float32 matmul peak {peak:.0f} GFLOP/s")
    header = f"{'layer':<6}{'T':>5}{'N':>5}{'I':>5}{'H':>5}{'':>6} | {'infer ours':>10}{'torch':>9}{'ratio':>7}{'GF/s':>7}{'%pk':>5} | {'train ours':>10}{'torch':>9}{'ratio':>7}{'GF/s':>7}{'%pk':>5}"
    print(header)
    print("-" * len(header))
    rows = []
    for kind in args.kinds:
        configs = [(*config, 1, False) for config in GRID] + [(100, 32, 128, 256, 2, True)]
        for steps, batch, features, hidden, layers, bidirectional in configs:
            row = measure(kind, steps, batch, features, hidden, layers, bidirectional, args.repeats)
            row["inference_ratio"] = row["ours_inference"] / row["theirs_inference"]
            row["training_ratio"] = row["ours_training"] / row["theirs_training"]
            row["inference_gflops"] = row["forward_gflop"] / row["ours_inference"]
            row["training_gflops"] = 3 * row["forward_gflop"] / row["ours_training"]
            rows.append(row)
            tag = "2L-bi" if bidirectional else ""
            print(f"{kind:<6}{steps:>5}{batch:>5}{features:>5}{hidden:>5}{tag:>6} | "
                  f"{row['ours_inference'] * 1e3:>8.2f}ms{row['theirs_inference'] * 1e3:>7.2f}ms{row['inference_ratio']:>7.2f}"
                  f"{row['inference_gflops']:>7.0f}{100 * row['inference_gflops'] / peak:>4.0f}% | "
                  f"{row['ours_training'] * 1e3:>8.2f}ms{row['theirs_training'] * 1e3:>7.2f}ms{row['training_ratio']:>7.2f}"
                  f"{row['training_gflops']:>7.0f}{100 * row['training_gflops'] / peak:>4.0f}%", flush=True)
    for mode in ("inference", "training"):
        ratios = [row[f"{mode}_ratio"] for row in rows]
        geometric = float(np.exp(np.mean(np.log(ratios))))
        print(f"{mode}: geometric mean of lstmkit/torch time ratios {geometric:.2f}, worst {max(ratios):.2f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"matmul_peak_gflops": peak, "torch": torch.__version__, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
