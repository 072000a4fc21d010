"""Where the fast paths get their compiled kernels, and which loop a layer's size calls for."""

from __future__ import annotations

import functools
import math
import threading
import warnings

import numpy as np

from .._openblas import WORKERS_SLEEP_SOON

# A layer whose recurrent product per step, N x H x G·H multiply-adds, is at most this many runs
# its backward time loop compiled (hand-written product, no call back into Python per step), its
# training forward loop up to FORWARD_FACTOR times as many, and its inference loop up to
# INFERENCE_FACTOR times as many; a larger one calls BLAS (two threads) for the product from a
# Python loop, where the call's microseconds no longer matter. `python benchmarks/ab.py loops`
# times both at the limits; on the AVX-512 machine, see the README.
SMALL_LAYER_MULTIPLY_ADDS = 1 << 16
FORWARD_FACTOR = 4
INFERENCE_FACTOR = 32


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


def is_small(batch: int, hidden: int, gate_count: int, forward: bool = False, inference: bool = False) -> bool:
    """Whether a layer runs its whole time loop in compiled code: the backward, the forward of a
    training step, or an inference forward (see SMALL_LAYER_MULTIPLY_ADDS)."""
    factor = INFERENCE_FACTOR if inference else FORWARD_FACTOR if forward else 1
    return batch * hidden * gate_count * hidden <= SMALL_LAYER_MULTIPLY_ADDS * factor


# A small layer's compiled loop runs its recurrent product h_t W_hhᵀ on W_hh transposed, (H, G),
# C-contiguous and 64-byte aligned, up to TRANSPOSED_PRODUCT_MAX_HIDDEN units: blocks of W_hhᵀ's
# columns against one or four rows of h_t at a time, the sums in registers (_kernels.matmul_into,
# _simd); above it, dot products along H on W_hh as stored (_kernels.matmul_transposed_into).
# `python benchmarks/ab.py transposed`, time a step transposed over as stored, on the AVX-512
# machine: see the README.
# From TRANSPOSED_PRODUCT_MIN_ROWS rows (a half of a batch, on two cores) it reads W_hhᵀ at any H:
# each vector of it then serves four rows (throwaway A/B, time of a halves' forward transposed over
# as stored: 0.89 at 10 rows a half and H = 200, 0.83 at 8 and H = 160, 0.75 at 12 and H = 200; but
# 1.39 at 4 rows and H = 256).
TRANSPOSED_PRODUCT_MAX_HIDDEN, TRANSPOSED_PRODUCT_MIN_ROWS = 128, 8


def transposes_recurrent_weight(hidden: int, rows: int = 1) -> bool:
    """Whether a compiled loop over ``rows`` batch rows reads W_hh transposed (see above)."""
    return hidden <= TRANSPOSED_PRODUCT_MAX_HIDDEN or rows >= TRANSPOSED_PRODUCT_MIN_ROWS


# A small batch-1 layer whose W_hh has at least TWO_CORE_MIN_WEIGHTS entries (a GRU from 128 units,
# an LSTM from 111), of at least TWO_CORE_MIN_STEPS steps, runs its forward loop on two cores, half
# of the units each (_pipeline.loop_on_two_cores), where a helper thread can take part. The loop of
# one core is bound by reading W_hh from its L2 cache every step; two read half each, but meet once
# a step, each project its own gates' inputs (the one-core loop's helper does that beside it), and
# pay about 20 µs a call to start. `python benchmarks/ab.py cores`, time a step on two cores over
# one: see the README (H = 64 gains in one run and loses in another, so both kinds start above).
TWO_CORE_MAX_BATCH, TWO_CORE_MIN_WEIGHTS, TWO_CORE_MIN_STEPS = 1, 3 * 128 * 128, 32


