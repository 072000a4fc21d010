"""The helper thread: a second core's share of a fused call (input projection, units, batch rows).

A small layer (batch 1, say) runs its whole time loop compiled on one core, and the loop is
bound by reading W_hh every step; the input projection before it, ``x W_ihᵀ + b`` for all
steps, is a fifth of the call's time and has no dependency on the loop. So a helper thread
computes it chunk by chunk, a chunk ahead of the loop, on the other core
(:func:`.kernels.pipeline.project_next_chunk` has the protocol; the loop computes any chunk the helper
has not taken yet, so it never waits for a thread that is asleep or busy elsewhere, and the
numbers do not depend on who computed what).

A batch-1 layer with enough units and steps goes further (:func:`loop_on_two_cores`): the
helper runs the whole loop for half of the hidden units, the caller for the other half, each
projecting its own gates, meeting once a step. There the caller does wait for the helper, at
most JOIN_SPINS reads, and runs both halves itself, step by step in turn, if it does not join in
time: the same numbers either way.

Why (``benchmarks/ab.py pipeline``, lstmkit's time over onnxruntime's with the helper and
without it, batch 1, on a 2-core AVX-512 machine): LSTM H=128 1.21 and 1.32, H=32 0.82 and 0.92;
GRU H=128 1.02 and 1.01, H=32 0.58 and 0.66. The helper is not free: the machine's two vCPUs
share one core's execution units, and at batch 1, H = 32 the loop ran 35-45 ns a step slower
while the helper projected beside it; the gain is the overlap of one thread's waits with the
other's work.

The helper is one daemon thread per process, named ``lstmkit-helper``, started on the first
fused call that can use it (again in a forked child), on machines where the process may run on
two cores or more. After a job it spins a fraction of a millisecond on the mailbox (0.24-0.37 ms),
so that the next call's job starts at once, then sleeps until a call wakes it, as OpenMP's and
OpenBLAS's threads do.

Switching it off: ``LSTMKIT_HELPER_THREAD=0`` in the environment (read when the helper would
first start), or :func:`set_helper_thread` (``lstmkit.set_helper_thread(False)``) at any time.
Without it every fused call runs on the caller's thread alone, with the same results; a thread
already started then sleeps and is never woken again. Every function here takes the helper to
use as an argument (None: the caller does everything), so that tests can pass their own.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading

import numpy as np

from .blas_loops import projection_into
from .compiled import compiled_kernels
from .memory import aligned_copy, cache_empty
from .plan import Plan

HELPER_THREAD_VARIABLE = "LSTMKIT_HELPER_THREAD"
# Reads of the mailbox the helper spins through before it sleeps (0.24-0.37 ms, timing
# wait_for_post with nothing posted).
SPINS_BEFORE_SLEEP = 1 << 19
# Reads of the join flag the caller spends at most waiting for the helper to take part in a
# two-core loop (0.7-1.5 ms): a spinning helper joins within microseconds (it takes the GIL and
# calls the job), a sleeping one has to be woken first.
JOIN_SPINS = 1 << 21
PROCESS_HELPER = "process"  # the default ``helper`` argument of the fused ops: this process's thread


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class Helper:
    """The helper thread and its mailbox: mailbox[0] counts the jobs posted, mailbox[1] is 1
    while the thread sleeps on ``_wake``, mailbox[2] is the last job it came back from. Posting
    adds to the count before it looks whether the thread sleeps, and the thread says it sleeps
    before it looks at the count once more (both sequentially consistent atomics): one of the two
    always sees the other, so no job is left unseen.

    The interface the fused ops use (a test may pass any object that has it): ``mailbox``,
    :meth:`first_of_its_kind` and :meth:`stage`."""

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
        self.wake_if_sleeping()

    def wake_if_sleeping(self) -> None:
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
                with contextlib.suppress(Exception):  # the caller computes whatever was left
                    job[0](*job[1])
                if self._job is job:
                    self._job = None  # the arrays are the caller's again

    def _sleep(self, seen: int) -> None:
        # Both sequentially consistent, as the poster's count and read: one side sees the other.
        self.kernels.add(self.mailbox, 1, 1)
        if self.kernels.add(self.mailbox, 0, 0) == seen:  # a job posted meanwhile is not missed
            self._wake.wait()
        self._wake.clear()
        self.kernels.store(self.mailbox, 1, 0)


_helper: Helper | None = None
_helper_lock = threading.Lock()
_switched_on: bool | None = None  # set_helper_thread's choice; None: the environment's
_environment_allows: bool | None = None  # LSTMKIT_HELPER_THREAD as read at first use


def _forget_the_parents_helper() -> None:
    """In a forked child: the parent's thread does not exist here; the next call starts one."""
    global _helper, _helper_lock
    _helper, _helper_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_the_parents_helper)


