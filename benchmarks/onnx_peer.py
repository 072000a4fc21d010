"""onnxruntime's LSTM and GRU operators as a peer: an ONNX graph holding a lstmkit layer's weights.

ONNX lays the gates out differently from PyTorch (LSTM i, o, f, c against i, f, g, o; GRU z, r, h
against r, z, n, with ``linear_before_reset=1`` for PyTorch's GRU), keeps both biases in one
(D, 2·G·H) array and returns Y as (T, D, N, H); stacked layers are one node each, with the
directions of Y joined back into (T, N, D·H) between them.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

# rows of ONNX's gate blocks, as indices of PyTorch's blocks
ONNX_BLOCKS = {"LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2]}


def _reorder(array, kind):
    blocks = np.split(array, len(ONNX_BLOCKS[kind]), axis=0)
    return np.concatenate([blocks[k] for k in ONNX_BLOCKS[kind]], axis=0)


def _layer_node(kind, state, layer, directions, hidden, source, nodes, initializers):
    suffixes = [f"l{layer}"] + ([f"l{layer}_reverse"] if directions == 2 else [])
    w = np.stack([_reorder(state[f"weight_ih_{s}"], kind) for s in suffixes])
    r = np.stack([_reorder(state[f"weight_hh_{s}"], kind) for s in suffixes])
    b = np.stack(
        [
            np.concatenate([_reorder(state[f"bias_ih_{s}"], kind), _reorder(state[f"bias_hh_{s}"], kind)])
            for s in suffixes
        ]
    )
    names = [f"W{layer}", f"R{layer}", f"B{layer}"]
    initializers += [numpy_helper.from_array(array.astype(np.float32), name) for array, name in zip((w, r, b), names)]
    attributes = {"hidden_size": hidden, "direction": "bidirectional" if directions == 2 else "forward"}
    if kind == "GRU":
        attributes["linear_before_reset"] = 1
    y = f"Y{layer}"
    nodes.append(helper.make_node(kind, [source, *names], [y], **attributes))
    # (T, D, N, H) -> (T, N, D, H) -> (T, N, D*H): the next layer's input, or the output
    nodes.append(helper.make_node("Transpose", [y], [f"{y}_t"], perm=[0, 2, 1, 3]))
    nodes.append(helper.make_node("Reshape", [f"{y}_t", "flat_shape"], [f"out{layer}"]))
    return f"out{layer}"


def onnx_session(kind: str, layer, threads: int) -> onnxruntime.InferenceSession:
    """An inference session computing the output (T, N, D·H) of ``layer`` (a lstmkit.LSTM or GRU,
    ``kind`` naming which) from X (T, N, I)."""
    hidden = layer.hidden_size
    directions = 2 if layer.bidirectional else 1
    state = layer.state_dict()
    nodes, initializers = [], [numpy_helper.from_array(np.array([0, 0, -1], np.int64), "flat_shape")]
    source = "X"
    for index in range(layer.num_layers):
        source = _layer_node(kind, state, index, directions, hidden, source, nodes, initializers)
    graph = helper.make_graph(
        nodes,
        "recurrent",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "N", layer.input_size])],
        [helper.make_tensor_value_info(source, TensorProto.FLOAT, ["T", "N", directions * hidden])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8)
    onnx.checker.check_model(model)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
