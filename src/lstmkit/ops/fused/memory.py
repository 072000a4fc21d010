"""Memory of the fast paths: aligned copies, a scratch buffer per thread, recycled cache arrays.

Everything here exists for speed only; the numbers never depend on it (tests check that a
recycled or scratch array gives bit-for-bit the same results as a fresh one).
"""

from __future__ import annotations

import math
import os
import threading

import numpy as np

from .compiled import compiled_kernels


def aligned_copy(array: np.ndarray, dtype, alignment: int = 64) -> np.ndarray:
    """A C-contiguous copy of ``array`` as ``dtype`` whose data starts on an ``alignment``-byte
    boundary, so that no vector load of a 64-byte-aligned row offset straddles two cache lines
    (NumPy aligns to 16 bytes; :mod:`.intrinsics.simd`'s blocks read 64 bytes at a time). A transposed
    float matrix of ``dtype`` is copied in one compiled call, tile by tile (``kernels.aligned_transpose``)."""
    dtype = np.dtype(dtype)
    transposed_view = array.ndim == 2 and array.T.flags.c_contiguous and not array.flags.c_contiguous
    in_tiles = transposed_view and array.dtype == dtype and dtype in (np.float32, np.float64) and alignment == 64
    kernels = compiled_kernels() if in_tiles else None
    if kernels is not None:
        return kernels.aligned_transpose(array.T)
    buffer = np.empty(array.size * dtype.itemsize + alignment, dtype=np.uint8)
    start = -buffer.ctypes.data % alignment
    copy = buffer[start : start + array.size * dtype.itemsize].view(dtype).reshape(array.shape)
    copy[...] = array
    return copy


