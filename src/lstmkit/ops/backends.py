"""The one place that decides which implementation of a cell's equations runs: the backend switch.

=============  ==============================================================================
backend        what runs
=============  ==============================================================================
``"reference"``  the reference ops, :mod:`.lstm`, :mod:`.gru`, :mod:`.rnn`: the equations, once
``"fast"``     the fused ops of :mod:`.fused` (LSTM and GRU only; an RNN has none: ValueError);
               an LSTM with layer norm, peepholes, zoneout, recurrent dropout or a runtime
               forget_bias runs :mod:`.fused.variants` (every step's c: the reference);
               the GRU's ``reset_after=False`` (Keras' other candidate) has no fused op: a
               layer with it runs the reference and refuses "fast"
``"auto"``     the default: ``LSTMKIT_BACKEND`` from the environment if set ("reference",
               "fast" or "auto"), else "fast" where a fast path exists and "reference"
               elsewhere; with ``LSTMKIT_BACKEND=fast``, an RNN still runs the reference
=============  ==============================================================================

Both give the same numbers (float64 to 1e-12, float32 to 1e-5; tests/test_backends.py); the
fast one is several times faster on small and mid-sized layers. Layers and cells take
``backend=`` and look the ops up per call, so ``layer.backend = "reference"`` takes effect at
the next call.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NamedTuple

from .fused import gru_backward_fused, gru_forward_fused, lstm_backward_fused, lstm_forward_fused
from .fused.variants import lstm_variant_backward_fused, lstm_variant_forward_fused
from .gru import gru_backward, gru_forward
from .lstm import lstm_backward, lstm_forward
from .rnn import rnn_backward, rnn_forward

BACKENDS = ("auto", "reference", "fast")
ENVIRONMENT_VARIABLE = "LSTMKIT_BACKEND"
MODES = ("LSTM", "GRU", "RNN_TANH", "RNN_RELU")


class Backend(NamedTuple):
    """One resolved backend: its name ('reference' or 'fast') and the mode's two ops, with the
    reference ops' signatures (``forward(x, *state, weights, keep_cache, batch_sizes, dropout,
    **options)`` and ``backward(doutput, *dfinal_state, cache)``)."""

    name: str
    forward: Callable
    backward: Callable


_REFERENCE = {
    "LSTM": (lstm_forward, lstm_backward),
    "GRU": (gru_forward, gru_backward),
    "RNN_TANH": (rnn_forward, rnn_backward),
    "RNN_RELU": (rnn_forward, rnn_backward),
}
_FAST = {"LSTM": (lstm_forward_fused, lstm_backward_fused), "GRU": (gru_forward_fused, gru_backward_fused)}
# the fused ops of a layer with variants on: peepholes, zoneout, recurrent dropout, runtime forget_bias
_FAST_VARIANTS = {"LSTM": (lstm_variant_forward_fused, lstm_variant_backward_fused)}


def check_backend(owner: str, backend) -> str:
    """``backend`` if it is one of :data:`BACKENDS`, else a ValueError naming ``owner`` and the choices."""
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"{owner}: backend must be 'auto', 'reference' or 'fast', got {backend!r}")
    return backend


def check_backend_for(owner: str, backend, mode: str) -> str:
    """:func:`check_backend`, and a ValueError where ``backend`` is 'fast' and ``mode`` has no fast path."""
    check_backend(owner, backend)
    if backend == "fast" and mode not in _FAST:
        raise ValueError(
            f"{owner}: {mode} has no fast backend; backend must be 'auto' or 'reference' for it, "
            f"got 'fast' (the fast backend exists for {', '.join(_FAST)})"
        )
    return backend


def _environment_choice() -> str:
    value = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if not value:
        return "auto"
    if value not in BACKENDS:
        raise ValueError(f"{ENVIRONMENT_VARIABLE} must be 'auto', 'reference' or 'fast', got {value!r}")
    return value


def resolve_backend(backend: str, mode: str, variants: bool = False) -> Backend:
    """The ops that run a call of a ``mode`` layer ("LSTM", "GRU", "RNN_TANH" or "RNN_RELU") asked
    for ``backend`` ("auto", "reference" or "fast"; see the module's table). ``variants``: the
    layer has variants on that the fused variant ops run (an LSTM's layer norm, peepholes, zoneout,
    recurrent dropout, runtime forget_bias; :mod:`.fused.variants`), so "fast" means those ops."""
    if mode not in MODES:
        raise ValueError(f"resolve_backend: mode must be one of {MODES}, got {mode!r}")
    check_backend_for(mode, backend, mode)
    if backend == "auto":
        backend = _environment_choice()
    fast = _FAST_VARIANTS if variants else _FAST
    if backend != "reference" and mode in fast:
        return Backend("fast", *fast[mode])
    return Backend("reference", *_REFERENCE[mode])


__all__ = ["BACKENDS", "ENVIRONMENT_VARIABLE", "Backend", "check_backend", "check_backend_for", "resolve_backend"]
