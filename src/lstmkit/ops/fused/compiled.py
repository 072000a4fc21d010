"""Where the fast paths get their compiled kernels: imported on first use, not at ``import lstmkit``."""

from __future__ import annotations

import functools
import warnings

import numpy as np


@functools.cache
def compiled_kernels():
    """:mod:`.kernels`, imported (and Numba with it) on the first call; None, with a warning, where
    Numba cannot be imported: the fast ops then run the reference."""
    try:
        from . import kernels
    except ImportError as error:
        warnings.warn(
            f"lstmkit: Numba could not be imported ({error}); LSTM and GRU layers run the reference "
            "ops instead of the compiled fast paths (the same results, several times slower)",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    return kernels


def kernels_for(x: np.ndarray, weights) -> object | None:
    """The compiled kernels if they can run a call on ``x`` with ``weights`` (a NamedTuple of arrays
    or None): float32 or float64, every weight of x's dtype. None otherwise."""
    if x.dtype not in (np.float32, np.float64) or any(w is not None and w.dtype != x.dtype for w in weights):
        return None
    return compiled_kernels()
