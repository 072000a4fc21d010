"""Peak memory of one training step (forward + backward), measured in a process of its own.

    MALLOC_MMAP_THRESHOLD_=4096 MALLOC_TRIM_THRESHOLD_=0 MALLOC_TOP_PAD_=0 NUMPY_MADVISE_HUGEPAGE=0 \
        python benchmarks/memory_probe.py {lstmkit,torch} KIND T N I H LAYERS BIDIRECTIONAL

Prints the peak resident memory of the step above the memory held before it (weights, input
and upstream gradient already allocated, gradients cleared, lstmkit's per-thread scratch buffer
released, so that the step allocates it again and it counts), in MiB: the kernel's high-water
mark (VmHWM, reset through /proc/self/clear_refs) minus the resident size before the step.
The malloc settings make every buffer of 4 KiB or more, of either framework, its own mapping,
returned to the system when freed, and keep no free memory at the heap's top, so the resident
size follows the live buffers (many small per-step ones as well as a few large) and not
malloc's caches; NumPy's huge pages are off, so a buffer counts its own pages and no more.
Buffers under 4 KiB still come from malloc's heap and are not seen: torch's per-step tensors at
batch 1 are that small, so its numbers there are lower bounds.

A second number, printed after the first, counts the same step at the allocator instead: the
peak of the bytes live in the framework's own allocations above those live before the step.
For torch that is its CPU allocator's running total ("Total Allocated") as torch.profiler
records it at every allocation and free (with profile_memory=True), intermediate tensors of
its fused kernels included; for lstmkit, tracemalloc's peak, which counts every NumPy array's
data (NumPy reports them to it) and Python's own objects too. Neither sees malloc's caches, so
small per-step buffers count exactly.
"""

from __future__ import annotations

import gc
import json
import os
import re
import sys
import tempfile
import tracemalloc


def _status(field: str) -> int:
    with open("/proc/self/status") as handle:
        return int(re.search(rf"{field}:\s+(\d+)", handle.read()).group(1))  # KiB


def main(argv) -> None:
    framework, kind = argv[0], argv[1]
    steps, batch, features, hidden, layers = (int(v) for v in argv[2:7])
    bidirectional = argv[7] == "True"
    import numpy as np

    x = np.random.default_rng(1).standard_normal((steps, batch, features)).astype(np.float32)
    if framework == "torch":
        import torch

        model = getattr(torch.nn, kind)(features, hidden, layers, bidirectional=bidirectional)
        inputs = torch.from_numpy(x).requires_grad_(True)
        dout = torch.ones(steps, batch, (2 if bidirectional else 1) * hidden)

        def step():
            model.zero_grad()
            inputs.grad = None
            model(inputs)[0].backward(dout)
    else:
        import lstmkit

        model = getattr(lstmkit, kind)(features, hidden, layers, bidirectional=bidirectional, seed=0)
        dout = np.ones((steps, batch, (2 if bidirectional else 1) * hidden), np.float32)

        def step():
            model.zero_grad()
            model(x)
            model.backward(dout)

    def settle():
        model.zero_grad()
        if framework == "torch":
            inputs.grad = None
        else:
            lstmkit.ops.release_scratch()  # the step's scratch buffer counts in its own peak
        gc.collect()

    for _ in range(2):  # warm-up: libraries loaded, kernels compiled, pools filled
        step()
    settle()
    before = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # reset the high-water mark to the current resident size
    step()
    resident = (_status("VmHWM") - before) / 1024
    settle()
    allocated = _torch_allocated_peak(step) if framework == "torch" else _traced_peak(step)
    print(resident, allocated / 2**20)


def _traced_peak(step) -> int:
    """Bytes: tracemalloc's peak during ``step`` above what was traced when it began."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - before


def _torch_allocated_peak(step) -> int:
    """Bytes: the largest running total of torch's CPU allocations during ``step``, from the
    memory events torch.profiler writes (each carries the allocator's total after it)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        step()
    handle, path = tempfile.mkstemp(suffix=".json")
    os.close(handle)
    try:
        profiler.export_chrome_trace(path)
        with open(path) as trace:
            events = json.load(trace)["traceEvents"]
    finally:
        os.unlink(path)
    totals = [event["args"]["Total Allocated"] for event in events if event.get("name") == "[memory]"]
    return max([0, *totals])  # the total starts from 0 when profiling starts


if __name__ == "__main__":
    main(sys.argv[1:])
