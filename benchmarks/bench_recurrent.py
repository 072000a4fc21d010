"""lstmkit against torch.nn.LSTM / torch.nn.GRU (and onnxruntime) on this machine's CPU, side by side.

For every configuration: build the layers with identical weights, check that their outputs agree,
then time inference (forward storing nothing for backward) and a training step (forward plus
backward with parameter gradients) in one process, alternating the frameworks, median of
--repeats runs after warm-up, float32. A run is the median call of --window seconds of calls (3
at least); a row's ratios and peak shares are the medians of each round's own ratio (the two
timed moments apart), which a drift of the machine's speed moves less than a ratio of medians.
onnxruntime's LSTM/GRU operator is a second inference peer.
Prints a table (times, ratios lstmkit/peer, GFLOP/s, % of the float32 matrix-product peak
measured in the same run, per-step latency of batch-1 rows, peak memory of a training step with
--memory) and writes JSON. The peak is a float32 (2048 x 2048) x (2048 x 2048) product with
NumPy's BLAS, timed for every row in turn with the frameworks, median of the same --repeats runs:
this machine's speed drifts by 10-30% within minutes, and a row's share is only meaningful against
a peak measured in the same moments.

    pip install -e '.[bench]'
    python benchmarks/bench_recurrent.py --memory --json benchmarks/results-cpu-2core.json

Each timed run follows untimed runs of the same function for --prime seconds: torch's OpenMP
threads, onnxruntime's pool and NumPy's OpenBLAS threads keep spinning for a while after a call
returns (OpenBLAS for about 0.1 s), and a framework timed right after another would pay for the
other's idle threads; a pause instead would time threads waking from sleep.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import lstmkit  # noqa: F401  before NumPy loads OpenBLAS (lstmkit._openblas)

# isort: split
import numpy as np
import torch

from lstmkit.io import atomic_write

GRID = [
    (28, 64, 28, 128),
    (100, 32, 64, 128),
    (100, 64, 256, 256),
    (50, 128, 512, 512),
    (200, 16, 32, 64),
    (100, 1, 64, 128),
    (1000, 1, 32, 32),
]
BIDIRECTIONAL = (100, 32, 128, 256, 2, True)
GATES = {"LSTM": 4, "GRU": 3}
HERE = Path(__file__).resolve().parent


PEAK_SIZE = 2048


def matmul_peak_function():
    """A float32 (PEAK_SIZE x PEAK_SIZE) matrix product with NumPy's BLAS: the machine's peak."""
    a, b = (np.random.default_rng(0).standard_normal((PEAK_SIZE, PEAK_SIZE)).astype(np.float32) for _ in range(2))
    return lambda: a @ b


def cpu_description() -> str:
    """The CPU's model name and vector extensions as /proc/cpuinfo gives them (Linux), else what
    ``platform`` knows: the results depend on them (AVX-512 or not changes torch's and NumPy's speed)."""
    try:
        with open("/proc/cpuinfo") as handle:
            fields = dict(line.split(":", 1) for line in handle.read().split("\n\n")[0].splitlines() if ":" in line)
    except OSError:
        return platform.processor() or platform.machine()
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    flags = set(fields.get("flags", "").split())
    vectors = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return (
        f"{fields.get('model name', platform.machine())} (family {fields.get('cpu family', '?')}, "
        f"model {fields.get('model', '?')}, {vectors})"
    )


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


def _check_equal(name, expected, actual, tolerance=1e-4):
    error = float(np.max(np.abs(expected - actual)))
    if error > tolerance:
        raise AssertionError(f"{name}: outputs differ by {error}")
    return error


def timed_functions(kind, ours, theirs, x, onnx):
    """The functions to time, by name; each framework's output checked against lstmkit's first."""
    x_torch = torch.from_numpy(x)
    with lstmkit.no_grad():
        expected = ours(x)[0]
    with torch.inference_mode():
        errors = {"torch": _check_equal(f"{kind} torch", expected, theirs(x_torch)[0].numpy())}
    dout = np.ones_like(expected)
    dout_torch = torch.from_numpy(dout)
    x_grad = x_torch.clone().requires_grad_(True)

    def ours_inference():
        with lstmkit.no_grad():
            ours(x)

    def torch_inference():
        with torch.inference_mode():
            theirs(x_torch)

    def ours_training():
        ours.zero_grad()
        ours(x)
        return ours.backward(dout)[0]

    def torch_training():
        theirs.zero_grad()
        x_grad.grad = None
        theirs(x_grad)[0].backward(dout_torch)

    dx = ours_training()  # the training step's gradients agree too: the input's and every weight's
    torch_training()
    errors["torch_gradients"] = max(
        _check_equal(f"{kind} torch dx", dx, x_grad.grad.numpy(), 1e-4 * float(np.abs(dx).max())),
        *(
            _check_equal(
                f"{kind} torch {name}",
                parameter.grad,
                dict(theirs.named_parameters())[name].grad.numpy(),
                1e-4 * float(np.abs(parameter.grad).max()),
            )
            for name, parameter in ours.named_parameters()
        ),
    )
    functions = {
        "ours_inference": ours_inference,
        "torch_inference": torch_inference,
        "ours_training": ours_training,
        "torch_training": torch_training,
    }
    if onnx:
        from onnx_peer import onnx_session

        session = onnx_session(kind, ours, torch.get_num_threads())
        feed = {"X": x}
        errors["onnxruntime"] = _check_equal(f"{kind} onnxruntime", expected, session.run(None, feed)[0])
        functions["onnx_inference"] = lambda: session.run(None, feed)
    return functions, errors


def peak_memory(framework, kind, config) -> tuple[float, float]:
    """MiB of a training step's peak above what it starts with, in a fresh process (memory_probe.py):
    resident memory, and bytes live in the framework's own allocations."""
    env = dict(
        os.environ,
        MALLOC_MMAP_THRESHOLD_="4096",
        MALLOC_TRIM_THRESHOLD_="0",
        MALLOC_TOP_PAD_="0",
        NUMPY_MADVISE_HUGEPAGE="0",
        PYTHONPATH=os.pathsep.join(sys.path),
    )
    command = [sys.executable, str(HERE / "memory_probe.py"), framework, kind, *map(str, config)]
    resident, allocated = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout.split()[
        -2:
    ]
    return float(resident), float(allocated)


