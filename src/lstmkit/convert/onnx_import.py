"""An lstmkit layer out of the ``LSTM``, ``GRU`` and ``RNN`` nodes of an ONNX model.

:func:`from_onnx` reads every recurrent node of the model's main graph in graph order, one node
per layer, and returns one stacked lstmkit layer holding their weights (torch's exporter writes
``nn.LSTM(num_layers=2)`` as two LSTM nodes). Weights must be constants: initializers or
``Constant`` nodes (both are what exporters write), also through ``Identity`` nodes.

    ===================  ==========================  ===========================================
    ONNX                 lstmkit                     refused
    ===================  ==========================  ===========================================
    LSTM / GRU / RNN     LSTM / GRU / RNN            nodes inside Loop/Scan/If bodies (not read)
    W (D, G*H, I)        weight_ih, gates reordered  W, R, B or P computed at run time
    R (D, G*H, H)        weight_hh, gates reordered
    B (D, 2*G*H)         bias_ih, bias_hh            (absent on every node: ``bias=False``;
                                                     absent on some: zeros there)
    P (D, 3*H), LSTM     ``peepholes=True``          (absent on some nodes: zeros there)
    direction            forward, bidirectional      ``reverse`` (no lstmkit twin)
    hidden_size          hidden_size (per layer)     one that differs from R's shape
    activations          defaults; RNN Tanh / Relu   any other (lstmkit's equations are fixed)
    linear_before_reset  1 (PyTorch's GRU)           0 (r_t multiplies h_{t-1} before R_h)
    clip, input_forget   absent / 0                  a clip, or input_forget=1 (other equations)
    layout               0 or 1                      (weights alike; lstmkit's I/O layout is
                                                     ``batch_first``'s)
    ===================  ==========================  ===========================================

Layer k's W must take D * H_{k-1} inputs (the directions of layer k-1 concatenated), and every node
must be of the same kind and direction; otherwise a ValueError says which node and why. The
weights' layouts are :mod:`.onnx_layout`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .onnx_layout import DEFAULT_ACTIVATIONS, OPERATORS, WEIGHT_INPUTS, from_onnx_weights
from .spec import LayerSpec

RECURRENT_OPS = tuple(dict.fromkeys(OPERATORS.values()))  # LSTM, GRU, RNN


@dataclass(frozen=True)
class RecurrentNode:
    """One ONNX ``LSTM``/``GRU``/``RNN`` node: its attributes (strings decoded) and constant weights."""

    op_type: str
    name: str
    attributes: dict = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.op_type} node {self.name!r}" if self.name else f"unnamed {self.op_type} node"

    @property
    def direction(self) -> str:
        return self.attributes.get("direction", "forward")

    @property
    def num_directions(self) -> int:
        return 2 if self.direction == "bidirectional" else 1

    @property
    def hidden_size(self) -> int:
        return int(self.weights["R"].shape[-1])

    @property
    def input_size(self) -> int:
        return int(self.weights["W"].shape[-1])


def onnx_layers(model_or_path) -> list[RecurrentNode]:
    """Every ``LSTM``, ``GRU`` and ``RNN`` node of the model's main graph, in graph order.

    ``model_or_path``: an ``onnx.ModelProto``, a path, a binary file object or the serialized bytes.
    A weight input that is not a constant is a ValueError naming the node and the input.
    """
    graph = _load_model(model_or_path).graph
    constants = _constants(graph)
    return [_recurrent_node(node, constants) for node in graph.node if node.op_type in RECURRENT_OPS]


def from_onnx(model_or_path, *, batch_first: bool = False, dtype=np.float32):
    """An lstmkit ``LSTM``, ``GRU`` or ``RNN`` holding the weights of a model's recurrent nodes.

    Args:
        model_or_path: an ``onnx.ModelProto``, a path, a binary file object or the serialized bytes.
        batch_first: the returned layer's input layout ((N, L, H_in) when True), as its constructor's.
        dtype: the returned layer's dtype (float32 or float64).

    Returns the layer with one layer per recurrent node (``num_layers`` of them, hidden sizes from
    each node's R). Refuses (ValueError, saying why) a model without recurrent nodes, nodes that
    do not stack, and the attributes in the module's table.
    """
    model = _load_model(model_or_path)
    nodes = onnx_layers(model)
    if not nodes:
        found = sorted({node.op_type for node in model.graph.node})
        raise ValueError(
            f"from_onnx: expected at least one LSTM, GRU or RNN node in the model's main graph, got none "
            f"(its ops: {', '.join(found) or 'none'}; nodes inside Loop/Scan/If bodies are not read)"
        )
    modes = [_mode(node) for node in nodes]
    _check_stack(nodes, modes)
    directions = nodes[0].num_directions
    spec = LayerSpec(
        modes[0],
        nodes[0].input_size,
        tuple(node.hidden_size for node in nodes),
        bidirectional=directions == 2,
        bias=any("B" in node.weights for node in nodes),
        peepholes=any("P" in node.weights for node in nodes),
    )
    layers = [_filled_weights(node, spec, directions) for node in nodes]
    return spec.build(from_onnx_weights(layers, spec), batch_first=batch_first, dtype=dtype)


# ---- reading the graph ----------------------------------------------------------------------
def _onnx():
    try:
        import onnx
        import onnx.numpy_helper
    except ImportError as error:
        raise ImportError("lstmkit.convert.onnx_import needs the onnx package: pip install 'lstmkit[onnx]'") from error
    return onnx


def _load_model(model_or_path):
    onnx = _onnx()
    from google.protobuf.message import DecodeError  # onnx's own dependency

    if isinstance(model_or_path, onnx.ModelProto):
        return model_or_path
    try:
        if isinstance(model_or_path, bytes):
            return onnx.load_model_from_string(model_or_path)
        if isinstance(model_or_path, (str, Path)) and not Path(model_or_path).is_file():
            raise FileNotFoundError(f"no file at {model_or_path}")
        return onnx.load(model_or_path)
    except (OSError, ValueError, DecodeError) as error:
        raise ValueError(f"from_onnx: {model_or_path!r} is not a readable ONNX model ({error})") from None


def _constants(graph) -> dict[str, np.ndarray]:
    """Name -> array of every initializer, ``Constant`` node's ``value`` and ``Identity`` of one."""
    to_array = _onnx().numpy_helper.to_array
    constants = {tensor.name: to_array(tensor) for tensor in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    constants[node.output[0]] = to_array(attribute.t)
        elif node.op_type == "Identity" and node.input[0] in constants:
            constants[node.output[0]] = constants[node.input[0]]
    return constants


def _attributes(node) -> dict:
    get = _onnx().helper.get_attribute_value
    decoded = {}
    for attribute in node.attribute:
        value = get(attribute)
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        elif isinstance(value, list):
            value = [item.decode("utf-8") if isinstance(item, bytes) else item for item in value]
        decoded[attribute.name] = value
    return decoded


def _recurrent_node(node, constants: dict[str, np.ndarray]) -> RecurrentNode:
    result = RecurrentNode(node.op_type, node.name, _attributes(node))
    for key, index in WEIGHT_INPUTS.items():
        if (key == "P" and node.op_type != "LSTM") or index >= len(node.input) or not node.input[index]:
            continue
        name = node.input[index]
        if name not in constants:
            raise ValueError(
                f"onnx_layers: {result}: expected input {key} to be a constant (an initializer or a Constant "
                f"node), got {name!r}, computed at run time; lstmkit imports stored weights only"
            )
        result.weights[key] = np.asarray(constants[name])
    for key, rank in (("W", 3), ("R", 3), ("B", 2), ("P", 2)):
        if key in result.weights and result.weights[key].ndim != rank:
            raise ValueError(
                f"onnx_layers: {result}: expected {key} of rank {rank}, got shape {result.weights[key].shape}"
            )
    if "W" not in result.weights or "R" not in result.weights:
        raise ValueError(f"onnx_layers: {result}: expected inputs W and R, got {list(node.input)}")
    return result


# ---- what lstmkit can hold -----------------------------------------------------------------
def _mode(node: RecurrentNode) -> str:
    """lstmkit's mode of ``node`` (``LSTM``, ``GRU``, ``RNN_TANH``, ``RNN_RELU``), or a ValueError."""
    attributes, owner = node.attributes, f"from_onnx: {node}"
    if node.direction not in ("forward", "bidirectional"):
        raise ValueError(
            f"{owner}: expected direction 'forward' or 'bidirectional', got {node.direction!r} "
            "(a layer that reads only backwards has no lstmkit twin)"
        )
    directions = node.num_directions
    if node.weights["W"].shape[0] != directions:
        raise ValueError(
            f"{owner}: direction {node.direction!r} expects W of {directions} direction(s), got W of shape "
            f"{node.weights['W'].shape}"
        )
    if node.op_type == "GRU" and attributes.get("linear_before_reset", 0) != 1:
        raise ValueError(
            f"{owner}: expected linear_before_reset=1 (PyTorch's and lstmkit's GRU: "
            "n_t = tanh(W_n x_t + b_Wn + r_t * (R_n h_{t-1} + b_Rn))), got "
            f"{attributes.get('linear_before_reset', 0)}: 0 is the other equation "
            "(r_t multiplies h_{t-1} before R_n), which lstmkit does not compute"
        )
    if "clip" in attributes:
        raise ValueError(f"{owner}: expected no clip attribute, got clip={attributes['clip']} (lstmkit has no clip)")
    if attributes.get("input_forget", 0):
        raise ValueError(f"{owner}: expected input_forget=0, got 1 (coupled input and forget gates)")
    if attributes.get("layout", 0) not in (0, 1):
        raise ValueError(f"{owner}: expected layout 0 or 1, got {attributes['layout']}")
    hidden = attributes.get("hidden_size", node.hidden_size)
    if hidden != node.hidden_size:
        raise ValueError(
            f"{owner}: expected hidden_size={node.hidden_size} (R's shape {node.weights['R'].shape}), got {hidden}"
        )
    return _activation_mode(node, owner)


def _activation_mode(node: RecurrentNode, owner: str) -> str:
    activations = [name.lower() for name in node.attributes.get("activations", [])]
    default = DEFAULT_ACTIVATIONS[node.op_type]
    if node.op_type == "RNN":
        kinds = set(activations or default)
        if len(kinds) == 1 and kinds <= {"tanh", "relu"}:
            return f"RNN_{kinds.pop().upper()}"
        raise ValueError(f"{owner}: expected activations Tanh or Relu (one for all directions), got {activations}")
    if activations and activations not in (list(default), list(default) * 2):
        raise ValueError(f"{owner}: expected the default activations {list(default)}, got {activations}")
    return node.op_type


def _check_stack(nodes: list[RecurrentNode], modes: list[str]) -> None:
    first = nodes[0]
    directions = first.num_directions
    for index, (node, mode) in enumerate(zip(nodes, modes)):
        owner = f"from_onnx: node {index} of the stack ({node})"
        if mode != modes[0] or node.direction != first.direction:
            raise ValueError(
                f"{owner}: expected a {first.direction} {modes[0]} like node 0 ({first}), got a "
                f"{node.direction} {mode} (lstmkit stacks layers of one kind and direction)"
            )
        if index and node.input_size != directions * nodes[index - 1].hidden_size:
            raise ValueError(
                f"{owner}: expected W to take D * hidden_size = {directions} * {nodes[index - 1].hidden_size} "
                f"inputs (node {index - 1}'s output), got W of shape {node.weights['W'].shape}: the nodes "
                "are not one stack"
            )


def _filled_weights(node: RecurrentNode, spec: LayerSpec, directions: int) -> dict[str, np.ndarray]:
    """``node``'s weights, with zeros for a B or P that other layers of the stack have."""
    weights = dict(node.weights)
    dtype = weights["W"].dtype
    rows = spec.gate_count * node.hidden_size
    if spec.bias and "B" not in weights:
        weights["B"] = np.zeros((directions, 2 * rows), dtype)
    if spec.peepholes and "P" not in weights:
        weights["P"] = np.zeros((directions, 3 * node.hidden_size), dtype)
    return weights
