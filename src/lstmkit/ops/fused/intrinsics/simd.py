"""Rows times a block of columns with the block's sums held in vector registers (LLVM's vectors,
emitted directly), for small layers' recurrent product.

``out[n + r, j : j + width] = a[n + r, :K] @ b[:, j : j + width]`` for r < rows, K being b's rows
(a may be wider: its first K columns are read), one ``a[n + r, k] * b[k, j : j + width]`` fused
multiply-add a row and k, on rows x vectors accumulators of ``VECTOR_BYTES`` each (each vector of
b loaded once for all rows). Numba's own loops
cannot keep such a block in registers: each pass over ``out`` loads and stores it, because the
compiler cannot prove that ``out`` and ``b`` do not overlap. With b (W_hhᵀ of a small layer) in
the L1 cache and 64-byte aligned, the fused multiply-adds and b's loads are all the block's loop
does (`python benchmarks/ab.py transposed` times the layers; see :mod:`..plan`). A step's time with
these blocks over that of dot products along H on W_hh as stored, on a 2-core AVX-512 machine:
LSTM 0.81 at batch 1, H = 32; 0.83 at batch 1, H = 64; 0.82 at batch 4, H = 64; 0.68 at batch 16,
H = 64; 0.77 at batch 4, H = 128; GRU 1.00 at batch 1, H = 32; 0.90 at H = 128 and 1.09 at
H = 256 (so a compiled loop reads W_hh as stored above H = 128, :class:`..plan.Tuning`). Blocks of
four, six, twelve or sixteen vectors a row instead of eight ran no faster at batch 1.

VECTOR_BYTES is 64 where the CPU has AVX-512, else 32 (eight 32-byte accumulators and the
broadcast a[n, k] fit AVX2's sixteen registers). Usable inside ``@numba.njit`` functions only,
on C-contiguous arrays of one float dtype, without bounds checks: the caller keeps
``n + rows <= a.shape[0]`` and ``j + width <= out.shape[1]``.
"""

from __future__ import annotations

import llvmlite.binding as llvm
import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils

VECTOR_BYTES = 64 if llvm.get_host_cpu_features().get("avx512f", False) else 32


def _check_operands(a, b, out):
    arrays = (a, b, out)
    if not all(isinstance(x, types.Array) and x.ndim == 2 and x.layout == "C" for x in arrays):
        raise numba.core.errors.TypingError(f"block products need C-contiguous 2-D arrays, got {arrays}")
    if a.dtype not in (types.float32, types.float64) or b.dtype != a.dtype or out.dtype != a.dtype:
        raise numba.core.errors.TypingError(f"block products need one float dtype, got {arrays}")


