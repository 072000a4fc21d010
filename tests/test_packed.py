"""Variable-length batches: packing against torch.nn.utils.rnn, and LSTM, GRU, RNN on packed input."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.utils.rnn as torch_rnn
from layer_reference import as_tuple, compare_layer, make_layer, random_state

import lstmkit


def random_lengths(rng, batch, longest=30, sort=False):
    """Lengths in [1, longest] with at least one sequence of length 1 (the edge that breaks code)."""
    lengths = rng.integers(1, longest + 1, size=batch)
    lengths[rng.integers(batch)] = 1
    return sorted(lengths.tolist(), reverse=True) if sort else lengths.tolist()


def assert_packed_equal(ours, theirs):
    assert isinstance(ours, lstmkit.PackedSequence) and ours._fields == theirs._fields
    for field, mine, reference in zip(ours._fields, ours, theirs):
        assert (mine is None) == (reference is None), field
        if mine is not None:
            np.testing.assert_array_equal(mine, reference.numpy(), err_msg=field)


# ---- the packing functions against torch.nn.utils.rnn -------------------------------------
@pytest.mark.parametrize(
    "batch_first,enforce_sorted,trailing", list(itertools.product([False, True], [True, False], [(), (3,), (2, 2)]))
)
def test_pack_and_pad_equal_torch(batch_first, enforce_sorted, trailing):
    rng = np.random.default_rng(len(trailing) + 2 * batch_first + 4 * enforce_sorted)
    for batch in range(1, 6):
        lengths = random_lengths(rng, batch, longest=9, sort=enforce_sorted)
        steps = max(lengths) + int(rng.integers(3))
        padded = rng.standard_normal((batch, steps, *trailing) if batch_first else (steps, batch, *trailing))
        packed = lstmkit.pack_padded_sequence(padded, lengths, batch_first=batch_first, enforce_sorted=enforce_sorted)
        packed_t = torch_rnn.pack_padded_sequence(
            torch.tensor(padded), torch.tensor(lengths), batch_first=batch_first, enforce_sorted=enforce_sorted
        )
        assert_packed_equal(packed, packed_t)
        for total_length in (None, steps + 2):
            for padding_value in (0.0, -7.5):
                back, back_lengths = lstmkit.pad_packed_sequence(packed, batch_first, padding_value, total_length)
                back_t, back_lengths_t = torch_rnn.pad_packed_sequence(
                    packed_t, batch_first, padding_value, total_length
                )
                np.testing.assert_array_equal(back, back_t.numpy())
                np.testing.assert_array_equal(back_lengths, back_lengths_t.numpy())
                assert back_lengths.dtype == np.int64


def test_ties_keep_the_callers_order_like_torch():
    lengths = [3, 5, 3, 5, 1, 5, 3]
    padded = np.arange(5 * 7.0).reshape(5, 7)
    packed = lstmkit.pack_padded_sequence(padded, lengths, enforce_sorted=False)
    assert_packed_equal(packed, torch_rnn.pack_padded_sequence(torch.tensor(padded), lengths, enforce_sorted=False))


@pytest.mark.parametrize("batch_first,padding_side", list(itertools.product([False, True], ["right", "left"])))
def test_pad_sequence_and_pack_sequence_equal_torch(batch_first, padding_side):
    rng = np.random.default_rng(0)
    sequences = [rng.standard_normal((length, 3)) for length in (4, 1, 6, 4)]
    padded = lstmkit.pad_sequence(sequences, batch_first, -1.0, padding_side)
    padded_t = torch_rnn.pad_sequence([torch.tensor(s) for s in sequences], batch_first, -1.0, padding_side)
    np.testing.assert_array_equal(padded, padded_t.numpy())
    for enforce_sorted, order in ((False, sequences), (True, sorted(sequences, key=len, reverse=True))):
        assert_packed_equal(
            lstmkit.pack_sequence(order, enforce_sorted),
            torch_rnn.pack_sequence([torch.tensor(s) for s in order], enforce_sorted),
        )


def test_packing_and_padding_are_each_others_transpose():
    """<pack(x), p> == <x, pad(p)> for every x and p: why gradients go back packed."""
    rng = np.random.default_rng(1)
    lengths = [2, 6, 1, 4]
    x = rng.standard_normal((6, 4, 3))
    packed = lstmkit.pack_padded_sequence(x, lengths, enforce_sorted=False)
    p = packed._replace(data=rng.standard_normal(packed.data.shape))
    padded_p, _ = lstmkit.pad_packed_sequence(p)
    np.testing.assert_allclose(np.sum(packed.data * p.data), np.sum(x * padded_p), rtol=1e-13)


# ---- the layers on packed input against torch ---------------------------------------------
KINDS = {
    "lstm": (lstmkit.LSTM, {}),
    "lstm_proj": (lstmkit.LSTM, {"proj_size": 3}),
    "gru": (lstmkit.GRU, {}),
    "rnn_tanh": (lstmkit.RNN, {}),
    "rnn_relu": (lstmkit.RNN, {"nonlinearity": "relu"}),
}
CASES = list(itertools.product(KINDS, [False, True], [False, True], [True, False], ["packed", "lengths="]))


def _case_id(case):
    kind, bidirectional, batch_first, enforce_sorted, route = case
    order = "sorted" if enforce_sorted else "unsorted"
    return f"{kind}-{'bi' if bidirectional else 'uni'}-{'bf' if batch_first else 'tf'}-{order}-{route}"


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_layers_on_packed_input_match_torch(case, dtype):
    kind, bidirectional, batch_first, enforce_sorted, route = case
    index = CASES.index(case)
    rng = np.random.default_rng(100 + index)
    layer_class, extra = KINDS[kind]
    num_layers, bias, with_hx, batch = 1 + index % 3, index % 4 != 1, index % 2 == 0, 1 + index % 5
    config = dict(input_size=4, hidden_size=5, num_layers=num_layers, bias=bias, **extra)
    config.update(batch_first=batch_first, bidirectional=bidirectional)
    ours, reference = make_layer(layer_class, config, dtype, seed=index)
    lengths = random_lengths(rng, batch, sort=enforce_sorted)
    steps = max(lengths) + index % 3  # padding beyond the longest sequence too
    x = rng.standard_normal((batch, steps, 4) if batch_first else (steps, batch, 4)).astype(dtype)
    hx = random_state(ours, batch, rng, dtype) if with_hx else None
    compare_layer(ours, reference, x, hx, dtype, rng, lengths, enforce_sorted, lengths_keyword=route == "lengths=")


@pytest.mark.parametrize("kind", KINDS)
def test_each_sequence_of_a_batch_runs_as_if_alone(kind):
    """Independent of torch: a packed batch gives every sequence what it gets by itself, unpadded."""
    layer_class, extra = KINDS[kind]
    layer = layer_class(3, 5, num_layers=2, bidirectional=True, dtype=np.float64, seed=0, **extra)
    rng = np.random.default_rng(0)
    lengths = [4, 1, 7, 3]
    x = rng.standard_normal((7, 4, 3))
    hx = random_state(layer, 4, rng, np.float64)
    with lstmkit.no_grad():
        output, state = layer(x, hx, lengths=lengths)
        for n, length in enumerate(lengths):
            initial = tuple(s[:, n] for s in as_tuple(hx)) if kind.startswith("lstm") else hx[:, n]
            alone_output, alone_state = layer(x[:length, n], initial)
            np.testing.assert_allclose(output[:length, n], alone_output, rtol=0, atol=1e-13)
            assert np.all(output[length:, n] == 0)
            for part, alone_part in zip(as_tuple(state), as_tuple(alone_state)):
                np.testing.assert_allclose(part[:, n], alone_part, rtol=0, atol=1e-13)


@pytest.mark.parametrize("kind", KINDS)
def test_equal_lengths_packed_equals_the_plain_path(kind):
    """All lengths equal: the packed path (masked loop) and the plain one agree, forward and backward."""
    layer_class, extra = KINDS[kind]
    layer = layer_class(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=1, **extra)
    x = np.random.default_rng(2).standard_normal((5, 3, 3))
    output, state = layer(x)
    dx, dstate = layer.backward(np.ones_like(output))
    grads = [p.grad.copy() for p in layer.parameters()]
    layer.zero_grad()
    packed_output, packed_state = layer(lstmkit.pack_padded_sequence(x, [5, 5, 5]))
    packed_dx, packed_dstate = layer.backward(packed_output._replace(data=np.ones_like(packed_output.data)))
    np.testing.assert_allclose(lstmkit.pad_packed_sequence(packed_output)[0], output, rtol=0, atol=1e-14)
    np.testing.assert_allclose(lstmkit.pad_packed_sequence(packed_dx)[0], dx, rtol=0, atol=1e-14)
    for part, packed_part in zip(as_tuple(state) + as_tuple(dstate), as_tuple(packed_state) + as_tuple(packed_dstate)):
        np.testing.assert_allclose(packed_part, part, rtol=0, atol=1e-14)
    for grad, parameter in zip(grads, layer.parameters()):
        np.testing.assert_allclose(parameter.grad, grad, rtol=0, atol=1e-13)


def test_padding_is_never_read():
    """Garbage (even NaN) past a sequence's end changes nothing, forward or backward."""
    gru = lstmkit.GRU(2, 3, bidirectional=True, batch_first=True, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((3, 6, 2))
    lengths = [6, 2, 4]
    clean, _ = gru(x, lengths=lengths)
    dx_clean, _ = gru.backward(np.ones_like(clean))
    clean_grads = [p.grad.copy() for p in gru.parameters()]
    gru.zero_grad()
    dirty = x.copy()
    dirty[1, 2:] = np.nan
    dirty[2, 4:] = 1e30
    output, _ = gru(dirty, lengths=lengths)
    dx, _ = gru.backward(np.ones_like(output))
    np.testing.assert_array_equal(output, clean)
    np.testing.assert_array_equal(dx, dx_clean)
    assert all(np.array_equal(p.grad, g) for p, g in zip(gru.parameters(), clean_grads))


def test_lstm_with_projection_realistic_size_float32():
    config = dict(input_size=16, hidden_size=64, num_layers=2, bidirectional=True, proj_size=24)
    ours, reference = make_layer(lstmkit.LSTM, config, np.float32, seed=3)
    rng = np.random.default_rng(3)
    lengths = random_lengths(rng, 12)
    x = rng.standard_normal((max(lengths), 12, 16)).astype(np.float32)
    compare_layer(ours, reference, x, random_state(ours, 12, rng, np.float32), np.float32, rng, lengths, False)


def test_nan_inside_a_sequence_stays_inside_it():
    """NaN at a valid step spoils that sequence's outputs and state, not its padding or the others (as torch)."""
    lstm = lstmkit.LSTM(2, 3, bidirectional=True, dtype=np.float64, seed=0)
    reference = torch.nn.LSTM(2, 3, bidirectional=True).double()
    reference.load_state_dict({name: torch.tensor(value) for name, value in lstm.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((5, 3, 2))
    x[1, 0, 0] = np.nan
    lengths = [3, 5, 2]
    output, (h_n, _) = lstm(x, lengths=lengths)
    packed_t = torch_rnn.pack_padded_sequence(torch.tensor(x), lengths, enforce_sorted=False)
    output_t, _ = torch_rnn.pad_packed_sequence(reference(packed_t)[0], total_length=5)
    np.testing.assert_array_equal(np.isnan(output), np.isnan(output_t.detach().numpy()))
    assert np.isnan(output[:3, 0]).any(axis=-1).all() and np.all(output[3:, 0] == 0)
    assert not np.isnan(output[:, 1:]).any()
    assert np.isnan(h_n[:, 0]).all() and not np.isnan(h_n[:, 1:]).any()
