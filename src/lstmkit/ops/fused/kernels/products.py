"""Small matrix products in registers, transposing copies, and the input projection's product.

A small layer's step multiplies (N, H) by (H, G) with N = 1 to a few rows: a BLAS call costs
more than the product there, so these run inside the compiled loops. :func:`matmul_into` keeps
its sums in vector registers (:mod:`..intrinsics.simd`); :func:`matmul_transposed_into` takes
W_hh as PyTorch stores it, dot products along H.
"""

from __future__ import annotations

import numpy as np

from ..intrinsics.simd import (
    LONG,
    TALL,
    TILE_BYTES,
    VECTOR_BYTES,
    WIDE,
    half_block,
    long_block,
    narrow_block,
    quarter_block,
    tail_block,
    tall_block,
    transpose_tile,
    wide_block,
)
from .jit import jit, jit_reassociating


@jit
def matmul_into(a, b, out, long_sums=False):
    """``out = a @ b`` for small matrices, (N, K) x (K, G), C-contiguous, in blocks whose sums stay
    in vector registers (:mod:`..intrinsics.simd`): four rows at a time against narrow column blocks (wider
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


@jit
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


@jit_reassociating
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


@jit_reassociating
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


@jit
def transpose_into(source, target, column=0):
    """``target[:, column : column + R] = sourceᵀ``: (R, C) into (C, ≥ column + R), both
    C-contiguous, in square tiles of 32-byte rows transposed in registers
    (:mod:`..intrinsics.simd`), then the rows and columns past the last whole tile one by one.
    NumPy's transposing copy walks the source down its columns, at a cache line an entry: W_hhᵀ of
    a GRU at H = 128 (384 x 128) took 40-49 µs with NumPy and 6-9 µs here, on a 2-core AVX-512
    machine, which took a batch-1 layer call of one step from about 60 to 45 µs."""
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


@jit
def recurrent_product(h_prev, weight_hh, out):
    """``out = h_prev W_hhᵀ`` (N, G) with W_hh as PyTorch stores it (G, H), or given as its
    transpose (H, G), C-contiguous, which tiny layers run faster with (each h_prev entry scales a
    row, in registers; see :func:`..memory.recurrent_weight`). G is never H, so the shape says which."""
    if weight_hh.shape[0] == out.shape[1]:
        matmul_transposed_into(h_prev, weight_hh, out)
    else:
        matmul_into(h_prev, weight_hh, out)


@jit
def gradient_product(dz, weight_hh, dh):
    """``dh = dz W_hh`` (N, H), the gradient reaching h_{t-1} through W_hh, from dz (N, G), with
    W_hh transposed (H, G), C-contiguous, which small layers' backward loops take (dot products
    along G; see :func:`..memory.backward_weight`), or as stored (G, H). G is never H."""
    if weight_hh.shape[0] == dh.shape[1]:
        matmul_transposed_into(dz, weight_hh, dh)
    else:
        matmul_into(dz, weight_hh, dh)


@jit
def project_into(x, weight_t, bias, out):
    """``out = x weightᵀ + bias``: (R, I) x (I, G) + (G,) into (R, G), rows of steps' inputs, from
    the weight's aligned transpose ``weight_t`` (register blocks, :func:`matmul_into`)."""
    matmul_into(x, weight_t, out)
    add_to_rows(out, bias)


@jit
def add_to_rows(out, bias):
    """``out[r] += bias`` for every row r of ``out`` (R, G)."""
    for r in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[r, j] += bias[j]


@jit
def aligned_empty(rows, columns, like):
    """An uninitialised (rows, columns) array of ``like``'s dtype whose data starts on a 64-byte
    boundary (NumPy's and Numba's allocations are aligned to 16 bytes; :mod:`..intrinsics.simd`'s blocks read
    64 bytes at a time)."""
    lanes = 64 // like.itemsize
    buffer = np.empty(rows * columns + lanes, dtype=like.dtype)
    start = (lanes - buffer.ctypes.data // like.itemsize % lanes) % lanes
    return buffer[start : start + rows * columns].reshape(rows, columns)


@jit
def aligned_transpose(matrix):
    """``matrixᵀ`` (C, R) of a C-contiguous (R, C) float matrix, C-contiguous, 64-byte aligned,
    copied in register tiles (:func:`transpose_into`): one compiled call, where the same in Python
    costs a few microseconds of a small layer's call."""
    out = aligned_empty(matrix.shape[1], matrix.shape[0], matrix)
    transpose_into(matrix, out)
    return out


@jit
def column_sums(matrix, out):
    """``out[j] = Σ_r matrix[r, j]`` (a bias's gradient from its pre-activations' (R, G)), down the
    rows, so that each row's pass vectorises along j."""
    out[:] = 0
    for r in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            out[j] += matrix[r, j]
