"""A/B measurements behind the fast paths' choices, each in one process, taking turns.

Every choice below is a threshold of ``lstmkit.ops.fused.plan.Tuning`` or a loop of its ``Plan``;
this script times the fused op of a layer's weights under one tuning (or plan) and the other (and
onnxruntime where it is the question), in short alternating windows (0.1 s of untimed calls, then
timed ones, median), and prints the medians and the median of the per-window ratios, which is
steadier than a ratio of medians on a machine whose speed drifts. The results justify the defaults
in the docstrings of ``lstmkit/ops/fused/plan.py`` and ``blas_loops.py``.

    python benchmarks/ab.py pipeline   # input projection on the helper thread, against onnxruntime
    python benchmarks/ab.py loops      # compiled loops (both; lstmkit's default) against the Python loop over BLAS
    python benchmarks/ab.py transposed # small layers' compiled loops reading W_hh transposed, or as stored
    python benchmarks/ab.py overhead   # a layer call's own Python cost (T=1, H=4)
    python benchmarks/ab.py cores      # batch-1 LSTM and GRU loops on two cores or one, against onnxruntime
    python benchmarks/ab.py cores-training  # the same for a batch-1 training step, and without the helper
    python benchmarks/ab.py batch-last # large layers' inference on states kept batch last, or batch first
    python benchmarks/ab.py halves     # LSTM inference on two cores, half of the batch each, or as without
    python benchmarks/ab.py halves-training  # the same for an LSTM's training step (forward and backward)
    python benchmarks/ab.py caller-memory  # a training step with the cache kept apart from the caller's arrays, or not
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import lstmkit  # noqa: F401  before NumPy loads OpenBLAS (lstmkit._openblas)

# isort: split
import numpy as np

from lstmkit.ops.fused import (
    Plan,
    Tuning,
    gru_backward_fused,
    gru_forward_fused,
    lstm_backward_fused,
    lstm_forward_fused,
)
from lstmkit.ops.fused.helper import PROCESS_HELPER
from lstmkit.ops.gru import GRUWeights
from lstmkit.ops.lstm import LSTMWeights


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
    ratios = "  ".join(
        f"{name}/{baseline} {statistics.median([a / b for a, b in zip(values, times[baseline])]):.2f}"
        for name, values in times.items()
        if name != baseline
    )
    print(f"{label}: {medians} {unit} | {ratios}", flush=True)


def _weights(kind, layer):
    names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
    arrays = [getattr(layer, name).data for name in names]
    return LSTMWeights(*arrays) if kind == "LSTM" else GRUWeights(*arrays)


def _inference(kind, layer, x, **options):
    """The fused forward of the layer's weights, nothing kept; ``options``: tuning, plan, helper."""
    weights, h0 = _weights(kind, layer), np.zeros((x.shape[1], layer.hidden_size), x.dtype)

    def call():
        if kind == "LSTM":
            lstm_forward_fused(x, h0, h0, weights, keep_cache=False, **options)
        else:
            gru_forward_fused(x, h0, weights, keep_cache=False, **options)

    return call


def _training(kind, layer, x, **options):
    """The fused forward and backward of the layer's weights (``options`` as in :func:`_inference`)."""
    weights, h0 = _weights(kind, layer), np.zeros((x.shape[1], layer.hidden_size), x.dtype)
    doutput = np.ones((*x.shape[:2], layer.hidden_size), dtype=x.dtype)
    helper = {"helper": options["helper"]} if "helper" in options else {}

    def call():
        if kind == "LSTM":
            cache = lstm_forward_fused(x, h0, h0, weights, **options)[3]
            lstm_backward_fused(doutput, h0, h0, cache, **helper)
        else:
            gru_backward_fused(doutput, h0, gru_forward_fused(x, h0, weights, **options)[2])

    return call


def _configs(text: str) -> list[tuple]:
    """``"LSTM 28x64x28x128  GRU 100x1x64x128"`` -> [(kind, T, N, I, H), ...]."""
    configs = []
    for kind, sizes in zip(text.split()[::2], text.split()[1::2]):
        configs.append((kind, *map(int, sizes.split("x"))))
    return configs


def _problem(kind, steps, batch, features, hidden):
    layer = getattr(lstmkit, kind)(features, hidden, seed=0)
    x = np.random.default_rng(1).standard_normal((steps, batch, features)).astype(np.float32)
    return layer, x


