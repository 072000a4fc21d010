"""The helper thread and the input projection computed beside the time loop (ops/fused/helper.py):
the same numbers whoever computes each chunk, from any thread, in a forked child; and the kernels
under it."""

import hashlib
import multiprocessing
import subprocess
import sys
import threading

import numba
import numpy as np
import pytest

import lstmkit
from lstmkit.ops.fused import helper as helpers
from lstmkit.ops.fused import memory
from lstmkit.ops.fused.compiled import compiled_kernels
from lstmkit.ops.fused.intrinsics import simd as _simd
from lstmkit.ops.fused.intrinsics.atomics import atomic_add, atomic_load
from lstmkit.ops.fused.kernels import jit
from lstmkit.ops.fused.plan import Plan, choose_plan, transposes_recurrent_weight
from lstmkit.ops.recurrence import input_projection

kernels = compiled_kernels()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows,inner,width", [(1, 3, 5), (4, 64, 512), (5, 7, 6), (9, 32, 128), (8, 1, 3), (13, 70, 2)])
def test_small_matrix_product_equals_numpy(dtype, rows, inner, width):
    rng = np.random.default_rng(rows * inner + width)
    a, w = rng.standard_normal((rows, inner)).astype(dtype), rng.standard_normal((width, inner)).astype(dtype)
    out = np.full((rows, width), np.nan, dtype=dtype)
    kernels.matmul_transposed_into(a, w, out)
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(out, a @ w.T, rtol=tolerance, atol=tolerance * np.sqrt(inner))


def test_the_kernels_cache_key_covers_every_compiled_module():
    """Numba keys a cached function on its own file's text; every kernel's key here also holds the
    SHA-256 of all kernel and intrinsic modules (kernels/jit.py), generated at import."""
    digest = hashlib.sha256()
    for package in ("kernels", "intrinsics"):
        for path in sorted((jit.FUSED_DIRECTORY / package).glob("*.py")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    assert digest.hexdigest() == jit.SOURCES_SHA256
    for kernel in (kernels.lstm_loop_forward, kernels.matmul_into, kernels.gru_cell_forward):
        stamp = kernel._cache._impl.locator.get_source_stamp()
        assert stamp[1] == jit.SOURCES_SHA256


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "rows,inner,width",
    [
        (1, 32, 128),
        (1, 32, 129),
        (4, 64, 256),
        (9, 32, 100),
        (3, 7, 9),
        (8, 1, 40),
        (5, 70, 2),
        (12, 16, 300),
        (1, 20, 240),
        (1, 9, 120),
        (2, 5, 247),
    ],
)
@pytest.mark.parametrize("aligned", [True, False])
def test_block_product_equals_numpy(dtype, rows, inner, width, aligned):
    """matmul_into's register blocks (four rows and one; wide, four, two and one vectors, then single
    columns) on aligned and unaligned operands."""
    rng = np.random.default_rng(rows * inner + width)
    a, b = rng.standard_normal((rows, inner)).astype(dtype), rng.standard_normal((inner, width)).astype(dtype)
    if aligned:
        b = memory.aligned_copy(b, dtype)
    else:  # one entry past a 64-byte boundary
        shifted = memory.aligned_copy(np.zeros(b.size + 1), dtype)[1:].reshape(b.shape)
        shifted[...], b = b, shifted
    assert (b.ctypes.data % 64 == 0) == aligned
    out = np.full((rows, width), np.nan, dtype=dtype)
    kernels.matmul_into(a, b, out)
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(out, a @ b, rtol=tolerance, atol=tolerance * np.sqrt(inner))


