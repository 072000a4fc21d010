"""Dropout's masks, drawn in one place: the layers' dropout, the recurrent layers' dropout between
layers and on h_{t-1}, and the Keras-style layers' masks."""

from __future__ import annotations

import numpy as np


def inverted_dropout_mask(rng: np.random.Generator, shape: tuple[int, ...], rate: float, dtype) -> np.ndarray:
    """A mask of ``shape``: 0 where a unit is dropped (probability ``rate``), ``1 / (1 - rate)``
    where it is kept, so that its expectation is 1; all zeros (and no draw) at ``rate`` 1."""
    dtype = np.dtype(dtype)
    if rate == 1.0:
        return np.zeros(shape, dtype=dtype)
    return (rng.random(shape) >= rate).astype(dtype) / dtype.type(1.0 - rate)
