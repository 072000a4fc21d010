"""What LSTM, GRU and RNN share, written once: parameters, stacking, directions (and how their
outputs merge), dropout between layers and on h_{t-1}, variable lengths, per-layer sizes, shape
checks and the cache stack.

The cell's equations come from :mod:`lstmkit.ops` through a :class:`~.kinds.CellKind`; the
caller's array layout (batch_first, unbatched, packed, ``lengths=``, left padding) is a layout from
:mod:`._layouts`, so the loop over layers and directions below only ever sees (T, N, ·) arrays.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ..grad_mode import is_grad_enabled
from ..ops import recycle_cache
from ..ops.recurrence import GateDropout, reverse_in_time
from . import checks
from ._layouts import LengthsLayout, PackedLayout, PaddedLayout
from .backend_switch import BackendSwitch
from .kinds import CellKind, CellOps, register_uniform_weights
from .module import Module
from .packing import PackedSequence, check_lengths, check_packed

State = np.ndarray | list | tuple  # h, or (h, c) for an LSTM; each a list of per-layer arrays with a list of sizes


class _Saved(NamedTuple):
    """What one forward call of a recurrent layer keeps for its backward."""

    caches: list  # [layer][direction] op cache
    dropout_masks: list  # [layer] mask or None, applied to that layer's output
    batch_sizes: np.ndarray | None  # sequences running at each step (None: all, to the end)
    layout: object  # how the caller's arrays map to time-major ones (see _layouts)
    ops: CellOps  # the ops that made the caches, which their backward must be
    recurrent_masks: list | None = None  # [layer] (D, N, H_out_k) masks on h_{t-1}, caller's batch order
    direction_outputs: list | None = None  # [layer] (forward, reverse) outputs, kept for merge_mode="mul"


def weight_suffix(layer: int, direction: int) -> str:
    """``_l{layer}``, with ``_reverse`` for the second direction: PyTorch's parameter names."""
    return f"_l{layer}" + ("_reverse" if direction else "")


def layer_weight_shapes(
    gate_count: int,
    input_size: int,
    hidden_sizes: Sequence[int],
    bias: bool = True,
    proj_size: int = 0,
    num_directions: int = 1,
    merge_mode: str = "concat",
) -> list[dict[str, tuple[int, ...]]]:
    """Per layer k, base name -> shape of each direction's parameters, in PyTorch's order.

    ==============  ======================  ==================================================
    weight_ih       (G*H_k, I_k)            I_0 = input_size; I_k = D*H_out_{k-1} ("concat"),
                                            else H_out_{k-1} (the merged directions)
    weight_hh       (G*H_k, H_out_k)        H_out_k = proj_size or H_k
    bias_ih/_hh     (G*H_k,)                when ``bias``
    weight_hr       (proj_size, H_k)        when ``proj_size`` > 0 (LSTM)
    ==============  ======================  ==================================================

    The one place these shapes are computed: the layers register them, ``explain`` prints them.
    """
    shapes, features = [], input_size
    for hidden in hidden_sizes:
        rows, output = gate_count * hidden, proj_size or hidden
        layer = {"weight_ih": (rows, features), "weight_hh": (rows, output)}
        if bias:
            layer.update(bias_ih=(rows,), bias_hh=(rows,))
        if proj_size:
            layer["weight_hr"] = (proj_size, hidden)
        shapes.append(layer)
        features = output * (num_directions if merge_mode == "concat" else 1)
    return shapes


def named_weight_shapes(layer_shapes: list[dict], num_directions: int) -> dict[str, tuple[int, ...]]:
    """:func:`layer_weight_shapes` as PyTorch's parameter names and order: name -> shape."""
    return {
        base + weight_suffix(layer, direction): shape
        for layer, shapes in enumerate(layer_shapes)
        for direction in range(num_directions)
        for base, shape in shapes.items()
    }


def merge_directions(merge_mode: str, forward: np.ndarray, reverse: np.ndarray) -> np.ndarray:
    """The two directions' outputs (T, N, H_out) as one: Keras Bidirectional's merge modes."""
    if merge_mode == "concat":
        return np.concatenate((forward, reverse), axis=-1)
    if merge_mode == "sum":
        return forward + reverse
    if merge_mode == "mul":
        return forward * reverse
    return (forward + reverse) / 2  # "ave"


