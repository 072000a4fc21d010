"""The fast path of :mod:`..lstm`: the same two functions, fused and compiled.

:func:`lstm_forward_fused` and :func:`lstm_backward_fused` take and return exactly what
:func:`~lstmkit.ops.lstm.lstm_forward` and :func:`~lstmkit.ops.lstm.lstm_backward` do (tests
prove them equal on random inputs); the reference stays what people read. What is different:

- Each step's nonlinearities and state update are one compiled pass (:mod:`.kernels`), writing
  into buffers preallocated for the whole sequence; nothing is allocated inside the loop.
- Which loop runs is the call's :class:`~.plan.Plan` (see :mod:`.plan`): a small layer's whole
  time loop compiled, optionally on two cores; half of the batch on each core; or, for a large
  layer, BLAS for the recurrent product from a Python loop (:mod:`.blas_loops`), batch last in
  inference.
- The input projection before the loop and the weight gradients after it are one matrix
  product over all steps each, as in the reference. A large layer adds the bias in each step's
  cell, where that step's gates are in cache, instead of in a pass over all T·N·4H of them.

Variable lengths (``batch_sizes``), projections (``weight_hr``), per-gate dropout masks, mixed
dtypes, and a machine without Numba go to the reference op.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..lstm import LSTMCache, LSTMWeights, lstm_backward, lstm_forward
from ..recurrence import projection_backward
from .blas_loops import (
    batch_last_products,
    batch_last_projection,
    batch_last_state,
    cache_projection,
    flat_steps,
    output_from_batch_last,
    recurrent_products,
)
from .compiled import compiled_kernels, kernels_for
from .helper import (
    PROCESS_HELPER,
    Helper,
    batch_halves,
    helper_available,
    input_gates,
    loop_on_two_cores,
    lstm_backward_on_batch_halves,
    lstm_forward_on_batch_halves,
    resolve_helper,
)
from .memory import backward_buffers, cache_empty, compiled_loop_weight, padded_columns, scratch_arrays, transposed
from .plan import DEFAULT_TUNING, Plan, Tuning, choose_plan


class FusedLSTMCache(NamedTuple):
    """What a fused training forward keeps for its backward."""

    x: np.ndarray  # (T, N, I)
    h: np.ndarray  # (T+1, N, H)  h[0] = h0
    c: np.ndarray  # (T+1, N, H)  c[0] = c0
    gates: np.ndarray  # (T, N, 4H) activated i, f, g, o
    tanh_c: np.ndarray  # (T, N, H)
    weights: LSTMWeights
    backward_loop: str  # the plan's: "compiled" or "blas"
    RECYCLED = ("c", "gates", "tanh_c")  # read by the backward only (see memory.recycle_cache)


class HalvesLSTMCache(NamedTuple):
    """The cache of a forward that ran half of the batch on each core: each half's
    :class:`FusedLSTMCache`, rows [0, N//2) and [N//2, N) (``helper.batch_halves``)."""

    parts: tuple

    @property
    def x(self):  # (T, N, I), as the other caches have it
        return np.concatenate([part.x for part in self.parts], axis=1)

    @property
    def h(self):  # (T+1, N, H)
        return np.concatenate([part.h for part in self.parts], axis=1)


# The reference's signature on its first line, the fast path's own keywords on the second.
# fmt: off
def lstm_forward_fused(x, h0, c0, weights: LSTMWeights, keep_cache: bool = True, batch_sizes=None, dropout=None, *,
                       plan: Plan | None = None, tuning: Tuning = DEFAULT_TUNING, helper=PROCESS_HELPER):
    # fmt: on
    """Same contract as :func:`~lstmkit.ops.lstm.lstm_forward`, plus keywords that tests and
    benchmarks use to reach each loop: ``plan`` (default: :func:`~.plan.choose_plan` with
    ``tuning``) and ``helper`` (default: this process's helper thread, if enabled; None: the
    caller's thread alone; or an object with :class:`~.helper.Helper`'s interface)."""
    plain = batch_sizes is None and dropout is None and all(w is None for w in weights[4:])  # weight_hr, variants
    kernels = kernels_for(x, weights) if plain else None
    if kernels is None:
        return lstm_forward(x, h0, c0, weights, keep_cache, batch_sizes, dropout)
    steps, batch, features = x.shape
    hidden = c0.shape[-1]
    if plan is None:
        plan = choose_plan(steps, batch, features, hidden, 4, keep_cache, helper_available(helper), tuning)
    helper = resolve_helper(helper) if plan.uses_helper else None  # started only where a plan needs it
    bias = None if weights.bias_ih is None else weights.bias_ih + weights.bias_hh
    if plan.forward == "halves":
        *results, parts = lstm_forward_on_batch_halves(
            x, h0, c0, weights.weight_ih, bias, weights.weight_hh, keep_cache, plan.transposed_weight, helper
        )
        backward_loop = plan.backward or "compiled"
        cache = parts and HalvesLSTMCache(tuple(FusedLSTMCache(*part, weights, backward_loop) for part in parts))
        return (*results, cache)
    if plan.forward == "batch_last":
        if keep_cache:
            raise ValueError(
                f"lstm_forward_fused: a batch-last plan keeps no cache, so it needs keep_cache=False; got {plan}"
            )
        return (*_large_inference_batch_last(kernels, x, h0, c0, weights, bias), None)
    depth = steps + 1 if keep_cache else 2
    h = np.empty((steps + 1, batch, hidden), dtype=x.dtype)
    c = cache_empty((depth, batch, hidden), x.dtype)
    tanh_c = cache_empty((steps if keep_cache else 1, batch, hidden), x.dtype)
    h[0], c[0] = h0, c0
    if plan.forward == "two_cores":  # gates receive the activated gates only if kept for backward
        gates = cache_empty((steps if keep_cache else 1, batch, 4 * hidden), x.dtype)
        sides = (kernels.lstm_loop_forward_lead, kernels.lstm_loop_forward_second)
        projection = (weights.weight_ih, bias, weights.weight_hh)
        loop_on_two_cores(sides, x, projection, (h, c, tanh_c, gates), plan.chunk_steps, helper)
    elif plan.forward == "compiled":
        gates, pipeline = input_gates(x, weights.weight_ih, bias, plan, helper)  # (T, N, 4H), activated in place
        weight_hh = compiled_loop_weight(weights.weight_hh, x.dtype, plan.transposed_weight)
        kernels.lstm_loop_forward(gates, weight_hh, h, c, tanh_c, pipeline)
    else:  # "blas": the bias joins each step's gates in the cell, where they are in cache
        gates = cache_projection(x, weights.weight_ih)
        for t, recurrent in recurrent_products(h, weights.weight_hh):
            kernels.lstm_step_forward(t, gates, recurrent, h, c, tanh_c, bias)
    c_last = c[steps % depth].copy()
    if not keep_cache:
        return h[1:], h[-1].copy(), c_last, None
    cache = FusedLSTMCache(x, h, c, gates, tanh_c, weights, plan.backward or "compiled")
    return h[1:], h[-1].copy(), c_last, cache


def _large_inference_batch_last(kernels, x, h0, c0, weights: LSTMWeights, bias):
    """A large layer's forward with nothing kept, its states batch last (see :mod:`.blas_loops`):
    ``(output (T, N, H), h_T, c_T (N, H))``."""
    steps, hidden = x.shape[0], c0.shape[-1]
    projection = batch_last_projection(x, weights.weight_ih)  # (T, 4H, N)
    h = batch_last_state(h0, steps + 1, x.dtype, ones=bias is not None)
    c = batch_last_state(c0, 2, x.dtype)
    flat_h, flat_c = flat_steps(h, hidden), flat_steps(c, hidden)
    flat_projection, tanh_c = flat_steps(projection, 4 * hidden), np.empty_like(flat_c[:1])
    for t, gates in batch_last_products(h, weights.weight_hh, bias):
        kernels.lstm_step_forward_on_product(t, flat_projection, gates, flat_h, flat_c, tanh_c)
    return output_from_batch_last(h, hidden), h[steps, :hidden].T.copy(), c[steps % 2].T.copy()


def lstm_backward_fused(doutput, dh_last, dc_last, cache, *, helper=PROCESS_HELPER):
    """Same contract as :func:`~lstmkit.ops.lstm.lstm_backward`; its loop is the one the forward's
    plan chose (kept in the cache). ``helper`` as in :func:`lstm_forward_fused`."""
    if isinstance(cache, LSTMCache):
        return lstm_backward(doutput, dh_last, dc_last, cache)
    if isinstance(cache, HalvesLSTMCache):
        return _backward_on_batch_halves(doutput, dh_last, dc_last, cache.parts, resolve_helper(helper))
    kernels = compiled_kernels()
    x, h, c, gates, tanh_c, weights, backward_loop = cache
    steps = x.shape[0]
    weight_hh = np.ascontiguousarray(weights.weight_hh, dtype=x.dtype)  # (4H, H)
    doutput = np.ascontiguousarray(doutput, dtype=x.dtype)
    compiled_loop = backward_loop == "compiled"
    (dz,) = backward_buffers(compiled_loop, x.dtype, gates.shape)
    dh = np.array(dh_last, dtype=x.dtype, order="C", copy=True)
    dc = np.array(dc_last, dtype=x.dtype, order="C", copy=True)
    if compiled_loop:  # dh = dz W_hh from W_hhᵀ, dot products along 4H (see kernels.gradient_product)
        kernels.lstm_loop_backward(doutput, dh, dc, gates, c, tanh_c, transposed(weight_hh), dz)
    else:
        for t in reversed(range(steps)):
            kernels.lstm_step_backward(t, doutput, dh, dc, gates, c, tanh_c, dz)
            np.matmul(dz[t], weight_hh, out=dh)  # z = ... + W_hh h_prev
    dx, *dprojections = projection_backward(x, h[:-1], dz, dz, weights)
    return dx, dh, dc, LSTMWeights(*dprojections)


def _backward_on_batch_halves(doutput, dh_last, dc_last, parts, helper: Helper | None):
    """:func:`lstm_backward_fused` of a forward that ran on batch halves: each half's whole
    backward, its weight gradients included, compiled on its core (``kernels.lstm_part_backward``),
    then the two halves' weight gradients summed."""
    weights, dtype = parts[0].weights, parts[0].x.dtype
    steps, _, features = parts[0].x.shape
    hidden = parts[0].h.shape[-1]
    # W_hh as stored, (4H, H), in register blocks: 3-5% faster here than dot products on W_hhᵀ
    # (the four benchmark rows that run on halves, a 2-core AVX-512 machine)
    weight_hh = np.ascontiguousarray(weights.weight_hh, dtype=dtype)
    weight_ih = padded_columns(weights.weight_ih, dtype)
    dh = np.array(dh_last, dtype=dtype, order="C", copy=True)  # each half's rows, C-contiguous views
    dc = np.array(dc_last, dtype=dtype, order="C", copy=True)
    halves = batch_halves(len(dh))
    sizes = [steps * (rows.stop - rows.start) for rows in halves]
    scratch = scratch_arrays(
        dtype,
        *(
            shape
            for part, size in zip(parts, sizes)  # dz, h[:-1]ᵀ, xᵀ of each
            for shape in (part.gates.shape, (hidden, size), (features, size))
        ),
    )
    jobs, gradients = [], []
    for rows, part, size, (dz, h_t, x_t) in zip(halves, parts, sizes, (scratch[:3], scratch[3:])):
        gradient = (
            np.empty((size, weight_ih.shape[1]), dtype=dtype),
            np.empty((features, 4 * hidden), dtype=dtype),
            np.empty((hidden, 4 * hidden), dtype=dtype),
            np.empty(4 * hidden, dtype=dtype),
        )
        jobs.append(
            (
                np.ascontiguousarray(doutput[:, rows], dtype=dtype),
                dh[rows],
                dc[rows],
                part.gates,
                part.c,
                part.tanh_c,
                weight_hh,
                dz,
                part.x,
                part.h,
                weight_ih,
                h_t,
                x_t,
                *gradient,
            )
        )
        gradients.append(gradient)
    lstm_backward_on_batch_halves(*jobs, helper)
    (dx_0, dweight_ih_0, dweight_hh_0, dbias), (dx_1, dweight_ih_1, dweight_hh_1, dbias_1) = gradients
    dx = np.concatenate(
        [dx_part.reshape(steps, -1, dx_part.shape[1])[..., :features] for dx_part in (dx_0, dx_1)], axis=1
    )  # views of each half's first I columns, copied once
    kernels = compiled_kernels()  # each sum transposed in register tiles (NumPy's copy of .T is slower)
    dweight_ih, dweight_hh = (
        kernels.aligned_transpose(np.add(a, b, out=a))
        for a, b in ((dweight_ih_0, dweight_ih_1), (dweight_hh_0, dweight_hh_1))
    )
    dbias = None if weights.bias_ih is None else dbias + dbias_1
    return dx, dh, dc, LSTMWeights(dweight_ih, dweight_hh, dbias, None if dbias is None else dbias.copy())
