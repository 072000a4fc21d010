"""Keras 3's ``get_weights()`` of ``LSTM``, ``GRU``, ``SimpleRNN``, ``Bidirectional`` and stacks of them, both ways.

One flat list, the ``model.get_weights()`` of a ``keras.Sequential`` of the stacked layers (each
returning sequences), layer by layer; a ``Bidirectional`` layer gives its forward layer's weights,
then its backward layer's:

    ==================  ==========  ===========  ==============================================
    Keras               shape       gate blocks  from PyTorch's (layer k, each direction)
    ==================  ==========  ===========  ==============================================
    kernel              (I_k, G*U)  Keras'       weight_ih_l{k}ᵀ, gate blocks reordered
    recurrent_kernel    (U, G*U)    Keras'       weight_hh_l{k}ᵀ, reordered
    bias: LSTM,         (G*U,)      Keras'       bias_ih + bias_hh, reordered (when ``bias``)
    SimpleRNN
    bias: GRU           (2, 3U)     z, r, h      [bias_ih, bias_hh], reordered (when ``bias``)
    ==================  ==========  ===========  ==============================================

The gate orders, transposes and bias sums are :mod:`lstmkit.keras._formats`' (one place). A summed
Keras bias comes back as ``bias_ih`` with a zero ``bias_hh`` (the same function), so PyTorch ->
Keras -> PyTorch moves ``bias_hh`` into ``bias_ih`` while Keras -> PyTorch -> Keras is the identity.

No exact twin, refused: Keras' ``GRU(reset_after=False)`` (its reset gate multiplies h_{t-1}
*before* the recurrent product, with one bias: another function than PyTorch's GRU, which lstmkit
computes), and ``proj_size``, ``layer_norm`` and ``peepholes`` (no Keras layer has them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..keras._formats import FORMATS, KerasFormat
from .spec import LayerSpec, check_arrays, checked_state, owner_of

DIRECTION_NAMES = ("forward", "backward")


def _keras_format(owner: str, spec: LayerSpec, reset_after: bool) -> KerasFormat:
    """The Keras format of ``spec``'s layers, after refusing what Keras has no exact twin of."""
    lacking = [name for name in ("proj_size", "layer_norm", "peepholes") if getattr(spec, name)]
    if lacking:
        raise ValueError(
            f"{owner}: Keras' recurrent layers have no {' and no '.join(lacking)}, so this layer has no Keras "
            f"weights; got {', '.join(f'{name}={getattr(spec, name)!r}' for name in lacking)}"
        )
    if spec.mode == "GRU" and not reset_after:
        raise ValueError(
            f"{owner}: Keras' GRU(reset_after=False) applies the reset gate to h_{{t-1}} before the recurrent "
            "product, with one bias: another function than PyTorch's GRU (r * (W_hn h + b_hn)), which lstmkit "
            "computes, so it has no exact twin; expected reset_after=True (Keras' default)"
        )
    return FORMATS[spec.mode][0]


def keras_shapes(spec: LayerSpec, reset_after: bool = True) -> dict[str, tuple[int, ...]]:
    """``get_weights()``'s entries, in order: a name ("[index] layer k direction weight") -> shape."""
    return _shapes(_keras_format(f"keras_shapes({spec.mode})", spec, reset_after), spec)


def _shapes(keras_format: KerasFormat, spec: LayerSpec) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for layer, direction, _ in spec.directions():
        weights = keras_format.weight_shapes(spec.layer_input_size(layer), spec.hidden_sizes[layer], spec.bias)
        for weight, shape in weights.items():
            shapes[f"[{len(shapes)}] layer {layer} {DIRECTION_NAMES[direction]} {weight}"] = shape
    return shapes


def to_keras_weights(state: Mapping[str, np.ndarray], spec: LayerSpec, *, reset_after: bool = True) -> list[np.ndarray]:
    """The ``get_weights()`` list of the stacked Keras layers (see the module docstring) of a state
    in PyTorch's layout."""
    owner = owner_of("to_keras_weights", spec)
    keras_format = _keras_format(owner, spec, reset_after)
    state = checked_state(owner, state, spec)
    weights = []
    for _, _, suffix in spec.directions():
        weights.append(keras_format.to_keras_blocks(state[f"weight_ih{suffix}"].T))
        weights.append(keras_format.to_keras_blocks(state[f"weight_hh{suffix}"].T))
        if spec.bias:
            weights.append(keras_format.keras_bias(state[f"bias_ih{suffix}"], state[f"bias_hh{suffix}"]))
    return [np.ascontiguousarray(array) for array in weights]


def from_keras_weights(
    weights: Sequence[np.ndarray], spec: LayerSpec, *, reset_after: bool = True
) -> dict[str, np.ndarray]:
    """The state (PyTorch's names and layout) of the stacked Keras layers' ``get_weights()`` list."""
    owner = owner_of("from_keras_weights", spec)
    keras_format = _keras_format(owner, spec, reset_after)
    expected = _shapes(keras_format, spec)
    if isinstance(weights, (Mapping, str)) or not isinstance(weights, Sequence):
        raise TypeError(f"{owner}: expected a list of arrays (Keras' get_weights()), got {type(weights).__name__}")
    if len(weights) != len(expected):
        raise ValueError(
            f"{owner}: expected {len(expected)} arrays ({', '.join(expected)}), got {len(weights)}; "
            "for a Bidirectional layer, its forward layer's weights come first"
        )
    arrays = list(check_arrays(owner, dict(zip(expected, weights)), expected).values())
    per_direction = 3 if spec.bias else 2
    state = {}
    for index, (_, _, suffix) in enumerate(spec.directions()):
        kernel, recurrent_kernel, *bias = arrays[index * per_direction : (index + 1) * per_direction]
        state[f"weight_ih{suffix}"] = np.ascontiguousarray(keras_format.to_torch_blocks(kernel).T)
        state[f"weight_hh{suffix}"] = np.ascontiguousarray(keras_format.to_torch_blocks(recurrent_kernel).T)
        if spec.bias:
            state[f"bias_ih{suffix}"], state[f"bias_hh{suffix}"] = keras_format.torch_biases(bias[0])
    return {name: state[name] for name in spec.shapes()}  # PyTorch's order
