"""Hand-built PackedSequences: every field is checked at the boundary, with an error naming it.

Each bad field gives a TypeError (wrong type or dtype) or a ValueError (wrong value) that names
the field, what was expected and what was given, through LSTM, GRU and RNN alike (never an
IndexError or AttributeError from inside); valid PackedSequences still equal torch.
"""

import numpy as np
import pytest
import torch
import torch.nn.utils.rnn as torch_rnn

import lstmkit

LAYERS = ["LSTM", "GRU", "RNN"]
LENGTHS = [5, 2, 4]  # 11 valid steps; sorted order (0, 2, 1)


@pytest.fixture
def packed():
    x = np.random.default_rng(0).standard_normal((5, 3, 2))
    return lstmkit.pack_padded_sequence(x, LENGTHS, enforce_sorted=False)


def layer(name):
    return getattr(lstmkit, name)(2, 4, dtype=np.float64)


BAD_FIELDS = [
    # (what is replaced, error type, a regular expression the message must match)
    ({"data": None}, TypeError, r"input.data must be an array of sum\(batch_sizes\) = 11 rows, got None"),
    ({"data": np.zeros((11, 2), dtype=np.int64)}, TypeError, "input.data must hold real floating-point numbers, got"),
    ({"data": np.zeros(11)}, ValueError, r"input.data must be of rank 2 \(sum\(batch_sizes\), H_in\), got rank 1"),
    ({"data": np.zeros((10, 2))}, ValueError, r"input.data must have sum\(batch_sizes\) = 11 rows, got shape"),
    ({"batch_sizes": None}, TypeError, "input.batch_sizes must be a non-empty 1-D integer array, got None"),
    (
        {"batch_sizes": np.array([3.0, 3.0, 2.0, 2.0, 1.0])},
        TypeError,
        "input.batch_sizes must be a non-empty 1-D .*float64",
    ),
    ({"batch_sizes": np.array([[3, 3, 2, 2, 1]])}, TypeError, r"input.batch_sizes must be .* shape \(1, 5\)"),
    ({"batch_sizes": np.array([], dtype=np.int64)}, ValueError, "input.batch_sizes must be a non-empty .* empty array"),
    ({"batch_sizes": np.array([3, 3, 2, 4, -1])}, ValueError, "input.batch_sizes must be positive and non-increasing"),
    (
        {"batch_sizes": np.array([2**62, 2**62, 2**62, 2**62])},
        ValueError,
        "input.batch_sizes must sum to a number of rows",
    ),
    ({"sorted_indices": None}, ValueError, "input.sorted_indices and unsorted_indices must both be given or both"),
    (
        {"sorted_indices": np.array([0.0, 2.0, 1.0])},
        TypeError,
        r"input.sorted_indices must be a 1-D integer perm.*float",
    ),
    ({"unsorted_indices": np.array([0, 2, 1.5])}, TypeError, r"input.unsorted_indices must be a 1-D integer perm"),
    (
        {"sorted_indices": np.array([0, 2, 3])},
        ValueError,
        r"input.sorted_indices must be .* range\(3\) .*got \[0, 2, 3\]",
    ),
    ({"sorted_indices": np.array([0, -1, 1])}, ValueError, r"input.sorted_indices must be .* got \[0, -1, 1\]"),
    ({"unsorted_indices": np.array([0, 2, 99])}, ValueError, r"input.unsorted_indices must be .* got \[0, 2, 99\]"),
    ({"sorted_indices": np.array([0, 2])}, ValueError, r"input.sorted_indices must be .* got \[0, 2\]"),
    ({"unsorted_indices": np.array([0, 1, 2, 0])}, ValueError, r"input.unsorted_indices must .* shape \(4,\)"),
    ({"sorted_indices": np.array([0, 0, 1])}, ValueError, r"input.sorted_indices must be a permutation .* inverse"),
    (
        {"unsorted_indices": np.array([0, 1, 2])},
        ValueError,
        r"input.sorted_indices must be a perm.* unsorted_indices its inverse .* got \[0, 2, 1\] .* and \[0, 1, 2\]",
    ),
]


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize(
    "replaced,error,message", BAD_FIELDS, ids=[str(list(case[0])) + str(i) for i, case in enumerate(BAD_FIELDS)]
)
def test_every_bad_field_is_a_clear_error_naming_it(packed, name, replaced, error, message):
    module = layer(name)
    with pytest.raises(error, match=f"{name}: {message}"):
        module(packed._replace(**replaced))
    assert module._saved == []  # nothing was cached by the refused call


