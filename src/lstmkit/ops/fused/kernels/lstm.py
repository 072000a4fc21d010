"""The LSTM's compiled cell, steps and whole time loops (PyTorch's gate blocks i, f, g, o).

Each step's gate nonlinearities and state update are one pass into arrays the caller allocated,
vectorised (float32 through :mod:`..intrinsics.lanes`); a small layer's whole time loop, the
recurrent product included, runs here without returning to Python.
"""

from __future__ import annotations

import numpy as np

from ..intrinsics.lanes import lstm_cell_backward_lanes, lstm_cell_lanes
from .activations import ONE, plus_bias, sigmoid, tanh
from .jit import jit
from .pipeline import await_projection, chunk_span, start_pipeline
from .products import gradient_product, recurrent_product


# ---- LSTM, PyTorch's gate blocks i, f, g, o -----------------------------------------------
@jit
def lstm_cell_forward(z, recurrent, c_prev, c_next, tanh_c, h_next, bias=None):
    """One step: ``z`` (N, 4H) the input's pre-activations, ``recurrent`` (N, 4H) = h_{t-1} W_hhᵀ,
    ``bias`` (4H,) where z does not hold it yet; ``z`` becomes the activated gates, and c_t,
    tanh(c_t), h_t = o ⊙ tanh(c_t) are written. float32 runs in vectors (:mod:`..intrinsics.lanes`); the
    loops below (float64) each start at 0 and write one array (LLVM vectorises those, not the others)."""
    if lstm_cell_lanes(z, recurrent, bias, c_prev, c_next, tanh_c, h_next):
        return
    rows, hidden = c_prev.shape
    g, o = 2 * hidden, 3 * hidden
    for n in range(rows):
        for j in range(2 * hidden):  # i, f
            z[n, j] = sigmoid(plus_bias(z[n, j] + recurrent[n, j], bias, j))
        for j in range(hidden):  # g
            z[n, g + j] = tanh(plus_bias(z[n, g + j] + recurrent[n, g + j], bias, g + j))
        for j in range(hidden):  # o
            z[n, o + j] = sigmoid(plus_bias(z[n, o + j] + recurrent[n, o + j], bias, o + j))
        for j in range(hidden):  # c = f ⊙ c_prev + i ⊙ g
            c_next[n, j] = z[n, hidden + j] * c_prev[n, j] + z[n, j] * z[n, g + j]
        for j in range(hidden):
            tanh_c[n, j] = tanh(c_next[n, j])
        for j in range(hidden):  # h = o ⊙ tanh(c)
            h_next[n, j] = z[n, o + j] * tanh_c[n, j]


@jit
def lstm_cell_backward(dh, dc, gates, c_prev, tanh_c, dz):
    """Backward of one step: writes dz (N, 4H), the pre-activations' gradient, and turns ``dc``
    (the gradient reaching c_t) into that of c_{t-1}, in place. ``dh`` reaches h_t.
    float32 runs in vectors (:mod:`..intrinsics.lanes`); below (float64), each loop writes one block of one
    array, so that it vectorises."""
    if lstm_cell_backward_lanes(dh, dc, gates, c_prev, tanh_c, dz):
        return
    rows, hidden = c_prev.shape
    for n in range(rows):
        for j in range(hidden):  # dc += dh ⊙ o ⊙ (1 - tanh²c), from h = o ⊙ tanh(c)
            t = tanh_c[n, j]
            dc[n, j] += dh[n, j] * gates[n, 3 * hidden + j] * (ONE - t * t)
        for j in range(hidden):  # di = dc ⊙ g, through σ'
            i = gates[n, j]
            dz[n, j] = dc[n, j] * gates[n, 2 * hidden + j] * i * (ONE - i)
        for j in range(hidden):  # df = dc ⊙ c_prev
            f = gates[n, hidden + j]
            dz[n, hidden + j] = dc[n, j] * c_prev[n, j] * f * (ONE - f)
        for j in range(hidden):  # dg = dc ⊙ i, through tanh'
            g = gates[n, 2 * hidden + j]
            dz[n, 2 * hidden + j] = dc[n, j] * gates[n, j] * (ONE - g * g)
        for j in range(hidden):  # do = dh ⊙ tanh(c)
            o = gates[n, 3 * hidden + j]
            dz[n, 3 * hidden + j] = dh[n, j] * tanh_c[n, j] * o * (ONE - o)
        for j in range(hidden):  # dc_prev = dc ⊙ f
            dc[n, j] *= gates[n, hidden + j]


