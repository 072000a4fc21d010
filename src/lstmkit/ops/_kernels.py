"""Compiled inner loops of the fast paths (Numba), one gate equation per line as in the reference.

Imported only by the fast paths, on their first call, so ``import lstmkit`` never loads Numba;
compiled functions are cached on disk (``cache=True``), so a process compiles them at most once
per machine. Every kernel writes into arrays its caller allocated and returns nothing.

Why compiled: NumPy evaluates ``tanh`` on float32 at about 2.6 ns an element on an AVX2 CPU (no
SIMD path without AVX-512; 0.36 ns with it), each NumPy call costs about 1 µs, and each
elementwise operation is a pass over memory, so a step of a small layer was mostly interpreter
overhead and a large one mostly ``tanh`` and passes. These loops fuse a step's gate
nonlinearities and state update into one pass, vectorised, and for small layers run the whole
time loop, recurrent product included, without returning to Python.

On float64, ``tanh`` is ``math.tanh`` and the sigmoid the reference's exact form (results equal
the reference to ~1e-15); on float32 both use a rational approximation of tanh that vectorises
(at most 3e-7 from the true tanh, well inside float32's tolerance of 1e-5; Eigen's ``[13/6]``
on a clamped argument), with σ(x) = ½ tanh(½x) + ½. NaN
propagates through both, as through NumPy's.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ._atomics import atomic_add, atomic_load, atomic_store
from ._lanes import TANH_CLAMP, TANH_P, TANH_Q, gru_cell_lanes, lstm_cell_backward_lanes, lstm_cell_lanes
from ._simd import (LONG, TALL, TILE_BYTES, VECTOR_BYTES, WIDE, half_block, long_block, narrow_block, quarter_block,
                    tail_block, tall_block, transpose_tile, wide_block)

# Numba's cache is keyed on this file's text, not on the modules whose intrinsics these kernels
# inline: INTRINSICS_SHA256 is the SHA-256 of their texts end to end, in INTRINSIC_MODULES' order
# (checked by tests/test_pipeline.py), so that editing them edits this file too, and no stale
# compiled kernel is ever loaded.
INTRINSIC_MODULES = ("_atomics", "_lanes", "_simd")
INTRINSICS_SHA256 = "d193a9bff1fe13bc870342decc12ef21188d9362ae1483a9e9613cf73efb24b3"

# No "nnan"/"ninf": NaN and infinities must behave as in NumPy.
_FLAGS = dict(cache=True, nogil=True, error_model="numpy", fastmath={"contract", "arcp", "afn"})
_jit = numba.njit(**_FLAGS)
_jit_inlined = numba.njit(**_FLAGS, inline="always")  # no call, so no reference counts on the arguments

_CLAMP = TANH_CLAMP
_P13, _P11, _P9, _P7, _P5, _P3, _P1 = TANH_P
_Q6, _Q4, _Q2, _Q0 = TANH_Q
_HALF, _ONE = np.float32(0.5), np.float32(1.0)  # float32 constants keep float32 arithmetic float32


@_jit
def _tanh_approx(x):
    x = _CLAMP if x > _CLAMP else x
    x = -_CLAMP if x < -_CLAMP else x
    x2 = x * x
    p = ((((((x2 * _P13 + _P11) * x2 + _P9) * x2 + _P7) * x2 + _P5) * x2 + _P3) * x2 + _P1) * x
    q = ((x2 * _Q6 + _Q4) * x2 + _Q2) * x2 + _Q0
    return p / q


def _tanh(x):  # pragma: no cover - Numba compiles the overload below in its place
    raise NotImplementedError


@numba.extending.overload(_tanh, jit_options=_FLAGS)
def _tanh_for(x):
    """float64: ``math.tanh`` (the reference's values); float32: the vectorisable approximation."""
    if x == numba.types.float64:
        return lambda x: math.tanh(x)
    return lambda x: _tanh_approx(x)


def _sigmoid(x):  # pragma: no cover - Numba compiles the overload below in its place
    raise NotImplementedError


@numba.extending.overload(_sigmoid, jit_options=_FLAGS)
def _sigmoid_for(x):
    """float64: the reference's exact form, ``exp`` of -|x| only (right in both tails); float32:
    σ(x) = ½ tanh(½x) + ½ on the approximation (absolute error 1.5e-7, vectorisable)."""
    if x == numba.types.float64:

        def exact(x):
            e = math.exp(-abs(x))
            return 1.0 / (1.0 + e) if x >= 0 else e / (1.0 + e)

        return exact
    return lambda x: _HALF * _tanh_approx(_HALF * x) + _HALF


def _plus_bias(value, bias, j):  # pragma: no cover - Numba compiles the overload below in its place
    raise NotImplementedError


@numba.extending.overload(_plus_bias, jit_options=_FLAGS)
def _plus_bias_for(value, bias, j):
    """``value + bias[j]``, or ``value`` where ``bias`` is None (the input projection holds it
    already): decided when Numba compiles, so a loop given None has no extra load."""
    if isinstance(bias, (numba.types.NoneType, numba.types.Omitted)):
        return lambda value, bias, j: value
    return lambda value, bias, j: value + bias[j]


@_jit
def matmul_into(a, b, out, long_sums=False):
    """``out = a @ b`` for small matrices, (N, K) x (K, G), C-contiguous, in blocks whose sums stay
    in vector registers (:mod:`._simd`): four rows at a time against narrow column blocks (wider
    ones with ``long_sums``, for a large K), then each remaining row against wide ones
    (:func:`_row_times`)."""
    rows, width = a.shape[0], b.shape[1]
    tall_rows, tall_width = TALL[0], TALL[1] * VECTOR_BYTES // a.itemsize
    if long_sums:
        tall_rows, tall_width = LONG[0], LONG[1] * VECTOR_BYTES // a.itemsize
    n = 0
    while n + tall_rows <= rows:
        j = 0
        while j + tall_width <= width:
            if long_sums:
                long_block(a, n, b, out, j)
            else:
                tall_block(a, n, b, out, j)
            j += tall_width
        for row in range(n, n + tall_rows):
            _row_times(a, row, b, out, j)
        n += tall_rows
    for row in range(n, rows):
        _row_times(a, row, b, out, 0)


@_jit
def _row_times(a, n, b, out, j):
    """``out[n, j:] = a[n] @ b[:, j:]``: wide blocks, then one block each of four, two and one vectors
    as the width left calls for, then one vector of the columns left, masked."""
    width, lanes = b.shape[1], VECTOR_BYTES // a.itemsize
    while j + WIDE[1] * lanes <= width:
        wide_block(a, n, b, out, j)
        j += WIDE[1] * lanes
    if j + 4 * lanes <= width:
        half_block(a, n, b, out, j)
        j += 4 * lanes
    if j + 2 * lanes <= width:
        quarter_block(a, n, b, out, j)
        j += 2 * lanes
    if j + lanes <= width:
        narrow_block(a, n, b, out, j)
        j += lanes
    if j < width:
        tail_block(a, n, b, out, j)


_jit_reassociating = numba.njit(**{**_FLAGS, "fastmath": _FLAGS["fastmath"] | {"reassoc"}})  # sums vectorise along K


@_jit_reassociating
def _dot_row(a, n, w, out):
    """Row n of ``out = a @ wᵀ``: four rows of ``w`` at a time, each a dot product along K."""
    inner, width = a.shape[1], w.shape[0]
    j = 0
    while j + 4 <= width:
        s0 = s1 = s2 = s3 = a.dtype.type(0)
        for k in range(inner):
            value = a[n, k]
            s0 += value * w[j, k]
            s1 += value * w[j + 1, k]
            s2 += value * w[j + 2, k]
            s3 += value * w[j + 3, k]
        out[n, j], out[n, j + 1], out[n, j + 2], out[n, j + 3] = s0, s1, s2, s3
        j += 4
    while j < width:
        total = a.dtype.type(0)
        for k in range(inner):
            total += a[n, k] * w[j, k]
        out[n, j] = total
        j += 1


@_jit_reassociating
def matmul_transposed_into(a, w, out):
    """``out = a @ wᵀ`` for small matrices, (N, K) x (G, K)ᵀ: W_hh as PyTorch stores it, no copy.
    Four rows of ``a`` against two of ``w`` at a time (eight dot products along K, vectorised,
    sharing each load: a third of the time of one row against four where N >= 4), then the
    remaining rows one by one."""
    rows, inner = a.shape
    width = w.shape[0]
    n = 0
    while n + 4 <= rows and width % 2 == 0:
        for j in range(0, width, 2):
            s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = a.dtype.type(0)
            for k in range(inner):
                w0, w1 = w[j, k], w[j + 1, k]
                a0, a1, a2, a3 = a[n, k], a[n + 1, k], a[n + 2, k], a[n + 3, k]
                s00 += a0 * w0
                s01 += a0 * w1
                s10 += a1 * w0
                s11 += a1 * w1
                s20 += a2 * w0
                s21 += a2 * w1
                s30 += a3 * w0
                s31 += a3 * w1
            out[n, j], out[n, j + 1], out[n + 1, j], out[n + 1, j + 1] = s00, s01, s10, s11
            out[n + 2, j], out[n + 2, j + 1], out[n + 3, j], out[n + 3, j + 1] = s20, s21, s30, s31
        n += 4
    while n < rows:
        _dot_row(a, n, w, out)
        n += 1


@_jit
def transpose_into(source, target, column=0):
    """``target[:, column : column + R] = sourceᵀ``: (R, C) into (C, ≥ column + R), both
    C-contiguous, in square tiles of 32-byte rows
    transposed in registers (:mod:`._simd`), then the rows and columns past the last whole tile
    one by one (NumPy's transposing copy walks the source down its columns, at a cache line an
    entry)."""
    rows, columns = source.shape
    lanes = TILE_BYTES // source.itemsize
    whole_rows, whole_columns = rows - rows % lanes, columns - columns % lanes
    block = 2 * lanes  # 2 x 2 tiles at a time, down the source's columns (as fast as a copy, about)
    for j0 in range(0, whole_columns, block):
        for i0 in range(0, whole_rows, block):
            for j in range(j0, min(j0 + block, whole_columns), lanes):
                for i in range(i0, min(i0 + block, whole_rows), lanes):
                    transpose_tile(source, i, j, target, column)
    for i in range(rows):
        for j in range(whole_columns if i < whole_rows else 0, columns):
            target[j, column + i] = source[i, j]


@_jit
def recurrent_product(h_prev, weight_hh, out):
    """``out = h_prev W_hhᵀ`` (N, G) with W_hh as PyTorch stores it (G, H), or given as its
    transpose (H, G), C-contiguous, which tiny layers run faster with (each h_prev entry scales a
    row, in registers; see :func:`._compiled.recurrent_weight`). G is never H, so the shape says which."""
    if weight_hh.shape[0] == out.shape[1]:
        matmul_transposed_into(h_prev, weight_hh, out)
    else:
        matmul_into(h_prev, weight_hh, out)


@_jit
def gradient_product(dz, weight_hh, dh):
    """``dh = dz W_hh`` (N, H), the gradient reaching h_{t-1} through W_hh, from dz (N, G), with
    W_hh transposed (H, G), C-contiguous, which small layers' backward loops take (dot products
    along G; see :func:`._compiled.backward_weight`), or as stored (G, H). G is never H."""
    if weight_hh.shape[0] == dh.shape[1]:
        matmul_transposed_into(dz, weight_hh, dh)
    else:
        matmul_into(dz, weight_hh, dh)


@_jit
def project_into(x, weight_t, bias, out):
    """``out = x weightᵀ + bias``: (R, I) x (I, G) + (G,) into (R, G), rows of steps' inputs, from
    the weight's aligned transpose ``weight_t`` (register blocks, :func:`matmul_into`)."""
    matmul_into(x, weight_t, out)
    _add_to_rows(out, bias)


@_jit
def _add_to_rows(out, bias):
    """``out[r] += bias`` for every row r of ``out`` (R, G)."""
    for r in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[r, j] += bias[j]


# ---- the input projection, chunk by chunk, beside the time loop ----------------------------
# A small layer's time loop runs on one core; its input projection (x W_ihᵀ + b for all steps)
# can run on the other at the same time, a chunk of steps ahead. ``pipeline`` is the tuple
# (claims, chunk, x, W_ihᵀ (I, G), bias, mailbox) of :func:`._pipeline.start_projection`: claims[0]
# counts the chunks taken, claims[1 + k] is 1 once chunk k (steps k·chunk ...) is in ``gates``;
# the loop announces the helper's job in ``mailbox`` (:func:`start_pipeline`).
# Whoever takes a chunk computes it, the helper thread or the loop that needs it: the loop
# never waits for a thread that has not started, and the result is the same either way.
@_jit
def project_next_chunk(pipeline, gates):
    """Takes the next chunk nobody has taken and writes its ``x W_ihᵀ + b`` into ``gates``;
    False when none is left."""
    claims, chunk, x, weight_ih_t, bias = pipeline[0], pipeline[1], pipeline[2], pipeline[3], pipeline[4]
    count = claims.shape[0] - 1
    if atomic_load(claims, 0) >= count:
        return False
    k = atomic_add(claims, 0, 1)
    if k >= count:
        return False
    start, stop = k * chunk, min((k + 1) * chunk, x.shape[0])
    rows = (stop - start) * x.shape[1]
    project_into(x[start:stop].reshape(rows, x.shape[2]), weight_ih_t, bias, gates[start:stop].reshape(rows, -1))
    atomic_store(claims, 1 + k, 1)
    return True


@_jit
def project_chunks(pipeline, gates):
    """The helper thread's job: chunks until none is left."""
    while project_next_chunk(pipeline, gates):
        pass


@_jit
def start_pipeline(pipeline):
    """Announces the helper's staged job (see :func:`._pipeline.start_projection`), if any."""
    if pipeline is not None:
        announce(pipeline[5])


@_jit
def _chunk_span(steps, pipeline):
    """Steps the small loops run between two looks at the ``pipeline``: a chunk's, or all of them.
    The look sits outside the steps' own loop: inside it, it slowed each step of a batch-1 LSTM
    at H = 32 by a tenth, about 0.03 µs, whether the chunk was there or not (throwaway A/B)."""
    return max(1, steps) if pipeline is None else pipeline[1]


@_jit
def _await_projection(t, pipeline, gates):
    """Before step t: its chunk is in ``gates``, computed here if nobody else has taken it."""
    if pipeline is not None and t % pipeline[1] == 0:
        claims, chunk = pipeline[0], pipeline[1]
        while atomic_load(claims, 1 + t // chunk) == 0:
            project_next_chunk(pipeline, gates)


@_jit
def wait_for_post(mailbox, seen, spins):
    """The helper thread's wait: mailbox[0] once it differs from ``seen``, or ``seen`` after
    ``spins`` reads. mailbox[2] = ``seen`` on entry: the helper is back, done with job ``seen``."""
    atomic_store(mailbox, 2, seen)
    for _ in range(spins):
        posted = atomic_load(mailbox, 0)
        if posted != seen:
            return posted
    return seen


@_jit
def announce(mailbox):
    """Adds one to mailbox[0], the count of jobs posted (a spinning helper sees it at once);
    returns the new count, the job's number."""
    return atomic_add(mailbox, 0, 1) + 1


@_jit
def store(array, index, value):
    """``atomic_store`` for Python callers."""
    atomic_store(array, index, value)


@_jit
def add(array, index, value):
    """``atomic_add`` for Python callers: sequentially consistent, so that two threads that each
    write one entry and then read the other's (the helper's sleep against a post) cannot both read
    the old values, as a release store followed by an acquire load can."""
    return atomic_add(array, index, value)


# ---- LSTM, PyTorch's gate blocks i, f, g, o -----------------------------------------------
@_jit
def lstm_cell_forward(z, recurrent, c_prev, c_next, tanh_c, h_next, bias=None):
    """One step: ``z`` (N, 4H) the input's pre-activations, ``recurrent`` (N, 4H) = h_{t-1} W_hhᵀ,
    ``bias`` (4H,) where z does not hold it yet; ``z`` becomes the activated gates, and c_t,
    tanh(c_t), h_t = o ⊙ tanh(c_t) are written. float32 runs in vectors (:mod:`._lanes`); the
    loops below (float64) each start at 0 and write one array (LLVM vectorises those, not the others)."""
    if lstm_cell_lanes(z, recurrent, bias, c_prev, c_next, tanh_c, h_next):
        return
    rows, hidden = c_prev.shape
    g, o = 2 * hidden, 3 * hidden
    for n in range(rows):
        for j in range(2 * hidden):  # i, f
            z[n, j] = _sigmoid(_plus_bias(z[n, j] + recurrent[n, j], bias, j))
        for j in range(hidden):  # g
            z[n, g + j] = _tanh(_plus_bias(z[n, g + j] + recurrent[n, g + j], bias, g + j))
        for j in range(hidden):  # o
            z[n, o + j] = _sigmoid(_plus_bias(z[n, o + j] + recurrent[n, o + j], bias, o + j))
        for j in range(hidden):  # c = f ⊙ c_prev + i ⊙ g
            c_next[n, j] = z[n, hidden + j] * c_prev[n, j] + z[n, j] * z[n, g + j]
        for j in range(hidden):
            tanh_c[n, j] = _tanh(c_next[n, j])
        for j in range(hidden):  # h = o ⊙ tanh(c)
            h_next[n, j] = z[n, o + j] * tanh_c[n, j]


@_jit
def lstm_cell_backward(dh, dc, gates, c_prev, tanh_c, dz):
    """Backward of one step: writes dz (N, 4H), the pre-activations' gradient, and turns ``dc``
    (the gradient reaching c_t) into that of c_{t-1}, in place. ``dh`` reaches h_t.
    float32 runs in vectors (:mod:`._lanes`); below (float64), each loop writes one block of one
    array, so that it vectorises."""
    if lstm_cell_backward_lanes(dh, dc, gates, c_prev, tanh_c, dz):
        return
    rows, hidden = c_prev.shape
    for n in range(rows):
        for j in range(hidden):  # dc += dh ⊙ o ⊙ (1 - tanh²c), from h = o ⊙ tanh(c)
            t = tanh_c[n, j]
            dc[n, j] += dh[n, j] * gates[n, 3 * hidden + j] * (_ONE - t * t)
        for j in range(hidden):  # di = dc ⊙ g, through σ'
            i = gates[n, j]
            dz[n, j] = dc[n, j] * gates[n, 2 * hidden + j] * i * (_ONE - i)
        for j in range(hidden):  # df = dc ⊙ c_prev
            f = gates[n, hidden + j]
            dz[n, hidden + j] = dc[n, j] * c_prev[n, j] * f * (_ONE - f)
        for j in range(hidden):  # dg = dc ⊙ i, through tanh'
            g = gates[n, 2 * hidden + j]
            dz[n, 2 * hidden + j] = dc[n, j] * gates[n, j] * (_ONE - g * g)
        for j in range(hidden):  # do = dh ⊙ tanh(c)
            o = gates[n, 3 * hidden + j]
            dz[n, 3 * hidden + j] = dh[n, j] * tanh_c[n, j] * o * (_ONE - o)
        for j in range(hidden):  # dc_prev = dc ⊙ f
            dc[n, j] *= gates[n, hidden + j]


@_jit
def lstm_step_forward(t, gates, recurrent, h, c, tanh_c, bias=None):
    """Step t of the time loop (arrays as in :func:`lstm_loop_forward`), given ``recurrent`` (N, 4H)
    = h[t] W_hhᵀ, and ``bias`` (4H,) where gates do not hold it: the slicing happens here, so that
    a Python loop pays for one call of few arguments."""
    depth, keep = c.shape[0], tanh_c.shape[0] == gates.shape[0]
    lstm_cell_forward(gates[t], recurrent, c[t % depth], c[(t + 1) % depth], tanh_c[t if keep else 0], h[t + 1], bias)


@_jit
def lstm_step_forward_on_product(t, projection, product, h, c, tanh_c):
    """Step t of a loop that keeps nothing (c and tanh_c hold 2 and 1 steps): as
    :func:`lstm_step_forward`, the gates activated in ``product``, h[t]'s recurrent product with
    the bias (laid out as each step of ``projection``, the input's), which is in cache, rather
    than in ``projection``, whose step t is then only read."""
    lstm_cell_forward(product, projection[t], c[t % 2], c[(t + 1) % 2], tanh_c[0], h[t + 1])


@_jit
def lstm_step_backward(t, doutput, dh, dc, gates, c, tanh_c, dz):
    """Step t of BPTT (arrays as in :func:`lstm_loop_backward`): adds doutput[t] into dh, then
    writes dz[t] and turns dc into c_{t-1}'s gradient; dh's path through W_hh is the caller's."""
    dh += doutput[t]
    lstm_cell_backward(dh, dc, gates[t], c[t], tanh_c[t], dz[t])


@_jit
def lstm_loop_forward(gates, weight_hh, h, c, tanh_c, pipeline=None):
    """The whole time loop of a small layer: gates (T, N, 4H) hold the input's pre-activations
    (or, with a ``pipeline``, receive them chunk by chunk) and become the activated gates;
    h (T+1, N, H) and c (T+1 or 2, N, H) start from h[0], c[0]; tanh_c is (T, N, H), or
    (1, N, H) when nothing is kept for backward. W_hh is (4H, H), or (H, 4H) as in
    :func:`recurrent_product`."""
    start_pipeline(pipeline)
    recurrent = np.empty_like(gates[0])
    steps = gates.shape[0]
    span = _chunk_span(steps, pipeline)
    for start in range(0, steps, span):
        _await_projection(start, pipeline, gates)
        _lstm_steps(start, min(start + span, steps), gates, weight_hh, h, c, tanh_c, recurrent)


@_jit
def _lstm_steps(start, stop, gates, weight_hh, h, c, tanh_c, recurrent):
    """Steps ``start`` .. ``stop - 1`` of :func:`lstm_loop_forward`, their gates in place."""
    for t in range(start, stop):
        recurrent_product(h[t], weight_hh, recurrent)
        lstm_step_forward(t, gates, recurrent, h, c, tanh_c)


@_jit
def lstm_loop_backward(doutput, dh, dc, gates, c, tanh_c, weight_hh, dz):
    """BPTT of :func:`lstm_loop_forward`: dz (T, N, 4H) written, dh and dc (N, H) turned from the
    final state's gradients into the initial state's. ``weight_hh`` is W_hhᵀ (H, 4H), C-contiguous,
    or W_hh as stored (4H, H), as in :func:`gradient_product`."""
    for t in range(gates.shape[0] - 1, -1, -1):
        lstm_step_backward(t, doutput, dh, dc, gates, c, tanh_c, dz)
        gradient_product(dz[t], weight_hh, dh)


# ---- a batch-1 layer's time loop on two cores ---------------------------------------------
# One core's loop is bound by reading W_hh (G·H x H) from L2 every step. Two threads can each
# run the loop for half of the hidden units (their gate rows of W_ih and W_hh, a different half
# in each core's cache), meeting once a step: part p writes its units of h_{t+1} into
# exchange[p, (t+1) % 2], counts it in sync[PROGRESS + 8p] (the number of its h_0, h_1, ... there
# so far), and waits for the other part's.
# ``exchange`` (2 parts, 2 steps, N, P), P = ⌈H/2⌉ rounded up to a 64-byte line, holds nothing
# else, so that the two cores never write the same cache line; the register blocks read the first
# u entries of its rows. ``sync`` (int64, 32 entries: each counter on its own cache line)
# also holds JOIN, which decides whether part 1 runs at all (the helper thread's atomic_add gets
# 0 first, or the caller's does, and then runs both parts alone, in turn), and DONE, which part 1
# counts up once its last writes are made. The LSTM's and the GRU's loops differ only in their
# cell (:func:`_lstm_part_step`, :func:`_gru_part_step`).
SYNC_JOIN, SYNC_DONE, SYNC_PROGRESS = 0, 8, 16


@_jit
def _copy(source, target):
    """``target[:] = source`` for 1-D arrays (numba's slice assignment costs microseconds)."""
    for i in range(source.shape[0]):
        target[i] = source[i]


@_jit
def _part_units(part, hidden):
    """(first unit, count) of part 0 or 1: [0, ⌈H/2⌉) or the rest."""
    units = (hidden + 1) // 2 if part == 0 else hidden // 2
    return (0 if part == 0 else hidden - units), units


@_jit
def _aligned_empty(rows, columns, like):
    """An uninitialised (rows, columns) array of ``like``'s dtype whose data starts on a 64-byte
    boundary (NumPy's and Numba's allocations are aligned to 16 bytes; :mod:`._simd`'s blocks read
    64 bytes at a time)."""
    lanes = 64 // like.itemsize
    buffer = np.empty(rows * columns + lanes, dtype=like.dtype)
    start = (lanes - buffer.ctypes.data // like.itemsize % lanes) % lanes
    return buffer[start:start + rows * columns].reshape(rows, columns)


@_jit
def aligned_transpose(matrix):
    """``matrixᵀ`` (C, R) of a C-contiguous (R, C) float matrix, C-contiguous, 64-byte aligned,
    copied in register tiles (:func:`transpose_into`): one compiled call, where the same in Python
    costs a few microseconds of a small layer's call."""
    out = _aligned_empty(matrix.shape[1], matrix.shape[0], matrix)
    transpose_into(matrix, out)
    return out


@_jit
def _part_transposed(part, weight, hidden):
    """This part's rows of each of ``weight``'s G gate blocks (G·H, K), C-contiguous, transposed and
    64-byte aligned: (K, G·u), gate blocks side by side."""
    gate_count = weight.shape[0] // hidden
    first, units = _part_units(part, hidden)
    out = _aligned_empty(weight.shape[1], gate_count * units, weight)
    for k in range(gate_count):
        transpose_into(weight[k * hidden + first:k * hidden + first + units], out, k * units)
    return out


@_jit
def _part_setup(part, x, weight_ih, bias, weight_hh, chunk):
    """A part's own buffers (all of them: once the helper has joined, nothing it does can fail)
    and its rows of each gate block of W_ih, bias and W_hh (G·H, H), the weights transposed for
    register blocks (:func:`matmul_into`): ``input`` (I, G·u); ``own`` (u, G·u), which multiplies
    its own units of h_t, and ``others`` (H-u, G·u), the other part's (rows of one matrix)."""
    batch, hidden = x.shape[1], weight_hh.shape[1]
    gate_count = weight_hh.shape[0] // hidden
    first, units = _part_units(part, hidden)
    others_first = units if part == 0 else 0
    input_t, recurrent_t = _part_transposed(part, weight_ih, hidden), _part_transposed(part, weight_hh, hidden)
    own, others = recurrent_t[first:first + units], recurrent_t[others_first:others_first + hidden - units]
    bias_part = np.empty(gate_count * units, dtype=x.dtype)
    for k in range(gate_count):
        _copy(bias[k * hidden + first:k * hidden + first + units], bias_part[k * units:(k + 1) * units])
    projected = np.empty((chunk * batch, gate_count * units), dtype=x.dtype)  # x W_ihᵀ + b, a chunk of steps
    products = np.empty((2, batch, gate_count * units), dtype=x.dtype)  # h_t W_hhᵀ, its own units' and the others'
    cell_part = np.empty((3, batch, units), dtype=x.dtype)  # its units of the cell's other state
    return (input_t, bias_part, own, others), projected, products, cell_part


@_jit
def _part_start(part, state, start):
    """``start`` (N, ≥u) = this part's units of state[0] (·, N, H)."""
    first, units = _part_units(part, state.shape[2])
    for n in range(state.shape[1]):
        _copy(state[0, n, first:first + units], start[n, :units])


@_jit
def _part_begin(part, h, exchange, sync):
    """Puts this part's units of h_0 into the exchange, and counts them there."""
    _part_start(part, h, exchange[part, 0])
    atomic_store(sync, SYNC_PROGRESS + 8 * part, 1)


@_jit
def _part_projection(t, x, setup):
    """Step t's x W_ihᵀ + b for this part's rows of each gate block (N, G·u), out of the setup's
    ``projected``, which gets the next ``chunk`` steps' at the first step of each chunk."""
    (input_t, bias_part, _, _), projected = setup[0], setup[1]
    steps, batch, features = x.shape
    chunk = projected.shape[0] // batch
    s = t % chunk
    if s == 0:
        rows = (min(t + chunk, steps) - t) * batch
        matmul_into(x[t:t + rows // batch].reshape(rows, features), input_t, projected[:rows])
        _add_to_rows(projected[:rows], bias_part)
    return projected[s * batch:(s + 1) * batch]


@_jit
def _part_recurrent(t, part, exchange, setup, sync):
    """h_t W_hhᵀ for this part's gate rows (N, G·u): first its own units' share, which it computed
    itself, so that the wait for the other part's units of h_t overlaps work."""
    (_, _, own, others), products = setup[0], setup[2]
    recurrent, partial = products[0], products[1]
    matmul_into(exchange[part, t % 2], own, recurrent)
    while atomic_load(sync, SYNC_PROGRESS + 8 * (1 - part)) <= t:  # until the other's h_t is there
        pass
    matmul_into(exchange[1 - part, t % 2], others, partial)
    for n in range(recurrent.shape[0]):
        for j in range(recurrent.shape[1]):
            recurrent[n, j] += partial[n, j]
    return recurrent


@_jit
def _part_publish(t, part, h, h_next, sync):
    """Tells the other part that ``h_next`` (N, ≥u) holds this part's units of h_{t+1}, then writes
    them into h[t+1]."""
    atomic_store(sync, SYNC_PROGRESS + 8 * part, t + 2)
    first, units = _part_units(part, h.shape[2])
    for n in range(h.shape[1]):
        for j in range(units):
            h[t + 1, n, first + j] = h_next[n, j]


@_jit
def _part_keep(index, part, hidden, source, target):
    """``target[index]`` (N, G·H) gets this part's units of each of its G blocks from ``source``
    (N, G·u)."""
    first, units = _part_units(part, hidden)
    for n in range(source.shape[0]):
        for k in range(target.shape[2] // hidden):
            for j in range(units):
                target[index, n, k * hidden + first + j] = source[n, k * units + j]


@_jit_inlined
def _lstm_part_step(t, part, setup, x, h, c, tanh_c, gates, exchange, sync):
    """Step t of one part of an LSTM's loop (see :func:`lstm_loop_forward_second`)."""
    cell_part, hidden = setup[3], h.shape[2]
    z = _part_projection(t, x, setup)
    recurrent = _part_recurrent(t, part, exchange, setup, sync)
    h_next = exchange[part, (t + 1) % 2]
    lstm_cell_forward(z, recurrent, cell_part[t % 2], cell_part[(t + 1) % 2], cell_part[2], h_next)
    _part_publish(t, part, h, h_next, sync)
    _part_keep((t + 1) % c.shape[0], part, hidden, cell_part[(t + 1) % 2], c)
    if gates.shape[0] == x.shape[0]:
        _part_keep(t, part, hidden, cell_part[2], tanh_c)
        _part_keep(t, part, hidden, z, gates)


@_jit
def _lstm_parts_run(first, last, setup_0, setup_1, x, h, c, tanh_c, gates, exchange, sync):
    """The time loop of parts ``first`` .. ``last`` (0 and 1) of an LSTM, on ``setup_0`` and
    ``setup_1``: one part is a thread's share of the two-core loop; both are the caller's loop when
    no helper joins, the two parts' steps taken in turn, so that the numbers are the same whoever
    ran what. The step is inlined: called, with its reference counts on a dozen arrays, it took the
    batch-1 loop at H = 128 from 2.55 to 2.8 µs a step (throwaway A/B against onnxruntime)."""
    if first == 0:
        _part_begin(0, h, exchange, sync)
        _part_start(0, c, setup_0[3][0])
    if last == 1:
        _part_begin(1, h, exchange, sync)
        _part_start(1, c, setup_1[3][0])
    for t in range(x.shape[0]):
        if first == 0:
            _lstm_part_step(t, 0, setup_0, x, h, c, tanh_c, gates, exchange, sync)
        if last == 1:
            _lstm_part_step(t, 1, setup_1, x, h, c, tanh_c, gates, exchange, sync)


@_jit_inlined
def _gru_part_step(t, part, setup, x, bias_hn, h, hidden_n, gates, exchange, sync):
    """Step t of one part of a GRU's loop (see :func:`gru_loop_forward_second`)."""
    hidden_n_part, hidden = setup[3][0], h.shape[2]
    first, units = _part_units(part, hidden)
    z = _part_projection(t, x, setup)
    recurrent = _part_recurrent(t, part, exchange, setup, sync)
    h_next = exchange[part, (t + 1) % 2]
    gru_cell_forward(z, recurrent, bias_hn[first:first + units], exchange[part, t % 2, :, :units], hidden_n_part,
                     h_next)
    _part_publish(t, part, h, h_next, sync)
    if gates.shape[0] == x.shape[0]:
        _part_keep(t, part, hidden, hidden_n_part, hidden_n)
        _part_keep(t, part, hidden, z, gates)


@_jit
def _gru_parts_run(first, last, setup_0, setup_1, x, bias_hn, h, hidden_n, gates, exchange, sync):
    """The GRU's :func:`_lstm_parts_run`."""
    if first == 0:
        _part_begin(0, h, exchange, sync)
    if last == 1:
        _part_begin(1, h, exchange, sync)
    for t in range(x.shape[0]):
        if first == 0:
            _gru_part_step(t, 0, setup_0, x, bias_hn, h, hidden_n, gates, exchange, sync)
        if last == 1:
            _gru_part_step(t, 1, setup_1, x, bias_hn, h, hidden_n, gates, exchange, sync)


@_jit
def _lead_joins(spins, sync):
    """The caller's side, once its buffers are made: waits at most ``spins`` reads for the helper
    to join; True if it did (then part 1 is the helper's), False if the caller took JOIN first."""
    for _ in range(spins):
        if atomic_load(sync, SYNC_JOIN) != 0:
            break
    return atomic_add(sync, SYNC_JOIN, 1) != 0


@_jit
def _lead_finishes(mailbox, spins, sync, job):
    """The caller's side, its part done: waits for the helper's part to be done, then (``spins``
    reads at most) for the helper to be back in its wait for the next job: the helper needs the
    GIL on its way there, which this thread does not hold meanwhile, and would otherwise sleep on
    the GIL until the next call (tens of microseconds to wake)."""
    while atomic_load(sync, SYNC_DONE) == 0:
        pass
    for _ in range(spins):
        if atomic_load(mailbox, 2) >= job:
            break


@_jit
def lstm_loop_forward_second(x, weight_ih, bias, weight_hh, h, c, tanh_c, gates, exchange, sync, chunk):
    """The helper's side (part 1 of the units; part 0 is :func:`lstm_loop_forward_lead`'s) of
    :func:`lstm_loop_forward` on two cores, on the same h, c, tanh_c and gates (activated gates
    written only when gates has T steps): a part projects its own gates from x (T, N, I), W_ih
    (4H, I) and bias (4H,), ``chunk`` steps at a time, and runs its units' cells. Each step first
    multiplies its own units of h_t, which it computed itself, then waits for the other part's,
    so that the wait overlaps work. Returns at once unless it is the first to count JOIN (its
    buffers are made before: once it has joined, nothing in it can fail)."""
    setup = _part_setup(1, x, weight_ih, bias, weight_hh, chunk)
    if atomic_add(sync, SYNC_JOIN, 1) != 0:
        return
    _lstm_parts_run(1, 1, setup, setup, x, h, c, tanh_c, gates, exchange, sync)
    atomic_add(sync, SYNC_DONE, 1)


@_jit
def lstm_loop_forward_lead(mailbox, spins, x, weight_ih, bias, weight_hh, h, c, tanh_c, gates, exchange, sync,
                          chunk):
    """The caller's side of the two-core loop: announces the job the helper thread has been handed
    (part 1, see :mod:`._pipeline`), makes its own part's buffers meanwhile, and runs part 0 with
    the helper if it joins in time (:func:`_lead_joins`), else both parts itself. Returns whether
    the helper took part."""
    job = announce(mailbox)
    setup = _part_setup(0, x, weight_ih, bias, weight_hh, chunk)
    if not _lead_joins(spins, sync):
        setup_1 = _part_setup(1, x, weight_ih, bias, weight_hh, chunk)
        _lstm_parts_run(0, 1, setup, setup_1, x, h, c, tanh_c, gates, exchange, sync)
        return False
    _lstm_parts_run(0, 0, setup, setup, x, h, c, tanh_c, gates, exchange, sync)
    _lead_finishes(mailbox, spins, sync, job)
    return True


# ---- an LSTM on two cores, half of the batch each -------------------------------------------
# The batch rows of a layer are independent sequences, forward and backward: the caller and the
# helper thread can each run the whole loop for half of them, with no meeting per step. A forward
# part is the tuple (x (T·n, I), W_ihᵀ (I, 4H), bias (4H,), gates (T, n, 4H), W_hh as
# recurrent_weight gives it, h (T+1, n, H), c (2 or T+1, n, H), tanh_c (1 or T, n, H)) of one
# half, its input projection included; a backward part is lstm_part_backward's arguments for it,
# its weight gradients included (so that the step calls no BLAS, whose idle worker thread would
# spin on the second core for a while after each call, sharing it with the helper).
# The second half goes to whoever claims claim[0] first; done[0] becomes 1 once the helper has
# finished it.
@_jit
def lstm_part_forward(x, weight_ih_t, bias, gates, weight_hh, h, c, tanh_c):
    """One part's forward (arrays as above): gates = x W_ihᵀ + b, in register blocks, then the
    time loop."""
    project_into(x, weight_ih_t, bias, gates.reshape(gates.shape[0] * gates.shape[1], gates.shape[2]))
    lstm_loop_forward(gates, weight_hh, h, c, tanh_c)


@_jit
def lstm_second_half(claim, done, x, weight_ih_t, bias, gates, weight_hh, h, c, tanh_c):
    """The helper's job in a forward: runs the second half if it claims it before the caller does."""
    if atomic_add(claim, 0, 1) == 0:
        lstm_part_forward(x, weight_ih_t, bias, gates, weight_hh, h, c, tanh_c)
        atomic_store(done, 0, 1)


@_jit
def column_sums(matrix, out):
    """``out[j] = Σ_r matrix[r, j]`` (a bias's gradient from its pre-activations' (R, G)), down the
    rows, so that each row's pass vectorises along j."""
    out[:] = 0
    for r in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            out[j] += matrix[r, j]


@_jit
def lstm_part_backward(doutput, dh, dc, gates, c, tanh_c, weight_hh, dz, x, h, weight_ih, h_t, x_t, dx,
                       dweight_ih_t, dweight_hh_t, dbias):
    """One part's whole backward: :func:`lstm_loop_backward` (its first eight arguments), then the
    gradients of the two projections, each one product over all T·n rows of dz (T, n, 4H), in
    register blocks (:func:`matmul_into`):

    ====================  ===================  ==============================================
    array                 shape                receives
    ====================  ===================  ==============================================
    x                     (T, n, I)            the part's input (read)
    h                     (T+1, n, H)          its states, h[0] = h0 (read)
    weight_ih             (4H, I')             W_ih, I' ≥ I columns, the ones past I zero (read)
    h_t, x_t              (H, T·n), (I, T·n)   scratch: h[:-1]ᵀ and xᵀ
    dx                    (T·n, I')            dz W_ih (its first I columns are dx)
    dweight_ih_t          (I, 4H)              dW_ihᵀ = xᵀ dz
    dweight_hh_t          (H, 4H)              dW_hhᵀ = h[:-1]ᵀ dz
    dbias                 (4H,)                Σ dz over steps and rows
    ====================  ===================  ==============================================
    """
    lstm_loop_backward(doutput, dh, dc, gates, c, tanh_c, weight_hh, dz)
    rows = dz.shape[0] * dz.shape[1]
    dz_rows = dz.reshape(rows, dz.shape[2])
    transpose_into(h[:-1].reshape(rows, h.shape[2]), h_t)
    transpose_into(x.reshape(rows, x.shape[2]), x_t)
    matmul_into(h_t, dz_rows, dweight_hh_t, True)
    matmul_into(x_t, dz_rows, dweight_ih_t, True)
    matmul_into(dz_rows, weight_ih, dx)
    column_sums(dz_rows, dbias)


@_jit
def lstm_second_half_backward(claim, done, doutput, dh, dc, gates, c, tanh_c, weight_hh, dz, x, h, weight_ih,
                              h_t, x_t, dx, dweight_ih_t, dweight_hh_t, dbias):
    """The helper's job in a backward: as :func:`lstm_second_half`, with :func:`lstm_part_backward`."""
    if atomic_add(claim, 0, 1) == 0:
        lstm_part_backward(doutput, dh, dc, gates, c, tanh_c, weight_hh, dz, x, h, weight_ih, h_t, x_t, dx,
                           dweight_ih_t, dweight_hh_t, dbias)
        atomic_store(done, 0, 1)


@_jit
def _helper_took_second(mailbox, spins, claim, done, job):
    """The caller's side once its own half is done: False if it claims the second half (to run it
    itself); else True, once the helper has finished that half and (``spins`` reads at most) is
    back in its wait for the next job."""
    if atomic_add(claim, 0, 1) == 0:
        return False
    while atomic_load(done, 0) == 0:
        pass
    for _ in range(spins):
        if atomic_load(mailbox, 2) >= job:
            break
    return True


@_jit
def lstm_halves_forward(mailbox, spins, claim, done, first, second):
    """The caller's side of a forward: announces the helper's staged job (see :mod:`._pipeline`),
    runs the first half, then the second too unless the helper has claimed it. True when the
    helper ran the second half."""
    job = announce(mailbox)
    lstm_part_forward(*first)
    if _helper_took_second(mailbox, spins, claim, done, job):
        return True
    lstm_part_forward(*second)
    return False


@_jit
def lstm_halves_backward(mailbox, spins, claim, done, first, second):
    """:func:`lstm_halves_forward` for a backward's two parts."""
    job = announce(mailbox)
    lstm_part_backward(*first)
    if _helper_took_second(mailbox, spins, claim, done, job):
        return True
    lstm_part_backward(*second)
    return False


# ---- GRU, PyTorch's gate blocks r, z, n ---------------------------------------------------
@_jit
def gru_cell_forward(z, recurrent, bias_hn, h_prev, hidden_n, h_next, bias=None):
    """One step: ``z`` (N, 3H) the input's pre-activations (biases of r and z included, or given
    as ``bias`` (3H,), b_ih + [b_hr, b_hz, 0]), ``recurrent`` (N, 3H) = h_{t-1} W_hhᵀ. ``z``
    becomes the activated gates; hidden_n (N, H) gets W_hn h_{t-1} + b_hn and h_next
    h_t = n + z ⊙ (h_{t-1} - n). float32 runs in vectors (:mod:`._lanes`); below (float64), one
    array written per loop, so that each vectorises: the candidate goes through h_next before its
    block of z."""
    if gru_cell_lanes(z, recurrent, bias, bias_hn, h_prev, hidden_n, h_next):
        return
    rows, hidden = h_prev.shape
    for n in range(rows):
        for j in range(2 * hidden):  # r, z
            z[n, j] = _sigmoid(_plus_bias(z[n, j] + recurrent[n, j], bias, j))
        for j in range(hidden):
            hidden_n[n, j] = recurrent[n, 2 * hidden + j] + bias_hn[j]
        for j in range(hidden):  # n = tanh(a_n + r ⊙ hidden_n)
            h_next[n, j] = _tanh(_plus_bias(z[n, 2 * hidden + j], bias, 2 * hidden + j) + z[n, j] * hidden_n[n, j])
        for j in range(hidden):
            z[n, 2 * hidden + j] = h_next[n, j]
        for j in range(hidden):  # h = n + z ⊙ (h_prev - n)
            candidate = h_next[n, j]
            h_next[n, j] = candidate + z[n, hidden + j] * (h_prev[n, j] - candidate)


@_jit
def gru_cell_backward(dh, h_prev, gates, hidden_n, dz_input, dz_hidden, dz_hidden_n, dh_direct):
    """Backward of one step: writes the gradients of the input's pre-activations dz_input and of
    the hidden state's dz_hidden (N, 3H; they differ only in the n block, r ⊙ dn against dn),
    that n block again in dz_hidden_n (N, H), and ``dh_direct`` = dh ⊙ z, h_{t-1}'s gradient not
    through W_hh. (One block of one array written per loop, so that each vectorises; in vectors of
    lanes, its eight outputs at once ran twice as slow at N=128, H=512: see the README.)"""
    rows, hidden = h_prev.shape
    for n in range(rows):
        for j in range(hidden):  # dn = dh ⊙ (1 - z), through tanh'
            z, candidate = gates[n, hidden + j], gates[n, 2 * hidden + j]
            dz_input[n, 2 * hidden + j] = dh[n, j] * (_ONE - z) * (_ONE - candidate * candidate)
        for j in range(hidden):  # dr = dn ⊙ hidden_n, through σ'
            r, z, candidate = gates[n, j], gates[n, hidden + j], gates[n, 2 * hidden + j]
            dn = dh[n, j] * (_ONE - z) * (_ONE - candidate * candidate)
            dz_input[n, j] = dn * hidden_n[n, j] * r * (_ONE - r)
        for j in range(hidden):  # dz = dh ⊙ (h_prev - n), through σ'
            z = gates[n, hidden + j]
            dz_input[n, hidden + j] = dh[n, j] * (h_prev[n, j] - gates[n, 2 * hidden + j]) * z * (_ONE - z)
        for j in range(2 * hidden):
            dz_hidden[n, j] = dz_input[n, j]
        for j in range(hidden):  # the hidden state's n block: r ⊙ dn
            dz_hidden_n[n, j] = dz_input[n, 2 * hidden + j] * gates[n, j]
        for j in range(hidden):
            dz_hidden[n, 2 * hidden + j] = dz_hidden_n[n, j]
        for j in range(hidden):
            dh_direct[n, j] = dh[n, j] * gates[n, hidden + j]


@_jit
def gru_step_forward(t, gates, recurrent, bias_hn, h, hidden_n, bias=None):
    """Step t of the time loop (arrays as in :func:`gru_loop_forward`), given ``recurrent`` (N, 3H)
    = h[t] W_hhᵀ, and ``bias`` (3H,) where gates do not hold it (see :func:`gru_cell_forward`)."""
    keep = hidden_n.shape[0] == gates.shape[0]
    gru_cell_forward(gates[t], recurrent, bias_hn, h[t], hidden_n[t if keep else 0], h[t + 1], bias)


@_jit
def gru_step_backward(t, doutput, dh, h, gates, hidden_n, dz_input, dz_hidden, dz_hidden_n, direct):
    """Step t of BPTT (arrays as in :func:`gru_loop_backward`; dz_hidden (N, 3H) and direct (N, H)
    are scratch): adds doutput[t] into dh and writes what :func:`gru_cell_backward` writes. The
    caller then sets dh = dz_hidden W_hh + direct."""
    dh += doutput[t]
    gru_cell_backward(dh, h[t], gates[t], hidden_n[t], dz_input[t], dz_hidden, dz_hidden_n[t], direct)


@_jit
def gru_loop_forward(gates, weight_hh, bias_hn, h, hidden_n, pipeline=None):
    """The whole time loop of a small GRU: gates (T, N, 3H) in (or filled by a ``pipeline`` as
    in :func:`lstm_loop_forward`), activated out; h (T+1, N, H) from h[0]; hidden_n (T, N, H),
    or (1, N, H) when nothing is kept for backward. W_hh is (3H, H), or (H, 3H) as in
    :func:`recurrent_product`."""
    start_pipeline(pipeline)
    recurrent = np.empty_like(gates[0])
    steps = gates.shape[0]
    span = _chunk_span(steps, pipeline)
    for start in range(0, steps, span):
        _await_projection(start, pipeline, gates)
        _gru_steps(start, min(start + span, steps), gates, weight_hh, bias_hn, h, hidden_n, recurrent)


@_jit
def _gru_steps(start, stop, gates, weight_hh, bias_hn, h, hidden_n, recurrent):
    """Steps ``start`` .. ``stop - 1`` of :func:`gru_loop_forward`, their gates in place."""
    for t in range(start, stop):
        recurrent_product(h[t], weight_hh, recurrent)
        gru_step_forward(t, gates, recurrent, bias_hn, h, hidden_n)


@_jit
def gru_loop_forward_second(x, weight_ih, bias, weight_hh, bias_hn, h, hidden_n, gates, exchange, sync, chunk):
    """The helper's side of :func:`gru_loop_forward` on two cores, as
    :func:`lstm_loop_forward_second` is the LSTM's: ``bias`` (3H,) is the hoisted one of
    :func:`gru_cell_forward`, hidden_n and the activated gates are written only when gates has T
    steps."""
    setup = _part_setup(1, x, weight_ih, bias, weight_hh, chunk)
    if atomic_add(sync, SYNC_JOIN, 1) != 0:
        return
    _gru_parts_run(1, 1, setup, setup, x, bias_hn, h, hidden_n, gates, exchange, sync)
    atomic_add(sync, SYNC_DONE, 1)


@_jit
def gru_loop_forward_lead(mailbox, spins, x, weight_ih, bias, weight_hh, bias_hn, h, hidden_n, gates, exchange, sync,
                         chunk):
    """The caller's side of the GRU's two-core loop (see :func:`lstm_loop_forward_lead`)."""
    job = announce(mailbox)
    setup = _part_setup(0, x, weight_ih, bias, weight_hh, chunk)
    if not _lead_joins(spins, sync):
        setup_1 = _part_setup(1, x, weight_ih, bias, weight_hh, chunk)
        _gru_parts_run(0, 1, setup, setup_1, x, bias_hn, h, hidden_n, gates, exchange, sync)
        return False
    _gru_parts_run(0, 0, setup, setup, x, bias_hn, h, hidden_n, gates, exchange, sync)
    _lead_finishes(mailbox, spins, sync, job)
    return True


@_jit
def gru_loop_backward(doutput, dh, h, gates, hidden_n, weight_hh, dz_input, dz_hidden_n):
    """BPTT of :func:`gru_loop_forward`: dz_input (T, N, 3H) and dz_hidden_n (T, N, H) written
    (see :func:`gru_cell_backward`), dh (N, H) turned from h_T's gradient into h_0's.
    ``weight_hh`` is W_hhᵀ (H, 3H), C-contiguous, or W_hh as stored (3H, H), as in
    :func:`gradient_product`."""
    direct = np.empty_like(dh)
    dz_hidden = np.empty_like(dz_input[0])
    for t in range(gates.shape[0] - 1, -1, -1):
        gru_step_backward(t, doutput, dh, h, gates, hidden_n, dz_input, dz_hidden, dz_hidden_n, direct)
        gradient_product(dz_hidden, weight_hh, dh)
        dh += direct
