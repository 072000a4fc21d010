"""What LSTM, GRU and RNN share, written once: parameters, stacking, directions (and how their
outputs merge), dropout between layers and on h_{t-1}, zoneout, variable lengths, per-layer sizes,
every step's states, shape checks and the cache stack.

The cell's equations come from :mod:`lstmkit.ops` through a :class:`~.kinds.CellKind`; the
caller's array layout (batch_first, unbatched, packed, ``lengths=``, left padding) is a layout from
:mod:`._layouts`, so the loop over layers and directions below only ever sees (T, N, ·) arrays.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ..grad_mode import is_grad_enabled
from ..ops import recycle_cache
from ..ops.recurrence import GateDropout, padding_mask, reverse_in_time
from . import checks
from ._layouts import LengthsLayout, PackedLayout, PaddedLayout
from .directions import merge_directions, merge_directions_backward
from .kinds import CellKind, CellOps, register_weights
from .masks import inverted_dropout_mask
from .module import Module
from .packing import PackedSequence, check_lengths, check_packed
from .variants import VariantOptions
from .weight_shapes import layer_weight_shapes, weight_suffix

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
    states_all_shapes: tuple | None = None  # return_states="all": each part's shape (a list of them per layer)


def _stacked(arrays) -> np.ndarray:
    """``np.stack(arrays)`` (a new array), without its cost for the single array of a one-layer layer."""
    return arrays[0][None].copy() if len(arrays) == 1 else np.stack(arrays)


def steps_to_caller(layout, array: np.ndarray) -> np.ndarray:
    """A time-major (T, N, ·) array of every step (sorted as the layers run) laid out as the
    caller's output is, but always padded: with a PackedSequence input, (T, N, ·) time-major in
    the caller's batch order."""
    if isinstance(layout, PackedLayout):
        return layout.states_out((array,))[0]
    return layout.from_time_major(array)


def steps_to_time_major(layout, array: np.ndarray) -> np.ndarray:
    """:func:`steps_to_caller`'s inverse (for gradients): time-major, sorted, zero past each end."""
    if isinstance(layout, PackedLayout):
        return layout.states_in((array,))[0] * layout.mask[:, :, None]
    return layout.to_time_major(array)


