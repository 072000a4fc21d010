"""Bad input raises at the boundary with a message naming what was expected and what was given."""

import numpy as np
import pytest

import lstmkit


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        (dict(input_size=0, hidden_size=4), ValueError, "input_size must be >= 1, got 0"),
        (dict(input_size=3, hidden_size=-2), ValueError, "hidden_size must be >= 1, got -2"),
        (dict(input_size=3, hidden_size=4, num_layers=0), ValueError, "num_layers must be >= 1, got 0"),
        (dict(input_size=3.5, hidden_size=4), TypeError, "input_size must be an integer, got 3.5"),
        (
            dict(input_size=3, hidden_size=4, proj_size=4),
            ValueError,
            "proj_size must be smaller than hidden_size=4, got 4",
        ),
        (dict(input_size=3, hidden_size=4, proj_size=-1), ValueError, "proj_size must be >= 0, got -1"),
        (dict(input_size=3, hidden_size=4, dropout=1.5), ValueError, r"dropout must be in \[0, 1\], got 1.5"),
        (dict(input_size=3, hidden_size=4, dropout=-0.1), ValueError, r"dropout must be in \[0, 1\], got -0.1"),
        (
            dict(input_size=3, hidden_size=4, dtype=np.int32),
            TypeError,
            "dtype must be numpy.float32 or numpy.float64, got int32",
        ),
        (dict(input_size=3, hidden_size=4, bidirectional="yes"), TypeError, "bidirectional must be True or False"),
    ],
)
def test_constructor_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        lstmkit.LSTM(**kwargs)


def test_cell_constructor_errors():
    with pytest.raises(ValueError, match="LSTMCell: hidden_size must be >= 1, got 0"):
        lstmkit.LSTMCell(3, 0)
    with pytest.raises(TypeError, match="dtype must be numpy.float32 or numpy.float64, got complex128"):
        lstmkit.LSTMCell(3, 2, dtype=np.complex128)


@pytest.fixture
def lstm():
    return lstmkit.LSTM(3, 4, num_layers=2, proj_size=2)


def test_wrong_rank(lstm):
    with pytest.raises(
        ValueError,
        match=r"expected input of rank 2 \(L, H_in\) unbatched or 3 \(L, N, H_in\), "
        r"got rank 4 with shape \(1, 2, 3, 3\)",
    ):
        lstm(np.zeros((1, 2, 3, 3)))
    with pytest.raises(ValueError, match="got rank 1"):
        lstm(np.zeros(3))


def test_wrong_feature_size(lstm):
    with pytest.raises(ValueError, match=r"LSTM: input.shape\[-1\] must equal input_size=3, got 5"):
        lstm(np.zeros((4, 2, 5)))


def test_empty_sequence(lstm):
    with pytest.raises(ValueError, match="sequence length and batch size >= 1"):
        lstm(np.zeros((0, 2, 3)))


@pytest.mark.parametrize("dtype", [np.int64, np.complex64, bool])
def test_non_float_input(lstm, dtype):
    with pytest.raises(TypeError, match=f"input must hold real floating-point numbers, got dtype {np.dtype(dtype)}"):
        lstm(np.zeros((4, 2, 3), dtype=dtype))


def test_hx_errors(lstm):
    x = np.zeros((4, 2, 3), np.float32)
    with pytest.raises(TypeError, match=r"hx must be a pair \(h_0, c_0\), got a single ndarray"):
        lstm(x, np.zeros((2, 2, 2)))
    with pytest.raises(TypeError, match=r"hx must be a pair \(h_0, c_0\), got tuple of length 3"):
        lstm(x, (np.zeros((2, 2, 2)),) * 3)
    with pytest.raises(ValueError, match=r"h_0 must have shape \(2, 2, 2\), got \(2, 2, 4\)"):
        lstm(x, (np.zeros((2, 2, 4)), np.zeros((2, 2, 4))))
    with pytest.raises(ValueError, match=r"c_0 must have shape \(2, 2, 4\), got \(2, 2, 2\)"):
        lstm(x, (np.zeros((2, 2, 2)), np.zeros((2, 2, 2))))
    with pytest.raises(ValueError, match=r"h_0 must have shape \(2, 2\), got \(2, 1, 2\)"):
        lstm(np.zeros((4, 3)), (np.zeros((2, 1, 2)), np.zeros((2, 1, 4))))
    with pytest.raises(TypeError, match="c_0 must hold real floating-point numbers, got dtype int64"):
        lstm(x, (np.zeros((2, 2, 2)), np.zeros((2, 2, 4), np.int64)))


def test_backward_errors(lstm):
    with pytest.raises(RuntimeError, match="LSTM.backward: expected a matching forward call before it, got none"):
        lstm.backward(np.zeros((4, 2, 2)))
    out, _ = lstm(np.zeros((4, 2, 3), np.float32))
    with pytest.raises(ValueError, match=r"doutput must have shape \(4, 2, 2\), got \(4, 2, 3\)"):
        lstm.backward(np.zeros((4, 2, 3)))
    with pytest.raises(ValueError, match=r"dc_n must have shape \(2, 2, 4\), got \(2, 2, 2\)"):
        lstm.backward(out, (None, np.zeros((2, 2, 2))))
    dx, _ = lstm.backward(out)  # the failed calls consumed nothing
    assert dx.shape == (4, 2, 3)


def test_cell_errors():
    cell = lstmkit.LSTMCell(3, 4)
    with pytest.raises(ValueError, match=r"LSTMCell: input.shape\[-1\] must equal input_size=3, got 2"):
        cell(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="expected input of rank 1 \\(H_in,\\) or 2 \\(N, H_in\\), got rank 3"):
        cell(np.zeros((1, 5, 3)))
    with pytest.raises(TypeError, match=r"hx must be a pair \(h, c\), got a single ndarray"):
        cell(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match=r"h must have shape \(5, 4\), got \(4,\)"):
        cell(np.zeros((5, 3)), (np.zeros(4), np.zeros(4)))
    with pytest.raises(RuntimeError, match="LSTMCell.backward: expected a matching forward"):
        cell.backward((np.zeros((5, 4)), None))


def test_errors_come_before_any_computation(lstm):
    """A refused call leaves nothing behind: no cache to confuse a later backward."""
    with pytest.raises(ValueError):
        lstm(np.zeros((4, 2, 3), np.float32), (np.zeros((9, 9, 9)), None))
    assert lstm._saved == []
