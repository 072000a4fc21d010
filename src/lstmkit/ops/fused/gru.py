"""The fast path of :mod:`..gru`: the same two functions, fused and compiled.

:func:`gru_forward_fused` and :func:`gru_backward_fused` take and return exactly what
:func:`~lstmkit.ops.gru.gru_forward` and :func:`~lstmkit.ops.gru.gru_backward` do (tests prove
them equal on random inputs); the reference stays what people read. As in :mod:`.lstm`: each
step's nonlinearities and state update are one compiled pass (:mod:`.kernels`) into buffers
preallocated for the whole sequence, and the call's :class:`~.plan.Plan` picks the loop (a small
layer's whole loop compiled, optionally on two cores; a large one's BLAS products from Python,
the biases added in each step's cell). The input projection and the weight gradients are one
matrix product over all steps each.

Variable lengths (``batch_sizes``), per-gate dropout masks, mixed dtypes, and a machine without
Numba go to the reference op.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..gru import GRUCache, GRUWeights, gru_backward, gru_forward, hoisted_bias
from .blas_loops import cache_projection, recurrent_products, scratch_projection
from .compiled import compiled_kernels, kernels_for
from .helper import PROCESS_HELPER, helper_available, input_gates, loop_on_two_cores, resolve_helper
from .memory import backward_buffers, cache_empty, compiled_loop_weight, transposed
from .plan import DEFAULT_TUNING, Plan, Tuning, choose_plan


class FusedGRUCache(NamedTuple):
    """What a fused training forward keeps for its backward."""

    x: np.ndarray  # (T, N, I)
    h: np.ndarray  # (T+1, N, H)  h[0] = h0
    gates: np.ndarray  # (T, N, 3H) activated r, z, n
    hidden_n: np.ndarray  # (T, N, H) W_hn h_{t-1} + b_hn
    weights: GRUWeights
    backward_loop: str  # the plan's: "compiled" or "blas"
    RECYCLED = ("gates", "hidden_n")  # read by the backward only (see memory.recycle_cache)


# The reference's signature on its first line, the fast path's own keywords on the second.
# fmt: off
def gru_forward_fused(x, h0, weights: GRUWeights, keep_cache: bool = True, batch_sizes=None, dropout=None, *,
                      plan: Plan | None = None, tuning: Tuning = DEFAULT_TUNING, helper=PROCESS_HELPER):
    # fmt: on
    """Same contract as :func:`~lstmkit.ops.gru.gru_forward`; ``plan``, ``tuning`` and ``helper``
    as in :func:`~.lstm.lstm_forward_fused` (a GRU has no ``"halves"`` or ``"batch_last"`` loop)."""
    kernels = kernels_for(x, weights) if batch_sizes is None and dropout is None else None
    if kernels is None:
        return gru_forward(x, h0, weights, keep_cache, batch_sizes, dropout)
    steps, batch, features = x.shape
    hidden = h0.shape[-1]
    if plan is None:
        plan = choose_plan(steps, batch, features, hidden, 3, keep_cache, helper_available(helper), tuning)
    helper = resolve_helper(helper) if plan.uses_helper else None  # started only where a plan needs it
    if plan.forward not in ("compiled", "two_cores", "blas"):
        raise ValueError(f"gru_forward_fused: a GRU runs the 'compiled', 'two_cores' or 'blas' loop, got {plan}")
    bias_hn = np.zeros(hidden, x.dtype) if weights.bias_hh is None else weights.bias_hh[2 * hidden :].astype(x.dtype)
    h = np.empty((steps + 1, batch, hidden), dtype=x.dtype)
    hidden_n = cache_empty((steps if keep_cache else 1, batch, hidden), x.dtype)
    h[0] = h0
    if plan.forward == "two_cores":  # gates receive the activated gates only if kept for backward
        gates = cache_empty((steps if keep_cache else 1, batch, 3 * hidden), x.dtype)
        sides = (kernels.gru_loop_forward_lead, kernels.gru_loop_forward_second)
        projection = (weights.weight_ih, hoisted_bias(weights), weights.weight_hh)
        loop_on_two_cores(sides, x, projection, (bias_hn, h, hidden_n, gates), plan.chunk_steps, helper)
    elif plan.forward == "compiled":  # gates (T, N, 3H), activated in place
        gates, pipeline = input_gates(x, weights.weight_ih, hoisted_bias(weights), plan, helper)
        weight_hh = compiled_loop_weight(weights.weight_hh, x.dtype, plan.transposed_weight)
        kernels.gru_loop_forward(gates, weight_hh, bias_hn, h, hidden_n, pipeline)
    else:  # "blas": the hoisted bias joins each step's gates in the cell, where they are in cache
        project = cache_projection if keep_cache else scratch_projection
        gates, bias = project(x, weights.weight_ih), hoisted_bias(weights)
        for t, recurrent in recurrent_products(h, weights.weight_hh):
            kernels.gru_step_forward(t, gates, recurrent, bias_hn, h, hidden_n, bias)
    if not keep_cache:
        return h[1:], h[-1].copy(), None
    return h[1:], h[-1].copy(), FusedGRUCache(x, h, gates, hidden_n, weights, plan.backward or "compiled")


def gru_backward_fused(doutput, dh_last, cache):
    """Same contract as :func:`~lstmkit.ops.gru.gru_backward`; its loop is the one the forward's
    plan chose (kept in the cache)."""
    if isinstance(cache, GRUCache):
        return gru_backward(doutput, dh_last, cache)
    kernels = compiled_kernels()
    x, h, gates, hidden_n, weights, backward_loop = cache
    weight_hh = np.ascontiguousarray(weights.weight_hh, dtype=x.dtype)  # (3H, H)
    doutput = np.ascontiguousarray(doutput, dtype=x.dtype)
    batch, hidden = h.shape[1:]
    compiled_loop = backward_loop == "compiled"
    dpre_input, dpre_hidden_n = backward_buffers(compiled_loop, x.dtype, gates.shape, hidden_n.shape)
    dh = np.array(dh_last, dtype=x.dtype, order="C", copy=True)
    if compiled_loop:  # dh = dpre W_hh from W_hhᵀ, dot products along 3H (see kernels.gradient_product)
        kernels.gru_loop_backward(doutput, dh, h, gates, hidden_n, transposed(weight_hh), dpre_input, dpre_hidden_n)
    else:
        dpre_hidden, direct = np.empty((batch, 3 * hidden), dtype=x.dtype), np.empty_like(dh)
        for t in reversed(range(x.shape[0])):
            kernels.gru_step_backward(
                t, doutput, dh, h, gates, hidden_n, dpre_input, dpre_hidden, dpre_hidden_n, direct
            )
            np.matmul(dpre_hidden, weight_hh, out=dh)  # through W_hh h_{t-1}
            dh += direct  # and through z ⊙ h_{t-1}
    return _gradients(x, h[:-1], dpre_input, dpre_hidden_n, weights, dh)


def _gradients(x, h_previous, dpre_input, dpre_hidden_n, weights: GRUWeights, dh0):
    """``(dx, dh0, dweights)``, each weight's gradient one product over all steps. The hidden
    state's pre-activation gradient is dpre_input's except in the n block (dpre_hidden_n), so it is
    never stored whole: the r and z rows of dW_hh come from dpre_input."""
    hidden = h_previous.shape[-1]

    def flat(array):
        return array.reshape(-1, array.shape[-1])

    dz_flat, h_flat = flat(dpre_input), flat(h_previous)
    dx = (dz_flat @ weights.weight_ih).reshape(x.shape)
    dweight_ih = dz_flat.T @ flat(x)
    dweight_hh = np.empty((3 * hidden, hidden), dtype=dz_flat.dtype)  # written block by block: no concatenated copy
    np.matmul(dz_flat[:, : 2 * hidden].T, h_flat, out=dweight_hh[: 2 * hidden])
    np.matmul(flat(dpre_hidden_n).T, h_flat, out=dweight_hh[2 * hidden :])
    if weights.bias_ih is None:
        return dx, dh0, GRUWeights(dweight_ih, dweight_hh)
    dbias_ih = dz_flat.sum(axis=0)
    dbias_hh = np.concatenate([dbias_ih[: 2 * hidden], flat(dpre_hidden_n).sum(axis=0)])
    return dx, dh0, GRUWeights(dweight_ih, dweight_hh, dbias_ih, dbias_hh)
