"""The GRU's compiled cell, steps and whole time loops (PyTorch's gate blocks r, z, n).

``z`` is the update gate, as in PyTorch's documentation; the pre-activations are ``pre`` and
their gradients ``dpre_*``.
"""

from __future__ import annotations

import numpy as np

from ..intrinsics.lanes import gru_cell_lanes
from .activations import ONE, plus_bias, sigmoid, tanh
from .jit import jit
from .pipeline import await_projection, chunk_span, start_pipeline
from .products import gradient_product, recurrent_product


# ---- GRU, PyTorch's gate blocks r, z, n ---------------------------------------------------
@jit
def gru_cell_forward(pre, recurrent, bias_hn, h_prev, hidden_n, h_next, bias=None):
    """One step: ``pre`` (N, 3H) the input's pre-activations (biases of r and z included, or given
    as ``bias`` (3H,), b_ih + [b_hr, b_hz, 0]), ``recurrent`` (N, 3H) = h_{t-1} W_hhᵀ. ``pre``
    becomes the activated gates; hidden_n (N, H) gets W_hn h_{t-1} + b_hn and h_next
    h_t = n + z ⊙ (h_{t-1} - n). float32 runs in vectors (:mod:`..intrinsics.lanes`); below (float64), one
    array written per loop, so that each vectorises: the candidate goes through h_next before its
    block of ``pre``."""
    if gru_cell_lanes(pre, recurrent, bias, bias_hn, h_prev, hidden_n, h_next):
        return
    rows, hidden = h_prev.shape
    for n in range(rows):
        for j in range(2 * hidden):  # r, z
            pre[n, j] = sigmoid(plus_bias(pre[n, j] + recurrent[n, j], bias, j))
        for j in range(hidden):
            hidden_n[n, j] = recurrent[n, 2 * hidden + j] + bias_hn[j]
        for j in range(hidden):  # n = tanh(a_n + r ⊙ hidden_n)
            h_next[n, j] = tanh(plus_bias(pre[n, 2 * hidden + j], bias, 2 * hidden + j) + pre[n, j] * hidden_n[n, j])
        for j in range(hidden):
            pre[n, 2 * hidden + j] = h_next[n, j]
        for j in range(hidden):  # h = n + z ⊙ (h_prev - n)
            candidate = h_next[n, j]
            h_next[n, j] = candidate + pre[n, hidden + j] * (h_prev[n, j] - candidate)


@jit
def gru_cell_backward(dh, h_prev, gates, hidden_n, dpre_input, dpre_hidden, dpre_hidden_n, dh_direct):
    """Backward of one step: writes the gradients of the input's pre-activations dpre_input and of
    the hidden state's dpre_hidden (N, 3H; they differ only in the n block, r ⊙ dn against dn),
    that n block again in dpre_hidden_n (N, H), and ``dh_direct`` = dh ⊙ z, h_{t-1}'s gradient not
    through W_hh. (One block of one array written per loop, so that each vectorises; in vectors of
    lanes, its eight outputs at once took 110-120 µs at N=128, H=512 against 57-63 µs for these loops,
    on a 2-core AVX-512 machine; equal at N=64, H=128.)"""
    rows, hidden = h_prev.shape
    for n in range(rows):
        for j in range(hidden):  # dn = dh ⊙ (1 - z), through tanh'
            z, candidate = gates[n, hidden + j], gates[n, 2 * hidden + j]
            dpre_input[n, 2 * hidden + j] = dh[n, j] * (ONE - z) * (ONE - candidate * candidate)
        for j in range(hidden):  # dr = dn ⊙ hidden_n, through σ'
            r, z, candidate = gates[n, j], gates[n, hidden + j], gates[n, 2 * hidden + j]
            dn = dh[n, j] * (ONE - z) * (ONE - candidate * candidate)
            dpre_input[n, j] = dn * hidden_n[n, j] * r * (ONE - r)
        for j in range(hidden):  # dz = dh ⊙ (h_prev - n), through σ'
            z = gates[n, hidden + j]
            dpre_input[n, hidden + j] = dh[n, j] * (h_prev[n, j] - gates[n, 2 * hidden + j]) * z * (ONE - z)
        for j in range(2 * hidden):
            dpre_hidden[n, j] = dpre_input[n, j]
        for j in range(hidden):  # the hidden state's n block: r ⊙ dn
            dpre_hidden_n[n, j] = dpre_input[n, 2 * hidden + j] * gates[n, j]
        for j in range(hidden):
            dpre_hidden[n, 2 * hidden + j] = dpre_hidden_n[n, j]
        for j in range(hidden):
            dh_direct[n, j] = dh[n, j] * gates[n, hidden + j]


