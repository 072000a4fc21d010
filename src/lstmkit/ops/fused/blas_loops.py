"""A large layer's time loop in Python, one BLAS product a step, in two layouts.

A layer above the plan's small-layer limit (:mod:`.plan`) calls BLAS for the recurrent product
from a Python loop, where the call's microseconds no longer matter, and a compiled step for the
cell (:mod:`.kernels`). Training keeps states batch first, (T+1, N, H).

Inference keeps nothing for backward, so its states are stored (H, N), batch last: the per-step
product is W_hh h_tᵀ, (G, H) x (H, N), on W_hh as stored, which OpenBLAS computes faster than
h_t W_hhᵀ at these shapes; the bias rides in it as a last column of W_hh against a row of ones
under h_tᵀ. Each step's gates and states, flattened to one row of G·N or H·N entries (gate k of
unit j for batch row n at k·H·N + j·N + n), go through the same compiled cell as the batch-first
loop. The input projection costs more (a product per step, not one for all) and the output a
transposing copy. Layer inference batch last over batch first, on a 2-core AVX-512 machine
(``benchmarks/ab.py batch-last`` measured it while both existed): 0.94-1.01 at T=28, N=64,
H=128; 0.93-1.02 at T=100, N=32, H=128; 0.99-1.04 at N=64, H=256; 0.94-0.95 at N=128, H=512;
0.87-0.96 at N=32, H=256; 0.55-0.56 at N=4, H=256.
"""

from __future__ import annotations

import numpy as np

from .compiled import compiled_kernels
from .memory import cache_empty, scratch, transposed


def projection_into(x, weight_ih, out):
    """``out`` (T, N, G) = ``x W_ihᵀ`` for all steps, (T, N, I) x (G, I)ᵀ, one BLAS product."""
    np.matmul(x.reshape(-1, x.shape[-1]), weight_ih.T, out=out.reshape(-1, weight_ih.shape[0]))
    return out


def scratch_projection(x, weight_ih):
    """:func:`projection_into` this thread's :func:`scratch` buffer: valid until the caller returns
    (a large GRU's inference)."""
    return projection_into(x, weight_ih, scratch((x.shape[0], x.shape[1], weight_ih.shape[0]), x.dtype))


def cache_projection(x, weight_ih):
    """:func:`projection_into` an array of :func:`cache_empty`, kept for a backward."""
    return projection_into(x, weight_ih, cache_empty((x.shape[0], x.shape[1], weight_ih.shape[0]), x.dtype))


def recurrent_products(h: np.ndarray, weight_hh: np.ndarray):
    """The Python loop of a large layer: for t = 0 .. T-1, yields ``(t, h[t] W_hhᵀ)`` (N, G), one
    BLAS product into one reused buffer. ``h`` is (T+1, N, H); the caller's step must write
    h[t+1] before asking for the next product.

    The product runs on a C-contiguous copy of W_hhᵀ, not on the transposed view: layer inference
    with the copy took 0.84-0.98 of the time with the view at every size (H = 128 to 512, LSTM
    and GRU) on a 2-core AVX-512 machine, 0.91-1.04 on an AVX2 one (``benchmarks/ab.py copy``
    measured it while both existed)."""
    product = np.empty((h.shape[1], weight_hh.shape[0]), dtype=h.dtype)
    weight_hh_t = transposed(weight_hh)
    for t in range(h.shape[0] - 1):
        np.matmul(h[t], weight_hh_t, out=product)
        yield t, product


def batch_last_projection(x, weight_ih):
    """``W_ih x_tᵀ`` for every step: x (T, N, I), W_ih (G, I) -> (T, G, N), one BLAS product a step,
    into this thread's :func:`scratch` buffer: valid until the caller returns."""
    out = scratch((x.shape[0], weight_ih.shape[0], x.shape[1]), x.dtype)
    return np.matmul(weight_ih, x.transpose(0, 2, 1), out=out)


def batch_last_state(initial, steps: int, dtype, ones: bool = False):
    """A state kept batch last: (steps, H, N) of ``dtype``, [0] = ``initial`` (N, H) transposed;
    with ``ones``, (steps, H+1, N) whose last row is ones (the bias's partner in the product)."""
    batch, size = initial.shape
    state = np.empty((steps, size + ones, batch), dtype=dtype)
    state[0, :size] = initial.T
    if ones:
        state[:, size] = 1
    return state


def flat_steps(state, size: int):
    """(T, ≥S, B) -> (T, 1, S·B), a view of rows 0 .. S-1 of each step, flattened as the compiled
    steps take them."""
    return state[:, :size].reshape(state.shape[0], 1, size * state.shape[2])


def batch_last_products(h, weight_hh, bias):
    """:func:`recurrent_products` batch last: for t = 0 .. T-1 yields ``(t, W_hh h[t] + b)`` as one
    row (1, G·N). ``h`` is (T+1, H, N), or (T+1, H+1, N) with its row of ones where ``bias`` (G,)
    is given; the caller's step writes h[t+1] before asking for the next."""
    product = np.empty((weight_hh.shape[0], h.shape[2]), dtype=h.dtype)
    if bias is not None:
        weight_hh = np.concatenate([weight_hh, bias[:, None]], axis=1)
    weight_hh = np.ascontiguousarray(weight_hh, dtype=h.dtype)
    row = product.reshape(1, -1)
    for t in range(h.shape[0] - 1):
        np.matmul(weight_hh, h[t], out=product)
        yield t, row


def output_from_batch_last(state: np.ndarray, size: int) -> np.ndarray:
    """The output (T, N, H), C-contiguous, of states (T+1, ≥H, N) kept batch last, a step at a time
    by ``kernels.transpose_into`` (a third faster than NumPy's transposing copy here)."""
    kernels = compiled_kernels()
    if kernels is None or state.dtype not in (np.float32, np.float64):
        return np.ascontiguousarray(state[1:, :size].transpose(0, 2, 1))
    output = np.empty((state.shape[0] - 1, state.shape[2], size), dtype=state.dtype)
    for t in range(output.shape[0]):
        kernels.transpose_into(state[t + 1, :size], output[t])
    return output
