"""The LSTM equations, once: one time step, and one direction over a whole sequence.

PyTorch's formulation and gate order (i, f, g, o), with the optional variants in brackets::

    z_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh                  (4H pre-activations)
    i_t = σ(z_t[0:H]   [+ p_i ⊙ c_{t-1}])                         input gate
    f_t = σ(z_t[H:2H]  [+ p_f ⊙ c_{t-1}]  [+ forget_bias])        forget gate
    g_t = tanh(z_t[2H:3H])                                       cell candidate
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
    o_t = σ(z_t[3H:4H] [+ p_o ⊙ c_t])                             output gate
    m_t = o_t ⊙ tanh(c_t)
    h_t = W_hr m_t           with a projection (proj_size P > 0), else h_t = m_t

The variants, each off by default (and then the step does exactly the plain LSTM's work):

- **peepholes** (``weight_peephole`` = [p_i, p_f, p_o]; ONNX's P, TF1's ``use_peepholes``):
  i and f see c_{t-1}, o sees c_t, as above.
- **forget_bias** (TF1's, a keyword of :func:`lstm_forward`): a constant added to f's
  pre-activation at every step; not a parameter.
- **layer norm** (Ba et al. 2016; haste's LayerNormLSTM), on when the three gains are given;
  LN normalises over the last axis (:mod:`.layer_norm`, eps = 1e-5)::

      z_t = LN(W_ih x_t) ⊙ g_ih + b_ih + LN(W_hh h_{t-1}) ⊙ g_hh + b_hh   (+ the above)
      m_t = o_t ⊙ tanh(LN(c_t) ⊙ g_c + b_c)

  b_ih and b_hh are the two norms' shifts; c_t itself is carried un-normalised.
- **zoneout** (Krueger et al. 2017; a keyword of :func:`lstm_forward`): h_t and c_t keep a
  fraction of their previous values, ``h_t ← keep ⊙ h_{t-1} + (1 - keep) ⊙ h_t`` (the same for
  c); see :class:`~.recurrence.Zoneout`. The next step, the output and h_T/c_T see the result.

Shapes (T steps, N batch, I input features, H hidden units, R = P or H):

    ====================  ===========  ===========================================
    name                  shape        meaning
    ====================  ===========  ===========================================
    x                     (T, N, I)    input sequence, time-major
    h0, h_T               (N, R)       hidden state before the first / after the last step
    c0, c_T               (N, H)       cell state before the first / after the last step
    weight_ih             (4H, I)      rows in gate order i, f, g, o
    weight_hh             (4H, R)
    bias_ih/_hh           (4H,)        or None
    weight_hr             (P, H)       or None
    weight_peephole       (3H,)        p_i, p_f, p_o; or None
    layer_norm_weight_ih  (4H,)        g_ih; or None (no layer norm)
    layer_norm_weight_hh  (4H,)        g_hh; given with g_ih
    layer_norm_weight_c   (H,)         g_c; given with g_ih
    layer_norm_bias_c     (H,)         b_c; or None
    output                (T, N, R)    h_1 ... h_T
    batch_sizes           (T,)         optional: sequences of different lengths, sorted
    ====================  ===========  ===========================================

The input's share of z (``W_ih x_t + b``, and forget_bias) is computed for all steps before
the loop, W_ih x_t as one matrix product (and its layer norm over all steps at once); only
``W_hh h_{t-1}`` is sequential. The backward pass walks the forward's lines in reverse, and
every weight's gradient is one product or sum over all steps at the end. The time loop itself
(what happens past the end of a shorter sequence, zoneout) is :mod:`.recurrence`'s.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np

from .activations import sigmoid, sigmoid_grad, tanh, tanh_grad
from .layer_norm import layer_norm, layer_norm_backward
from .recurrence import (
    GateDropout,
    Zoneout,
    check_gate_dropout,
    check_zoneout,
    gate_product,
    gate_product_input_grad,
    input_projection,
    projection_backward,
    scan,
    scan_backward,
)


class LSTMWeights(NamedTuple):
    """One layer-direction's parameters in PyTorch's layout (also used for their gradients).
    The variants' parameters come last, None where the variant is off."""

    weight_ih: np.ndarray
    weight_hh: np.ndarray
    bias_ih: np.ndarray | None = None
    bias_hh: np.ndarray | None = None
    weight_hr: np.ndarray | None = None
    weight_peephole: np.ndarray | None = None  # (3H,) p_i, p_f, p_o
    layer_norm_weight_ih: np.ndarray | None = None  # (4H,) g_ih
    layer_norm_weight_hh: np.ndarray | None = None  # (4H,) g_hh
    layer_norm_weight_c: np.ndarray | None = None  # (H,) g_c
    layer_norm_bias_c: np.ndarray | None = None  # (H,) b_c


