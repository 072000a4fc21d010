"""Threads and processes (issue 28, points 5 and 6).

Threads: a module keeps one cache stack per thread, so several threads may train one shared layer
at once: each backward consumes its own thread's latest forward (a wrong pairing would give a
wrong ``dx``), and the parameter gradients of all threads add up. Inference under ``no_grad()``
on a shared layer stores nothing.

Fork: a forked child has none of the parent's threads, so ``lstmkit.ops.fused.helper`` forgets the
parent's helper thread (the child starts its own on demand) and ``lstmkit.ops.fused.memory``
drops the forking thread's scratch and recycled arrays. A fork waits until no other thread is
inside an lstmkit forward or backward (``lstmkit.nn.fork_gate``), so that the child inherits no
lock held (Numba compiling a kernel, OpenBLAS, the helper's job). The tests fork while the
parent's helper is idle, while another thread trains in a loop (its kernels compiling on first
use, from an empty Numba cache), and while a thread stays inside past the gate's wait; each child
must compute the parent's numbers, or refuse with a clear error in the last case, within a
timeout, never hang.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import lstmkit
from lstmkit.ops.fused import helper as helpers
from lstmkit.ops.fused import memory

THREADS, CALLS = 4, 60
CHILD_TIMEOUT_S = 60

# (kind, constructor arguments, input shape (T, N, I), dtype): sizes that reach the fast paths'
# helper thread (batch 1: the two-core loop and the pipelined projection; 11 rows: batch halves)
# and the reference ops.
SHARED_LAYERS = {
    "lstm-batch1-f32": (lstmkit.LSTM, dict(input_size=8, hidden_size=256), (40, 1, 8), np.float32),
    "lstm-halves-f64": (lstmkit.LSTM, dict(input_size=6, hidden_size=40, num_layers=2), (12, 11, 6), np.float64),
    "gru-bidir-f32": (lstmkit.GRU, dict(input_size=5, hidden_size=32, bidirectional=True), (20, 3, 5), np.float32),
    "rnn-reference-f64": (lstmkit.RNN, dict(input_size=4, hidden_size=9, backend="reference"), (7, 2, 4), np.float64),
}


def _shared_layer(name):
    layer_class, config, shape, dtype = SHARED_LAYERS[name]
    layer = layer_class(**config, dtype=dtype, seed=3)
    rng = np.random.default_rng(7)
    inputs = [rng.standard_normal(shape).astype(dtype) for _ in range(THREADS)]
    upstream = [rng.standard_normal((*shape[:2], layer.output_features)).astype(dtype) for _ in range(THREADS)]
    return layer, inputs, upstream


def _train_call(layer, x, dout):
    output, _ = layer(x)
    time.sleep(0)  # let another thread's forward in between this forward and its backward
    dx, _ = layer.backward(dout)
    return output, dx


def _in_threads(work, count=THREADS):
    """Run ``work(index)`` in ``count`` threads started together; re-raise the first exception."""
    barrier, errors = threading.Barrier(count), []

    def run(index):
        try:
            barrier.wait()
            work(index)
        except BaseException as error:  # noqa: BLE001  reported in the main thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish within 120 s"
    if errors:
        raise errors[0]


@pytest.mark.parametrize("name", SHARED_LAYERS)
def test_threads_training_one_shared_layer_get_their_own_gradients(name):
    """4 threads x 60 training calls on one layer: every dx equals the single-thread run's on the
    same input, bit for bit (each backward pairs with its own thread's forward), and the parameter
    gradients are the sum of all calls' (up to the order of the float sums)."""
    layer, inputs, upstream = _shared_layer(name)
    expected_dx, expected_grads = [], {}
    for x, dout in zip(inputs, upstream):
        layer.zero_grad()
        expected_dx.append(_train_call(layer, x, dout)[1])
        for parameter_name, parameter in layer.named_parameters():
            expected_grads[parameter_name] = expected_grads.get(parameter_name, 0) + CALLS * parameter.grad
    layer.zero_grad()
    wrong = []

    def work(index):
        for call in range(CALLS):
            _, dx = _train_call(layer, inputs[index], upstream[index])
            if not np.array_equal(dx, expected_dx[index]):
                wrong.append((index, call, float(np.max(np.abs(dx - expected_dx[index])))))
        assert layer._saved == []  # this thread's stack, empty once each forward had its backward

    _in_threads(work)
    assert wrong == [], f"{len(wrong)} of {THREADS * CALLS} calls returned a wrong dx, e.g. {wrong[:3]}"
    tolerance = 1e-12 if layer.dtype == np.float64 else 1e-5
    for parameter_name, parameter in layer.named_parameters():
        scale = float(np.max(np.abs(expected_grads[parameter_name])))
        error = float(np.max(np.abs(parameter.grad - expected_grads[parameter_name])))
        assert error <= tolerance * scale, f"grad of {parameter_name}: off by {error:.3g} (scale {scale:.3g})"


@pytest.mark.parametrize("name", SHARED_LAYERS)
def test_threads_inferring_on_one_shared_layer_get_correct_outputs(name):
    layer, inputs, _ = _shared_layer(name)
    with lstmkit.no_grad():
        expected = [layer(x)[0] for x in inputs]
    wrong = []

    def work(index):
        with lstmkit.no_grad():  # no_grad is per thread: each thread says it
            for call in range(CALLS):
                output, _ = layer(inputs[index])
                if not np.array_equal(output, expected[index]):
                    wrong.append((index, call))
        assert layer._saved == []

    _in_threads(work)
    assert wrong == []


def test_a_backward_pairs_with_a_forward_of_its_own_thread():
    layer = lstmkit.LSTM(3, 4, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    output, _ = layer(x)
    errors = []

    def backward_elsewhere():
        try:
            layer.backward(np.ones_like(output))
        except RuntimeError as error:
            errors.append(str(error))

    thread = threading.Thread(target=backward_elsewhere)
    thread.start()
    thread.join()
    assert (
        len(errors) == 1
        and "LSTM.backward: expected a matching forward call before it, got none in this thread" in (errors[0])
    )
    dx, _ = layer.backward(np.ones_like(output))  # the forward's own thread still has its cache
    assert dx.shape == x.shape and layer._saved == []


def test_a_thread_that_ends_leaves_no_cache_behind():
    layer = lstmkit.GRU(3, 4, seed=0)
    thread = threading.Thread(target=layer, args=(np.zeros((5, 2, 3), dtype=np.float32),))
    thread.start()
    thread.join()
    assert layer._saved == []  # the main thread's stack; the ended thread's went with it
    layer.clear_saved()


# ---- fork ----------------------------------------------------------------------------------------
FORK_LAYER = dict(input_size=8, hidden_size=256)  # batch 1, 40 steps: its training forward runs on two cores
FORK_SHAPE = (40, 1, 8)


def _fork_reference():
    """A training call on a fixed layer and input: (output, dx, grad of weight_hh_l0)."""
    layer = lstmkit.LSTM(**FORK_LAYER, seed=11)
    x = np.random.default_rng(11).standard_normal(FORK_SHAPE).astype(np.float32)
    output, _ = layer(x)
    dx, _ = layer.backward(np.ones_like(output))
    return output, dx, layer.weight_hh_l0.grad


def _child(connection):
    try:
        result = _fork_reference()
        started_here = helpers._helper is None or helpers._helper.pid == os.getpid()
        connection.send(("ok", result, started_here))
    except BaseException as error:  # noqa: BLE001  the parent reports it
        connection.send(("error", f"{type(error).__name__}: {error}", None))
    finally:
        connection.close()


def _fork_and_compare(expected):
    """Fork a child that computes :func:`_fork_reference`; assert it equals ``expected`` within
    CHILD_TIMEOUT_S, killing a child that hangs."""
    status, result, started_here = _result_of(*_start_child())
    assert status == "ok", f"the forked child failed: {result}"
    assert started_here, "the child used its parent's helper thread object"
    for got, want in zip(result, expected):
        np.testing.assert_array_equal(got, want)


def _fork_while_idle() -> None:
    """Run in a process of its own (see :func:`_in_a_process`): fork once the helper is idle."""
    expected = _fork_reference()  # starts this process's helper where the machine has 2 cores
    assert helpers._helper is not None or not helpers.helper_thread_enabled()
    memory.scratch((1000,), np.float64)  # the forking thread's scratch buffer, dropped in the child
    _fork_and_compare(expected)
    print("forked while idle: the child computed as the parent")


def _in_a_process(function: str, **environment) -> str:
    """Run ``function`` of this file in a new Python process with ``environment`` added, within
    a timeout: a fork that hangs (in the parent or the child) fails the test instead of blocking it.
    Returns what it printed."""
    command = [sys.executable, "-c", f"import test_threads_fork as t; t.{function}()"]
    env = dict(os.environ, **environment)
    try:
        done = subprocess.run(
            command, cwd=os.path.dirname(__file__), env=env, capture_output=True, text=True, timeout=2 * CHILD_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{function} did not finish within {2 * CHILD_TIMEOUT_S} s: a fork hung")
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_child_forked_while_the_helper_is_idle_computes_as_the_parent():
    assert "the child computed as the parent" in _in_a_process("_fork_while_idle")


def _start_child():
    """A forked child computing :func:`_fork_reference`: ``(process, receiver)``."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(sender,), daemon=True)
    child.start()
    sender.close()
    return child, receiver


def _result_of(child, receiver):
    """The child's message, or a failure if it gives none within CHILD_TIMEOUT_S (killed then)."""
    try:
        assert receiver.poll(CHILD_TIMEOUT_S), f"the forked child gave no result within {CHILD_TIMEOUT_S} s (a hang)"
        return receiver.recv()
    finally:
        child.join(timeout=CHILD_TIMEOUT_S)
        if child.is_alive():
            child.kill()
            child.join()


FORKS_WHILE_BUSY = 6


def _fork_while_busy() -> None:
    """Run in a process of its own with an empty Numba cache: a thread trains one layer in a
    loop (its first call compiles the kernels) while this thread forks FORKS_WHILE_BUSY times;
    every child must compute what this process computes afterwards."""
    from lstmkit.nn.fork_gate import FORK_GATE

    stop, calls = threading.Event(), [0]

    def train():
        layer = lstmkit.LSTM(**FORK_LAYER, seed=5)
        x = np.random.default_rng(5).standard_normal(FORK_SHAPE).astype(np.float32)
        while not stop.is_set():
            output, _ = layer(x)
            layer.backward(np.ones_like(output))
            calls[0] += 1

    thread = threading.Thread(target=train, daemon=True)
    thread.start()
    results, rng = [], np.random.default_rng(0)
    for _ in range(FORKS_WHILE_BUSY):
        time.sleep(rng.uniform(0.0, 0.05))
        results.append(_result_of(*_start_child()))
    stop.set()
    thread.join(timeout=CHILD_TIMEOUT_S)
    expected = _fork_reference()
    for status, result, _ in results:
        assert status == "ok", f"a child forked while another thread computed failed: {result}"
        for got, want in zip(result, expected):
            np.testing.assert_array_equal(got, want)
    assert FORK_GATE.forks_that_waited >= 1, "no fork found the other thread computing: the test tested nothing"
    print(f"forked {FORKS_WHILE_BUSY} times while busy ({FORK_GATE.forks_that_waited} waited, {calls[0]} calls)")


def test_children_forked_while_another_thread_trains_compute_as_the_parent(tmp_path):
    printed = _in_a_process("_fork_while_busy", NUMBA_CACHE_DIR=str(tmp_path))
    assert f"forked {FORKS_WHILE_BUSY} times while busy" in printed


def _fork_while_stuck() -> None:
    """Run in a process of its own: a thread stays inside the gate longer than a fork waits; the
    fork goes ahead after WAIT_S, and the child refuses to compute, with a clear error."""
    from lstmkit.nn import fork_gate

    fork_gate.WAIT_S = 0.3
    inside = threading.Event()

    def stay_inside():
        with fork_gate.FORK_GATE:
            inside.set()
            time.sleep(3)

    threading.Thread(target=stay_inside, daemon=True).start()
    inside.wait()
    started = time.monotonic()
    status, message, _ = _result_of(*_start_child())
    waited = time.monotonic() - started
    assert status == "error" and message.startswith("RuntimeError: lstmkit: this process was forked while another"), (
        status,
        message,
    )
    assert "'spawn' or 'forkserver'" in message and waited >= 0.3
    print("the child refused: " + message)


def test_a_child_forked_past_the_gates_wait_refuses_to_compute():
    assert "the child refused: RuntimeError" in _in_a_process("_fork_while_stuck")


def _forks_from_inside_and_at_once() -> None:
    """Run in a process of its own: (1) a thread that forks from inside a computation waits for the
    other threads' computations only, not for the gate's whole wait; (2) two threads forking at
    once (one from inside a computation) while a third starts computing: both children compute
    (a computation let in between the two forks made the second wait out WAIT_S, and its child
    refuse)."""
    from lstmkit.nn import fork_gate
    from lstmkit.nn.module import Module

    fork_gate.WAIT_S = 5.0
    started = time.monotonic()
    events = []

    class Run(Module):
        def __init__(self, body):
            super().__init__()
            self.body = body

        def forward(self):
            return self.body()

    def compute(body):
        with lstmkit.no_grad():
            Run(body)()

    def fork(name):
        pid = os.fork()
        if pid == 0:
            os._exit(3 if fork_gate.FORK_GATE.forked_mid_computation else 0)
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        events.append((name, code, time.monotonic() - started))

    inside = threading.Event()
    other = threading.Thread(target=compute, args=(lambda: (inside.set(), time.sleep(0.2)),))
    other.start()
    inside.wait()
    compute(lambda: fork("from inside"))
    other.join()
    name, code, at = events.pop()
    assert code == 0 and at < 2.0, f"a fork from inside a computation took {at:.2f} s (child exit {code})"

    inside.clear()
    started = time.monotonic()
    threads = [threading.Thread(target=compute, args=(lambda: (inside.set(), time.sleep(0.3)),))]
    threads[0].start()
    inside.wait()
    threads.append(threading.Thread(target=compute, args=(lambda: (fork("A, inside"), time.sleep(0.3)),)))
    threads.append(threading.Thread(target=fork, args=("B, outside",)))
    threads.append(threading.Thread(target=compute, args=(lambda: events.append(("D computes", 0, 0.0)),)))
    for thread in threads[1:]:
        thread.start()
        time.sleep(0.1)
    for thread in threads:
        thread.join(timeout=CHILD_TIMEOUT_S)
    names = [name for name, _, _ in events]
    assert sorted(names) == ["A, inside", "B, outside", "D computes"], events
    assert all(code == 0 for _, code, _ in events), f"a child refused to compute: {events}"
    print("forks from inside and at once: every child computes")


def test_forks_from_inside_a_computation_and_at_once_do_not_wait_for_each_other():
    assert "every child computes" in _in_a_process("_forks_from_inside_and_at_once")