@jit
def lstm_step_forward(t, gates, recurrent, h, c, tanh_c, bias=None):
    """Step t of the time loop (arrays as in :func:`lstm_loop_forward`), given ``recurrent`` (N, 4H)
    = h[t] W_hhᵀ, and ``bias`` (4H,) where gates do not hold it: the slicing happens here, so that
    a Python loop pays for one call of few arguments."""
    depth, keep = c.shape[0], tanh_c.shape[0] == gates.shape[0]
    lstm_cell_forward(gates[t], recurrent, c[t % depth], c[(t + 1) % depth], tanh_c[t if keep else 0], h[t + 1], bias)


@jit
def lstm_step_forward_on_product(t, projection, product, h, c, tanh_c):
    """Step t of a loop that keeps nothing (c and tanh_c hold 2 and 1 steps): as
    :func:`lstm_step_forward`, the gates activated in ``product``, h[t]'s recurrent product with
    the bias (laid out as each step of ``projection``, the input's), which is in cache, rather
    than in ``projection``, whose step t is then only read."""
    lstm_cell_forward(product, projection[t], c[t % 2], c[(t + 1) % 2], tanh_c[0], h[t + 1])


@jit
def lstm_step_backward(t, doutput, dh, dc, gates, c, tanh_c, dz):
    """Step t of BPTT (arrays as in :func:`lstm_loop_backward`): adds doutput[t] into dh, then
    writes dz[t] and turns dc into c_{t-1}'s gradient; dh's path through W_hh is the caller's."""
    dh += doutput[t]
    lstm_cell_backward(dh, dc, gates[t], c[t], tanh_c[t], dz[t])


@jit
def lstm_loop_forward(gates, weight_hh, h, c, tanh_c, pipeline=None):
    """The whole time loop of a small layer: gates (T, N, 4H) hold the input's pre-activations
    (or, with a ``pipeline``, receive them chunk by chunk) and become the activated gates;
    h (T+1, N, H) and c (T+1 or 2, N, H) start from h[0], c[0]; tanh_c is (T, N, H), or
    (1, N, H) when nothing is kept for backward. W_hh is (4H, H), or (H, 4H) as in
    :func:`recurrent_product`."""
    start_pipeline(pipeline)
    recurrent = np.empty_like(gates[0])
    steps = gates.shape[0]
    span = chunk_span(steps, pipeline)
    for start in range(0, steps, span):
        await_projection(start, pipeline, gates)
        _lstm_steps(start, min(start + span, steps), gates, weight_hh, h, c, tanh_c, recurrent)


@jit
def _lstm_steps(start, stop, gates, weight_hh, h, c, tanh_c, recurrent):
    """Steps ``start`` .. ``stop - 1`` of :func:`lstm_loop_forward`, their gates in place."""
    for t in range(start, stop):
        recurrent_product(h[t], weight_hh, recurrent)
        lstm_step_forward(t, gates, recurrent, h, c, tanh_c)


@jit
def lstm_loop_backward(doutput, dh, dc, gates, c, tanh_c, weight_hh, dz):
    """BPTT of :func:`lstm_loop_forward`: dz (T, N, 4H) written, dh and dc (N, H) turned from the
    final state's gradients into the initial state's. ``weight_hh`` is W_hhᵀ (H, 4H), C-contiguous,
    or W_hh as stored (4H, H), as in :func:`gradient_product`."""
    for t in range(gates.shape[0] - 1, -1, -1):
        lstm_step_backward(t, doutput, dh, dc, gates, c, tanh_c, dz)
        gradient_product(dz[t], weight_hh, dh)