def block_kernel(rows: int, vectors: int, vector_bytes: int = VECTOR_BYTES, masked: bool = False):
    """The intrinsic ``kernel(a, n, b, out, j)`` for a block of ``rows`` rows of ``a`` (n .. n+rows-1)
    and ``vectors`` vectors of ``vector_bytes``, ``width = vectors * vector_bytes // a.itemsize``
    columns: rows x vectors accumulators (see above). ``masked``: one vector whose lanes past b's
    last column are neither loaded nor stored (the columns left after the whole vectors, which a
    scalar loop over K would otherwise take: W_hh (4H, H) at H = 200 leaves 8 a row)."""
    if masked and vectors != 1:
        raise ValueError(f"a masked block is one vector wide, got vectors={vectors}")

    @numba.extending.intrinsic
    def kernel(typingctx, a, n, b, out, j):
        _check_operands(a, b, out)

        def codegen(context, builder, signature, arguments):
            a_array, b_array, out_array = (
                context.make_array(signature.args[i])(context, builder, arguments[i]) for i in (0, 2, 3)
            )
            first_row, column = arguments[1], arguments[4]
            scalar = context.get_value_type(signature.args[0].dtype)
            itemsize = context.get_abi_sizeof(scalar)
            lanes = vector_bytes // itemsize
            vector = ir.VectorType(scalar, lanes)
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vector, [vector] * 3), f"llvm.fma.v{lanes}f{8 * itemsize}"
            )
            a_width = builder.extract_value(a_array.shape, 1)
            inner = builder.extract_value(b_array.shape, 0)
            b_width = builder.extract_value(b_array.shape, 1)
            out_width = builder.extract_value(out_array.shape, 1)

            def row_start(data, row_width, r, offset):
                row = builder.add(first_row, int_constant(r))
                return builder.gep(data, [builder.add(builder.mul(row, row_width), offset)])

            load, store = _vector_load, _vector_store
            if masked:
                load, store = _masked_access(builder, vector, builder.sub(b_width, column), itemsize)
            sums = [
                [cgutils.alloca_once_value(builder, ir.Constant(vector, None)) for _ in range(vectors)]
                for _ in range(rows)
            ]
            with cgutils.for_range(builder, inner) as loop:
                k = loop.index
                b_k = builder.gep(b_array.data, [builder.add(builder.mul(k, b_width), column)])
                b_kv = [load(builder, _vector_at(builder, b_k, v * lanes, vector), itemsize) for v in range(vectors)]
                for r, row_sums in enumerate(sums):
                    a_rk = broadcast(builder, builder.load(row_start(a_array.data, a_width, r, k)), vector)
                    for total, b_v in zip(row_sums, b_kv):
                        builder.store(builder.call(fma, [a_rk, b_v, builder.load(total)]), total)
            for r, row_sums in enumerate(sums):
                out_row = row_start(out_array.data, out_width, r, column)
                for v, total in enumerate(row_sums):
                    store(builder, builder.load(total), _vector_at(builder, out_row, v * lanes, vector), itemsize)
            return context.get_dummy_value()

        return types.void(a, n, b, out, types.intp), codegen

    return kernel


def _vector_load(builder, pointer, align):
    return builder.load(pointer, align=align)


def _vector_store(builder, value, pointer, align):
    builder.store(value, pointer, align=align)


def _masked_access(builder, vector, count, align):
    """``(load, store)`` as :func:`_vector_load` and :func:`_vector_store`, for the first ``count``
    lanes of ``vector`` only (LLVM's masked load and store: AVX-512's mask registers, AVX's vmaskmov);
    the other lanes load as zeros."""
    lanes, bits = vector.count, vector.element.intrinsic_name
    index = ir.Constant(ir.VectorType(ir.IntType(64), lanes), list(range(lanes)))
    limit = builder.insert_element(
        ir.Constant(ir.VectorType(ir.IntType(64), lanes), ir.Undefined), count, ir.Constant(ir.IntType(32), 0)
    )
    limit = builder.shuffle_vector(limit, limit, ir.Constant(ir.VectorType(ir.IntType(32), lanes), None))
    mask = builder.icmp_signed("<", index, limit)
    pointer_type, mask_type, alignment = vector.as_pointer(), mask.type, ir.Constant(ir.IntType(32), align)
    masked_load = cgutils.get_or_insert_function(
        builder.module,
        ir.FunctionType(vector, [pointer_type, ir.IntType(32), mask_type, vector]),
        f"llvm.masked.load.v{lanes}{bits}.p0v{lanes}{bits}",
    )
    masked_store = cgutils.get_or_insert_function(
        builder.module,
        ir.FunctionType(ir.VoidType(), [vector, pointer_type, ir.IntType(32), mask_type]),
        f"llvm.masked.store.v{lanes}{bits}.p0v{lanes}{bits}",
    )

    def load(builder, pointer, align):
        return builder.call(masked_load, [pointer, alignment, mask, ir.Constant(vector, None)])

    def store(builder, value, pointer, align):
        builder.call(masked_store, [value, pointer, alignment, mask])

    return load, store