class LSTMStep(NamedTuple):
    """What one forward step keeps for its backward (the variants' fields None where off)."""

    gates: np.ndarray  # (N, 4H) activated i, f, g, o
    tanh_c: np.ndarray  # (N, H) tanh(c_t); with layer norm tanh(LN(c_t) ⊙ g_c + b_c), not tanh(c_t)
    m: np.ndarray  # (N, H) o ⊙ tanh_c: the hidden state before projection
    c: np.ndarray | None = None  # (N, H) c_t as the step computed it (before zoneout): o's peephole
    hidden_norm: np.ndarray | None = None  # (N, 4H) the normalised W_hh h_{t-1}
    hidden_rstd: np.ndarray | None = None  # (N, 1) its 1 / sqrt(σ² + eps)
    cell_norm: np.ndarray | None = None  # (N, H) the normalised c_t
    cell_rstd: np.ndarray | None = None  # (N, 1)


class LSTMCache(NamedTuple):
    """What a whole-sequence forward keeps for its backward."""

    x: np.ndarray  # (T, N, I)
    h: np.ndarray  # (T+1, N, R)  h[0] = h0
    c: np.ndarray  # (T+1, N, H)  c[0] = c0
    steps: LSTMStep  # every step's LSTMStep, each field stacked over time: (T, N, ·)
    weights: LSTMWeights
    batch_sizes: np.ndarray | None  # (T,) active sequences per step, None when all run to the end
    dropout: GateDropout  # masks on x and h (Keras' dropout); fields None where there are none
    zoneout: Zoneout | None = None  # keep fractions, each (T, N, ·) (broadcast views); None without
    input_norm: np.ndarray | None = None  # (T, N, 4H) the normalised W_ih x_t (layer norm)
    input_rstd: np.ndarray | None = None  # (T, N, 1)


def check_variant_weights(owner: str, weights: LSTMWeights, hidden: int) -> None:
    """A ValueError unless the variants' weights have their shapes and layer norm's gains come together."""
    sizes = {
        "weight_peephole": 3 * hidden,
        "layer_norm_weight_ih": 4 * hidden,
        "layer_norm_weight_hh": 4 * hidden,
        "layer_norm_weight_c": hidden,
        "layer_norm_bias_c": hidden,
    }
    for name, size in sizes.items():
        shape = np.shape(getattr(weights, name))
        if getattr(weights, name) is not None and shape != (size,):
            raise ValueError(f"{owner}: {name} must have shape ({size},) for hidden_size={hidden}, got shape {shape}")
    gains = ("layer_norm_weight_ih", "layer_norm_weight_hh", "layer_norm_weight_c")
    given = [name for name in gains if getattr(weights, name) is not None]
    if 0 < len(given) < len(gains):
        raise ValueError(f"{owner}: layer norm needs all of {', '.join(gains)} (or none), got only {', '.join(given)}")
    if weights.layer_norm_bias_c is not None and not given:
        raise ValueError(f"{owner}: layer_norm_bias_c needs layer norm's gains ({', '.join(gains)}), got none of them")


def check_forget_bias(owner: str, forget_bias) -> None:
    """A TypeError unless ``forget_bias`` is a real number (not a bool), a ValueError unless finite."""
    if isinstance(forget_bias, (bool, np.bool_)) or not isinstance(forget_bias, numbers.Real):
        raise TypeError(
            f"{owner}: forget_bias must be a number, got {forget_bias!r} of type {type(forget_bias).__name__}"
        )
    if not math.isfinite(forget_bias):
        raise ValueError(f"{owner}: forget_bias must be a finite number, got {forget_bias!r}")


