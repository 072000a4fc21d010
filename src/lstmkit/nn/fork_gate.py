"""A fork waits until no thread is inside an lstmkit computation.

``os.fork`` copies only the forking thread. If another thread was inside a computation at that
moment (a compiled kernel being compiled by Numba, an OpenBLAS product, a job on lstmkit's helper
thread), the child inherits the locks that thread held, held forever, and its first computation
can hang. So every module's forward (:meth:`~.module.Module.__call__`) and backward run inside
:data:`FORK_GATE`, and a fork handler (``os.register_at_fork``) makes the forking thread wait,
before the fork, until no other thread is inside; new computations wait meanwhile, and resume
after the fork. The child then starts with every lstmkit lock free.

A fork that has waited :data:`WAIT_S` seconds goes ahead anyway (a thread stuck inside must not
block the parent forever). Then the child, whose inherited locks may be held, refuses every
lstmkit computation with a clear RuntimeError instead of hanging. Computations that lstmkit does
not run (a NumPy product in another thread of the caller's) are not covered: OpenBLAS's own fork
handler can hang a parent whose other thread is inside a product, lstmkit or not. ``spawn`` and
``forkserver`` need none of this.
"""

from __future__ import annotations

import functools
import os
import threading
import time

WAIT_S = 60.0  # the longest a fork waits for other threads' computations to end


class ForkGate:
    """Counts the threads inside a computation (outermost entries only: a thread's nested
    forward/backward calls count once); a fork waits for the count to fall to the forking
    thread's own."""

    def __init__(self) -> None:
        self._condition = threading.Condition(threading.Lock())
        self._inside = 0
        self._forking = 0  # forks waiting or under way (several threads may fork at once)
        self._forking_inside = 0  # of those, the ones forked from inside a computation
        self._depth = threading.local()
        self.forked_mid_computation = False  # set in a child whose fork stopped waiting
        self._stuck = False  # whether the latest fork stopped waiting with other threads inside
        self.forks_that_waited = 0  # forks that found another thread inside (for tests and curiosity)

    def __enter__(self) -> None:
        depth = getattr(self._depth, "value", 0)
        if depth == 0:
            if self.forked_mid_computation:
                raise RuntimeError(
                    "lstmkit: this process was forked while another thread of its parent was inside an lstmkit "
                    f"computation that did not end within {WAIT_S:g} s, so locks that thread held (Numba's, "
                    "OpenBLAS's) may be held here for ever; lstmkit computes nothing in it rather than hang. Start "
                    "processes with multiprocessing's 'spawn' or 'forkserver' method, or fork while no other thread "
                    "computes"
                )
            with self._condition:
                while self._forking:
                    self._condition.wait()
                self._inside += 1
        self._depth.value = depth + 1

    def __exit__(self, *exception) -> None:
        self._depth.value -= 1
        if self._depth.value == 0:
            with self._condition:
                self._inside -= 1
                if self._inside == 0 or self._forking:
                    self._condition.notify_all()

    # ---- the fork handlers ----------------------------------------------------------------
    def before_fork(self) -> None:
        """In the forking thread: stop new computations and wait (up to WAIT_S) for the others to
        end. The gate's lock stays held through the fork."""
        self._condition.acquire()
        self._forking += 1
        inside = 1 if getattr(self._depth, "value", 0) else 0
        self._depth.forking_inside = inside
        self._forking_inside += inside  # threads forking from inside wait for the others, not each other
        deadline = time.monotonic() + WAIT_S
        self.forks_that_waited += self._inside > self._forking_inside
        while self._inside > self._forking_inside:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._condition.wait(left)
        self._stuck = self._inside > self._forking_inside

    def after_fork_in_parent(self) -> None:
        self._forking -= 1
        self._forking_inside -= self._depth.forking_inside
        self._condition.notify_all()
        self._condition.release()

    def after_fork_in_child(self) -> None:
        """The child's only thread is the forking one: the other threads' entries are gone."""
        self.forked_mid_computation = self.forked_mid_computation or self._stuck
        self._condition = threading.Condition(threading.Lock())
        self._inside = 1 if getattr(self._depth, "value", 0) else 0
        self._forking = self._forking_inside = 0


FORK_GATE = ForkGate()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=FORK_GATE.before_fork,
        after_in_parent=FORK_GATE.after_fork_in_parent,
        after_in_child=FORK_GATE.after_fork_in_child,
    )


def inside_fork_gate(method):
    """``method`` run inside :data:`FORK_GATE` (Module wraps every subclass's ``backward`` in it)."""

    @functools.wraps(method)
    def gated(*args, **kwargs):
        with FORK_GATE:
            return method(*args, **kwargs)

    gated.inside_fork_gate = True
    return gated
