"""The input projection of a small layer, computed on a second core while the time loop runs.

A small layer (batch 1, say) runs its whole time loop compiled on one core, and the loop is
bound by reading W_hh every step; the input projection before it, ``x W_ihᵀ + b`` for all
steps, is a fifth of the call's time and has no dependency on the loop. So a helper thread
computes it chunk by chunk, a chunk ahead of the loop, on the other core
(:func:`._kernels.project_next_chunk` has the protocol; the loop computes any chunk the helper
has not taken yet, so it never waits for a thread that is asleep or busy elsewhere, and the
numbers do not depend on who computed what).

A batch-1 layer with enough units and steps goes further (:func:`loop_on_two_cores`): the
helper runs the whole loop for half of the hidden units, the caller for the other half, each
projecting its own gates, meeting once a step. There the caller does wait for the helper, at
most JOIN_SPINS reads, and runs both halves itself, step by step in turn, if it does not join in
time: the same numbers either way.

The helper is one daemon thread per process, started on first use (again in a forked child).
After a job it spins a fraction of a millisecond on the mailbox, so that the next call's job
starts at once, then sleeps until a call wakes it, as OpenMP's and OpenBLAS's threads do.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from ._compiled import aligned_copy, cache_empty, compiled_kernels, projection_into, recurrent_weight

# Reads of the mailbox the helper spins through before it sleeps (0.24-0.37 ms here, timing
# wait_for_post with nothing posted).
SPINS_BEFORE_SLEEP = 1 << 19
# A chunk holds about this many multiply-adds of the projection (a few microseconds' work).
CHUNK_MULTIPLY_ADDS = 1 << 18


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class _Helper:
    """The helper thread and its mailbox: mailbox[0] counts the jobs posted, mailbox[1] is 1
    while the thread sleeps on ``_wake``, mailbox[2] is the last job it came back from. Posting
    adds to the count before it looks whether the thread sleeps, and the thread says it sleeps
    before it looks at the count once more (both sequentially consistent atomics): one of the two
    always sees the other, so no job is left unseen."""

    def __init__(self, kernels):
        self.kernels = kernels
        self.mailbox = np.zeros(3, dtype=np.int64)
        self.pid = os.getpid()  # the process it was started in
        self._job = None
        self._compiled: set = set()  # (job, dtype) run once in a caller's thread (see post)
        self._wake = threading.Event()
        # the thread's own kernels, compiled (or loaded from Numba's cache) here, not in the thread
        kernels.wait_for_post(self.mailbox, 0, 0)
        kernels.store(self.mailbox, 1, 0)
        kernels.add(self.mailbox, 1, 0)
        threading.Thread(target=self._serve, name="lstmkit-helper", daemon=True).start()

    def first_of_its_kind(self, function, dtype) -> bool:
        """True the first time only for each (job function, dtype): the caller then runs that job
        itself, whole, before staging it, which compiles it (or loads it from Numba's cache) in the
        caller's thread. Compiled in the helper, it would hold the GIL for seconds, and a process
        ending meanwhile aborts inside LLVM."""
        kind = (function, dtype)
        if kind in self._compiled:
            return False
        self._compiled.add(kind)
        return True

    def stage(self, function, *arguments) -> None:
        """Makes ``function(*arguments)`` the helper's job without announcing it: the caller's
        compiled code announces it (``kernels.announce``) once it has let go of the GIL, which the
        helper needs to start a job (announced from Python, the job found the GIL held, and the
        helper slept on it until the caller's loop let go: tens of microseconds). A sleeping
        helper is woken now."""
        self._job = (function, arguments)
        self._wake_if_sleeping()

    def _wake_if_sleeping(self) -> None:
        if self.kernels.add(self.mailbox, 1, 0):  # a sequentially consistent read (see _sleep)
            self._wake.set()

    def _serve(self) -> None:
        seen = 0
        while True:
            posted = self.kernels.wait_for_post(self.mailbox, seen, SPINS_BEFORE_SLEEP)
            if posted == seen:
                self._sleep(seen)
                continue
            seen, job = posted, self._job
            if job is not None:
                try:
                    job[0](*job[1])
                except Exception:  # pragma: no cover - the loop computes whatever was left
                    pass
                if self._job is job:
                    self._job = None  # the arrays are the caller's again

    def _sleep(self, seen: int) -> None:
        # Both sequentially consistent, as the poster's count and read: one side sees the other.
        self.kernels.add(self.mailbox, 1, 1)
        if self.kernels.add(self.mailbox, 0, 0) == seen:  # a job posted meanwhile is not missed
            self._wake.wait()
        self._wake.clear()
        self.kernels.store(self.mailbox, 1, 0)


_helper: _Helper | None = None
_helper_lock = threading.Lock()
enabled = _usable_cores() >= 2  # tests switch it off to run the loop's own projection


def _forget_the_parents_helper() -> None:
    """In a forked child: the parent's thread does not exist here; the next call starts one."""
    global _helper, _helper_lock
    _helper, _helper_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_the_parents_helper)


def _get_helper(kernels) -> _Helper | None:
    global _helper
    if not enabled:
        return None
    with _helper_lock:
        if _helper is None:
            _helper = _Helper(kernels)
        return _helper


def chunk_steps(batch: int, features: int, gates: int) -> int:
    """Steps per chunk: about CHUNK_MULTIPLY_ADDS multiply-adds of (N, I) x (I, G) each."""
    return max(1, CHUNK_MULTIPLY_ADDS // max(1, batch * features * gates))


def start_projection(x, weight_ih, bias, gates, force: bool = False):
    """The ``pipeline`` argument of the compiled loops (see :mod:`._kernels`) that has ``gates``
    (T, N, G, uninitialised) receive ``x W_ihᵀ + bias`` chunk by chunk, on the helper thread
    and in the loop; None where no helper can run (one core), unless ``force``: then the loop
    computes every chunk itself. ``bias`` is (G,) or None. The helper's job is staged, and the
    loop announces it (``kernels.start_pipeline``) once it runs without the GIL."""
    kernels = compiled_kernels()
    steps, batch, features = x.shape
    helper = _get_helper(kernels)
    if helper is None and not force:
        return None
    chunk = chunk_steps(batch, features, gates.shape[-1])
    claims = np.zeros(1 + -(-steps // chunk), dtype=np.int64)
    bias = np.zeros(gates.shape[-1], dtype=x.dtype) if bias is None else bias
    staged = helper is not None and not helper.first_of_its_kind(kernels.project_chunks, x.dtype)
    mailbox = helper.mailbox if staged else np.zeros(3, dtype=np.int64)  # no helper reads the latter
    pipeline = (claims, chunk, np.ascontiguousarray(x), aligned_copy(weight_ih.T, x.dtype), bias, mailbox)
    if staged:
        helper.stage(kernels.project_chunks, pipeline, gates)  # announced by the loop
    elif helper is not None:  # the first job of its dtype, run here: the loop finds every chunk done
        kernels.project_chunks(pipeline, gates)
    return pipeline


# Reads of the join flag the caller spends at most waiting for the helper to take part in a
# two-core loop (0.7-1.5 ms here): a spinning helper joins within microseconds (it takes the GIL
# and calls the job), a sleeping one has to be woken first.
JOIN_SPINS = 1 << 21


def exchange_buffer(batch: int, hidden: int, dtype):
    """Zeros (2 parts, 2 steps, N, P): a part's units of h_t, two steps of them, each part's rows
    on their own 64-byte lines (P = ⌈H/2⌉ rounded up to a line)."""
    lanes = 64 // np.dtype(dtype).itemsize
    return aligned_copy(np.zeros((2, 2, batch, -(-(hidden + 1) // 2 // lanes) * lanes)), dtype)


def loop_on_two_cores(lead, second, x, weight_ih, bias, weight_hh, *states) -> bool | None:
    """Runs a small layer's time loop, input projection included, on this thread and the helper,
    half of the hidden units each: ``lead`` and ``second`` are ``_kernels.lstm_loop_forward_lead``
    and ``_second``, writing h, c, tanh_c and gates (``states``) as ``lstm_loop_forward`` does
    (gates only when it has T steps), or the GRU's, writing h, hidden_n and gates after bias_hn as
    ``gru_loop_forward`` does. ``bias`` (G,) or None is added to the projection. Returns whether
    the helper took part: if it did not join in time (busy, or still starting), this thread ran
    both halves, the numbers bit for bit the same; None, having computed nothing, where no helper
    can run (one core)."""
    kernels = compiled_kernels()
    helper = _get_helper(kernels)
    if helper is None:
        return None
    steps, batch, features = x.shape
    width = weight_ih.shape[0]
    chunk = min(steps, chunk_steps(batch, features, width))
    bias = np.zeros(width, dtype=x.dtype) if bias is None else bias
    arguments = (np.ascontiguousarray(x), np.ascontiguousarray(weight_ih), bias, np.ascontiguousarray(weight_hh),
                 *states)
    exchange = exchange_buffer(batch, weight_hh.shape[1], x.dtype)
    sync = np.zeros(32, dtype=np.int64)
    if helper.first_of_its_kind(second, x.dtype):  # JOIN taken: compiles, returns
        sync[kernels.SYNC_JOIN] = 1
        second(*arguments, exchange, sync, chunk)
        sync[kernels.SYNC_JOIN] = 0
    helper.stage(second, *arguments, exchange, sync, chunk)
    return lead(helper.mailbox, JOIN_SPINS, *arguments, exchange, sync, chunk)


def batch_halves(batch: int) -> tuple[slice, slice]:
    """The rows of the two halves of a batch: [0, N//2) and [N//2, N)."""
    return slice(0, batch // 2), slice(batch // 2, batch)


def _run_on_halves(caller_side, helper_side, first, second) -> None:
    """Runs a job's two halves: ``caller_side`` (``_kernels.lstm_halves_forward`` or
    ``_backward``) runs the first and, unless the helper claims it, the second, which
    ``helper_side`` (``lstm_second_half`` or ``_backward``) runs on the helper."""
    kernels = compiled_kernels()
    helper = _get_helper(kernels)
    claim, done = np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64)
    if helper is None or helper.first_of_its_kind(helper_side, first[0].dtype):  # compiles it here
        helper_side(claim, done, *second)  # claims the half, so caller_side waits for nothing
    if helper is not None:
        helper.stage(helper_side, claim, done, *second)
    mailbox, spins = (np.zeros(3, dtype=np.int64), 0) if helper is None else (helper.mailbox, JOIN_SPINS)
    caller_side(mailbox, spins, claim, done, first, second)


def lstm_forward_on_batch_halves(x, h0, c0, weight_ih, bias, weight_hh, keep_cache: bool):
    """An LSTM layer's forward on this thread and the helper, half of the batch rows each, input
    projection included (``_kernels.lstm_halves_forward``): ``(output (T, N, H), h_T, c_T (N, H),
    parts)``, ``parts`` holding each half's ``(x (T, n, I), h, c, gates, tanh_c)`` as a training
    forward keeps them (None with ``keep_cache`` False); or None where no helper can run (one
    core). The caller runs both halves when the helper has not claimed the second by the time the
    first is done, so it never waits for a thread that has not started, and the numbers are the
    same whoever ran what."""
    if _get_helper(compiled_kernels()) is None:
        return None
    steps, batch, features = x.shape
    hidden = weight_hh.shape[1]
    weight_ih_t = aligned_copy(weight_ih.T, x.dtype)
    weight_hh = recurrent_weight(weight_hh, x.dtype, rows=batch // 2)
    bias = np.zeros(4 * hidden, dtype=x.dtype) if bias is None else bias
    depth = steps + 1 if keep_cache else 2
    empty = cache_empty if keep_cache else np.empty  # an inference's arrays are not handed back
    jobs, kept = [], []
    for rows in batch_halves(batch):
        size = rows.stop - rows.start
        h = np.empty((steps + 1, size, hidden), dtype=x.dtype)
        c = empty((depth, size, hidden), x.dtype)
        h[0], c[0] = h0[rows], c0[rows]
        gates = empty((steps, size, 4 * hidden), x.dtype)
        tanh_c = empty((steps if keep_cache else 1, size, hidden), x.dtype)
        x_part = np.ascontiguousarray(x[:, rows])
        jobs.append((x_part.reshape(steps * size, features), weight_ih_t, bias, gates, weight_hh, h, c, tanh_c))
        kept.append((x_part, h, c, gates, tanh_c))
    kernels = compiled_kernels()
    _run_on_halves(kernels.lstm_halves_forward, kernels.lstm_second_half, *jobs)
    output = np.concatenate([h[1:] for _, h, *_ in kept], axis=1)
    c_last = np.concatenate([c[steps % depth] for _, _, c, *_ in kept])
    return output, output[-1].copy(), c_last, kept if keep_cache else None


def lstm_backward_on_batch_halves(first, second) -> None:
    """Runs ``_kernels.lstm_part_backward`` with the arguments ``first`` on this thread and with
    ``second`` on the helper (or on this thread too, whoever claims it first; both here where no
    helper can run)."""
    kernels = compiled_kernels()
    _run_on_halves(kernels.lstm_halves_backward, kernels.lstm_second_half_backward, first, second)


def input_gates(x, weight_ih, bias, small: bool):
    """``(gates, pipeline)`` for a fused forward: the pre-activations ``x W_ihᵀ + bias`` (T, N, G)
    as one BLAS product with pipeline None, or, for a small layer (``small``) of at least two
    chunks on a machine with a helper, an array the loop fills through ``pipeline``."""
    steps, batch, features = x.shape
    width = weight_ih.shape[0]
    gates = cache_empty((steps, batch, width), x.dtype)
    if small and steps >= 2 * chunk_steps(batch, features, width):
        pipeline = start_projection(x, weight_ih, bias, gates)
        if pipeline is not None:
            return gates, pipeline
    projection_into(x, weight_ih, gates)
    if bias is not None:
        gates += bias
    return gates, None
