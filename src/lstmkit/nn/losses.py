"""Losses with PyTorch's semantics: ``value = loss(input, target)``, then ``dinput = loss.backward()``."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from . import checks
from .module import Module

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(owner: str, reduction: str) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{owner}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return reduction


class CrossEntropyLoss(Module):
    """Cross-entropy from unnormalised logits, as ``torch.nn.CrossEntropyLoss``.

    ==========  ===========  ====================================================
    input       (N, C)       logits (or (C,) for one sample)
    target      (N,)         class indices in [0, C), or ``ignore_index``
    returns     scalar       mean over non-ignored targets ('mean'), sum, or (N,) ('none')
    ==========  ===========  ====================================================
    """

    def __init__(self, ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__()
        self.ignore_index = int(ignore_index)
        self.reduction = _check_reduction("CrossEntropyLoss", reduction)
        self.label_smoothing = checks.check_probability("CrossEntropyLoss", "label_smoothing", label_smoothing)

    def forward(self, input: ArrayLike, target: ArrayLike) -> np.ndarray:
        owner = type(self).__name__
        logits = np.asarray(input)
        if logits.dtype.kind != "f":
            raise TypeError(f"{owner}: input must be floating-point logits, got dtype {logits.dtype}")
        labels = np.asarray(target)
        if labels.dtype.kind not in "iu":
            raise TypeError(f"{owner}: target must hold integer class indices, got dtype {labels.dtype}")
        unbatched = logits.ndim == 1
        if unbatched:
            logits, labels = logits[None], labels.reshape(1)
        if logits.ndim != 2 or labels.shape != logits.shape[:1]:
            raise ValueError(
                f"{owner}: expected input (N, C) and target (N,), got {np.shape(input)} and {np.shape(target)}"
            )
        classes = logits.shape[1]
        valid = labels != self.ignore_index
        if np.any((labels[valid] < 0) | (labels[valid] >= classes)):
            bad = labels[valid][(labels[valid] < 0) | (labels[valid] >= classes)]
            raise ValueError(
                f"{owner}: target must be in [0, {classes}) or ignore_index={self.ignore_index}, got {bad[0]}"
            )
        # softmax with the maximum shifted out; log p = shifted - log Σ exp(shifted). Computed in place
        # on one (N, C) buffer, which backward then turns into the gradient p - target.
        shifted = logits - np.max(logits, axis=1, keepdims=True)
        safe = np.where(valid, labels, 0)
        picked = np.take_along_axis(shifted, safe[:, None], axis=1)[:, 0]
        mean_shifted = shifted.mean(axis=1) if self.label_smoothing else 0.0
        probabilities = np.exp(shifted, out=shifted)
        normaliser = probabilities.sum(axis=1)
        probabilities /= normaliser[:, None]
        log_normaliser = np.log(normaliser)
        eps = self.label_smoothing
        # -(1-eps) log p[label] - eps * mean_c log p[c]
        per_sample = -((1 - eps) * (picked - log_normaliser) + eps * (mean_shifted - log_normaliser)) * valid
        count = int(valid.sum())
        self._save_for_backward((probabilities, safe, valid, count, unbatched))
        if self.reduction == "none":
            return per_sample[0] if unbatched else per_sample
        total = per_sample.sum()
        return total / count if self.reduction == "mean" else total

    def backward(self, doutput: float | ArrayLike = 1.0) -> np.ndarray:
        """Gradient of the logits, scaled by ``doutput`` (the gradient of the returned value)."""
        gradient, labels, valid, count, unbatched = self._pop_saved()  # the softmax buffer becomes the gradient
        if self.label_smoothing:
            gradient -= self.label_smoothing / gradient.shape[1]
        gradient[np.arange(len(labels)), labels] -= 1.0 - self.label_smoothing
        scale = np.asarray(doutput, dtype=gradient.dtype)
        if self.reduction == "mean":
            scale = scale / count if count else np.full_like(scale, np.nan)
        scale = scale * valid if scale.ndim == 0 else scale.reshape(-1) * valid
        gradient *= scale.astype(gradient.dtype, copy=False)[:, None]
        return gradient[0] if unbatched else gradient


class MSELoss(Module):
    """Mean squared error, as ``torch.nn.MSELoss``: input and target of the same shape."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = _check_reduction("MSELoss", reduction)

    def forward(self, input: ArrayLike, target: ArrayLike) -> np.ndarray:
        prediction, expected = np.asarray(input), np.asarray(target, dtype=np.asarray(input).dtype)
        if prediction.shape != expected.shape:
            raise ValueError(
                f"MSELoss: input and target must have the same shape, got {prediction.shape} and {expected.shape}"
            )
        difference = prediction - expected
        self._save_for_backward(difference)
        squared = difference * difference
        if self.reduction == "none":
            return squared
        return squared.mean() if self.reduction == "mean" else squared.sum()

    def backward(self, doutput: float | ArrayLike = 1.0) -> np.ndarray:
        difference = self._pop_saved()
        gradient = 2.0 * difference * np.asarray(doutput, dtype=difference.dtype)
        return gradient / difference.size if self.reduction == "mean" else gradient
