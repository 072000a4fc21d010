"""The fast path of :mod:`.gru`: the same two functions, fused and compiled.

:func:`gru_forward_fused` and :func:`gru_backward_fused` take and return exactly what
:func:`~.gru.gru_forward` and :func:`~.gru.gru_backward` do (tests prove them equal on random
inputs); the reference stays what people read. As in :mod:`.lstm_fused`: each step's
nonlinearities and state update are one compiled pass (:mod:`._kernels`) into buffers
preallocated for the whole sequence, a small layer runs its whole time loop compiled, a large
one calls BLAS for the recurrent product from Python (and adds the biases in each step's cell),
and the input projection and the weight gradients are one matrix product over all steps each.

Variable lengths (``batch_sizes``), per-gate dropout masks, mixed dtypes, and a machine without
Numba go to the reference op.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._compiled import (backward_buffers, backward_weight, cache_empty, cache_projection, compiled_kernels, is_small,
                        kernels_for, recurrent_products, recurrent_weight, runs_on_two_cores, scratch_projection)
from ._pipeline import input_gates, loop_on_two_cores
from .gru import GRUCache, GRUWeights, _hoisted_bias, gru_backward, gru_forward


class FusedGRUCache(NamedTuple):
    x: np.ndarray  # (T, N, I)
    h: np.ndarray  # (T+1, N, H)  h[0] = h0
    gates: np.ndarray  # (T, N, 3H) activated r, z, n
    hidden_n: np.ndarray  # (T, N, H) W_hn h_{t-1} + b_hn
    weights: GRUWeights
    RECYCLED = ("gates", "hidden_n")  # read by the backward only (see _compiled.recycle_cache)


def gru_forward_fused(x, h0, weights: GRUWeights, keep_cache: bool = True, batch_sizes=None, dropout=None):
    """Same contract as :func:`~.gru.gru_forward`."""
    kernels = kernels_for(x, weights) if batch_sizes is None and dropout is None else None
    if kernels is None:
        return gru_forward(x, h0, weights, keep_cache, batch_sizes, dropout)
    steps, batch, _ = x.shape
    hidden = h0.shape[-1]
    small = is_small(batch, hidden, 3, forward=True, inference=not keep_cache)
    bias_hn = np.zeros(hidden, x.dtype) if weights.bias_hh is None else weights.bias_hh[2 * hidden :].astype(x.dtype)
    h = np.empty((steps + 1, batch, hidden), dtype=x.dtype)
    hidden_n = cache_empty((steps if keep_cache else 1, batch, hidden), x.dtype)
    h[0] = h0
    on_two_cores = small and runs_on_two_cores(steps, batch, hidden, 3)
    if on_two_cores:  # gates receive the activated gates only if kept for backward
        gates = cache_empty((steps if keep_cache else 1, batch, 3 * hidden), x.dtype)
        helper_joined = loop_on_two_cores(kernels.gru_loop_forward_lead, kernels.gru_loop_forward_second, x,
                                          weights.weight_ih, _hoisted_bias(weights), weights.weight_hh, bias_hn,
                                          h, hidden_n, gates)
        on_two_cores = helper_joined is not None  # with the helper or alone, the loop ran
    if not on_two_cores:
        if small:  # gates (T, N, 3H), activated in place
            gates, pipeline = input_gates(x, weights.weight_ih, _hoisted_bias(weights), small)
            weight_hh = recurrent_weight(weights.weight_hh, x.dtype)
            kernels.gru_loop_forward(gates, weight_hh, bias_hn, h, hidden_n, pipeline)
        else:  # the hoisted bias joins each step's gates in the cell, where they are in cache
            project = cache_projection if keep_cache else scratch_projection
            gates, bias = project(x, weights.weight_ih), _hoisted_bias(weights)
            for t, recurrent in recurrent_products(h, weights.weight_hh):
                kernels.gru_step_forward(t, gates, recurrent, bias_hn, h, hidden_n, bias)
    if not keep_cache:
        return h[1:], h[-1].copy(), None
    return h[1:], h[-1].copy(), FusedGRUCache(x, h, gates, hidden_n, weights)


def gru_backward_fused(doutput, dh_last, cache):
    """Same contract as :func:`~.gru.gru_backward`."""
    if isinstance(cache, GRUCache):
        return gru_backward(doutput, dh_last, cache)
    kernels = compiled_kernels()
    x, h, gates, hidden_n, weights = cache
    weight_hh = np.ascontiguousarray(weights.weight_hh, dtype=x.dtype)  # (3H, H)
    doutput = np.ascontiguousarray(doutput, dtype=x.dtype)
    batch, hidden = h.shape[1:]
    small = is_small(batch, hidden, 3)
    dz_input, dz_hidden_n = backward_buffers(small, x.dtype, gates.shape, hidden_n.shape)
    dh = np.array(dh_last, dtype=x.dtype, copy=True)
    if small:
        kernels.gru_loop_backward(doutput, dh, h, gates, hidden_n, backward_weight(weight_hh), dz_input, dz_hidden_n)
    else:
        dz_hidden, direct = np.empty((batch, 3 * hidden), dtype=x.dtype), np.empty_like(dh)
        for t in reversed(range(x.shape[0])):
            kernels.gru_step_backward(t, doutput, dh, h, gates, hidden_n, dz_input, dz_hidden, dz_hidden_n, direct)
            np.matmul(dz_hidden, weight_hh, out=dh)  # through W_hh h_{t-1}
            dh += direct  # and through z ⊙ h_{t-1}
    return _gradients(x, h[:-1], dz_input, dz_hidden_n, weights, dh)


def _gradients(x, h_previous, dz_input, dz_hidden_n, weights: GRUWeights, dh0):
    """``(dx, dh0, dweights)``, each weight's gradient one product over all steps. The hidden
    state's pre-activation gradient is dz_input's except in the n block (dz_hidden_n), so it is
    never stored whole: the r and z rows of dW_hh come from dz_input."""
    hidden = h_previous.shape[-1]

    def flat(array):
        return array.reshape(-1, array.shape[-1])

    dz_flat, h_flat = flat(dz_input), flat(h_previous)
    dx = (dz_flat @ weights.weight_ih).reshape(x.shape)
    dweight_ih = dz_flat.T @ flat(x)
    dweight_hh = np.empty((3 * hidden, hidden), dtype=dz_flat.dtype)  # written block by block: no concatenated copy
    np.matmul(dz_flat[:, : 2 * hidden].T, h_flat, out=dweight_hh[: 2 * hidden])
    np.matmul(flat(dz_hidden_n).T, h_flat, out=dweight_hh[2 * hidden :])
    if weights.bias_ih is None:
        return dx, dh0, GRUWeights(dweight_ih, dweight_hh)
    dbias_ih = dz_flat.sum(axis=0)
    dbias_hh = np.concatenate([dbias_ih[: 2 * hidden], flat(dz_hidden_n).sum(axis=0)])
    return dx, dh0, GRUWeights(dweight_ih, dweight_hh, dbias_ih, dbias_hh)
