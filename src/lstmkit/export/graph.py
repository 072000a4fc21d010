"""A small builder of ONNX graphs: unique names, weights as initializers, one call per node.

Only :mod:`lstmkit.export` uses it; ``onnx`` is imported when a :class:`Graph` is made, so
importing :mod:`lstmkit.export` needs no onnx.
"""

from __future__ import annotations

import itertools

import numpy as np

OPSET = 17  # Scan 16, LSTM/GRU/RNN 14 (layout), ReverseSequence 10, Split with a sizes input 13
IR_VERSION = 8  # the IR of opset 17 (ONNX 1.12), which onnxruntime 1.12 and later read
FLOAT = np.float32  # every exported graph computes in float32


class Graph:
    """Nodes, initializers, inputs and outputs of one ONNX graph, or of a loop body: a body's
    ``parent`` shares its name counter (no name is used twice anywhere in the model) and holds
    its constants (the body reads them from the outer scope by name)."""

    def __init__(self, name: str, parent: Graph | None = None):
        import onnx

        self.onnx = onnx
        self.float_type, self.int32_type, self.int64_type = (
            onnx.TensorProto.FLOAT,
            onnx.TensorProto.INT32,
            onnx.TensorProto.INT64,
        )
        self.name = name
        self._counter = parent._counter if parent is not None else itertools.count()
        self._root = parent._root if parent is not None else self
        self.nodes, self.initializers, self.inputs, self.outputs = [], [], [], []

    def fresh(self, hint: str) -> str:
        """A name used nowhere else in the model."""
        return f"{hint}_{next(self._counter)}"

    def constant(self, array, hint: str = "const") -> str:
        """An initializer holding ``array`` (floating arrays as float32); returns its name."""
        array = np.asarray(array)
        if np.issubdtype(array.dtype, np.floating):
            array = array.astype(FLOAT)
        name = self.fresh(hint)
        self._root.initializers.append(self.onnx.numpy_helper.from_array(np.array(array, order="C"), name))
        return name

    def ints(self, values, hint: str = "ints") -> str:
        """A constant int64 vector, as ONNX's shape, axes and index inputs want."""
        return self.constant(np.asarray(values, dtype=np.int64), hint)

    def op(self, op_type: str, inputs, hint: str | None = None, outputs: int = 1, **attributes):
        """Append one node; returns its output's name (a list of names when ``outputs`` > 1)."""
        names = [self.fresh(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), names, **attributes))
        return names[0] if outputs == 1 else names

    def add_input(self, name: str, element_type: int, shape, default: np.ndarray | None = None) -> str:
        """A graph input; with ``default``, an initializer of the same name makes it optional."""
        self.inputs.append(self.onnx.helper.make_tensor_value_info(name, element_type, shape))
        if default is not None:
            self.initializers.append(self.onnx.numpy_helper.from_array(np.array(default, order="C"), name))
        return name

    def add_output(self, source: str, name: str, element_type: int, shape) -> None:
        """A graph output called ``name``, holding ``source``'s value."""
        self.nodes.append(self.onnx.helper.make_node("Identity", [source], [name]))
        self.outputs.append(self.onnx.helper.make_tensor_value_info(name, element_type, shape))

    def proto(self):
        """The onnx GraphProto."""
        return self.onnx.helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.initializers)

    def model(self, doc: str = ""):
        """The checked onnx ModelProto of this (top-level) graph."""
        model = self.onnx.helper.make_model(
            self.proto(),
            opset_imports=[self.onnx.helper.make_opsetid("", OPSET)],
            ir_version=IR_VERSION,
            producer_name="lstmkit",
            doc_string=doc,
        )
        self.onnx.checker.check_model(model, full_check=True)
        return model
