"""The Elman RNN equations, once: one time step, and one direction over a whole sequence.

PyTorch's formulation, with ``act`` tanh (default) or relu::

    h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)

Shapes (T steps, N batch, I input features, H hidden units):

    ==============  ===========  ===========================================
    name            shape        meaning
    ==============  ===========  ===========================================
    x               (T, N, I)    input sequence, time-major
    h0, h_T         (N, H)       hidden state before the first / after the last step
    weight_ih       (H, I)
    weight_hh       (H, H)
    bias_ih/_hh     (H,)         or None
    output          (T, N, H)    h_1 ... h_T
    batch_sizes     (T,)         optional: sequences of different lengths, sorted
    ==============  ===========  ===========================================

The derivative of the activation is taken from its output h_t (``1 - h²`` or ``h > 0``), so
the cache holds nothing but the states.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .activations import relu, relu_grad, tanh, tanh_grad
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

ACTIVATIONS = {"tanh": (tanh, tanh_grad), "relu": (relu, relu_grad)}


class RNNWeights(NamedTuple):
    """One layer-direction's parameters in PyTorch's layout (also used for their gradients)."""

    weight_ih: np.ndarray
    weight_hh: np.ndarray
    bias_ih: np.ndarray | None = None
    bias_hh: np.ndarray | None = None


class RNNStep(NamedTuple):
    """What one forward step keeps for its backward beyond the state: nothing, but with zoneout
    the step's own h_t (the state is then a mix of it and h_{t-1})."""

    h: np.ndarray | None = None  # (N, H) act(...) before zoneout; None without zoneout


class RNNCache(NamedTuple):
    """What a whole-sequence forward keeps for its backward."""

    x: np.ndarray  # (T, N, I)
    h: np.ndarray  # (T+1, N, H)  h[0] = h0
    nonlinearity: str
    weights: RNNWeights
    batch_sizes: np.ndarray | None
    dropout: GateDropout  # masks on x and h (Keras' dropout); fields None where there are none
    zoneout: Zoneout | None = None  # keep fractions of h, (T, N, H) (broadcast views); None without
    steps: RNNStep | None = None  # with zoneout: every step's RNNStep, (T, N, H); else None


def rnn_step(pre_input, h_prev, weight_hh, nonlinearity="tanh", recurrent_masks=None):
    """One step. ``pre_input`` (N, H) is W_ih x_t + b_ih + b_hh; ``recurrent_masks`` (1, N, H)
    or None (:attr:`~.recurrence.GateDropout.recurrent`). Returns ``(h, RNNStep())``."""
    activation, _ = ACTIVATIONS[nonlinearity]
    h = activation(pre_input + gate_product(h_prev, weight_hh, recurrent_masks))
    return h, RNNStep()


def rnn_step_backward(dh, h, weight_hh, nonlinearity="tanh", recurrent_masks=None):
    """Backward of :func:`rnn_step` given its output ``h``: returns ``(dz, dh_prev)``."""
    _, derivative = ACTIVATIONS[nonlinearity]
    dz = dh * derivative(h)
    return dz, gate_product_input_grad(dz, weight_hh, recurrent_masks)


def rnn_forward(
    x,
    h0,
    weights: RNNWeights,
    nonlinearity="tanh",
    keep_cache: bool = True,
    batch_sizes=None,
    dropout: GateDropout | None = None,
    *,
    zoneout: Zoneout | None = None,
):
    """Run one direction over a whole sequence (see the module docstring for shapes).

    ``dropout``, optional: masks on x and h (:class:`~.recurrence.GateDropout`, K = 1).
    ``zoneout``, optional: :class:`~.recurrence.Zoneout` keep fractions of h (T, N, H) (``c``
    None), as :func:`~.lstm.lstm_forward`'s: ``h_t ← keep ⊙ h_{t-1} + (1 - keep) ⊙ h_t``.
    Returns ``(output, h_T, cache)``; ``cache`` is None when ``keep_cache`` is False.
    """
    steps, batch, features = x.shape
    dropout = check_gate_dropout("rnn_forward", dropout, 1, batch, features, h0.shape[-1])
    zoneout = check_zoneout("rnn_forward", zoneout, steps, batch, (h0.shape[-1],), x.dtype)
    bias = None if weights.bias_ih is None else weights.bias_ih + weights.bias_hh
    pre_input = input_projection(x, weights.weight_ih, bias, dropout.input)

    def step(z_t, h_prev):
        h, saved = rnn_step(z_t, h_prev, weights.weight_hh, nonlinearity, dropout.recurrent)
        return h, (saved if zoneout is None else RNNStep(h))  # zoned, the state is no longer act(...)

    output, (h_last,), history, saved = scan(step, pre_input, (h0,), batch_sizes, keep_cache, zoneout)
    if history is None:
        return output, h_last, None
    steps_kept = None if zoneout is None else saved
    return output, h_last, RNNCache(x, *history, nonlinearity, weights, batch_sizes, dropout, zoneout, steps_kept)


def rnn_backward(doutput, dh_last, cache: RNNCache):
    """Backpropagation through time for :func:`rnn_forward`.

    Returns ``(dx, dh0, dweights)`` with ``dweights`` an :class:`RNNWeights` of gradients.
    """
    weights, dropout = cache.weights, cache.dropout

    outputs = cache.h[1:] if cache.steps is None else cache.steps.h  # act(...) of every step

    def step_backward(t, active, dh):
        dz, dh_prev = rnn_step_backward(
            dh, outputs[t, :active], weights.weight_hh, cache.nonlinearity, dropout.recurrent
        )
        return (dz,), (dh_prev,)

    (dz,), (dh0,) = scan_backward(step_backward, doutput, (dh_last,), cache.batch_sizes, cache.zoneout)
    dx, *dprojections = projection_backward(cache.x, cache.h[:-1], dz, dz, weights, dropout)
    return dx, dh0, RNNWeights(*dprojections)
