"""The backend switch: ``backend="reference"`` and ``backend="fast"`` give the same numbers.

Every layer and cell takes ``backend="auto" | "reference" | "fast"``. The reference runs the
equations of ``lstmkit.ops.lstm`` / ``gru`` / ``rnn``; the fast backend runs ``lstmkit.ops.fused``.
Here both run on random configurations whose sizes reach each of the fast backend's loops with
its default plan (a small layer's compiled loop, a large layer's BLAS loop, batch-last inference,
the batch halves on two cores, a batch-1 loop on two cores), forward and backward, and must agree:
float64 to 1e-12 and float32 to 1e-5, relative to the largest magnitude (at least 1).
"""

from __future__ import annotations

import numpy as np
import pytest

import lstmkit
from lstmkit.ops.backends import resolve_backend

# (steps, batch, input size, hidden size): one size class for each of the fast backend's loops.
SIZE_CLASSES = {
    "small compiled loop": (9, 3, 4, 16),
    "batch halves (training and inference)": (12, 10, 6, 64),
    "large layer, BLAS loop": (6, 33, 5, 72),
    "batch-last inference": (4, 72, 5, 128),
    "batch 1 on two cores": (33, 1, 3, 128),
}
LAYERS = {"LSTM": lstmkit.LSTM, "GRU": lstmkit.GRU}
CELLS = {"LSTM": lstmkit.LSTMCell, "GRU": lstmkit.GRUCell}


def assert_equal_enough(fast, reference, dtype, what):
    fast, reference = np.asarray(fast), np.asarray(reference)
    assert fast.shape == reference.shape, f"{what}: shape {fast.shape} != {reference.shape}"
    scale = max(1.0, float(np.max(np.abs(reference), initial=0.0)))
    tolerance = (1e-12 if dtype == np.float64 else 1e-5) * scale
    error = float(np.max(np.abs(fast - reference), initial=0.0))
    assert error <= tolerance, f"{what}: fast and reference differ by {error:.3g} > {tolerance:.3g}"


def random_configuration(mode: str, size_class: str, seed: int):
    """Layer options, input and initial state drawn from ``seed`` for one size class."""
    rng = np.random.default_rng(seed)
    steps, batch, features, hidden = SIZE_CLASSES[size_class]
    options = {
        "num_layers": int(rng.integers(1, 3)),
        "bias": bool(rng.integers(0, 2)),
        "batch_first": bool(rng.integers(0, 2)),
        "bidirectional": bool(rng.integers(0, 2)),
        "dropout": float(rng.choice([0.0, 0.3])),
    }
    if mode == "LSTM" and rng.integers(0, 3) == 0:
        options["proj_size"] = int(rng.integers(1, hidden))
    lengths = None
    if batch > 1 and rng.integers(0, 2):
        lengths = rng.integers(1, steps + 1, size=batch)
        lengths[rng.integers(0, batch)] = steps
    return options, lengths, rng


def run_layer(layer, x, hx, lengths, upstream_seed):
    """Forward with gradients, backward with random upstream gradients; then inference.

    Returns every array: output, final state, input and initial-state gradients, every parameter's
    gradient, and the inference output (``no_grad``)."""
    output, state = layer(x, hx, lengths=lengths) if lengths is not None else layer(x, hx)
    states = state if isinstance(state, tuple) else (state,)
    rng = np.random.default_rng(upstream_seed)
    doutput = rng.standard_normal(output.shape).astype(output.dtype)
    dstates = tuple(rng.standard_normal(part.shape).astype(part.dtype) for part in states)
    dx, dhx = layer.backward(doutput, dstates if isinstance(state, tuple) else dstates[0])
    arrays = {"output": output, "dinput": dx}
    arrays.update({f"final state {k}": part for k, part in enumerate(states)})
    arrays.update(
        {f"initial state gradient {k}": part for k, part in enumerate(dhx if isinstance(dhx, tuple) else (dhx,))}
    )
    arrays.update({f"grad of {name}": parameter.grad for name, parameter in layer.named_parameters()})
    layer.eval()
    with lstmkit.no_grad():
        inference, _ = layer(x, hx, lengths=lengths) if lengths is not None else layer(x, hx)
    layer.train()
    arrays["inference output"] = inference
    return arrays


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("size_class", list(SIZE_CLASSES))
@pytest.mark.parametrize("mode", list(LAYERS))
@pytest.mark.parametrize("seed", [0, 1])
def test_layers_give_the_same_numbers_on_both_backends(mode, size_class, dtype, seed):
    options, lengths, rng = random_configuration(mode, size_class, seed)
    steps, batch, features, hidden = SIZE_CLASSES[size_class]
    shape = (batch, steps, features) if options["batch_first"] else (steps, batch, features)
    x = rng.standard_normal(shape).astype(dtype)
    directions_layers = options["num_layers"] * (2 if options["bidirectional"] else 1)
    h0 = rng.standard_normal((directions_layers, batch, options.get("proj_size") or hidden)).astype(dtype)
    hx = (h0, rng.standard_normal((directions_layers, batch, hidden)).astype(dtype)) if mode == "LSTM" else h0
    results = {}
    for backend in ("reference", "fast"):
        layer = LAYERS[mode](features, hidden, **options, dtype=dtype, seed=seed, backend=backend)
        assert layer.backend == backend
        results[backend] = run_layer(layer, x, hx, lengths, upstream_seed=seed + 100)
    assert results["fast"].keys() == results["reference"].keys()
    for what, reference in results["reference"].items():
        assert_equal_enough(results["fast"][what], reference, dtype, f"{mode} {options} {what}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mode", list(CELLS))
