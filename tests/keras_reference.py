"""Helpers for the Keras-style tests: a lstmkit.keras layer and its keras twin with the same weights."""

from __future__ import annotations

import keras
import numpy as np

import lstmkit.keras as lk

# name -> (lstmkit.keras class, keras class, constructor options, state count)
KINDS = {
    "LSTM": (lk.LSTM, keras.layers.LSTM, {}, 2),
    "GRU": (lk.GRU, keras.layers.GRU, {}, 1),
    "SimpleRNN": (lk.SimpleRNN, keras.layers.SimpleRNN, {}, 1),
    "SimpleRNN-relu": (lk.SimpleRNN, keras.layers.SimpleRNN, {"activation": "relu"}, 1),
}

# (N, T) masks: padding at the end, any pattern (a real step after a masked one, a row masked at
# the start, a row masked everywhere)
MASKS = {
    "none": None,
    "padded": np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], bool),
    "any": np.array([[0, 1, 0, 1, 1], [1, 0, 0, 1, 0], [0, 0, 0, 0, 0]], bool),
}


def random_weights(layer, rng, scale=0.6):
    """Random weights of a built layer (biases not zero, so every path is exercised)."""
    return [scale * rng.standard_normal(w.shape) for w in layer.get_weights()]


def make_pair(kind, input_size, units, rng, dtype=np.float32, batch=None, **options):
    """A built lstmkit.keras layer and a keras layer of the same configuration, with the same random weights."""
    ours_class, keras_class, kind_options, _ = KINDS[kind]
    ours = ours_class(units, **kind_options, **options, dtype=dtype, seed=0)
    ours.build((None, None, input_size))
    ours.set_weights(random_weights(ours, rng))
    reference = keras_class(units, **kind_options, **options, dtype="float64" if dtype == np.float64 else "float32")
    reference.build((batch, None, input_size))
    reference.set_weights(ours.get_weights())
    return ours, reference


def keras_call(layer, x, **kwargs):
    """A keras layer's return as a list of numpy arrays."""
    kwargs = {key: value for key, value in kwargs.items() if value is not None}
    result = layer(x, **kwargs)
    return [np.asarray(r.detach().cpu()) for r in (result if isinstance(result, (list, tuple)) else [result])]


def as_list(result):
    return list(result) if isinstance(result, (list, tuple)) else [result]