def padded_columns(matrix: np.ndarray, dtype) -> np.ndarray:
    """``matrix`` (R, C) as ``dtype``, C-contiguous and aligned, with zero columns after its own up
    to a whole number of 64-byte vectors: the register blocks of ``kernels.matmul_into`` then
    cover every column (C = 28 would leave 12 to a scalar loop)."""
    lanes = 64 // np.dtype(dtype).itemsize
    padded = aligned_copy(np.zeros((matrix.shape[0], -(-matrix.shape[1] // lanes) * lanes)), dtype)
    padded[:, : matrix.shape[1]] = matrix
    return padded


def transposed(matrix: np.ndarray) -> np.ndarray:
    """``matrixᵀ``, C-contiguous and aligned (:func:`aligned_copy`)."""
    return aligned_copy(matrix.T, matrix.dtype)


def compiled_loop_weight(weight_hh: np.ndarray, dtype, transposed_weight: bool) -> np.ndarray:
    """W_hh (G, H) as a compiled loop takes it: transposed (H, G) and 64-byte aligned, or as
    stored; C-contiguous either way (see :class:`~.plan.Tuning`)."""
    if transposed_weight:
        return aligned_copy(weight_hh.T, dtype)
    return np.ascontiguousarray(weight_hh, dtype=dtype)


SCRATCH_MAX_BYTES = 1 << 26
RECYCLED_MAX_BYTES = 1 << 27
_kept = threading.local()  # .buffer: the scratch buffer; .recycled: cache arrays handed back


def scratch_arrays(dtype, *shapes, max_bytes: int = SCRATCH_MAX_BYTES) -> list[np.ndarray]:
    """Uninitialised arrays of ``dtype``, one of each shape, apart and 64-byte aligned, whose contents
    the caller uses only until it returns: views of this thread's kept buffer when it is large
    enough, else of a new one, kept in its place if it holds at most ``max_bytes``.

    Why: the input projection is the largest array of a large layer's inference (52 MB at T=50,
    N=128, H=512 for the LSTM's batch-last one, 39 MB for the GRU's) and dead once the call
    returns; so are a backward's pre-activation gradients once the weight gradients are out.
    Fresh, their pages cost the kernel's page faults and zeroing on first touch: 8-13 ms of the
    LSTM's inference of 160-174 ms, 12 of the GRU's 140, at those sizes on a 2-core AVX-512
    machine. So each thread keeps the last buffer it used, as oneDNN keeps its scratchpad between
    calls; :func:`release_scratch` drops it."""
    dtype = np.dtype(dtype)
    counts = [math.prod(shape) for shape in shapes]
    sizes = [-(-count * dtype.itemsize // 64) * 64 for count in counts]
    total = sum(sizes) + 64
    buffer = getattr(_kept, "buffer", None)
    if buffer is None or buffer.size < total:
        buffer = np.empty(total, dtype=np.uint8)
        _kept.buffer = buffer if total <= max_bytes else None
    start = -buffer.ctypes.data % 64
    arrays = []
    for shape, count, size in zip(shapes, counts, sizes):
        arrays.append(buffer[start : start + count * dtype.itemsize].view(dtype).reshape(shape))
        start += size
    return arrays


def scratch(shape, dtype) -> np.ndarray:
    """One array of :func:`scratch_arrays`."""
    return scratch_arrays(dtype, shape)[0]


def backward_buffers(compiled_loop: bool, dtype, *shapes) -> list[np.ndarray]:
    """A backward's pre-activation gradients, dead once its weight gradients are out: fresh arrays
    for a compiled (small) loop, whose arrays come from malloc's heap with no page faults, where a
    kept buffer would only raise the step's peak (1.07 against 0.87 MiB at GRU T=100, N=1, H=128);
    else :func:`scratch_arrays`."""
    if compiled_loop:
        return [np.empty(shape, dtype=dtype) for shape in shapes]
    return scratch_arrays(dtype, *shapes)


def release_scratch() -> None:
    """Drops this thread's kept scratch buffer (:func:`scratch_arrays`) and its recycled cache
    arrays (:func:`recycle_cache`)."""
    _kept.buffer = None
    _kept.recycled = []


if hasattr(os, "register_at_fork"):
    # A forked child keeps only the forking thread, which is between calls, so its arrays are
    # whole; but they are the parent's pages, shared copy-on-write: the parent's next call writes
    # them and copies each page the child still maps (up to 192 MB). The child drops them here
    # (unmapped, they are large) and allocates its own on its first call.
    os.register_at_fork(after_in_child=release_scratch)


def cache_empty(shape, dtype) -> np.ndarray:
    """``np.empty(shape, dtype)``, taken from this thread's recycled arrays where one has that shape
    and dtype (see :func:`recycle_cache`)."""
    shape, dtype = tuple(shape), np.dtype(dtype)
    recycled = getattr(_kept, "recycled", [])
    for index, array in enumerate(recycled):
        if array.shape == shape and array.dtype == dtype:
            return recycled.pop(index)
    return np.empty(shape, dtype=dtype)


def recycle_cache(cache, max_bytes: int = RECYCLED_MAX_BYTES) -> None:
    """Hands back the arrays of a fused op's ``cache`` that only its backward reads (the fields its
    class names in ``RECYCLED``; other caches have none), for :func:`cache_empty`: at most
    ``max_bytes`` a thread, the oldest dropped first. Call it only once that backward has returned
    and nothing will read the cache again: the next forward overwrites them.

    Why: a training forward keeps its gates and cell states for the backward (4.6 MB at T=28,
    N=64, H=128; 78 MB for the largest benchmarked LSTM), dead once that backward is through.
    Fresh each step, their pages fault on first touch wherever malloc maps them anew: 1,680 faults
    in the forward at T=28, N=64, H=128, which took 4.6-4.8 ms with them and 2.5 ms without. A
    layer pops a consumed cache and never reads it again, so it hands the arrays back here. The
    step's peak does not change: the arrays return to a forward that would allocate them anyway."""
    for part in getattr(cache, "parts", ()):  # a forward on batch halves: each half's cache
        recycle_cache(part, max_bytes)
    recycled = getattr(_kept, "recycled", [])
    for field in getattr(type(cache), "RECYCLED", ()):
        array = getattr(cache, field)
        if not any(array is kept for kept in recycled):  # handed back twice, it would serve two forwards
            recycled.append(array)
    while sum(array.nbytes for array in recycled) > max_bytes:
        recycled.pop(0)
    _kept.recycled = recycled
