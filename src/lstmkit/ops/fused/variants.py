"""The fast path of the LSTM variants: layer norm, peepholes, zoneout, recurrent dropout (one
mask for all gates) and TF1's runtime ``forget_bias``, fused and compiled, alone or together.

:func:`lstm_variant_forward_fused` and :func:`lstm_variant_backward_fused` take and return what
:func:`~lstmkit.ops.lstm.lstm_forward` and :func:`~lstmkit.ops.lstm.lstm_backward` do (tests
prove them equal on random inputs, tests/test_fast_variants.py). As the plain fused op: the
input projection (biases and forget_bias in it) is one product before the loop, each step's
gates, peepholes, state update and zoneout one compiled pass (:mod:`.kernels.variants`), and the
weight gradients one product over all steps after it. A small layer runs its whole time loop
compiled, the recurrent product in registers; a larger one calls BLAS for each step's product
from a Python loop (:func:`~.plan.is_small` decides, with the plain op's thresholds). One core,
no helper thread. With layer norm, W_ih x is normalised over all steps at once before the loop
(compiled, row by row), each step's W_hh h_{t-1} and c_t in the step's compiled pass (their
normalised values and rstd kept), their backward in the step's backward pass, and every gain's
and shift's gradient one sum over all steps after the loop.

Everything else goes to the reference ops: variable lengths (``batch_sizes``), projections
(``weight_hr``), input dropout masks, per-gate (K = 4) recurrent masks, mixed dtypes, empty
sequences, and a machine without Numba.

Why (``python benchmarks/bench_variants.py --variants peepholes recurrent_dropout zoneout
--repeats 3``, float32, a 2-core AVX-512 Xeon): on the reference ops a training step with
peepholes, recurrent dropout or zoneout took 3.6-3.7x the plain fused LSTM's (geometric means
over the benchmark's four sizes; 8x at batch 1), here 1.1-1.3x (at most 1.9x, zoneout at
T=28 N=64 H=128). Layer norm's training step took 6.6x the plain LSTM's on the reference ops
(11x at batch 1), here 1.9x (``bench_variants.py``, all four variants, default repeats; at most
2.5x, at T=28 N=64 H=128). A plain call without a cache (recurrent dropout in evaluation mode)
runs the plain fused op, whose loops include two-core ones.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..lstm import LSTMCache, LSTMWeights, check_forget_bias, check_variant_weights, hoisted_bias, lstm_backward
from ..lstm import lstm_forward as reference_forward
from ..recurrence import (
    GateDropout,
    Zoneout,
    check_gate_dropout,
    check_zoneout,
    input_projection,
    projection_backward,
)
from .compiled import compiled_kernels, kernels_for
from .lstm import lstm_forward_fused
from .memory import compiled_loop_weight, transposed
from .plan import DEFAULT_TUNING, is_small


class VariantLSTMCache(NamedTuple):
    """What a fused variant forward keeps for its backward (the options' arrays as the kernels
    take them: empty where an option is off)."""

    x: np.ndarray  # (T, N, I)
    h: np.ndarray  # (T+1, N, H)  h[0] = h0, the zoned states
    c: np.ndarray  # (T+1, N, H)  c[0] = c0, the zoned states
    gates: np.ndarray  # (T, N, 4H) activated i, f, g, o
    c_cell: np.ndarray  # (T, N, H) c_t as the cell computed it, before zoneout (o's peephole)
    tanh_c: np.ndarray  # (T, N, H) tanh(c_cell)
    weights: LSTMWeights
    peephole: np.ndarray  # (3H,) or (0,)
    mask: np.ndarray  # (N, H) the recurrent dropout mask, or (N, 0)
    keep_h: np.ndarray  # (T, N, H) zoneout's keep fractions of h, or (T, N, 0)
    keep_c: np.ndarray  # (T, N, H) or (T, N, 0)
    norms: tuple  # layer norm's gains and per-step arrays as the kernels take them (kernels.variants.step_norms)
    input_norm: np.ndarray | None  # (T, N, 4H) the normalised W_ih x, or None without layer norm
    input_rstd: np.ndarray | None  # (T * N,)
    compiled_backward: bool  # a small layer's backward loop runs compiled

    @property
    def zoneout(self) -> Zoneout | None:
        """The keep fractions as the reference's cache has them (None where a part is off)."""
        parts = [keep if keep.shape[-1] else None for keep in (self.keep_h, self.keep_c)]
        return None if all(part is None for part in parts) else Zoneout(*parts)

    @property
    def dropout(self) -> GateDropout:
        """The recurrent dropout mask as the reference's cache has it: (1, N, H), or None."""
        return GateDropout(None, self.mask[None] if self.mask.shape[1] else None)


