"""A batch-1 layer's time loop shared between two cores (``_pipeline.loop_on_two_cores``), LSTM
and GRU: the same numbers as the one-core loop and the reference, whichever halves the units split
into, for inference and for the arrays a backward needs; and the caller never waits on an absent
helper."""

import threading
import time

import numpy as np
import pytest

import lstmkit
from lstmkit.ops import _compiled, _pipeline, gru_fused, lstm_fused
from lstmkit.ops.gru import GRUWeights, _hoisted_bias, gru_forward
from lstmkit.ops.lstm import LSTMWeights, lstm_forward
from lstmkit.ops.recurrence import input_projection

kernels = _compiled.compiled_kernels()
TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}
GATES = {"LSTM": 4, "GRU": 3}


def _problem(kind, dtype, steps, batch, features, hidden, with_bias=True):
    rng = np.random.default_rng(hidden)
    rows = GATES[kind] * hidden
    shapes = [(rows, features), (rows, hidden)] + [(rows,)] * (2 if with_bias else 0)
    kind_of_weights = LSTMWeights if kind == "LSTM" else GRUWeights
    weights = kind_of_weights(*(rng.uniform(-0.4, 0.4, shape).astype(dtype) for shape in shapes))
    x = rng.standard_normal((steps, batch, features)).astype(dtype)
    h0, c0 = (rng.standard_normal((batch, hidden)).astype(dtype) for _ in range(2))
    return x, h0, c0, weights


def _projection_bias(kind, weights):
    """The bias that joins the input projection: b_ih + b_hh (LSTM), b_ih + [b_hr, b_hz, 0] (GRU)."""
    if kind == "GRU":
        return _hoisted_bias(weights)
    return None if weights.bias_ih is None else weights.bias_ih + weights.bias_hh


def _states(kind, x, h0, c0, weights, keep):
    """The arrays the loop writes, NaN but for the initial state: (h, c, tanh_c, gates) of an
    LSTM, (bias_hn, h, hidden_n, gates) of a GRU."""
    steps, batch, _ = x.shape
    hidden = h0.shape[1]

    def empty(count, width=hidden):
        return np.full((count, batch, width), np.nan, dtype=x.dtype)

    h, gates = empty(steps + 1), empty(steps if keep else 1, GATES[kind] * hidden)
    h[0] = h0
    if kind == "GRU":
        bias_hn = np.zeros(hidden, x.dtype) if weights.bias_hh is None else weights.bias_hh[2 * hidden:]
        return bias_hn, h, empty(steps if keep else 1), gates
    c = empty(steps + 1 if keep else 2)
    c[0] = c0
    return h, c, empty(steps if keep else 1), gates


def _two_core_call(kind, x, weights, states):
    prefix = kind.lower()
    lead, second = getattr(kernels, f"{prefix}_loop_forward_lead"), getattr(kernels, f"{prefix}_loop_forward_second")
    return _pipeline.loop_on_two_cores(lead, second, x, weights.weight_ih, _projection_bias(kind, weights),
                                       weights.weight_hh, *states)


