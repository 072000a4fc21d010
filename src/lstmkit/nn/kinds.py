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

import numpy as np

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
    """A kind's two ops on one backend, the state as a tuple of arrays. Keyword ``options`` go
    to the op as they are: the variants' (``forget_bias=``, ``zoneout=`` forward, ``dc_steps=``
    backward), which the reference ops and the LSTM's fused variant ops take; the plain fused
    ops take none of them."""

    backend: str  # "reference" or "fast"
    # (x, state, weights, keep_cache, batch_sizes, dropout=None, **options) -> (output, final state, cache)
    forward: Callable
    backward: Callable  # (doutput, dfinal_state, cache, **options) -> (dx, dinitial_state, dweights)


def _forward_with_state_tuple(op, kind_options):
    """Adapt ``op(x, *state, weights, keep_cache, batch_sizes) -> (output, *final_state, cache)``;
    ``kind_options`` (the kind's own, e.g. the RNN's nonlinearity) go to every call."""

    def forward(x, state, weights, keep_cache, batch_sizes, dropout=None, **options):
        output, *final_state, cache = op(
            x, *state, weights, keep_cache=keep_cache, batch_sizes=batch_sizes, dropout=dropout, **kind_options,
            **options,
        )  # fmt: skip
        return output, tuple(final_state), cache

    return forward


def _backward_with_state_tuple(op):
    """Adapt ``op(doutput, *dfinal_state, cache) -> (dx, *dinitial_state, dweights)``."""

    def backward(doutput, dfinal_state, cache, **options):
        dx, *dinitial_state, dweights = op(doutput, *dfinal_state, cache, **options)
        return dx, tuple(dinitial_state), dweights

    return backward


_ADAPTED: dict[tuple, CellOps] = {}  # (kind, backend, LSTMKIT_BACKEND if "auto") -> its ops, adapted once


def cell_ops(kind: CellKind, backend: str, variants: bool = False) -> CellOps:
    """``kind``'s ops on ``backend`` ("auto", "reference" or "fast", resolved now: for "auto", the
    environment's ``LSTMKIT_BACKEND`` is read at each call). A microsecond or so a call: the ops of
    each (kind, backend, environment value) are resolved and adapted once. A layer or cell with a
    variant the fused ops lack asks for "reference"; one whose variants the fused variant ops run
    passes ``variants=True`` (see :class:`~.variants.VariantOptions`)."""
    key = (kind, backend, variants, os.environ.get(ENVIRONMENT_VARIABLE) if backend == "auto" else None)
    ops = _ADAPTED.get(key)
    if ops is None:
        resolved = resolve_backend(backend, kind.mode, variants)
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


def check_variant_backend(owner: str, backend: str, variant: str | None) -> None:
    """A ValueError where ``backend`` is "fast" and ``variant`` (e.g. "layer_norm=True", the first
    option on that the fused ops lack; None: none) is on: such a layer runs the reference ops."""
    if variant is not None and backend == "fast":
        raise ValueError(
            f"{owner}: backend='fast' runs the fused ops, which lack {variant}; "
            "use backend='auto' or 'reference' (that option runs the reference ops)"
        )


def rnn_kind(owner: str, nonlinearity) -> CellKind:
    """The kind of an Elman RNN with ``nonlinearity`` 'tanh' or 'relu'."""
    if nonlinearity not in RNN_KINDS:
        raise ValueError(f"{owner}: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    return RNN_KINDS[nonlinearity]


def _uniform(rng, hidden_size: int, shape, dtype) -> np.ndarray:
    """PyTorch's initialisation of one parameter: uniform in (-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / math.sqrt(hidden_size)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


# The LSTM variants' parameters and their initial values; "uniform": as PyTorch's weights
VARIANT_INIT = {
    "weight_peephole": "uniform",
    "layer_norm_weight_ih": 1.0,
    "layer_norm_weight_hh": 1.0,
    "layer_norm_weight_c": 1.0,
    "layer_norm_bias_c": 0.0,
}


def register_weights(module, groups, rng, dtype) -> None:
    """Register every parameter of ``groups``, a list of ``(hidden_size, [(name, base, shape), ...])``
    (a layer's, or a cell's), in that order. The plain weights are PyTorch's (uniform in
    (-1/sqrt(H), 1/sqrt(H)), drawn in order); then the variants' (:data:`VARIANT_INIT`): peepholes
    uniform likewise, drawn after every plain weight, so that the plain weights are the same
    numbers with or without a variant; layer norm's gains ones and shifts zeros."""
    arrays = {}
    for hidden, entries in groups:
        for name, base, shape in entries:
            if base not in VARIANT_INIT:
                arrays[name] = _uniform(rng, hidden, shape, dtype)
    for hidden, entries in groups:
        for name, base, shape in entries:
            initial = VARIANT_INIT.get(base)
            if initial == "uniform":
                arrays[name] = _uniform(rng, hidden, shape, dtype)
            elif initial is not None:
                arrays[name] = np.full(shape, initial, dtype=dtype)
    for _, entries in groups:
        for name, _, _ in entries:
            module.register_parameter(name, arrays[name])


__all__ = [
    "CellKind",
    "CellOps",
    "GRU_KIND",
    "KINDS",
    "LSTM_KIND",
    "RNN_KINDS",
    "VARIANT_INIT",
    "cell_ops",
    "check_variant_backend",
    "register_weights",
    "rnn_kind",
]