def _window_seconds(function, window: float, least: int = 3) -> float:
    """One timed run: the median call of the calls made in ``window`` seconds (``least`` at least)."""
    times = []
    started = time.perf_counter()
    while len(times) < least or time.perf_counter() - started < window:
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(kind, config, repeats, prime, onnx, memory, window=0.05):
    steps, batch, features, hidden, layers, bidirectional = config
    ours, theirs = build(kind, features, hidden, layers, bidirectional)
    x = np.random.default_rng(1).standard_normal((steps, batch, features)).astype(np.float32)
    functions, errors = timed_functions(kind, ours, theirs, x, onnx)
    functions["matmul_peak"] = matmul_peak_function()
    times = {name: [] for name in functions}
    for function in functions.values():  # warm-up
        function()
    for _ in range(repeats):  # alternate, so drifts of the machine hit all alike
        for name, function in functions.items():
            started = time.perf_counter()
            while time.perf_counter() - started < prime:  # untimed: its threads awake, the others' idle
                function()
            times[name].append(_window_seconds(function, window))
    gflop = forward_flops(kind, steps, batch, features, hidden, layers, 2 if bidirectional else 1) / 1e9
    row = {
        "kind": kind,
        "T": steps,
        "N": batch,
        "I": features,
        "H": hidden,
        "layers": layers,
        "bidirectional": bidirectional,
        "max_abs_difference": errors,
        "forward_gflop": gflop,
        "rounds": times,
    }
    row.update({name: statistics.median(values) for name, values in times.items()})
    row["matmul_peak_gflops"] = 2 * PEAK_SIZE**3 / row.pop("matmul_peak") / 1e9
    row["inference_gflops"] = gflop / row["ours_inference"]
    row["training_gflops"] = 3 * gflop / row["ours_training"]  # backward: about twice the forward's products

    def per_round(numerators, denominators):  # each round's own ratio, then their median
        return statistics.median(a / b for a, b in zip(times[numerators], times[denominators]))

    row["inference_ratio"] = per_round("ours_inference", "torch_inference")
    row["training_ratio"] = per_round("ours_training", "torch_training")
    if "onnx_inference" in times:
        row["onnx_ratio"] = per_round("ours_inference", "onnx_inference")
    peak_flop = 2 * PEAK_SIZE**3 / 1e9  # a round's share: its own GFLOP/s over its own peak
    row["inference_peak_share"] = gflop / peak_flop * per_round("matmul_peak", "ours_inference")
    row["training_peak_share"] = 3 * gflop / peak_flop * per_round("matmul_peak", "ours_training")
    if memory:
        for framework, prefix in (("lstmkit", "ours"), ("torch", "torch")):
            row[f"{prefix}_training_peak_mib"], row[f"{prefix}_training_allocated_mib"] = peak_memory(
                framework, kind, config
            )
    return row