def runs_on_two_cores(steps: int, batch: int, hidden: int, gate_count: int) -> bool:
    """Whether a small layer's forward loop is shared between two cores (see above)."""
    return (batch <= TWO_CORE_MAX_BATCH and gate_count * hidden * hidden >= TWO_CORE_MIN_WEIGHTS
            and steps >= TWO_CORE_MIN_STEPS)


# An LSTM of at least HALVES_MIN_BATCH rows and at most HALVES_MAX_MULTIPLY_ADDS a step (N x H x 4H)
# runs its inference on the two cores, half of the batch rows each (_pipeline.lstm_forward_on_batch_halves),
# its input projection and time loop compiled: no meeting per step, no BLAS call, so none of
# OpenBLAS's idle worker thread either, which spins on the second core for about 0.1 s after a
# two-thread call. `python benchmarks/ab.py halves`, time over without: see the README. Above the
# limit the per-step BLAS product does better (N = 32, H = 256; N = 128, H = 128).
# A training step runs the same way (HALVES_TRAINING: forward, backward and weight gradients
# compiled on the two cores, from HALVES_MIN_TRAINING_STEPS steps, where the backward is not a small
# layer's), in 0.56-0.80 of the one-core path's time (`ab.py halves-training`), but only where
# OpenBLAS's worker sleeps soon after a product (lstmkit._openblas: set when lstmkit is imported
# before NumPy). Beside a worker spinning for 0.1 s after a training loop's own products (a softmax
# over 10,000 words, say), each half ran several times slower: PTB's training step took 133 ms
# instead of 99.
HALVES_MIN_BATCH, HALVES_MAX_MULTIPLY_ADDS, HALVES_MIN_TRAINING_STEPS = 8, 1 << 22, 8
HALVES_TRAINING = WORKERS_SLEEP_SOON


def runs_on_batch_halves(steps: int, batch: int, hidden: int, training: bool) -> bool:
    """Whether an LSTM's forward (a training step's, or an inference's) runs half of the batch on
    each core (see above)."""
    multiply_adds = batch * hidden * 4 * hidden
    if batch < HALVES_MIN_BATCH or multiply_adds > HALVES_MAX_MULTIPLY_ADDS:
        return False
    return not training or (HALVES_TRAINING and steps >= HALVES_MIN_TRAINING_STEPS
                            and not is_small(batch, hidden, 4))


def recurrent_weight(weight_hh, dtype, rows: int = 1):
    """W_hh (G, H) as a compiled loop over ``rows`` batch rows takes it: transposed (H, G) and
    aligned where :func:`transposes_recurrent_weight` says so, else as stored; C-contiguous either
    way. Small layers' one-core loops pass no ``rows`` (their choice rests on H alone)."""
    if transposes_recurrent_weight(weight_hh.shape[1], rows):
        return aligned_copy(weight_hh.T, dtype)
    return np.ascontiguousarray(weight_hh, dtype=dtype)


def aligned_copy(array, dtype, alignment: int = 64):
    """A C-contiguous copy of ``array`` as ``dtype`` whose data starts on an ``alignment``-byte
    boundary, so that no vector load of a 64-byte-aligned row offset straddles two cache lines
    (NumPy aligns to 16 bytes; :mod:`._simd`'s blocks read 64 bytes at a time). A transposed
    float matrix of ``dtype`` is copied in one compiled call, tile by tile (``_kernels.aligned_transpose``)."""
    dtype = np.dtype(dtype)
    transposed_view = array.ndim == 2 and array.T.flags.c_contiguous and not array.flags.c_contiguous
    in_tiles = transposed_view and array.dtype == dtype and dtype in (np.float32, np.float64) and alignment == 64
    kernels = compiled_kernels() if in_tiles else None
    if kernels is not None:
        return kernels.aligned_transpose(array.T)
    buffer = np.empty(array.size * dtype.itemsize + alignment, dtype=np.uint8)
    start = -buffer.ctypes.data % alignment
    copy = buffer[start:start + array.size * dtype.itemsize].view(dtype).reshape(array.shape)
    copy[...] = array
    return copy


