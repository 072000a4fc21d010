"""Peak memory of one training step (forward + backward), measured in a process of its own.

    MALLOC_MMAP_THRESHOLD_=4096 MALLOC_TRIM_THRESHOLD_=0 MALLOC_TOP_PAD_=0 NUMPY_MADVISE_HUGEPAGE=0 \
        python benchmarks/memory_probe.py {lstmkit,torch} KIND T N I H LAYERS BIDIRECTIONAL

Prints the peak resident memory of the step above the memory held before it (weights, input
and upstream gradient already allocated, gradients cleared), in MiB: the kernel's high-water
mark (VmHWM, reset through /proc/self/clear_refs) minus the resident size before the step.
The malloc settings make every buffer of 4 KiB or more, of either framework, its own mapping,
returned to the system when freed, and keep no free memory at the heap's top, so the resident
size follows the live buffers (many small per-step ones as well as a few large) and not
malloc's caches; NumPy's huge pages are off, so a buffer counts its own pages and no more.
Buffers under 4 KiB still come from malloc's heap and are not seen: torch's per-step tensors at
batch 1 are that small, so its numbers there are lower bounds.
"""

from __future__ import annotations

import gc
import re
import sys


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

    for _ in range(2):  # warm-up: libraries loaded, kernels compiled, pools filled
        step()
    model.zero_grad()
    if framework == "torch":
        inputs.grad = None
    gc.collect()
    before = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # reset the high-water mark to the current resident size
    step()
    print((_status("VmHWM") - before) / 1024)


if __name__ == "__main__":
    main(sys.argv[1:])
