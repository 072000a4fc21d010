"""Fast paths equal the reference ops they replace, on random inputs (float64 to 1e-12, float32 to 1e-5)."""

import itertools
import threading

import numpy as np
import pytest

from lstmkit.ops.fused import memory
from lstmkit.ops.fused.gru import FusedGRUCache, gru_backward_fused, gru_forward_fused
from lstmkit.ops.fused.lstm import FusedLSTMCache, HalvesLSTMCache, lstm_backward_fused, lstm_forward_fused
from lstmkit.ops.fused.plan import Plan
from lstmkit.ops.gru import GRUWeights, gru_backward, gru_forward
from lstmkit.ops.lstm import LSTMWeights, lstm_backward, lstm_forward
from lstmkit.ops.recurrence import GateDropout

SIZES = [(1, 1, 3, 2), (7, 4, 5, 6), (30, 9, 16, 32), (5, 20, 8, 64), (12, 2, 5, 7)]
CASES = list(itertools.product([np.float64, np.float32], [True, False], SIZES))


def _backward(training, loop="compiled"):
    return loop if training else None


# Every loop of the fast ops, as an explicit plan: (sizes, kind, training) -> Plan.
LOOPS = {
    "compiled loop": lambda sizes, kind, training: Plan(
        "compiled", _backward(training), transposed_weight=sizes[3] <= 128
    ),
    "compiled loop, projection pipelined": lambda sizes, kind, training: Plan(
        "compiled", _backward(training), pipelined=True, chunk_steps=1
    ),
    "compiled loop, forward on W_hh as stored": lambda sizes, kind, training: Plan(
        "compiled", _backward(training), transposed_weight=False
    ),
    "compiled forward, BLAS backward": lambda sizes, kind, training: Plan("compiled", _backward(training, "blas")),
    "BLAS loop": lambda sizes, kind, training: Plan(
        "batch_last" if kind == "LSTM" and not training else "blas", _backward(training, "blas")
    ),
    "BLAS loop, inference batch first": lambda sizes, kind, training: Plan("blas", _backward(training, "blas")),
    "two cores": lambda sizes, kind, training: Plan("two_cores", _backward(training), chunk_steps=2),
    "batch halves": lambda sizes, kind, training: (
        Plan("halves", _backward(training, "halves"))
        if kind == "LSTM" and sizes[1] >= 2
        else Plan("compiled", _backward(training, "blas"))
    ),
}


@pytest.fixture(params=list(LOOPS))
def loop(request):
    """Each fast path every way, through explicit plans: the whole time loop compiled (its input
    projection one BLAS product, or computed beside the loop a step at a time; W_hh read
    transposed or as stored), BLAS called per step (inference batch last or batch first), the
    forward compiled with the backward calling BLAS, a loop on two cores (half of the units each),
    and an LSTM's inference and training on two cores, half of the batch each."""
    return request.param


def plan_of(loop, sizes, kind, training):
    return LOOPS[loop](sizes, kind, training)


def random_problem(rng, dtype, bias, sizes):
    steps, batch, features, hidden = sizes
    shapes = [(4 * hidden, features), (4 * hidden, hidden)] + ([(4 * hidden,), (4 * hidden,)] if bias else [])
    scale = 1.5 / np.sqrt(hidden)  # pre-activations of a few units, some gates saturated
    weights = LSTMWeights(*((rng.standard_normal(shape) * scale).astype(dtype) for shape in shapes))
    x = rng.standard_normal((steps, batch, features)).astype(dtype) * 2
    h0, c0 = (rng.standard_normal((batch, hidden)).astype(dtype) for _ in range(2))
    shapes = [(steps, batch, hidden), (batch, hidden), (batch, hidden)]
    upstream = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    return x, h0, c0, weights, upstream


def assert_equal_within(actual, expected, dtype):
    tolerance = 1e-12 if dtype == np.float64 else 1e-5 * max(1.0, float(np.max(np.abs(expected))))
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    assert float(np.max(np.abs(actual - expected))) <= tolerance


