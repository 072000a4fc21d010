"""ONNX export that runs in onnxruntime: recurrent layers in every configuration, and whole models.

>>> import lstmkit, lstmkit.export                                      # doctest: +SKIP
>>> lstm = lstmkit.LSTM(8, 16, num_layers=2, bidirectional=True, proj_size=4)
>>> lstmkit.export.to_onnx(lstm, "lstm.onnx", lengths=True)            # doctest: +SKIP

What is exported, and the graph's inputs and outputs (names as in the graph; ``batch`` and
``steps`` are dynamic axes):

    ==================  ===================================  =======================================
    model               inputs                               outputs
    ==================  ===================================  =======================================
    LSTM, GRU, RNN      input (L, N, I) / (N, L, I) / (L, I)  output, h_n (and c_n for an LSTM)
                        [lengths (N,) int64, with lengths=]
                        h0 (and c0): optional, zeros if
                        not fed; per-layer sizes: h0_l{k}
    Sequential          input: float, or int64 token ids     output
    (Embedding, LSTM/                                        (e.g. the mnist task's (N, 10) logits)
    GRU/RNN, LastStep,
    Linear, Dropout)
    LanguageModel       tokens (L, N) int64; h0, c0 optional  logits (L, N, V), h_n, c_n
    ==================  ===================================  =======================================

States are PyTorch's: (num_layers·D, N, H_out) for h, never batch-first (a layer's
``return_states="all"`` third result is not exported). The graph is the model in evaluation
(dropout off, zoneout at its rate, a ``runtime_forget_bias`` folded into B) and computes in float32 (a float64
model's weights are rounded). Opset :data:`~.graph.OPSET` (17): ONNX's ``LSTM``, ``GRU`` and
``RNN`` operators where they compute the layer, a ``Scan`` where they cannot (``proj_size``,
layer norm, zoneout: see :mod:`.recurrent`). Every graph passes ``onnx.checker`` with
``full_check=True`` before it is written, atomically. Needs the ``onnx`` extra:
``pip install 'lstmkit[onnx]'``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import atomic_write
from ..nn.language_model import LanguageModel
from ..nn.layers import Dropout, Embedding, LastStep, Linear, Sequential
from ..nn.rnn_base import RNNBase
from .graph import FLOAT, OPSET, Graph
from .recurrent import recurrent_layer

__all__ = ["OPSET", "to_onnx"]


def to_onnx(model, path: str | Path | None = None, *, lengths: bool = False, unbatched: bool = False, scan=None):
    """The ONNX model of ``model`` (an onnx ModelProto), written to ``path`` when given.

    ``lengths=True`` (a recurrent layer): the graph takes ``lengths`` (N,), and the input is a
    right-padded batch, as lstmkit's ``layer(x, lengths=...)``. ``unbatched=True``: the input
    is one sequence (L, I), as lstmkit's 2-D call. ``scan``: None uses ONNX's recurrent
    operators where they fit; True builds every LSTM from a Scan (for tests and comparison).
    """
    try:
        import onnx  # noqa: F401
    except ImportError as error:
        raise ImportError("lstmkit.export.to_onnx needs onnx: pip install 'lstmkit[onnx]'") from error
    owner = f"to_onnx({type(model).__name__})"
    if path is not None and Path(path).is_dir():
        raise ValueError(f"{owner}: {path} is a folder; expected a file name, e.g. {Path(path) / 'model.onnx'}")
    if (lengths or unbatched) and not isinstance(model, RNNBase):
        raise ValueError(f"{owner}: lengths= and unbatched= apply to a recurrent layer, got a {type(model).__name__}")
    if lengths and unbatched:
        raise ValueError(f"{owner}: an unbatched sequence has one length; leave out lengths=True or unbatched=True")
    graph = Graph(f"lstmkit_{type(model).__name__}")
    if isinstance(model, RNNBase):
        _layer_graph(graph, model, lengths, unbatched, scan)
    elif isinstance(model, LanguageModel):
        _language_model_graph(graph, model, scan)
    elif isinstance(model, Sequential):
        _sequential_graph(graph, model, scan)
    else:
        raise TypeError(
            f"{owner}: expected an lstmkit LSTM, GRU, RNN, Sequential or LanguageModel, got {type(model).__name__}"
        )
    proto = graph.model(doc=repr(model))
    if path is not None:
        atomic_write(path, lambda handle: handle.write(proto.SerializeToString()))
    return proto


# ---- a recurrent layer's states ------------------------------------------------------------
def _state_sizes(layer) -> dict[str, tuple[int, ...]]:
    """Per state part, its size in each layer (h: H_out, c: H), from the layer's own per-layer sizes."""
    parts = layer._kind.state_parts
    return {part: tuple(sizes[index] for sizes in layer._layer_state_sizes) for index, part in enumerate(parts)}


