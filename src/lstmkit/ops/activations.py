"""Elementwise activations and their derivatives, written to never overflow.

The derivatives are expressed through the activation's *output* (``y``), which is what
the recurrent ops keep in their caches: ``sigmoid'(z) = y (1 - y)`` and ``tanh'(z) = 1 - y²``.
"""

from __future__ import annotations

import numpy as np


def sigmoid(z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Logistic function 1 / (1 + exp(-z)), exact in both tails and free of overflow.

    ``exp`` only ever sees ``-|z| <= 0``, so inputs of any magnitude (1e4, 1e30) give 0 or 1
    without a warning; NaN stays NaN.
    """
    e = np.exp(-np.abs(z))
    denominator = 1.0 + e
    numerator = np.where(z >= 0, 1.0, e).astype(z.dtype, copy=False)
    return np.divide(numerator, denominator, out=out)


def tanh(z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Hyperbolic tangent (NumPy's is already overflow-free)."""
    return np.tanh(z, out=out)


def relu(z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """max(z, 0); NaN stays NaN."""
    return np.maximum(z, 0, out=out)


def sigmoid_grad(y: np.ndarray) -> np.ndarray:
    """d sigmoid / dz, given y = sigmoid(z)."""
    return y * (1.0 - y)


def tanh_grad(y: np.ndarray) -> np.ndarray:
    """d tanh / dz, given y = tanh(z)."""
    return 1.0 - y * y


def relu_grad(y: np.ndarray) -> np.ndarray:
    """d relu / dz, given y = relu(z) (0 at z = 0, as PyTorch)."""
    return (y > 0).astype(y.dtype)