def merge_directions_backward(merge_mode: str, dmerged: np.ndarray, outputs) -> tuple[np.ndarray, np.ndarray]:
    """The gradients of the two outputs :func:`merge_directions` merged, from the merged one's.
    ``outputs``: the (forward, reverse) outputs, needed for "mul" only (the product rule)."""
    if merge_mode == "concat":
        width = dmerged.shape[-1] // 2
        return dmerged[..., :width], dmerged[..., width:]
    if merge_mode == "sum":
        return dmerged, dmerged
    if merge_mode == "mul":
        forward, reverse = outputs
        return dmerged * reverse, dmerged * forward
    half = dmerged / 2  # "ave"
    return half, half


def _stacked(arrays) -> np.ndarray:
    """``np.stack(arrays)`` (a new array), without its cost for the single array of a one-layer layer."""
    return arrays[0][None].copy() if len(arrays) == 1 else np.stack(arrays)


class RNNBase(BackendSwitch, Module):
    """The machinery of a multi-layer, optionally bidirectional recurrent layer (PyTorch's RNNBase).

    Subclasses (:class:`~.recurrent.LSTM`, :class:`~.recurrent.GRU`, :class:`~.recurrent.RNN`)
    choose the cell kind and document their equations. ``forward(input, hx=None, *, lengths=None)``
    takes a padded array, an array with per-sequence ``lengths``, or a PackedSequence.
    ``backend`` ("auto", "reference" or "fast") picks the implementation (see
    :class:`~.backend_switch.BackendSwitch`).

    ``hidden_size`` is an int, or a list of one int per layer: then every state (``hx``,
    ``h_n``, ``c_n`` and their gradients) is a list of one array per layer, layer k's
    (D, N, H_out_k), because one array cannot hold different sizes without padding.
    """

    _defaults = dict(
        num_layers=1, bias=True, batch_first=False, dropout=0.0, bidirectional=False, recurrent_dropout=0.0,
        merge_mode="concat",
    )  # fmt: skip

    def __init__(
        self,
        kind: CellKind,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        bias: bool,
        batch_first: bool,
        dropout: float,
        bidirectional: bool,
        proj_size: int = 0,
        *,
        dtype,
        seed: int | None,
        backend: str = "auto",
        recurrent_dropout: float = 0.0,
        merge_mode: str = "concat",
    ):
        super().__init__()
        owner = type(self).__name__
        self._kind = kind
        self.backend = backend
        self.input_size = checks.check_size(owner, "input_size", input_size)
        self.num_layers = checks.check_size(owner, "num_layers", num_layers)
        self.hidden_sizes = checks.check_hidden_sizes(owner, hidden_size, self.num_layers)
        self._state_lists = not isinstance(hidden_size, numbers.Integral)  # states as per-layer lists
        self.hidden_size = list(self.hidden_sizes) if self._state_lists else self.hidden_sizes[0]
        self.bias = checks.check_flag(owner, "bias", bias)
        self.dtype = checks.check_dtype(owner, dtype)
        self.batch_first = checks.check_flag(owner, "batch_first", batch_first)
        self.dropout = checks.check_probability(owner, "dropout", dropout)
        self.bidirectional = checks.check_flag(owner, "bidirectional", bidirectional)
        self.proj_size = checks.check_proj_size(owner, proj_size, self.hidden_size, self.hidden_sizes)
        self.recurrent_dropout = checks.check_probability(
            owner, "recurrent_dropout", recurrent_dropout, below_one="1 would zero h_{t-1} at every step"
        )
        self.merge_mode = checks.check_merge_mode(owner, merge_mode, self.bidirectional)
        self.output_sizes = tuple(self.proj_size or hidden for hidden in self.hidden_sizes)  # H_out of every layer
        sizes = {"h": self.output_sizes, "c": self.hidden_sizes}  # of each state part, per layer
        self._layer_state_sizes = [tuple(sizes[part][k] for part in kind.state_parts) for k in range(self.num_layers)]
        # the last axis of output: D * H_out, or H_out where a merge_mode other than "concat" merges
        self.output_features = self.output_sizes[-1] * (self.num_directions if self.merge_mode == "concat" else 1)
        self._rng = np.random.default_rng(seed)
        self._weight_names: dict[tuple[int, int], dict[str, str]] = {}  # (layer, direction) -> base -> name
        self._layer_shapes = layer_weight_shapes(
            kind.gate_count, self.input_size, self.hidden_sizes, self.bias, self.proj_size, self.num_directions,
            self.merge_mode,
        )  # fmt: skip
        self._register_weights()

    # ---- parameters ------------------------------------------------------------------
    @property
    def mode(self) -> str:
        """PyTorch's name of the cell kind: 'LSTM', 'GRU', 'RNN_TANH' or 'RNN_RELU'."""
        return self._kind.mode

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """H_out of the last layer (of every layer with an int hidden_size): proj_size or hidden_size.
        ``output_sizes`` holds every layer's."""
        return self.output_sizes[-1]

    def _weight_shapes(self, layer: int) -> dict[str, tuple[int, ...]]:
        """Base name -> shape of one layer-direction's parameters, in PyTorch's order."""
        return self._layer_shapes[layer]

    _suffix = staticmethod(weight_suffix)

    def _register_weights(self) -> None:
        """PyTorch's initialisation, layer by layer: uniform in (-1/sqrt(H_k), 1/sqrt(H_k))."""
        for layer, (hidden, shapes) in enumerate(zip(self.hidden_sizes, self._layer_shapes)):
            names_and_shapes = [
                (base + weight_suffix(layer, direction), shape)
                for direction in range(self.num_directions)
                for base, shape in shapes.items()
            ]
            register_uniform_weights(self, names_and_shapes, hidden, self._rng, self.dtype)

    def _weights(self, layer: int, direction: int):
        names = self._weight_names.get((layer, direction))
        if names is None:  # each call would otherwise rebuild them (a few µs of a small layer's call)
            suffix = self._suffix(layer, direction)
            names = self._weight_names[layer, direction] = {base: base + suffix for base in self._weight_shapes(layer)}
        return self._kind.weights(**{base: self._parameters[name].data for base, name in names.items()})

    def _accumulate(self, layer: int, direction: int, gradients) -> None:
        suffix = self._suffix(layer, direction)
        for base, gradient in gradients._asdict().items():
            if gradient is not None:
                self._parameters[base + suffix].accumulate(gradient)

    # ---- state -----------------------------------------------------------------------
    def _state_sizes(self, layer: int = 0) -> tuple[int, ...]:
        """Layer ``layer``'s size of each state part: H_out for h, H for c."""
        return self._layer_state_sizes[layer]

    def _check_state(self, hx, name: str, batch: int, batched: bool) -> tuple:
        """``hx`` (or the gradient of the final state) as a tuple of (D*num_layers, N, size) arrays,
        or with a list of hidden sizes a tuple of lists of per-layer (D, N, size_k) arrays."""
        count = self.num_directions * self.num_layers
        if hx is None and not self._state_lists:
            return tuple(np.zeros((count, batch, size), dtype=self.dtype) for size in self._state_sizes())
        suffix = "_0" if name == "hx" else "_n"
        part_names = tuple(("" if name == "hx" else "d") + part + suffix for part in self._kind.state_parts)
        owner = type(self).__name__
        if self._state_lists:
            shapes = [
                [(self.num_directions, batch, size) for size in self._state_sizes(layer)]
                for layer in range(self.num_layers)
            ]
            return checks.layer_state_arrays(owner, name, hx, part_names, shapes, batched, self.dtype)
        shapes = [(count, batch, size) for size in self._state_sizes()]
        return checks.state_arrays(owner, name, hx, part_names, shapes, batched, self.dtype)

    def _states_in(self, layout, states: tuple) -> tuple:
        """:meth:`_check_state`'s parts as the loop indexes them, ``part[layer * D + direction]`` an
        (N, ·) array in the layout's batch order (a stacked array, or a list with per-layer sizes)."""
        if not self._state_lists:
            return layout.states_in(states)
        D = self.num_directions
        return tuple([array[d] for array in layout.states_in(tuple(part)) for d in range(D)] for part in states)

    def _states_out(self, layout, states: tuple) -> tuple:
        """:meth:`_gather`'s parts in the caller's batch order (and without N when unbatched)."""
        if not self._state_lists:
            return layout.states_out(states)
        return tuple(list(layout.states_out(tuple(part))) for part in states)

    def _gather(self, per_direction: list) -> tuple:
        """Every layer-direction's state tuple (layer-major) as parts: (D*num_layers, N, ·) arrays,
        or with a list of hidden sizes lists of per-layer (D, N, ·) arrays."""
        if not self._state_lists:
            return tuple(_stacked(part) for part in zip(*per_direction))
        D = self.num_directions
        return tuple(
            [_stacked(part[k * D : (k + 1) * D]) for k in range(self.num_layers)] for part in zip(*per_direction)
        )

    @staticmethod
    def _pack_state(state: tuple):
        """``(h, c)`` for an LSTM, the single array ``h`` for the others (PyTorch's convention)."""
        return state if len(state) > 1 else state[0]

    # ---- forward ---------------------------------------------------------------------
    def _input_layout(self, input, lengths, padding_side="right"):
        """The layout of the caller's input and the input as a (T, N, H_in) array, or a clear error."""
        owner = type(self).__name__
        if padding_side != "right":
            checks.check_padding_side(owner, padding_side)
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise TypeError(f"{owner}: lengths= goes with a padded array; a PackedSequence carries its own lengths")
            if padding_side != "right":
                raise TypeError(
                    f"{owner}: padding_side= goes with a padded array; a PackedSequence has no padding, "
                    f"got padding_side={padding_side!r}"
                )
            packed = check_packed(owner, "input", input)
            data = checks.as_float_array(owner, "input.data", packed.data, self.dtype)
            checks.check_shape(owner, "input.data", data, (len(data), self.input_size))
            layout = PackedLayout(packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
            return layout, layout.to_time_major(data)
        x = checks.as_float_array(owner, "input", input, self.dtype)
        if x.ndim not in (2, 3):
            raise ValueError(
                f"{owner}: expected input of rank 2 (L, H_in) unbatched or 3 "
                f"({'N, L' if self.batch_first else 'L, N'}, H_in), got rank {x.ndim} with shape {x.shape}"
            )
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{owner}: input.shape[-1] must equal input_size={self.input_size}, got {x.shape[-1]}")
        batched = x.ndim == 3
        if not batched:
            steps, batch = x.shape[0], 1
        elif self.batch_first:
            batch, steps = x.shape[:2]
        else:
            steps, batch = x.shape[:2]
        if steps == 0 or batch == 0:
            raise ValueError(f"{owner}: expected a sequence length and batch size >= 1, got input shape {x.shape}")
        layout = PaddedLayout(batched, self.batch_first, steps, batch)
        if lengths is not None:
            if not batched:
                raise ValueError(f"{owner}: lengths= needs a batched input, got an unbatched input of shape {x.shape}")
            layout = LengthsLayout(layout, check_lengths(owner, lengths, batch, steps), padding_side)
        return layout, layout.to_time_major(x)

    def forward(
        self,
        input: ArrayLike | PackedSequence,
        hx: ArrayLike | tuple | list | None = None,
        *,
        lengths: ArrayLike | None = None,
        padding_side: str = "right",
    ) -> tuple[np.ndarray | PackedSequence, State]:
        """Run the layer; see the subclass's docstring for shapes.

        ``input`` is an array, or a :class:`PackedSequence` (then the output is one too), and
        ``lengths`` (N,) optionally gives each sequence's valid length in a padded batch: the
        output is zero past it and the final state is each sequence's state at its last step.
        ``padding_side='left'``: sequence n fills the last ``lengths[n]`` steps instead (its
        first step at T - lengths[n]); output and its gradient are aligned the same way.
        """
        layout, x = self._input_layout(input, lengths, padding_side)
        state0 = self._states_in(layout, self._check_state(hx, "hx", layout.batch, layout.batched))
        caller_masks = run_masks = None
        if self.recurrent_dropout and self.training:
            caller_masks, run_masks = self._recurrent_masks(layout)
        output, states_n, saved = self._run_layers(x, state0, layout.batch_sizes, run_masks)
        if saved is not None:
            self._save_for_backward(saved._replace(layout=layout, recurrent_masks=caller_masks))
        return layout.from_time_major(output), self._pack_state(self._states_out(layout, states_n))

    def _run_layers(self, x, state0, batch_sizes, recurrent_masks=None):
        """Every layer and direction over time-major ``x``: ``(output, final states, saved or None)``.
        ``recurrent_masks``: None, or per layer the (D, N, H_out_k) masks on h_{t-1} in ``x``'s order."""
        keep_cache = is_grad_enabled()
        ops = self._ops()
        caches, masks, final_states = [], [], []
        direction_outputs = [] if self.merge_mode == "mul" else None
        layer_input = x
        for layer in range(self.num_layers):
            outputs, layer_caches = [], []
            masks_on_h = None if recurrent_masks is None else recurrent_masks[layer]
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                sequence = reverse_in_time(layer_input, batch_sizes) if direction else layer_input
                dropout = None if masks_on_h is None else GateDropout(recurrent=masks_on_h[direction, None])
                output, state_last, cache = ops.forward(
                    np.ascontiguousarray(sequence),
                    tuple(s[index] for s in state0),
                    self._weights(layer, direction),
                    keep_cache,
                    batch_sizes,
                    dropout,
                )
                outputs.append(reverse_in_time(output, batch_sizes) if direction else output)
                layer_caches.append(cache)
                final_states.append(state_last)
            layer_output = merge_directions(self.merge_mode, *outputs) if len(outputs) > 1 else outputs[0]
            if direction_outputs is not None:
                direction_outputs.append(tuple(outputs))
            mask = self._dropout_mask(layer_output.shape) if layer < self.num_layers - 1 else None
            if mask is not None:
                layer_output = layer_output * mask
            caches.append(layer_caches)
            masks.append(mask)
            layer_input = layer_output
        states_n = self._gather(final_states)
        saved = _Saved(caches, masks, batch_sizes, None, ops, None, direction_outputs) if keep_cache else None
        return layer_input, states_n, saved

    def _recurrent_masks(self, layout) -> tuple[list, list]:
        """Variational dropout (Gal & Ghahramani 2016): per layer, (D, N, H_out_k) masks of 0 or
        1/(1 - recurrent_dropout), one per sequence and direction, used at every step. Drawn from
        the module's generator at each training forward, before the masks between layers.
        Returns them in the caller's batch order and in the layout's (sorted) order."""
        rate, kept = self.recurrent_dropout, self.dtype.type(1.0 - self.recurrent_dropout)
        shapes = [(self.num_directions, layout.batch, size) for size in self.output_sizes]
        caller = [(self._rng.random(shape) >= rate).astype(self.dtype) / kept for shape in shapes]
        return caller, [layout.states_in((mask,))[0] for mask in caller]

    def _dropout_mask(self, shape) -> np.ndarray | None:
        if not self.training or self.dropout == 0.0:
            return None
        if self.dropout == 1.0:
            return np.zeros(shape, dtype=self.dtype)
        keep = self._rng.random(shape) >= self.dropout
        return keep.astype(self.dtype) / self.dtype.type(1.0 - self.dropout)

    # ---- backward --------------------------------------------------------------------
    def backward(
        self, doutput: ArrayLike | PackedSequence, dhx: ArrayLike | tuple | None = None
    ) -> tuple[np.ndarray | PackedSequence, State]:
        """Gradients of the input and initial state for the latest unmatched forward.

        ``doutput`` is shaped (or packed) like the forward's output, ``dhx`` like its final
        state (None, or None parts, for zeros). Returns ``dinput, dhx_0`` shaped (or packed)
        like the forward's input and initial state; parameter gradients are added to ``.grad``.
        """
        owner = type(self).__name__
        if not self._saved:
            self._pop_saved()  # raises the RuntimeError that explains the missing forward
        saved = self._saved[-1]
        layout = saved.layout
        dout = layout.gradient_to_time_major(owner, doutput, self.output_features, self.dtype)
        dstate_n = self._states_in(layout, self._check_state(dhx, "dhx", layout.batch, layout.batched))
        self._pop_saved()
        dinput, dstate0 = self._backward_layers(dout, dstate_n, saved)
        return layout.from_time_major(dinput), self._pack_state(self._states_out(layout, dstate0))

    def _backward_layers(self, dout, dstate_n, saved: _Saved):
        """The layers and directions of :meth:`_run_layers` walked in reverse, on (T, N, ·) arrays."""
        batch_sizes = saved.batch_sizes
        dstate0 = [None] * self.num_directions * self.num_layers
        dlayer_output = dout
        for layer in reversed(range(self.num_layers)):
            if saved.dropout_masks[layer] is not None:
                dlayer_output = dlayer_output * saved.dropout_masks[layer]
            if self.num_directions == 1:
                doutputs = (dlayer_output,)
            else:
                outputs = saved.direction_outputs and saved.direction_outputs[layer]
                doutputs = merge_directions_backward(self.merge_mode, dlayer_output, outputs)
            dlayer_input = None
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                dpart = reverse_in_time(doutputs[direction], batch_sizes) if direction else doutputs[direction]
                cache, saved.caches[layer][direction] = saved.caches[layer][direction], None  # freed once used
                dx, dstate, dweights = saved.ops.backward(
                    np.ascontiguousarray(dpart), tuple(d[index] for d in dstate_n), cache
                )
                recycle_cache(cache)  # consumed: its backward-only arrays serve the next forward
                del cache
                self._accumulate(layer, direction, dweights)
                dx = reverse_in_time(dx, batch_sizes) if direction else dx
                if dlayer_input is None:  # the op's own new array: taken, not copied (the step's peak is here)
                    dlayer_input = dx
                else:
                    dlayer_input += dx
                dstate0[index] = dstate
            dlayer_output = dlayer_input
        return dlayer_output, self._gather(dstate0)

    def extra_repr(self) -> str:
        parts = [f"{self.input_size}, {self.hidden_size}"]
        parts += [
            f"{key}={getattr(self, key)!r}" for key, default in self._defaults.items() if getattr(self, key) != default
        ]
        if self.dtype != np.float32:
            parts.append(f"dtype={self.dtype.name}")
        return ", ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"
