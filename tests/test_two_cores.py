"""A batch-1 LSTM's time loop shared between two cores (``_pipeline.lstm_loop_on_two_cores``):
the same numbers as the one-core loop and the reference, whichever halves the units split into,
for inference and for the arrays a backward needs; and the caller never waits on an absent helper."""

import threading
import time

import numpy as np
import pytest

import lstmkit
from lstmkit.ops import _compiled, _pipeline, lstm_fused
from lstmkit.ops.lstm import LSTMWeights, lstm_forward
from lstmkit.ops.recurrence import input_projection

kernels = _compiled.compiled_kernels()
TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}


def _problem(dtype, steps, batch, features, hidden, with_bias=True):
    rng = np.random.default_rng(hidden)
    shapes = [(4 * hidden, features), (4 * hidden, hidden)] + [(4 * hidden,)] * (2 if with_bias else 0)
    weights = LSTMWeights(*(rng.uniform(-0.4, 0.4, shape).astype(dtype) for shape in shapes))
    x = rng.standard_normal((steps, batch, features)).astype(dtype)
    h0, c0 = (rng.standard_normal((batch, hidden)).astype(dtype) for _ in range(2))
    return x, h0, c0, weights


def _arrays(x, h0, c0, hidden, keep):
    steps, batch, _ = x.shape
    h = np.full((steps + 1, batch, hidden), np.nan, dtype=x.dtype)
    c = np.full((steps + 1 if keep else 2, batch, hidden), np.nan, dtype=x.dtype)
    tanh_c = np.full((steps if keep else 1, batch, hidden), np.nan, dtype=x.dtype)
    gates = np.full((steps if keep else 1, batch, 4 * hidden), np.nan, dtype=x.dtype)
    h[0], c[0] = h0, c0
    return h, c, tanh_c, gates


def _bias(weights):
    return None if weights.bias_ih is None else weights.bias_ih + weights.bias_hh


def _on_two_cores(x, weights, arrays):
    """Calls until the helper joins (the first call of a process may find it still starting)."""
    started = time.monotonic()
    while time.monotonic() - started < 60:
        if _pipeline.lstm_loop_on_two_cores(x, weights.weight_ih, _bias(weights), weights.weight_hh, *arrays):
            return
    pytest.fail("the helper thread did not join the two-core loop within a minute")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("keep", [True, False])
@pytest.mark.parametrize("steps,batch,features,hidden,with_bias", [
    (40, 1, 16, 128, True),  # halves of 64 units
    (9, 1, 3, 7, True),  # halves of 4 and 3 units
    (13, 3, 5, 10, False),  # several rows, no bias
    (5, 1, 2, 1, True),  # one unit: the helper's half is empty
])
def test_two_core_loop_equals_the_one_core_loop_and_the_reference(dtype, keep, steps, batch, features, hidden,
                                                                  with_bias, monkeypatch):
    monkeypatch.setattr(_pipeline, "CHUNK_MULTIPLY_ADDS", 4 * batch * features * 4 * hidden)  # chunks of 4 steps
    x, h0, c0, weights = _problem(dtype, steps, batch, features, hidden, with_bias)
    two = _arrays(x, h0, c0, hidden, keep)
    _on_two_cores(x, weights, two)
    one = _arrays(x, h0, c0, hidden, keep)
    gates = input_projection(x, weights.weight_ih, _bias(weights))
    kernels.lstm_loop_forward(gates, weights.weight_hh, *one[:3])
    if keep:
        one = (*one[:3], gates)
    for name, mine, theirs in zip(("h", "c", "tanh_c", "gates"), two, one):
        if name in ("tanh_c", "gates") and not keep:  # scratch space of one step when nothing is kept
            continue
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=TOLERANCE[dtype], err_msg=name)
    reference, h_n, c_n, _ = lstm_forward(x, h0, c0, weights, keep_cache=False)
    np.testing.assert_allclose(two[0][1:], reference, rtol=0, atol=TOLERANCE[dtype])
    np.testing.assert_allclose(two[1][steps % two[1].shape[0]], c_n, rtol=0, atol=TOLERANCE[dtype])


