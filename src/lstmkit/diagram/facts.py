"""The facts a picture of a recurrent layer shows, read off a real forward pass (as ``explain``'s text).

:func:`unrolled_facts` builds the layer of a configuration, runs it once on zeros with
``return_states="all"`` and records the shape of every tensor the unrolled picture draws: each
step's input, every layer's h_t and c_t for each direction, what each layer hands the next, the
output and the final states. Nothing here is computed from a formula: a label can only be wrong
if the layer is.

    =================  ====================  ==========================================
    field              shape, e.g.           what it is
    =================  ====================  ==========================================
    input              (L, N, H_in)          the caller's input (batch_first: N first)
    step_input         (N, H_in)             x_t, one step of the input
    hidden[k]          (N, H_out_k)          h_t of layer k, each direction
    cell[k]            (N, H_k)              c_t of layer k (an LSTM's), each direction
    layer_output[k]    (N, D*H_out_k)        what layer k hands layer k+1 at step t
    output             (L, N, D*H_out)       the last layer's outputs
    step_output        (N, D*H_out)          output at step t
    h_n, c_n           (D*num_layers, N, ·)  final states (a list per layer with per-layer sizes)
    =================  ====================  ==========================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..grad_mode import no_grad
from ..nn.rnn_base import RNNBase


@dataclass(frozen=True)
class LayerFacts:
    """Shapes of one forward pass of a recurrent layer (see the module docstring)."""

    layer: RNNBase
    steps: int
    batch: int | None  # None: unbatched
    input: tuple[int, ...]
    step_input: tuple[int, ...]
    hidden: tuple[tuple[int, ...], ...]  # per layer
    cell: tuple[tuple[int, ...], ...] | None  # per layer; None without a cell state
    layer_output: tuple[tuple[int, ...], ...]  # per layer
    output: tuple[int, ...]
    step_output: tuple[int, ...]
    final: dict  # "h_n" (and "c_n") -> shape, or a list of shapes (one per layer)

    @property
    def mode(self) -> str:
        return self.layer.mode

    @property
    def num_layers(self) -> int:
        return self.layer.num_layers

    @property
    def num_directions(self) -> int:
        return self.layer.num_directions

    def final_rows(self, layer: int, direction: int) -> str:
        """The expression of layer ``layer``'s final state, direction ``direction``, inside h_n: ``h_n[3]``
        (or ``h_n[1][0]`` with per-layer sizes)."""
        if self.layer._state_lists:
            return f"[{layer}][{direction}]"
        return f"[{layer * self.num_directions + direction}]"


def _step_shape(shape: tuple[int, ...], time_axis: int) -> tuple[int, ...]:
    """``shape`` without its time axis: one step's shape."""
    return tuple(size for axis, size in enumerate(shape) if axis != time_axis)


def unrolled_facts(layer: RNNBase, steps: int, batch: int | None) -> LayerFacts:
    """Run ``layer`` once (on zeros, in evaluation, storing nothing for backward) and read every shape.

    ``batch=None`` runs an unbatched (L, H_in) input. The layer's ``return_states`` is set to
    "all" for the call and put back.
    """
    if not isinstance(layer, RNNBase):
        raise TypeError(f"unrolled_facts: expected an lstmkit LSTM, GRU or RNN, got {type(layer).__name__}")
    batched = batch is not None
    if not batched:
        shape = (steps, layer.input_size)
    elif layer.batch_first:
        shape = (batch, steps, layer.input_size)
    else:
        shape = (steps, batch, layer.input_size)
    saved, training = layer.return_states, layer.training
    layer.return_states = "all"
    layer.eval()
    try:
        with no_grad():
            output, final, every = layer(np.zeros(shape, layer.dtype))
    finally:
        layer.return_states = saved
        layer.train(training)
    parts = layer._kind.state_parts
    every = every if isinstance(every, tuple) else (every,)
    final = final if isinstance(final, tuple) else (final,)
    time_axis = 1 if batched and layer.batch_first else 0  # of the caller's (·, ·, features) arrays
    per_layer = {}
    for part, arrays in zip(parts, every):  # each (rows, caller's layout of every step): rows D or D*num_layers
        rows = arrays if isinstance(arrays, list) else np.split(arrays, layer.num_layers)
        per_layer[part] = tuple(_step_shape(array.shape[1:], time_axis) for array in rows)
    merged = layer.merge_mode != "concat"
    layer_output = tuple((*shape[:-1], shape[-1] * (1 if merged else layer.num_directions)) for shape in per_layer["h"])
    step_output = _step_shape(output.shape, time_axis)
    finals = {
        f"{part}_n": [tuple(a.shape) for a in value] if isinstance(value, list) else tuple(value.shape)
        for part, value in zip(parts, final)
    }
    return LayerFacts(
        layer=layer,
        steps=steps,
        batch=batch,
        input=shape,
        step_input=(batch, layer.input_size) if batched else (layer.input_size,),
        hidden=per_layer["h"],
        cell=per_layer.get("c"),
        layer_output=layer_output,
        output=tuple(output.shape),
        step_output=step_output,
        final=finals,
    )