def lstm_step(pre_input, h_prev, c_prev, weights: LSTMWeights, recurrent_masks=None):
    """One step. ``pre_input`` is the input's share of the pre-activations (N, 4H): W_ih x_t + b,
    or with layer norm LN(W_ih x_t) ⊙ g_ih + b (b: both biases and forget_bias).
    ``recurrent_masks`` (K, N, R): :attr:`~.recurrence.GateDropout.recurrent`, or None.

    Returns ``(h, c, step)`` with ``step`` the :class:`LSTMStep` its backward needs.
    """
    hidden = c_prev.shape[-1]
    hidden_norm = hidden_rstd = cell_norm = cell_rstd = None
    recurrent = gate_product(h_prev, weights.weight_hh, recurrent_masks)  # W_hh h_{t-1}
    if weights.layer_norm_weight_hh is not None:  # LN(W_hh h_{t-1}) ⊙ g_hh
        recurrent, hidden_norm, hidden_rstd = layer_norm(recurrent, weights.layer_norm_weight_hh)
    z = pre_input + recurrent
    peephole = weights.weight_peephole
    if peephole is not None:
        p_i, p_f, p_o = np.split(peephole, 3)
        z[:, :hidden] += p_i * c_prev
        z[:, hidden : 2 * hidden] += p_f * c_prev
    gates = np.empty_like(z)
    sigmoid(z[:, : 2 * hidden], out=gates[:, : 2 * hidden])  # i, f
    tanh(z[:, 2 * hidden : 3 * hidden], out=gates[:, 2 * hidden : 3 * hidden])  # g
    i, f, g, o = np.split(gates, 4, axis=1)
    c = f * c_prev + i * g
    if peephole is not None:
        z[:, 3 * hidden :] += p_o * c
    sigmoid(z[:, 3 * hidden :], out=o)  # o
    cell = c
    if weights.layer_norm_weight_c is not None:  # LN(c_t) ⊙ g_c + b_c
        cell, cell_norm, cell_rstd = layer_norm(c, weights.layer_norm_weight_c, weights.layer_norm_bias_c)
    tanh_c = tanh(cell)
    m = o * tanh_c
    h = m if weights.weight_hr is None else m @ weights.weight_hr.T
    step = LSTMStep(gates, tanh_c, m, None if peephole is None else c, hidden_norm, hidden_rstd, cell_norm, cell_rstd)
    return h, c, step


def lstm_step_backward(dh, dc, c_prev, step: LSTMStep, weights: LSTMWeights, recurrent_masks=None):
    """Backward of :func:`lstm_step`.

    ``dh`` (N, R) and ``dc`` (N, H) are the gradients reaching h_t and c_t. Returns
    ``(dz, dh_prev, dc_prev, dnorms)``; no weight gradient is formed here (the caller sums
    them over all steps at once, see :func:`lstm_backward`):

    ==========  =======  ==================================================================
    dz          (N, 4H)  the gradient of the pre-activations z: that of b_ih and of b_hh
                         (summed over steps), with peepholes dp_i = Σ dz_i ⊙ c_prev,
                         dp_f = Σ dz_f ⊙ c_prev, dp_o = Σ dz_o ⊙ c; without layer norm
                         also of both products, so dW_ih = Σ dzᵀ x and dW_hh = Σ dzᵀ h_prev
    dh_prev     (N, R)   the gradient reaching h_{t-1} through W_hh h_{t-1}
    dc_prev     (N, H)   the gradient reaching c_{t-1} (through c_t, and the peepholes)
    dnorms      ()       without layer norm; with it ``(drecurrent, dcell)``:
                         drecurrent (N, 4H), the gradient of W_hh h_prev through its norm
                         (dW_hh = Σ drecurrentᵀ h_prev; dg_hh = Σ dz ⊙ its normalised
                         product), dcell (N, H), that of LN(c) ⊙ g_c + b_c (dg_c = Σ dcell ⊙
                         LN(c), db_c = Σ dcell). W_ih x's norm (dW_ih, dg_ih) is not a step's:
                         :func:`lstm_backward` takes it back through all steps at once.
    ==========  =======  ==================================================================
    """
    hidden = dc.shape[-1]
    peephole = weights.weight_peephole
    p_i, p_f, p_o = (None, None, None) if peephole is None else np.split(peephole, 3)
    i, f, g, o = np.split(step.gates, 4, axis=1)
    dm = dh if weights.weight_hr is None else dh @ weights.weight_hr  # h = W_hr m
    do = dm * step.tanh_c  # m = o ⊙ tanh(cell)
    dcell = dm * o * tanh_grad(step.tanh_c)
    if weights.layer_norm_weight_c is None:  # cell = c
        dc = dc + dcell
    else:  # cell = LN(c) ⊙ g_c + b_c
        dc = dc + layer_norm_backward(dcell, weights.layer_norm_weight_c, step.cell_norm, step.cell_rstd)
    dz_o = do * sigmoid_grad(o)
    if p_o is not None:  # o = σ(z_o + p_o ⊙ c)
        dc += dz_o * p_o
    di = dc * g  # c = f ⊙ c_prev + i ⊙ g
    df = dc * c_prev
    dg = dc * i
    dc_prev = dc * f
    dz = np.concatenate([di * sigmoid_grad(i), df * sigmoid_grad(f), dg * tanh_grad(g), dz_o], axis=1)
    if p_i is not None:  # i, f = σ(z_i,f + p_i,f ⊙ c_prev)
        dc_prev += dz[:, :hidden] * p_i + dz[:, hidden : 2 * hidden] * p_f
    if weights.layer_norm_weight_hh is None:  # z = ... + W_hh h_prev
        drecurrent, dnorms = dz, ()
    else:  # z = ... + LN(W_hh h_prev) ⊙ g_hh
        drecurrent = layer_norm_backward(dz, weights.layer_norm_weight_hh, step.hidden_norm, step.hidden_rstd)
        dnorms = (drecurrent, dcell)
    dh_prev = gate_product_input_grad(drecurrent, weights.weight_hh, recurrent_masks)
    return dz, dh_prev, dc_prev, dnorms


