"""Layer normalisation over the last axis (Ba et al. 2016), as ``torch.nn.functional.layer_norm``::

    μ = mean(a),   σ² = mean((a - μ)²)       over the last axis (biased variance)
    â = (a - μ) / sqrt(σ² + eps)              eps = 1e-5, as torch.nn.LayerNorm
    y = â ⊙ weight + bias                     bias optional

    ============  ==========  ==========================================
    a, y          (..., F)    the values to normalise, and the result
    weight, bias  (F,)        the gain, and the shift (or None)
    normalised    (..., F)    â, kept for the backward
    rstd          (..., 1)    1 / sqrt(σ² + eps), kept for the backward
    ============  ==========  ==========================================

The gradients of ``weight`` and ``bias`` are ``Σ dy ⊙ â`` and ``Σ dy`` over every leading
axis: the caller forms them once, over all steps, from the ``â`` it kept.
"""

from __future__ import annotations

import numpy as np

LAYER_NORM_EPS = 1e-5


def layer_norm(a: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, eps: float = LAYER_NORM_EPS):
    """``(y, â, rstd)`` for ``a`` (..., F), normalised over its last axis (see the module docstring)."""
    centred = a - a.mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(np.mean(centred * centred, axis=-1, keepdims=True) + eps)
    normalised = centred * rstd
    y = normalised * weight
    if bias is not None:
        y += bias
    return y, normalised, rstd


def layer_norm_backward(dy: np.ndarray, weight: np.ndarray, normalised: np.ndarray, rstd: np.ndarray) -> np.ndarray:
    """The gradient of ``a`` from that of ``y`` (..., F), given :func:`layer_norm`'s ``â`` and ``rstd``:
    ``rstd ⊙ (dâ - mean(dâ) - â ⊙ mean(dâ ⊙ â))`` with ``dâ = dy ⊙ weight``."""
    dnormalised = dy * weight
    mean_grad = dnormalised.mean(axis=-1, keepdims=True)
    mean_projection = np.mean(dnormalised * normalised, axis=-1, keepdims=True)
    return rstd * (dnormalised - mean_grad - normalised * mean_projection)
