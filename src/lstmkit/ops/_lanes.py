"""A cell's float32 equations on a vector of lanes at a time (LLVM's vectors, emitted directly).

Numba vectorises a cell's loops, but a loop of 32 or 64 entries (a batch-1 step at H = 32) pays its
runtime overlap checks, unrolled bodies and remainder for few vectors: the LSTM cell took 104 ns a
step there, about as long as the recurrent product. Here a cell is written once as vector
equations (:func:`lstm_cell_lanes`): every load and store is masked to the units left, so there
is no scalar remainder, and every unit of every row runs the same instructions (the results do not
depend on where a unit falls in a vector).

float32 only: tanh is the rational approximation of :mod:`._kernels` (``TANH_CLAMP``, ``TANH_P``,
``TANH_Q``: Eigen's [13/6] on a clamped argument, at most 3e-7 from the true tanh), σ(x) = ½ tanh(½x)
+ ½, and a NaN goes through as NaN (the clamp is a compare and select, not a min/max). Usable inside
``@numba.njit`` functions only, on 2-D float32 arrays whose rows are contiguous (any stride between
rows), without bounds checks: the caller keeps n < rows and j < H.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils

from ._simd import VECTOR_BYTES, _broadcast, _int

TANH_CLAMP = np.float32(7.90531110763549805)  # tanh(±7.9053) rounds to ±1 in float32
TANH_P = [np.float32(v) for v in (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11,
                                  5.12229709037114e-08, 1.48572235717979e-05, 6.37261928875436e-04,
                                  4.89352455891786e-03)]  # x¹³ .. x¹ (odd powers), highest first
TANH_Q = [np.float32(v) for v in (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03,
                                  4.89352518554385e-03)]  # x⁶ .. x⁰ (even powers)
LANES = VECTOR_BYTES // 4  # float32 entries a vector


class _Lanes:
    """Code for ``LANES`` consecutive units j .. j+L-1 of row n of 2-D C-contiguous float32 arrays:
    masked loads and stores (units ≥ H are neither read nor written) and the vector arithmetic.
    Rows may be apart by any stride; the units of a row must be adjacent (the caller checks)."""

    def __init__(self, context, builder, row, first, hidden):
        self.builder, self.row, self.first = builder, row, first
        self.vector = ir.VectorType(ir.FloatType(), LANES)
        module = builder.module
        pointer = self.vector.as_pointer()
        mask_type = ir.VectorType(ir.IntType(1), LANES)
        self._fma = cgutils.get_or_insert_function(module, ir.FunctionType(self.vector, [self.vector] * 3),
                                                   f"llvm.fma.v{LANES}f32")
        self._load = cgutils.get_or_insert_function(
            module, ir.FunctionType(self.vector, [pointer, ir.IntType(32), mask_type, self.vector]),
            f"llvm.masked.load.v{LANES}f32.p0")
        self._store = cgutils.get_or_insert_function(
            module, ir.FunctionType(ir.VoidType(), [self.vector, pointer, ir.IntType(32), mask_type]),
            f"llvm.masked.store.v{LANES}f32.p0")
        left = _broadcast(builder, builder.sub(hidden, first), ir.VectorType(ir.IntType(64), LANES))
        self.mask = builder.icmp_signed("<", ir.Constant(left.type, list(range(LANES))), left)
        self._zero = ir.Constant(self.vector, None)

    def _at(self, array, column=_int(0)):
        builder = self.builder
        row_bytes = builder.mul(self.row, builder.extract_value(array.strides, 0))
        offset = builder.add(row_bytes, builder.mul(builder.add(column, self.first), _int(4)))
        start = builder.gep(builder.bitcast(array.data, ir.IntType(8).as_pointer()), [offset])
        return builder.bitcast(start, self.vector.as_pointer())

    def load(self, array, column=_int(0)):
        """Units j .. of row n, from ``column`` on (a gate block's start); masked lanes read as 0."""
        return self.builder.call(self._load, [self._at(array, column), _i32(4), self.mask, self._zero])

    def load_1d(self, data, column):
        """The same lanes of a 1-D array (a bias), from ``column`` on."""
        pointer = self.builder.gep(data, [self.builder.add(column, self.first)])
        return self.builder.call(self._load, [self.builder.bitcast(pointer, self.vector.as_pointer()), _i32(4),
                                              self.mask, self._zero])

    def store(self, value, array, column=_int(0)):
        self.builder.call(self._store, [value, self._at(array, column), _i32(4), self.mask])

    def splat(self, value):
        return ir.Constant(self.vector, [float(value)] * LANES)

    def fma(self, a, b, c):
        """a·b + c, rounded once."""
        return self.builder.call(self._fma, [a, b, c])

    def add(self, a, b):
        return self.builder.fadd(a, b)

    def sub(self, a, b):
        return self.builder.fsub(a, b)

    def mul(self, a, b):
        return self.builder.fmul(a, b)

    def tanh(self, x):
        """The rational approximation, as ``_kernels._tanh_approx``."""
        builder, clamp, low = self.builder, self.splat(TANH_CLAMP), self.splat(-TANH_CLAMP)
        x = builder.select(builder.fcmp_ordered(">", x, clamp), clamp, x)
        x = builder.select(builder.fcmp_ordered("<", x, low), low, x)
        x2 = builder.fmul(x, x)
        p = self.fma(x2, self.splat(TANH_P[0]), self.splat(TANH_P[1]))
        for coefficient in TANH_P[2:]:
            p = self.fma(p, x2, self.splat(coefficient))
        q = self.fma(x2, self.splat(TANH_Q[0]), self.splat(TANH_Q[1]))
        for coefficient in TANH_Q[2:]:
            q = self.fma(q, x2, self.splat(coefficient))
        return builder.fdiv(builder.fmul(p, x), q)

    def sigmoid(self, x):
        """σ(x) = ½ tanh(½x) + ½."""
        half = self.splat(0.5)
        return self.fma(half, self.tanh(self.mul(half, x)), half)


def _i32(value):
    return ir.Constant(ir.IntType(32), value)


def _check_float32_matrices(arrays):
    if not all(isinstance(x, types.Array) and x.ndim == 2 and x.dtype == types.float32 for x in arrays):
        raise numba.core.errors.TypingError(f"vector cells need 2-D float32 arrays, got {arrays}")


def _no_bias(bias):
    return isinstance(bias, (types.NoneType, types.Omitted))


@numba.extending.intrinsic
def lstm_cell_lanes(typingctx, z, recurrent, bias, c_prev, c_next, tanh_c, h_next, n, j):
    """Units j .. j+L-1 of row n of the LSTM cell (``_kernels.lstm_cell_forward``'s contract, float32):
    ``z`` (N, 4H) the input's pre-activations, ``recurrent`` (N, 4H) h_{t-1} W_hhᵀ, ``bias`` (4H,)
    or None; z becomes the activated gates i, f, g, o, and c_t, tanh(c_t), h_t are written."""
    _check_float32_matrices((z, recurrent, c_prev, c_next, tanh_c, h_next))
    with_bias = not _no_bias(bias)

    def codegen(context, builder, signature, arguments):
        z_, recurrent_, _, c_prev_, c_next_, tanh_c_, h_next_ = (
            context.make_array(signature.args[i])(context, builder, arguments[i]) if i != 2 else None
            for i in range(7))
        hidden = builder.extract_value(c_prev_.shape, 1)
        lanes = _Lanes(context, builder, arguments[7], arguments[8], hidden)
        bias_data = context.make_array(signature.args[2])(context, builder, arguments[2]).data if with_bias else None

        def activated(block, activation):
            column = builder.mul(hidden, _int(block))
            value = lanes.add(lanes.load(z_, column), lanes.load(recurrent_, column))
            if with_bias:
                value = lanes.add(value, lanes.load_1d(bias_data, column))
            value = activation(value)
            lanes.store(value, z_, column)
            return value

        i, f = activated(0, lanes.sigmoid), activated(1, lanes.sigmoid)
        g, o = activated(2, lanes.tanh), activated(3, lanes.sigmoid)
        c = lanes.fma(f, lanes.load(c_prev_), lanes.mul(i, g))  # c = f ⊙ c_prev + i ⊙ g
        lanes.store(c, c_next_)
        tanh_c = lanes.tanh(c)
        lanes.store(tanh_c, tanh_c_)
        lanes.store(lanes.mul(o, tanh_c), h_next_)  # h = o ⊙ tanh(c)
        return context.get_dummy_value()

    return types.void(z, recurrent, bias, c_prev, c_next, tanh_c, h_next, types.intp, types.intp), codegen


@numba.extending.intrinsic
def gru_cell_lanes(typingctx, z, recurrent, bias, bias_hn, h_prev, hidden_n, h_next, n, j):
    """Units j .. j+L-1 of row n of the GRU cell (``_kernels.gru_cell_forward``'s contract, float32):
    ``z`` (N, 3H) the input's pre-activations, ``recurrent`` (N, 3H) h_{t-1} W_hhᵀ, ``bias`` (3H,)
    or None, ``bias_hn`` (H,); z becomes the activated gates r, z, n, hidden_n gets W_hn h_{t-1} +
    b_hn and h_next h_t = n + z ⊙ (h_{t-1} - n)."""
    _check_float32_matrices((z, recurrent, h_prev, hidden_n, h_next))
    with_bias = not _no_bias(bias)

    def codegen(context, builder, signature, arguments):
        z_, recurrent_, _, _, h_prev_, hidden_n_, h_next_ = (
            context.make_array(signature.args[i])(context, builder, arguments[i]) if i not in (2, 3) else None
            for i in range(7))
        bias_hn_ = context.make_array(signature.args[3])(context, builder, arguments[3])
        hidden = builder.extract_value(h_prev_.shape, 1)
        lanes = _Lanes(context, builder, arguments[7], arguments[8], hidden)
        bias_data = context.make_array(signature.args[2])(context, builder, arguments[2]).data if with_bias else None

        def input_part(block):
            column = builder.mul(hidden, _int(block))
            value = lanes.load(z_, column)
            return lanes.add(value, lanes.load_1d(bias_data, column)) if with_bias else value

        def activated(block, value):
            lanes.store(value, z_, builder.mul(hidden, _int(block)))
            return value

        r = activated(0, lanes.sigmoid(lanes.add(input_part(0), lanes.load(recurrent_))))
        update = activated(1, lanes.sigmoid(lanes.add(input_part(1), lanes.load(recurrent_, hidden))))
        recurrent_n = lanes.add(lanes.load(recurrent_, builder.mul(hidden, _int(2))),
                                lanes.load_1d(bias_hn_.data, _int(0)))
        lanes.store(recurrent_n, hidden_n_)
        candidate = activated(2, lanes.tanh(lanes.fma(r, recurrent_n, input_part(2))))  # n = tanh(a_n + r ⊙ hidden_n)
        h = lanes.fma(update, lanes.sub(lanes.load(h_prev_), candidate), candidate)  # h = n + z ⊙ (h_prev - n)
        lanes.store(h, h_next_)
        return context.get_dummy_value()

    return types.void(z, recurrent, bias, bias_hn, h_prev, hidden_n, h_next, types.intp, types.intp), codegen
