"""Keras' dropout and recurrent_dropout in training: Keras' own cell given the same masks,
finite differences with the masks held fixed, and the masks' statistics."""

import keras
import numpy as np
import pytest
from keras_reference import KINDS, MASKS, keras_call, make_pair
from test_keras_layers import _check_gradients

import lstmkit.keras as lk
from lstmkit.keras._formats import GRU_FORMAT, LSTM_FORMAT, SIMPLE_RNN_FORMAT

FORMATS = {"LSTM": LSTM_FORMAT, "GRU": GRU_FORMAT, "SimpleRNN": SIMPLE_RNN_FORMAT, "SimpleRNN-relu": SIMPLE_RNN_FORMAT}
# (dropout, recurrent_dropout); a recurrent rate of 1 drops nothing but still switches Keras to one
# input mask per gate
RATES = [(0.3, 0.4), (0.0, 0.5), (0.25, 0.0), (0.3, 1.0)]


def _used_masks(layer):
    """The GateDropout of the layer's latest training call (kept for its backward)."""
    return layer._saved[-1].saved.cache.dropout


def _as_keras_masks(masks, keras_format, dtype):
    """Our (K, N, F) masks, PyTorch's block order, as Keras' cell keeps them: one (N, F) tensor
    when there is one mask, else a list in Keras' block order."""
    if masks is None:
        return None
    tensors = [keras.ops.convert_to_tensor(mask, dtype=dtype) for mask in masks]
    if len(tensors) == 1:
        return tensors[0]
    return [tensors[keras_format.torch_blocks.index(keras_block)] for keras_block in range(len(tensors))]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rates", RATES)
@pytest.mark.parametrize("mask_name,go_backwards", [("none", False), ("any", True), ("padded", False)])
def test_training_call_equals_keras_with_the_same_masks(kind, rates, mask_name, go_backwards):
    dropout, recurrent_dropout = rates
    rng = np.random.default_rng(11)
    options = dict(return_sequences=True, return_state=True, go_backwards=go_backwards)
    options.update(dropout=dropout, recurrent_dropout=recurrent_dropout)
    ours, reference = make_pair(kind, 3, 4, rng, **options)
    x = rng.standard_normal((3, 5, 3)).astype(np.float32)
    actual = ours(x, mask=MASKS[mask_name], training=True)
    used = _used_masks(ours)
    expected_counts = (FORMATS[kind].gate_count if recurrent_dropout else 1, FORMATS[kind].gate_count)
    for masks, rate, count in zip(used, rates, expected_counts):
        assert (masks is None) == (rate == 0.0 or (rate == 1.0 and not kind.startswith("SimpleRNN")))
        if masks is not None:
            assert masks.shape[0] == count
    reference.cell._dropout_mask = _as_keras_masks(used.input, FORMATS[kind], "float32")
    reference.cell._recurrent_dropout_mask = _as_keras_masks(used.recurrent, FORMATS[kind], "float32")
    expected = keras_call(reference, x, mask=MASKS[mask_name], training=True)
    for ours_part, keras_part in zip(actual, expected):
        np.testing.assert_allclose(ours_part, keras_part, rtol=0, atol=1e-5)
    without = keras_call(reference, x, mask=MASKS[mask_name], training=False)
    assert not np.allclose(actual[0], without[0], atol=1e-3)  # the masks did change the result


def _hold_masks_fixed(layer, seed=3):
    """Every call of ``layer`` draws the same masks (what finite differences need)."""
    forward = layer.forward

    def forward_with_fixed_masks(*args, **kwargs):
        layer.reseed(seed)
        return forward(*args, **kwargs)

    layer.forward = forward_with_fixed_masks
    return layer


@pytest.mark.parametrize(
    "kind,mask_name,go_backwards",
    [
        ("LSTM", "any", False),
        ("LSTM", "none", True),
        ("GRU", "padded", True),
        ("GRU", "none", False),
        ("SimpleRNN", "any", False),
        ("SimpleRNN-relu", "none", True),
    ],
)
def test_gradients_with_dropout_by_finite_differences(kind, mask_name, go_backwards):
    rng = np.random.default_rng(2)
    layer_class, _, kind_options, state_count = KINDS[kind]
    layer = layer_class(
        3,
        **kind_options,
        return_sequences=True,
        return_state=True,
        go_backwards=go_backwards,
        dropout=0.3,
        recurrent_dropout=0.4,
        dtype=np.float64,
        seed=2,
    )
    layer.build((None, None, 2))
    layer.set_weights([0.6 * rng.standard_normal(w.shape) for w in layer.get_weights()])
    layer.train()
    x = rng.standard_normal((3, 5, 2))
    initial = [rng.standard_normal((3, 3)) for _ in range(state_count)]
    _check_gradients(_hold_masks_fixed(layer), x, initial, MASKS[mask_name])
    layer(x, initial_state=initial)
    assert (_used_masks(layer).recurrent == 0).any()  # the check ran with masks that drop


def test_gradients_of_bidirectional_with_recurrent_dropout_by_finite_differences():
    rng = np.random.default_rng(4)
    layer = lk.Bidirectional(
        lk.LSTM(2, return_sequences=True, recurrent_dropout=0.3, dropout=0.2, dtype=np.float64, seed=1),
        merge_mode="sum",
    )
    layer.build((None, None, 3))
    layer.set_weights([0.6 * rng.standard_normal(w.shape) for w in layer.get_weights()])
    layer.train()
    _check_gradients(_hold_masks_fixed(layer), rng.standard_normal((2, 4, 3)), mask=MASKS["any"][:2, :4])


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
def test_masks_drop_the_rate_scale_the_rest_and_change_between_calls(kind):
    layer_class, _, _, _ = KINDS[kind]
    layer = layer_class(8, dropout=0.2, recurrent_dropout=0.35, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((500, 3, 6))
    inference = layer(x)
    np.testing.assert_array_equal(layer(x, training=False), inference)
    layer.train()
    first = layer(x)
    masks = _used_masks(layer)
    second = layer(x)
    for array, rate in ((masks.input, 0.2), (masks.recurrent, 0.35)):
        assert set(np.unique(array)) == {0.0, 1.0 / (1.0 - rate)}
        assert abs((array == 0).mean() - rate) < 0.02
    assert not np.allclose(first, second)  # new masks for every call (Keras draws per batch)
    layer.eval()
    np.testing.assert_array_equal(layer(x), inference)  # eval: no dropout at all


def test_recurrent_dropout_of_one_drops_nothing_as_keras():
    """Keras applies a mask only for 0 < rate < 1; a rate of 1 leaves the cell as it is."""
    rng = np.random.default_rng(0)
    ours, reference = make_pair("LSTM", 2, 3, rng, recurrent_dropout=1.0, return_sequences=True)
    x = rng.standard_normal((2, 4, 2)).astype(np.float32)
    np.testing.assert_allclose(ours(x, training=True), keras_call(reference, x, training=True)[0], atol=1e-5)