def _on_two_cores(kind, x, h0, c0, weights, keep):
    """The states of a call the helper joined (the first call of a process may find it still
    starting), each attempt on fresh ones: a call the helper missed has written them whole, and an
    LSTM's c of two steps (``keep`` False) no longer holds c_0 after it."""
    started = time.monotonic()
    while time.monotonic() - started < 60:
        states = _states(kind, x, h0, c0, weights, keep)
        if _two_core_call(kind, x, weights, states):
            return states
    pytest.fail("the helper thread did not join the two-core loop within a minute")


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("keep", [True, False])
@pytest.mark.parametrize("steps,batch,features,hidden,with_bias", [
    (40, 1, 16, 128, True),  # halves of 64 units
    (9, 1, 3, 7, True),  # halves of 4 and 3 units
    (13, 3, 5, 10, False),  # several rows, no bias
    (11, 1, 9, 37, True),  # halves of 19 and 18 units: neither a whole number of vectors
    (5, 1, 2, 1, True),  # one unit: the helper's half is empty
])
def test_two_core_loop_equals_the_one_core_loop_and_the_reference(kind, dtype, keep, steps, batch, features, hidden,
                                                                  with_bias, monkeypatch):
    width = GATES[kind] * hidden
    monkeypatch.setattr(_pipeline, "CHUNK_MULTIPLY_ADDS", 4 * batch * features * width)  # chunks of 4 steps
    x, h0, c0, weights = _problem(kind, dtype, steps, batch, features, hidden, with_bias)
    two = _on_two_cores(kind, x, h0, c0, weights, keep)
    one = _states(kind, x, h0, c0, weights, keep)
    gates = input_projection(x, weights.weight_ih, _projection_bias(kind, weights))
    if kind == "LSTM":
        kernels.lstm_loop_forward(gates, weights.weight_hh, *one[:3])
        names, reference = ("h", "c", "tanh_c", "gates"), lstm_forward(x, h0, c0, weights, keep_cache=False)
    else:
        kernels.gru_loop_forward(gates, weights.weight_hh, *one[:3])
        names, reference = ("bias_hn", "h", "hidden_n", "gates"), gru_forward(x, h0, weights, keep_cache=False)
    one = (*one[:3], gates)
    for name, mine, theirs in zip(names, two, one):
        if name in ("tanh_c", "hidden_n", "gates") and not keep:  # scratch space of one step when nothing is kept
            continue
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=TOLERANCE[dtype], err_msg=name)
    h = two[names.index("h")]
    np.testing.assert_allclose(h[1:], reference[0], rtol=0, atol=TOLERANCE[dtype])
    if kind == "LSTM":
        c = two[1]
        np.testing.assert_allclose(c[steps % c.shape[0]], reference[2], rtol=0, atol=TOLERANCE[dtype])


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_caller_runs_both_halves_when_no_helper_joins(kind, dtype, monkeypatch):
    """A mailbox no helper reads: the caller stops waiting after its spins and runs both halves
    itself, every output bit for bit as when the helper ran one; the helper's part, were it to
    arrive then, finds JOIN taken and leaves at once."""
    monkeypatch.setattr(_pipeline, "CHUNK_MULTIPLY_ADDS", 1)  # several chunks
    x, h0, c0, weights = _problem(kind, dtype, 40, 1, 5, 37, True)
    shared = _on_two_cores(kind, x, h0, c0, weights, keep=True)
    alone = _states(kind, x, h0, c0, weights, keep=True)
    prefix, bias = kind.lower(), _projection_bias(kind, weights)
    arguments = (x, weights.weight_ih, bias, weights.weight_hh, *alone, _pipeline.exchange_buffer(1, 37, dtype))
    sync, chunk = np.zeros(32, dtype=np.int64), _pipeline.chunk_steps(1, 5, weights.weight_ih.shape[0])
    joined = getattr(kernels, f"{prefix}_loop_forward_lead")(np.zeros(3, dtype=np.int64), 1000, *arguments, sync,
                                                               chunk)
    assert not joined and sync[kernels.SYNC_JOIN] == 1
    for mine, theirs in zip(alone, shared):
        np.testing.assert_array_equal(mine, theirs)
    before = [array.copy() for array in alone]
    getattr(kernels, f"{prefix}_loop_forward_second")(*arguments, sync, chunk)
    assert sync[kernels.SYNC_DONE] == 0 and all(np.array_equal(a, b, equal_nan=True) for a, b in zip(alone, before))


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_one_core_machines_never_share_the_loop(kind, monkeypatch):
    monkeypatch.setattr(_pipeline, "enabled", False)
    x, h0, c0, weights = _problem(kind, np.float64, 6, 1, 3, 4)
    states = _states(kind, x, h0, c0, weights, keep=True)
    assert not _two_core_call(kind, x, weights, states)
    assert np.isnan(states[0 if kind == "LSTM" else 1][1:]).all()


@pytest.mark.parametrize("kind,fused", [("LSTM", lstm_fused), ("GRU", gru_fused)])
def test_layer_gradients_are_the_same_on_two_cores(kind, fused, monkeypatch):
    """Training through the two-core forward: every gradient as with the one-core loop."""
    calls = []

    def spied(*arguments):
        calls.append(_pipeline.loop_on_two_cores(*arguments))
        return calls[-1]

    monkeypatch.setattr(fused, "loop_on_two_cores", spied)
    layer = getattr(lstmkit, kind)(6, 9, num_layers=2, bidirectional=True, seed=3, dtype=np.float64)
    x = np.random.default_rng(4).standard_normal((40, 1, 6))
    doutput = np.random.default_rng(5).standard_normal((40, 1, 18))

    def gradients():
        layer.zero_grad()
        output, _ = layer(x)
        dx, _ = layer.backward(doutput)
        return [output, dx] + [p.grad.copy() for _, p in layer.named_parameters()]

    monkeypatch.setattr(_compiled, "TWO_CORE_MIN_WEIGHTS", 1)
    monkeypatch.setattr(_compiled, "TWO_CORE_MIN_STEPS", 1)
    shared = gradients()
    for _ in range(200):  # until every layer-direction runs on two cores in one call (a busy machine delays the helper)
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


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_two_threads_calling_two_core_layers_at_once(kind, monkeypatch):
    """Two callers, one helper: whichever caller the helper joins, the other runs alone; every
    output is the same as a call made alone."""
    monkeypatch.setattr(_compiled, "TWO_CORE_MIN_STEPS", 1)
    monkeypatch.setattr(_compiled, "TWO_CORE_MIN_WEIGHTS", 1)
    layer = getattr(lstmkit, kind)(5, 128, seed=6, dtype=np.float64)
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
