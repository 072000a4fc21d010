"""Where the fast paths get their compiled kernels, and which loop a layer's size calls for."""

from __future__ import annotations

import functools

# A layer whose recurrent product per step, N x H x G·H multiply-adds, is at most this many runs
# its whole time loop compiled (hand-written product, no call back into Python per step); a
# larger one calls BLAS for the product from a Python loop, where the call's microseconds no
# longer matter. The crossover was measured with benchmarks/bench_recurrent.py on this machine.
SMALL_LAYER_MULTIPLY_ADDS = 1 << 16


@functools.cache
def compiled_kernels():
    """:mod:`._kernels`, imported (and Numba with it) on the first call, not at ``import lstmkit``."""
    from . import _kernels

    return _kernels


def is_small(batch: int, hidden: int, gate_count: int) -> bool:
    """Whether a layer runs its whole time loop in compiled code (see SMALL_LAYER_MULTIPLY_ADDS)."""
    return batch * hidden * gate_count * hidden <= SMALL_LAYER_MULTIPLY_ADDS