@pytest.mark.parametrize("dtype,bias,sizes", CASES)
def test_fused_lstm_equals_reference(dtype, bias, sizes, loop):
    x, h0, c0, weights, (dout, dh, dc) = random_problem(np.random.default_rng(sum(sizes)), dtype, bias, sizes)
    expected = lstm_forward(x, h0, c0, weights)
    actual = lstm_forward_fused(x, h0, c0, weights, plan=plan_of(loop, sizes, "LSTM", True))
    assert isinstance(actual[3], HalvesLSTMCache if loop == "batch halves" and sizes[1] >= 2 else FusedLSTMCache)
    for a, e in zip(actual[:3], expected[:3]):
        assert_equal_within(a, e, dtype)
    inference = lstm_forward_fused(x, h0, c0, weights, keep_cache=False, plan=plan_of(loop, sizes, "LSTM", False))
    assert inference[3] is None
    for a, e in zip(inference[:3], expected[:3]):
        assert_equal_within(a, e, dtype)
    expected_grads = lstm_backward(dout, dh, dc, expected[3])
    actual_grads = lstm_backward_fused(dout, dh, dc, actual[3])
    for a, e in zip(actual_grads[:3], expected_grads[:3]):
        assert_equal_within(a, e, dtype)
    for a, e in zip(actual_grads[3], expected_grads[3]):
        assert (a is None) == (e is None)
        if a is not None:
            assert_equal_within(a, e, dtype)


def test_fused_path_hands_projection_and_lengths_to_the_reference():
    rng = np.random.default_rng(0)
    x, h0, c0, weights, (dout, dh, dc) = random_problem(rng, np.float64, True, (5, 3, 4, 6))
    projected = weights._replace(weight_hr=rng.standard_normal((2, 6)), weight_hh=rng.standard_normal((24, 2)))
    h0_projected = h0[:, :2]
    output, *_, cache = lstm_forward_fused(x, h0_projected, c0, projected)
    assert not isinstance(cache, FusedLSTMCache)
    np.testing.assert_array_equal(output, lstm_forward(x, h0_projected, c0, projected)[0])
    batch_sizes = np.array([3, 3, 2, 1, 1])
    output, *_, cache = lstm_forward_fused(x, h0, c0, weights, batch_sizes=batch_sizes)
    assert not isinstance(cache, FusedLSTMCache)
    np.testing.assert_array_equal(output, lstm_forward(x, h0, c0, weights, batch_sizes=batch_sizes)[0])


def random_gru_problem(rng, dtype, bias, sizes):
    steps, batch, features, hidden = sizes
    shapes = [(3 * hidden, features), (3 * hidden, hidden)] + ([(3 * hidden,), (3 * hidden,)] if bias else [])
    weights = GRUWeights(*((rng.standard_normal(shape) * 1.5 / np.sqrt(hidden)).astype(dtype) for shape in shapes))
    x = rng.standard_normal((steps, batch, features)).astype(dtype) * 2
    h0 = rng.standard_normal((batch, hidden)).astype(dtype)
    upstream = [rng.standard_normal(shape).astype(dtype) for shape in [(steps, batch, hidden), (batch, hidden)]]
    return x, h0, weights, upstream


@pytest.mark.parametrize("dtype,bias,sizes", CASES)
def test_fused_gru_equals_reference(dtype, bias, sizes, loop):
    x, h0, weights, (dout, dh) = random_gru_problem(np.random.default_rng(sum(sizes) + 1), dtype, bias, sizes)
    expected = gru_forward(x, h0, weights)
    actual = gru_forward_fused(x, h0, weights, plan=plan_of(loop, sizes, "GRU", True))
    assert isinstance(actual[2], FusedGRUCache)
    inference = gru_forward_fused(x, h0, weights, keep_cache=False, plan=plan_of(loop, sizes, "GRU", False))
    assert inference[2] is None
    for a, b, e in zip(actual[:2], inference[:2], expected[:2]):
        assert_equal_within(a, e, dtype)
        assert_equal_within(b, e, dtype)
    expected_grads = gru_backward(dout, dh, expected[2])
    actual_grads = gru_backward_fused(dout, dh, actual[2])
    for a, e in zip(actual_grads[:2], expected_grads[:2]):
        assert_equal_within(a, e, dtype)
    for a, e in zip(actual_grads[2], expected_grads[2]):
        assert (a is None) == (e is None)
        if a is not None:
            assert_equal_within(a, e, dtype)


def test_fused_gru_hands_lengths_and_dropout_to_the_reference():
    rng = np.random.default_rng(1)
    x, h0, weights, _ = random_gru_problem(rng, np.float64, True, (5, 3, 4, 6))
    batch_sizes = np.array([3, 3, 2, 1, 1])
    dropout = GateDropout(None, rng.choice([0.0, 2.0], size=(3, 3, 6)))
    for options in ({"batch_sizes": batch_sizes}, {"dropout": dropout}):
        output, _, cache = gru_forward_fused(x, h0, weights, **options)
        assert not isinstance(cache, FusedGRUCache)
        np.testing.assert_array_equal(output, gru_forward(x, h0, weights, **options)[0])


