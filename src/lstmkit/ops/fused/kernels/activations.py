"""tanh and σ as the compiled cells evaluate them, and the bias a loop may or may not add.

On float64, ``tanh`` is ``math.tanh`` and the sigmoid the reference's exact form (results equal
the reference to ~1e-15); on float32 both use a rational approximation of tanh that vectorises
(at most 3e-7 from the true tanh, well inside float32's tolerance of 1e-5; Eigen's ``[13/6]``
on a clamped argument), with σ(x) = ½ tanh(½x) + ½ (at most 1.7e-7 from the true σ).
Why: NumPy evaluates ``tanh`` on float32 at about 2.6 ns an element without AVX-512 (0.36 ns
with it); the approximation vectorises on every x86-64 CPU.

What the float32 approximation guarantees beyond its error:

- it saturates where torch's float32 functions do: tanh is exactly ±1 from |x| >= 9.01084 and σ
  exactly 1 from x >= 16.635532 (the first float32 at which torch's are 1), σ exactly 0 to
  x <= -15.810622 (torch's σ is below 1.4e-7 there); so a saturated gate's derivative, 1 - y² or
  y (1 - y), is exactly 0, as torch's, and an infinite input times it gives NaN in dW_ih, as in
  torch. (The rational alone stops at 0.99999976 and passed 4.8e-7 through every saturated gate.)
  Two ordered compares and selects a function; the fast paths' speed did not move measurably;
- it is monotone up to its error (float32 rounding in the rational: never more than 6e-7 below a
  value it took at a smaller x), and ±inf give ±1 (σ: 1 and 0);
- NaN propagates through both, as through NumPy's and torch's (every compare is ordered).

The constants, and the same equations on vectors of lanes, are in :mod:`..intrinsics.lanes`.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..intrinsics.lanes import SIGMOID_ONE_FROM, SIGMOID_ZERO_TO, TANH_CLAMP, TANH_ONE_FROM, TANH_P, TANH_Q
from .jit import FLAGS, jit

CLAMP = TANH_CLAMP
P13, P11, P9, P7, P5, P3, P1 = TANH_P
Q6, Q4, Q2, Q0 = TANH_Q
HALF, ONE, ZERO = np.float32(0.5), np.float32(1.0), np.float32(0.0)  # float32 constants keep float32 arithmetic float32


@jit
def tanh_rational(x):
    """Eigen's [13/6] rational on x clamped to ±``CLAMP`` (never exactly ±1 beyond it: 0.99999976)."""
    x = CLAMP if x > CLAMP else x
    x = -CLAMP if x < -CLAMP else x
    x2 = x * x
    p = ((((((x2 * P13 + P11) * x2 + P9) * x2 + P7) * x2 + P5) * x2 + P3) * x2 + P1) * x
    q = ((x2 * Q6 + Q4) * x2 + Q2) * x2 + Q0
    return p / q


@jit
def tanh_approx(x):
    """float32 tanh: :func:`tanh_rational`, exactly ±1 from ±``TANH_ONE_FROM`` on (NaN stays NaN)."""
    y = tanh_rational(x)
    y = ONE if x >= TANH_ONE_FROM else y
    return -ONE if x <= -TANH_ONE_FROM else y


@jit
def sigmoid_approx(x):
    """float32 σ(x) = ½ tanh(½x) + ½, exactly 1 from ``SIGMOID_ONE_FROM`` and 0 to ``SIGMOID_ZERO_TO``."""
    y = HALF * tanh_rational(HALF * x) + HALF
    y = ONE if x >= SIGMOID_ONE_FROM else y
    return ZERO if x <= SIGMOID_ZERO_TO else y


def tanh(x):  # pragma: no cover - Numba compiles the overload below in its place
    raise NotImplementedError


@numba.extending.overload(tanh, jit_options=FLAGS)
def _tanh_for(x):
    """float64: ``math.tanh`` (the reference's values); float32: the vectorisable approximation."""
    if x == numba.types.float64:
        return lambda x: math.tanh(x)
    return lambda x: tanh_approx(x)


def sigmoid(x):  # pragma: no cover - Numba compiles the overload below in its place
    raise NotImplementedError


@numba.extending.overload(sigmoid, jit_options=FLAGS)
def _sigmoid_for(x):
    """float64: the reference's exact form, ``exp`` of -|x| only (right in both tails); float32:
    :func:`sigmoid_approx` (absolute error 1.7e-7, vectorisable, saturating as torch's)."""
    if x == numba.types.float64:

        def exact(x):
            e = math.exp(-abs(x))
            return 1.0 / (1.0 + e) if x >= 0 else e / (1.0 + e)

        return exact
    return lambda x: sigmoid_approx(x)


def plus_bias(value, bias, j):  # pragma: no cover - Numba compiles the overload below in its place
    raise NotImplementedError


@numba.extending.overload(plus_bias, jit_options=FLAGS)
def _plus_bias_for(value, bias, j):
    """``value + bias[j]``, or ``value`` where ``bias`` is None (the input projection holds it
    already): decided when Numba compiles, so a loop given None has no extra load."""
    if isinstance(bias, (numba.types.NoneType, numba.types.Omitted)):
        return lambda value, bias, j: value
    return lambda value, bias, j: value + bias[j]
