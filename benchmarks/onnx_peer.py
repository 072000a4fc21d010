"""onnxruntime's LSTM and GRU operators as a peer: an ONNX graph holding a lstmkit layer's weights.

The weights come from :func:`lstmkit.convert.to_onnx_weights` (ONNX's gate orders and stacked
biases, see its module); stacked layers are one node each, with the directions of Y, (T, D, N, H),
joined back into (T, N, D·H) between them. The graph returns the output alone, as the timed call
of the other peers does (the exported graphs of :mod:`lstmkit.export` also return the states).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

from lstmkit.convert import LayerSpec, to_onnx_weights


def _layer_node(kind, weights, layer, directions, hidden, source, nodes, initializers):
    names = [f"W{layer}", f"R{layer}", f"B{layer}"]
    arrays = [weights[key].astype(np.float32) for key in ("W", "R", "B")]
    initializers += [numpy_helper.from_array(array, name) for array, name in zip(arrays, names)]
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
    layers = to_onnx_weights(layer.state_dict(), LayerSpec.of(layer))
    nodes, initializers = [], [numpy_helper.from_array(np.array([0, 0, -1], np.int64), "flat_shape")]
    source = "X"
    for index, weights in enumerate(layers):
        source = _layer_node(kind, weights, index, directions, hidden, source, nodes, initializers)
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
