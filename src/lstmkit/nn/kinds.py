"""What tells LSTM, GRU and RNN apart to the code they share (layers, cells, explain).

Everything else (stacking, directions, dropout, packing, checks, parameters) is written once
in :mod:`.rnn_base` and :mod:`.cells`; a :class:`CellKind` holds the kind's facts (gate count
and order, state parts, weights tuple), and :func:`cell_ops` hands the shared code the kind's
ops for a backend (:func:`lstmkit.ops.backends.resolve_backend`) behind one calling convention,
with the state as a tuple of arrays.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import NamedTuple

from ..ops.backends import ENVIRONMENT_VARIABLE, resolve_backend
from ..ops.gru import GRUWeights
from ..ops.lstm import LSTMWeights
from ..ops.rnn import RNNWeights


class CellKind(NamedTuple):
    """One kind of recurrent cell, as the shared code sees it."""

    mode: str  # PyTorch's name of the kind: "LSTM", "GRU", "RNN_TANH" or "RNN_RELU"
    gate_count: int  # blocks of hidden_size rows in weight_ih and weight_hh
    gate_names: str  # the blocks' order, e.g. "i, f, g, o"
    state_parts: tuple[str, ...]  # ("h", "c") for an LSTM, ("h",) otherwise
    weights: type  # the ops' NamedTuple of one layer-direction's weights
    options: tuple = ()  # (name, value) keyword options of the ops, e.g. the RNN's nonlinearity


class CellOps(NamedTuple):
    """A kind's two ops on one backend, the state as a tuple of arrays."""

    backend: str  # "reference" or "fast"
    forward: Callable  # (x, state, weights, keep_cache, batch_sizes, dropout=None) -> (output, final state, cache)
    backward: Callable  # (doutput, dfinal_state, cache) -> (dx, dinitial_state, dweights)


def _forward_with_state_tuple(op, options):
    """Adapt ``op(x, *state, weights, keep_cache, batch_sizes) -> (output, *final_state, cache)``."""

    def forward(x, state, weights, keep_cache, batch_sizes, dropout=None):
        output, *final_state, cache = op(
            x, *state, weights, keep_cache=keep_cache, batch_sizes=batch_sizes, dropout=dropout, **options
        )
        return output, tuple(final_state), cache

    return forward


def _backward_with_state_tuple(op):
    """Adapt ``op(doutput, *dfinal_state, cache) -> (dx, *dinitial_state, dweights)``."""

    def backward(doutput, dfinal_state, cache):
        dx, *dinitial_state, dweights = op(doutput, *dfinal_state, cache)
        return dx, tuple(dinitial_state), dweights

    return backward


_ADAPTED: dict[tuple, CellOps] = {}  # (kind, backend, LSTMKIT_BACKEND if "auto") -> its ops, adapted once


def cell_ops(kind: CellKind, backend: str) -> CellOps:
    """``kind``'s ops on ``backend`` ("auto", "reference" or "fast", resolved now: for "auto", the
    environment's ``LSTMKIT_BACKEND`` is read at each call). A microsecond or so a call: the ops of
    each (kind, backend, environment value) are resolved and adapted once."""
    key = (kind, backend, os.environ.get(ENVIRONMENT_VARIABLE) if backend == "auto" else None)
    ops = _ADAPTED.get(key)
    if ops is None:
        resolved = resolve_backend(backend, kind.mode)
        ops = CellOps(
            resolved.name,
            _forward_with_state_tuple(resolved.forward, dict(kind.options)),
            _backward_with_state_tuple(resolved.backward),
        )
        _ADAPTED[key] = ops
    return ops


LSTM_KIND = CellKind("LSTM", 4, "i, f, g, o", ("h", "c"), LSTMWeights)
GRU_KIND = CellKind("GRU", 3, "r, z, n", ("h",), GRUWeights)
RNN_KINDS = {
    nonlinearity: CellKind(
        f"RNN_{nonlinearity.upper()}", 1, "one block", ("h",), RNNWeights, (("nonlinearity", nonlinearity),)
    )
    for nonlinearity in ("tanh", "relu")
}
KINDS = {kind.mode: kind for kind in (LSTM_KIND, GRU_KIND, *RNN_KINDS.values())}


def rnn_kind(owner: str, nonlinearity) -> CellKind:
    """The kind of an Elman RNN with ``nonlinearity`` 'tanh' or 'relu'."""
    if nonlinearity not in RNN_KINDS:
        raise ValueError(f"{owner}: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    return RNN_KINDS[nonlinearity]


def register_uniform_weights(module, names_and_shapes, hidden_size: int, rng, dtype) -> None:
    """PyTorch's initialisation: every parameter uniform in (-1/sqrt(H), 1/sqrt(H)), drawn in order."""
    bound = 1.0 / math.sqrt(hidden_size)
    for name, shape in names_and_shapes:
        module.register_parameter(name, rng.uniform(-bound, bound, size=shape).astype(dtype))


__all__ = [
    "CellKind",
    "CellOps",
    "GRU_KIND",
    "KINDS",
    "LSTM_KIND",
    "RNN_KINDS",
    "cell_ops",
    "register_uniform_weights",
    "rnn_kind",
]