def _supported(x, weights: LSTMWeights, batch_sizes, dropout: GateDropout):
    """The compiled kernels where this module runs the call, else None (the reference runs it)."""
    if batch_sizes is not None or x.shape[0] == 0 or x.shape[1] == 0 or dropout.input is not None:
        return None
    if weights.weight_hr is not None:
        return None
    mask = dropout.recurrent
    if mask is not None and (len(mask) != 1 or np.asarray(mask).dtype != x.dtype):
        return None
    return kernels_for(x, weights)


def _norms(weights: LSTMWeights, kept: int, batch: int, hidden: int, dtype) -> tuple:
    """Layer norm's arrays as the kernels take them (:func:`~.kernels.variants.step_norms`): the
    gains and shift, and room for ``kept`` steps' normalised values and rstd; each with no
    entries in its last axis where layer norm (or its shift) is off."""
    normed = weights.layer_norm_weight_hh is not None
    width = hidden if normed else 0

    def gain(value, size):
        return np.empty(0, dtype) if value is None else np.ascontiguousarray(value, dtype=dtype).reshape(size)

    return (
        gain(weights.layer_norm_weight_hh, 4 * width),
        gain(weights.layer_norm_weight_c, width),
        gain(weights.layer_norm_bias_c, width),
        np.empty((kept, batch, 4 * width), dtype),
        np.empty((kept, batch if normed else 0), dtype),
        np.empty((kept, batch, width), dtype),
        np.empty((kept, batch if normed else 0), dtype),
    )


def _keep(part, steps: int, batch: int, dtype) -> np.ndarray:
    """A zoneout part as the kernels take it: (T, N, H) C-contiguous, or (T, N, 0) where it is None."""
    if part is None:
        return np.empty((steps, batch, 0), dtype=dtype)
    return np.ascontiguousarray(part)


