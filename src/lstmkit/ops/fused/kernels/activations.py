"""tanh and σ as the compiled cells evaluate them, and the bias a loop may or may not add.

On float64, ``tanh`` is ``math.tanh`` and the sigmoid the reference's exact form (results equal
the reference to ~1e-15); on float32 both use a rational approximation of tanh that vectorises
(at most 3e-7 from the true tanh, well inside float32's tolerance of 1e-5; Eigen's ``[13/6]``
on a clamped argument), with σ(x) = ½ tanh(½x) + ½. NaN propagates through both, as through
NumPy's. Why: NumPy evaluates ``tanh`` on float32 at about 2.6 ns an element without AVX-512
(0.36 ns with it); the approximation vectorises on every x86-64 CPU.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..intrinsics.lanes import TANH_CLAMP, TANH_P, TANH_Q
from .jit import FLAGS, jit

CLAMP = TANH_CLAMP
P13, P11, P9, P7, P5, P3, P1 = TANH_P
Q6, Q4, Q2, Q0 = TANH_Q
HALF, ONE = np.float32(0.5), np.float32(1.0)  # float32 constants keep float32 arithmetic float32


@jit
def tanh_approx(x):
    x = CLAMP if x > CLAMP else x
    x = -CLAMP if x < -CLAMP else x
    x2 = x * x
    p = ((((((x2 * P13 + P11) * x2 + P9) * x2 + P7) * x2 + P5) * x2 + P3) * x2 + P1) * x
    q = ((x2 * Q6 + Q4) * x2 + Q2) * x2 + Q0
    return p / q


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
    σ(x) = ½ tanh(½x) + ½ on the approximation (absolute error 1.5e-7, vectorisable)."""
    if x == numba.types.float64:

        def exact(x):
            e = math.exp(-abs(x))
            return 1.0 / (1.0 + e) if x >= 0 else e / (1.0 + e)

        return exact
    return lambda x: HALF * tanh_approx(HALF * x) + HALF


def plus_bias(value, bias, j):  # pragma: no cover - Numba compiles the overload below in its place
    raise NotImplementedError


@numba.extending.overload(plus_bias, jit_options=FLAGS)
def _plus_bias_for(value, bias, j):
    """``value + bias[j]``, or ``value`` where ``bias`` is None (the input projection holds it
    already): decided when Numba compiles, so a loop given None has no extra load."""
    if isinstance(bias, (numba.types.NoneType, numba.types.Omitted)):
        return lambda value, bias, j: value
    return lambda value, bias, j: value + bias[j]