def _initial_states(graph: Graph, layer, x: str, unbatched: bool, as_inputs: bool) -> dict[str, list[str]]:
    """Per state part, one (D, N, size) name per layer: graph inputs h0/c0 (zeros unless fed) when
    ``as_inputs``, else zeros."""
    directions, per_layer = layer.num_directions, layer._state_lists
    batch = graph.op("Slice", [graph.op("Shape", [x]), graph.ints([1]), graph.ints([2])], "batch")
    initial = {}
    for part, sizes in _state_sizes(layer).items():
        groups = [(f"{part}0_l{k}", directions, (size,)) for k, size in enumerate(sizes)] if per_layer else None
        groups = groups or [(f"{part}0", directions * layer.num_layers, (sizes[0],))]
        names = []
        for name, rows, (size,) in groups:
            zeros = np.zeros((rows, size) if unbatched else (rows, 1, size), FLOAT)
            if as_inputs:
                shape = [rows, size] if unbatched else [rows, "batch", size]
                value = graph.add_input(name, graph.float_type, shape, default=zeros)
            else:
                value = graph.constant(zeros, name)
            if unbatched:
                value = graph.op("Unsqueeze", [value, graph.ints([1])], name)
            else:
                shape = graph.op("Concat", [graph.ints([rows]), batch, graph.ints([size])], "state_shape", axis=0)
                value = graph.op("Expand", [value, shape], name)
            names += (
                [value]
                if per_layer
                else [
                    graph.op("Slice", [value, graph.ints([k * directions]), graph.ints([(k + 1) * directions])], name)
                    for k in range(layer.num_layers)
                ]
            )
        initial[part] = names
    return initial


def _final_states(graph: Graph, layer, finals: dict[str, list[str]], unbatched: bool) -> None:
    """Graph outputs h_n (and c_n): (num_layers·D, N, size), or h_n_l{k} (D, N, size) per layer."""
    directions = layer.num_directions
    for part, names in finals.items():
        sizes = _state_sizes(layer)[part]
        groups = (
            [(f"{part}_n_l{k}", [name], directions, size) for k, (name, size) in enumerate(zip(names, sizes))]
            if layer._state_lists
            else [(f"{part}_n", names, directions * layer.num_layers, sizes[0])]
        )
        for output, sources, rows, size in groups:
            value = sources[0] if len(sources) == 1 else graph.op("Concat", sources, output, axis=0)
            if unbatched:
                value = graph.op("Squeeze", [value, graph.ints([1])], output)
            graph.add_output(value, output, graph.float_type, [rows, size] if unbatched else [rows, "batch", size])


# ---- a recurrent layer ---------------------------------------------------------------------
def _time_major(graph: Graph, x: str, rank: int, batch_first: bool) -> str:
    if rank == 2:
        return graph.op("Unsqueeze", [x, graph.ints([1])], "time_major")
    return graph.op("Transpose", [x], "time_major", perm=[1, 0, 2]) if batch_first else x


def _from_time_major(graph: Graph, y: str, rank: int, batch_first: bool) -> str:
    if rank == 2:
        return graph.op("Squeeze", [y, graph.ints([1])], "output")
    return graph.op("Transpose", [y], "output", perm=[1, 0, 2]) if batch_first else y


