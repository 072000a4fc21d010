"""ONNX's ``LSTM``, ``GRU`` and ``RNN`` operators' weights (W, R, B, P), both ways.

    ======  ===================  =====================================================
    ONNX    shape                from PyTorch's
    ======  ===================  =====================================================
    W       (D, G*H, I)          weight_ih of each direction, gate blocks reordered
    R       (D, G*H, H)          weight_hh, reordered
    B       (D, 2*G*H)           [bias_ih, bias_hh], each reordered (optional input)
    P       (D, 3*H)             LSTM peepholes in order i, o, f (lstmkit: p_i, p_f, p_o)
    ======  ===================  =====================================================

Gate orders: ONNX's LSTM is i, o, f, c (PyTorch's i, f, g, o), its GRU z, r, h (PyTorch's r, z,
n, with the attribute ``linear_before_reset=1`` for PyTorch's equations), its RNN one block.
D is 1, or 2 for ``direction="bidirectional"`` (forward first). One operator is one layer: a
stacked layer is one weight set per layer. ONNX has no projection (``proj_size``) and no layer
norm, so those layers have no weights here (:mod:`lstmkit.export` builds them from other operators).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .spec import LayerSpec, check_arrays, check_layer_list, checked_state, inverse_order, owner_of, reorder_blocks

# ONNX's block k is PyTorch's block ONNX_ORDER[mode][k]
ONNX_ORDER = {"LSTM": (0, 3, 1, 2), "GRU": (1, 0, 2), "RNN_TANH": (0,), "RNN_RELU": (0,)}
PEEPHOLE_ORDER = (0, 2, 1)  # ONNX's P is (i, o, f); lstmkit's weight_peephole (i, f, o)
OPERATORS = {"LSTM": "LSTM", "GRU": "GRU", "RNN_TANH": "RNN", "RNN_RELU": "RNN"}  # lstmkit's mode -> ONNX's op
RNN_ACTIVATIONS = {"RNN_TANH": "Tanh", "RNN_RELU": "Relu"}  # the RNN operator's ``activations``, per direction
DEFAULT_ACTIVATIONS = {"LSTM": ("sigmoid", "tanh", "tanh"), "GRU": ("sigmoid", "tanh"), "RNN": ("tanh",)}
GRU_ATTRIBUTES = {"linear_before_reset": 1}  # PyTorch's GRU: r multiplies (R_n h + b_Rn)
WEIGHT_INPUTS = {"W": 1, "R": 2, "B": 3, "P": 7}  # each weight's input index (P: the LSTM's only)


def _refuse_what_onnx_lacks(owner: str, spec: LayerSpec) -> None:
    lacking = [name for name, on in (("proj_size", spec.proj_size), ("layer_norm", spec.layer_norm)) if on]
    if lacking:
        raise ValueError(
            f"{owner}: ONNX's {spec.mode} operator has no {' and no '.join(lacking)}, so this layer has no "
            "W/R/B weights; lstmkit.export.to_onnx builds such a layer from other operators"
        )


def onnx_shapes(spec: LayerSpec, layer: int) -> dict[str, tuple[int, ...]]:
    """The names and shapes of layer ``layer``'s ONNX weights."""
    rows, directions = spec.gate_count * spec.hidden_sizes[layer], spec.num_directions
    shapes = {
        "W": (directions, rows, spec.layer_input_size(layer)),
        "R": (directions, rows, spec.output_sizes[layer]),
    }
    if spec.bias:
        shapes["B"] = (directions, 2 * rows)
    if spec.peepholes:
        shapes["P"] = (directions, 3 * spec.hidden_sizes[layer])
    return shapes


def to_onnx_weights(state: Mapping[str, np.ndarray], spec: LayerSpec) -> list[dict[str, np.ndarray]]:
    """One dict ``{"W", "R"[, "B"][, "P"]}`` per layer, of a state in PyTorch's layout."""
    owner = owner_of("to_onnx_weights", spec)
    _refuse_what_onnx_lacks(owner, spec)
    state = checked_state(owner, state, spec)
    order = ONNX_ORDER[spec.mode]
    layers = []
    for layer in range(spec.num_layers):
        suffixes = [suffix for index, _, suffix in spec.directions() if index == layer]
        arrays = {
            "W": np.stack([reorder_blocks(state[f"weight_ih{s}"], order) for s in suffixes]),
            "R": np.stack([reorder_blocks(state[f"weight_hh{s}"], order) for s in suffixes]),
        }
        if spec.bias:
            arrays["B"] = np.stack(
                [
                    np.concatenate(
                        [reorder_blocks(state[f"bias_ih{s}"], order), reorder_blocks(state[f"bias_hh{s}"], order)]
                    )
                    for s in suffixes
                ]
            )
        if spec.peepholes:
            arrays["P"] = np.stack([reorder_blocks(state[f"weight_peephole{s}"], PEEPHOLE_ORDER) for s in suffixes])
        layers.append(arrays)
    return layers


def from_onnx_weights(layers: list[Mapping[str, np.ndarray]], spec: LayerSpec) -> dict[str, np.ndarray]:
    """The state (PyTorch's names and layout) of one ``{"W", "R"[, "B"][, "P"]}`` dict per layer."""
    owner = owner_of("from_onnx_weights", spec)
    _refuse_what_onnx_lacks(owner, spec)
    layers = check_layer_list(owner, layers, spec)
    order = inverse_order(ONNX_ORDER[spec.mode])
    state = {}
    for layer, given in enumerate(layers):
        arrays = check_arrays(f"{owner}, layer {layer}", given, onnx_shapes(spec, layer))
        for index, direction, suffix in spec.directions():
            if index != layer:
                continue
            state[f"weight_ih{suffix}"] = reorder_blocks(arrays["W"][direction], order)
            state[f"weight_hh{suffix}"] = reorder_blocks(arrays["R"][direction], order)
            if spec.bias:
                bias_ih, bias_hh = np.split(arrays["B"][direction], 2)
                state[f"bias_ih{suffix}"] = reorder_blocks(bias_ih, order)
                state[f"bias_hh{suffix}"] = reorder_blocks(bias_hh, order)
            if spec.peepholes:
                state[f"weight_peephole{suffix}"] = reorder_blocks(
                    arrays["P"][direction], inverse_order(PEEPHOLE_ORDER)
                )
    return {name: state[name] for name in spec.shapes()}  # PyTorch's order