def test_the_packed_gradient_is_checked_the_same_way(packed):
    lstm = layer("LSTM")
    output, _ = lstm(packed)
    with pytest.raises(
        TypeError, match=r"LSTM: doutput.data must be an array of sum\(batch_sizes\) = 11 rows, got None"
    ):
        lstm.backward(output._replace(data=None))
    with pytest.raises(ValueError, match=r"LSTM: doutput.sorted_indices must be .* got \[0, 5, 1\]"):
        lstm.backward(output._replace(sorted_indices=np.array([0, 5, 1])))
    dx, _ = lstm.backward(output)  # the refused calls consumed nothing
    assert dx.data.shape == (11, 2)


def test_pad_packed_sequence_checks_the_fields_but_takes_any_numbers():
    ids = lstmkit.pack_sequence([np.array([3, 1, 4]), np.array([1, 5])])  # token ids pack and pad as in torch
    padded, lengths = lstmkit.pad_packed_sequence(ids)
    assert padded.tolist() == [[3, 1], [1, 5], [4, 0]] and lengths.tolist() == [3, 2]
    with pytest.raises(TypeError, match="pad_packed_sequence: sequence.data must be an array .* got None"):
        lstmkit.pad_packed_sequence(ids._replace(data=None))
    with pytest.raises(TypeError, match="pad_packed_sequence: sequence.data must hold numbers, got dtype <U1"):
        lstmkit.pad_packed_sequence(ids._replace(data=np.array(list("abcde"))))


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("enforce_sorted", [False, True])
def test_valid_packed_sequences_still_equal_torch(name, enforce_sorted):
    rng = np.random.default_rng(1)
    lengths = sorted(LENGTHS, reverse=True) if enforce_sorted else LENGTHS
    x = rng.standard_normal((5, 3, 2))
    module = layer(name)
    reference = getattr(torch.nn, name)(2, 4).double()
    reference.load_state_dict({key: torch.from_numpy(value) for key, value in module.state_dict().items()})
    output, state = module(lstmkit.pack_padded_sequence(x, lengths, enforce_sorted=enforce_sorted))
    packed_t = torch_rnn.pack_padded_sequence(torch.from_numpy(x), lengths, enforce_sorted=enforce_sorted)
    with torch.no_grad():
        output_t, state_t = reference(packed_t)
    np.testing.assert_allclose(output.data, output_t.data.numpy(), rtol=0, atol=1e-10)
    for mine, theirs in zip(
        state if isinstance(state, tuple) else (state,), state_t if isinstance(state_t, tuple) else (state_t,)
    ):
        np.testing.assert_allclose(mine, theirs.numpy(), rtol=0, atol=1e-10)
    for field in ("batch_sizes", "sorted_indices", "unsorted_indices"):
        mine, theirs = getattr(output, field), getattr(output_t, field)
        assert (mine is None) == (theirs is None), field
        if mine is not None:
            np.testing.assert_array_equal(mine, theirs.numpy())


def test_index_arrays_of_any_integer_dtype_and_lists_are_accepted(packed):
    lstm = layer("LSTM")
    expected, _ = lstm(packed)
    given = packed._replace(
        batch_sizes=packed.batch_sizes.astype(np.int32).tolist(),
        sorted_indices=packed.sorted_indices.astype(np.uint8),
        unsorted_indices=list(packed.unsorted_indices),
    )
    output, _ = lstm(given)
    np.testing.assert_array_equal(output.data, expected.data)
    assert output.batch_sizes.dtype == np.int64 and output.sorted_indices.dtype == np.int64