@jit
def gru_step_forward(t, gates, recurrent, bias_hn, h, hidden_n, bias=None):
    """Step t of the time loop (arrays as in :func:`gru_loop_forward`), given ``recurrent`` (N, 3H)
    = h[t] W_hhᵀ, and ``bias`` (3H,) where gates do not hold it (see :func:`gru_cell_forward`)."""
    keep = hidden_n.shape[0] == gates.shape[0]
    gru_cell_forward(gates[t], recurrent, bias_hn, h[t], hidden_n[t if keep else 0], h[t + 1], bias)


@jit
def gru_step_backward(t, doutput, dh, h, gates, hidden_n, dpre_input, dpre_hidden, dpre_hidden_n, direct):
    """Step t of BPTT (arrays as in :func:`gru_loop_backward`; dpre_hidden (N, 3H) and direct (N, H)
    are scratch): adds doutput[t] into dh and writes what :func:`gru_cell_backward` writes. The
    caller then sets dh = dpre_hidden W_hh + direct."""
    dh += doutput[t]
    gru_cell_backward(dh, h[t], gates[t], hidden_n[t], dpre_input[t], dpre_hidden, dpre_hidden_n[t], direct)


@jit
def gru_loop_forward(gates, weight_hh, bias_hn, h, hidden_n, pipeline=None):
    """The whole time loop of a small GRU: gates (T, N, 3H) in (or filled by a ``pipeline`` as
    in :func:`lstm_loop_forward`), activated out; h (T+1, N, H) from h[0]; hidden_n (T, N, H),
    or (1, N, H) when nothing is kept for backward. W_hh is (3H, H), or (H, 3H) as in
    :func:`recurrent_product`."""
    start_pipeline(pipeline)
    recurrent = np.empty_like(gates[0])
    steps = gates.shape[0]
    span = chunk_span(steps, pipeline)
    for start in range(0, steps, span):
        await_projection(start, pipeline, gates)
        _gru_steps(start, min(start + span, steps), gates, weight_hh, bias_hn, h, hidden_n, recurrent)


@jit
def _gru_steps(start, stop, gates, weight_hh, bias_hn, h, hidden_n, recurrent):
    """Steps ``start`` .. ``stop - 1`` of :func:`gru_loop_forward`, their gates in place."""
    for t in range(start, stop):
        recurrent_product(h[t], weight_hh, recurrent)
        gru_step_forward(t, gates, recurrent, bias_hn, h, hidden_n)


@jit
def gru_loop_backward(doutput, dh, h, gates, hidden_n, weight_hh, dpre_input, dpre_hidden_n):
    """BPTT of :func:`gru_loop_forward`: dpre_input (T, N, 3H) and dpre_hidden_n (T, N, H) written
    (see :func:`gru_cell_backward`), dh (N, H) turned from h_T's gradient into h_0's.
    ``weight_hh`` is W_hhᵀ (H, 3H), C-contiguous, or W_hh as stored (3H, H), as in
    :func:`gradient_product`."""
    direct = np.empty_like(dh)
    dpre_hidden = np.empty_like(dpre_input[0])
    for t in range(gates.shape[0] - 1, -1, -1):
        gru_step_backward(t, doutput, dh, h, gates, hidden_n, dpre_input, dpre_hidden, dpre_hidden_n, direct)
        gradient_product(dpre_hidden, weight_hh, dh)
        dh += direct