EXTREMES_SIZES = (6, 3, 4, 5)


def _problem_with_extremes(kind, dtype):
    """Inputs with ±1e30 in two rows and a NaN in a third."""
    rng = np.random.default_rng(3)
    if kind == "LSTM":
        x, h0, c0, weights, upstream = random_problem(rng, dtype, True, EXTREMES_SIZES)
        state = (h0, c0)
    else:
        x, h0, weights, upstream = random_gru_problem(rng, dtype, True, EXTREMES_SIZES)
        state = (h0,)
    x[1, 0] = dtype(1e30)
    x[2, 1] = dtype(-1e30)
    x[3, 2, 0] = np.nan
    return x, state, weights, upstream


REFERENCE = {
    "LSTM": (lstm_forward, lstm_backward, lstm_forward_fused, lstm_backward_fused),
    "GRU": (gru_forward, gru_backward, gru_forward_fused, gru_backward_fused),
}


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_and_nan_inputs_behave_as_the_reference(kind, dtype, loop):
    """Huge pre-activations saturate exactly as the reference's (no overflow, no NaN); a NaN
    in the input stays NaN wherever it reaches, forward and backward, as in NumPy and torch."""
    forward, backward, forward_fused, backward_fused = REFERENCE[kind]
    x, state, weights, upstream = _problem_with_extremes(kind, dtype)
    with np.errstate(over="raise", divide="raise"):  # no overflow in the reference either
        expected = forward(x, *state, weights)
    actual = forward_fused(x, *state, weights, plan=plan_of(loop, EXTREMES_SIZES, kind, True))
    expected_grads = backward(*upstream[: len(state) + 1], expected[-1])
    actual_grads = backward_fused(*upstream[: len(state) + 1], actual[-1])
    assert np.isnan(actual[0][3:, 2]).all() and not np.isnan(actual[0][:, :2]).any()
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    pairs = list(zip(actual[:-1], expected[:-1])) + list(zip(actual_grads[:-1], expected_grads[:-1]))
    pairs += [(a, e) for a, e in zip(actual_grads[-1], expected_grads[-1]) if a is not None]
    for a, e in pairs:
        np.testing.assert_array_equal(np.isnan(a), np.isnan(e))
        finite = ~np.isnan(e)
        scale = max(1.0, float(np.max(np.abs(e[finite]), initial=0.0)))
        assert float(np.max(np.abs(a[finite] - e[finite]), initial=0.0)) <= tolerance * scale


def test_mixed_dtypes_go_to_the_reference():
    rng = np.random.default_rng(4)
    x, h0, c0, weights, _ = random_problem(rng, np.float32, True, (4, 2, 3, 5))
    mixed = weights._replace(weight_hh=weights.weight_hh.astype(np.float64))
    output, *_, cache = lstm_forward_fused(x, h0, c0, mixed)
    assert not isinstance(cache, FusedLSTMCache)
    np.testing.assert_array_equal(output, lstm_forward(x, h0, c0, mixed)[0])


@pytest.mark.parametrize("sizes", [(1, 3, 4, 5), (6, 1, 4, 5), (6, 3, 4, 1)])
@pytest.mark.parametrize("bias", [True, False])
def test_batch_last_inference_matches_the_reference_at_the_edges(sizes, bias):
    """One step, one row, one unit, and initial states of another dtype: the batch-last loop of a
    large layer's inference returns what the batch-first loop and the reference do, in x's dtype."""
    x, h0, c0, weights, _ = random_problem(np.random.default_rng(sum(sizes)), np.float32, bias, sizes)
    h0 = h0.astype(np.float64)
    batch_last = lstm_forward_fused(x, h0, c0, weights, keep_cache=False, plan=Plan("batch_last", None))
    batch_first = lstm_forward_fused(x, h0, c0, weights, keep_cache=False, plan=Plan("blas", None))
    reference = lstm_forward(x, h0.astype(np.float32), c0, weights, keep_cache=False)
    for a, b, e in zip(batch_last[:3], batch_first[:3], reference[:3]):
        assert a.dtype == b.dtype == np.float32 and a.shape == b.shape == e.shape
        assert float(np.max(np.abs(a - b), initial=0.0)) <= 1e-6
        assert float(np.max(np.abs(a - e), initial=0.0)) <= 1e-5