class RNNBase(VariantOptions, Module):
    """The machinery of a multi-layer, optionally bidirectional recurrent layer (PyTorch's RNNBase).

    Subclasses (:class:`~.recurrent.LSTM`, :class:`~.recurrent.GRU`, :class:`~.recurrent.RNN`)
    choose the cell kind and document their equations. ``forward(input, hx=None, *, lengths=None)``
    takes a padded array, an array with per-sequence ``lengths``, or a PackedSequence.
    ``backend`` ("auto", "reference" or "fast") picks the implementation (see
    :class:`~.backend_switch.BackendSwitch`); an LSTM's ``return_states="all"`` and a GRU's or
    RNN's ``zoneout`` run the reference ops, which alone have them, a GRU's or RNN's
    ``recurrent_dropout`` runs them in training, and an LSTM's ``layer_norm``, ``peepholes``,
    ``zoneout``, ``recurrent_dropout`` and ``runtime_forget_bias`` run the fused variant ops (see
    :class:`~.variants.VariantOptions`). ``zoneout``, ``runtime_forget_bias``,
    ``return_states`` and ``recurrent_dropout`` may be assigned after construction (checked as
    the constructor checks them); ``layer_norm`` and ``peepholes`` are fixed.

    ``hidden_size`` is an int, or a list of one int per layer: then every state (``hx``,
    ``h_n``, ``c_n`` and their gradients) is a list of one array per layer, layer k's
    (D, N, H_out_k), because one array cannot hold different sizes without padding.
    """

    _defaults = dict(
        num_layers=1, bias=True, batch_first=False, dropout=0.0, bidirectional=False, recurrent_dropout=0.0,
        merge_mode="concat", zoneout=0.0, return_states="last",
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
        zoneout: float | tuple[float, float] = 0.0,
        return_states: str = "last",
        layer_norm: bool = False,
        peepholes: bool = False,
        runtime_forget_bias: float = 0.0,
        forget_bias: float | None = None,
    ):
        super().__init__()
        owner = type(self).__name__
        self._kind = kind
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
        self.merge_mode = checks.check_merge_mode(owner, merge_mode, self.bidirectional)
        self._recurrent_dropout = self._checked_recurrent_dropout(recurrent_dropout)
        self._return_states = checks.check_return_states(owner, return_states)
        self._set_variants(backend, zoneout, layer_norm, peepholes, runtime_forget_bias, forget_bias=forget_bias)
        self.output_sizes = tuple(self.proj_size or hidden for hidden in self.hidden_sizes)  # H_out of every layer
        sizes = {"h": self.output_sizes, "c": self.hidden_sizes}  # of each state part, per layer
        self._layer_state_sizes = [tuple(sizes[part][k] for part in kind.state_parts) for k in range(self.num_layers)]
        # the last axis of output: D * H_out, or H_out where a merge_mode other than "concat" merges
        self.output_features = self.output_sizes[-1] * (self.num_directions if self.merge_mode == "concat" else 1)
        self._rng = np.random.default_rng(seed)
        self._weight_names: dict[tuple[int, int], dict[str, str]] = {}  # (layer, direction) -> base -> name
        self._layer_shapes = layer_weight_shapes(
            kind.gate_count, self.input_size, self.hidden_sizes, self.bias, self.proj_size, self.num_directions,
            self.merge_mode, layer_norm=self.layer_norm, peepholes=self.peepholes,
        )  # fmt: skip
        self._register_weights()
        self.forget_bias = self._initial_forget_bias(forget_bias)

    # ---- options that may change ------------------------------------------------------
    @property
    def recurrent_dropout(self) -> float:
        """Variational dropout's rate on h_{t-1} (see the subclass's docstring); settable, checked when set."""
        return self._recurrent_dropout

    @recurrent_dropout.setter
    def recurrent_dropout(self, value) -> None:
        self._assign(_recurrent_dropout=self._checked_recurrent_dropout(value))

    def _checked_recurrent_dropout(self, value) -> float:
        return checks.check_probability(
            type(self).__name__, "recurrent_dropout", value, below_one="1 would zero h_{t-1} at every step"
        )

    @property
    def return_states(self) -> str:
        """'last' or 'all' (see the subclass's docstring); settable, checked when set."""
        return self._return_states

    @return_states.setter
    def return_states(self, value) -> None:
        self._assign(_return_states=checks.check_return_states(type(self).__name__, value))

    def _options_on(self) -> dict[str, bool]:
        every_c = self._return_states == "all" and "c" in self._kind.state_parts  # c of every step: the reference's
        return dict(super()._options_on(), return_states=every_c, recurrent_dropout=bool(self._recurrent_dropout))

    def _initial_forget_bias(self, forget_bias):
        """Set the forget gate's bias of every layer and direction to ``forget_bias`` (see
        :class:`~.recurrent.LSTM`'s Args; another kind refuses it before its weights exist)."""
        if forget_bias is None:
            return None
        owner = type(self).__name__
        forget_bias = checks.check_real(owner, "forget_bias", forget_bias, "a finite number or None")
        if not self.bias:
            raise ValueError(
                f"{owner}: forget_bias={forget_bias!r} sets bias_ih's forget block and needs bias=True, got bias=False"
            )
        for layer, hidden in enumerate(self.hidden_sizes):
            for direction in range(self.num_directions):
                suffix = self._suffix(layer, direction)
                self._parameters["bias_ih" + suffix].data[hidden : 2 * hidden] = forget_bias
                self._parameters["bias_hh" + suffix].data[hidden : 2 * hidden] = 0.0
        return forget_bias

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
        """PyTorch's initialisation, layer by layer: uniform in (-1/sqrt(H_k), 1/sqrt(H_k)); the
        variants' after every plain weight (see :func:`~.kinds.register_weights`)."""
        groups = [
            (
                hidden,
                [
                    (base + weight_suffix(layer, direction), base, shape)
                    for direction in range(self.num_directions)
                    for base, shape in shapes.items()
                ],
            )
            for layer, (hidden, shapes) in enumerate(zip(self.hidden_sizes, self._layer_shapes))
        ]
        register_weights(self, groups, self._rng, self.dtype)

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
            packed = check_packed(owner, "input", input, layer_input=True)
            data = checks.as_float_array(owner, "input.data", packed.data, self.dtype)
            checks.check_shape(owner, "input.data", data, (len(data), self.input_size))
            layout = PackedLayout(packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
            return layout, layout.to_time_major(data)
        if padding_side == "left" and lengths is None:
            raise ValueError(
                f"{owner}: padding_side='left' needs lengths= (where each sequence starts in the padded batch), "
                "got lengths=None"
            )
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
    ) -> tuple:
        """Run the layer; see the subclass's docstring for shapes.

        ``input`` is an array, or a :class:`PackedSequence` (then the output is one too), and
        ``lengths`` (N,) optionally gives each sequence's valid length in a padded batch: the
        output is zero past it and the final state is each sequence's state at its last step.
        ``padding_side='left'``: sequence n fills the last ``lengths[n]`` steps instead (its
        first step at T - lengths[n]); output and its gradient are aligned the same way.
        Returns ``output, state``, and with ``return_states="all"`` a third value, the states
        of every step (see the subclass's docstring).
        """
        layout, x = self._input_layout(input, lengths, padding_side)
        state0 = self._states_in(layout, self._check_state(hx, "hx", layout.batch, layout.batched))
        caller_masks = run_masks = None
        if self._recurrent_dropout and self.training:
            caller_masks, run_masks = self._recurrent_masks(layout)
        output, states_n, saved, steps = self._run_layers(x, state0, layout.batch_sizes, run_masks)
        result = layout.from_time_major(output), self._pack_state(self._states_out(layout, states_n))
        states_all = shapes = None
        if steps is not None:
            states_all = self._gather([tuple(steps_to_caller(layout, part) for part in parts) for parts in steps])
            shapes = tuple([a.shape for a in part] if isinstance(part, list) else part.shape for part in states_all)
        if saved is not None:
            self._save_for_backward(
                saved._replace(layout=layout, recurrent_masks=caller_masks, states_all_shapes=shapes)
            )
        return result if states_all is None else (*result, self._pack_state(states_all))

    def _run_layers(self, x, state0, batch_sizes, recurrent_masks=None):
        """Every layer and direction over time-major ``x``: ``(output, final states, saved or None,
        steps or None)``, ``steps`` with return_states="all": per layer-direction the tuple of its
        states at every step, (T, N, ·) in ``x``'s time and order. ``recurrent_masks``: None, or
        per layer the (D, N, H_out_k) masks on h_{t-1} in ``x``'s order."""
        grad = is_grad_enabled()
        steps = [] if self._return_states == "all" else None
        keep_cache = grad or steps is not None and len(self._kind.state_parts) > 1  # c of every step: in the cache
        ops = self._ops()
        zoned = self._zoned
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
                options = self._op_options
                if zoned:
                    options = dict(options, zoneout=self._zoneout_masks(sequence.shape[:2], self._state_sizes(layer)))
                output, state_last, cache = ops.forward(
                    np.ascontiguousarray(sequence),
                    tuple(s[index] for s in state0),
                    self._weights(layer, direction),
                    keep_cache,
                    batch_sizes,
                    dropout,
                    **options,
                )
                outputs.append(reverse_in_time(output, batch_sizes) if direction else output)
                if steps is not None:
                    steps.append(self._direction_steps(outputs[-1], cache, batch_sizes, direction))
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
        saved = _Saved(caches, masks, batch_sizes, None, ops, None, direction_outputs) if grad else None
        return layer_input, states_n, saved, steps

    def _direction_steps(self, output, cache, batch_sizes, direction: int) -> tuple:
        """One layer-direction's states at every step, (T, N, ·) in the input's time and zero past
        each sequence's end: ``(h,)``, its output, or ``(h, c)`` with c from the reference op's
        cache (c after zoneout, as the next step saw it)."""
        if len(self._kind.state_parts) == 1:
            return (output,)
        c = cache.c[1:]
        if batch_sizes is not None:
            c = c * padding_mask(batch_sizes, c.shape[1])[:, :, None]
        return output, reverse_in_time(c, batch_sizes) if direction else c

    def _recurrent_masks(self, layout) -> tuple[list, list]:
        """Variational dropout (Gal & Ghahramani 2016): per layer, (D, N, H_out_k) masks of 0 or
        1/(1 - recurrent_dropout), one per sequence and direction, used at every step. Drawn from
        the module's generator at each training forward, before the masks between layers.
        Returns them in the caller's batch order and in the layout's (sorted) order."""
        shapes = [(self.num_directions, layout.batch, size) for size in self.output_sizes]
        caller = [inverted_dropout_mask(self._rng, shape, self._recurrent_dropout, self.dtype) for shape in shapes]
        return caller, [layout.states_in((mask,))[0] for mask in caller]

    def _dropout_mask(self, shape) -> np.ndarray | None:
        if not self.training or self.dropout == 0.0:
            return None
        return inverted_dropout_mask(self._rng, shape, self.dropout, self.dtype)

    # ---- backward --------------------------------------------------------------------
    def backward(
        self,
        doutput: ArrayLike | PackedSequence,
        dhx: ArrayLike | tuple | None = None,
        *,
        dstates_all: ArrayLike | tuple | list | None = None,
    ) -> tuple[np.ndarray | PackedSequence, State]:
        """Gradients of the input and initial state for the latest unmatched forward.

        ``doutput`` is shaped (or packed) like the forward's output, ``dhx`` like its final
        state (None, or None parts, for zeros), and ``dstates_all`` (return_states="all" only)
        like its states of every step (None, or None parts, for zeros). Returns ``dinput,
        dhx_0`` shaped (or packed) like the forward's input and initial state; parameter
        gradients are added to ``.grad``.
        """
        owner = type(self).__name__
        saved = self._peek_saved()  # popped once the gradients' shapes are checked
        layout = saved.layout
        dout = layout.gradient_to_time_major(owner, doutput, self.output_features, self.dtype)
        dstate_n = self._states_in(layout, self._check_state(dhx, "dhx", layout.batch, layout.batched))
        dsteps = None
        if dstates_all is not None:
            dsteps = self._check_steps_gradient(dstates_all, saved.states_all_shapes, layout)
        self._pop_saved()
        dinput, dstate0 = self._backward_layers(dout, dstate_n, saved, dsteps)
        return layout.from_time_major(dinput), self._pack_state(self._states_out(layout, dstate0))

    def _check_steps_gradient(self, dstates_all, shapes, layout) -> tuple:
        """``dstates_all`` shaped like the forward's states of every step, as per state part None
        or a list over layer-directions (layer-major) of (T, N, ·) arrays in the run's time and
        order (see :meth:`_direction_steps`), or a clear error."""
        owner, parts = type(self).__name__, self._kind.state_parts
        if shapes is None:
            raise ValueError(
                f"{owner}.backward: dstates_all is the gradient of the states of every step, which the "
                f"forward returns with return_states='all'; got return_states={self.return_states!r}"
            )
        names = tuple(f"dstates_all ({'d' + part}_all)" for part in parts)
        if len(parts) == 1:
            dstates_all = (dstates_all,)
        elif not isinstance(dstates_all, tuple) or len(dstates_all) != len(parts):
            raise TypeError(
                f"{owner}.backward: dstates_all must be a pair (dh_all, dc_all) like the forward's states_all, "
                f"got {type(dstates_all).__name__}"
            )
        gradients = []
        for name, part, shape in zip(names, dstates_all, shapes):
            if part is None:
                gradients.append(None)
                continue
            if isinstance(shape, list):  # one array per layer, (D, ...) each
                if not isinstance(part, (list, tuple)) or len(part) != len(shape):
                    raise ValueError(
                        f"{owner}.backward: {name} must be a list of num_layers={len(shape)} arrays, one per layer "
                        f"(hidden_size is a list), got {type(part).__name__}"
                    )
                arrays = [checks.as_float_array(owner, f"{name}[{k}]", a, self.dtype) for k, a in enumerate(part)]
                for k, (array, expected) in enumerate(zip(arrays, shape)):
                    checks.check_shape(owner, f"{name}[{k}]", array, expected)
                per_direction = [row for array in arrays for row in array]
            else:
                array = checks.as_float_array(owner, name, part, self.dtype)
                checks.check_shape(owner, name, array, shape)
                per_direction = list(array)
            gradients.append([steps_to_time_major(layout, row) for row in per_direction])
        return tuple(gradients)

    def _backward_layers(self, dout, dstate_n, saved: _Saved, dsteps=None):
        """The layers and directions of :meth:`_run_layers` walked in reverse, on (T, N, ·) arrays.
        ``dsteps``: None, or :meth:`_check_steps_gradient`'s gradients of every step's states."""
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
                dpart, options = doutputs[direction], {}
                if dsteps is not None:  # h of every step is this direction's output; c's go to the op
                    dh_steps, *dc_steps = dsteps
                    if dh_steps is not None:
                        dpart = dpart + dh_steps[index]
                    if dc_steps and dc_steps[0] is not None:
                        dc = reverse_in_time(dc_steps[0][index], batch_sizes) if direction else dc_steps[0][index]
                        options["dc_steps"] = np.ascontiguousarray(dc)
                dpart = reverse_in_time(dpart, batch_sizes) if direction else dpart
                cache, saved.caches[layer][direction] = saved.caches[layer][direction], None  # freed once used
                dx, dstate, dweights = saved.ops.backward(
                    np.ascontiguousarray(dpart), tuple(d[index] for d in dstate_n), cache, **options
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
