"""A/B measurements behind the fast paths' choices, each in one process, taking turns.

Every choice below is a switch in ``lstmkit.ops`` (a module constant); this script times a layer
call with the switch one way and the other (and onnxruntime where it is the question), in short
alternating windows (0.1 s of untimed calls, then timed ones, median), and prints the medians and
the median of the per-window ratios, which is steadier than a ratio of medians on a machine whose
speed drifts.

    python benchmarks/ab.py pipeline   # input projection on the helper thread, against onnxruntime
    python benchmarks/ab.py loops      # compiled loops (both; lstmkit's default) against the Python loop over BLAS
    python benchmarks/ab.py transposed # small layers' compiled loops reading W_hh transposed, or as stored
    python benchmarks/ab.py overhead   # a layer call's own Python cost (T=1, H=4)
    python benchmarks/ab.py cores      # batch-1 LSTM and GRU loops on two cores or one, against onnxruntime
    python benchmarks/ab.py copy       # large layers' per-step BLAS product by a copy of W_hhᵀ or by the view
    python benchmarks/ab.py backward   # small layers' backward loop on W_hhᵀ or on W_hh as stored (training step)
    python benchmarks/ab.py batch-last # large layers' inference on states kept batch last, or batch first
    python benchmarks/ab.py halves     # LSTM inference on two cores, half of the batch each, or as without
    python benchmarks/ab.py halves-training  # the same for an LSTM's training step (forward and backward)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import lstmkit  # before NumPy loads OpenBLAS (lstmkit._openblas)
import numpy as np

from lstmkit.ops import _compiled, _pipeline


def _median_times(functions: dict, rounds: int, calls: int = 15) -> dict:
    """Per-window medians (seconds) of each function, the functions taking turns."""
    for function in functions.values():
        function()
    times = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            started = time.perf_counter()
            while time.perf_counter() - started < 0.1:
                function()
            window = []
            for _ in range(calls):
                start = time.perf_counter()
                function()
                window.append(time.perf_counter() - start)
            times[name].append(statistics.median(window))
    return times


def _report(label: str, times: dict, baseline: str, scale: float, unit: str) -> None:
    medians = "  ".join(f"{name} {statistics.median(values) * scale:.2f}" for name, values in times.items())
    ratios = "  ".join(f"{name}/{baseline} {statistics.median([a / b for a, b in zip(values, times[baseline])]):.2f}"
                       for name, values in times.items() if name != baseline)
    print(f"{label}: {medians} {unit} | {ratios}", flush=True)


def _switched(module, name, value, function):
    def call():
        setattr(module, name, value)
        function()
    return call


def _inference(layer, x):
    def call():
        with lstmkit.no_grad():
            layer(x)
    return call


def _training(layer, x):
    doutput = np.ones((*x.shape[:2], layer.hidden_size), dtype=x.dtype)

    def call():
        layer.zero_grad()
        layer(x)
        layer.backward(doutput)
    return call


def _problem(kind, steps, batch, features, hidden):
    layer = getattr(lstmkit, kind)(features, hidden, seed=0)
    x = np.random.default_rng(1).standard_normal((steps, batch, features)).astype(np.float32)
    return layer, x


def pipeline(rounds):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import torch
    from onnx_peer import onnx_session

    default, two_cores = _pipeline.enabled, _compiled.TWO_CORE_MAX_BATCH
    _compiled.TWO_CORE_MAX_BATCH = 0  # the projection beside the one-core loop (`cores` times the two-core loop)
    for kind, steps, features, hidden in [("LSTM", 100, 64, 128), ("LSTM", 1000, 32, 32), ("GRU", 100, 64, 128),
                                          ("GRU", 1000, 32, 32)]:
        layer, x = _problem(kind, steps, 1, features, hidden)
        session = onnx_session(kind, layer, torch.get_num_threads())
        times = _median_times({"helper": _switched(_pipeline, "enabled", default, _inference(layer, x)),
                               "no-helper": _switched(_pipeline, "enabled", False, _inference(layer, x)),
                               "onnxruntime": lambda: session.run(None, {"X": x})}, rounds)
        _report(f"{kind} T={steps} N=1 H={hidden}, µs a step", times, "onnxruntime", 1e6 / steps, "")
    _pipeline.enabled, _compiled.TWO_CORE_MAX_BATCH = default, two_cores


def cores(rounds):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import torch
    from onnx_peer import onnx_session

    default = _compiled.TWO_CORE_MAX_BATCH
    rows = [(100, 64, 128), (1000, 32, 32), (200, 32, 64), (100, 32, 48), (100, 64, 256), (32, 64, 128)]
    for kind, (steps, features, hidden) in [("LSTM", row) for row in rows] + [("GRU", row) for row in rows]:
        layer, x = _problem(kind, steps, 1, features, hidden)
        session = onnx_session(kind, layer, torch.get_num_threads())
        one_and_two = {"two-cores": _switched(_compiled, "TWO_CORE_MAX_BATCH", 1, _inference(layer, x)),
                       "one-core": _switched(_compiled, "TWO_CORE_MAX_BATCH", 0, _inference(layer, x))}
        with _rules_allowing_two_cores():
            times = _median_times({**one_and_two, "onnxruntime": lambda: session.run(None, {"X": x})}, rounds)
        _report(f"{kind} T={steps} N=1 I={features} H={hidden}, µs a step", times, "onnxruntime", 1e6 / steps, "")
    _compiled.TWO_CORE_MAX_BATCH = default


class _rules_allowing_two_cores:
    """Lets any hidden size and length run on two cores (the switch above decides)."""

    def __enter__(self):
        self.saved = _compiled.TWO_CORE_MIN_WEIGHTS, _compiled.TWO_CORE_MIN_STEPS
        _compiled.TWO_CORE_MIN_WEIGHTS = _compiled.TWO_CORE_MIN_STEPS = 1

    def __exit__(self, *exception):
        _compiled.TWO_CORE_MIN_WEIGHTS, _compiled.TWO_CORE_MIN_STEPS = self.saved


def loops(rounds):
    default = _compiled.FORWARD_FACTOR, _compiled.INFERENCE_FACTOR, _compiled.SMALL_LAYER_MULTIPLY_ADDS
    for kind, steps, batch, features, hidden in [("LSTM", 100, 4, 64, 128), ("LSTM", 200, 16, 32, 64),
                                                 ("LSTM", 100, 64, 32, 32), ("GRU", 100, 4, 64, 128),
                                                 ("GRU", 200, 16, 32, 64), ("LSTM", 100, 32, 64, 128),
                                                 ("LSTM", 50, 128, 32, 64), ("GRU", 100, 32, 64, 128),
                                                 ("LSTM", 28, 64, 28, 128)]:
        layer, x = _problem(kind, steps, batch, features, hidden)
        for name, make in (("inference", _inference), ("training", _training)):
            def with_limits(forward_factor, inference_factor, limit, function=make(layer, x)):
                def call():
                    _compiled.FORWARD_FACTOR, _compiled.INFERENCE_FACTOR = forward_factor, inference_factor
                    _compiled.SMALL_LAYER_MULTIPLY_ADDS = limit
                    function()
                return call
            times = _median_times({"compiled": with_limits(1, 1, 1 << 40), "default": with_limits(*default),
                                   "python-loop": with_limits(1, 1, 1)}, rounds, 7)
            _report(f"{kind} T={steps} N={batch} H={hidden} {name}, ms", times, "python-loop", 1e3, "")
    _compiled.FORWARD_FACTOR, _compiled.INFERENCE_FACTOR, _compiled.SMALL_LAYER_MULTIPLY_ADDS = default


def _switch_both_ways(setting, ways, configs, make, rounds, calls, per_step=False):
    """Times ``make(layer, x)`` with the module constant ``setting`` of _compiled at each of ``ways``
    ({label: value}, the last one the baseline), for each (kind, T, N, I, H) of ``configs``."""
    default = getattr(_compiled, setting)
    baseline = list(ways)[-1]
    for kind, steps, batch, features, hidden in configs:
        layer, x = _problem(kind, steps, batch, features, hidden)
        function = make(layer, x)
        times = _median_times({label: _switched(_compiled, setting, value, function) for label, value in ways.items()},
                              rounds, calls)
        what = "µs a step" if per_step else f"{'training' if make is _training else 'inference'}, ms"
        label = f"{kind} T={steps} N={batch} I={features} H={hidden} {what}"
        _report(label, times, baseline, 1e6 / steps if per_step else 1e3, "")
    setattr(_compiled, setting, default)


def transposed(rounds):
    _switch_both_ways("TRANSPOSED_PRODUCT_MAX_HIDDEN", {"transposed": 1 << 30, "as-stored": 0},
                      [("LSTM", 1000, 1, 32, 32), ("LSTM", 200, 1, 32, 64), ("LSTM", 200, 4, 32, 64),
                       ("LSTM", 200, 16, 32, 64), ("LSTM", 100, 4, 64, 128), ("GRU", 1000, 1, 32, 32),
                       ("GRU", 100, 1, 64, 128), ("GRU", 100, 1, 64, 256)], _inference, rounds, 15, per_step=True)


def copy(rounds):
    _switch_both_ways("TRANSPOSED_COPY", {"copy": True, "view": False},
                      [("LSTM", 28, 64, 28, 128), ("LSTM", 100, 32, 64, 128), ("LSTM", 100, 64, 256, 256),
                       ("LSTM", 50, 128, 512, 512), ("GRU", 100, 32, 64, 128), ("GRU", 50, 128, 512, 512)],
                      _inference, rounds, 5)


def backward(rounds):
    _switch_both_ways("BACKWARD_TRANSPOSED", {"transposed": True, "as-stored": False},
                      [("LSTM", 100, 1, 64, 128), ("LSTM", 1000, 1, 32, 32), ("LSTM", 200, 4, 32, 64),
                       ("GRU", 100, 1, 64, 128), ("GRU", 1000, 1, 32, 32), ("GRU", 200, 4, 32, 64)],
                      _training, rounds, 9)


def batch_last(rounds):
    _switch_both_ways("BATCH_LAST_INFERENCE", {"batch-last": True, "batch-first": False},
                      [("LSTM", 28, 64, 28, 128), ("LSTM", 100, 32, 64, 128), ("LSTM", 100, 64, 256, 256),
                       ("LSTM", 50, 128, 512, 512), ("LSTM", 100, 32, 128, 256), ("LSTM", 100, 32, 512, 256),
                       ("LSTM", 200, 4, 32, 256)], _inference, rounds, 5)


def halves(rounds):
    _switch_both_ways("HALVES_MIN_BATCH", {"halves": 2, "without": 1 << 30},
                      [("LSTM", 28, 64, 28, 128), ("LSTM", 100, 32, 64, 128), ("LSTM", 200, 16, 32, 64),
                       ("LSTM", 100, 32, 128, 256), ("LSTM", 100, 16, 64, 128), ("LSTM", 100, 8, 64, 128),
                       ("LSTM", 200, 4, 32, 64)], _inference, rounds, 5)


def halves_training(rounds):
    _switch_both_ways("HALVES_TRAINING", {"halves": True, "without": False},
                      [("LSTM", 28, 64, 28, 128), ("LSTM", 100, 32, 64, 128), ("LSTM", 200, 16, 32, 64),
                       ("LSTM", 100, 8, 64, 128), ("LSTM", 100, 16, 64, 64), ("LSTM", 100, 32, 32, 32),
                       ("LSTM", 100, 64, 64, 64)], _training, rounds, 9)


def overhead(rounds):
    layer, x = _problem("LSTM", 1, 1, 4, 4)
    times = _median_times({"inference": _inference(layer, x), "training": _training(layer, x)}, rounds, 200)
    print("LSTM T=1 N=1 H=4, µs a call: " + "  ".join(f"{name} {statistics.median(v) * 1e6:.1f}"
                                                     for name, v in times.items()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["pipeline", "loops", "transposed", "overhead", "cores", "copy", "backward",
                                         "batch-last", "halves", "halves-training"])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)
    globals()[args.what.replace("-", "_")](args.rounds)


if __name__ == "__main__":
    main()
