"""A cell's float32 equations on a vector of lanes at a time (LLVM's vectors, emitted directly).

Numba vectorises a cell's loops, but a loop of 32 or 64 entries (a batch-1 step at H = 32) pays its
runtime overlap checks, unrolled bodies and remainder for few vectors: the LSTM cell took 104 ns a
step there, about as long as the recurrent product. Here a cell is written once as vector
equations (:func:`lstm_cell_lanes`): the units past the last whole vector run the same equations
with every load and store masked to them, so there is no scalar remainder, and every unit of every
row runs the same arithmetic (the results do not depend on where a unit falls in a vector).

float32 only: tanh is the rational approximation below (``TANH_CLAMP``, ``TANH_P``, ``TANH_Q``,
which ``kernels.activations.tanh_approx`` evaluates too: Eigen's [13/6] on a clamped argument, at most 3e-7
from the true tanh), σ(x) = ½ tanh(½x) + ½, both saturating where torch's float32 functions do
(``TANH_ONE_FROM``, ``SIGMOID_ONE_FROM``, ``SIGMOID_ZERO_TO``: exactly ±1, 1 and 0 there, so a saturated
gate passes exactly 0 gradient, and 0 times an infinite input is NaN, as in torch), and a NaN goes
through as NaN (the clamp and the saturation are ordered compares and selects, false for NaN). Each
cell is an intrinsic for ``@numba.njit`` functions that returns whether it ran: on float32 arrays whose
rows' units are adjacent (any stride between rows) it computes every row and unit and returns True;
otherwise it does nothing and returns False, and the caller's own loops run (see :func:`_cell`).

Why, on a 2-core AVX-512 machine (the cell alone, 100,000 calls in a compiled loop): the LSTM cell
took 80 ns a step at batch 1, H = 32, against 104 ns for Numba's loops, and 132 against 169 ns at
H = 64; the LSTM's backward cell 47 against 57 µs at N = 128, H = 512 and 4.0 against 5.3 µs at
N = 64, H = 128. The GRU's backward cell stays in Numba's loops (``kernels.gru.gru_cell_backward``):
it writes eight outputs a unit, and in vectors took about twice as long at N = 128, H = 512.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils

from .simd import VECTOR_BYTES, broadcast, int_constant

TANH_CLAMP = np.float32(7.90531110763549805)  # the rational's argument; beyond it, it wobbles by an ulp
# Exact saturation, where torch's float32 functions reach it: tanh(x) is ±1 from |x| >= 9.01084 (the first
# float32 whose correctly rounded tanh is 1 is 9.010914); σ(x) = 1 / (1 + e^-x) is 1 from x >= 16.635532
# (1 + e^-x rounds to 1). σ is 0 from where its rational's argument is clamped, x <= -15.810622 (torch's σ
# is under 1.4e-7 there, 0 from about -88.7). Between the clamp and the points of 1 the approximation
# stays at its value at the clamp (tanh 0.99999976, σ 1 - 1.2e-7), within its error of the true values.
TANH_ONE_FROM = np.float32(9.01084)
SIGMOID_ONE_FROM = np.float32(16.635532)
SIGMOID_ZERO_TO = np.float32(-2) * TANH_CLAMP
TANH_P = [
    np.float32(v)
    for v in (
        -2.76076847742355e-16,
        2.00018790482477e-13,
        -8.60467152213735e-11,
        5.12229709037114e-08,
        1.48572235717979e-05,
        6.37261928875436e-04,
        4.89352455891786e-03,
    )
]  # x¹³ .. x¹ (odd powers), highest first
TANH_Q = [
    np.float32(v) for v in (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)
]  # x⁶ .. x⁰ (even powers)
LANES = VECTOR_BYTES // 4  # float32 entries a vector


class _Lanes:
    """Code for ``LANES`` consecutive units j .. j+L-1 of row n of 2-D float32 arrays whose rows'
    units are adjacent (rows apart by any stride): loads and stores, masked to the units left where
    ``masked`` (units ≥ H are neither read nor written), and the vector arithmetic."""

    def __init__(self, context, builder, row, first, hidden, masked=True):
        self.builder, self.row, self.first, self.hidden, self.masked = builder, row, first, hidden, masked
        self.vector = ir.VectorType(ir.FloatType(), LANES)
        module = builder.module
        pointer = self.vector.as_pointer()
        mask_type = ir.VectorType(ir.IntType(1), LANES)
        self._fma = cgutils.get_or_insert_function(
            module, ir.FunctionType(self.vector, [self.vector] * 3), f"llvm.fma.v{LANES}f32"
        )
        self._load = cgutils.get_or_insert_function(
            module,
            ir.FunctionType(self.vector, [pointer, ir.IntType(32), mask_type, self.vector]),
            f"llvm.masked.load.v{LANES}f32.p0",
        )
        self._store = cgutils.get_or_insert_function(
            module,
            ir.FunctionType(ir.VoidType(), [self.vector, pointer, ir.IntType(32), mask_type]),
            f"llvm.masked.store.v{LANES}f32.p0",
        )
        left = broadcast(builder, builder.sub(hidden, first), ir.VectorType(ir.IntType(64), LANES))
        self.mask = builder.icmp_signed("<", ir.Constant(left.type, list(range(LANES))), left)
        self._zero = ir.Constant(self.vector, None)

    def column(self, block):
        """The first column of gate block ``block`` (block·H)."""
        return self.builder.mul(self.hidden, int_constant(block))

    def _at(self, array, column=None):
        builder = self.builder
        column = int_constant(0) if column is None else column
        row_bytes = builder.mul(self.row, builder.extract_value(array.strides, 0))
        offset = builder.add(row_bytes, builder.mul(builder.add(column, self.first), int_constant(4)))
        start = builder.gep(builder.bitcast(array.data, ir.IntType(8).as_pointer()), [offset])
        return builder.bitcast(start, self.vector.as_pointer())

    def load(self, array, column=None):
        """Units j .. of row n, from ``column`` on (a gate block's start); masked lanes read as 0."""
        return self._load_at(self._at(array, column))

    def load_1d(self, data, column):
        """The same lanes of a 1-D array (a bias), from ``column`` on."""
        pointer = self.builder.gep(data, [self.builder.add(column, self.first)])
        return self._load_at(self.builder.bitcast(pointer, self.vector.as_pointer()))

    def _load_at(self, pointer):
        if not self.masked:
            return self.builder.load(pointer, align=4)
        return self.builder.call(self._load, [pointer, _i32(4), self.mask, self._zero])

    def store(self, value, array, column=None):
        if not self.masked:
            self.builder.store(value, self._at(array, column), align=4)
        else:
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

    def _rational(self, x):
        """The rational approximation on the clamped argument, as ``kernels.activations.tanh_rational``."""
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

    def _saturated(self, x, value, low, low_value, high, high_value):
        """``value``, but ``low_value`` where x <= low and ``high_value`` where x >= high (NaN: value)."""
        builder = self.builder
        value = builder.select(builder.fcmp_ordered(">=", x, self.splat(high)), self.splat(high_value), value)
        return builder.select(builder.fcmp_ordered("<=", x, self.splat(low)), self.splat(low_value), value)

    def tanh(self, x):
        """As ``kernels.activations.tanh_approx``: the rational, exactly ±1 from ±``TANH_ONE_FROM``."""
        return self._saturated(x, self._rational(x), -TANH_ONE_FROM, -1.0, TANH_ONE_FROM, 1.0)

    def sigmoid(self, x):
        """As ``kernels.activations.sigmoid_approx``: σ(x) = ½ tanh(½x) + ½, exactly 0 to
        ``SIGMOID_ZERO_TO`` and 1 from ``SIGMOID_ONE_FROM``."""
        half = self.splat(0.5)
        value = self.fma(half, self._rational(self.mul(half, x)), half)
        return self._saturated(x, value, SIGMOID_ZERO_TO, 0.0, SIGMOID_ONE_FROM, 1.0)


def _i32(value):
    return ir.Constant(ir.IntType(32), value)


def _cell(arguments, units_from: int, equations):
    """``(signature, codegen)`` of a cell intrinsic over ``arguments`` (Numba types; None where an
    optional array is absent) returning a boolean: True once ``equations(lanes, *arrays)`` has run
    for every row n and vector of units j of ``arguments[units_from]`` (N, H); False, having done
    nothing, for arrays that are not float32 (decided when Numba compiles) or whose rows' units are
    not adjacent (at run time); the caller's own loops then run."""
    arrays = [(k, a) for k, a in enumerate(arguments) if isinstance(a, types.Array)]
    if not all(a.dtype == types.float32 for _, a in arrays):
        return types.boolean(*arguments), lambda context, builder, signature, values: cgutils.false_bit
    if not all(a.ndim in (1, 2) for _, a in arrays):
        raise numba.core.errors.TypingError(f"vector cells take 2-D arrays and 1-D biases, got {arguments}")

    def codegen(context, builder, signature, values):
        structs = [
            context.make_array(a)(context, builder, values[k]) if isinstance(a, types.Array) else None
            for k, a in enumerate(signature.args)
        ]
        adjacent = cgutils.true_bit
        for k, array in arrays:
            stride = builder.extract_value(structs[k].strides, array.ndim - 1)
            adjacent = builder.and_(adjacent, builder.icmp_signed("==", stride, int_constant(4)))
        rows = builder.extract_value(structs[units_from].shape, 0)
        hidden = builder.extract_value(structs[units_from].shape, 1)
        units = cgutils.for_range_slice(builder, int_constant(0), hidden, int_constant(LANES))
        with builder.if_then(adjacent), cgutils.for_range(builder, rows) as row, units as (first, _):
            whole = builder.icmp_signed("<=", builder.add(first, int_constant(LANES)), hidden)
            with builder.if_else(whole) as (vector_of_units, remainder):
                with vector_of_units:  # plain loads and stores (a masked store is slow on some CPUs)
                    equations(_Lanes(context, builder, row.index, first, hidden, masked=False), *structs)
                with remainder:
                    equations(_Lanes(context, builder, row.index, first, hidden), *structs)
        return adjacent

    return types.boolean(*arguments), codegen


@numba.extending.intrinsic
def lstm_cell_lanes(typingctx, z, recurrent, bias, c_prev, c_next, tanh_c, h_next):
    """The LSTM cell, ``kernels.lstm.lstm_cell_forward``'s contract: ``z`` (N, 4H) the input's
    pre-activations, ``recurrent`` (N, 4H) h_{t-1} W_hhᵀ, ``bias`` (4H,) or None; z becomes the
    activated gates i, f, g, o, and c_t, tanh(c_t), h_t are written (see :func:`_cell`)."""

    def equations(lanes, z, recurrent, bias, c_prev, c_next, tanh_c, h_next):
        def activated(block, activation):
            value = lanes.add(lanes.load(z, lanes.column(block)), lanes.load(recurrent, lanes.column(block)))
            if bias is not None:
                value = lanes.add(value, lanes.load_1d(bias.data, lanes.column(block)))
            value = activation(value)
            lanes.store(value, z, lanes.column(block))
            return value

        i, f = activated(0, lanes.sigmoid), activated(1, lanes.sigmoid)
        g, o = activated(2, lanes.tanh), activated(3, lanes.sigmoid)
        c = lanes.fma(f, lanes.load(c_prev), lanes.mul(i, g))  # c = f ⊙ c_prev + i ⊙ g
        lanes.store(c, c_next)
        tanh_c_value = lanes.tanh(c)
        lanes.store(tanh_c_value, tanh_c)
        lanes.store(lanes.mul(o, tanh_c_value), h_next)  # h = o ⊙ tanh(c)

    return _cell((z, recurrent, bias, c_prev, c_next, tanh_c, h_next), 3, equations)


@numba.extending.intrinsic
def gru_cell_lanes(typingctx, pre, recurrent, bias, bias_hn, h_prev, hidden_n, h_next):
    """The GRU cell, ``kernels.gru.gru_cell_forward``'s contract: ``pre`` (N, 3H) the input's
    pre-activations, ``recurrent`` (N, 3H) h_{t-1} W_hhᵀ, ``bias`` (3H,) or None, ``bias_hn`` (H,);
    ``pre`` becomes the activated gates r, z, n, hidden_n gets W_hn h_{t-1} + b_hn and h_next h_t = n +
    z ⊙ (h_{t-1} - n) (see :func:`_cell`)."""

    def equations(lanes, pre, recurrent, bias, bias_hn, h_prev, hidden_n, h_next):
        def input_part(block):
            value = lanes.load(pre, lanes.column(block))
            return value if bias is None else lanes.add(value, lanes.load_1d(bias.data, lanes.column(block)))

        def activated(block, value):
            lanes.store(value, pre, lanes.column(block))
            return value

        r = activated(0, lanes.sigmoid(lanes.add(input_part(0), lanes.load(recurrent, lanes.column(0)))))
        z = activated(1, lanes.sigmoid(lanes.add(input_part(1), lanes.load(recurrent, lanes.column(1)))))
        recurrent_n = lanes.add(lanes.load(recurrent, lanes.column(2)), lanes.load_1d(bias_hn.data, lanes.column(0)))
        lanes.store(recurrent_n, hidden_n)
        candidate = activated(2, lanes.tanh(lanes.fma(r, recurrent_n, input_part(2))))  # n = tanh(a_n + r ⊙ hidden_n)
        lanes.store(lanes.fma(z, lanes.sub(lanes.load(h_prev), candidate), candidate), h_next)  # n + z ⊙ (h - n)

    return _cell((pre, recurrent, bias, bias_hn, h_prev, hidden_n, h_next), 4, equations)


@numba.extending.intrinsic
def lstm_cell_backward_lanes(typingctx, dh, dc, gates, c_prev, tanh_c, dz):
    """The LSTM cell's backward, ``kernels.lstm.lstm_cell_backward``'s contract: dz (N, 4H) written,
    ``dc`` turned from c_t's gradient into c_{t-1}'s (see :func:`_cell`)."""

    def equations(lanes, dh, dc, gates, c_prev, tanh_c, dz):
        one = lanes.splat(1.0)
        i, f, g, o = (lanes.load(gates, lanes.column(k)) for k in range(4))
        upstream, tanh_c_value = lanes.load(dh), lanes.load(tanh_c)

        def through_sigmoid(gradient, gate):  # gradient ⊙ σ' = gradient ⊙ s(1 - s)
            return lanes.mul(gradient, lanes.mul(gate, lanes.sub(one, gate)))

        # dc += dh ⊙ o ⊙ (1 - tanh²c), from h = o ⊙ tanh(c)
        cell = lanes.fma(lanes.mul(upstream, o), lanes.sub(one, lanes.mul(tanh_c_value, tanh_c_value)), lanes.load(dc))
        gradients = (
            through_sigmoid(lanes.mul(cell, g), i),  # di = dc ⊙ g
            through_sigmoid(lanes.mul(cell, lanes.load(c_prev)), f),  # df = dc ⊙ c_prev
            lanes.mul(lanes.mul(cell, i), lanes.sub(one, lanes.mul(g, g))),  # dg = dc ⊙ i, through tanh'
            through_sigmoid(lanes.mul(upstream, tanh_c_value), o),
        )  # do = dh ⊙ tanh(c)
        for k, gradient in enumerate(gradients):
            lanes.store(gradient, dz, lanes.column(k))
        lanes.store(lanes.mul(cell, f), dc)  # dc_prev = dc ⊙ f

    return _cell((dh, dc, gates, c_prev, tanh_c, dz), 3, equations)
