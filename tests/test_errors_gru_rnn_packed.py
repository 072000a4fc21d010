"""GRU, RNN, their cells and packed sequences: bad input raises at the boundary, naming expected and given."""

import numpy as np
import pytest

import lstmkit


@pytest.fixture
def x():
    return np.zeros((7, 3, 2), np.float32)  # L=7, N=3, H_in=2


@pytest.mark.parametrize("layer", [lstmkit.GRU(2, 4), lstmkit.RNN(2, 4, nonlinearity="relu")], ids=["GRU", "RNN"])
def test_single_state_layers_refuse_a_pair(layer, x):
    name = type(layer).__name__
    with pytest.raises(
        TypeError,
        match=rf"{name}: hx must be one array \(h_0\), got tuple of length 2 \(only an LSTM's state is a pair\)",
    ):
        layer(x, (np.zeros((1, 3, 4)), np.zeros((1, 3, 4))))
    with pytest.raises(ValueError, match=rf"{name}: h_0 must have shape \(1, 3, 4\), got \(2, 3, 4\)"):
        layer(x, np.zeros((2, 3, 4)))
    output, _ = layer(x)
    with pytest.raises(TypeError, match=rf"{name}: dhx must be one array \(dh_n\), got tuple of length 2"):
        layer.backward(output, (np.zeros((1, 3, 4)), None))
    assert layer.backward(output, np.zeros((1, 3, 4)))[1].shape == (1, 3, 4)


def test_lstm_still_refuses_a_single_array(x):
    with pytest.raises(TypeError, match=r"LSTM: hx must be a pair \(h_0, c_0\), got a single ndarray"):
        lstmkit.LSTM(2, 4)(x, np.zeros((1, 3, 4)))


def test_cells_check_the_state_of_their_kind():
    x = np.zeros((5, 3), np.float32)
    with pytest.raises(TypeError, match=r"GRUCell: hx must be one array \(h\), got tuple of length 2"):
        lstmkit.GRUCell(3, 4)(x, (np.zeros((5, 4)), np.zeros((5, 4))))
    with pytest.raises(ValueError, match=r"RNNCell: h must have shape \(5, 4\), got \(4,\)"):
        lstmkit.RNNCell(3, 4)(x, np.zeros(4))
    with pytest.raises(TypeError, match=r"LSTMCell: hx must be a pair \(h, c\), got a single ndarray"):
        lstmkit.LSTMCell(3, 4)(x, np.zeros((5, 4)))
    with pytest.raises(RuntimeError, match="GRUCell.backward: expected a matching forward"):
        lstmkit.GRUCell(3, 4).backward(np.zeros((5, 4)))


@pytest.mark.parametrize("cell", [lstmkit.LSTMCell(2, 4), lstmkit.GRUCell(2, 4), lstmkit.RNNCell(2, 4)], ids=repr)
def test_cells_refuse_a_packed_sequence(cell, x):
    packed = lstmkit.pack_padded_sequence(x, [7, 5, 1])
    name = type(cell).__name__
    with pytest.raises(
        TypeError, match=rf"{name}: input must be one step, an array \(N, H_in\) or \(H_in,\), got a PackedSequence"
    ):
        cell(packed)


def test_constructor_errors():
    with pytest.raises(ValueError, match="RNN: nonlinearity must be 'tanh' or 'relu', got 'sigmoid'"):
        lstmkit.RNN(2, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="RNNCell: nonlinearity must be 'tanh' or 'relu', got 'gelu'"):
        lstmkit.RNNCell(2, 4, nonlinearity="gelu")
    with pytest.raises(ValueError, match="GRU: hidden_size must be >= 1, got 0"):
        lstmkit.GRU(2, 0)
    with pytest.raises(ValueError, match=r"GRU: dropout must be in \[0, 1\], got 2"):
        lstmkit.GRU(2, 4, dropout=2)
    with pytest.raises(TypeError, match="proj_size"):
        lstmkit.GRU(2, 4, proj_size=2)


@pytest.mark.parametrize("call", ["pack", "layer"])
@pytest.mark.parametrize(
    "lengths,error,message",
    [
        ([7, 5], ValueError, r"lengths must have one entry per sequence, batch size 3, got 2"),
        ([7, 0, 1], ValueError, r"every length must be in \[1, 7\] \(the padded sequence length\), got 0 at index 1"),
        ([9, 5, 1], ValueError, r"every length must be in \[1, 7\] \(the padded sequence length\), got 9 at index 0"),
        ([7.0, 5.0, 1.0], TypeError, r"lengths must be a 1-D sequence of integers, got list with dtype float64"),
    ],
)
def test_bad_lengths(call, lengths, error, message, x):
    if call == "pack":
        with pytest.raises(error, match="pack_padded_sequence: " + message):
            lstmkit.pack_padded_sequence(x, lengths)
    else:
        gru = lstmkit.GRU(2, 4)
        with pytest.raises(error, match="GRU: " + message):
            gru(x, lengths=lengths)
        assert gru._saved == []