def test_the_caller_runs_alone_when_no_helper_joins():
    """A mailbox no helper reads: the caller stops waiting after its spins and computes nothing."""
    x, h0, c0, weights = _problem(np.float64, 6, 1, 3, 4)
    h, c, tanh_c, gates = _arrays(x, h0, c0, 4, keep=True)
    sync = np.zeros(32, dtype=np.int64)
    joined = kernels.lstm_loop_forward_lead(np.zeros(3, dtype=np.int64), 1000, x, weights.weight_ih, _bias(weights),
                                            weights.weight_hh, h, c, tanh_c, gates, sync, 2)
    assert not joined and np.isnan(h[1:]).all() and sync[kernels.SYNC_JOIN] == 1
    # the helper's part, were it to arrive now, finds JOIN taken and leaves at once
    kernels.lstm_loop_forward_second(x, weights.weight_ih, _bias(weights), weights.weight_hh, h, c, tanh_c, gates,
                                     sync, 2)
    assert np.isnan(h[1:]).all() and sync[kernels.SYNC_DONE] == 0


def test_one_core_machines_never_share_the_loop(monkeypatch):
    monkeypatch.setattr(_pipeline, "enabled", False)
    x, h0, c0, weights = _problem(np.float64, 6, 1, 3, 4)
    arrays = _arrays(x, h0, c0, 4, keep=True)
    assert not _pipeline.lstm_loop_on_two_cores(x, weights.weight_ih, _bias(weights), weights.weight_hh, *arrays)
    assert np.isnan(arrays[0][1:]).all()


def test_layer_gradients_are_the_same_on_two_cores(monkeypatch):
    """Training through the two-core forward: every gradient as with the one-core loop."""
    calls = []

    def spied(*arguments):
        calls.append(_pipeline.lstm_loop_on_two_cores(*arguments))
        return calls[-1]

    monkeypatch.setattr(lstm_fused, "lstm_loop_on_two_cores", spied)
    layer = lstmkit.LSTM(6, 9, num_layers=2, bidirectional=True, seed=3, dtype=np.float64)
    x = np.random.default_rng(4).standard_normal((40, 1, 6))
    doutput = np.random.default_rng(5).standard_normal((40, 1, 18))

    def gradients():
        layer.zero_grad()
        output, _ = layer(x)
        dx, _ = layer.backward(doutput)
        return [output, dx] + [p.grad.copy() for _, p in layer.named_parameters()]

    monkeypatch.setattr(_compiled, "TWO_CORE_MIN_HIDDEN", 1)
    monkeypatch.setattr(_compiled, "TWO_CORE_MIN_STEPS", 1)
    shared = gradients()
    for _ in range(20):  # until every layer-direction has run on two cores once
        if all(calls[-4:]):
            break
        shared = gradients()
    assert len(calls) >= 4 and all(calls[-4:])
    monkeypatch.setattr(_compiled, "TWO_CORE_MAX_BATCH", 0)
    count = len(calls)
    alone = gradients()
    assert len(calls) == count  # the one-core loop this time
    for mine, theirs in zip(shared, alone):
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-12)


def test_two_threads_calling_two_core_layers_at_once(monkeypatch):
    """Two callers, one helper: whichever caller the helper joins, the other runs alone; every
    output is the same as a call made alone."""
    monkeypatch.setattr(_compiled, "TWO_CORE_MIN_STEPS", 1)
    layer = lstmkit.LSTM(5, 128, seed=6, dtype=np.float64)
    x = np.random.default_rng(7).standard_normal((12, 1, 5))

    def run():
        with lstmkit.no_grad():
            return layer(x)[0]

    expected = run()
    results = [[], []]

    def calls(results):
        for _ in range(40):
            results.append(run())

    threads = [threading.Thread(target=calls, args=(mine,)) for mine in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results[0]) == len(results[1]) == 40
    for output in results[0] + results[1]:
        np.testing.assert_allclose(output, expected, rtol=0, atol=1e-12)
