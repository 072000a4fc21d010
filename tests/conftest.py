"""Shared helpers: run lstmkit and torch on the same weights, inputs and upstream gradients."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import lstmkit  # noqa: F401  before NumPy, as a user's script would (lstmkit._openblas)

# isort: split
import numpy as np
import pytest
import torch

torch.set_num_threads(1)

TORCH_DTYPES = {np.float32: torch.float32, np.float64: torch.float64}


def max_error(actual, expected) -> float:
    """Largest absolute difference, relative to the largest magnitude of ``expected`` (>= 1 for tiny tensors)."""
    return float(np.max(np.abs(np.asarray(actual) - np.asarray(expected)), initial=0.0))


def assert_close(actual, expected, dtype, what=""):
    """float64: max abs difference <= 1e-10; float32: <= 2e-5 relative to the tensor's largest magnitude."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    error = max_error(actual, expected)
    if dtype == np.float64:
        assert error <= 1e-10, f"{what}: max abs difference {error:.3g} > 1e-10"
    else:
        scale = max(float(np.max(np.abs(expected), initial=0.0)), 1e-30)
        assert error <= 2e-5 * scale, f"{what}: max abs difference {error:.3g} > 2e-5 * {scale:.3g}"


def to_torch_module(module, torch_class, dtype, **kwargs):
    """A torch module of ``torch_class`` holding ``module``'s weights."""
    reference = torch_class(**kwargs).to(TORCH_DTYPES[dtype])
    reference.load_state_dict({name: torch.from_numpy(array.copy()) for name, array in module.state_dict().items()})
    return reference


def torch_grads(outputs, upstream, leaves):
    """Backpropagate sum(output * upstream) through torch and return each leaf's gradient (or None)."""
    total = sum((out * torch.from_numpy(g)).sum() for out, g in zip(outputs, upstream) if g is not None)
    total.backward()
    return [None if leaf is None or leaf.grad is None else leaf.grad.numpy() for leaf in leaves]


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
