"""A consumed cache's backward-only arrays serve the next training forward (_compiled.recycle_cache):
handed out once, to a forward of their shape and dtype, never the output; results as without."""

import numpy as np
import pytest

import lstmkit
from lstmkit.ops import _compiled
from lstmkit.ops.gru_fused import gru_forward_fused
from lstmkit.ops.lstm_fused import lstm_forward_fused
from test_fast_paths import random_problem


@pytest.fixture(autouse=True)
def empty_pool():
    _compiled.release_scratch()
    yield
    _compiled.release_scratch()


def _lstm_cache(seed=0, sizes=(7, 4, 5, 6), dtype=np.float32):
    x, h0, c0, weights, _ = random_problem(np.random.default_rng(seed), dtype, True, sizes)
    return lstm_forward_fused(x, h0, c0, weights)[3]


def test_recycled_arrays_serve_one_forward_of_their_shape_and_dtype():
    first = _lstm_cache()
    _compiled.recycle_cache(first)
    _compiled.recycle_cache(first)  # handed back twice: still served once
    second = _lstm_cache(seed=1)
    assert second.c is first.c and second.gates is first.gates and second.tanh_c is first.tanh_c
    _compiled.recycle_cache(first)  # then the state shape drawn till the pool has none: c, never h (the output)
    drawn = [_compiled.cache_empty(first.h.shape, np.float32) for _ in range(3)]
    assert drawn[0] is first.c and not any(np.shares_memory(array, first.h) for array in drawn)
    _compiled.release_scratch()
    third = _lstm_cache(seed=2)
    assert not any(np.shares_memory(getattr(third, f), getattr(second, f)) for f in ("c", "gates", "tanh_c"))
    _compiled.recycle_cache(third)
    other_shape = _lstm_cache(sizes=(8, 4, 5, 6))
    other_dtype = _lstm_cache(dtype=np.float64)
    for cache in (other_shape, other_dtype):
        assert not any(np.shares_memory(getattr(cache, f), third.gates) for f in ("c", "gates", "tanh_c"))
    assert _lstm_cache().gates is third.gates  # still there for its own shape


def test_gru_recycles_its_gates_and_hidden_n():
    x, h0, _, _, _ = random_problem(np.random.default_rng(3), np.float32, True, (6, 3, 4, 5))
    weights = lstmkit.GRU(4, 5, seed=0)._weights(0, 0)
    first = gru_forward_fused(x, h0, weights)[2]
    _compiled.recycle_cache(first)
    second = gru_forward_fused(x, h0, weights)[2]
    assert second.gates is first.gates and second.hidden_n is first.hidden_n and second.h is not first.h


def test_the_pool_drops_its_oldest_arrays_past_its_limit_and_on_release(monkeypatch):
    first, second = _lstm_cache(seed=0), _lstm_cache(seed=1)
    bytes_each = sum(getattr(first, f).nbytes for f in first.RECYCLED)
    monkeypatch.setattr(_compiled, "RECYCLED_MAX_BYTES", bytes_each)
    _compiled.recycle_cache(first)
    _compiled.recycle_cache(second)  # first's arrays go
    served = [_lstm_cache(seed=k) for k in range(2)]
    assert served[0].gates is second.gates and served[1].gates is not first.gates
    _compiled.recycle_cache(served[0])
    _compiled.release_scratch()
    assert _lstm_cache().gates is not served[0].gates


def _training_run(kind, sizes, interleaved):
    """Three training steps of a fresh two-layer bidirectional layer (steps 0 and 1 both forward
    before their backwards, last in first out, where ``interleaved``): per step, the output as
    returned (a copy), the input's and the parameters' gradients; and the outputs as the caller
    holds them at the end."""
    steps, batch, features, hidden = sizes
    layer = kind(features, hidden, num_layers=2, bidirectional=True, seed=0)
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal((steps, batch, features)).astype(np.float32) for _ in range(3)]
    upstream = [rng.standard_normal((steps, batch, 2 * hidden)).astype(np.float32) for _ in range(3)]
    outputs, results = {}, {}
    for group in ([0, 1], [2]) if interleaved else ([0], [1], [2]):
        for k in group:
            outputs[k] = layer(inputs[k])[0]
        for k in reversed(group):
            layer.zero_grad()
            dx = layer.backward(upstream[k])[0]
            results[k] = [outputs[k].copy(), dx] + [p.grad.copy() for _, p in layer.named_parameters()]
    return [results[k] for k in range(3)], [outputs[k] for k in range(3)]


@pytest.mark.parametrize("kind", [lstmkit.LSTM, lstmkit.GRU])
@pytest.mark.parametrize("sizes", [(9, 3, 4, 5), (5, 40, 8, 48), (40, 1, 3, 128), (10, 17, 6, 40)],
                         ids=["compiled loops", "python loops", "forward on two cores", "LSTM on batch halves"])
@pytest.mark.parametrize("interleaved", [False, True])
def test_training_steps_with_recycling_equal_those_without(kind, sizes, interleaved, monkeypatch):
    """Bit for bit, and every output the caller still holds is as it was returned."""
    monkeypatch.setattr(_compiled, "HALVES_TRAINING", True)  # forced on (see _compiled)
    with_recycling, held = _training_run(kind, sizes, interleaved)
    for array, step in zip(held, with_recycling):
        np.testing.assert_array_equal(array, step[0])
    monkeypatch.setattr(_compiled, "RECYCLED_MAX_BYTES", 0)
    _compiled.release_scratch()
    without, _ = _training_run(kind, sizes, interleaved)
    for got, expected in zip(with_recycling, without):
        assert len(got) == len(expected) == 2 + 8 * 2
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)