def hoisted_bias(weights: LSTMWeights, forget_bias: float, dtype):
    """b_ih + b_hh, with ``forget_bias`` on the f block: every constant of z, added before the
    loop; None when there is none."""
    bias = None if weights.bias_ih is None else weights.bias_ih + weights.bias_hh
    if forget_bias:
        hidden = weights.weight_hh.shape[0] // 4
        bias = np.zeros(4 * hidden, dtype=dtype) if bias is None else bias
        bias[hidden : 2 * hidden] += forget_bias
    return bias


def lstm_forward(
    x,
    h0,
    c0,
    weights: LSTMWeights,
    keep_cache: bool = True,
    batch_sizes=None,
    dropout: GateDropout | None = None,
    *,
    forget_bias: float = 0.0,
    zoneout: Zoneout | None = None,
):
    """Run one direction over a whole sequence (see the module docstring for shapes).

    ``batch_sizes`` (T,), optional: sequences sorted by decreasing length, of which the first
    ``batch_sizes[t]`` are running at step t (see :mod:`lstmkit.ops.recurrence`).
    ``dropout``, optional: per-gate masks on x and h (:class:`~.recurrence.GateDropout`); with
    layer norm the norms see the masked products.
    ``forget_bias``: a finite number added to the forget gate's pre-activation at every step (TF1).
    ``zoneout``, optional: :class:`~.recurrence.Zoneout` keep fractions of h (T, N, R) and c
    (T, N, H), or anything that broadcasts to them: 0/1 masks in training, the rate in evaluation.
    Returns ``(output, h_T, c_T, cache)``; ``cache`` is None when ``keep_cache`` is False.
    """
    steps, batch, features = x.shape
    hidden = c0.shape[-1]
    dropout = check_gate_dropout("lstm_forward", dropout, 4, batch, features, h0.shape[-1])
    check_variant_weights("lstm_forward", weights, hidden)
    check_forget_bias("lstm_forward", forget_bias)
    zoneout = check_zoneout("lstm_forward", zoneout, steps, batch, (h0.shape[-1], hidden), x.dtype)
    bias = hoisted_bias(weights, forget_bias, x.dtype)
    input_norm = input_rstd = None
    if weights.layer_norm_weight_ih is None:
        pre_input = input_projection(x, weights.weight_ih, bias, dropout.input)
    else:  # LN(W_ih x_t) ⊙ g_ih + b: one product, normalised over all steps at once
        product = gate_product(x, weights.weight_ih, dropout.input)
        pre_input, input_norm, input_rstd = layer_norm(product, weights.layer_norm_weight_ih, bias)

    def step(z_t, h_prev, c_prev):
        return lstm_step(z_t, h_prev, c_prev, weights, dropout.recurrent)

    output, (h_last, c_last), history, saved = scan(step, pre_input, (h0, c0), batch_sizes, keep_cache, zoneout)
    if history is None:
        return output, h_last, c_last, None
    cache = LSTMCache(x, *history, saved, weights, batch_sizes, dropout, zoneout, input_norm, input_rstd)
    return output, h_last, c_last, cache