def _layer_graph(graph: Graph, layer, lengths: bool, unbatched: bool, scan) -> None:
    dims = ["steps"] if unbatched else (["batch", "steps"] if layer.batch_first else ["steps", "batch"])
    x = graph.add_input("input", graph.float_type, [*dims, layer.input_size])
    rank = len(dims) + 1
    time_major = _time_major(graph, x, rank, layer.batch_first)
    length_values = graph.add_input("lengths", graph.int64_type, ["batch"]) if lengths else None
    initial = _initial_states(graph, layer, time_major, unbatched, as_inputs=True)
    y, finals = recurrent_layer(graph, layer, time_major, length_values, initial, scan=scan)
    graph.add_output(
        _from_time_major(graph, y, rank, layer.batch_first), "output", graph.float_type, [*dims, layer.output_features]
    )
    _final_states(graph, layer, finals, unbatched)


# ---- whole models --------------------------------------------------------------------------
def _sequential_graph(graph: Graph, model: Sequential, scan) -> None:
    """Sequential(Embedding?, recurrent layer, LastStep, Linear, Dropout ...): input -> output."""
    modules = list(model)
    recurrent = [module for module in modules if isinstance(module, RNNBase)]
    dims = ["batch", "steps"] if recurrent and recurrent[0].batch_first else ["steps", "batch"]
    first = modules[0] if modules else None
    if isinstance(first, Embedding):
        x = graph.add_input("input", graph.int64_type, dims)
    elif isinstance(first, RNNBase):
        dims = [*dims, first.input_size]
        x = graph.add_input("input", graph.float_type, dims)
    else:
        raise TypeError(
            f"to_onnx(Sequential): expected an Embedding or a recurrent layer first, got {type(first).__name__}"
        )
    for index, module in enumerate(modules):
        x, dims = _module_nodes(graph, module, index, x, dims, scan)
    graph.add_output(x, "output", graph.float_type, dims)


def _module_nodes(graph: Graph, module, index: int, x: str, dims: list, scan) -> tuple[str, list]:
    """``(value, its dims)`` after one module of a Sequential (in evaluation)."""
    if isinstance(module, Embedding):
        embedded = graph.op("Gather", [graph.constant(module.weight.data, "embedding"), x], "embedded", axis=0)
        return embedded, [*dims, module.embedding_dim]
    if isinstance(module, RNNBase):
        time_major = _time_major(graph, x, len(dims), module.batch_first)
        initial = _initial_states(graph, module, time_major, unbatched=False, as_inputs=False)
        y, _ = recurrent_layer(graph, module, time_major, None, initial, scan=scan)
        return _from_time_major(graph, y, len(dims), module.batch_first), [*dims[:-1], module.output_features]
    if isinstance(module, LastStep):
        axis = 1 if module.batch_first and len(dims) == 3 else 0
        return graph.op("Gather", [x, graph.ints(-1, "last")], "last_step", axis=axis), dims[:axis] + dims[axis + 1 :]
    if isinstance(module, Linear):
        return _linear(graph, module, x), [*dims[:-1], module.out_features]
    if isinstance(module, Dropout):
        return x, dims
    raise TypeError(
        f"to_onnx(Sequential): module {index} is a {type(module).__name__}; expected Embedding, LSTM, GRU, RNN, "
        "LastStep, Linear or Dropout"
    )


def _linear(graph: Graph, module: Linear, x: str) -> str:
    y = graph.op("MatMul", [x, graph.constant(module.weight.data.T, "linear_weight_t")], "linear")
    if "bias" in module._parameters:
        y = graph.op("Add", [y, graph.constant(module.bias.data, "linear_bias")], "linear")
    return y


def _language_model_graph(graph: Graph, model: LanguageModel, scan) -> None:
    """tokens (L, N), optional h0 and c0 -> logits (L, N, V), h_n, c_n."""
    tokens = graph.add_input("tokens", graph.int64_type, ["steps", "batch"])
    embedded = graph.op("Gather", [graph.constant(model.embedding.weight.data, "embedding"), tokens], "embedded")
    initial = _initial_states(graph, model.lstm, embedded, unbatched=False, as_inputs=True)
    y, finals = recurrent_layer(graph, model.lstm, embedded, None, initial, scan=scan)
    graph.add_output(_linear(graph, model.decoder, y), "logits", graph.float_type, ["steps", "batch", model.vocab_size])
    _final_states(graph, model.lstm, finals, unbatched=False)
