"""The LSTM variants against the plain LSTM of the same size, and against torch's plain LSTM.

For each size and variant (layer norm, peepholes, recurrent dropout, zoneout): a training step
(forward, backward, parameter gradients) and an inference call of ``lstmkit.LSTM(..., variant)``
timed in one process beside the plain ``lstmkit.LSTM`` of the same size and weights (its default
backend, the fast paths) and ``torch.nn.LSTM``, alternating, median of the per-round ratios over
--repeats rounds after warm-up, float32, in training mode (dropout and zoneout draw their masks
at every call). The variants run their fused ops (:mod:`lstmkit.ops.fused.variants`); the plain
layer runs the plain fused ones.
Method as ``bench_recurrent.py``'s (runs of --window seconds, each
after --prime seconds of untimed calls).

    pip install -e '.[bench]'
    python benchmarks/bench_variants.py --json benchmarks/variants-cpu-2core.json
"""

from __future__ import annotations

import lstmkit  # noqa: F401  before NumPy loads OpenBLAS (lstmkit._openblas)

# isort: split
import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from bench_recurrent import _window_seconds, cpu_description

from lstmkit.io import atomic_write

SIZES = [(28, 64, 28, 128), (100, 32, 64, 128), (100, 64, 256, 256), (100, 1, 64, 128)]
VARIANTS = {
    "layer_norm": dict(layer_norm=True),
    "peepholes": dict(peepholes=True),
    "recurrent_dropout": dict(recurrent_dropout=0.25),
    "zoneout": dict(zoneout=0.1),
}


def _training(layer, x, dout):
    def step():
        layer.zero_grad()
        layer(x)
        layer.backward(dout)

    return step


def _inference(layer, x):
    def call():
        with lstmkit.no_grad():
            layer(x)

    return call


def _torch_functions(features, hidden, x):
    model = torch.nn.LSTM(features, hidden)
    inputs = torch.from_numpy(x).requires_grad_(True)
    dout = torch.ones(x.shape[0], x.shape[1], hidden)

    def training():
        model.zero_grad()
        inputs.grad = None
        model(inputs)[0].backward(dout)

    def inference():
        with torch.no_grad():
            model(inputs)

    return training, inference


def measure(config, variant, repeats, prime, window):
    steps, batch, features, hidden = config
    x = np.random.default_rng(1).standard_normal((steps, batch, features)).astype(np.float32)
    dout = np.ones((steps, batch, hidden), np.float32)
    plain = lstmkit.LSTM(features, hidden, seed=0)
    varied = lstmkit.LSTM(features, hidden, seed=0, **VARIANTS[variant])
    torch_training, torch_inference = _torch_functions(features, hidden, x)
    functions = {
        "variant_training": _training(varied, x, dout),
        "plain_training": _training(plain, x, dout),
        "torch_training": torch_training,
        "variant_inference": _inference(varied, x),
        "plain_inference": _inference(plain, x),
        "torch_inference": torch_inference,
    }
    times = {name: [] for name in functions}
    for function in functions.values():  # warm-up (and numba's compilation)
        function()
    for _ in range(repeats):
        for name, function in functions.items():
            started = time.perf_counter()
            while time.perf_counter() - started < prime:
                function()
            times[name].append(_window_seconds(function, window))

    def per_round(numerator, denominator):
        return statistics.median(a / b for a, b in zip(times[numerator], times[denominator]))

    row = {"T": steps, "N": batch, "I": features, "H": hidden, "variant": variant, "rounds": times}
    row.update({name: statistics.median(values) for name, values in times.items()})
    for mode in ("training", "inference"):
        row[f"{mode}_vs_plain"] = per_round(f"variant_{mode}", f"plain_{mode}")
        row[f"{mode}_vs_torch"] = per_round(f"variant_{mode}", f"torch_{mode}")
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--prime", type=float, default=0.15, help="seconds of untimed runs before each timed one")
    parser.add_argument("--window", type=float, default=0.05, help="seconds of calls in one timed run")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    machine = f"{cpu_description()}, torch {torch.__version__}, numpy {np.__version__}"
    print(machine)
    print("times in ms of a training step (train) and an inference call (infer); ratio = variant / peer")
    print(
        f"{'T':>5}{'N':>4}{'I':>4}{'H':>4}  {'variant':<18}| train  plain torch  x plain x torch"
        " | infer x plain x torch"
    )
    rows = []
    for config in SIZES:
        for variant in args.variants:
            row = measure(config, variant, args.repeats, args.prime, args.window)
            rows.append(row)
            print(
                f"{row['T']:>5}{row['N']:>4}{row['I']:>4}{row['H']:>4}  {variant:<18}|"
                f"{row['variant_training'] * 1e3:>7.2f}{row['plain_training'] * 1e3:>7.2f}"
                f"{row['torch_training'] * 1e3:>7.2f}{row['training_vs_plain']:>8.2f}"
                f"{row['training_vs_torch']:>8.2f} |{row['variant_inference'] * 1e3:>6.2f}"
                f"{row['inference_vs_plain']:>8.2f}{row['inference_vs_torch']:>8.2f}",
                flush=True,
            )
    summary = {}
    for variant in args.variants:
        for name in ("training_vs_plain", "inference_vs_plain", "training_vs_torch", "inference_vs_torch"):
            ratios = [row[name] for row in rows if row["variant"] == variant]
            summary[f"{variant} {name}"] = {
                "geometric_mean": float(np.exp(np.mean(np.log(ratios)))),
                "worst": max(ratios),
            }
            print(f"{variant} {name}: geometric mean {summary[f'{variant} {name}']['geometric_mean']:.2f}, "
                  f"worst {max(ratios):.2f}")  # fmt: skip
    if args.json:
        payload = {"machine": machine, "rows": rows, "summary": summary}
        atomic_write(Path(args.json), lambda handle: handle.write(json.dumps(payload, indent=1) + "\n"), mode="w")


if __name__ == "__main__":
    main()
