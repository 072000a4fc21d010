"""An LSTM on two cores, half of the batch rows each: forward and whole backward, compiled.

The batch rows are independent sequences, so the caller and the helper thread each run the whole
layer for half of them, input projection (register blocks on an aligned W_ihᵀ) and time loop: no
meeting per step and no BLAS call, so the layer never wakes OpenBLAS's worker thread, which
spins on the second core after a two-thread product. A training step's halves keep their caches,
then run their backward loops and weight gradients, each one product over all their steps' rows
in register blocks (dW_ihᵀ = xᵀ dz, dW_hhᵀ = h[:-1]ᵀ dz, dx = dz W_ih with W_ih padded to whole
vectors); the two halves' sums are added and transposed in register tiles at the end.

Why (``benchmarks/ab.py halves``, layer inference with it over without, on a 2-core AVX-512
machine): 0.80 at T=100, N=32, H=128; 0.79 at N=16, H=64; 0.88 at N=16, H=128; 0.84 at N=8,
H=128; 1.16 at N=4, H=64 (below the limit). ``ab.py halves-training``, a training step: 0.80 at
T=28, N=64, H=128; 0.80 at T=100, N=32, H=128; 0.63 at T=200, N=16, H=64; 0.63 at N=8, H=128;
0.56 at N=64, H=64. Above the limits (:class:`..plan.Tuning`) the per-step BLAS loop was faster
(1.15-1.81 for training at N=32, H=256; N=128, H=128; N=64, H=256).

The caller's side is ``lstm_halves_*``, the helper thread's ``lstm_second_half*``
(:func:`..helper.lstm_forward_on_batch_halves`).
"""

from __future__ import annotations

from ..intrinsics.atomics import atomic_add, atomic_load, atomic_store
from .jit import jit
from .lstm import lstm_loop_backward, lstm_loop_forward
from .pipeline import announce
from .products import column_sums, matmul_into, project_into, transpose_into


# ---- an LSTM on two cores, half of the batch each -------------------------------------------
# The batch rows of a layer are independent sequences, forward and backward: the caller and the
# helper thread can each run the whole loop for half of them, with no meeting per step. A forward
# part is the tuple (x (T·n, I), W_ihᵀ (I, 4H), bias (4H,), gates (T, n, 4H), W_hh as
# recurrent_weight gives it, h (T+1, n, H), c (2 or T+1, n, H), tanh_c (1 or T, n, H)) of one
# half, its input projection included; a backward part is lstm_part_backward's arguments for it,
# its weight gradients included (so that the step calls no BLAS, whose idle worker thread would
# spin on the second core for a while after each call, sharing it with the helper).
# The second half goes to whoever claims claim[0] first; done[0] becomes 1 once the helper has
# finished it.
@jit
def lstm_part_forward(x, weight_ih_t, bias, gates, weight_hh, h, c, tanh_c):
    """One part's forward (arrays as above): gates = x W_ihᵀ + b, in register blocks, then the
    time loop."""
    project_into(x, weight_ih_t, bias, gates.reshape(gates.shape[0] * gates.shape[1], gates.shape[2]))
    lstm_loop_forward(gates, weight_hh, h, c, tanh_c)


@jit
def lstm_second_half(claim, done, x, weight_ih_t, bias, gates, weight_hh, h, c, tanh_c):
    """The helper's job in a forward: runs the second half if it claims it before the caller does."""
    if atomic_add(claim, 0, 1) == 0:
        lstm_part_forward(x, weight_ih_t, bias, gates, weight_hh, h, c, tanh_c)
        atomic_store(done, 0, 1)


@jit
def lstm_part_backward(
    doutput, dh, dc, gates, c, tanh_c, weight_hh, dz, x, h, weight_ih, h_t, x_t, dx, dweight_ih_t, dweight_hh_t, dbias
):
    """One part's whole backward: :func:`lstm_loop_backward` (its first eight arguments), then the
    gradients of the two projections, each one product over all T·n rows of dz (T, n, 4H), in
    register blocks (:func:`matmul_into`):

    ====================  ===================  ==============================================
    array                 shape                receives
    ====================  ===================  ==============================================
    x                     (T, n, I)            the part's input (read)
    h                     (T+1, n, H)          its states, h[0] = h0 (read)
    weight_ih             (4H, I')             W_ih, I' ≥ I columns, the ones past I zero (read)
    h_t, x_t              (H, T·n), (I, T·n)   scratch: h[:-1]ᵀ and xᵀ
    dx                    (T·n, I')            dz W_ih (its first I columns are dx)
    dweight_ih_t          (I, 4H)              dW_ihᵀ = xᵀ dz
    dweight_hh_t          (H, 4H)              dW_hhᵀ = h[:-1]ᵀ dz
    dbias                 (4H,)                Σ dz over steps and rows
    ====================  ===================  ==============================================
    """
    lstm_loop_backward(doutput, dh, dc, gates, c, tanh_c, weight_hh, dz)
    rows = dz.shape[0] * dz.shape[1]
    dz_rows = dz.reshape(rows, dz.shape[2])
    transpose_into(h[:-1].reshape(rows, h.shape[2]), h_t)
    transpose_into(x.reshape(rows, x.shape[2]), x_t)
    matmul_into(h_t, dz_rows, dweight_hh_t, True)
    matmul_into(x_t, dz_rows, dweight_ih_t, True)
    matmul_into(dz_rows, weight_ih, dx)
    column_sums(dz_rows, dbias)


# The two parts' arguments as the caller passes them, a few a line (not formatted).
# fmt: off
@jit
def lstm_second_half_backward(claim, done, doutput, dh, dc, gates, c, tanh_c, weight_hh, dz, x, h, weight_ih,
                              h_t, x_t, dx, dweight_ih_t, dweight_hh_t, dbias):
    """The helper's job in a backward: as :func:`lstm_second_half`, with :func:`lstm_part_backward`."""
    if atomic_add(claim, 0, 1) == 0:
        lstm_part_backward(doutput, dh, dc, gates, c, tanh_c, weight_hh, dz, x, h, weight_ih, h_t, x_t, dx,
                           dweight_ih_t, dweight_hh_t, dbias)
        atomic_store(done, 0, 1)
# fmt: on


@jit
def _helper_took_second(mailbox, spins, claim, done, job):
    """The caller's side once its own half is done: False if it claims the second half (to run it
    itself); else True, once the helper has finished that half and (``spins`` reads at most) is
    back in its wait for the next job."""
    if atomic_add(claim, 0, 1) == 0:
        return False
    while atomic_load(done, 0) == 0:
        pass
    for _ in range(spins):
        if atomic_load(mailbox, 2) >= job:
            break
    return True


@jit
def lstm_halves_forward(mailbox, spins, claim, done, first, second):
    """The caller's side of a forward: announces the helper's staged job (see :mod:`..helper`),
    runs the first half, then the second too unless the helper has claimed it. True when the
    helper ran the second half."""
    job = announce(mailbox)
    lstm_part_forward(*first)
    if _helper_took_second(mailbox, spins, claim, done, job):
        return True
    lstm_part_forward(*second)
    return False


@jit
def lstm_halves_backward(mailbox, spins, claim, done, first, second):
    """:func:`lstm_halves_forward` for a backward's two parts."""
    job = announce(mailbox)
    lstm_part_backward(*first)
    if _helper_took_second(mailbox, spins, claim, done, job):
        return True
    lstm_part_backward(*second)
    return False
