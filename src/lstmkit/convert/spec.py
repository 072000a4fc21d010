"""What every converter needs to know about a recurrent layer, and the checks they share.

A :class:`LayerSpec` describes a layer without its weights (kind, sizes, directions, projection,
the LSTM variants that carry weights); the weights themselves travel as a *state*: a dict of
PyTorch's parameter names (``weight_ih_l0``, ``bias_hh_l1_reverse``, ...) to NumPy arrays, in
PyTorch's layouts, which are lstmkit's. Every converter is a pair of pure functions between a
state and another framework's arrays, given the spec.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..nn import checks
from ..nn.kinds import KINDS
from ..nn.weight_shapes import layer_weight_shapes, named_weight_shapes, weight_suffix


@dataclass(frozen=True)
class LayerSpec:
    """A recurrent layer's configuration, as the converters need it (no weights, no run-time options).

    ``hidden_sizes`` holds one size per layer (``num_layers`` is its length). ``peepholes`` and
    ``layer_norm`` are the LSTM variants with weights of their own.
    """

    mode: str
    input_size: int
    hidden_sizes: tuple[int, ...]
    bidirectional: bool = False
    proj_size: int = 0
    bias: bool = True
    peepholes: bool = False
    layer_norm: bool = False
    merge_mode: str = "concat"  # how a bidirectional layer's directions meet (lstmkit's merge_mode)

    def __post_init__(self):
        owner = "LayerSpec"
        if self.mode not in KINDS:
            raise ValueError(f"{owner}: mode must be one of {sorted(KINDS)}, got {self.mode!r}")
        sizes = list(self.hidden_sizes) if isinstance(self.hidden_sizes, (list, tuple)) else self.hidden_sizes
        if not isinstance(sizes, list) or not sizes:
            sizes = [sizes]  # one size: a one-layer spec (check_hidden_sizes names a wrong type)
        hidden_sizes = checks.check_hidden_sizes(owner, sizes, len(sizes))
        set_field = object.__setattr__  # a frozen dataclass: fields are set once, here, checked
        set_field(self, "hidden_sizes", hidden_sizes)
        set_field(self, "input_size", checks.check_size(owner, "input_size", self.input_size))
        for flag in ("bidirectional", "bias", "peepholes", "layer_norm"):
            set_field(self, flag, checks.check_flag(owner, flag, getattr(self, flag)))
        set_field(self, "proj_size", checks.check_proj_size(owner, self.proj_size, list(hidden_sizes), hidden_sizes))
        checks.check_merge_mode(owner, self.merge_mode, self.bidirectional)
        if self.mode != "LSTM" and (self.proj_size or self.peepholes or self.layer_norm):
            raise ValueError(f"{owner}: proj_size, peepholes and layer_norm are LSTM options, got mode {self.mode!r}")

    @classmethod
    def of(cls, layer) -> LayerSpec:
        """The spec of an ``lstmkit.LSTM``, ``GRU`` or ``RNN``. A layer with a ``runtime_forget_bias``
        is refused: its weights alone are not its function; :func:`state_of` folds the constant in."""
        from ..nn.rnn_base import RNNBase

        if not isinstance(layer, RNNBase):
            raise TypeError(f"LayerSpec.of: expected an lstmkit.LSTM, GRU or RNN, got {type(layer).__name__}")
        if getattr(layer, "runtime_forget_bias", 0.0):
            raise ValueError(
                f"LayerSpec.of: this layer adds runtime_forget_bias={layer.runtime_forget_bias!r} at every step, "
                "which its weights do not hold; use lstmkit.convert.state_of(layer), which folds it into bias_ih"
            )
        return cls._of(layer)

    @classmethod
    def _of(cls, layer) -> LayerSpec:
        return cls(
            layer.mode,
            layer.input_size,
            tuple(layer.hidden_sizes),
            layer.bidirectional,
            layer.proj_size,
            layer.bias,
            getattr(layer, "peepholes", False),
            getattr(layer, "layer_norm", False),
            layer.merge_mode,
        )

    @property
    def num_layers(self) -> int:
        return len(self.hidden_sizes)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def gate_count(self) -> int:
        return KINDS[self.mode].gate_count

    @property
    def output_sizes(self) -> tuple[int, ...]:
        """H_out of every layer: proj_size or the layer's hidden size."""
        return tuple(self.proj_size or hidden for hidden in self.hidden_sizes)

    def layer_input_size(self, layer: int) -> int:
        """I_k: the input size of layer k (D * H_out of the layer below, or H_out where a merge_mode
        other than "concat" merges its directions)."""
        if layer == 0:
            return self.input_size
        return self.output_sizes[layer - 1] * (self.num_directions if self.merge_mode == "concat" else 1)

    def layer_shapes(self) -> list[dict[str, tuple[int, ...]]]:
        """Per layer, base name -> shape of each direction's weights (PyTorch's names and order)."""
        return layer_weight_shapes(
            self.gate_count,
            self.input_size,
            self.hidden_sizes,
            self.bias,
            self.proj_size,
            self.num_directions,
            self.merge_mode,
            layer_norm=self.layer_norm,
            peepholes=self.peepholes,
        )

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """PyTorch's parameter name -> shape, in ``state_dict()`` order."""
        return named_weight_shapes(self.layer_shapes(), self.num_directions)

    def directions(self):
        """``(layer, direction, suffix)`` of every layer-direction, in PyTorch's order."""
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                yield layer, direction, weight_suffix(layer, direction)

    def build(self, state: Mapping[str, np.ndarray] | None = None, **options):
        """An lstmkit layer of this spec (``options`` go to its constructor: ``batch_first``,
        ``dtype``, ...), holding ``state``'s weights when given."""
        from ..nn.recurrent import GRU, LSTM, RNN

        hidden = self.hidden_sizes[0] if len(set(self.hidden_sizes)) == 1 else list(self.hidden_sizes)
        common = dict(num_layers=self.num_layers, bias=self.bias, bidirectional=self.bidirectional, **options)
        if self.merge_mode != "concat":
            common["merge_mode"] = self.merge_mode
        if self.mode == "LSTM":
            layer = LSTM(
                self.input_size,
                hidden,
                proj_size=self.proj_size,
                peepholes=self.peepholes,
                layer_norm=self.layer_norm,
                **common,
            )
        elif self.mode == "GRU":
            layer = GRU(self.input_size, hidden, **common)
        else:
            layer = RNN(self.input_size, hidden, nonlinearity=self.mode[4:].lower(), **common)
        if state is not None:
            layer.load_state_dict(checked_state(f"LayerSpec.build({self.mode})", state, self))
        return layer