def set_helper_thread(enabled: bool | None) -> None:
    """Lets lstmkit's fast LSTM and GRU paths use their helper thread (True, the default on a
    machine with two cores or more) or not (False): without it each call runs on the caller's
    thread alone, with the same results. Overrides ``LSTMKIT_HELPER_THREAD`` from then on (None:
    back to the environment's choice, read again at the next call). A thread already started is
    not stopped: it sleeps, and no call wakes it again."""
    global _switched_on, _environment_allows
    if enabled is not None and not isinstance(enabled, bool):
        raise TypeError(f"set_helper_thread: enabled must be True, False or None, got {enabled!r}")
    _switched_on = enabled
    if enabled is None:
        _environment_allows = None


def _allowed_by_environment() -> bool:
    """``LSTMKIT_HELPER_THREAD``, read once (at the first call that could use the helper)."""
    global _environment_allows
    if _environment_allows is None:
        value = os.environ.get(HELPER_THREAD_VARIABLE, "1").strip().lower()
        if value not in ("0", "1", "false", "true", "no", "yes", "off", "on", ""):
            raise ValueError(f"{HELPER_THREAD_VARIABLE} must be 1 or 0 (on or off), got {value!r}")
        _environment_allows = value in ("1", "true", "yes", "on", "")
    return _environment_allows


@functools.cache
def _has_two_cores() -> bool:
    return _usable_cores() >= 2


def helper_thread_enabled() -> bool:
    """Whether the fused ops may use the helper thread: :func:`set_helper_thread`'s choice if made,
    else not when ``LSTMKIT_HELPER_THREAD`` is ``0`` (or ``false``, ``no``, ``off``), and only
    where the process may run on two cores or more."""
    enabled = _allowed_by_environment() if _switched_on is None else _switched_on
    return enabled and _has_two_cores()


def helper_available(helper) -> bool:
    """Whether a fused call given ``helper`` (as :func:`resolve_helper` takes it) would have one,
    without starting this process's thread."""
    return helper_thread_enabled() if helper == PROCESS_HELPER else helper is not None


def resolve_helper(helper) -> Helper | None:
    """The helper a fused call uses: this process's thread (started here on first use) for
    :data:`PROCESS_HELPER`, where :func:`helper_thread_enabled`, else None; any other value as given."""
    global _helper
    if helper != PROCESS_HELPER:
        return helper
    if _helper is not None and (_switched_on if _switched_on is not None else _environment_allows):
        return _helper  # the common case, a fraction of a microsecond
    if not helper_thread_enabled():
        return None
    with _helper_lock:
        if _helper is None:
            _helper = Helper(compiled_kernels())
        return _helper


def start_projection(x, weight_ih, bias, gates, chunk: int, helper: Helper | None):
    """The ``pipeline`` argument of the compiled loops (see :mod:`.kernels.pipeline`) that has
    ``gates`` (T, N, G, uninitialised) receive ``x W_ihᵀ + bias`` ``chunk`` steps at a time, on the
    ``helper`` and in the loop (in the loop alone where ``helper`` is None). ``bias`` is (G,) or
    None. The helper's job is staged, and the loop announces it (``kernels.start_pipeline``) once
    it runs without the GIL."""
    kernels = compiled_kernels()
    steps = x.shape[0]
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