# The reference's signature, on two lines.
# fmt: off
def lstm_variant_forward_fused(x, h0, c0, weights: LSTMWeights, keep_cache: bool = True, batch_sizes=None,
                               dropout: GateDropout | None = None, *, forget_bias: float = 0.0, zoneout=None):
    # fmt: on
    """Same contract as :func:`~lstmkit.ops.lstm.lstm_forward` (its variants' keywords included);
    a call outside what this module supports (see the module docstring) runs that op.
    Returns ``(output, h_T, c_T, cache)``, the cache a :class:`VariantLSTMCache` or the
    reference's :class:`~lstmkit.ops.lstm.LSTMCache`, None without ``keep_cache``."""
    steps, batch, features = x.shape
    hidden = c0.shape[-1]
    checked = check_gate_dropout("lstm_forward", dropout, 4, batch, features, h0.shape[-1])
    check_forget_bias("lstm_forward", forget_bias)
    masks = checked.input is not None or checked.recurrent is not None
    plain = weights.weight_peephole is None and zoneout is None and not masks and forget_bias == 0
    plain = plain and weights.layer_norm_weight_ih is None and weights.layer_norm_bias_c is None
    if plain and not keep_cache:  # e.g. recurrent dropout in eval mode: the plain op's loops (two cores among them)
        return lstm_forward_fused(x, h0, c0, weights, keep_cache, batch_sizes)
    kernels = _supported(x, weights, batch_sizes, checked)
    if kernels is None:
        return reference_forward(
            x, h0, c0, weights, keep_cache, batch_sizes, dropout, forget_bias=forget_bias, zoneout=zoneout
        )
    check_variant_weights("lstm_forward", weights, hidden)
    zoneout = check_zoneout("lstm_forward", zoneout, steps, batch, (hidden, hidden), x.dtype)
    zoneout_parts = (None, None) if zoneout is None else zoneout
    keep_h, keep_c = (_keep(part, steps, batch, x.dtype) for part in zoneout_parts)
    peephole = weights.weight_peephole
    peephole = np.empty(0, x.dtype) if peephole is None else np.ascontiguousarray(peephole)
    mask = checked.recurrent
    mask = np.empty((batch, 0), x.dtype) if mask is None else np.ascontiguousarray(mask[0])
    bias = hoisted_bias(weights, forget_bias, x.dtype)
    input_norm = input_rstd = None
    if weights.layer_norm_weight_ih is None:
        gates = input_projection(x, weights.weight_ih, bias)  # (T, N, 4H)
    else:  # LN(W_ih x_t) ⊙ g_ih + b, as the reference: one product, normalised over all steps at once (compiled)
        product = input_projection(x, weights.weight_ih)  # (T, N, 4H)
        gates, input_norm = np.empty_like(product), np.empty_like(product)
        input_rstd = np.empty((steps * batch,), x.dtype)
        kernels.rows_norm_forward(
            product.reshape(steps * batch, -1), np.ascontiguousarray(weights.layer_norm_weight_ih),
            np.empty(0, x.dtype) if bias is None else bias, gates.reshape(steps * batch, -1),
            input_norm.reshape(steps * batch, -1), input_rstd,
        )  # fmt: skip
    depth = steps + 1 if keep_cache else 2
    kept = steps if keep_cache else 1
    norms = _norms(weights, kept, batch, hidden, x.dtype)
    h = np.empty((steps + 1, batch, hidden), dtype=x.dtype)
    c = np.empty((depth, batch, hidden), dtype=x.dtype)
    c_cell = np.empty((kept, batch, hidden), dtype=x.dtype)
    tanh_c = np.empty((kept, batch, hidden), dtype=x.dtype)
    h[0], c[0] = h0, c0
    training = keep_cache
    factor = DEFAULT_TUNING.forward_factor if training else DEFAULT_TUNING.inference_factor
    if is_small(batch, hidden, 4, DEFAULT_TUNING, factor):
        transposed_weight = hidden <= DEFAULT_TUNING.transposed_product_max_hidden
        weight_hh = compiled_loop_weight(weights.weight_hh, x.dtype, transposed_weight)
        kernels.variant_loop_forward(gates, weight_hh, h, c, c_cell, tanh_c, peephole, mask, keep_h, keep_c, norms)
    else:  # BLAS for each step's product
        weight_t = transposed(np.ascontiguousarray(weights.weight_hh, dtype=x.dtype))  # (H, 4H)
        recurrent = np.empty((batch, 4 * hidden), dtype=x.dtype)
        masked = np.empty((batch, hidden), dtype=x.dtype) if mask.shape[1] else None
        for t in range(steps):
            h_prev = h[t]
            if masked is not None:
                kernels.masked_rows(h_prev, mask, masked)
                h_prev = masked
            np.matmul(h_prev, weight_t, out=recurrent)
            kernels.variant_step_forward(t, gates, recurrent, h, c, c_cell, tanh_c, peephole, keep_h, keep_c, *norms)
    c_last = c[steps % depth].copy()
    if not keep_cache:
        return h[1:], h[-1].copy(), c_last, None
    compiled_backward = is_small(batch, hidden, 4, DEFAULT_TUNING)
    cache = VariantLSTMCache(
        x, h, c, gates, c_cell, tanh_c, weights, peephole, mask, keep_h, keep_c, norms, input_norm, input_rstd,
        compiled_backward,
    )  # fmt: skip
    return h[1:], h[-1].copy(), c_last, cache