def _tile_transpose(lanes_bytes: int = 32):
    """The intrinsic ``transpose_tile(source, i, j, target, column)``: ``target[j : j+L,
    column+i : column+i+L] = source[i : i+L, j : j+L]ᵀ`` for L lanes of ``lanes_bytes`` (8 float32
    or 4 float64): L rows loaded as vectors, log2(L) rounds of shuffles (round d pairs rows r and
    r+d, swapping their blocks of d lanes), L vectors stored. Same conditions as the blocks: C-contiguous 2-D arrays of
    one float dtype, and the caller keeps the tile inside both."""

    @numba.extending.intrinsic
    def transpose_tile(typingctx, source, i, j, target, column):
        _check_operands(source, source, target)

        def codegen(context, builder, signature, arguments):
            source_array, target_array = (
                context.make_array(signature.args[k])(context, builder, arguments[k]) for k in (0, 3)
            )
            first_row, first_column, target_column = arguments[1], arguments[2], arguments[4]
            scalar = context.get_value_type(signature.args[0].dtype)
            lanes = lanes_bytes // context.get_abi_sizeof(scalar)
            vector = ir.VectorType(scalar, lanes)

            def at(array, row, column, r):
                width = builder.extract_value(array.shape, 1)
                offset = builder.add(builder.mul(builder.add(row, int_constant(r)), width), column)
                return builder.bitcast(builder.gep(array.data, [offset]), vector.as_pointer())

            rows = [builder.load(at(source_array, first_row, first_column, r), align=1) for r in range(lanes)]
            distance = 1
            while distance < lanes:
                for r in range(lanes):
                    if r & distance:
                        continue
                    low = [k if not k & distance else lanes + k - distance for k in range(lanes)]
                    high = [k + distance if not k & distance else lanes + k for k in range(lanes)]
                    a, b = rows[r], rows[r + distance]
                    rows[r] = builder.shuffle_vector(a, b, _mask(low))
                    rows[r + distance] = builder.shuffle_vector(a, b, _mask(high))
                distance *= 2
            for r, row in enumerate(rows):
                builder.store(row, at(target_array, first_column, builder.add(target_column, first_row), r), align=1)
            return context.get_dummy_value()

        return types.void(source, types.intp, types.intp, target, types.intp), codegen

    return transpose_tile


def _mask(indices):
    """A shuffle mask: lane k of the result is lane ``indices[k]`` of the two vectors end to end."""
    return ir.Constant(ir.VectorType(ir.IntType(32), len(indices)), indices)


def int_constant(value):
    return ir.Constant(ir.IntType(64), value)


def broadcast(builder, value, vector):
    """``value`` in every lane of ``vector``."""
    lane_0 = ir.Constant(ir.IntType(32), 0)
    single = builder.insert_element(ir.Constant(vector, ir.Undefined), value, lane_0)
    return builder.shuffle_vector(
        single, ir.Constant(vector, ir.Undefined), ir.Constant(ir.VectorType(ir.IntType(32), vector.count), None)
    )


def _vector_at(builder, pointer, offset, vector):
    """A ``vector`` pointer to ``pointer[offset]`` (a scalar pointer)."""
    return builder.bitcast(builder.gep(pointer, [int_constant(offset)]), vector.as_pointer())


# (rows, vectors) of the blocks matmul_into uses: one row of a wide block, four rows of a narrower one
# (each b vector loaded once for four rows), and one row of four, two or one vectors for the columns
# that are left (each an independent chain of fused multiply-adds a vector: fewer chains than the
# adder's latency, four cycles, leaves it idle, as one-vector blocks alone did).
WIDE, TALL, HALF, QUARTER, NARROW = (1, 8), (4, 2), (1, 4), (1, 2), (1, 1)
wide_block, tall_block, half_block, quarter_block, narrow_block = (
    block_kernel(*shape) for shape in (WIDE, TALL, HALF, QUARTER, NARROW)
)
tail_block = block_kernel(*NARROW, masked=True)  # the last columns, fewer than a vector
# Four rows of as many vectors as the registers hold (24 accumulators of AVX-512's 32, 12 of AVX2's
# 16), for products over long sums (a weight gradient's, over all steps' rows: b streams from L2
# or L3, so each of its vectors should serve as many accumulators as fit). The recurrent product's
# short sums run no faster with it (TALL of this shape was slower).
LONG = (4, 6 if VECTOR_BYTES == 64 else 3)
long_block = block_kernel(*LONG)

# Tiles of 32 bytes a row: 8 x 8 float32 or 4 x 4 float64 (the vectors of every x86-64 CPU with AVX).
TILE_BYTES = 32
transpose_tile = _tile_transpose(TILE_BYTES)
