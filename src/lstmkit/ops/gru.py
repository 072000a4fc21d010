"""The GRU equations, once: one time step, and one direction over a whole sequence.

PyTorch's formulation and gate order (r, z, n)::

    r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)           reset gate
    z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)           update gate
    n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t-1} + b_hn))  candidate
    h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}

``b_hn`` sits inside ``r_t ⊙ (...)``, so it cannot join the input's share of the
pre-activations: the hoisted projection is ``W_ih x_t + b_ih + [b_hr, b_hz, 0]``, and the step
adds ``W_hh h_{t-1} + [0, 0, b_hn]``.

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

The weight gradients are one product over all steps at the end; the input's and the hidden
state's pre-activations get different gradients (the n rows of the latter are scaled by r).
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
    """What one forward step keeps for its backward."""

    gates: np.ndarray  # (N, 3H) activated r, z, n
    hidden_n: np.ndarray  # (N, H) W_hn h_{t-1} + b_hn, the term that r scales


class GRUCache(NamedTuple):
    """What a whole-sequence forward keeps for its backward."""

    x: np.ndarray  # (T, N, I)
    h: np.ndarray  # (T+1, N, H)  h[0] = h0
    steps: GRUStep  # every step's GRUStep, each field stacked over time: (T, N, ·)
    weights: GRUWeights
    batch_sizes: np.ndarray | None
    dropout: GateDropout  # masks on x and h (Keras' dropout); fields None where there are none
    zoneout: Zoneout | None = None  # keep fractions of h, (T, N, H) (broadcast views); None without


def gru_step(pre_input, h_prev, weight_hh, bias_hn=None, recurrent_masks=None):
    """One step. ``pre_input`` (N, 3H) is W_ih x_t + b_ih + [b_hr, b_hz, 0]. ``recurrent_masks``
    (K, N, H): :attr:`~.recurrence.GateDropout.recurrent`, or None.

    Returns ``(h, step)`` with ``step`` the :class:`GRUStep` its backward needs.
    """
    hidden = h_prev.shape[-1]
    pre_hidden = gate_product(h_prev, weight_hh, recurrent_masks)  # W_hr h, W_hz h, W_hn h
    gates = np.empty_like(pre_hidden)
    sigmoid(pre_input[:, : 2 * hidden] + pre_hidden[:, : 2 * hidden], out=gates[:, : 2 * hidden])  # r, z
    r, z = gates[:, :hidden], gates[:, hidden : 2 * hidden]
    hidden_n = pre_hidden[:, 2 * hidden :]
    if bias_hn is not None:
        hidden_n += bias_hn
    n = tanh(pre_input[:, 2 * hidden :] + r * hidden_n, out=gates[:, 2 * hidden :])
    h = n + z * (h_prev - n)  # (1 - z) ⊙ n + z ⊙ h_prev
    return h, GRUStep(gates, hidden_n)


def gru_step_backward(dh, h_prev, step: GRUStep, weight_hh, recurrent_masks=None):
    """Backward of :func:`gru_step`.

    ``dh`` (N, H) is the gradient reaching h_t. Returns ``(dpre_input, dpre_hidden, dh_prev)``:
    the gradients of the input's pre-activations (W_ih x + b_ih, (N, 3H)) and of the hidden
    state's (W_hh h_prev + b_hh, (N, 3H)), from which the caller forms the weight gradients,
    and the gradient of h_prev.
    """
    r, z, n = np.split(step.gates, 3, axis=1)
    dn = dh * (1.0 - z)  # h = (1 - z) ⊙ n + z ⊙ h_prev
    dz = dh * (h_prev - n)
    dn_pre = dn * tanh_grad(n)  # n = tanh(a_n + r ⊙ hidden_n)
    dr_pre = dn_pre * step.hidden_n * sigmoid_grad(r)
    dz_pre = dz * sigmoid_grad(z)
    dpre_input = np.concatenate([dr_pre, dz_pre, dn_pre], axis=1)
    dpre_hidden = np.concatenate([dr_pre, dz_pre, dn_pre * r], axis=1)
    dh_prev = dh * z + gate_product_input_grad(dpre_hidden, weight_hh, recurrent_masks)
    return dpre_input, dpre_hidden, dh_prev


def hoisted_bias(weights: GRUWeights):
    """b_ih + [b_hr, b_hz, 0]: every bias that can join the input projection."""
    if weights.bias_ih is None:
        return None
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
):
    """Run one direction over a whole sequence (see the module docstring for shapes).

    ``dropout``, optional: per-gate masks on x and h (:class:`~.recurrence.GateDropout`).
    ``zoneout``, optional: :class:`~.recurrence.Zoneout` keep fractions of h (T, N, H) (``c``
    None), as :func:`~.lstm.lstm_forward`'s: ``h_t ← keep ⊙ h_{t-1} + (1 - keep) ⊙ h_t``.
    Returns ``(output, h_T, cache)``; ``cache`` is None when ``keep_cache`` is False.
    """
    steps, batch, features = x.shape
    dropout = check_gate_dropout("gru_forward", dropout, 3, batch, features, h0.shape[-1])
    zoneout = check_zoneout("gru_forward", zoneout, steps, batch, (h0.shape[-1],), x.dtype)
    pre_input = input_projection(x, weights.weight_ih, hoisted_bias(weights), dropout.input)
    hidden = h0.shape[-1]
    bias_hn = None if weights.bias_hh is None else weights.bias_hh[2 * hidden :]

    def step(z_t, h_prev):
        return gru_step(z_t, h_prev, weights.weight_hh, bias_hn, dropout.recurrent)

    output, (h_last,), history, saved = scan(step, pre_input, (h0,), batch_sizes, keep_cache, zoneout)
    cache = None if history is None else GRUCache(x, *history, saved, weights, batch_sizes, dropout, zoneout)
    return output, h_last, cache


def gru_backward(doutput, dh_last, cache: GRUCache):
    """Backpropagation through time for :func:`gru_forward`.

    Returns ``(dx, dh0, dweights)`` with ``dweights`` a :class:`GRUWeights` of gradients.
    """
    weights, dropout = cache.weights, cache.dropout

    def step_backward(t, active, dh):
        step = GRUStep(*(part[t, :active] for part in cache.steps))
        dpre_input, dpre_hidden, dh_prev = gru_step_backward(
            dh, cache.h[t, :active], step, weights.weight_hh, dropout.recurrent
        )
        return (dpre_input, dpre_hidden), (dh_prev,)

    (dpre_input, dpre_hidden), (dh0,) = scan_backward(
        step_backward, doutput, (dh_last,), cache.batch_sizes, cache.zoneout
    )
    dx, *dprojections = projection_backward(cache.x, cache.h[:-1], dpre_input, dpre_hidden, weights, dropout)
    return dx, dh0, GRUWeights(*dprojections)