def pipeline(rounds):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import torch
    from onnx_peer import onnx_session

    one_core = Tuning(two_core_max_batch=0)  # the projection beside the one-core loop (`cores` times two cores)
    for kind, steps, _, features, hidden in _configs(
        "LSTM 100x1x64x128  LSTM 1000x1x32x32  GRU 100x1x64x128  GRU 1000x1x32x32"
    ):
        layer, x = _problem(kind, steps, 1, features, hidden)
        session = onnx_session(kind, layer, torch.get_num_threads())
        times = _median_times(
            {
                "helper": _inference(kind, layer, x, tuning=one_core, helper=PROCESS_HELPER),
                "no-helper": _inference(kind, layer, x, tuning=one_core, helper=None),
                "onnxruntime": lambda session=session, x=x: session.run(None, {"X": x}),
            },
            rounds,
        )
        _report(f"{kind} T={steps} N=1 H={hidden}, µs a step", times, "onnxruntime", 1e6 / steps, "")


def cores(rounds):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import torch
    from onnx_peer import onnx_session

    two, one = Tuning(two_core_min_weights=1, two_core_min_steps=1), Tuning(two_core_max_batch=0)
    rows = [(100, 64, 128), (1000, 32, 32), (200, 32, 64), (100, 32, 48), (100, 64, 256), (32, 64, 128)]
    for kind, (steps, features, hidden) in [("LSTM", row) for row in rows] + [("GRU", row) for row in rows]:
        layer, x = _problem(kind, steps, 1, features, hidden)
        session = onnx_session(kind, layer, torch.get_num_threads())
        times = _median_times(
            {
                "two-cores": _inference(kind, layer, x, tuning=two),
                "one-core": _inference(kind, layer, x, tuning=one),
                "onnxruntime": lambda session=session, x=x: session.run(None, {"X": x}),
            },
            rounds,
        )
        _report(f"{kind} T={steps} N=1 I={features} H={hidden}, µs a step", times, "onnxruntime", 1e6 / steps, "")


def cores_training(rounds):
    """``cores`` for a training step (forward and backward) at batch 1: the forward's loop on two
    cores (half of the units each) or on one, with the helper and without (the backward runs on
    one core either way)."""
    two = Tuning(two_core_min_weights=1, two_core_min_steps=1, two_core_min_training_weights=1)
    one = Tuning(two_core_max_batch=0)
    for kind, steps, _, features, hidden in _configs(
        "LSTM 100x1x64x128  LSTM 300x1x32x128  LSTM 100x1x64x192  LSTM 100x1x64x256  GRU 100x1x64x128  GRU 100x1x64x256"
    ):
        layer, x = _problem(kind, steps, 1, features, hidden)
        times = _median_times(
            {
                "two-cores": _training(kind, layer, x, tuning=two),
                "one-core": _training(kind, layer, x, tuning=one),
                "no-helper": _training(kind, layer, x, helper=None),
            },
            rounds,
            9,
        )
        _report(f"{kind} T={steps} N=1 I={features} H={hidden} training", times, "two-cores", 1e3, "ms")


def loops(rounds):
    compiled = Tuning(small_layer_multiply_adds=1 << 40, forward_factor=1, inference_factor=1)
    python_loop = Tuning(small_layer_multiply_adds=1, forward_factor=1, inference_factor=1)
    for kind, steps, batch, features, hidden in _configs(
        "LSTM 100x4x64x128  LSTM 200x16x32x64  LSTM 100x64x32x32  "
        "GRU 100x4x64x128  GRU 200x16x32x64  LSTM 100x32x64x128  "
        "LSTM 50x128x32x64  GRU 100x32x64x128  LSTM 28x64x28x128"
    ):
        layer, x = _problem(kind, steps, batch, features, hidden)
        for name, make in (("inference", _inference), ("training", _training)):
            times = _median_times(
                {
                    "compiled": make(kind, layer, x, tuning=compiled),
                    "default": make(kind, layer, x),
                    "python-loop": make(kind, layer, x, tuning=python_loop),
                },
                rounds,
                7,
            )
            _report(f"{kind} T={steps} N={batch} H={hidden} {name}, ms", times, "python-loop", 1e3, "")


def _both_ways(ways, configs, make, rounds, calls, per_step=False):
    """Times ``make(kind, layer, x, **options)`` with each of ``ways`` ({label: options}, the last
    one the baseline), for each (kind, T, N, I, H) of ``configs``."""
    baseline = list(ways)[-1]
    for kind, steps, batch, features, hidden in configs:
        layer, x = _problem(kind, steps, batch, features, hidden)
        times = _median_times(
            {label: make(kind, layer, x, **options) for label, options in ways.items()}, rounds, calls
        )
        what = "µs a step" if per_step else f"{'training' if make is _training else 'inference'}, ms"
        label = f"{kind} T={steps} N={batch} I={features} H={hidden} {what}"
        _report(label, times, baseline, 1e6 / steps if per_step else 1e3, "")


