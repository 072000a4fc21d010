"""A batch-1 layer's time loop on two cores, half of the hidden units each (LSTM and GRU).

The caller's side is ``*_lead``, the helper thread's ``*_second`` (:func:`..helper.loop_on_two_cores`).
Each part projects its own gates a chunk of steps at a time and reads its own rows of W_hh,
transposed in register tiles at the start of the call, so each core streams half of W_hh from its
own cache; the parts meet once a step. Each first multiplies its own half of h_t, then waits for
the other's, so the wait overlaps work. Whether the helper takes part is settled by one atomic
counter: the helper counts first and joins, or the caller does (after about a millisecond) and
runs both halves itself, a step of one then a step of the other, so that the numbers are bit for
bit the same either way. The caller returns only once the helper is back in its spin, so that
the next call finds it awake rather than asleep on the GIL.

Why (``benchmarks/ab.py cores``, a step's time over onnxruntime's, two cores against one, two
runs on a 2-core AVX-512 machine): LSTM T=100, H=128 0.97 and 0.74 against 1.02 and 1.17; H=256
0.97 and 0.95 against 1.93 and 1.68; T=32, H=128 1.06 and 1.05 against 1.40 and 1.37; GRU T=100,
H=128 0.72 and 0.88 against 0.91 and 1.05; H=256 0.78 and 0.78 against 1.71 and 1.54. Not used
below H = 111 (LSTM) or 128 (GRU): at H = 64 the results changed sign between runs, and at
H = 32 and 48 two cores were slower (the meeting costs more than half a step). The machine's two
vCPUs share one core's execution units (two threads running the same vector product each took
1.6-2.0 times as long as one alone), so what the two-core loops gain, they gain by overlapping
one thread's waits (memory, latency chains) with the other's work.

Measured and not used: the same split for batches of 4 to 64 (a gain at N=8, H=128 only); a
large LSTM's loop split by units with each core calling OpenBLAS single-threaded (faster only
while OpenBLAS's idle worker sleeps; about twice as slow after any two-thread NumPy product); a
bidirectional layer's two directions on the two cores (slower).
"""

from __future__ import annotations

import numpy as np

from ..intrinsics.atomics import atomic_add, atomic_load, atomic_store
from .gru import gru_cell_forward
from .jit import jit, jit_inlined
from .lstm import lstm_cell_forward
from .pipeline import announce
from .products import add_to_rows, aligned_empty, matmul_into, transpose_into

# ---- a batch-1 layer's time loop on two cores ---------------------------------------------
# One core's loop is bound by reading W_hh (G·H x H) from L2 every step. Two threads can each
# run the loop for half of the hidden units (their gate rows of W_ih and W_hh, a different half
# in each core's cache), meeting once a step: part p writes its units of h_{t+1} into
# exchange[p, (t+1) % 2], counts it in sync[PROGRESS + 8p] (the number of its h_0, h_1, ... there
# so far), and waits for the other part's.
# ``exchange`` (2 parts, 2 steps, N, P), P = ⌈H/2⌉ rounded up to a 64-byte line, holds nothing
# else, so that the two cores never write the same cache line; the register blocks read the first
# u entries of its rows. ``sync`` (int64, 32 entries: each counter on its own cache line)
# also holds JOIN, which decides whether part 1 runs at all (the helper thread's atomic_add gets
# 0 first, or the caller's does, and then runs both parts alone, in turn), and DONE, which part 1
# counts up once its last writes are made. The LSTM's and the GRU's loops differ only in their
# cell (:func:`_lstm_part_step`, :func:`_gru_part_step`).
SYNC_JOIN, SYNC_DONE, SYNC_PROGRESS = 0, 8, 16


@jit
def copy_vector(source, target):
    """``target[:] = source`` for 1-D arrays (numba's slice assignment costs microseconds)."""
    for i in range(source.shape[0]):
        target[i] = source[i]


@jit
def _part_units(part, hidden):
    """(first unit, count) of part 0 or 1: [0, ⌈H/2⌉) or the rest."""
    units = (hidden + 1) // 2 if part == 0 else hidden // 2
    return (0 if part == 0 else hidden - units), units