def test_plans_that_do_not_fit_the_call_are_refused():
    x, h0, c0, weights, _ = random_problem(np.random.default_rng(0), np.float32, True, (3, 2, 4, 5))
    with pytest.raises(ValueError, match="batch-last plan keeps no cache"):
        lstm_forward_fused(x, h0, c0, weights, plan=Plan("batch_last", None))
    gru_x, gru_h0, gru_weights, _ = random_gru_problem(np.random.default_rng(0), np.float32, True, (3, 2, 4, 5))
    with pytest.raises(ValueError, match="a GRU runs the 'compiled', 'two_cores' or 'blas' loop"):
        gru_forward_fused(gru_x, gru_h0, gru_weights, plan=Plan("halves", "halves"))
    with pytest.raises(ValueError, match="Plan: forward must be one of"):
        Plan("fastest", None)
    with pytest.raises(ValueError, match="a backward on halves goes with a forward on halves"):
        Plan("compiled", "halves")


NO_NUMBA = """
import sys, warnings
sys.modules["numba"] = None  # import numba now raises ImportError
import numpy as np
import lstmkit
from lstmkit.ops.lstm import lstm_forward
layer = lstmkit.LSTM(3, 4, seed=0)
x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    output, (h_n, c_n) = layer(x)
assert any("Numba could not be imported" in str(w.message) for w in caught), [str(w.message) for w in caught]
zeros = np.zeros((2, 4), np.float32)
np.testing.assert_array_equal(output, lstm_forward(x, zeros, zeros, layer._weights(0, 0))[0])
"""


def test_without_numba_the_layers_run_the_reference_and_warn():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", NO_NUMBA], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "field,shape,message",
    [
        ("input", (5, 3), r"dropout.input must have shape \(K, 5, 3\) with K in \[1, 4\]"),
        ("input", (2, 5, 3), r"with K in \[1, 4\] \(one mask, or one per gate\), got shape \(2, 5, 3\)"),
        ("recurrent", (4, 5, 7), r"dropout.recurrent must have shape \(K, 5, 6\)"),
    ],
)
def test_gate_dropout_of_the_wrong_shape_is_refused(field, shape, message):
    rng = np.random.default_rng(5)
    x, h0, c0, weights, _ = random_problem(rng, np.float64, True, (4, 5, 3, 6))
    dropout = GateDropout(**{field: np.ones(shape)})
    with pytest.raises(ValueError, match=message):
        lstm_forward(x, h0, c0, weights, dropout=dropout)


def test_float32_tanh_approximation_within_3e7_of_the_true_tanh():
    from lstmkit.ops.fused.kernels import tanh_approx as _tanh_approx

    points = np.concatenate([np.linspace(-12, 12, 20001), [0.0, 1e-30, -1e-30, 1e30, -1e30]]).astype(np.float32)
    approximation = np.array([_tanh_approx(value) for value in points], dtype=np.float64)
    assert float(np.max(np.abs(approximation - np.tanh(points.astype(np.float64))))) <= 3e-7
    assert abs(_tanh_approx(np.float32(np.inf)) - 1.0) <= 3e-7 and abs(_tanh_approx(np.float32(-np.inf)) + 1.0) <= 3e-7
    assert np.isnan(_tanh_approx(np.float32(np.nan)))


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_results_outlive_the_next_call(kind, loop):
    """Nothing a call returned, inference outputs and states or training gradients, may change
    when the next call runs (no buffer a fast path hands out is reused)."""
    rng = np.random.default_rng(3)
    sizes = (9, 3, 5, 8)
    inference_plan, training_plan = (plan_of(loop, sizes, kind, training) for training in (False, True))
    if kind == "LSTM":
        problems = [random_problem(rng, np.float32, True, sizes) for _ in range(2)]

        def run(problem):
            x, h0, c0, weights, (dout, dh, dc) = problem
            inference = lstm_forward_fused(x, h0, c0, weights, keep_cache=False, plan=inference_plan)[:3]
            cache = lstm_forward_fused(x, h0, c0, weights, plan=training_plan)[3]
            return (*inference, *lstm_backward_fused(dout, dh, dc, cache)[:3])
    else:
        problems = [random_gru_problem(rng, np.float32, True, sizes) for _ in range(2)]

        def run(problem):
            x, h0, weights, (dout, dh) = problem
            inference = gru_forward_fused(x, h0, weights, keep_cache=False, plan=inference_plan)[:2]
            cache = gru_forward_fused(x, h0, weights, plan=training_plan)[2]
            return (*inference, *gru_backward_fused(dout, dh, cache)[:2])

    first = run(problems[0])
    kept = [array.copy() for array in first]
    second = run(problems[1])
    for held, copy, other in zip(first, kept, second):
        np.testing.assert_array_equal(held, copy)
        assert not np.array_equal(held, other)  # the second call did compute something else


