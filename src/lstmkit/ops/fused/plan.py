"""Which loop a fused call runs: one :class:`Plan` per call, chosen from its sizes by :func:`choose_plan`.

The thresholds are a :class:`Tuning` (today's defaults measured on a 2-core AVX-512 machine,
with ``benchmarks/ab.py``); a test or a benchmark passes its own ``Tuning`` or ``Plan`` to the
fused ops to reach any loop. The numbers never depend on the plan: every loop gives the
reference's results (float64 to 1e-12, float32 to 1e-5).

=================  ==========================================================================
forward loop       what runs
=================  ==========================================================================
``"compiled"``     a small layer: the whole time loop compiled, the recurrent product in
                   registers (:mod:`.kernels.lstm`, :mod:`.kernels.gru`), optionally with the
                   input projection computed beside it on the helper thread (``pipelined``)
``"two_cores"``    a small batch-1 layer: the compiled loop shared by two cores, half of the
                   units each (:mod:`.kernels.two_cores`)
``"halves"``       an LSTM of a few rows or more: two compiled loops, half of the batch each,
                   on two cores, no BLAS call (:mod:`.kernels.halves`)
``"blas"``         a large layer in training: a Python loop of BLAS products (:mod:`.blas_loops`)
``"batch_last"``   a large LSTM's inference: the same with states stored batch last (a GRU's runs ``"blas"``)
=================  ==========================================================================

The backward follows the forward: ``"halves"`` after a forward on halves, else ``"compiled"``
for a small layer and ``"blas"`` for a large one (None for an inference).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ..._openblas import WORKERS_SLEEP_SOON

FORWARD_LOOPS = ("compiled", "two_cores", "halves", "blas", "batch_last")
BACKWARD_LOOPS = ("compiled", "halves", "blas", None)


@dataclass(frozen=True)
class Tuning:
    """The thresholds :func:`choose_plan` decides by; the defaults are what lstmkit uses.

    ``small_layer_multiply_adds``, ``forward_factor``, ``inference_factor``: a layer whose
    recurrent product per step, N x H x G·H multiply-adds, is at most ``small_layer_multiply_adds``
    runs its backward loop compiled, its training forward up to ``forward_factor`` times as many,
    its inference up to ``inference_factor`` times as many; a larger one calls BLAS from Python,
    where the call's microseconds no longer matter (``benchmarks/ab.py loops`` times both at the
    limits).

    ``transposed_product_max_hidden``, ``transposed_product_min_rows``: a compiled loop reads W_hh
    transposed, (H, G) aligned, up to this many units (blocks of W_hhᵀ's columns against one or
    four rows of h_t, the sums in registers), and above it dot products on W_hh as stored
    (``benchmarks/ab.py transposed``); from ``transposed_product_min_rows`` rows (a batch half) it
    reads W_hhᵀ at any H, each vector of it serving four rows: a halves' forward took 0.75-0.89 of
    the time as stored at 8-12 rows and H = 160-200, but 1.39 at 4 rows and H = 256.

    ``two_core_max_batch``, ``two_core_min_weights``, ``two_core_min_steps``: a small layer of at
    most this batch whose W_hh has at least this many entries (a GRU from 128 units, an LSTM from
    111), of at least this many steps, shares its forward loop between two cores, half of the
    units each. One core's loop is bound by reading W_hh from its L2 cache every step; two read
    half each but meet once a step and pay about 20 µs a call to start (``benchmarks/ab.py
    cores``; H = 64 gains in one run and loses in another, so both kinds start above). A training
    forward does so only from ``two_core_min_training_weights`` (an LSTM from 222 units, a GRU
    from 256): its backward runs on one core beside the helper still spinning after its half, and
    ``benchmarks/ab.py cores-training`` (three runs) timed a one-core training step at 0.80-0.82
    of the two-core one at LSTM T=300 H=128, 0.63-0.98 at T=100 H=128, 0.93-0.96 at GRU H=128;
    1.01 at LSTM H=192; 1.04-1.07 at H=256 (LSTM and GRU).

    ``halves_min_batch``, ``halves_max_multiply_adds``, ``halves_min_training_steps``,
    ``halves_in_training``: an LSTM of at least ``halves_min_batch`` rows and at most
    ``halves_max_multiply_adds`` a step (N x H x 4H) runs its inference on two cores, half of the
    batch rows each, input projection and loop compiled: no meeting per step, and no BLAS call, so
    none of OpenBLAS's idle worker spinning on the second core after a two-thread product
    (``benchmarks/ab.py halves``). Above the limit the per-step BLAS product does better (N = 32,
    H = 256; N = 128, H = 128). A training step does the same (forward, backward and weight
    gradients compiled, from ``halves_min_training_steps`` steps, where the backward is not a
    small layer's) in 0.56-0.80 of the one-core time (``benchmarks/ab.py halves-training``), but
    only where OpenBLAS's worker sleeps soon after a product (``halves_in_training`` defaults to
    :data:`lstmkit._openblas.WORKERS_SLEEP_SOON`): beside a worker spinning 0.1 s after the
    training loop's own products, each half ran several times slower (PTB's step: 133 ms, not 99).

    ``chunk_multiply_adds``: the input projection computed beside a compiled loop goes in chunks
    of about this many multiply-adds (a few microseconds' work each).
    """

    small_layer_multiply_adds: int = 1 << 16
    forward_factor: int = 4
    inference_factor: int = 32
    transposed_product_max_hidden: int = 128
    transposed_product_min_rows: int = 8
    two_core_max_batch: int = 1
    two_core_min_weights: int = 3 * 128 * 128
    two_core_min_steps: int = 32
    two_core_min_training_weights: int = 3 * 256 * 256
    halves_min_batch: int = 8
    halves_max_multiply_adds: int = 1 << 22
    halves_min_training_steps: int = 8
    halves_in_training: bool = WORKERS_SLEEP_SOON
    chunk_multiply_adds: int = 1 << 18

    def __hash__(self) -> int:  # computed once: the plan cache hashes the tuning at every call
        cached = self.__dict__.get("_hash")
        if cached is None:
            cached = hash(tuple(self.__dict__[name] for name in self.__dataclass_fields__))
            object.__setattr__(self, "_hash", cached)
        return cached


DEFAULT_TUNING = Tuning()


@dataclass(frozen=True)
class Plan:
    """How one fused call runs (see the module's table).

    ``forward``: one of :data:`FORWARD_LOOPS`. ``backward``: one of :data:`BACKWARD_LOOPS` (None
    when nothing is kept for a backward). ``pipelined``: a ``"compiled"`` forward's input
    projection is computed chunk by chunk beside the loop, by the helper thread where one runs.
    ``chunk_steps``: steps per chunk of that projection (and of a two-core loop's).
    ``transposed_weight``: a compiled forward loop (or each batch half) reads W_hh transposed.
    """

    forward: str
    backward: str | None
    pipelined: bool = False
    chunk_steps: int = 1
    transposed_weight: bool = True

    @property
    def uses_helper(self) -> bool:
        """Whether the call hands work to a helper thread (it runs the same where none is given)."""
        return self.forward in ("halves", "two_cores") or self.pipelined

    def __post_init__(self) -> None:
        if self.forward not in FORWARD_LOOPS:
            raise ValueError(f"Plan: forward must be one of {FORWARD_LOOPS}, got {self.forward!r}")
        if self.backward not in BACKWARD_LOOPS:
            raise ValueError(f"Plan: backward must be one of {BACKWARD_LOOPS}, got {self.backward!r}")
        if (self.forward == "halves") != (self.backward == "halves") and self.backward is not None:
            raise ValueError(f"Plan: a backward on halves goes with a forward on halves, got {self}")
        if self.chunk_steps < 1:
            raise ValueError(f"Plan: chunk_steps must be >= 1, got {self.chunk_steps}")


def is_small(batch: int, hidden: int, gate_count: int, tuning: Tuning, factor: int = 1) -> bool:
    """Whether N x H x G·H multiply-adds are at most the tuning's small-layer limit times ``factor``."""
    return batch * hidden * gate_count * hidden <= tuning.small_layer_multiply_adds * factor


def chunk_steps(batch: int, features: int, gate_width: int, tuning: Tuning = DEFAULT_TUNING) -> int:
    """Steps per chunk of the input projection: about ``chunk_multiply_adds`` of (N, I) x (I, G) each."""
    return max(1, tuning.chunk_multiply_adds // max(1, batch * features * gate_width))


def transposes_recurrent_weight(hidden: int, rows: int, tuning: Tuning = DEFAULT_TUNING) -> bool:
    """Whether a compiled loop over ``rows`` batch rows reads W_hh transposed (see :class:`Tuning`)."""
    return hidden <= tuning.transposed_product_max_hidden or rows >= tuning.transposed_product_min_rows


@functools.lru_cache(maxsize=1024)
def choose_plan(
    steps: int,
    batch: int,
    features: int,
    hidden: int,
    gate_count: int,
    training: bool,
    helper: bool,
    tuning: Tuning = DEFAULT_TUNING,
) -> Plan:
    """The plan of a fused call of ``steps`` x ``batch`` rows of ``features`` into ``hidden`` units
    with ``gate_count`` gate blocks (4 for an LSTM, 3 for a GRU), keeping a cache for a backward
    when ``training``; ``helper``: whether a helper thread can run beside the caller. Cached: a
    batch-1 call spends about 0.25 ms, and the plan is looked up in well under a microsecond."""
    chunk = chunk_steps(batch, features, gate_count * hidden, tuning)
    backward_compiled = is_small(batch, hidden, gate_count, tuning)
    backward = ("compiled" if backward_compiled else "blas") if training else None
    if helper and gate_count == 4 and _runs_on_halves(steps, batch, hidden, training, backward_compiled, tuning):
        halves_transposed = transposes_recurrent_weight(hidden, batch // 2, tuning)
        return Plan("halves", "halves" if training else None, chunk_steps=chunk, transposed_weight=halves_transposed)
    factor = tuning.forward_factor if training else tuning.inference_factor
    if not is_small(batch, hidden, gate_count, tuning, factor):
        return Plan("batch_last" if not training and gate_count == 4 else "blas", backward, chunk_steps=chunk)
    transposed_weight = transposes_recurrent_weight(hidden, 1, tuning)
    min_weights = tuning.two_core_min_weights
    if training:
        min_weights = max(min_weights, tuning.two_core_min_training_weights)
    if helper and (
        batch <= tuning.two_core_max_batch
        and gate_count * hidden * hidden >= min_weights
        and steps >= tuning.two_core_min_steps
    ):
        return Plan("two_cores", backward, chunk_steps=min(steps, chunk), transposed_weight=transposed_weight)
    pipelined = helper and steps >= 2 * chunk
    return Plan("compiled", backward, pipelined=pipelined, chunk_steps=chunk, transposed_weight=transposed_weight)


def _runs_on_halves(
    steps: int, batch: int, hidden: int, training: bool, backward_compiled: bool, tuning: Tuning
) -> bool:
    """Whether an LSTM's call runs half of the batch on each core (see :class:`Tuning`)."""
    if batch < tuning.halves_min_batch or batch * hidden * 4 * hidden > tuning.halves_max_multiply_adds:
        return False
    return not training or (
        tuning.halves_in_training and steps >= tuning.halves_min_training_steps and not backward_compiled
    )
