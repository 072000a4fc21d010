"""How long NumPy's OpenBLAS worker threads spin after a product, set before NumPy loads OpenBLAS.

After a call that used two threads, OpenBLAS's worker busy-waits for its next job for 2**28 clock
ticks by default (about 0.1 s here) before it sleeps. lstmkit's two-core loops (batch-1 LSTM/GRU,
an LSTM on batch halves) run their second half in a thread of their own, and beside a spinning
worker that thread shares its core: a training step on batch halves took 133 ms instead of 99 in
a PTB loop, whose softmax products woke the worker before every step. OpenBLAS reads
``OPENBLAS_THREAD_TIMEOUT`` (log2 of the ticks, 4 to 30) once, when the library loads, so this
module sets it, unless the user did, before anything imports NumPy: 2**20 ticks (about 0.4 ms)
keeps the worker awake across a loop of back-to-back products and frees the core soon after.

Whether it took effect is known here only by what was imported before: ``WORKERS_SLEEP_SOON`` is
true when NumPy was not yet loaded (so OpenBLAS reads the value set here or the user's), or when
the user's environment already held a timeout of at most ``SOON``. lstmkit's training step on batch
halves runs only then (``lstmkit.ops.fused.plan.Tuning.halves_in_training`` defaults to it).

A process-wide effect: ``import lstmkit`` before NumPy sets ``OPENBLAS_THREAD_TIMEOUT=20`` in the
process's environment (inherited by its child processes), which every OpenBLAS product of the
process then follows: after a two-thread product the worker sleeps about 0.4 ms later instead of
about 0.1 s (a product right after such a pause wakes it, about 40 µs). To keep OpenBLAS's own
default, set ``OPENBLAS_THREAD_TIMEOUT`` yourself (any value is kept; above 22, lstmkit's training
step on batch halves is off), or import NumPy first.
"""

import os
import sys

TIMEOUT_VARIABLES = ("OPENBLAS_THREAD_TIMEOUT", "GOTO_THREAD_TIMEOUT")
TIMEOUT_LOG2 = 20
SOON = 22  # 2**22 ticks, a couple of milliseconds


def _configured_timeout():
    """The user's setting, as written (OpenBLAS reads the first of the two names), or None."""
    for name in TIMEOUT_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def _workers_sleep_soon() -> bool:
    value = _configured_timeout()
    if value is None and "numpy" not in sys.modules:  # else OpenBLAS has read its environment already
        value = os.environ["OPENBLAS_THREAD_TIMEOUT"] = str(TIMEOUT_LOG2)
    return value is not None and value.isdigit() and int(value) <= SOON


WORKERS_SLEEP_SOON = _workers_sleep_soon()