@pytest.mark.parametrize("rows,vectors", [(1, 8), (4, 2), (1, 1), (2, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_block_kernel_of_32_byte_vectors_equals_numpy(rows, vectors, dtype):
    """The blocks of a CPU without AVX-512 (32-byte vectors), compiled and run here too, at an
    offset row and column (out[n : n+rows, j : j+width] written, nothing else)."""
    kernel = _simd.block_kernel(rows, vectors, vector_bytes=32)

    @numba.njit
    def call(a, n, b, out, j):
        kernel(a, n, b, out, j)

    width = vectors * 32 // np.dtype(dtype).itemsize
    rng = np.random.default_rng(rows + vectors)
    a, b = rng.standard_normal((rows + 2, 11)).astype(dtype), rng.standard_normal((11, width + 5)).astype(dtype)
    out = np.full((rows + 2, width + 5), np.nan, dtype=dtype)
    call(a, 1, b, out, 3)
    expected = np.full_like(out, np.nan)
    expected[1 : 1 + rows, 3 : 3 + width] = a[1 : 1 + rows] @ b[:, 3 : 3 + width]
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(out, expected, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("vector_bytes", [32, _simd.VECTOR_BYTES])
@pytest.mark.parametrize("short_by", [1, 2, 3])  # lanes - left, with ``left`` columns in the block
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_masked_tail_block_writes_only_the_columns_left(vector_bytes, short_by, dtype):
    """The last ``left`` columns (fewer than a vector) of one row, masked: the next row's first
    entries, which an unmasked vector would overwrite, and b's past its rows stay untouched."""
    kernel = _simd.block_kernel(1, 1, vector_bytes=vector_bytes, masked=True)

    @numba.njit
    def call(a, n, b, out, j):
        kernel(a, n, b, out, j)

    left = vector_bytes // np.dtype(dtype).itemsize - short_by
    width = 5 + left
    rng = np.random.default_rng(left)
    a, b = rng.standard_normal((3, 9)).astype(dtype), rng.standard_normal((9, width)).astype(dtype)
    out = np.full((3, width), np.nan, dtype=dtype)
    call(a, 1, b, out, 5)
    expected = np.full_like(out, np.nan)
    expected[1, 5:] = a[1] @ b[:, 5:]
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(out, expected, rtol=tolerance, atol=tolerance)


def test_masked_block_is_one_vector_wide():
    with pytest.raises(ValueError, match="one vector wide, got vectors=2"):
        _simd.block_kernel(1, 2, masked=True)


def test_block_kernel_rejects_arrays_it_cannot_read():
    @numba.njit
    def call(a, b, out):
        _simd.narrow_block(a, 0, b, out, 0)

    a = np.ones((2, 4))
    with pytest.raises(numba.core.errors.TypingError, match="C-contiguous 2-D"):
        call(a[:, ::2], np.ones((2, 8)), np.ones((2, 8)))
    with pytest.raises(numba.core.errors.TypingError, match="one float dtype"):
        call(a, np.ones((4, 8), dtype=np.float32), np.ones((2, 8)))


@pytest.mark.parametrize("shape", [(5, 7), (128, 32), (1, 1), (384, 128), (37, 100)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("source_dtype", [np.float32, np.float64])
def test_aligned_copy_is_an_aligned_equal_copy(shape, dtype, source_dtype):
    """Of a transposed matrix: by the register tiles where the dtypes match, by NumPy where not."""
    array = np.random.default_rng(0).standard_normal(shape).astype(source_dtype)
    copy = memory.aligned_copy(array.T, dtype)
    assert copy.ctypes.data % 64 == 0 and copy.flags.c_contiguous and copy.dtype == dtype
    np.testing.assert_array_equal(copy, array.T.astype(dtype))


@pytest.mark.parametrize("shape", [(8, 8), (4, 4), (16, 24), (9, 17), (3, 5), (1, 1), (100, 37), (512, 128)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("column", [0, 3])
def test_transpose_into_equals_numpy(shape, dtype, column):
    """Whole tiles in registers (8 x 8 float32, 4 x 4 float64), then the rows and columns past them,
    into columns ``column`` onwards of a wider target, nothing else written."""
    source = np.random.default_rng(shape[0]).standard_normal(shape).astype(dtype)
    target = np.full((shape[1], column + shape[0] + 2), np.nan, dtype=dtype)
    kernels.transpose_into(source, target, column)
    expected = np.full_like(target, np.nan)
    expected[:, column : column + shape[0]] = source.T
    np.testing.assert_array_equal(target, expected)


@pytest.mark.parametrize("rows,inner,width", [(1, 64, 256), (4, 19, 40), (6, 3, 5)])
def test_block_product_reads_the_first_columns_of_a_wider_left_operand(rows, inner, width):
    """matmul_into(a, b) with a (N, ≥K), b (K, G): a's first K columns, as the two-core loop's
    exchange rows (padded to a cache line) are read."""
    rng = np.random.default_rng(inner)
    a, b = rng.standard_normal((rows, inner + 7)), rng.standard_normal((inner, width))
    out = np.full((rows, width), np.nan)
    kernels.matmul_into(a, b, out)
    np.testing.assert_allclose(out, a[:, :inner] @ b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "batch,hidden", [(1, 32), (2, 7), (3, 64), (4, 5), (1, 128), (7, 129), (1, 200), (8, 129), (10, 200)]
)
def test_recurrent_product_takes_w_hh_stored_or_transposed(batch, hidden):
    rng = np.random.default_rng(batch + hidden)
    h, weight_hh = rng.standard_normal((batch, hidden)), rng.standard_normal((4 * hidden, hidden))
    transposed = transposes_recurrent_weight(hidden, rows=batch)
    chosen = memory.compiled_loop_weight(weight_hh, np.float64, transposed)
    assert transposed == (hidden <= 128 or batch >= 8)
    assert chosen.flags.c_contiguous and chosen.shape == ((hidden, 4 * hidden) if transposed else weight_hh.shape)
    assert not transposed or chosen.ctypes.data % 64 == 0
    for layout in (weight_hh, np.ascontiguousarray(weight_hh.T), chosen):
        out = np.full((batch, 4 * hidden), np.nan)
        kernels.recurrent_product(h, layout, out)
        np.testing.assert_allclose(out, h @ weight_hh.T, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("helper_first", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch,hidden", [(5, 4), (8, 4), (17, 130), (15, 130)])
def test_lstm_batch_halves_give_the_reference_whoever_runs_the_second(helper_first, dtype, batch, hidden):
    """The second half run by the helper's job before the caller looks (True), or claimed by the
    caller itself (False, a helper that never started): the same inference, and the same training
    forward and backward (every gradient), as the reference. At H = 130 the halves read W_hh as
    stored (7 rows) or transposed (8 rows and 9), with columns past the last whole vector."""
    from lstmkit.ops.fused.lstm import HalvesLSTMCache, lstm_backward_fused, lstm_forward_fused
    from lstmkit.ops.lstm import LSTMWeights, lstm_backward, lstm_forward

    rng = np.random.default_rng(7)
    steps, features = 6, 3
    shapes = [(4 * hidden, features), (4 * hidden, hidden), (4 * hidden,), (4 * hidden,)]
    weights = LSTMWeights(*((rng.standard_normal(shape) / np.sqrt(hidden)).astype(dtype) for shape in shapes))
    x = rng.standard_normal((steps, batch, features)).astype(dtype)
    h0, c0, dh, dc = (rng.standard_normal((batch, hidden)).astype(dtype) for _ in range(4))
    doutput = rng.standard_normal((steps, batch, hidden)).astype(dtype)
    expected = lstm_forward(x, h0, c0, weights)
    expected_gradients = lstm_backward(doutput, dh, dc, expected[3])

    class SynchronousHelper:
        mailbox = np.full(3, 1 << 40, dtype=np.int64)  # "back in its wait" at once

        def first_of_its_kind(self, function, dtype):
            return False

        def stage(self, function, *arguments):
            if helper_first:
                function(*arguments)

    helper = SynchronousHelper()
    transposed = transposes_recurrent_weight(hidden, rows=batch // 2)
    plans = {
        training: Plan("halves", "halves" if training else None, transposed_weight=transposed)
        for training in (True, False)
    }
    inference = lstm_forward_fused(x, h0, c0, weights, keep_cache=False, plan=plans[False], helper=helper)
    *training, cache = lstm_forward_fused(x, h0, c0, weights, plan=plans[True], helper=helper)
    assert inference[3] is None and isinstance(cache, HalvesLSTMCache)
    dx, dh0, dc0, dweights = lstm_backward_fused(doutput, dh, dc, cache, helper=helper)
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    gradients = (dx, dh0, dc0, *dweights[:4]), (*expected_gradients[:3], *expected_gradients[3][:4])
    for actual, reference in [*zip(inference[:3], expected[:3]), *zip(training, expected[:3]), *zip(*gradients)]:
        assert actual.dtype == dtype and actual.flags.c_contiguous
        np.testing.assert_allclose(actual, reference, rtol=tolerance, atol=tolerance)


@numba.njit(nogil=True)
def take_numbers(ready, counter, taken):
    """Once both threads are ready (so that they race), fills ``taken`` with numbers drawn from
    counter[0] by atomic addition. (With ``v = counter[0]; counter[0] = v + 1`` instead, the
    test below fails: checked by hand.)"""
    atomic_add(ready, 0, 1)
    while atomic_load(ready, 0) < 2:
        pass
    for i in range(taken.shape[0]):
        taken[i] = atomic_add(counter, 0, 1)


def test_atomic_add_hands_out_each_value_once_across_threads():
    take_numbers(np.full(1, 2, dtype=np.int64), np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64))  # compiled
    ready, counter = np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64)
    taken = [np.zeros(200_000, dtype=np.int64) for _ in range(2)]
    threads = [threading.Thread(target=take_numbers, args=(ready, counter, mine)) for mine in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter[0] == 400_000
    assert np.array_equal(np.sort(np.concatenate(taken)), np.arange(400_000))


def _announce(pipeline):
    """Announces a staged projection as a loop does, then wakes the helper if it sleeps: it may
    have gone to sleep since the stage (a loop's announce leaves it asleep then, and computes every
    chunk itself), here while ``start_pipeline`` compiled, say."""
    kernels.start_pipeline(pipeline)
    helpers.resolve_helper(helpers.PROCESS_HELPER).wake_if_sleeping()


def _pipelined_gates(x, weight_ih, bias, by_helper):
    """The gates a pipeline fills, a chunk a step: every chunk computed by the helper thread, or
    every chunk by the caller (as a loop does when no helper runs)."""
    helper = helpers.resolve_helper(helpers.PROCESS_HELPER) if by_helper else None

    def pipeline_into(gates):
        return helpers.start_projection(x, weight_ih, bias, gates, 1, helper)

    gates = np.full((*x.shape[:2], weight_ih.shape[0]), np.nan, dtype=x.dtype)
    if not by_helper:
        pipeline = pipeline_into(gates)
        while kernels.project_next_chunk(pipeline, gates):
            pass
        return gates
    pipeline_into(np.empty_like(gates))  # the first job of a dtype runs in the caller (see Helper.first_of_its_kind)
    pipeline = pipeline_into(gates)  # staged
    _announce(pipeline)  # the helper takes the job (nothing here claims a chunk)
    for _ in range(10_000):
        if pipeline[0][1:].all():
            return gates
        threading.Event().wait(0.001)
    raise AssertionError("the helper did not compute the chunks")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_projection_is_the_same_whoever_computes_each_chunk(dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((37, 2, 5)).astype(dtype)
    weight_ih, bias = rng.standard_normal((24, 5)).astype(dtype), rng.standard_normal(24).astype(dtype)
    by_helper = _pipelined_gates(x, weight_ih, bias, by_helper=True)
    alone = _pipelined_gates(x, weight_ih, bias, by_helper=False)
    np.testing.assert_array_equal(by_helper, alone)  # bit for bit: one kernel computes every chunk
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(alone, input_projection(x, weight_ih, bias), rtol=tolerance, atol=tolerance)
    without_bias = _pipelined_gates(x, weight_ih, None, by_helper=False)
    np.testing.assert_allclose(without_bias, input_projection(x, weight_ih), rtol=tolerance, atol=tolerance)


def _layers(kind):
    """A batch-1 layer of 300 steps whose default plan computes the projection beside the loop."""
    layer = getattr(lstmkit, kind)(64, 32, seed=1, dtype=np.float64)
    x = np.random.default_rng(2).standard_normal((300, 1, 64))
    return layer, x


def _run(layer, x):
    with lstmkit.no_grad():
        output, state = layer(x)
    return output


@pytest.fixture
def helper_thread_switch():
    """Restores set_helper_thread's choice after a test that switches it."""
    saved = helpers._switched_on
    yield helpers.set_helper_thread
    helpers.set_helper_thread(saved)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_pipelined_layer_equals_the_one_product_projection(kind, helper_thread_switch):
    layer, x = _layers(kind)
    gate_count = {"LSTM": 4, "GRU": 3}[kind]
    assert choose_plan(300, 1, 64, 32, gate_count, False, True).pipelined  # with a helper: pipelined
    pipelined = _run(layer, x)
    helper_thread_switch(False)
    assert not helpers.helper_thread_enabled()
    assert not choose_plan(300, 1, 64, 32, gate_count, False, False).pipelined
    np.testing.assert_allclose(pipelined, _run(layer, x), rtol=0, atol=1e-12)
    helper_thread_switch(True)
    np.testing.assert_array_equal(pipelined, _run(layer, x))


def test_set_helper_thread_takes_a_bool(helper_thread_switch):
    with pytest.raises(TypeError, match="enabled must be True, False or None, got 0"):
        helper_thread_switch(0)


HELPER_FROM_ENVIRONMENT = """
import threading
import numpy as np
import lstmkit
from lstmkit.ops.fused import helper
layer = lstmkit.LSTM(64, 32, seed=1)
with lstmkit.no_grad():
    layer(np.ones((300, 1, 64), np.float32))
print(helper.helper_thread_enabled(), any(t.name == "lstmkit-helper" for t in threading.enumerate()))
"""


@pytest.mark.parametrize("value,expected", [("0", "False False"), ("off", "False False"), ("1", "True True")])
def test_the_environment_switches_the_helper_thread(value, expected):
    """LSTMKIT_HELPER_THREAD=0 (or off): no helper thread is ever started, and calls run alone."""
    environment = {**__import__("os").environ, "LSTMKIT_HELPER_THREAD": value}
    result = subprocess.run(
        [sys.executable, "-c", HELPER_FROM_ENVIRONMENT], capture_output=True, text=True, env=environment
    )
    assert result.returncode == 0, result.stderr
    if helpers._usable_cores() < 2:  # one core: never a helper, whatever the variable says
        expected = "False False"
    assert result.stdout.split() == expected.split()


LARGE_CALL = """
import threading
import numpy as np
import lstmkit
from lstmkit.ops.fused import choose_plan
layer = lstmkit.LSTM(8, 512, seed=1)
with lstmkit.no_grad():
    layer(np.ones((5, 64, 8), np.float32))
started = any(thread.name == "lstmkit-helper" for thread in threading.enumerate())
print(choose_plan(5, 64, 8, 512, 4, False, True).forward, started)
"""


def test_a_call_whose_plan_needs_no_helper_starts_none():
    result = subprocess.run([sys.executable, "-c", LARGE_CALL], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["batch_last", "False"]


def test_a_bad_helper_thread_variable_is_refused(monkeypatch, helper_thread_switch):
    monkeypatch.setenv("LSTMKIT_HELPER_THREAD", "maybe")
    helper_thread_switch(None)  # the environment's choice
    with pytest.raises(ValueError, match="LSTMKIT_HELPER_THREAD must be 1 or 0.*'maybe'"):
        helpers.helper_thread_enabled()


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_the_loop_announces_the_staged_projection(kind):
    """A pipelined call stages the helper's job, and its compiled loop announces it: one job a call."""
    layer, x = _layers(kind)
    _run(layer, x)  # the first job of a dtype runs in the caller (see Helper.first_of_its_kind)
    mailbox = helpers.resolve_helper(helpers.PROCESS_HELPER).mailbox
    for _ in range(3):
        posted = mailbox[0]
        _run(layer, x)
        assert mailbox[0] == posted + 1


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_layers_called_from_two_threads_at_once(kind):
    layer, x = _layers(kind)
    expected = _run(layer, x)
    results = [[], []]

    def calls(results):
        for _ in range(30):
            results.append(_run(layer, x))

    threads = [threading.Thread(target=calls, args=(mine,)) for mine in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for output in results[0] + results[1]:
        np.testing.assert_array_equal(output, expected)


def _child(connection):
    layer, x = _layers("LSTM")
    connection.send((_run(layer, x), helpers._helper is not None and helpers._helper.pid))
    connection.close()


def test_a_forked_child_starts_its_own_helper():
    layer, x = _layers("LSTM")
    expected = _run(layer, x)  # the parent's helper is running now
    assert helpers._helper is not None
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(sender,))
    child.start()
    output, child_helper_pid = receiver.recv()
    child.join(timeout=60)
    assert child.exitcode == 0
    np.testing.assert_array_equal(output, expected)
    assert child_helper_pid == child.pid


def test_the_first_job_of_each_dtype_runs_in_the_callers_thread():
    """Compiling a job in the helper would hold the GIL for seconds (and abort inside LLVM if
    the process ended meanwhile), so the first projection of each dtype runs whole where it is
    started; the next is staged, nothing computed until the loop announces it, then the helper's."""
    helper = helpers.Helper(kernels)  # a fresh helper, which has run no job yet
    rng = np.random.default_rng(8)
    x, weight_ih = rng.standard_normal((9, 1, 3)), rng.standard_normal((8, 3))
    first = np.full((9, 1, 8), np.nan)
    pipeline = helpers.start_projection(x, weight_ih, None, first, 1, helper)
    assert pipeline[0][0] == 9 and pipeline[0][1:].all() and helper._job is None
    kernels.start_pipeline(pipeline)  # as the loop does: nothing to announce to the helper
    assert helper.mailbox[0] == 0
    gates = np.full_like(first, np.nan)
    pipeline = helpers.start_projection(x, weight_ih, None, gates, 1, helper)
    assert helper._job is not None
    threading.Event().wait(0.05)
    assert not pipeline[0].any() and np.isnan(gates).all()  # staged, not announced: the helper waits
    kernels.start_pipeline(pipeline)
    helper.wake_if_sleeping()
    for _ in range(5000):
        if pipeline[0][1:].all():
            break
        threading.Event().wait(0.001)
    assert pipeline[0][1:].all()  # every chunk, none of them computed in this thread
    np.testing.assert_array_equal(gates, first)