def lstm_variant_backward_fused(doutput, dh_last, dc_last, cache, dc_steps=None):
    """Same contract as :func:`~lstmkit.ops.lstm.lstm_backward`, for a cache of
    :func:`lstm_variant_forward_fused` (a reference cache goes to the reference op)."""
    if isinstance(cache, LSTMCache):
        return lstm_backward(doutput, dh_last, dc_last, cache, dc_steps)
    kernels = compiled_kernels()
    x, h, c, gates, c_cell, tanh_c, weights, peephole, mask, keep_h, keep_c, norms, input_norm, _, compiled = cache
    steps, batch, _ = x.shape
    hidden = c.shape[-1]
    if dc_steps is not None and np.shape(dc_steps) != c[1:].shape:
        raise ValueError(
            f"lstm_backward: dc_steps must have shape (T, N, H) = {c[1:].shape}, got shape {np.shape(dc_steps)}"
        )
    dtype = x.dtype
    doutput = np.ascontiguousarray(doutput, dtype=dtype)
    dc_steps = np.empty((0, batch, hidden), dtype) if dc_steps is None else np.ascontiguousarray(dc_steps, dtype)
    dh = np.array(dh_last, dtype=dtype, order="C", copy=True)
    dc = np.array(dc_last, dtype=dtype, order="C", copy=True)
    dz = np.empty_like(gates)
    normed = input_norm is not None
    dcell = np.empty((steps, batch, hidden if normed else 0), dtype)  # that of LN(c) ⊙ g_c + b_c
    drecurrent = np.empty_like(dz) if normed else dz  # that of W_hh (h_prev ⊙ mask)
    if compiled:
        weight = compiled_loop_weight(weights.weight_hh, dtype, True)  # W_hhᵀ (H, 4H): dot products along 4H
        kernels.variant_loop_backward(
            doutput, dc_steps, dh, dc, gates, c, tanh_c, peephole, mask, keep_h, keep_c, norms, weight, dcell,
            drecurrent, dz,
        )  # fmt: skip
    else:
        weight_hh = np.ascontiguousarray(weights.weight_hh, dtype=dtype)  # (4H, H)
        product = np.empty_like(dh)
        for t in range(steps - 1, -1, -1):
            kernels.variant_step_backward(
                t, doutput, dc_steps, dh, dc, gates, c, tanh_c, peephole, keep_h, keep_c, dcell, drecurrent, dz, *norms
            )
            np.matmul(drecurrent[t], weight_hh, out=product)  # z = ... + W_hh (h_prev ⊙ mask)
            kernels.add_masked_product(dh, product, mask)
    if normed:
        dx, dprojections = _normed_projection_backward(dz, drecurrent, dcell, cache)
    else:
        dx, *dprojections = projection_backward(x, h[:-1], dz, dz, weights, cache.dropout)
    dweight_peephole = None
    if peephole.shape[0]:  # i, f see c_{t-1}; o sees c_t
        flat = dz.reshape(-1, 4 * hidden)
        c_prev, c_now = c[:-1].reshape(-1, hidden), c_cell.reshape(-1, hidden)
        dweight_peephole = np.concatenate(
            [
                (flat[:, :hidden] * c_prev).sum(axis=0),
                (flat[:, hidden : 2 * hidden] * c_prev).sum(axis=0),
                (flat[:, 3 * hidden :] * c_now).sum(axis=0),
            ]
        )
    return dx, dh, dc, LSTMWeights(*dprojections[:4], None, dweight_peephole, *dprojections[4:])


def _normed_projection_backward(dz, drecurrent, dcell, cache: VariantLSTMCache):
    """``(dx, [dW_ih, dW_hh, db_ih, db_hh, dg_ih, dg_hh, dg_c, db_c])`` of a layer-norm cache, as
    the reference's :func:`~lstmkit.ops.lstm.lstm_backward`: W_ih x's norm taken back over all
    steps at once, every weight's and gain's gradient one product or sum over all steps."""
    weights, norms, kernels = cache.weights, cache.norms, compiled_kernels()
    rows = cache.input_rstd.shape[0]
    dinput = np.empty_like(dz)  # of W_ih x
    kernels.rows_norm_backward(
        dz.reshape(rows, -1), np.ascontiguousarray(weights.layer_norm_weight_ih), cache.input_norm.reshape(rows, -1),
        cache.input_rstd, dinput.reshape(rows, -1),
    )  # fmt: skip

    def summed(a, b=None):  # Σ a ⊙ b over all steps and rows, compiled, in float64
        out = np.zeros(a.shape[-1])
        b = np.empty((rows, 0), a.dtype) if b is None else b.reshape(rows, -1)
        kernels.weighted_column_sums(a.reshape(rows, -1), b, out)
        return out.astype(a.dtype)

    unbiased = weights._replace(bias_ih=None, bias_hh=None)  # the biases join z after the norms
    dx, dweight_ih, dweight_hh, _, _ = projection_backward(
        cache.x, cache.h[:-1], dinput, drecurrent, unbiased, cache.dropout
    )
    dbias = None if weights.bias_ih is None else dz.reshape(rows, -1).sum(axis=0)
    return dx, [
        dweight_ih,
        dweight_hh,
        dbias,
        None if dbias is None else dbias.copy(),
        summed(dz, cache.input_norm),
        summed(dz, norms[3]),
        summed(dcell, norms[5]),
        None if weights.layer_norm_bias_c is None else summed(dcell),
    ]
