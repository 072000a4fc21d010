"""The GRU equations, once: one time step, and one direction over a whole sequence.

PyTorch's formulation and gate order (r, z, n)::

    r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)             reset gate
    z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)             update gate
    n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t-1} + b_hn))    candidate (reset_after=True)
    n_t = tanh(W_in x_t + b_in + b_hn + W_hn (r_t ⊙ h_{t-1}))    candidate (reset_after=False)
    h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}

``reset_after=True`` (the default) is PyTorch's GRU and Keras' default: the reset gate scales
the recurrent product. ``reset_after=False`` is Keras' ``GRU(reset_after=False)`` (and the
original GRU of Cho et al. 2014): the reset gate scales h_{t-1} before the product, so the n
rows of W_hh meet ``r_t ⊙ h_{t-1}`` instead of h_{t-1}.

Reset after, ``b_hn`` sits inside ``r_t ⊙ (...)``, so it cannot join the input's share of the
pre-activations: the hoisted projection is ``W_ih x_t + b_ih + [b_hr, b_hz, 0]``, and the step
adds ``W_hh h_{t-1} + [0, 0, b_hn]``. Reset before, every bias joins it: ``W_ih x_t + b_ih +
b_hh`` (Keras keeps that sum as its one bias).

Shapes (T steps, N batch, I input features, H hidden units):

    ==============  ===========  ===========================================
    name            shape        meaning
    ==============  ===========  ===========================================
    x               (T, N, I)    input sequence, time-major
    h0, h_T         (N, H)       hidden state before the first / after the last step
    weight_ih       (3H, I)      rows in gate order r, z, n
    weight_hh       (3H, H)
    bias_ih/_hh     (3H,)        or None
    output          (T, N, H)    h_1 ... h_T
    batch_sizes     (T,)         optional: sequences of different lengths, sorted
    ==============  ===========  ===========================================

The weight gradients are one product over all steps at the end; reset after, the input's and
the hidden state's pre-activations get different gradients (the n rows of the latter are
scaled by r); reset before, they get the same, but the n rows of W_hh meet ``r ⊙ h_{t-1}``,
which each step keeps for the backward.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .activations import sigmoid, sigmoid_grad, tanh, tanh_grad
from .recurrence import (
    GateDropout,
    Zoneout,
    check_gate_dropout,
    check_zoneout,
    gate_product,
    gate_product_input_grad,
    gate_product_weight_grad,
    input_projection,
    projection_backward,
    scan,
    scan_backward,
)


class GRUWeights(NamedTuple):
    """One layer-direction's parameters in PyTorch's layout, rows r, z, n (also their gradients)."""

    weight_ih: np.ndarray
    weight_hh: np.ndarray
    bias_ih: np.ndarray | None = None
    bias_hh: np.ndarray | None = None


class GRUStep(NamedTuple):
    """What one forward step keeps for its backward (one of the last two, the other None)."""

    gates: np.ndarray  # (N, 3H) activated r, z, n
    hidden_n: np.ndarray | None  # (N, H) reset after: W_hn h_{t-1} + b_hn, the term that r scales
    reset_hidden: np.ndarray | None = None  # (N, H) reset before: r ⊙ h_{t-1}, what W_hn meets


class GRUCache(NamedTuple):
    """What a whole-sequence forward keeps for its backward."""

    x: np.ndarray  # (T, N, I)
    h: np.ndarray  # (T+1, N, H)  h[0] = h0
    steps: GRUStep  # every step's GRUStep, each field stacked over time: (T, N, ·)
    weights: GRUWeights
    batch_sizes: np.ndarray | None
    dropout: GateDropout  # masks on x and h (Keras' dropout); fields None where there are none
    zoneout: Zoneout | None = None  # keep fractions of h, (T, N, H) (broadcast views); None without
    reset_after: bool = True  # which candidate the forward computed (the module docstring)


def _recurrent_blocks(masks):
    """``(masks of the r, z rows, masks of the n rows)`` of :attr:`~.recurrence.GateDropout.recurrent`
    (K, N, H): K = 3 splits as 2 + 1, one shared mask (K = 1) serves both; None stays None."""
    if masks is None or len(masks) == 1:
        return masks, masks
    return masks[:2], masks[2:]


def gru_step(pre_input, h_prev, weight_hh, bias_hn=None, recurrent_masks=None, *, reset_after: bool = True):
    """One step. ``pre_input`` (N, 3H) is W_ih x_t + :func:`hoisted_bias`. ``recurrent_masks``
    (K, N, H): :attr:`~.recurrence.GateDropout.recurrent`, or None; each block of W_hh's rows
    meets its mask times what it meets without (h_{t-1}, or reset before for n: r ⊙ h_{t-1}).
    ``bias_hn``: b_hn reset after (None reset before: it is hoisted).

    Returns ``(h, step)`` with ``step`` the :class:`GRUStep` its backward needs.
    """
    hidden = h_prev.shape[-1]
    if reset_after:
        pre_hidden = gate_product(h_prev, weight_hh, recurrent_masks)  # W_hr h, W_hz h, W_hn h
    else:
        rz_masks, n_masks = _recurrent_blocks(recurrent_masks)
        pre_hidden = gate_product(h_prev, weight_hh[: 2 * hidden], rz_masks)  # W_hr h, W_hz h
    gates = np.empty(pre_input.shape, pre_hidden.dtype)
    sigmoid(pre_input[:, : 2 * hidden] + pre_hidden[:, : 2 * hidden], out=gates[:, : 2 * hidden])  # r, z
    r, z = gates[:, :hidden], gates[:, hidden : 2 * hidden]
    if reset_after:  # n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
        hidden_n = pre_hidden[:, 2 * hidden :]
        if bias_hn is not None:
            hidden_n += bias_hn
        n = tanh(pre_input[:, 2 * hidden :] + r * hidden_n, out=gates[:, 2 * hidden :])
        step = GRUStep(gates, hidden_n)
    else:  # n = tanh(W_in x + b_in + b_hn + W_hn (r ⊙ h))
        reset_hidden = r * h_prev
        n = pre_input[:, 2 * hidden :] + gate_product(reset_hidden, weight_hh[2 * hidden :], n_masks)
        n = tanh(n, out=gates[:, 2 * hidden :])
        step = GRUStep(gates, None, reset_hidden)
    h = n + z * (h_prev - n)  # (1 - z) ⊙ n + z ⊙ h_prev
    return h, step


def gru_step_backward(dh, h_prev, step: GRUStep, weight_hh, recurrent_masks=None, *, reset_after: bool = True):
    """Backward of :func:`gru_step` (the same ``reset_after``).

    ``dh`` (N, H) is the gradient reaching h_t. Returns ``(dpre_input, dpre_hidden, dh_prev)``:
    the gradients of the input's pre-activations (W_ih x + b_ih, (N, 3H)) and of the hidden
    state's (W_hh h_prev + b_hh reset after, (N, 3H); reset before the same array as
    ``dpre_input``, the n rows being those of W_hn (r ⊙ h_prev)), from which the caller forms the
    weight gradients, and the gradient of h_prev.
    """
    r, z, n = np.split(step.gates, 3, axis=1)
    dn = dh * (1.0 - z)  # h = (1 - z) ⊙ n + z ⊙ h_prev
    dz = dh * (h_prev - n)
    dn_pre = dn * tanh_grad(n)
    dz_pre = dz * sigmoid_grad(z)
    if reset_after:  # n = tanh(a_n + r ⊙ hidden_n)
        dr_pre = dn_pre * step.hidden_n * sigmoid_grad(r)
        dpre_input = np.concatenate([dr_pre, dz_pre, dn_pre], axis=1)
        dpre_hidden = np.concatenate([dr_pre, dz_pre, dn_pre * r], axis=1)
        dh_prev = dh * z + gate_product_input_grad(dpre_hidden, weight_hh, recurrent_masks)
        return dpre_input, dpre_hidden, dh_prev
    # n = tanh(a_n + W_hn (r ⊙ h_prev))
    hidden = h_prev.shape[-1]
    rz_masks, n_masks = _recurrent_blocks(recurrent_masks)
    dreset_hidden = gate_product_input_grad(dn_pre, weight_hh[2 * hidden :], n_masks)  # d(r ⊙ h_prev)
    dr_pre = dreset_hidden * h_prev * sigmoid_grad(r)
    dpre_input = np.concatenate([dr_pre, dz_pre, dn_pre], axis=1)
    dh_prev = dh * z + dreset_hidden * r
    dh_prev += gate_product_input_grad(dpre_input[:, : 2 * hidden], weight_hh[: 2 * hidden], rz_masks)
    return dpre_input, dpre_input, dh_prev


def hoisted_bias(weights: GRUWeights, reset_after: bool = True):
    """b_ih + [b_hr, b_hz, 0] (reset_after=False: b_ih + b_hh): every bias that can join the input projection."""
    if weights.bias_ih is None:
        return None
    if not reset_after:
        return weights.bias_ih + weights.bias_hh
    hidden = weights.weight_hh.shape[1]
    bias = weights.bias_ih.copy()
    bias[: 2 * hidden] += weights.bias_hh[: 2 * hidden]
    return bias


def gru_forward(
    x,
    h0,
    weights: GRUWeights,
    keep_cache: bool = True,
    batch_sizes=None,
    dropout: GateDropout | None = None,
    *,
    zoneout: Zoneout | None = None,
    reset_after: bool = True,
):
    """Run one direction over a whole sequence (see the module docstring for shapes).

    ``dropout``, optional: per-gate masks on x and h (:class:`~.recurrence.GateDropout`).
    ``zoneout``, optional: :class:`~.recurrence.Zoneout` keep fractions of h (T, N, H) (``c``
    None), as :func:`~.lstm.lstm_forward`'s: ``h_t ← keep ⊙ h_{t-1} + (1 - keep) ⊙ h_t``.
    ``reset_after``: which candidate (the module docstring); False is Keras' ``GRU(reset_after=False)``,
    with W_hn's recurrent dropout mask on h_{t-1} before r scales it, as Keras' cell does.
    Returns ``(output, h_T, cache)``; ``cache`` is None when ``keep_cache`` is False.
    """
    steps, batch, features = x.shape
    if not isinstance(reset_after, (bool, np.bool_)):
        raise TypeError(f"gru_forward: reset_after must be True or False, got {reset_after!r}")
    reset_after = bool(reset_after)
    dropout = check_gate_dropout("gru_forward", dropout, 3, batch, features, h0.shape[-1])
    zoneout = check_zoneout("gru_forward", zoneout, steps, batch, (h0.shape[-1],), x.dtype)
    pre_input = input_projection(x, weights.weight_ih, hoisted_bias(weights, reset_after), dropout.input)
    hidden = h0.shape[-1]
    bias_hn = None if weights.bias_hh is None or not reset_after else weights.bias_hh[2 * hidden :]

    def step(z_t, h_prev):
        return gru_step(z_t, h_prev, weights.weight_hh, bias_hn, dropout.recurrent, reset_after=reset_after)

    output, (h_last,), history, saved = scan(step, pre_input, (h0,), batch_sizes, keep_cache, zoneout)
    cache = (
        None if history is None else GRUCache(x, *history, saved, weights, batch_sizes, dropout, zoneout, reset_after)
    )
    return output, h_last, cache


def gru_backward(doutput, dh_last, cache: GRUCache):
    """Backpropagation through time for :func:`gru_forward` (with the forward's ``reset_after``).

    Returns ``(dx, dh0, dweights)`` with ``dweights`` a :class:`GRUWeights` of gradients.
    """
    weights, dropout, reset_after = cache.weights, cache.dropout, cache.reset_after

    def step_backward(t, active, dh):
        step = GRUStep(*(None if part is None else part[t, :active] for part in cache.steps))
        dpre_input, dpre_hidden, dh_prev = gru_step_backward(
            dh, cache.h[t, :active], step, weights.weight_hh, dropout.recurrent, reset_after=reset_after
        )
        return ((dpre_input, dpre_hidden) if reset_after else (dpre_input,)), (dh_prev,)

    (dpre_input, *dpre_hidden), (dh0,) = scan_backward(
        step_backward, doutput, (dh_last,), cache.batch_sizes, cache.zoneout
    )
    if reset_after:
        dx, *dprojections = projection_backward(cache.x, cache.h[:-1], dpre_input, dpre_hidden[0], weights, dropout)
    else:
        dx, *dprojections = _reset_before_projection_backward(cache, dpre_input)
    return dx, dh0, GRUWeights(*dprojections)


def _reset_before_projection_backward(cache: GRUCache, dpre):
    """:func:`~.recurrence.projection_backward` of a reset_after=False forward, whose pre-activations'
    gradient ``dpre`` (T, N, 3H) is both maps': W_hh's r, z rows meet h_{t-1} and its n rows
    r ⊙ h_{t-1} (each one product over all steps), and b_hh, hoisted, has b_ih's gradient."""
    hidden = cache.h.shape[-1]
    rz_masks, n_masks = _recurrent_blocks(cache.dropout.recurrent)
    rz_dropout = cache.dropout._replace(recurrent=rz_masks)
    dx, dweight_ih, dweight_rz, dbias_ih, _ = projection_backward(
        cache.x, cache.h[:-1], dpre, dpre[..., : 2 * hidden], cache.weights, rz_dropout
    )
    dweight_n = gate_product_weight_grad(dpre[..., 2 * hidden :], cache.steps.reset_hidden, n_masks)
    dbias_hh = None if dbias_ih is None else dbias_ih.copy()
    return dx, dweight_ih, np.concatenate([dweight_rz, dweight_n]), dbias_ih, dbias_hh
