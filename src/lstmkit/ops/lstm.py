"""The LSTM equations, once: one time step, and one direction over a whole sequence.

PyTorch's formulation and gate order (i, f, g, o)::

    z_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh          (4H pre-activations)
    i_t = σ(z_t[0:H])        input gate
    f_t = σ(z_t[H:2H])       forget gate
    g_t = tanh(z_t[2H:3H])   cell candidate
    o_t = σ(z_t[3H:4H])      output gate
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
    m_t = o_t ⊙ tanh(c_t)
    h_t = W_hr m_t           with a projection (proj_size P > 0), else h_t = m_t

Shapes (T steps, N batch, I input features, H hidden units, R = P or H):

    ==============  ===========  ===========================================
    name            shape        meaning
    ==============  ===========  ===========================================
    x               (T, N, I)    input sequence, time-major
    h0, h_T         (N, R)       hidden state before the first / after the last step
    c0, c_T         (N, H)       cell state before the first / after the last step
    weight_ih       (4H, I)      rows in gate order i, f, g, o
    weight_hh       (4H, R)
    bias_ih/_hh     (4H,)        or None
    weight_hr       (P, H)       or None
    output          (T, N, R)    h_1 ... h_T
    batch_sizes     (T,)         optional: sequences of different lengths, sorted
    ==============  ===========  ===========================================

The input's share of z (``W_ih x_t + b``) is one matrix product over all steps before the
loop; only ``W_hh h_{t-1}`` is sequential. The backward pass walks the forward's lines in
reverse, and the weight gradients are one product over all steps at the end. The time loop
itself (and what happens past the end of a shorter sequence) is :mod:`.recurrence`'s.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .activations import sigmoid, sigmoid_grad, tanh, tanh_grad
from .recurrence import (
    GateDropout,
    check_gate_dropout,
    gate_product,
    gate_product_input_grad,
    input_projection,
    projection_backward,
    scan,
    scan_backward,
)


class LSTMWeights(NamedTuple):
    """One layer-direction's parameters in PyTorch's layout (also used for their gradients)."""

    weight_ih: np.ndarray
    weight_hh: np.ndarray
    bias_ih: np.ndarray | None = None
    bias_hh: np.ndarray | None = None
    weight_hr: np.ndarray | None = None


class LSTMStep(NamedTuple):
    """What one forward step keeps for its backward."""

    gates: np.ndarray  # (N, 4H) activated i, f, g, o
    tanh_c: np.ndarray  # (N, H)
    m: np.ndarray  # (N, H) o ⊙ tanh(c): the hidden state before projection


class LSTMCache(NamedTuple):
    """What a whole-sequence forward keeps for its backward."""

    x: np.ndarray  # (T, N, I)
    h: np.ndarray  # (T+1, N, R)  h[0] = h0
    c: np.ndarray  # (T+1, N, H)  c[0] = c0
    steps: LSTMStep  # every step's LSTMStep, each field stacked over time: (T, N, ·)
    weights: LSTMWeights
    batch_sizes: np.ndarray | None  # (T,) active sequences per step, None when all run to the end
    dropout: GateDropout  # masks on x and h (Keras' dropout); fields None where there are none


def lstm_step(pre_input, h_prev, c_prev, weight_hh, weight_hr=None, recurrent_masks=None):
    """One step. ``pre_input`` is the input's share of the pre-activations, W_ih x_t + b (N, 4H).
    ``recurrent_masks`` (K, N, R): :attr:`~.recurrence.GateDropout.recurrent`, or None.

    Returns ``(h, c, step)`` with ``step`` the :class:`LSTMStep` its backward needs.
    """
    hidden = c_prev.shape[-1]
    z = pre_input + gate_product(h_prev, weight_hh, recurrent_masks)
    gates = np.empty_like(z)
    sigmoid(z[:, : 2 * hidden], out=gates[:, : 2 * hidden])  # i, f
    tanh(z[:, 2 * hidden : 3 * hidden], out=gates[:, 2 * hidden : 3 * hidden])  # g
    sigmoid(z[:, 3 * hidden :], out=gates[:, 3 * hidden :])  # o
    i, f, g, o = np.split(gates, 4, axis=1)
    c = f * c_prev + i * g
    tanh_c = tanh(c)
    m = o * tanh_c
    h = m if weight_hr is None else m @ weight_hr.T
    return h, c, LSTMStep(gates, tanh_c, m)


def lstm_step_backward(dh, dc, c_prev, step: LSTMStep, weight_hh, weight_hr=None, recurrent_masks=None):
    """Backward of :func:`lstm_step`.

    ``dh`` (N, R) and ``dc`` (N, H) are the gradients reaching h_t and c_t. Returns
    ``(dz, dh_prev, dc_prev)``: dz (N, 4H) is the gradient of the pre-activations, from which
    the caller forms the weight gradients (dW_ih = dzᵀ x, dW_hh = dzᵀ h_prev, db = Σ dz).
    """
    i, f, g, o = np.split(step.gates, 4, axis=1)
    dm = dh if weight_hr is None else dh @ weight_hr  # h = W_hr m
    do = dm * step.tanh_c  # m = o ⊙ tanh(c)
    dc = dc + dm * o * tanh_grad(step.tanh_c)
    di = dc * g  # c = f ⊙ c_prev + i ⊙ g
    df = dc * c_prev
    dg = dc * i
    dc_prev = dc * f
    dz = np.concatenate([di * sigmoid_grad(i), df * sigmoid_grad(f), dg * tanh_grad(g), do * sigmoid_grad(o)], axis=1)
    dh_prev = gate_product_input_grad(dz, weight_hh, recurrent_masks)  # z = ... + W_hh h_prev
    return dz, dh_prev, dc_prev


def lstm_forward(
    x, h0, c0, weights: LSTMWeights, keep_cache: bool = True, batch_sizes=None, dropout: GateDropout | None = None
):
    """Run one direction over a whole sequence (see the module docstring for shapes).

    ``batch_sizes`` (T,), optional: sequences sorted by decreasing length, of which the first
    ``batch_sizes[t]`` are running at step t (see :mod:`lstmkit.ops.recurrence`).
    ``dropout``, optional: per-gate masks on x and h (:class:`~.recurrence.GateDropout`).
    Returns ``(output, h_T, c_T, cache)``; ``cache`` is None when ``keep_cache`` is False.
    """
    dropout = check_gate_dropout("lstm_forward", dropout, 4, x.shape[1], x.shape[2], h0.shape[-1])
    bias = None if weights.bias_ih is None else weights.bias_ih + weights.bias_hh
    pre_input = input_projection(x, weights.weight_ih, bias, dropout.input)

    def step(z_t, h_prev, c_prev):
        return lstm_step(z_t, h_prev, c_prev, weights.weight_hh, weights.weight_hr, dropout.recurrent)

    output, (h_last, c_last), history, saved = scan(step, pre_input, (h0, c0), batch_sizes, keep_cache)
    cache = None if history is None else LSTMCache(x, *history, saved, weights, batch_sizes, dropout)
    return output, h_last, c_last, cache


def lstm_backward(doutput, dh_last, dc_last, cache: LSTMCache):
    """Backpropagation through time for :func:`lstm_forward`.

    ``doutput`` (T, N, R) is the gradient of the output, ``dh_last`` (N, R) and ``dc_last``
    (N, H) those of h_T and c_T. Returns ``(dx, dh0, dc0, dweights)`` with ``dweights`` an
    :class:`LSTMWeights` of gradients (biases and weight_hr None where the layer has none).
    """
    weights, dropout = cache.weights, cache.dropout

    def step_backward(t, active, dh, dc):
        step = LSTMStep(*(part[t, :active] for part in cache.steps))
        dz, dh_prev, dc_prev = lstm_step_backward(
            dh, dc, cache.c[t, :active], step, weights.weight_hh, weights.weight_hr, dropout.recurrent
        )
        keep = (dz,) if weights.weight_hr is None else (dz, dh)  # dh: the gradient reaching h_t, for dW_hr
        return keep, (dh_prev, dc_prev)

    (dz, *dh_steps), (dh0, dc0) = scan_backward(step_backward, doutput, (dh_last, dc_last), cache.batch_sizes)
    dx, *dprojections = projection_backward(cache.x, cache.h[:-1], dz, dz, weights, dropout)
    dweight_hr = None
    if weights.weight_hr is not None:
        dh_steps, m = dh_steps[0], cache.steps.m
        dweight_hr = dh_steps.reshape(-1, dh_steps.shape[-1]).T @ m.reshape(-1, m.shape[-1])
    return dx, dh0, dc0, LSTMWeights(*dprojections, dweight_hr)