def _summary(rows):
    summary = {}
    for kind in sorted({row["kind"] for row in rows}) + ["all"]:
        for name in ("inference_ratio", "training_ratio", "onnx_ratio"):
            ratios = [row[name] for row in rows if name in row and kind in (row["kind"], "all")]
            if ratios:
                summary[f"{kind} {name}"] = {
                    "geometric_mean": float(np.exp(np.mean(np.log(ratios)))),
                    "worst": max(ratios),
                }
    return summary


def _print_row(row):
    tag = "2L-bi" if row["bidirectional"] else ""
    cells = [
        f"{row['kind']:<5}{row['T']:>5}{row['N']:>4}{row['I']:>4}{row['H']:>4}{tag:>6}",
        f"{row['ours_inference'] * 1e3:>8.2f}{row['torch_inference'] * 1e3:>8.2f}{row['inference_ratio']:>6.2f}",
    ]
    if "onnx_inference" in row:
        cells[-1] += f"{row['onnx_inference'] * 1e3:>8.2f}{row['onnx_ratio']:>6.2f}"
    cells[-1] += f"{100 * row['inference_peak_share']:>5.0f}%{row['matmul_peak_gflops']:>5.0f}"
    cells.append(
        f"{row['ours_training'] * 1e3:>8.2f}{row['torch_training'] * 1e3:>8.2f}{row['training_ratio']:>6.2f}"
        f"{100 * row['training_peak_share']:>5.0f}%"
    )
    if "ours_training_peak_mib" in row:
        cells.append(
            f"{row['ours_training_peak_mib']:>7.1f}{row['torch_training_peak_mib']:>7.1f}"
            f"{row['ours_training_allocated_mib']:>7.1f}{row['torch_training_allocated_mib']:>7.1f}"
        )
    print(" | ".join(cells), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--kinds", nargs="+", default=["LSTM", "GRU"], choices=list(GATES))
    parser.add_argument("--prime", type=float, default=0.15, help="seconds of untimed runs before each timed one")
    parser.add_argument("--no-onnx", action="store_true", help="leave onnxruntime out")
    parser.add_argument(
        "--window",
        type=float,
        default=0.05,
        help="seconds of calls in one timed run (3 calls at least); the run's time is their median",
    )
    parser.add_argument("--memory", action="store_true", help="also measure each training step's peak memory")
    parser.add_argument(
        "--rows",
        nargs="+",
        type=int,
        default=None,
        help="only these rows of the grid (0-7, 7 being the bidirectional one)",
    )
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    print(
        f"machine: {cpu_description()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), numpy {np.__version__}"
    )
    print("times in ms; ratio = lstmkit/peer; %pk = lstmkit's GFLOP/s over the row's matmul peak; memory in MiB")
    print(
        f"{'layer  T    N   I   H':<26} | {'ours   torch  ratio    onnx  ratio  %pk peak':>49} | "
        f"{'train ours  torch  ratio  %pk':>35}"
        + (f" | {'resident ours torch  allocated ours torch':>28}" if args.memory else "")
    )
    rows = []
    for kind in args.kinds:
        configs = [(*config, 1, False) for config in GRID] + [BIDIRECTIONAL]
        for config in [configs[index] for index in args.rows] if args.rows else configs:
            rows.append(measure(kind, config, args.repeats, args.prime, not args.no_onnx, args.memory, args.window))
            _print_row(rows[-1])
    peaks = [row["matmul_peak_gflops"] for row in rows]
    print(f"float32 matmul peak, the rows' medians: {min(peaks):.0f} to {max(peaks):.0f} GFLOP/s")
    summary = _summary(rows)
    for name, values in summary.items():
        print(f"{name}: geometric mean {values['geometric_mean']:.2f}, worst {values['worst']:.2f}")
    for row in rows:
        if row["N"] == 1 and "onnx_inference" in row:
            print(
                f"batch-1 {row['kind']} T={row['T']} H={row['H']}: per-step inference latency lstmkit "
                f"{row['ours_inference'] / row['T'] * 1e6:.1f} µs, "
                f"onnxruntime {row['onnx_inference'] / row['T'] * 1e6:.1f} µs, "
                f"torch {row['torch_inference'] / row['T'] * 1e6:.1f} µs"
            )
    if args.json:
        result = {
            "machine": platform.machine(),
            "cpu": cpu_description(),
            "cores": os.cpu_count(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "summary": summary,
            "rows": rows,
        }
        atomic_write(args.json, lambda handle: handle.write(json.dumps(result, indent=2)), mode="w")


if __name__ == "__main__":
    main()
