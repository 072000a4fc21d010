"""Keras' default initialisers, drawn with a ``numpy.random.Generator`` (same laws, not Keras' numbers).

==================  =============================================================
glorot_uniform      uniform in ±sqrt(6 / (fan_in + fan_out)), fan_in, fan_out = shape
orthogonal          Q of the QR of a normal matrix, signs fixed by diag(R): rows or
                    columns orthonormal (whichever are fewer)
zeros               every bias, except LSTM's forget block: ones (unit_forget_bias)
==================  =============================================================
"""

from __future__ import annotations

import numpy as np


def glorot_uniform(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    limit = np.sqrt(6.0 / (shape[0] + shape[1]))
    return rng.uniform(-limit, limit, size=shape)


def orthogonal(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    rows, cols = shape
    q, r = np.linalg.qr(rng.standard_normal((max(rows, cols), min(rows, cols))))
    q *= np.sign(np.diag(r))
    return q.T if rows < cols else q


def keras_bias(shape: tuple[int, ...], forget_block: int | None = None) -> np.ndarray:
    """Zeros, with ones in gate block ``forget_block`` (of 4) when given (LSTM's unit_forget_bias)."""
    bias = np.zeros(shape)
    if forget_block is not None:
        units = shape[-1] // 4
        bias[..., forget_block * units : (forget_block + 1) * units] = 1.0
    return bias