def padded_columns(matrix, dtype):
    """``matrix`` (R, C) as ``dtype``, C-contiguous and aligned, with zero columns after its own up
    to a whole number of 64-byte vectors: the register blocks of ``_kernels.matmul_into`` then
    cover every column (C = 28 would leave 12 to a scalar loop)."""
    lanes = 64 // np.dtype(dtype).itemsize
    padded = aligned_copy(np.zeros((matrix.shape[0], -(-matrix.shape[1] // lanes) * lanes)), dtype)
    padded[:, :matrix.shape[1]] = matrix
    return padded


def transposed(matrix):
    """``matrixᵀ``, C-contiguous and aligned (:func:`aligned_copy`)."""
    return aligned_copy(matrix.T, matrix.dtype)


# A small layer's backward loop computes dh = dz W_hh (N, G) x (G, H) from W_hhᵀ (H, G), dot
# products along G (_kernels.gradient_product), or from W_hh as stored. `python benchmarks/ab.py
# backward`, a training step with W_hhᵀ over W_hh as stored, two runs on the AVX-512 machine: LSTM
# 0.74-1.03 (batch 1 at H = 32 and 128, batch 4 at H = 64), GRU 0.84-1.05.
BACKWARD_TRANSPOSED = True


def backward_weight(weight_hh):
    """W_hh (G, H), C-contiguous, as a small layer's backward loop takes it: transposed (H, G)
    where BACKWARD_TRANSPOSED says so (a copy), else as it is."""
    return transposed(weight_hh) if BACKWARD_TRANSPOSED else weight_hh


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
    weight_hh_t = transposed(weight_hh) if TRANSPOSED_COPY else weight_hh.T
    for t in range(h.shape[0] - 1):
        np.matmul(h[t], weight_hh_t, out=product)
        yield t, product


# ---- a large layer's inference in the batch-last layout ----------------------------------
# Without anything kept for backward, a large layer's loop runs on states stored (H, N), batch
# last: its per-step product is W_hh h_tᵀ, (G, H) x (H, N), on W_hh as stored, which OpenBLAS
# computes faster than h_t W_hhᵀ at these shapes; the bias rides in it as a last column of W_hh
# against a row of ones under h_tᵀ. Each step's gates and states, flattened to one row of G·N or
# H·N entries (gate k of unit j for batch row n at k·H·N + j·N + n), go through the same compiled
# cell as the batch-first loop. The input projection costs more (a product per step, not one for
# all) and the output a transposing copy. `python benchmarks/ab.py batch-last`, layer inference
# batch last over batch first, two runs on the AVX-512 machine: 0.94-1.01 at T=28, N=64, H=128;
# 0.93-1.02 at T=100, N=32, H=128; 0.99-1.04 at N=64, H=256; 0.94-0.95 at N=128, H=512;
# 0.87-0.96 at N=32, H=256; 0.55-0.56 at N=4, H=256.
BATCH_LAST_INFERENCE = True


def runs_batch_last(small: bool, keep_cache: bool) -> bool:
    """Whether a layer's forward runs batch last (see above): a large one, nothing kept."""
    return BATCH_LAST_INFERENCE and not small and not keep_cache


# The input projection is the largest array of a large layer's inference (52 MB at T=50, N=128,
# H=512 for the LSTM's batch-last one, 39 MB for the GRU's), and dead once the call returns; so
# are the pre-activations' gradients of a backward (dz, the same sizes) once the weight gradients
# are out. Fresh, their pages cost the kernel's page faults and zeroing on first touch: 8-13 ms of
# the LSTM's inference of 160-174, 12 of the GRU's 140 (throwaway A/Bs at the README's largest
# rows). So each thread keeps the last buffer it used, up to SCRATCH_MAX_BYTES, as oneDNN keeps
# its scratchpad between calls; release_scratch() drops it.
SCRATCH_MAX_BYTES = 1 << 26
_scratch = threading.local()


def scratch_arrays(dtype, *shapes):
    """Uninitialised arrays of ``dtype``, one of each shape, apart and 64-byte aligned, whose contents
    the caller uses only until it returns: views of this thread's kept buffer when it is large
    enough, else of a new one, kept in its place if it holds at most SCRATCH_MAX_BYTES."""
    dtype = np.dtype(dtype)
    counts = [math.prod(shape) for shape in shapes]
    sizes = [-(-count * dtype.itemsize // 64) * 64 for count in counts]
    total = sum(sizes) + 64
    buffer = getattr(_scratch, "buffer", None)
    if buffer is None or buffer.size < total:
        buffer = np.empty(total, dtype=np.uint8)
        _scratch.buffer = buffer if total <= SCRATCH_MAX_BYTES else None
    start = -buffer.ctypes.data % 64
    arrays = []
    for shape, count, size in zip(shapes, counts, sizes):
        arrays.append(buffer[start:start + count * dtype.itemsize].view(dtype).reshape(shape))
        start += size
    return arrays


def scratch(shape, dtype):
    """One array of :func:`scratch_arrays`."""
    return scratch_arrays(dtype, shape)[0]


def backward_buffers(small: bool, dtype, *shapes):
    """A backward's pre-activation gradients, dead once its weight gradients are out: fresh arrays
    for a small layer (its arrays come from malloc's heap, with no page faults, and a kept buffer
    would only raise the step's peak: 1.07 against 0.87 MiB at GRU T=100, N=1, H=128), else
    :func:`scratch_arrays`."""
    return [np.empty(shape, dtype=dtype) for shape in shapes] if small else scratch_arrays(dtype, *shapes)


def release_scratch() -> None:
    """Drops this thread's kept scratch buffer (see SCRATCH_MAX_BYTES) and its recycled cache
    arrays (see RECYCLED_MAX_BYTES)."""
    _scratch.buffer = None
    _scratch.recycled = []


# A training forward keeps its gates and cell states for the backward (4.6 MB at T=28, N=64, H=128;
# 78 MB for the largest LSTM of the README), dead once that backward is through. Fresh each step,
# their pages fault on first touch wherever malloc maps them anew and unmaps them when freed: 1,680
# faults in the forward at T=28, N=64, H=128, which took 4.6-4.8 ms with them and 2.5 without
# (throwaway, malloc's thresholds raised by hand). So the owner of a consumed cache (a layer, which
# pops it and never reads it again) hands its backward-only arrays back (recycle_cache), and the next
# forward's cache arrays of the same shape and dtype are those (cache_empty): at most
# RECYCLED_MAX_BYTES a thread, the oldest dropped first. The step's peak does not change: the
# arrays return to a forward that would have allocated them anyway.
RECYCLED_MAX_BYTES = 1 << 27


def cache_empty(shape, dtype) -> np.ndarray:
    """``np.empty(shape, dtype)``, taken from this thread's recycled arrays where one has that shape
    and dtype (see RECYCLED_MAX_BYTES)."""
    shape, dtype = tuple(shape), np.dtype(dtype)
    recycled = getattr(_scratch, "recycled", [])
    for index, array in enumerate(recycled):
        if array.shape == shape and array.dtype == dtype:
            return recycled.pop(index)
    return np.empty(shape, dtype=dtype)


def recycle_cache(cache) -> None:
    """Hands back the arrays of a fused op's ``cache`` that only its backward reads (the fields its
    class names in ``RECYCLED``; other caches have none), for :func:`cache_empty`. Call it only once
    that backward has returned and nothing will read the cache again: the next forward overwrites them."""
    for part in getattr(cache, "parts", ()):  # a forward on batch halves: each half's cache
        recycle_cache(part)
    recycled = getattr(_scratch, "recycled", [])
    for field in getattr(type(cache), "RECYCLED", ()):
        array = getattr(cache, field)
        if not any(array is kept for kept in recycled):  # handed back twice, it would serve two forwards
            recycled.append(array)
    while sum(array.nbytes for array in recycled) > RECYCLED_MAX_BYTES:
        recycled.pop(0)
    _scratch.recycled = recycled


def projection_into(x, weight_ih, out):
    """``out`` (T, N, G) = ``x W_ihᵀ`` for all steps, (T, N, I) x (G, I)ᵀ, one BLAS product."""
    np.matmul(x.reshape(-1, x.shape[-1]), weight_ih.T, out=out.reshape(-1, weight_ih.shape[0]))
    return out


def scratch_projection(x, weight_ih):
    """:func:`projection_into` this thread's :func:`scratch` buffer: valid until the caller returns
    (a large GRU's inference)."""
    return projection_into(x, weight_ih, scratch((x.shape[0], x.shape[1], weight_ih.shape[0]), x.dtype))


def cache_projection(x, weight_ih):
    """:func:`projection_into` an array of :func:`cache_empty`, kept for a backward."""
    return projection_into(x, weight_ih, cache_empty((x.shape[0], x.shape[1], weight_ih.shape[0]), x.dtype))


def batch_last_projection(x, weight_ih):
    """``W_ih x_tᵀ`` for every step: x (T, N, I), W_ih (G, I) -> (T, G, N), one BLAS product a step,
    into this thread's :func:`scratch` buffer: valid until the caller returns."""
    out = scratch((x.shape[0], weight_ih.shape[0], x.shape[1]), x.dtype)
    return np.matmul(weight_ih, x.transpose(0, 2, 1), out=out)


def batch_last_state(initial, steps: int, dtype, ones: bool = False):
    """A state kept batch last: (steps, H, N) of ``dtype``, [0] = ``initial`` (N, H) transposed;
    with ``ones``, (steps, H+1, N) whose last row is ones (the bias's partner in the product)."""
    batch, size = initial.shape
    state = np.empty((steps, size + ones, batch), dtype=dtype)
    state[0, :size] = initial.T
    if ones:
        state[:, size] = 1
    return state


def flat_steps(state, size: int):
    """(T, ≥S, B) -> (T, 1, S·B), a view of rows 0 .. S-1 of each step, flattened as the compiled
    steps take them."""
    return state[:, :size].reshape(state.shape[0], 1, size * state.shape[2])


def batch_last_products(h, weight_hh, bias):
    """:func:`recurrent_products` batch last: for t = 0 .. T-1 yields ``(t, W_hh h[t] + b)`` as one
    row (1, G·N). ``h`` is (T+1, H, N), or (T+1, H+1, N) with its row of ones where ``bias`` (G,)
    is given; the caller's step writes h[t+1] before asking for the next."""
    product = np.empty((weight_hh.shape[0], h.shape[2]), dtype=h.dtype)
    if bias is not None:
        weight_hh = np.concatenate([weight_hh, bias[:, None]], axis=1)
    weight_hh = np.ascontiguousarray(weight_hh, dtype=h.dtype)
    row = product.reshape(1, -1)
    for t in range(h.shape[0] - 1):
        np.matmul(weight_hh, h[t], out=product)
        yield t, row


def batch_first(state, size: int):
    """The output (T, N, H), C-contiguous, of states (T+1, ≥H, N) kept batch last, a step at a time
    by ``_kernels.transpose_into`` (a third faster than NumPy's transposing copy here)."""
    kernels = compiled_kernels()
    if kernels is None or state.dtype not in (np.float32, np.float64):
        return np.ascontiguousarray(state[1:, :size].transpose(0, 2, 1))
    output = np.empty((state.shape[0] - 1, state.shape[2], size), dtype=state.dtype)
    for t in range(output.shape[0]):
        kernels.transpose_into(state[t + 1, :size], output[t])
    return output