def test_cells_stepped_by_hand_give_the_same_numbers_on_both_backends(mode, dtype):
    rng = np.random.default_rng(7)
    xs = rng.standard_normal((5, 4, 3)).astype(dtype)
    results = {}
    for backend in ("reference", "fast"):
        cell = CELLS[mode](3, 8, dtype=dtype, seed=3, backend=backend)
        state = None
        outputs = []
        for x in xs:
            state = cell(x, state)
            outputs.append(state)
        grads = np.random.default_rng(8)
        dxs = []
        for step_state in reversed(outputs):
            upstream = tuple(
                grads.standard_normal(part.shape).astype(dtype)
                for part in (step_state if isinstance(step_state, tuple) else (step_state,))
            )
            dx, _ = cell.backward(upstream if mode == "LSTM" else upstream[0])
            dxs.append(dx)
        parts = [np.stack([s[0] if isinstance(s, tuple) else s for s in outputs]), np.stack(dxs)]
        parts += [p.grad for _, p in cell.named_parameters()]
        results[backend] = parts
    for k, (fast, reference) in enumerate(zip(results["fast"], results["reference"])):
        assert_equal_enough(fast, reference, dtype, f"{mode}Cell array {k}")


def test_auto_is_fast_where_a_fast_path_exists_and_the_reference_elsewhere(monkeypatch):
    monkeypatch.delenv("LSTMKIT_BACKEND", raising=False)
    assert resolve_backend("auto", "LSTM").name == "fast"
    assert resolve_backend("auto", "GRU").name == "fast"
    assert resolve_backend("auto", "RNN_TANH").name == "reference"
    fast, reference = resolve_backend("fast", "LSTM"), resolve_backend("reference", "LSTM")
    assert fast.forward is not reference.forward and fast.backward is not reference.backward


@pytest.mark.parametrize("value, expected", [("reference", "reference"), ("fast", "fast"), ("auto", "fast")])
def test_the_environment_variable_chooses_what_auto_means(value, expected, monkeypatch):
    monkeypatch.setenv("LSTMKIT_BACKEND", value)
    assert resolve_backend("auto", "LSTM").name == expected
    assert resolve_backend("auto", "RNN_RELU").name == "reference"  # no fast RNN: never an error from auto
    assert resolve_backend("reference", "GRU").name == "reference"  # an explicit choice wins


def test_the_environment_variable_makes_a_layer_run_the_reference(monkeypatch):
    monkeypatch.setenv("LSTMKIT_BACKEND", "reference")
    x = np.random.default_rng(0).standard_normal((6, 2, 3))
    layer = lstmkit.LSTM(3, 5, dtype=np.float64, seed=0)
    explicit = lstmkit.LSTM(3, 5, dtype=np.float64, seed=0, backend="reference")
    np.testing.assert_array_equal(layer(x)[0], explicit(x)[0])


def test_bad_backends_are_refused_with_the_choices(monkeypatch):
    with pytest.raises(ValueError, match=r"LSTM: backend must be 'auto', 'reference' or 'fast', got 'quick'"):
        lstmkit.LSTM(3, 5, backend="quick")
    with pytest.raises(ValueError, match=r"RNN.*no fast"):
        lstmkit.RNN(3, 5, backend="fast")
    with pytest.raises(ValueError, match=r"RNNCell.*no fast"):
        lstmkit.RNNCell(3, 5, backend="fast")
    layer = lstmkit.GRU(3, 5)
    with pytest.raises(ValueError, match="backend must be"):
        layer.backend = "fastest"
    monkeypatch.setenv("LSTMKIT_BACKEND", "turbo")
    with pytest.raises(ValueError, match="LSTMKIT_BACKEND.*'turbo'"):
        lstmkit.LSTM(3, 5)(np.zeros((2, 1, 3), np.float32))


def test_switching_a_layers_backend_later_takes_effect():
    x = np.random.default_rng(1).standard_normal((40, 1, 3)).astype(np.float32)
    layer = lstmkit.LSTM(3, 20, seed=0)
    fast_output = layer(x)[0]
    layer.backend = "reference"
    reference_output = layer(x)[0]
    assert_equal_enough(fast_output, reference_output, np.float32, "output")
    assert "backend" not in "".join(layer.state_dict())