@jit
def _part_transposed(part, weight, hidden):
    """This part's rows of each of ``weight``'s G gate blocks (G·H, K), C-contiguous, transposed and
    64-byte aligned: (K, G·u), gate blocks side by side."""
    gate_count = weight.shape[0] // hidden
    first, units = _part_units(part, hidden)
    out = aligned_empty(weight.shape[1], gate_count * units, weight)
    for k in range(gate_count):
        transpose_into(weight[k * hidden + first : k * hidden + first + units], out, k * units)
    return out


@jit
def _part_setup(part, x, weight_ih, bias, weight_hh, chunk):
    """A part's own buffers (all of them: once the helper has joined, nothing it does can fail)
    and its rows of each gate block of W_ih, bias and W_hh (G·H, H), the weights transposed for
    register blocks (:func:`matmul_into`): ``input`` (I, G·u); ``own`` (u, G·u), which multiplies
    its own units of h_t, and ``others`` (H-u, G·u), the other part's (rows of one matrix)."""
    batch, hidden = x.shape[1], weight_hh.shape[1]
    gate_count = weight_hh.shape[0] // hidden
    first, units = _part_units(part, hidden)
    others_first = units if part == 0 else 0
    input_t, recurrent_t = _part_transposed(part, weight_ih, hidden), _part_transposed(part, weight_hh, hidden)
    own, others = recurrent_t[first : first + units], recurrent_t[others_first : others_first + hidden - units]
    bias_part = np.empty(gate_count * units, dtype=x.dtype)
    for k in range(gate_count):
        copy_vector(bias[k * hidden + first : k * hidden + first + units], bias_part[k * units : (k + 1) * units])
    projected = np.empty((chunk * batch, gate_count * units), dtype=x.dtype)  # x W_ihᵀ + b, a chunk of steps
    products = np.empty((2, batch, gate_count * units), dtype=x.dtype)  # h_t W_hhᵀ, its own units' and the others'
    cell_part = np.empty((3, batch, units), dtype=x.dtype)  # its units of the cell's other state
    return (input_t, bias_part, own, others), projected, products, cell_part


@jit
def _part_start(part, state, start):
    """``start`` (N, ≥u) = this part's units of state[0] (·, N, H)."""
    first, units = _part_units(part, state.shape[2])
    for n in range(state.shape[1]):
        copy_vector(state[0, n, first : first + units], start[n, :units])


@jit
def _part_begin(part, h, exchange, sync):
    """Puts this part's units of h_0 into the exchange, and counts them there."""
    _part_start(part, h, exchange[part, 0])
    atomic_store(sync, SYNC_PROGRESS + 8 * part, 1)


