"""The fast path of :mod:`.lstm`: the same two functions, fused and compiled.

:func:`lstm_forward_fused` and :func:`lstm_backward_fused` take and return exactly what
:func:`~.lstm.lstm_forward` and :func:`~.lstm.lstm_backward` do (tests prove them equal on
random inputs); the reference stays what people read. What is different:

- Each step's nonlinearities and state update are one compiled pass (:mod:`._kernels`), writing
  into buffers preallocated for the whole sequence; nothing is allocated inside the loop.
- A small layer runs its whole time loop compiled; a large one calls BLAS for the recurrent
  product from Python (:mod:`._compiled` draws the line). A small batch-1 LSTM with enough
  units and steps shares its loop between two cores, half of the units each; a layer of 8 rows
  or more up to a limit runs its inference (and, where OpenBLAS's worker sleeps soon, a training
  step's forward and backward) as two compiled loops, half of the batch on each core
  (:mod:`._pipeline`; :mod:`._compiled` draws the lines).
- The input projection before the loop and the weight gradients after it are one matrix
  product over all steps each, as in the reference. A large layer adds the bias in each step's
  cell, where that step's gates are in cache, instead of in a pass over all T·N·4H of them.
- A large layer's inference (nothing kept for backward) keeps its states batch last, (H, N),
  and multiplies W_hh h_tᵀ each step (:mod:`._compiled` says why).

Variable lengths (``batch_sizes``), projections (``weight_hr``), per-gate dropout masks, mixed
dtypes, and a machine without Numba go to the reference op.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._compiled import (backward_buffers, backward_weight, batch_first, batch_last_products, batch_last_projection,
                        batch_last_state, cache_empty, cache_projection, compiled_kernels, flat_steps, is_small,
                        kernels_for, recurrent_products, recurrent_weight, runs_batch_last, runs_on_batch_halves,
                        runs_on_two_cores, padded_columns, scratch_arrays)
from ._pipeline import (batch_halves, input_gates, loop_on_two_cores, lstm_backward_on_batch_halves,
                        lstm_forward_on_batch_halves)
from .lstm import LSTMCache, LSTMWeights, lstm_backward, lstm_forward
from .recurrence import projection_backward


class FusedLSTMCache(NamedTuple):
    x: np.ndarray  # (T, N, I)
    h: np.ndarray  # (T+1, N, H)  h[0] = h0
    c: np.ndarray  # (T+1, N, H)  c[0] = c0
    gates: np.ndarray  # (T, N, 4H) activated i, f, g, o
    tanh_c: np.ndarray  # (T, N, H)
    weights: LSTMWeights
    RECYCLED = ("c", "gates", "tanh_c")  # read by the backward only (see _compiled.recycle_cache)


class HalvesLSTMCache(NamedTuple):
    """The cache of a forward that ran half of the batch on each core: each half's
    :class:`FusedLSTMCache`, rows [0, N//2) and [N//2, N) (``_pipeline.batch_halves``)."""
    parts: tuple

    @property
    def x(self):  # (T, N, I), as the other caches have it
        return np.concatenate([part.x for part in self.parts], axis=1)

    @property
    def h(self):  # (T+1, N, H)
        return np.concatenate([part.h for part in self.parts], axis=1)


def lstm_forward_fused(x, h0, c0, weights: LSTMWeights, keep_cache: bool = True, batch_sizes=None, dropout=None):
    """Same contract as :func:`~.lstm.lstm_forward`."""
    plain = batch_sizes is None and weights.weight_hr is None and dropout is None
    kernels = kernels_for(x, weights) if plain else None
    if kernels is None:
        return lstm_forward(x, h0, c0, weights, keep_cache, batch_sizes, dropout)
    steps, batch, _ = x.shape
    hidden = c0.shape[-1]
    bias = None if weights.bias_ih is None else weights.bias_ih + weights.bias_hh
    if runs_on_batch_halves(steps, batch, hidden, training=keep_cache):
        on_halves = lstm_forward_on_batch_halves(x, h0, c0, weights.weight_ih, bias, weights.weight_hh, keep_cache)
        if on_halves is not None:
            *results, parts = on_halves
            return (*results, parts and HalvesLSTMCache(tuple(FusedLSTMCache(*part, weights) for part in parts)))
    small = is_small(batch, hidden, 4, forward=True, inference=not keep_cache)
    if runs_batch_last(small, keep_cache):
        return (*_large_inference_batch_last(kernels, x, h0, c0, weights, bias), None)
    depth = steps + 1 if keep_cache else 2
    h = np.empty((steps + 1, batch, hidden), dtype=x.dtype)
    c = cache_empty((depth, batch, hidden), x.dtype)
    tanh_c = cache_empty((steps if keep_cache else 1, batch, hidden), x.dtype)
    h[0], c[0] = h0, c0
    on_two_cores = small and runs_on_two_cores(steps, batch, hidden, 4)
    if on_two_cores:  # gates receive the activated gates only if kept for backward
        gates = cache_empty((steps if keep_cache else 1, batch, 4 * hidden), x.dtype)
        helper_joined = loop_on_two_cores(kernels.lstm_loop_forward_lead, kernels.lstm_loop_forward_second, x,
                                          weights.weight_ih, bias, weights.weight_hh, h, c, tanh_c, gates)
        on_two_cores = helper_joined is not None  # with the helper or alone, the loop ran
    if not on_two_cores:
        if small:
            gates, pipeline = input_gates(x, weights.weight_ih, bias, small)  # (T, N, 4H), activated in place below
            weight_hh = recurrent_weight(weights.weight_hh, x.dtype)
            kernels.lstm_loop_forward(gates, weight_hh, h, c, tanh_c, pipeline)
        else:  # the bias joins each step's gates in the cell, where they are in cache
            gates = cache_projection(x, weights.weight_ih)
            for t, recurrent in recurrent_products(h, weights.weight_hh):
                kernels.lstm_step_forward(t, gates, recurrent, h, c, tanh_c, bias)
    c_last = c[steps % depth].copy()
    if not keep_cache:
        return h[1:], h[-1].copy(), c_last, None
    return h[1:], h[-1].copy(), c_last, FusedLSTMCache(x, h, c, gates, tanh_c, weights)


def _large_inference_batch_last(kernels, x, h0, c0, weights: LSTMWeights, bias):
    """A large layer's forward with nothing kept, its states batch last (see :mod:`._compiled`):
    ``(output (T, N, H), h_T, c_T (N, H))``."""
    steps, hidden = x.shape[0], c0.shape[-1]
    projection = batch_last_projection(x, weights.weight_ih)  # (T, 4H, N)
    h = batch_last_state(h0, steps + 1, x.dtype, ones=bias is not None)
    c = batch_last_state(c0, 2, x.dtype)
    flat_h, flat_c = flat_steps(h, hidden), flat_steps(c, hidden)
    flat_projection, tanh_c = flat_steps(projection, 4 * hidden), np.empty_like(flat_c[:1])
    for t, gates in batch_last_products(h, weights.weight_hh, bias):
        kernels.lstm_step_forward_on_product(t, flat_projection, gates, flat_h, flat_c, tanh_c)
    return batch_first(h, hidden), h[steps, :hidden].T.copy(), c[steps % 2].T.copy()


def lstm_backward_fused(doutput, dh_last, dc_last, cache):
    """Same contract as :func:`~.lstm.lstm_backward`."""
    if isinstance(cache, LSTMCache):
        return lstm_backward(doutput, dh_last, dc_last, cache)
    if isinstance(cache, HalvesLSTMCache):
        return _backward_on_batch_halves(doutput, dh_last, dc_last, cache.parts)
    kernels = compiled_kernels()
    x, h, c, gates, tanh_c, weights = cache
    steps, batch, _ = x.shape
    hidden = h.shape[-1]
    weight_hh = np.ascontiguousarray(weights.weight_hh, dtype=x.dtype)  # (4H, H)
    doutput = np.ascontiguousarray(doutput, dtype=x.dtype)
    small = is_small(batch, hidden, 4)
    dz, = backward_buffers(small, x.dtype, gates.shape)
    dh = np.array(dh_last, dtype=x.dtype, copy=True)
    dc = np.array(dc_last, dtype=x.dtype, copy=True)
    if small:
        kernels.lstm_loop_backward(doutput, dh, dc, gates, c, tanh_c, backward_weight(weight_hh), dz)
    else:
        for t in reversed(range(steps)):
            kernels.lstm_step_backward(t, doutput, dh, dc, gates, c, tanh_c, dz)
            np.matmul(dz[t], weight_hh, out=dh)  # z = ... + W_hh h_prev
    dx, *dprojections = projection_backward(x, h[:-1], dz, dz, weights)
    return dx, dh, dc, LSTMWeights(*dprojections)


def _backward_on_batch_halves(doutput, dh_last, dc_last, parts):
    """:func:`lstm_backward_fused` of a forward that ran on batch halves: each half's whole
    backward, its weight gradients included, compiled on its core (``_kernels.lstm_part_backward``),
    then the two halves' weight gradients summed."""
    weights, dtype = parts[0].weights, parts[0].x.dtype
    steps, _, features = parts[0].x.shape
    hidden = parts[0].h.shape[-1]
    # W_hh as stored, (4H, H), in register blocks: 3-5% faster here than dot products on W_hhᵀ
    # (a throwaway A/B on this grid's four sizes that run this way)
    weight_hh = np.ascontiguousarray(weights.weight_hh, dtype=dtype)
    weight_ih = padded_columns(weights.weight_ih, dtype)
    dh = np.array(dh_last, dtype=dtype, copy=True)  # each half's rows, C-contiguous views
    dc = np.array(dc_last, dtype=dtype, copy=True)
    halves = batch_halves(len(dh))
    sizes = [steps * (rows.stop - rows.start) for rows in halves]
    scratch = scratch_arrays(dtype, *(shape for part, size in zip(parts, sizes)  # dz, h[:-1]ᵀ, xᵀ of each
                                      for shape in (part.gates.shape, (hidden, size), (features, size))))
    jobs, gradients = [], []
    for rows, part, size, (dz, h_t, x_t) in zip(halves, parts, sizes, (scratch[:3], scratch[3:])):
        gradient = (np.empty((size, weight_ih.shape[1]), dtype=dtype), np.empty((features, 4 * hidden), dtype=dtype),
                    np.empty((hidden, 4 * hidden), dtype=dtype), np.empty(4 * hidden, dtype=dtype))
        jobs.append((np.ascontiguousarray(doutput[:, rows], dtype=dtype), dh[rows], dc[rows], part.gates, part.c,
                     part.tanh_c, weight_hh, dz, part.x, part.h, weight_ih, h_t, x_t, *gradient))
        gradients.append(gradient)
    lstm_backward_on_batch_halves(*jobs)
    (dx_0, dweight_ih_0, dweight_hh_0, dbias), (dx_1, dweight_ih_1, dweight_hh_1, dbias_1) = gradients
    dx = np.concatenate([dx_part.reshape(steps, -1, dx_part.shape[1])[..., :features] for dx_part in (dx_0, dx_1)],
                        axis=1)  # views of each half's first I columns, copied once
    kernels = compiled_kernels()  # each sum transposed in register tiles (NumPy's copy of .T is slower)
    dweight_ih, dweight_hh = (kernels.aligned_transpose(np.add(a, b, out=a)) for a, b in (
        (dweight_ih_0, dweight_ih_1), (dweight_hh_0, dweight_hh_1)))
    dbias = None if weights.bias_ih is None else dbias + dbias_1
    return dx, dh, dc, LSTMWeights(dweight_ih, dweight_hh, dbias, None if dbias is None else dbias.copy())
