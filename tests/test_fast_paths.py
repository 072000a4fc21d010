"""Fast paths equal the reference ops they replace, on random inputs (float64 to 1e-12, float32 to 1e-5)."""

import itertools

import numpy as np
import pytest

from lstmkit.ops.lstm import LSTMWeights, lstm_backward, lstm_forward
from lstmkit.ops.lstm_fused import FusedLSTMCache, lstm_backward_fused, lstm_forward_fused

CASES = list(itertools.product([np.float64, np.float32], [True, False], [(1, 1, 3, 2), (7, 4, 5, 6), (30, 9, 16, 32)]))


def random_problem(rng, dtype, bias, sizes):
    steps, batch, features, hidden = sizes
    shapes = [(4 * hidden, features), (4 * hidden, hidden)] + ([(4 * hidden,), (4 * hidden,)] if bias else [])
    weights = LSTMWeights(*(rng.standard_normal(shape).astype(dtype) * 0.6 for shape in shapes))
    x = rng.standard_normal((steps, batch, features)).astype(dtype) * 2
    h0, c0 = (rng.standard_normal((batch, hidden)).astype(dtype) for _ in range(2))
    upstream = [rng.standard_normal(shape).astype(dtype) for shape in [(steps, batch, hidden), (batch, hidden), (batch, hidden)]]
    return x, h0, c0, weights, upstream


def assert_equal_within(actual, expected, dtype):
    tolerance = 1e-12 if dtype == np.float64 else 1e-5 * max(1.0, float(np.max(np.abs(expected))))
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    assert float(np.max(np.abs(actual - expected))) <= tolerance


@pytest.mark.parametrize("dtype,bias,sizes", CASES)
def test_fused_lstm_equals_reference(dtype, bias, sizes):
    x, h0, c0, weights, (dout, dh, dc) = random_problem(np.random.default_rng(sum(sizes)), dtype, bias, sizes)
    expected = lstm_forward(x, h0, c0, weights)
    actual = lstm_forward_fused(x, h0, c0, weights)
    assert isinstance(actual[3], FusedLSTMCache)
    for a, e in zip(actual[:3], expected[:3]):
        assert_equal_within(a, e, dtype)
    inference = lstm_forward_fused(x, h0, c0, weights, keep_cache=False)
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
    output, *_ , cache = lstm_forward_fused(x, h0_projected, c0, projected)
    assert not isinstance(cache, FusedLSTMCache)
    np.testing.assert_array_equal(output, lstm_forward(x, h0_projected, c0, projected)[0])
    batch_sizes = np.array([3, 3, 2, 1, 1])
    output, *_, cache = lstm_forward_fused(x, h0, c0, weights, batch_sizes=batch_sizes)
    assert not isinstance(cache, FusedLSTMCache)
    np.testing.assert_array_equal(output, lstm_forward(x, h0, c0, weights, batch_sizes=batch_sizes)[0])