@jit
def _part_projection(t, x, setup):
    """Step t's x W_ihᵀ + b for this part's rows of each gate block (N, G·u), out of the setup's
    ``projected``, which gets the next ``chunk`` steps' at the first step of each chunk."""
    (input_t, bias_part, _, _), projected = setup[0], setup[1]
    steps, batch, features = x.shape
    chunk = projected.shape[0] // batch
    s = t % chunk
    if s == 0:
        rows = (min(t + chunk, steps) - t) * batch
        matmul_into(x[t : t + rows // batch].reshape(rows, features), input_t, projected[:rows])
        add_to_rows(projected[:rows], bias_part)
    return projected[s * batch : (s + 1) * batch]


@jit
def _part_recurrent(t, part, exchange, setup, sync):
    """h_t W_hhᵀ for this part's gate rows (N, G·u): first its own units' share, which it computed
    itself, so that the wait for the other part's units of h_t overlaps work."""
    (_, _, own, others), products = setup[0], setup[2]
    recurrent, partial = products[0], products[1]
    matmul_into(exchange[part, t % 2], own, recurrent)
    while atomic_load(sync, SYNC_PROGRESS + 8 * (1 - part)) <= t:  # until the other's h_t is there
        pass
    matmul_into(exchange[1 - part, t % 2], others, partial)
    for n in range(recurrent.shape[0]):
        for j in range(recurrent.shape[1]):
            recurrent[n, j] += partial[n, j]
    return recurrent


@jit
def _part_publish(t, part, h, h_next, sync):
    """Tells the other part that ``h_next`` (N, ≥u) holds this part's units of h_{t+1}, then writes
    them into h[t+1]."""
    atomic_store(sync, SYNC_PROGRESS + 8 * part, t + 2)
    first, units = _part_units(part, h.shape[2])
    for n in range(h.shape[1]):
        for j in range(units):
            h[t + 1, n, first + j] = h_next[n, j]


@jit
def _part_keep(index, part, hidden, source, target):
    """``target[index]`` (N, G·H) gets this part's units of each of its G blocks from ``source``
    (N, G·u)."""
    first, units = _part_units(part, hidden)
    for n in range(source.shape[0]):
        for k in range(target.shape[2] // hidden):
            for j in range(units):
                target[index, n, k * hidden + first + j] = source[n, k * units + j]


@jit_inlined
def _lstm_part_step(t, part, setup, x, h, c, tanh_c, gates, exchange, sync):
    """Step t of one part of an LSTM's loop (see :func:`lstm_loop_forward_second`)."""
    cell_part, hidden = setup[3], h.shape[2]
    z = _part_projection(t, x, setup)
    recurrent = _part_recurrent(t, part, exchange, setup, sync)
    h_next = exchange[part, (t + 1) % 2]
    lstm_cell_forward(z, recurrent, cell_part[t % 2], cell_part[(t + 1) % 2], cell_part[2], h_next)
    _part_publish(t, part, h, h_next, sync)
    _part_keep((t + 1) % c.shape[0], part, hidden, cell_part[(t + 1) % 2], c)
    if gates.shape[0] == x.shape[0]:
        _part_keep(t, part, hidden, cell_part[2], tanh_c)
        _part_keep(t, part, hidden, z, gates)


@jit
def _lstm_parts_run(first, last, setup_0, setup_1, x, h, c, tanh_c, gates, exchange, sync):
    """The time loop of parts ``first`` .. ``last`` (0 and 1) of an LSTM, on ``setup_0`` and
    ``setup_1``: one part is a thread's share of the two-core loop; both are the caller's loop when
    no helper joins, the two parts' steps taken in turn, so that the numbers are the same whoever
    ran what. The step is inlined: called, with its reference counts on a dozen arrays, it took the
    batch-1 loop at H = 128 from 2.55 to 2.8 µs a step on a 2-core AVX-512 machine."""
    if first == 0:
        _part_begin(0, h, exchange, sync)
        _part_start(0, c, setup_0[3][0])
    if last == 1:
        _part_begin(1, h, exchange, sync)
        _part_start(1, c, setup_1[3][0])
    for t in range(x.shape[0]):
        if first == 0:
            _lstm_part_step(t, 0, setup_0, x, h, c, tanh_c, gates, exchange, sync)
        if last == 1:
            _lstm_part_step(t, 1, setup_1, x, h, c, tanh_c, gates, exchange, sync)


@jit_inlined
def _gru_part_step(t, part, setup, x, bias_hn, h, hidden_n, gates, exchange, sync):
    """Step t of one part of a GRU's loop (see :func:`gru_loop_forward_second`)."""
    hidden_n_part, hidden = setup[3][0], h.shape[2]
    first, units = _part_units(part, hidden)
    pre = _part_projection(t, x, setup)
    recurrent = _part_recurrent(t, part, exchange, setup, sync)
    h_next = exchange[part, (t + 1) % 2]
    gru_cell_forward(
        pre, recurrent, bias_hn[first : first + units], exchange[part, t % 2, :, :units], hidden_n_part, h_next
    )
    _part_publish(t, part, h, h_next, sync)
    if gates.shape[0] == x.shape[0]:
        _part_keep(t, part, hidden, hidden_n_part, hidden_n)
        _part_keep(t, part, hidden, pre, gates)


@jit
def _gru_parts_run(first, last, setup_0, setup_1, x, bias_hn, h, hidden_n, gates, exchange, sync):
    """The GRU's :func:`_lstm_parts_run`."""
    if first == 0:
        _part_begin(0, h, exchange, sync)
    if last == 1:
        _part_begin(1, h, exchange, sync)
    for t in range(x.shape[0]):
        if first == 0:
            _gru_part_step(t, 0, setup_0, x, bias_hn, h, hidden_n, gates, exchange, sync)
        if last == 1:
            _gru_part_step(t, 1, setup_1, x, bias_hn, h, hidden_n, gates, exchange, sync)


@jit
def _lead_joins(spins, sync):
    """The caller's side, once its buffers are made: waits at most ``spins`` reads for the helper
    to join; True if it did (then part 1 is the helper's), False if the caller took JOIN first."""
    for _ in range(spins):
        if atomic_load(sync, SYNC_JOIN) != 0:
            break
    return atomic_add(sync, SYNC_JOIN, 1) != 0


@jit
def _lead_finishes(mailbox, spins, sync, job):
    """The caller's side, its part done: waits for the helper's part to be done, then (``spins``
    reads at most) for the helper to be back in its wait for the next job: the helper needs the
    GIL on its way there, which this thread does not hold meanwhile, and would otherwise sleep on
    the GIL until the next call (tens of microseconds to wake)."""
    while atomic_load(sync, SYNC_DONE) == 0:
        pass
    for _ in range(spins):
        if atomic_load(mailbox, 2) >= job:
            break


@jit
def lstm_loop_forward_second(x, weight_ih, bias, weight_hh, h, c, tanh_c, gates, exchange, sync, chunk):
    """The helper's side (part 1 of the units; part 0 is :func:`lstm_loop_forward_lead`'s) of
    :func:`lstm_loop_forward` on two cores, on the same h, c, tanh_c and gates (activated gates
    written only when gates has T steps): a part projects its own gates from x (T, N, I), W_ih
    (4H, I) and bias (4H,), ``chunk`` steps at a time, and runs its units' cells. Each step first
    multiplies its own units of h_t, which it computed itself, then waits for the other part's,
    so that the wait overlaps work. Returns at once unless it is the first to count JOIN (its
    buffers are made before: once it has joined, nothing in it can fail)."""
    setup = _part_setup(1, x, weight_ih, bias, weight_hh, chunk)
    if atomic_add(sync, SYNC_JOIN, 1) != 0:
        return
    _lstm_parts_run(1, 1, setup, setup, x, h, c, tanh_c, gates, exchange, sync)
    atomic_add(sync, SYNC_DONE, 1)


@jit
def lstm_loop_forward_lead(mailbox, spins, x, weight_ih, bias, weight_hh, h, c, tanh_c, gates, exchange, sync, chunk):
    """The caller's side of the two-core loop: announces the job the helper thread has been handed
    (part 1, see :mod:`..helper`), makes its own part's buffers meanwhile, and runs part 0 with
    the helper if it joins in time (:func:`_lead_joins`), else both parts itself. Returns whether
    the helper took part."""
    job = announce(mailbox)
    setup = _part_setup(0, x, weight_ih, bias, weight_hh, chunk)
    if not _lead_joins(spins, sync):
        setup_1 = _part_setup(1, x, weight_ih, bias, weight_hh, chunk)
        _lstm_parts_run(0, 1, setup, setup_1, x, h, c, tanh_c, gates, exchange, sync)
        return False
    _lstm_parts_run(0, 0, setup, setup, x, h, c, tanh_c, gates, exchange, sync)
    _lead_finishes(mailbox, spins, sync, job)
    return True


@jit
def gru_loop_forward_second(x, weight_ih, bias, weight_hh, bias_hn, h, hidden_n, gates, exchange, sync, chunk):
    """The helper's side of :func:`gru_loop_forward` on two cores, as
    :func:`lstm_loop_forward_second` is the LSTM's: ``bias`` (3H,) is the hoisted one of
    :func:`gru_cell_forward`, hidden_n and the activated gates are written only when gates has T
    steps."""
    setup = _part_setup(1, x, weight_ih, bias, weight_hh, chunk)
    if atomic_add(sync, SYNC_JOIN, 1) != 0:
        return
    _gru_parts_run(1, 1, setup, setup, x, bias_hn, h, hidden_n, gates, exchange, sync)
    atomic_add(sync, SYNC_DONE, 1)


@jit
def gru_loop_forward_lead(
    mailbox, spins, x, weight_ih, bias, weight_hh, bias_hn, h, hidden_n, gates, exchange, sync, chunk
):
    """The caller's side of the GRU's two-core loop (see :func:`lstm_loop_forward_lead`)."""
    job = announce(mailbox)
    setup = _part_setup(0, x, weight_ih, bias, weight_hh, chunk)
    if not _lead_joins(spins, sync):
        setup_1 = _part_setup(1, x, weight_ih, bias, weight_hh, chunk)
        _gru_parts_run(0, 1, setup, setup_1, x, bias_hn, h, hidden_n, gates, exchange, sync)
        return False
    _gru_parts_run(0, 0, setup, setup, x, bias_hn, h, hidden_n, gates, exchange, sync)
    _lead_finishes(mailbox, spins, sync, job)
    return True
