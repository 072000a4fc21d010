"""The compiled side of the helper thread's protocol: chunks of the input projection, the mailbox.

:mod:`..helper` holds the thread; these are the parts that run without the GIL.
"""

from __future__ import annotations

from ..intrinsics.atomics import atomic_add, atomic_load, atomic_store
from .jit import jit
from .products import project_into


# ---- the input projection, chunk by chunk, beside the time loop ----------------------------
# A small layer's time loop runs on one core; its input projection (x W_ihᵀ + b for all steps)
# can run on the other at the same time, a chunk of steps ahead. ``pipeline`` is the tuple
# (claims, chunk, x, W_ihᵀ (I, G), bias, mailbox) of :func:`..helper.start_projection`: claims[0]
# counts the chunks taken, claims[1 + k] is 1 once chunk k (steps k·chunk ...) is in ``gates``;
# the loop announces the helper's job in ``mailbox`` (:func:`start_pipeline`).
# Whoever takes a chunk computes it, the helper thread or the loop that needs it: the loop
# never waits for a thread that has not started, and the result is the same either way.
@jit
def project_next_chunk(pipeline, gates):
    """Takes the next chunk nobody has taken and writes its ``x W_ihᵀ + b`` into ``gates``;
    False when none is left."""
    claims, chunk, x, weight_ih_t, bias = pipeline[0], pipeline[1], pipeline[2], pipeline[3], pipeline[4]
    count = claims.shape[0] - 1
    if atomic_load(claims, 0) >= count:
        return False
    k = atomic_add(claims, 0, 1)
    if k >= count:
        return False
    start, stop = k * chunk, min((k + 1) * chunk, x.shape[0])
    rows = (stop - start) * x.shape[1]
    project_into(x[start:stop].reshape(rows, x.shape[2]), weight_ih_t, bias, gates[start:stop].reshape(rows, -1))
    atomic_store(claims, 1 + k, 1)
    return True


@jit
def project_chunks(pipeline, gates):
    """The helper thread's job: chunks until none is left."""
    while project_next_chunk(pipeline, gates):
        pass


@jit
def start_pipeline(pipeline):
    """Announces the helper's staged job (see :func:`..helper.start_projection`), if any."""
    if pipeline is not None:
        announce(pipeline[5])


@jit
def chunk_span(steps, pipeline):
    """Steps the small loops run between two looks at the ``pipeline``: a chunk's, or all of them.
    The look sits outside the steps' own loop: inside it, it slowed each step of a batch-1 LSTM
    at H = 32 by a tenth, about 0.03 µs, whether the chunk was there or not."""
    return max(1, steps) if pipeline is None else pipeline[1]


@jit
def await_projection(t, pipeline, gates):
    """Before step t: its chunk is in ``gates``, computed here if nobody else has taken it."""
    if pipeline is not None and t % pipeline[1] == 0:
        claims, chunk = pipeline[0], pipeline[1]
        while atomic_load(claims, 1 + t // chunk) == 0:
            project_next_chunk(pipeline, gates)


@jit
def wait_for_post(mailbox, seen, spins):
    """The helper thread's wait: mailbox[0] once it differs from ``seen``, or ``seen`` after
    ``spins`` reads. mailbox[2] = ``seen`` on entry: the helper is back, done with job ``seen``."""
    atomic_store(mailbox, 2, seen)
    for _ in range(spins):
        posted = atomic_load(mailbox, 0)
        if posted != seen:
            return posted
    return seen


@jit
def announce(mailbox):
    """Adds one to mailbox[0], the count of jobs posted (a spinning helper sees it at once);
    returns the new count, the job's number."""
    return atomic_add(mailbox, 0, 1) + 1


@jit
def store(array, index, value):
    """``atomic_store`` for Python callers."""
    atomic_store(array, index, value)


@jit
def add(array, index, value):
    """``atomic_add`` for Python callers: sequentially consistent, so that two threads that each
    write one entry and then read the other's (the helper's sleep against a post) cannot both read
    the old values, as a release store followed by an acquire load can."""
    return atomic_add(array, index, value)