def exchange_buffer(batch: int, hidden: int, dtype) -> np.ndarray:
    """Zeros (2 parts, 2 steps, N, P): a part's units of h_t, two steps of them, each part's rows
    on their own 64-byte lines (P = ⌈H/2⌉ rounded up to a line)."""
    lanes = 64 // np.dtype(dtype).itemsize
    return aligned_copy(np.zeros((2, 2, batch, -(-(hidden + 1) // 2 // lanes) * lanes)), dtype)


def loop_on_two_cores(sides: tuple, x, projection: tuple, states: tuple, chunk: int, helper: Helper | None) -> bool:
    """Runs a small layer's time loop, input projection included, on this thread and the
    ``helper``, half of the hidden units each: ``sides`` is ``(lead, second)``,
    ``kernels.lstm_loop_forward_lead`` and ``_second``, writing h, c, tanh_c and gates (``states``)
    as ``lstm_loop_forward`` does (gates only when it has T steps), or the GRU's, writing h,
    hidden_n and gates after bias_hn as ``gru_loop_forward`` does. ``projection`` is
    ``(weight_ih, bias, weight_hh)``, ``bias`` (G,) or None added to the input projection, ``chunk``
    steps at a time. Returns whether the helper took part: if it did not join in time (busy, still
    starting, or None), this thread ran both halves, the numbers bit for bit the same."""
    kernels = compiled_kernels()
    (lead, second), (weight_ih, bias, weight_hh) = sides, projection
    width = weight_ih.shape[0]
    bias = np.zeros(width, dtype=x.dtype) if bias is None else bias
    arguments = (
        np.ascontiguousarray(x),
        np.ascontiguousarray(weight_ih),
        bias,
        np.ascontiguousarray(weight_hh),
        *states,
    )
    exchange = exchange_buffer(x.shape[1], weight_hh.shape[1], x.dtype)
    sync = np.zeros(32, dtype=np.int64)
    if helper is None:  # the lead takes JOIN itself at once, and runs both parts
        return lead(np.zeros(3, dtype=np.int64), 0, *arguments, exchange, sync, chunk)
    if helper.first_of_its_kind(second, x.dtype):  # JOIN taken: compiles, returns
        sync[kernels.SYNC_JOIN] = 1
        second(*arguments, exchange, sync, chunk)
        sync[kernels.SYNC_JOIN] = 0
    helper.stage(second, *arguments, exchange, sync, chunk)
    return lead(helper.mailbox, JOIN_SPINS, *arguments, exchange, sync, chunk)


def batch_halves(batch: int) -> tuple[slice, slice]:
    """The rows of the two halves of a batch: [0, N//2) and [N//2, N)."""
    return slice(0, batch // 2), slice(batch // 2, batch)


def _run_on_halves(caller_side, helper_side, first, second, helper: Helper | None) -> None:
    """Runs a job's two halves: ``caller_side`` (``kernels.lstm_halves_forward`` or
    ``_backward``) runs the first and, unless the helper claims it, the second, which
    ``helper_side`` (``lstm_second_half`` or ``_backward``) runs on the helper."""
    claim, done = np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64)
    if helper is None or helper.first_of_its_kind(helper_side, first[0].dtype):  # compiles it here
        helper_side(claim, done, *second)  # claims the half, so caller_side waits for nothing
    if helper is not None:
        helper.stage(helper_side, claim, done, *second)
    mailbox, spins = (np.zeros(3, dtype=np.int64), 0) if helper is None else (helper.mailbox, JOIN_SPINS)
    caller_side(mailbox, spins, claim, done, first, second)


def lstm_forward_on_batch_halves(
    x, h0, c0, weight_ih, bias, weight_hh, keep_cache: bool, weight_hh_transposed: bool, helper: Helper | None
):
    """An LSTM layer's forward on this thread and the ``helper``, half of the batch rows each, input
    projection included (``kernels.lstm_halves_forward``): ``(output (T, N, H), h_T, c_T (N, H),
    parts)``, ``parts`` holding each half's ``(x (T, n, I), h, c, gates, tanh_c)`` as a training
    forward keeps them (None with ``keep_cache`` False). The caller runs both halves when the
    helper has not claimed the second by the time the first is done (or is None), so it never waits
    for a thread that has not started, and the numbers are the same whoever ran what. Each half
    reads W_hh transposed (H, 4H) where ``weight_hh_transposed``, else as stored."""
    steps, batch, features = x.shape
    hidden = weight_hh.shape[1]
    weight_ih_t = aligned_copy(weight_ih.T, x.dtype)
    if weight_hh_transposed:
        weight_hh = aligned_copy(weight_hh.T, x.dtype)
    else:
        weight_hh = np.ascontiguousarray(weight_hh, dtype=x.dtype)
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
    _run_on_halves(kernels.lstm_halves_forward, kernels.lstm_second_half, *jobs, helper)
    output = np.concatenate([h[1:] for _, h, *_ in kept], axis=1)
    c_last = np.concatenate([c[steps % depth] for _, _, c, *_ in kept])
    return output, output[-1].copy(), c_last, kept if keep_cache else None


def lstm_backward_on_batch_halves(first, second, helper: Helper | None) -> None:
    """Runs ``kernels.lstm_part_backward`` with the arguments ``first`` on this thread and with
    ``second`` on the ``helper`` (or on this thread too, whoever claims it first; both here where
    ``helper`` is None)."""
    kernels = compiled_kernels()
    _run_on_halves(kernels.lstm_halves_backward, kernels.lstm_second_half_backward, first, second, helper)


def input_gates(x, weight_ih, bias, plan: Plan, helper: Helper | None):
    """``(gates, pipeline)`` for a compiled forward loop: the pre-activations ``x W_ihᵀ + bias``
    (T, N, G) as one BLAS product with pipeline None, or, where the ``plan`` is pipelined, an array
    the loop fills through ``pipeline`` (with the ``helper``'s help where it is not None)."""
    steps, batch, _ = x.shape
    gates = cache_empty((steps, batch, weight_ih.shape[0]), x.dtype)
    if plan.pipelined:
        return gates, start_projection(x, weight_ih, bias, gates, plan.chunk_steps, helper)
    projection_into(x, weight_ih, gates)
    if bias is not None:
        gates += bias
    return gates, None
