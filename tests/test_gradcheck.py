"""Finite-difference gradient checks in float64, independent of torch."""

import numpy as np
import pytest

import lstmkit


def numeric_gradient(loss, array, eps=1e-6):
    """Central differences of the scalar ``loss()`` with respect to every entry of ``array`` (in place)."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        original = array[index]
        array[index] = original + eps
        plus = loss()
        array[index] = original - eps
        minus = loss()
        array[index] = original
        grad[index] = (plus - minus) / (2 * eps)
    return grad


def check_layer(lstm, x, hx, seed_for_dropout=None):
    rng = np.random.default_rng(11)
    with lstmkit.no_grad():
        output, (h_n, c_n) = lstm(x, hx)
    weights = [rng.standard_normal(a.shape) for a in (output, h_n, c_n)]

    def loss():
        if seed_for_dropout is not None:
            lstm.reseed(seed_for_dropout)
        with lstmkit.no_grad():
            out, (h, c) = lstm(x, hx)
        return float(np.sum(out * weights[0]) + np.sum(h * weights[1]) + np.sum(c * weights[2]))

    if seed_for_dropout is not None:
        lstm.reseed(seed_for_dropout)
    lstm.zero_grad()
    lstm(x, hx)
    dx, (dh0, dc0) = lstm.backward(*weights[:1], tuple(weights[1:]))
    for name, parameter in lstm.named_parameters():
        np.testing.assert_allclose(parameter.grad, numeric_gradient(loss, parameter.data), rtol=1e-6, atol=1e-8, err_msg=name)
    np.testing.assert_allclose(dx, numeric_gradient(loss, x), rtol=1e-6, atol=1e-8, err_msg="input")
    np.testing.assert_allclose(dh0, numeric_gradient(loss, hx[0]), rtol=1e-6, atol=1e-8, err_msg="h0")
    np.testing.assert_allclose(dc0, numeric_gradient(loss, hx[1]), rtol=1e-6, atol=1e-8, err_msg="c0")


@pytest.mark.parametrize("bidirectional,proj_size,bias", [(False, 0, True), (True, 2, True), (True, 0, False)])
def test_lstm_finite_differences(bidirectional, proj_size, bias):
    rng = np.random.default_rng(0)
    lstm = lstmkit.LSTM(3, 4, num_layers=2, bias=bias, bidirectional=bidirectional, proj_size=proj_size,
                        dtype=np.float64, seed=1)
    D, H_out = (2 if bidirectional else 1), proj_size or 4
    x = rng.standard_normal((5, 2, 3))
    hx = (rng.standard_normal((2 * D, 2, H_out)), rng.standard_normal((2 * D, 2, 4)))
    check_layer(lstm, x, hx)


def test_dropout_finite_differences_with_fixed_masks():
    rng = np.random.default_rng(0)
    lstm = lstmkit.LSTM(3, 4, num_layers=3, dropout=0.4, bidirectional=True, dtype=np.float64, seed=1)
    x = rng.standard_normal((4, 2, 3))
    hx = (rng.standard_normal((6, 2, 4)), rng.standard_normal((6, 2, 4)))
    check_layer(lstm, x, hx, seed_for_dropout=42)


def test_cell_finite_differences():
    rng = np.random.default_rng(0)
    cell = lstmkit.LSTMCell(3, 4, dtype=np.float64, seed=1)
    x, h, c = rng.standard_normal((2, 3)), rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    wh, wc = rng.standard_normal((2, 4)), rng.standard_normal((2, 4))

    def loss():
        with lstmkit.no_grad():
            h1, c1 = cell(x, (h, c))
        return float(np.sum(h1 * wh) + np.sum(c1 * wc))

    cell(x, (h, c))
    dx, (dh, dc) = cell.backward((wh, wc))
    for name, parameter in cell.named_parameters():
        np.testing.assert_allclose(parameter.grad, numeric_gradient(loss, parameter.data), rtol=1e-6, atol=1e-8, err_msg=name)
    for name, grad, array in (("x", dx, x), ("h", dh, h), ("c", dc, c)):
        np.testing.assert_allclose(grad, numeric_gradient(loss, array), rtol=1e-6, atol=1e-8, err_msg=name)
