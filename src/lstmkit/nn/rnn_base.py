"""What LSTM, GRU and RNN share, written once: parameters, stacking, directions, dropout between
layers, variable lengths, shape checks and the cache stack.

The cell's equations come from :mod:`lstmkit.ops` through a :class:`~.kinds.CellKind`; the
caller's array layout (batch_first, unbatched, packed, ``lengths=``) is a layout from
:mod:`._layouts`, so the loop over layers and directions below only ever sees (T, N, ·) arrays.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ..grad_mode import is_grad_enabled
from ..ops import recycle_cache
from ..ops.recurrence import reverse_in_time
from . import checks
from ._layouts import LengthsLayout, PackedLayout, PaddedLayout
from .backend_switch import BackendSwitch
from .kinds import CellKind, CellOps, register_uniform_weights
from .module import Module
from .packing import PackedSequence, check_lengths, check_packed

State = np.ndarray | tuple[np.ndarray, ...]  # h, or (h, c) for an LSTM


class _Saved(NamedTuple):
    """What one forward call of a recurrent layer keeps for its backward."""

    caches: list  # [layer][direction] op cache
    dropout_masks: list  # [layer] mask or None, applied to that layer's output
    batch_sizes: np.ndarray | None  # sequences running at each step (None: all, to the end)
    layout: object  # how the caller's arrays map to time-major ones (see _layouts)
    ops: CellOps  # the ops that made the caches, which their backward must be


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
    """

    _defaults = dict(num_layers=1, bias=True, batch_first=False, dropout=0.0, bidirectional=False)

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
    ):
        super().__init__()
        owner = type(self).__name__
        self._kind = kind
        self.backend = backend
        self.input_size, self.hidden_size, self.bias, self.dtype = checks.check_recurrent_options(
            owner, input_size, hidden_size, bias, dtype
        )
        self.num_layers = checks.check_size(owner, "num_layers", num_layers)
        self.batch_first = checks.check_flag(owner, "batch_first", batch_first)
        self.dropout = checks.check_probability(owner, "dropout", dropout)
        self.bidirectional = checks.check_flag(owner, "bidirectional", bidirectional)
        self.proj_size = checks.check_size(owner, "proj_size", proj_size, minimum=0)
        if self.proj_size >= self.hidden_size:
            raise ValueError(
                f"{owner}: proj_size must be smaller than hidden_size={self.hidden_size}, got {self.proj_size}"
            )
        self._rng = np.random.default_rng(seed)
        self._weight_names: dict[tuple[int, int], dict[str, str]] = {}  # (layer, direction) -> base -> name
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
        """H_out: the size of h_t (proj_size if set, else hidden_size)."""
        return self.proj_size or self.hidden_size

    def _layer_input_size(self, layer: int) -> int:
        return self.input_size if layer == 0 else self.num_directions * self.output_size

    def _weight_shapes(self, layer: int) -> dict[str, tuple[int, ...]]:
        """Base name -> shape of one layer-direction's parameters, in PyTorch's order."""
        rows = self._kind.gate_count * self.hidden_size
        shapes = {"weight_ih": (rows, self._layer_input_size(layer)), "weight_hh": (rows, self.output_size)}
        if self.bias:
            shapes.update(bias_ih=(rows,), bias_hh=(rows,))
        if self.proj_size:
            shapes["weight_hr"] = (self.proj_size, self.hidden_size)
        return shapes

    @staticmethod
    def _suffix(layer: int, direction: int) -> str:
        return f"_l{layer}" + ("_reverse" if direction else "")

    def _register_weights(self) -> None:
        names_and_shapes = [
            (base + self._suffix(layer, direction), shape)
            for layer in range(self.num_layers)
            for direction in range(self.num_directions)
            for base, shape in self._weight_shapes(layer).items()
        ]
        register_uniform_weights(self, names_and_shapes, self.hidden_size, self._rng, self.dtype)

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
    def _state_sizes(self) -> tuple[int, ...]:
        sizes = {"h": self.output_size, "c": self.hidden_size}
        return tuple(sizes[part] for part in self._kind.state_parts)

    def _check_state(self, hx, name: str, batch: int, batched: bool) -> tuple[np.ndarray, ...]:
        """``hx`` (or the gradient of the final state) as a tuple of (D*num_layers, N, size) arrays."""
        if hx is None:
            count = self.num_directions * self.num_layers
            return tuple(np.zeros((count, batch, size), dtype=self.dtype) for size in self._state_sizes())
        suffix = "_0" if name == "hx" else "_n"
        part_names = tuple(("" if name == "hx" else "d") + part + suffix for part in self._kind.state_parts)
        count = self.num_directions * self.num_layers
        shapes = [(count, batch, size) for size in self._state_sizes()]
        return checks.state_arrays(type(self).__name__, name, hx, part_names, shapes, batched, self.dtype)

    @staticmethod
    def _pack_state(state: tuple):
        """``(h, c)`` for an LSTM, the single array ``h`` for the others (PyTorch's convention)."""
        return state if len(state) > 1 else state[0]

    # ---- forward ---------------------------------------------------------------------
    def _input_layout(self, input, lengths):
        """The layout of the caller's input and the input as a (T, N, H_in) array, or a clear error."""
        owner = type(self).__name__
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise TypeError(f"{owner}: lengths= goes with a padded array; a PackedSequence carries its own lengths")
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
            layout = LengthsLayout(layout, check_lengths(owner, lengths, batch, steps))
        return layout, layout.to_time_major(x)

    def forward(
        self,
        input: ArrayLike | PackedSequence,
        hx: ArrayLike | tuple | None = None,
        *,
        lengths: ArrayLike | None = None,
    ) -> tuple[np.ndarray | PackedSequence, State]:
        """Run the layer; see the subclass's docstring for shapes.

        ``input`` is an array, or a :class:`PackedSequence` (then the output is one too), and
        ``lengths`` (N,) optionally gives each sequence's valid length in a padded batch: the
        output is zero past it and the final state is each sequence's state at its last step.
        """
        layout, x = self._input_layout(input, lengths)
        state0 = layout.states_in(self._check_state(hx, "hx", layout.batch, layout.batched))
        output, states_n, saved = self._run_layers(x, state0, layout.batch_sizes)
        if saved is not None:
            self._save_for_backward(saved._replace(layout=layout))
        return layout.from_time_major(output), self._pack_state(layout.states_out(states_n))

    def _run_layers(self, x, state0, batch_sizes):
        """Every layer and direction over time-major ``x``: ``(output, final states, saved or None)``."""
        keep_cache = is_grad_enabled()
        ops = self._ops()
        caches, masks, final_states = [], [], []
        layer_input = x
        for layer in range(self.num_layers):
            outputs, layer_caches = [], []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                sequence = reverse_in_time(layer_input, batch_sizes) if direction else layer_input
                output, state_last, cache = ops.forward(
                    np.ascontiguousarray(sequence),
                    tuple(s[index] for s in state0),
                    self._weights(layer, direction),
                    keep_cache,
                    batch_sizes,
                )
                outputs.append(reverse_in_time(output, batch_sizes) if direction else output)
                layer_caches.append(cache)
                final_states.append(state_last)
            layer_output = np.concatenate(outputs, axis=-1) if len(outputs) > 1 else outputs[0]
            mask = self._dropout_mask(layer_output.shape) if layer < self.num_layers - 1 else None
            if mask is not None:
                layer_output = layer_output * mask
            caches.append(layer_caches)
            masks.append(mask)
            layer_input = layer_output
        states_n = tuple(_stacked(parts) for parts in zip(*final_states))
        saved = _Saved(caches, masks, batch_sizes, None, ops) if keep_cache else None
        return layer_input, states_n, saved

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
        dout = layout.gradient_to_time_major(owner, doutput, self.num_directions * self.output_size, self.dtype)
        dstate_n = layout.states_in(self._check_state(dhx, "dhx", layout.batch, layout.batched))
        self._pop_saved()
        dinput, dstate0 = self._backward_layers(dout, dstate_n, saved)
        return layout.from_time_major(dinput), self._pack_state(layout.states_out(dstate0))

    def _backward_layers(self, dout, dstate_n, saved: _Saved):
        """The layers and directions of :meth:`_run_layers` walked in reverse, on (T, N, ·) arrays."""
        batch_sizes = saved.batch_sizes
        dstate0 = [[None] * self.num_directions * self.num_layers for _ in dstate_n]
        dlayer_output = dout
        for layer in reversed(range(self.num_layers)):
            if saved.dropout_masks[layer] is not None:
                dlayer_output = dlayer_output * saved.dropout_masks[layer]
            dlayer_input = None
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                dpart = dlayer_output[..., direction * self.output_size : (direction + 1) * self.output_size]
                if direction:
                    dpart = reverse_in_time(dpart, batch_sizes)
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
                for slot, value in zip(dstate0, dstate):
                    slot[index] = value
            dlayer_output = dlayer_input
        return dlayer_output, tuple(_stacked(parts) for parts in dstate0)

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
