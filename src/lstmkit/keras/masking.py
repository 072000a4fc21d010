"""Keras' masks: the ``Masking`` layer, mask checks, and what a masked step outputs.

A mask is an (N, T) boolean array, True where step t of sequence n is real. Keras lets any
pattern through (not only padding at the end). At a masked step a recurrent layer carries its
state unchanged, and its output is, as Keras' ``backend.rnn`` computes it:

    ===========================  ==============================================================
    zero_output_for_mask=False   the previous step's output (zero before the first real step);
    (Keras' default)             this equals the carried h once a real step has been seen
    zero_output_for_mask=True    zero (what ``Bidirectional`` sets when return_sequences=True)
    ===========================  ==============================================================

The time loop (:func:`lstmkit.ops.recurrence.scan` given a (T, N) boolean mask) carries the
state and outputs zero at masked steps; :func:`repeat_last_output` turns that into Keras'
default, and :func:`repeat_last_output_backward` is its transpose.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ..nn import checks
from ..nn.module import Module


def check_mask(owner: str, mask, expected_shape: tuple[int, int]) -> np.ndarray | None:
    """``mask`` as an (N, T) boolean array (None stays None), or an error naming what was expected."""
    if mask is None:
        return None
    array = np.asarray(mask)
    if array.dtype != np.bool_:
        raise TypeError(
            f"{owner}: mask must be a boolean array of shape (N, T) = {expected_shape}, got dtype {array.dtype}"
        )
    checks.check_shape(owner, "mask (N, T)", array, expected_shape)
    return array


def last_real_step(running: np.ndarray) -> np.ndarray:
    """(T, N) index of the latest step <= t at which sequence n was real, -1 before the first one."""
    steps = np.arange(running.shape[0])[:, None]
    return np.maximum.accumulate(np.where(running, steps, -1), axis=0)


def repeat_last_output(output: np.ndarray, source: np.ndarray) -> np.ndarray:
    """``output`` (T, N, U), zero at masked steps, with each masked step repeating step ``source[t, n]``."""
    gathered = np.take_along_axis(output, np.maximum(source, 0)[:, :, None], axis=0)
    return np.where(source[:, :, None] >= 0, gathered, 0).astype(output.dtype, copy=False)


def repeat_last_output_backward(doutput: np.ndarray, source: np.ndarray) -> np.ndarray:
    """The transpose of :func:`repeat_last_output`: each step's gradient added to its source step."""
    gradient = np.zeros_like(doutput)
    seen = source >= 0
    np.add.at(gradient, (source[seen], np.nonzero(seen)[1]), doutput[seen])
    return gradient


class Masking(Module):
    """Keras' ``Masking(mask_value=0.0)``: steps whose features all equal ``mask_value`` are masked.

    ==========  ==========  ====================================================
    input       (N, T, F)
    output      (N, T, F)   the input, with masked steps set to zero (as Keras)
    mask        (N, T)      ``compute_mask(input)``: True where a step is real
    ==========  ==========  ====================================================

    Inside :class:`lstmkit.keras.Sequential` the mask travels to the next layers as in Keras;
    standing alone, pass ``masking.compute_mask(x)`` as the recurrent layer's ``mask=``.
    """

    def __init__(self, mask_value: float = 0.0):
        super().__init__()
        self.mask_value = mask_value

    def compute_mask(self, inputs, mask=None) -> np.ndarray:
        return np.any(np.asarray(inputs) != self.mask_value, axis=-1)

    def forward(self, inputs: ArrayLike, mask: ArrayLike | None = None) -> np.ndarray:
        x = np.asarray(inputs)
        if x.ndim != 3:
            raise ValueError(f"Masking: expected input of rank 3 (N, T, F), got shape {x.shape}")
        keep = self.compute_mask(x)[..., None].astype(x.dtype)
        self._save_for_backward(keep)
        return x * keep

    def backward(self, doutput: ArrayLike) -> np.ndarray:
        return np.asarray(doutput) * self._pop_saved()

    def __repr__(self) -> str:
        return f"Masking(mask_value={self.mask_value})"