def test_scratch_is_reused_per_thread_up_to_its_limit():
    """A buffer large enough is handed out again in the same thread, never in another; one above
    the limit (max_bytes) is not kept, and release_scratch drops the kept one."""
    memory.release_scratch()
    small = memory.scratch((3, 4), np.float32)
    large = memory.scratch((2, 5), np.float64)  # 80 bytes: more than the kept 48
    again = memory.scratch((2, 2), np.float32)
    assert again.shape == (2, 2) and again.dtype == np.float32
    assert np.shares_memory(large, again) and not np.shares_memory(small, large)
    elsewhere = []
    thread = threading.Thread(target=lambda: elsewhere.append(memory.scratch((2, 2), np.float32)))
    thread.start()
    thread.join()
    assert not np.shares_memory(elsewhere[0], again)
    limit = 150  # an array takes 64-byte lines, and 64 more to align
    memory.release_scratch()
    (huge,) = memory.scratch_arrays(np.float32, (26,), max_bytes=limit)  # 104 bytes: 192 with the lines and alignment
    assert not np.shares_memory(huge, memory.scratch_arrays(np.float32, (26,), max_bytes=limit)[0])
    (kept,) = memory.scratch_arrays(np.float32, (5,), max_bytes=limit)
    assert np.shares_memory(kept, memory.scratch_arrays(np.float32, (5,), max_bytes=limit)[0])
    memory.release_scratch()
    assert not np.shares_memory(kept, memory.scratch((5,), np.float32))


def test_scratch_arrays_are_apart_and_aligned():
    memory.release_scratch()
    first, second, third = memory.scratch_arrays(np.float32, (3, 5), (7,), (2, 2, 2))
    assert [a.shape for a in (first, second, third)] == [(3, 5), (7,), (2, 2, 2)]
    assert all(a.dtype == np.float32 and a.ctypes.data % 64 == 0 for a in (first, second, third))
    assert not any(np.shares_memory(a, b) for a, b in itertools.combinations((first, second, third), 2))
    again = memory.scratch_arrays(np.float32, (7,), (3, 5))
    assert np.shares_memory(again[0], first) and np.shares_memory(again[1], second)  # the same buffer, reused
    memory.release_scratch()


def test_backward_buffers_are_fresh_for_small_layers_and_scratch_for_large():
    memory.release_scratch()
    (fresh,) = memory.backward_buffers(True, np.float32, (3, 4))
    kept, rest = memory.backward_buffers(False, np.float32, (3, 4), (5,))
    assert fresh.shape == kept.shape == (3, 4) and rest.shape == (5,)
    assert not np.shares_memory(fresh, memory.scratch((3, 4), np.float32))
    assert np.shares_memory(kept, memory.scratch((3, 4), np.float32))
    memory.release_scratch()


def test_batch_last_inference_in_two_threads_at_once():
    """Large layers' inference (batch last, its projection in a thread's scratch) from two threads:
    every output as when called alone."""
    plan = Plan("batch_last", None)
    problems = [random_problem(np.random.default_rng(seed), np.float64, True, (20, 6, 5, 16)) for seed in (1, 2)]
    expected = [
        lstm_forward_fused(x, h0, c0, weights, keep_cache=False, plan=plan)[0] for x, h0, c0, weights, _ in problems
    ]
    results = [[], []]

    def calls(problem, results):
        x, h0, c0, weights, _ = problem
        for _ in range(30):
            results.append(lstm_forward_fused(x, h0, c0, weights, keep_cache=False, plan=plan)[0])

    threads = [threading.Thread(target=calls, args=pair) for pair in zip(problems, results)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for mine, theirs in zip(results, expected):
        assert len(mine) == 30
        for output in mine:
            np.testing.assert_array_equal(output, theirs)
