"""A consumed cache's backward-only arrays serve the next training forward (fused.memory.recycle_cache):
handed out once, to a forward of their shape and dtype, never the output; results as without."""

import numpy as np
import pytest
from test_fast_paths import random_problem

import lstmkit
from lstmkit._openblas import WORKERS_SLEEP_SOON
from lstmkit.ops.fused import memory
from lstmkit.ops.fused.gru import gru_forward_fused
from lstmkit.ops.fused.lstm import lstm_forward_fused
from lstmkit.ops.fused.plan import choose_plan


@pytest.fixture(autouse=True)
def empty_pool():
    memory.release_scratch()
    yield
    memory.release_scratch()


def _lstm_cache(seed=0, sizes=(7, 4, 5, 6), dtype=np.float32):
    x, h0, c0, weights, _ = random_problem(np.random.default_rng(seed), dtype, True, sizes)
    return lstm_forward_fused(x, h0, c0, weights)[3]


def test_recycled_arrays_serve_one_forward_of_their_shape_and_dtype():
    first = _lstm_cache()
    memory.recycle_cache(first)
    memory.recycle_cache(first)  # handed back twice: still served once
    second = _lstm_cache(seed=1)
    assert second.c is first.c and second.gates is first.gates and second.tanh_c is first.tanh_c
    memory.recycle_cache(first)  # then the state shape drawn till the pool has none: c, never h (the output)
    drawn = [memory.cache_empty(first.h.shape, np.float32) for _ in range(3)]
    assert drawn[0] is first.c and not any(np.shares_memory(array, first.h) for array in drawn)
    memory.release_scratch()
    third = _lstm_cache(seed=2)
    assert not any(np.shares_memory(getattr(third, f), getattr(second, f)) for f in ("c", "gates", "tanh_c"))
    memory.recycle_cache(third)
    other_shape = _lstm_cache(sizes=(8, 4, 5, 6))
    other_dtype = _lstm_cache(dtype=np.float64)
    for cache in (other_shape, other_dtype):
        assert not any(np.shares_memory(getattr(cache, f), third.gates) for f in ("c", "gates", "tanh_c"))
    assert _lstm_cache().gates is third.gates  # still there for its own shape


def test_gru_recycles_its_gates_and_hidden_n():
    x, h0, _, _, _ = random_problem(np.random.default_rng(3), np.float32, True, (6, 3, 4, 5))
    weights = lstmkit.GRU(4, 5, seed=0)._weights(0, 0)
    first = gru_forward_fused(x, h0, weights)[2]
    memory.recycle_cache(first)
    second = gru_forward_fused(x, h0, weights)[2]
    assert second.gates is first.gates and second.hidden_n is first.hidden_n and second.h is not first.h


def test_the_pool_drops_its_oldest_arrays_past_its_limit_and_on_release():
    first, second = _lstm_cache(seed=0), _lstm_cache(seed=1)
    bytes_each = sum(getattr(first, f).nbytes for f in first.RECYCLED)
    memory.recycle_cache(first, max_bytes=bytes_each)
    memory.recycle_cache(second, max_bytes=bytes_each)  # first's arrays go
    served = [_lstm_cache(seed=k) for k in range(2)]
    assert served[0].gates is second.gates and served[1].gates is not first.gates
    memory.recycle_cache(served[0])
    memory.release_scratch()
    assert _lstm_cache().gates is not served[0].gates


def _training_run(kind, sizes, interleaved, recycling=True):
    """Three training steps of a fresh two-layer bidirectional layer (steps 0 and 1 both forward
    before their backwards, last in first out, where ``interleaved``): per step, the output as
    returned (a copy), the input's and the parameters' gradients; and the outputs as the caller
    holds them at the end. Without ``recycling``, the pool is emptied before every forward, so that
    no forward is served a recycled array."""
    steps, batch, features, hidden = sizes
    layer = kind(features, hidden, num_layers=2, bidirectional=True, seed=0)
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal((steps, batch, features)).astype(np.float32) for _ in range(3)]
    upstream = [rng.standard_normal((steps, batch, 2 * hidden)).astype(np.float32) for _ in range(3)]
    outputs, results = {}, {}
    for group in ([0, 1], [2]) if interleaved else ([0], [1], [2]):
        for k in group:
            if not recycling:
                memory.release_scratch()
            outputs[k] = layer(inputs[k])[0]
        for k in reversed(group):
            layer.zero_grad()
            dx = layer.backward(upstream[k])[0]
            results[k] = [outputs[k].copy(), dx] + [p.grad.copy() for _, p in layer.named_parameters()]
    return [results[k] for k in range(3)], [outputs[k] for k in range(3)]


@pytest.mark.parametrize("kind", [lstmkit.LSTM, lstmkit.GRU])
@pytest.mark.parametrize(
    "sizes",
    [(9, 3, 4, 5), (5, 40, 8, 48), (40, 1, 3, 128), (10, 17, 6, 40)],
    ids=["compiled loops", "python loops", "forward on two cores", "LSTM on batch halves"],
)
@pytest.mark.parametrize("interleaved", [False, True])
def test_training_steps_with_recycling_equal_those_without(kind, sizes, interleaved):
    """Bit for bit, and every output the caller still holds is as it was returned."""
    if kind is lstmkit.LSTM and sizes == (10, 17, 6, 40):  # the default plan runs it on halves where it may
        on_halves = choose_plan(10, 17, 6, 40, 4, True, True).forward == "halves"
        assert on_halves == WORKERS_SLEEP_SOON  # else the compiled loops, which "compiled loops" covers too
    with_recycling, held = _training_run(kind, sizes, interleaved)
    for array, step in zip(held, with_recycling):
        np.testing.assert_array_equal(array, step[0])
    memory.release_scratch()
    without, _ = _training_run(kind, sizes, interleaved, recycling=False)
    for got, expected in zip(with_recycling, without):
        assert len(got) == len(expected) == 2 + 8 * 2
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)
