"""The fast path of :mod:`.lstm`: the same two functions, fused and written in place.

:func:`lstm_forward_fused` and :func:`lstm_backward_fused` take and return exactly what
:func:`~.lstm.lstm_forward` and :func:`~.lstm.lstm_backward` do (tests prove them equal on
random inputs); the reference stays what people read. What is different:

- The gate rows are reordered once per call from PyTorch's (i, f, g, o) to (i, f, o, g), so the
  three sigmoid gates are one contiguous block: one sigmoid and one tanh per step instead of four
  calls on four slices. Gradients are reordered back.
- σ(z) is computed as ½·tanh(½z) + ½ in place (four ufunc passes, no temporary, no overflow).
- Every per-step buffer is preallocated for the whole sequence; each step writes its gates,
  cell state, tanh(c) and h into its slot with ``out=`` and in-place operators, so the loop
  allocates nothing but the recurrent matrix product.

Variable lengths (``batch_sizes``), projections (``weight_hr``) and per-gate dropout masks go
to the reference op.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .lstm import LSTMCache, LSTMWeights, lstm_backward, lstm_forward
from .recurrence import input_projection


class FusedLSTMCache(NamedTuple):
    x: np.ndarray  # (T, N, I)
    h: np.ndarray  # (T+1, N, H)  h[0] = h0
    c: np.ndarray  # (T+1, N, H)  c[0] = c0
    gates: np.ndarray  # (T, N, 4H) activated, in the fused order i, f, o, g
    tanh_c: np.ndarray  # (T, N, H)
    weights: LSTMWeights  # PyTorch's order
    order: np.ndarray  # (4H,) row permutation from PyTorch's order to the fused one


def fused_order(hidden: int) -> np.ndarray:
    """Row indices that take (i, f, g, o) blocks to (i, f, o, g)."""
    blocks = np.arange(4 * hidden).reshape(4, hidden)
    return blocks[[0, 1, 3, 2]].ravel()


def _sigmoid_in_place(z: np.ndarray) -> None:
    z *= 0.5
    np.tanh(z, out=z)
    z *= 0.5
    z += 0.5


def lstm_forward_fused(x, h0, c0, weights: LSTMWeights, keep_cache: bool = True, batch_sizes=None, dropout=None):
    """Same contract as :func:`~.lstm.lstm_forward`."""
    if batch_sizes is not None or weights.weight_hr is not None or dropout is not None:
        return lstm_forward(x, h0, c0, weights, keep_cache, batch_sizes, dropout)
    steps, batch, _ = x.shape
    hidden = c0.shape[-1]
    order = fused_order(hidden)
    bias = None if weights.bias_ih is None else (weights.bias_ih + weights.bias_hh)[order]
    gates = input_projection(x, weights.weight_ih[order], bias)  # (T, N, 4H), activated in place below
    recurrent_t = np.ascontiguousarray(weights.weight_hh[order].T)  # (H, 4H)
    depth = steps + 1 if keep_cache else 2
    h = np.empty((steps + 1, batch, hidden), dtype=x.dtype)
    c = np.empty((depth, batch, hidden), dtype=x.dtype)
    tanh_c = np.empty((steps if keep_cache else 1, batch, hidden), dtype=x.dtype)
    recurrent = np.empty((batch, 4 * hidden), dtype=x.dtype)
    product = np.empty((batch, hidden), dtype=x.dtype)
    h[0], c[0] = h0, c0
    for t in range(steps):
        z = gates[t]
        np.matmul(h[t], recurrent_t, out=recurrent)
        z += recurrent
        _sigmoid_in_place(z[:, : 3 * hidden])
        np.tanh(z[:, 3 * hidden :], out=z[:, 3 * hidden :])
        i, f, o, g = z[:, :hidden], z[:, hidden : 2 * hidden], z[:, 2 * hidden : 3 * hidden], z[:, 3 * hidden :]
        c_prev, c_next = c[t % depth], c[(t + 1) % depth]
        np.multiply(f, c_prev, out=c_next)
        np.multiply(i, g, out=product)
        c_next += product
        tanh_t = tanh_c[t if keep_cache else 0]
        np.tanh(c_next, out=tanh_t)
        np.multiply(o, tanh_t, out=h[t + 1])
    c_last = c[steps % depth].copy()
    if not keep_cache:
        return h[1:], h[-1].copy(), c_last, None
    return h[1:], h[-1].copy(), c_last, FusedLSTMCache(x, h, c, gates, tanh_c, weights, order)


def lstm_backward_fused(doutput, dh_last, dc_last, cache):
    """Same contract as :func:`~.lstm.lstm_backward`."""
    if isinstance(cache, LSTMCache):
        return lstm_backward(doutput, dh_last, dc_last, cache)
    x, h, c, gates, tanh_c, weights, order = cache
    steps, batch, features = x.shape
    hidden = h.shape[-1]
    recurrent = weights.weight_hh[order]  # (4H, H)
    dz = np.empty_like(gates)
    dh = np.array(dh_last, dtype=x.dtype, copy=True)
    dc = np.array(dc_last, dtype=x.dtype, copy=True)
    scratch = np.empty((batch, hidden), dtype=x.dtype)
    scratch3 = np.empty((batch, 3 * hidden), dtype=x.dtype)
    for t in reversed(range(steps)):
        dh += doutput[t]
        z, tanh_t, dz_t = gates[t], tanh_c[t], dz[t]
        i, f, o, g = z[:, :hidden], z[:, hidden : 2 * hidden], z[:, 2 * hidden : 3 * hidden], z[:, 3 * hidden :]
        di, df, do, dg = (dz_t[:, k * hidden : (k + 1) * hidden] for k in range(4))
        np.multiply(dh, tanh_t, out=do)  # h = o ⊙ tanh(c)
        np.multiply(tanh_t, tanh_t, out=scratch)  # dc += dh ⊙ o ⊙ (1 - tanh²c)
        np.subtract(1.0, scratch, out=scratch)
        scratch *= o
        scratch *= dh
        dc += scratch
        np.multiply(dc, g, out=di)  # c = f ⊙ c_prev + i ⊙ g
        np.multiply(dc, c[t], out=df)
        np.multiply(dc, i, out=dg)
        np.subtract(1.0, z[:, : 3 * hidden], out=scratch3)  # σ' = σ (1 - σ) for i, f, o at once
        scratch3 *= z[:, : 3 * hidden]
        dz_t[:, : 3 * hidden] *= scratch3
        np.multiply(g, g, out=scratch)  # tanh' = 1 - g²
        np.subtract(1.0, scratch, out=scratch)
        dg *= scratch
        dc *= f
        np.matmul(dz_t, recurrent, out=dh)  # z = ... + W_hh h_prev
    dz_flat = dz.reshape(steps * batch, 4 * hidden)
    dx = (dz_flat @ weights.weight_ih[order]).reshape(x.shape)
    restore = np.argsort(order)  # fused rows back to PyTorch's order
    dweight_ih = (dz_flat.T @ x.reshape(steps * batch, features))[restore]
    dweight_hh = (dz_flat.T @ h[:-1].reshape(steps * batch, hidden))[restore]
    dbias = None if weights.bias_ih is None else dz_flat.sum(axis=0)[restore]
    gradients = LSTMWeights(dweight_ih, dweight_hh, dbias, None if dbias is None else dbias.copy())
    return dx, dh, dc, gradients
