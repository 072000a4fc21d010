"""How the two directions of a bidirectional layer meet: Keras Bidirectional's merge modes
("concat", "sum", "mul", "ave") and their backward."""

from __future__ import annotations

import numpy as np


def merge_directions(merge_mode: str, forward: np.ndarray, reverse: np.ndarray) -> np.ndarray:
    """The two directions' outputs (T, N, H_out) as one: Keras Bidirectional's merge modes."""
    if merge_mode == "concat":
        return np.concatenate((forward, reverse), axis=-1)
    if merge_mode == "sum":
        return forward + reverse
    if merge_mode == "mul":
        return forward * reverse
    return (forward + reverse) / 2  # "ave"


def merge_directions_backward(merge_mode: str, dmerged: np.ndarray, outputs) -> tuple[np.ndarray, np.ndarray]:
    """The gradients of the two outputs :func:`merge_directions` merged, from the merged one's.
    ``outputs``: the (forward, reverse) outputs, needed for "mul" only (the product rule)."""
    if merge_mode == "concat":
        width = dmerged.shape[-1] // 2
        return dmerged[..., :width], dmerged[..., width:]
    if merge_mode == "sum":
        return dmerged, dmerged
    if merge_mode == "mul":
        forward, reverse = outputs
        return dmerged * reverse, dmerged * forward
    half = dmerged / 2  # "ave"
    return half, half