def test_unsorted_lengths_need_enforce_sorted_false(x):
    with pytest.raises(
        ValueError,
        match=r"pack_padded_sequence: with enforce_sorted=True, lengths must be sorted in "
        r"decreasing order, got \[5, 7, 1\] \(pass enforce_sorted=False",
    ):
        lstmkit.pack_padded_sequence(x, [5, 7, 1])
    with pytest.raises(ValueError, match="pack_sequence: with enforce_sorted=True"):
        lstmkit.pack_sequence([np.zeros((2, 1)), np.zeros((3, 1))])
    assert lstmkit.pack_padded_sequence(x, [5, 7, 1], enforce_sorted=False).sorted_indices.tolist() == [1, 0, 2]


def test_layer_input_errors_with_lengths_and_packed(x):
    rnn = lstmkit.RNN(2, 4)
    packed = lstmkit.pack_padded_sequence(x, [7, 5, 1])
    with pytest.raises(
        TypeError, match="RNN: lengths= goes with a padded array; a PackedSequence carries its own lengths"
    ):
        rnn(packed, lengths=[7, 5, 1])
    with pytest.raises(
        ValueError, match=r"RNN: lengths= needs a batched input, got an unbatched input of shape \(7, 2\)"
    ):
        rnn(x[:, 0], lengths=[7])
    with pytest.raises(ValueError, match=r"RNN: input.data must have shape \(13, 2\), got \(13, 5\)"):
        rnn(packed._replace(data=np.zeros((13, 5))))
    with pytest.raises(ValueError, match=r"RNN: h_0 must have shape \(1, 3, 4\), got \(1, 2, 4\)"):
        rnn(packed, np.zeros((1, 2, 4)))
    with pytest.raises(ValueError, match=r"RNN: input.batch_sizes must be positive and non-increasing, got \[1, 3\]"):
        rnn(lstmkit.PackedSequence(np.zeros((4, 2)), np.array([1, 3])))
    with pytest.raises(
        ValueError, match=r"RNN: input.data must have sum\(batch_sizes\) = 13 rows, got shape \(12, 2\)"
    ):
        rnn(packed._replace(data=np.zeros((12, 2))))
    with pytest.raises(ValueError, match="RNN: input.sorted_indices must be a permutation of range"):
        rnn(packed._replace(sorted_indices=np.array([0, 0, 1]), unsorted_indices=np.array([0, 1, 2])))
    assert rnn._saved == []


def test_packed_backward_wants_the_gradient_packed_like_the_output(x):
    lstm = lstmkit.LSTM(2, 4, bidirectional=True)
    output, _ = lstm(lstmkit.pack_padded_sequence(x, [7, 1, 5], enforce_sorted=False))
    with pytest.raises(TypeError, match="LSTM: doutput must be a PackedSequence packed like the output .* got ndarray"):
        lstm.backward(np.zeros((7, 3, 8)))
    other = lstmkit.pack_padded_sequence(np.zeros((7, 3, 8)), [7, 5, 1])
    with pytest.raises(
        ValueError, match=r"LSTM: doutput must be packed like the output, with sorted_indices \[0, 2, 1\], got None"
    ):
        lstm.backward(other)
    with pytest.raises(ValueError, match=r"LSTM: doutput.data must have shape \(13, 8\), got \(13, 4\)"):
        lstm.backward(output._replace(data=np.zeros((13, 4))))
    dx, (dh0, dc0) = lstm.backward(output)  # the failed calls consumed nothing
    assert isinstance(dx, lstmkit.PackedSequence) and dx.data.shape == (13, 2) and dh0.shape == (2, 3, 4)


def test_lengths_backward_checks_the_padded_shape(x):
    gru = lstmkit.GRU(2, 4, batch_first=True)
    output, _ = gru(x.transpose(1, 0, 2), lengths=[3, 7, 2])
    with pytest.raises(ValueError, match=r"GRU: doutput must have shape \(3, 7, 4\), got \(7, 3, 4\)"):
        gru.backward(np.zeros((7, 3, 4)))


def test_packing_function_errors():
    with pytest.raises(
        ValueError,
        match=r"pad_packed_sequence: total_length must be an integer at least the length of the "
        r"longest sequence, 3, got 2",
    ):
        lstmkit.pad_packed_sequence(lstmkit.pack_sequence([np.zeros(3), np.zeros(1)]), total_length=2)
    with pytest.raises(TypeError, match="pad_packed_sequence: sequence must be a PackedSequence, got ndarray"):
        lstmkit.pad_packed_sequence(np.zeros((3, 2)))
    with pytest.raises(
        ValueError,
        match=r"pad_sequence: every sequence must have shape \(L_i, 2\) like the first, got shape \(3, 4\) at index 1",
    ):
        lstmkit.pad_sequence([np.zeros((1, 2)), np.zeros((3, 4))])
    with pytest.raises(ValueError, match=r"pack_padded_sequence: expected input of rank >= 2 \(L, N, \*\), got rank 1"):
        lstmkit.pack_padded_sequence(np.zeros(3), [3])
    with pytest.raises(ValueError, match="pad_sequence: padding_side must be 'right' or 'left', got 'top'"):
        lstmkit.pad_sequence([np.zeros(2)], padding_side="top")
