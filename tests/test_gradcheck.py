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


def _parts(state):
    """A layer's or cell's state as a tuple: (h, c) for an LSTM, (h,) for GRU and RNN."""
    return state if isinstance(state, tuple) else (state,)


def _like(parts, state):
    return tuple(parts) if isinstance(state, tuple) else parts[0]


def check_layer(lstm, x, hx, seed_for_dropout=None, **forward_options):
    """Every parameter's, the input's and the initial state's gradient against finite differences
    of a random linear function of the output and final state (any layer kind, any input route)."""
    rng = np.random.default_rng(11)
    with lstmkit.no_grad():
        output, state = lstm(x, hx, **forward_options)
    weights = [rng.standard_normal(a.shape) for a in (output, *_parts(state))]

    def loss():
        if seed_for_dropout is not None:
            lstm.reseed(seed_for_dropout)
        with lstmkit.no_grad():
            out, final = lstm(x, hx, **forward_options)
        return float(sum(np.sum(a * w) for a, w in zip((out, *_parts(final)), weights)))

    if seed_for_dropout is not None:
        lstm.reseed(seed_for_dropout)
    lstm.zero_grad()
    lstm(x, hx, **forward_options)
    dx, dhx = lstm.backward(weights[0], _like(weights[1:], state))
    for name, parameter in lstm.named_parameters():
        np.testing.assert_allclose(
            parameter.grad, numeric_gradient(loss, parameter.data), rtol=1e-6, atol=1e-8, err_msg=name
        )
    np.testing.assert_allclose(dx, numeric_gradient(loss, x), rtol=1e-6, atol=1e-8, err_msg="input")
    for index, (gradient, array) in enumerate(zip(_parts(dhx), _parts(hx))):
        np.testing.assert_allclose(
            gradient, numeric_gradient(loss, array), rtol=1e-6, atol=1e-8, err_msg=f"state {index}"
        )


@pytest.mark.parametrize("bidirectional,proj_size,bias", [(False, 0, True), (True, 2, True), (True, 0, False)])
def test_lstm_finite_differences(bidirectional, proj_size, bias):
    rng = np.random.default_rng(0)
    lstm = lstmkit.LSTM(
        3, 4, num_layers=2, bias=bias, bidirectional=bidirectional, proj_size=proj_size, dtype=np.float64, seed=1
    )
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


CELLS = {
    "lstm": lambda: lstmkit.LSTMCell(3, 4, dtype=np.float64, seed=1),
    "gru": lambda: lstmkit.GRUCell(3, 4, dtype=np.float64, seed=1),
    "rnn_tanh": lambda: lstmkit.RNNCell(3, 4, dtype=np.float64, seed=1),
    "rnn_relu": lambda: lstmkit.RNNCell(3, 4, nonlinearity="relu", dtype=np.float64, seed=1),
}


@pytest.mark.parametrize("kind", CELLS)
def test_cell_finite_differences(kind):
    rng = np.random.default_rng(0)
    cell = CELLS[kind]()
    parts = len(cell._kind.state_parts)
    x = rng.standard_normal((2, 3))
    state = _like([rng.standard_normal((2, 4)) for _ in range(parts)], (None,) * parts if parts > 1 else None)
    weights = [rng.standard_normal((2, 4)) for _ in range(parts)]

    def loss():
        with lstmkit.no_grad():
            new_state = cell(x, state)
        return float(sum(np.sum(a * w) for a, w in zip(_parts(new_state), weights)))

    cell(x, state)
    dx, dstate = cell.backward(_like(weights, state))
    for name, parameter in cell.named_parameters():
        np.testing.assert_allclose(
            parameter.grad, numeric_gradient(loss, parameter.data), rtol=1e-6, atol=1e-8, err_msg=name
        )
    states = ((f"state {i}", g, a) for i, (g, a) in enumerate(zip(_parts(dstate), _parts(state))))
    for name, grad, array in (("x", dx, x), *states):
        np.testing.assert_allclose(grad, numeric_gradient(loss, array), rtol=1e-6, atol=1e-8, err_msg=name)


@pytest.mark.parametrize(
    "layer_class,options", [(lstmkit.GRU, {}), (lstmkit.RNN, {}), (lstmkit.RNN, {"nonlinearity": "relu"})]
)
def test_gru_rnn_finite_differences(layer_class, options):
    rng = np.random.default_rng(0)
    layer = layer_class(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=1, **options)
    x = rng.standard_normal((5, 2, 3))
    check_layer(layer, x, rng.standard_normal((4, 2, 4)))


@pytest.mark.parametrize(
    "layer_class,options", [(lstmkit.LSTM, {"proj_size": 2}), (lstmkit.GRU, {}), (lstmkit.RNN, {})]
)
def test_variable_lengths_finite_differences(layer_class, options):
    """Unsorted lengths, bidirectional, two layers, dropout between them (fixed masks): the masked
    loop and the per-sequence reversal."""
    rng = np.random.default_rng(0)
    layer = layer_class(
        2, 3, num_layers=2, bidirectional=True, batch_first=True, dropout=0.3, dtype=np.float64, seed=1, **options
    )
    x = rng.standard_normal((3, 5, 2))
    state = [rng.standard_normal((4, 3, size)) for size in layer._state_sizes()]
    check_layer(layer, x, _like(state, tuple(state) if len(state) > 1 else None), seed_for_dropout=5, lengths=[2, 5, 1])
