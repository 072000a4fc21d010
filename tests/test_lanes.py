"""The float32 cells in vectors of lanes (ops/fused/intrinsics/lanes.py: the LSTM's and GRU's forward, the LSTM's
backward) against their equations in float64: every
unit count (whole vectors, a masked remainder, fewer units than lanes), rows apart by a padded
stride whose padding is never written, with and without a bias, extreme and NaN inputs, and the
scalar loops they fall back to when a row's units are not adjacent."""

import numpy as np
import pytest

from lstmkit.ops.fused.compiled import compiled_kernels
from lstmkit.ops.fused.intrinsics import lanes as _lanes

kernels = compiled_kernels()
SENTINEL = np.float32(12345.0)
TOLERANCE = 2e-6  # the tanh approximation is within 3e-7; a few of them and float32 roundings


def sigmoid(x):
    return 0.5 * np.tanh(0.5 * x) + 0.5


def _rows(rng, rows, width, layout, extremes=False):
    """(rows, width) float32 in a wider buffer (padding = SENTINEL), as ``layout`` says: 'padded'
    (rows apart by a longer stride) or 'strided' (units two entries apart: the scalar loops)."""
    step = 2 if layout == "strided" else 1
    buffer = np.full((rows, width * step + 19), SENTINEL, dtype=np.float32)
    view = buffer[:, : width * step : step]
    view[...] = rng.standard_normal((rows, width)) * 3
    if extremes:
        view.flat[::7] = rng.choice(np.float32([np.inf, -np.inf, 1e30, -1e30, 40, -40]), size=view.flat[::7].shape)
        view.flat[3::11] = np.nan
    return buffer, view


