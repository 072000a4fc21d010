"""Where the fast paths get their compiled kernels, and which loop a layer's size calls for."""

from __future__ import annotations

import functools
import warnings

import numpy as np

# A layer whose recurrent product per step, N x H x G·H multiply-adds, is at most this many runs
# its backward time loop compiled (hand-written product, no call back into Python per step),
# and its forward loop up to FORWARD_FACTOR times as many; a larger one calls BLAS for the
# product from a Python loop, where the call's microseconds no longer matter. Measured at 2^18
# multiply-adds (`python benchmarks/ab.py loops`: LSTM N=4, H=128; N=16, H=64; N=64, H=32; GRU
# N=4, H=128 and N=16, H=64), over two runs the compiled forward took 0.45-0.93 of the Python
# loop's time (once 1.17, where the same setting also read 0.77); training steps with both loops
# compiled took 0.68-1.23 (the forward's product takes four rows at a time, the backward's
# dz W_hh has no such kernel), so the backward keeps the smaller limit.
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


# The tiniest layers run their recurrent product with W_hh transposed (see
# _kernels.recurrent_product). `python benchmarks/ab.py transposed`, time a step transposed over
# as stored: N=1, H=32: LSTM 0.82, GRU 0.82; N=2, H=64: 0.89; but N=1, H=64: 1.19; from N=4 the
# stored layout's four-row products win.
TRANSPOSED_PRODUCT_MAX_BATCH, TRANSPOSED_PRODUCT_MAX_HIDDEN = 3, 64


def transposes_recurrent_weight(batch: int, hidden: int) -> bool:
    """Whether a small layer's compiled loop reads W_hh transposed (see above)."""
    if batch > TRANSPOSED_PRODUCT_MAX_BATCH or hidden > TRANSPOSED_PRODUCT_MAX_HIDDEN:
        return False
    return batch >= 2 or 2 * hidden <= TRANSPOSED_PRODUCT_MAX_HIDDEN


# A small batch-1 LSTM of at least TWO_CORE_MIN_HIDDEN units and TWO_CORE_MIN_STEPS steps runs its
# forward loop on two cores, half of the units each (_pipeline.lstm_loop_on_two_cores), where a
# helper thread can take part. The loop of one core is bound by reading W_hh from its cache every
# step; two read half each, but meet once a step and pay about 20 µs a call to start.
# `python benchmarks/ab.py cores`, time a step on two cores over one: see the README.
TWO_CORE_MAX_BATCH, TWO_CORE_MIN_HIDDEN, TWO_CORE_MIN_STEPS = 1, 128, 32


def runs_on_two_cores(steps: int, batch: int, hidden: int) -> bool:
    """Whether a small LSTM's forward loop is shared between two cores (see above)."""
    return batch <= TWO_CORE_MAX_BATCH and hidden >= TWO_CORE_MIN_HIDDEN and steps >= TWO_CORE_MIN_STEPS


def recurrent_weight(weight_hh, batch: int, dtype):
    """W_hh (G, H) as a small layer's compiled loop takes it: as stored, or transposed (H, G)
    for the tiniest layers, C-contiguous either way."""
    if transposes_recurrent_weight(batch, weight_hh.shape[1]):
        return np.ascontiguousarray(weight_hh.T, dtype=dtype)
    return np.ascontiguousarray(weight_hh, dtype=dtype)


# A small layer's backward loop computes dh = dz W_hh (N, G) x (G, H) from W_hhᵀ (H, G), dot
# products along G (_kernels.gradient_product), or from W_hh as stored. `python benchmarks/ab.py
# backward`, a training step with W_hhᵀ over W_hh as stored, two runs on the AVX-512 machine: LSTM
# 0.74-1.03 (batch 1 at H = 32 and 128, batch 4 at H = 64), GRU 0.84-1.05.
BACKWARD_TRANSPOSED = True


def backward_weight(weight_hh):
    """W_hh (G, H), C-contiguous, as a small layer's backward loop takes it: transposed (H, G)
    where BACKWARD_TRANSPOSED says so (a copy), else as it is."""
    return np.ascontiguousarray(weight_hh.T) if BACKWARD_TRANSPOSED else weight_hh


# A large layer's per-step product runs on a C-contiguous copy of W_hhᵀ (True) or on the transposed
# view (False). `python benchmarks/ab.py copy`, layer inference with the copy over the view: on the
# AVX-512 machine of the latest runs 0.84-0.98 at every size (H = 128 to 512, LSTM and GRU); on the
# AVX2 machine of the sessions before, 0.91-1.00 at H = 128 and 0.96-1.04 above.
TRANSPOSED_COPY = True


def recurrent_products(h, weight_hh):
    """The Python loop of a large layer: for t = 0 .. T-1, yields ``(t, h[t] W_hhᵀ)`` (N, G), one
    BLAS product into one reused buffer. ``h`` is (T+1, N, H); the caller's step must write
    h[t+1] before asking for the next product."""
    product = np.empty((h.shape[1], weight_hh.shape[0]), dtype=h.dtype)
    weight_hh_t = np.ascontiguousarray(weight_hh.T) if TRANSPOSED_COPY else weight_hh.T
    for t in range(h.shape[0] - 1):
        np.matmul(h[t], weight_hh_t, out=product)
        yield t, product
