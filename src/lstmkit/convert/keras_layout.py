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
    bias: GRU with      (3U,)       z, r, h      bias_ih + bias_hh, reordered (when ``bias``)
    reset_after=False
    ==================  ==========  ===========  ==============================================

The gate orders, transposes and bias sums are :mod:`lstmkit.keras._formats`' (one place). A summed
Keras bias comes back as ``bias_ih`` with a zero ``bias_hh`` (the same function), so PyTorch ->
Keras -> PyTorch moves ``bias_hh`` into ``bias_ih`` while Keras -> PyTorch -> Keras is the identity.

Keras' ``GRU(reset_after=False)`` (``reset_after=False`` here) multiplies h_{t-1} by the reset
gate *before* the recurrent product and has one bias: another function than PyTorch's GRU (and
lstmkit's torch-style ``lstmkit.GRU``), which is Keras' ``reset_after=True``. Its state in
PyTorch's names and layout holds the weights of the ``reset_after=False`` equations
(:mod:`lstmkit.ops.gru`), as an ``lstmkit.keras.GRU(reset_after=False)`` runs them: the one Keras
bias comes back as ``bias_ih`` with a zero ``bias_hh`` (every bias is hoisted there, so only the
sum counts); loaded into a PyTorch GRU, it computes something else.

No Keras twin, refused: ``proj_size``, ``layer_norm`` and ``peepholes`` (no Keras layer has them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..keras._formats import FORMATS, GRU_RESET_BEFORE_FORMAT, KerasFormat
from ..nn.checks import check_flag
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
    if spec.mode == "GRU" and not check_flag(owner, "reset_after", reset_after):
        return GRU_RESET_BEFORE_FORMAT
    return FORMATS[spec.mode][0]


def keras_shapes(spec: LayerSpec, reset_after: bool = True) -> dict[str, tuple[int, ...]]:
    """``get_weights()``'s entries, in order: a name ("[index] layer k direction weight") -> shape.
    ``reset_after``: a GRU's (Keras' default True; False: one bias per layer-direction)."""
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
    in PyTorch's layout. ``reset_after`` (a GRU's; Keras' default True): False gives the weights of
    ``GRU(reset_after=False)`` layers, for a state of the reset_after=False equations (an
    ``lstmkit.keras.GRU(reset_after=False)``'s, not a PyTorch GRU's: that computes another function)."""
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
    """The state (PyTorch's names and layout) of the stacked Keras layers' ``get_weights()`` list.
    ``reset_after=False``: of ``GRU(reset_after=False)`` layers, a state of the reset_after=False
    equations (what an ``lstmkit.keras.GRU(reset_after=False)`` runs; a PyTorch GRU computes another
    function with it): the one bias goes to ``bias_ih``, ``bias_hh`` is zero."""
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