def _padding_untouched(buffer, view):
    written = np.zeros(buffer.shape, dtype=bool)
    written[:, : view.shape[1] * (view.strides[1] // 4) : view.strides[1] // 4] = True
    return bool(np.all(buffer[~written] == SENTINEL))


def _assert_close(actual, expected):
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    finite = ~np.isnan(expected)
    scale = max(1.0, float(np.max(np.abs(expected[finite]), initial=0.0)))  # float32 rounds relative to size
    assert float(np.max(np.abs(actual[finite] - expected[finite]), initial=0.0)) <= TOLERANCE * scale


def _lstm_case(rows, hidden, bias, layout, extremes=False, seed=0):
    rng = np.random.default_rng(seed)
    z, recurrent = _rows(rng, rows, 4 * hidden, layout, extremes), _rows(rng, rows, 4 * hidden, layout)
    c_prev = _rows(rng, rows, hidden, layout)
    outputs = [_rows(rng, rows, hidden, layout) for _ in range(3)]  # c_next, tanh_c, h_next
    b = rng.standard_normal(4 * hidden).astype(np.float32) if bias else None
    return z, recurrent, c_prev, outputs, b


def _lstm_expected(z, recurrent, c_prev, b, hidden):
    a = z.astype(np.float64) + recurrent + (0.0 if b is None else b)
    with np.errstate(invalid="ignore", over="ignore"):
        i, f, g, o = (
            sigmoid(a[:, :hidden]),
            sigmoid(a[:, hidden : 2 * hidden]),
            np.tanh(a[:, 2 * hidden : 3 * hidden]),
            sigmoid(a[:, 3 * hidden :]),
        )
        c = f * c_prev + i * g
        return np.concatenate([i, f, g, o], axis=1), c, np.tanh(c), o * np.tanh(c)


@pytest.mark.parametrize("hidden", [1, 7, 16, 17, 40, 64])
@pytest.mark.parametrize("rows", [1, 3])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("layout", ["padded", "strided"])
def test_lstm_cell_equals_its_equations(hidden, rows, bias, layout):
    z, recurrent, c_prev, outputs, b = _lstm_case(rows, hidden, bias, layout)
    expected = _lstm_expected(z[1], recurrent[1], c_prev[1], b, hidden)
    kernels.lstm_cell_forward(z[1], recurrent[1], c_prev[1], *(view for _, view in outputs), b)
    for (buffer, view), want in zip([z, *outputs], expected):
        _assert_close(view, want)
        assert _padding_untouched(buffer, view)


@pytest.mark.parametrize("hidden", [1, 7, 16, 17, 40, 64])
@pytest.mark.parametrize("rows", [1, 3])
@pytest.mark.parametrize("layout", ["padded", "strided"])
def test_lstm_cell_backward_equals_its_equations(hidden, rows, layout):
    rng = np.random.default_rng(5)
    dh, dc, c_prev, tanh_c = (_rows(rng, rows, hidden, layout) for _ in range(4))
    gates, dz = _rows(rng, rows, 4 * hidden, layout), _rows(rng, rows, 4 * hidden, layout)
    i, f, g, o = (gates[1][:, k * hidden : (k + 1) * hidden].astype(np.float64) for k in range(4))
    upstream, tc = dh[1].astype(np.float64), tanh_c[1].astype(np.float64)
    cell = dc[1] + upstream * o * (1 - tc * tc)
    expected_dz = np.concatenate(
        [cell * g * i * (1 - i), cell * c_prev[1] * f * (1 - f), cell * i * (1 - g * g), upstream * tc * o * (1 - o)],
        axis=1,
    )
    kernels.lstm_cell_backward(dh[1], dc[1], gates[1], c_prev[1], tanh_c[1], dz[1])
    _assert_close(dz[1], expected_dz)
    _assert_close(dc[1], cell * f)
    assert _padding_untouched(*dz) and _padding_untouched(*dc)


def _gru_case(rows, hidden, bias, layout, extremes=False, seed=0):
    rng = np.random.default_rng(seed)
    z, recurrent = _rows(rng, rows, 3 * hidden, layout, extremes), _rows(rng, rows, 3 * hidden, layout)
    h_prev = _rows(rng, rows, hidden, layout)
    outputs = [_rows(rng, rows, hidden, layout) for _ in range(2)]  # hidden_n, h_next
    b = rng.standard_normal(3 * hidden).astype(np.float32) if bias else None
    return z, recurrent, h_prev, outputs, b, rng.standard_normal(hidden).astype(np.float32)


def _gru_expected(z, recurrent, h_prev, b, bias_hn, hidden):
    a = z.astype(np.float64) + (0.0 if b is None else b)
    with np.errstate(invalid="ignore", over="ignore"):
        r = sigmoid(a[:, :hidden] + recurrent[:, :hidden])
        update = sigmoid(a[:, hidden : 2 * hidden] + recurrent[:, hidden : 2 * hidden])
        hidden_n = recurrent[:, 2 * hidden :].astype(np.float64) + bias_hn
        candidate = np.tanh(a[:, 2 * hidden :] + r * hidden_n)
        return np.concatenate([r, update, candidate], axis=1), hidden_n, candidate + update * (h_prev - candidate)


@pytest.mark.parametrize("hidden", [1, 7, 16, 17, 40, 64])
@pytest.mark.parametrize("rows", [1, 3])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("layout", ["padded", "strided"])
def test_gru_cell_equals_its_equations(hidden, rows, bias, layout):
    z, recurrent, h_prev, outputs, b, bias_hn = _gru_case(rows, hidden, bias, layout)
    expected = _gru_expected(z[1], recurrent[1], h_prev[1], b, bias_hn, hidden)
    kernels.gru_cell_forward(z[1], recurrent[1], bias_hn, h_prev[1], *(view for _, view in outputs), b)
    for (buffer, view), want in zip([z, *outputs], expected):
        _assert_close(view, want)
        assert _padding_untouched(buffer, view)


@pytest.mark.parametrize("layout", ["padded", "strided"])
def test_cells_saturate_and_carry_nan_as_their_equations(layout):
    """±inf, ±1e30 and ±40 saturate to the equations' limits; a NaN stays NaN where it reaches."""
    z, recurrent, c_prev, outputs, b = _lstm_case(2, 40, True, layout, extremes=True, seed=1)
    expected = _lstm_expected(z[1], recurrent[1], c_prev[1], b, 40)
    kernels.lstm_cell_forward(z[1], recurrent[1], c_prev[1], *(view for _, view in outputs), b)
    for (_, view), want in zip([z, *outputs], expected):
        _assert_close(view, want)
    z, recurrent, h_prev, outputs, b, bias_hn = _gru_case(2, 40, True, layout, extremes=True, seed=1)
    expected = _gru_expected(z[1], recurrent[1], h_prev[1], b, bias_hn, 40)
    kernels.gru_cell_forward(z[1], recurrent[1], bias_hn, h_prev[1], *(view for _, view in outputs), b)
    for (_, view), want in zip([z, *outputs], expected):
        _assert_close(view, want)


def test_a_units_result_does_not_depend_on_its_lane():
    """Bit for bit: the units of a cell in reversed order give the same numbers, reversed (every lane
    and the masked remainder run the same instructions)."""
    hidden = 2 * _lanes.LANES + 3
    z, recurrent, c_prev, outputs, b = _lstm_case(2, hidden, True, "padded", seed=2)

    def reversed_units(array, blocks):
        return np.ascontiguousarray(array.reshape(array.shape[0], blocks, hidden)[:, :, ::-1].reshape(array.shape))

    arguments = [z[1].copy(), recurrent[1], c_prev[1], *(view.copy() for _, view in outputs)]
    flipped = [reversed_units(array, 4 if k < 2 else 1) for k, array in enumerate(arguments)]
    kernels.lstm_cell_forward(*arguments, b)
    kernels.lstm_cell_forward(*flipped, reversed_units(b[None], 4)[0])
    for k in (0, 3, 4, 5):
        np.testing.assert_array_equal(reversed_units(flipped[k], 4 if k == 0 else 1), arguments[k])