def _summed(array):
    """``array`` (..., F) summed over every leading axis: (F,)."""
    return array.reshape(-1, array.shape[-1]).sum(axis=0)


def lstm_backward(doutput, dh_last, dc_last, cache: LSTMCache, dc_steps=None):
    """Backpropagation through time for :func:`lstm_forward`.

    ``doutput`` (T, N, R) is the gradient of the output (h at every step), ``dh_last`` (N, R)
    and ``dc_last`` (N, H) those of h_T and c_T. ``dc_steps`` (T, N, H), optional: the gradient
    of c at every step (as ``doutput`` is h's; only the rows running at each step count).
    Returns ``(dx, dh0, dc0, dweights)`` with ``dweights`` an :class:`LSTMWeights` of gradients
    (None where the layer has no such weight).
    """
    weights, dropout = cache.weights, cache.dropout
    projected = weights.weight_hr is not None
    if dc_steps is not None and np.shape(dc_steps) != cache.c[1:].shape:
        raise ValueError(
            f"lstm_backward: dc_steps must have shape (T, N, H) = {cache.c[1:].shape}, got shape {np.shape(dc_steps)}"
        )

    def step_backward(t, active, dh, dc):
        step = LSTMStep(*(None if part is None else part[t, :active] for part in cache.steps))
        dz, dh_prev, dc_prev, dnorms = lstm_step_backward(dh, dc, cache.c[t, :active], step, weights, dropout.recurrent)
        keep = (dz, *dnorms, dh) if projected else (dz, *dnorms)  # dh: the gradient reaching h_t, for dW_hr
        return keep, (dh_prev, dc_prev)

    dstate_steps = None if dc_steps is None else (None, dc_steps)
    (dz, *collected), (dh0, dc0) = scan_backward(
        step_backward, doutput, (dh_last, dc_last), cache.batch_sizes, cache.zoneout, dstate_steps
    )
    dweight_hr = None
    if projected:
        dh_steps, m = collected.pop(), cache.steps.m
        dweight_hr = dh_steps.reshape(-1, dh_steps.shape[-1]).T @ m.reshape(-1, m.shape[-1])
    dweight_peephole = None
    if weights.weight_peephole is not None:  # i, f see c_{t-1}; o sees c_t
        dz_i, dz_f, _, dz_o = np.split(dz, 4, axis=-1)
        c_prev, c = cache.c[:-1], cache.steps.c
        dweight_peephole = np.concatenate([_summed(dz_i * c_prev), _summed(dz_f * c_prev), _summed(dz_o * c)])
    if weights.layer_norm_weight_ih is None:
        dx, *dprojections = projection_backward(cache.x, cache.h[:-1], dz, dz, weights, dropout)
        return dx, dh0, dc0, LSTMWeights(*dprojections, dweight_hr, dweight_peephole)
    drecurrent, dcell = collected
    dinput = layer_norm_backward(dz, weights.layer_norm_weight_ih, cache.input_norm, cache.input_rstd)  # of W_ih x
    # the biases join z after the norms: the two products have none of their own
    unbiased = weights._replace(bias_ih=None, bias_hh=None)
    dx, dweight_ih, dweight_hh, _, _ = projection_backward(cache.x, cache.h[:-1], dinput, drecurrent, unbiased, dropout)
    dbias = None if weights.bias_ih is None else _summed(dz)
    steps = cache.steps
    return (
        dx,
        dh0,
        dc0,
        LSTMWeights(
            dweight_ih,
            dweight_hh,
            dbias,
            None if dbias is None else dbias.copy(),
            dweight_hr,
            dweight_peephole,
            layer_norm_weight_ih=_summed(dz * cache.input_norm),
            layer_norm_weight_hh=_summed(dz * steps.hidden_norm),
            layer_norm_weight_c=_summed(dcell * steps.cell_norm),
            layer_norm_bias_c=None if weights.layer_norm_bias_c is None else _summed(dcell),
        ),
    )
