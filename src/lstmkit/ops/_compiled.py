"""Where the fast paths get their compiled kernels, and which loop a layer's size calls for."""

from __future__ import annotations

import functools
import warnings

import numpy as np

# A layer whose recurrent product per step, N x H x G·H multiply-adds, is at most this many runs
# its backward time loop compiled (hand-written product, no call back into Python per step),
# and its forward loop up to FORWARD_FACTOR times as many; a larger one calls BLAS for the
# product from a Python loop, where the call's microseconds no longer matter. Measured here at
# 2^18 multiply-adds (LSTM N=4, H=128; N=16, H=64; N=64, H=32; GRU N=4, H=128 and N=16, H=64),
# the compiled forward took 0.59-0.94 of the Python loop's time, but training steps with both
# loops compiled took 1.06-1.25 of it at N >= 16 (the forward's product takes four rows at a
# time; the backward's dz W_hh has no such kernel), hence the smaller backward limit.
SMALL_LAYER_MULTIPLY_ADDS = 1 << 16
FORWARD_FACTOR = 4


@functools.cache
def compiled_kernels():
    """:mod:`._kernels`, imported (and Numba with it) on the first call, not at ``import lstmkit``;
    None, with a warning, where Numba cannot be imported: the fast paths then run the reference."""
    try:
        from . import _kernels
    except ImportError as error:
        warnings.warn(f"lstmkit: Numba could not be imported ({error}); LSTM and GRU layers run the reference "
                      "ops instead of the compiled fast paths (the same results, several times slower)",
                      RuntimeWarning, stacklevel=2)
        return None
    return _kernels


def kernels_for(x, weights):
    """The compiled kernels if they can run a call on ``x`` with ``weights`` (a NamedTuple of arrays
    or None): float32 or float64, every weight of x's dtype. None otherwise."""
    if x.dtype not in (np.float32, np.float64) or any(w is not None and w.dtype != x.dtype for w in weights):
        return None
    return compiled_kernels()


def is_small(batch: int, hidden: int, gate_count: int, forward: bool = False) -> bool:
    """Whether a layer runs its whole time loop, forward or backward, in compiled code (see
    SMALL_LAYER_MULTIPLY_ADDS)."""
    limit = SMALL_LAYER_MULTIPLY_ADDS * (FORWARD_FACTOR if forward else 1)
    return batch * hidden * gate_count * hidden <= limit


# A small layer with at most this many batch rows and hidden units runs its recurrent product
# with W_hh transposed (see _kernels.recurrent_product): at N=1, H=32 a step took 0.67 µs
# against 0.83 µs with W_hh as stored; from H=128, or N >= 4, the stored layout was as fast or faster.
TRANSPOSED_PRODUCT_MAX_BATCH, TRANSPOSED_PRODUCT_MAX_HIDDEN = 3, 64


def recurrent_weight(weight_hh, batch: int, dtype):
    """W_hh (G, H) as a small layer's compiled loop takes it: as stored, or transposed (H, G)
    for the tiniest layers, C-contiguous either way."""
    hidden = weight_hh.shape[1]
    if batch <= TRANSPOSED_PRODUCT_MAX_BATCH and hidden <= TRANSPOSED_PRODUCT_MAX_HIDDEN:
        return np.ascontiguousarray(weight_hh.T, dtype=dtype)
    return np.ascontiguousarray(weight_hh, dtype=dtype)


def recurrent_products(h, weight_hh):
    """The Python loop of a large layer: for t = 0 .. T-1, yields ``(t, h[t] W_hhᵀ)`` (N, G), one
    BLAS product into one reused buffer. ``h`` is (T+1, N, H); the caller's step must write
    h[t+1] before asking for the next product."""
    product = np.empty((h.shape[1], weight_hh.shape[0]), dtype=h.dtype)
    weight_hh_t = np.ascontiguousarray(weight_hh.T)  # BLAS is a little faster on it than on the view
    for t in range(h.shape[0] - 1):
        np.matmul(h[t], weight_hh_t, out=product)
        yield t, product
