"""Scratch buffers the fast paths reuse from call to call, one set per thread.

Why: a fresh array of more than 128 KiB is a fresh ``mmap`` from glibc, and every 4 KiB page of
it faults on first touch; on this machine that costs about 1.5 µs a page, so the (T, N, 4H)
pre-activations of a batch-1 inference (T=1000, H=32: 512 KiB) took longer to fault in than to
compute. onnxruntime keeps an arena for the same reason. Only temporaries that never leave the
call that asked for them may live here: the pre-activations of an inference, the
pre-activation gradients of a backward. Buffers over :data:`LARGEST_KEPT` bytes are not kept
(they are mapped with huge pages, whose faults are cheap next to the work on them).
"""

from __future__ import annotations

import math
import threading

import numpy as np

LARGEST_KEPT = 64 << 20

_buffers = threading.local()


def scratch(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised C-contiguous array of ``shape`` and ``dtype``, valid until this thread
    asks for ``name`` again: the caller must not let it (or a view of it) escape."""
    dtype = np.dtype(dtype)
    size = math.prod(shape) * dtype.itemsize
    if size > LARGEST_KEPT:
        return np.empty(shape, dtype)
    kept = getattr(_buffers, "by_name", None)
    if kept is None:
        kept = _buffers.by_name = {}
    buffer = kept.get(name)
    if buffer is None or buffer.size < size:
        buffer = kept[name] = np.empty(max(size, 1), np.uint8)
    return buffer[:size].view(dtype).reshape(shape)


def release() -> None:
    """Drop this thread's kept buffers (their memory goes back to the allocator)."""
    _buffers.by_name = {}