def check_arrays(owner: str, arrays: Mapping, expected: Mapping[str, tuple[int, ...]], what: str = "weight") -> dict:
    """``arrays`` as NumPy arrays, refused unless their names and shapes are ``expected``'s.

    The error names every missing or unexpected key and each mis-shaped array with the shape
    expected and the shape given.
    """
    if not isinstance(arrays, Mapping):
        raise TypeError(f"{owner}: expected a mapping of {what} names to arrays, got {type(arrays).__name__}")
    problems = [f"missing {what} {name!r} of shape {shape}" for name, shape in expected.items() if name not in arrays]
    problems += [f"unexpected {what} {name!r}" for name in arrays if name not in expected]
    result = {}
    for name, shape in expected.items():
        if name not in arrays:
            continue
        try:
            array = as_array(arrays[name])
        except (TypeError, ValueError):
            problems.append(
                f"{what} {name!r}: expected an array of shape {tuple(shape)}, got {type(arrays[name]).__name__}"
            )
            continue
        if array.shape != tuple(shape):
            problems.append(f"{what} {name!r}: expected shape {tuple(shape)}, got {array.shape}")
        elif not np.issubdtype(array.dtype, np.floating):
            problems.append(f"{what} {name!r}: expected a floating-point array, got dtype {array.dtype}")
        result[name] = array
    if problems:
        raise ValueError(f"{owner}: " + "; ".join(problems))
    return result