def transposed(rounds):
    _both_ways(
        {
            "transposed": {"tuning": Tuning(transposed_product_max_hidden=1 << 30)},
            "as-stored": {"tuning": Tuning(transposed_product_max_hidden=0, transposed_product_min_rows=1 << 30)},
        },
        _configs(
            "LSTM 1000x1x32x32  LSTM 200x1x32x64  LSTM 200x4x32x64  "
            "LSTM 200x16x32x64  LSTM 100x4x64x128  GRU 1000x1x32x32  "
            "GRU 100x1x64x128  GRU 100x1x64x256"
        ),
        _inference,
        rounds,
        15,
        per_step=True,
    )


def batch_last(rounds):
    _both_ways(
        {"batch-last": {"plan": Plan("batch_last", None)}, "batch-first": {"plan": Plan("blas", None)}},
        _configs(
            "LSTM 28x64x28x128  LSTM 100x32x64x128  LSTM 100x64x256x256  "
            "LSTM 50x128x512x512  LSTM 100x32x128x256  LSTM 100x32x512x256  "
            "LSTM 200x4x32x256"
        ),
        _inference,
        rounds,
        5,
    )


def halves(rounds):
    _both_ways(
        {"halves": {"tuning": Tuning(halves_min_batch=2)}, "without": {"tuning": Tuning(halves_min_batch=1 << 30)}},
        _configs(
            "LSTM 28x64x28x128  LSTM 100x32x64x128  LSTM 200x16x32x64  "
            "LSTM 100x32x128x256  LSTM 100x16x64x128  LSTM 100x8x64x128  "
            "LSTM 200x4x32x64"
        ),
        _inference,
        rounds,
        5,
    )


def halves_training(rounds):
    _both_ways(
        {
            "halves": {"tuning": Tuning(halves_in_training=True)},
            "without": {"tuning": Tuning(halves_in_training=False)},
        },
        _configs(
            "LSTM 28x64x28x128  LSTM 100x32x64x128  LSTM 200x16x32x64  "
            "LSTM 100x8x64x128  LSTM 100x16x64x64  LSTM 100x32x32x32  "
            "LSTM 100x64x64x64"
        ),
        _training,
        rounds,
        9,
    )


def overhead(rounds):
    """A layer call's own Python cost: the layer, not the op."""
    layer, x = _problem("LSTM", 1, 1, 4, 4)
    doutput = np.ones((1, 1, 4), np.float32)

    def inference():
        with lstmkit.no_grad():
            layer(x)

    def training():
        layer.zero_grad()
        layer(x)
        layer.backward(doutput)

    times = _median_times({"inference": inference, "training": training}, rounds, 200)
    print(
        "LSTM T=1 N=1 H=4, µs a call: "
        + "  ".join(f"{name} {statistics.median(v) * 1e6:.1f}" for name, v in times.items())
    )


def caller_memory(rounds):
    """A layer's training step (forward and backward through the module) with Module.__call__ as it is,
    which keeps the cache apart from the caller's arrays (copies where memory is shared), and with
    a plain ``forward`` call in its place: what in-place safety costs (``lstmkit.nn.caller_memory``)."""
    from lstmkit.nn.module import Module

    kept_apart = Module.__call__

    def plain(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    configs = "LSTM 100x32x64x128  LSTM 100x1x64x128  LSTM 100x64x256x256  GRU 1000x1x32x32  GRU 200x16x32x64"

    def step(call, layer, x, doutput):
        def run():
            Module.__call__ = call
            layer(x)
            layer.backward(doutput)

        return run

    for kind, steps, batch, features, hidden in _configs(configs):
        layer, x = _problem(kind, steps, batch, features, hidden)
        problem = (layer, x, np.ones((steps, batch, hidden), np.float32))
        try:
            times = _median_times({"plain": step(plain, *problem), "kept-apart": step(kept_apart, *problem)}, rounds, 9)
        finally:
            Module.__call__ = kept_apart
        _report(f"{kind} T={steps} N={batch} I={features} H={hidden} training", times, "plain", 1e3, "ms")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "what",
        choices=[
            "pipeline",
            "loops",
            "transposed",
            "overhead",
            "cores",
            "cores-training",
            "batch-last",
            "halves",
            "halves-training",
            "caller-memory",
        ],
    )
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)
    globals()[args.what.replace("-", "_")](args.rounds)


if __name__ == "__main__":
    main()
