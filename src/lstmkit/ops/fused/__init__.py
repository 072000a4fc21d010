"""The fast paths of the LSTM and GRU: the reference's contract, everything that exists for speed.

:func:`lstm_forward_fused`, :func:`lstm_backward_fused`, :func:`gru_forward_fused` and
:func:`gru_backward_fused` take and return exactly what :mod:`lstmkit.ops.lstm` and
:mod:`lstmkit.ops.gru` do, and tests prove them equal (float64 to 1e-12, float32 to 1e-5).
Layers reach them through :func:`lstmkit.ops.backends.resolve_backend` (``backend="fast"``).
Nothing outside this package is needed to read the equations; nothing in it changes them.

Map of the fast path, from the call down:

=======================  ===================================================================
module                   what it does
=======================  ===================================================================
:mod:`.lstm`, :mod:`.gru`  the fused ops: pick the plan, run its loop, keep the cache
:mod:`.plan`             one :class:`Plan` per call from its sizes and a :class:`Tuning`
:mod:`.blas_loops`       a large layer's Python loop of BLAS products (batch last in inference)
:mod:`.helper`           the helper thread: the second core's share of a call
:mod:`.memory`           aligned copies, the scratch buffer, recycled cache arrays
:mod:`.compiled`         loads :mod:`.kernels` (and Numba) on first use
:mod:`.kernels`          the compiled loops: cells, steps, products, two-core and halves loops
:mod:`.intrinsics`       LLVM intrinsics the kernels inline: atomics, SIMD blocks, lanes
=======================  ===================================================================

Process-wide effects: the helper thread (one daemon thread, started on first use; switch it off
with ``LSTMKIT_HELPER_THREAD=0`` or :func:`set_helper_thread`), and OpenBLAS's worker timeout,
set by ``import lstmkit`` (:mod:`lstmkit._openblas`).
"""

from .gru import FusedGRUCache, gru_backward_fused, gru_forward_fused
from .helper import helper_thread_enabled, set_helper_thread
from .lstm import FusedLSTMCache, HalvesLSTMCache, lstm_backward_fused, lstm_forward_fused
from .memory import recycle_cache, release_scratch
from .plan import DEFAULT_TUNING, Plan, Tuning, choose_plan

__all__ = [
    "DEFAULT_TUNING",
    "FusedGRUCache",
    "FusedLSTMCache",
    "HalvesLSTMCache",
    "Plan",
    "Tuning",
    "choose_plan",
    "gru_backward_fused",
    "gru_forward_fused",
    "helper_thread_enabled",
    "lstm_backward_fused",
    "lstm_forward_fused",
    "recycle_cache",
    "release_scratch",
    "set_helper_thread",
]
