"""lstmkit.keras.Bidirectional against keras.layers.Bidirectional: merge modes, masks, states, gradients."""

import itertools

import keras
import numpy as np
import pytest
from keras_reference import KINDS, MASKS, keras_call, random_weights
from test_keras_layers import _check_gradients

import lstmkit.keras as lk

MERGE_MODES = ["concat", "sum", "mul", "ave", None]
CASES = list(itertools.product(["LSTM", "GRU", "SimpleRNN"], MERGE_MODES, [False, True], ["none", "any"]))


def make_bidirectional(kind, units, input_size, rng, merge_mode, dtype=np.float32, **options):
    ours_class, keras_class, kind_options, _ = KINDS[kind]
    ours = lk.Bidirectional(ours_class(units, **kind_options, **options, dtype=dtype), merge_mode=merge_mode)
    ours.build((None, None, input_size))
    ours.set_weights(random_weights(ours, rng))
    return ours, keras_class, kind_options


@pytest.mark.parametrize("kind,merge_mode,return_sequences,mask_name", CASES)
def test_bidirectional_equals_keras(kind, merge_mode, return_sequences, mask_name):
    rng = np.random.default_rng(len(kind) + 7 * return_sequences)
    options = dict(return_sequences=return_sequences, return_state=True)
    ours, keras_class, kind_options = make_bidirectional(kind, 3, 2, rng, merge_mode, **options)
    reference = keras.layers.Bidirectional(keras_class(3, **kind_options, **options), merge_mode=merge_mode)
    reference.build((None, None, 2))
    reference.set_weights(ours.get_weights())
    x = rng.standard_normal((3, 5, 2)).astype(np.float32)
    initial = [rng.standard_normal((3, 3)).astype(np.float32) for _ in range(2 * KINDS[kind][3])]
    mask = MASKS[mask_name]
    expected = keras_call(reference, x, mask=mask, initial_state=initial)
    actual = ours(x, initial_state=initial, mask=mask)
    assert len(actual) == len(expected)
    for ours_part, keras_part in zip(actual, expected):
        assert ours_part.shape == keras_part.shape
        np.testing.assert_allclose(ours_part, keras_part, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "kind,merge_mode,return_sequences,with_state",
    [
        ("LSTM", "concat", True, True),
        ("GRU", "mul", True, False),
        ("SimpleRNN", None, False, True),
        ("LSTM", "ave", False, False),
        ("GRU", "sum", True, True),
    ],
)
def test_bidirectional_gradients_by_finite_differences(kind, merge_mode, return_sequences, with_state):
    rng = np.random.default_rng(4)
    layer, _, _ = make_bidirectional(
        kind, 2, 3, rng, merge_mode, dtype=np.float64, return_sequences=return_sequences, return_state=with_state
    )
    x = rng.standard_normal((3, 5, 3))
    initial = [rng.standard_normal((3, 2)) for _ in range(2 * KINDS[kind][3])] if with_state else None
    _check_gradients(layer, x, initial, MASKS["any"])


def test_weights_order_and_parameter_names():
    layer = lk.Bidirectional(lk.LSTM(4, seed=0))
    layer.build((None, None, 3))
    names = [name for name, _ in layer.named_parameters()]
    weights = ("kernel", "recurrent_kernel", "bias")
    assert names == [f"{side}_layer.{w}" for side in ("forward", "backward") for w in weights]
    forward, backward = layer.get_weights()[:3], layer.get_weights()[3:]
    assert not np.array_equal(forward[0], backward[0])  # two fresh copies, different draws
    reference = keras.layers.Bidirectional(keras.layers.LSTM(4))
    reference.build((None, None, 3))
    assert layer.count_params() == reference.count_params()