def checked_state(owner: str, state: Mapping, spec: LayerSpec) -> dict[str, np.ndarray]:
    """``state`` (PyTorch's names) checked against ``spec`` (a :class:`LayerSpec`)'s names and shapes."""
    return check_arrays(owner, state, check_spec(owner, spec).shapes())


def check_spec(owner: str, spec) -> LayerSpec:
    """``spec``, refused unless it is a :class:`LayerSpec`."""
    if not isinstance(spec, LayerSpec):
        raise TypeError(f"{owner}: expected a LayerSpec (e.g. LayerSpec.of(layer)), got {type(spec).__name__}")
    return spec


def owner_of(function: str, spec) -> str:
    """``function(MODE)``, the name errors give, once ``spec`` is known to be a :class:`LayerSpec`."""
    return f"{function}({check_spec(function, spec).mode})"


def check_layer_list(owner: str, layers, spec: LayerSpec) -> list:
    """``layers`` as a list of one mapping of arrays per layer of ``spec``."""
    if isinstance(layers, Mapping) or not isinstance(layers, Sequence) or isinstance(layers, str):
        given = type(layers).__name__
        raise TypeError(f"{owner}: expected a list of {spec.num_layers} dicts of arrays (one per layer), got {given}")
    if len(layers) != spec.num_layers:
        raise ValueError(f"{owner}: expected {spec.num_layers} layers of weights, got {len(layers)}")
    return list(layers)


def with_forget_bias(bias: np.ndarray, shift: float) -> np.ndarray:
    """A copy of ``bias`` (an LSTM's, PyTorch's gate order i, f, g, o) with ``shift`` added to its f block."""
    bias = np.array(bias, copy=True)
    hidden = bias.shape[0] // 4
    bias[hidden : 2 * hidden] += shift
    return bias


def state_of(layer) -> tuple[LayerSpec, dict[str, np.ndarray]]:
    """``(spec, state)`` of an lstmkit layer, ready for any converter: its ``state_dict()``, with a
    ``runtime_forget_bias`` folded into ``bias_ih``'s forget block (a layer without biases gets zero
    ones to hold it), so the state computes what the layer computes. Options that are not weights
    (dropout, zoneout, ``batch_first``) are not part of it."""
    forget_bias = getattr(layer, "runtime_forget_bias", 0.0)
    spec = LayerSpec._of(layer) if forget_bias else LayerSpec.of(layer)  # of() refuses the forget bias
    state = layer.state_dict()
    if forget_bias:
        if not spec.bias:
            spec = LayerSpec(**{**spec.__dict__, "bias": True})
            state.update(
                {name: np.zeros(shape, layer.dtype) for name, shape in spec.shapes().items() if name not in state}
            )
        for _, _, suffix in spec.directions():
            state["bias_ih" + suffix] = with_forget_bias(state["bias_ih" + suffix], forget_bias)
    return spec, {name: state[name] for name in spec.shapes()}


def as_array(value) -> np.ndarray:
    """A NumPy array of a NumPy array, a torch tensor (detached, on the CPU) or anything array-like."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def reorder_blocks(array: np.ndarray, order: Sequence[int], axis: int = 0) -> np.ndarray:
    """The ``len(order)`` equal blocks of ``array`` along ``axis``, block k of the result being
    block ``order[k]`` of the input (gate order conversion: explicit, in one place)."""
    blocks = np.split(np.asarray(array), len(order), axis=axis)
    return np.concatenate([blocks[k] for k in order], axis=axis)


def inverse_order(order: Sequence[int]) -> tuple[int, ...]:
    """The order that undoes ``order`` in :func:`reorder_blocks`."""
    return tuple(int(k) for k in np.argsort(order))
