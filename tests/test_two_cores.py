"""A batch-1 layer's time loop shared between two cores (``ops/fused/helper.loop_on_two_cores``), LSTM
and GRU: the same numbers as the one-core loop and the reference, whichever halves the units split
into, for inference and for the arrays a backward needs; and the caller never waits on an absent
helper."""

import threading
import time

import numpy as np
import pytest

import lstmkit
from lstmkit.ops.fused import helper as helpers
from lstmkit.ops.fused.compiled import compiled_kernels
from lstmkit.ops.fused.gru import gru_backward_fused, gru_forward_fused
from lstmkit.ops.fused.lstm import lstm_backward_fused, lstm_forward_fused
from lstmkit.ops.fused.plan import Plan, choose_plan
from lstmkit.ops.gru import GRUWeights, gru_forward, hoisted_bias
from lstmkit.ops.lstm import LSTMWeights, lstm_forward
from lstmkit.ops.recurrence import input_projection

kernels = compiled_kernels()
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
        return hoisted_bias(weights)
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
        bias_hn = np.zeros(hidden, x.dtype) if weights.bias_hh is None else weights.bias_hh[2 * hidden :]
        return bias_hn, h, empty(steps if keep else 1), gates
    c = empty(steps + 1 if keep else 2)
    c[0] = c0
    return h, c, empty(steps if keep else 1), gates


def _two_core_call(kind, x, weights, states, chunk, helper=helpers.PROCESS_HELPER):
    prefix = kind.lower()
    lead, second = getattr(kernels, f"{prefix}_loop_forward_lead"), getattr(kernels, f"{prefix}_loop_forward_second")
    projection = (weights.weight_ih, _projection_bias(kind, weights), weights.weight_hh)
    return helpers.loop_on_two_cores((lead, second), x, projection, states, chunk, helpers.resolve_helper(helper))


def _on_two_cores(kind, x, h0, c0, weights, keep, chunk):
    """The states of a call the helper joined (the first call of a process may find it still
    starting), each attempt on fresh ones: a call the helper missed has written them whole, and an
    LSTM's c of two steps (``keep`` False) no longer holds c_0 after it."""
    started = time.monotonic()
    while time.monotonic() - started < 60:
        states = _states(kind, x, h0, c0, weights, keep)
        if _two_core_call(kind, x, weights, states, chunk):
            return states
    pytest.fail("the helper thread did not join the two-core loop within a minute")


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("keep", [True, False])
@pytest.mark.parametrize(
    "steps,batch,features,hidden,with_bias",
    [
        (40, 1, 16, 128, True),  # halves of 64 units
        (9, 1, 3, 7, True),  # halves of 4 and 3 units
        (13, 3, 5, 10, False),  # several rows, no bias
        (11, 1, 9, 37, True),  # halves of 19 and 18 units: neither a whole number of vectors
        (5, 1, 2, 1, True),  # one unit: the helper's half is empty
    ],
)
def test_two_core_loop_equals_the_one_core_loop_and_the_reference(
    kind, dtype, keep, steps, batch, features, hidden, with_bias
):
    x, h0, c0, weights = _problem(kind, dtype, steps, batch, features, hidden, with_bias)
    two = _on_two_cores(kind, x, h0, c0, weights, keep, chunk=4)
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
def test_the_caller_runs_both_halves_when_no_helper_joins(kind, dtype):
    """A mailbox no helper reads: the caller stops waiting after its spins and runs both halves
    itself, every output bit for bit as when the helper ran one; the helper's part, were it to
    arrive then, finds JOIN taken and leaves at once."""
    x, h0, c0, weights = _problem(kind, dtype, 40, 1, 5, 37, True)
    shared = _on_two_cores(kind, x, h0, c0, weights, keep=True, chunk=1)  # several chunks
    alone = _states(kind, x, h0, c0, weights, keep=True)
    prefix, bias = kind.lower(), _projection_bias(kind, weights)
    arguments = (x, weights.weight_ih, bias, weights.weight_hh, *alone, helpers.exchange_buffer(1, 37, dtype))
    sync, chunk = np.zeros(32, dtype=np.int64), 1
    joined = getattr(kernels, f"{prefix}_loop_forward_lead")(np.zeros(3, dtype=np.int64), 1000, *arguments, sync, chunk)
    assert not joined and sync[kernels.SYNC_JOIN] == 1
    for mine, theirs in zip(alone, shared):
        np.testing.assert_array_equal(mine, theirs)
    before = [array.copy() for array in alone]
    getattr(kernels, f"{prefix}_loop_forward_second")(*arguments, sync, chunk)
    assert sync[kernels.SYNC_DONE] == 0 and all(np.array_equal(a, b, equal_nan=True) for a, b in zip(alone, before))


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_without_a_helper_the_caller_runs_both_parts(kind):
    """No helper (one core, or switched off): the caller runs both parts in turn, the numbers bit
    for bit those of a call the helper joined."""
    x, h0, c0, weights = _problem(kind, np.float64, 36, 1, 3, 20)
    shared = _on_two_cores(kind, x, h0, c0, weights, keep=True, chunk=5)
    alone = _states(kind, x, h0, c0, weights, keep=True)
    assert not _two_core_call(kind, x, weights, alone, 5, helper=None)
    for mine, theirs in zip(alone, shared):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_training_gradients_are_the_same_on_two_cores(kind):
    """Training through the two-core forward: every gradient bit for bit as with the one-core loop
    (the backward is the one-core compiled loop in both), call after call."""
    x, h0, c0, weights = _problem(kind, np.float64, 40, 1, 6, 9)
    rng = np.random.default_rng(5)
    doutput, dh, dc = rng.standard_normal((40, 1, 9)), rng.standard_normal((1, 9)), rng.standard_normal((1, 9))

    def gradients(plan):
        if kind == "LSTM":
            output, _, _, cache = lstm_forward_fused(x, h0, c0, weights, plan=plan)
            dx, dh0, dc0, dweights = lstm_backward_fused(doutput, dh, dc, cache)
            return [output, dx, dh0, dc0, *(w for w in dweights if w is not None)]
        output, _, cache = gru_forward_fused(x, h0, weights, plan=plan)
        dx, dh0, dweights = gru_backward_fused(doutput, dh, cache)
        return [output, dx, dh0, *(w for w in dweights if w is not None)]

    alone = gradients(Plan("compiled", "compiled"))
    for _ in range(5):
        for mine, theirs in zip(gradients(Plan("two_cores", "compiled", chunk_steps=7)), alone):
            np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_two_threads_calling_two_core_layers_at_once(kind):
    """Two callers, one helper: whichever caller the helper joins, the other runs alone; every
    output is the same as a call made alone."""
    layer = getattr(lstmkit, kind)(5, 128, seed=6, dtype=np.float64)
    x = np.random.default_rng(7).standard_normal((40, 1, 5))
    helper_runs = helpers.helper_thread_enabled()
    assert choose_plan(40, 1, 5, 128, GATES[kind], False, helper_runs).forward == (
        "two_cores" if helper_runs else "compiled"
    )  # the default plan of this call

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
