"""One lstmkit recurrent layer as ONNX nodes, time-major in and out.

Two ways to build a layer, chosen per layer:

- **ONNX's own operator** (``LSTM``, ``GRU``, ``RNN``): one node per layer, both directions,
  when the operator computes the layer: a plain LSTM (peepholes and a runtime forget bias
  included: P, and the bias folded into B), PyTorch's GRU (``linear_before_reset=1``) and RNN.
- **A Scan over time**, for the LSTMs the operator cannot express: ``proj_size`` (ONNX's LSTM
  has no projection, which is why PyTorch's exporter refuses such a layer), layer norm and
  zoneout (in evaluation: the rate itself, as lstmkit's eval). The input's product
  ``W_ih x_t`` runs for all steps before the Scan; the body is one step of
  :mod:`lstmkit.ops.lstm`'s equations, and the reverse direction runs on the input reversed
  within each sequence's length (``ReverseSequence``).

Sequences of different lengths (``lengths``) follow lstmkit's (and PyTorch's packed) rule: a
sequence's state stops at its last step, and its output is zero past it.

Every function takes and returns value names of a :class:`~.graph.Graph`:

    ==========  ===========  ==============================================
    x           (T, N, I)    the layer's input, time-major
    lengths     (N,)         int64 lengths, or None (every sequence T long)
    initial     per part     (D, N, H_part) per layer: h (and c) of layer k
    output      (T, N, F)    F = D*H_out ("concat") or H_out (merged)
    finals      per part     (D, N, H_part) per layer
    ==========  ===========  ==============================================
"""

from __future__ import annotations

import numpy as np

from ..convert.onnx_layout import GRU_ATTRIBUTES, OPERATORS, RNN_ACTIVATIONS, to_onnx_weights
from ..convert.spec import LayerSpec, state_of
from ..nn.weight_shapes import weight_suffix
from ..ops.layer_norm import LAYER_NORM_EPS
from .graph import FLOAT, Graph


def export_weights(layer) -> tuple[LayerSpec, dict[str, np.ndarray]]:
    """The layer's spec and float32 state, a runtime forget bias folded in (:func:`~lstmkit.convert.state_of`)."""
    spec, state = state_of(layer)
    return spec, {name: value.astype(FLOAT) for name, value in state.items()}


def zoneout_rates(layer) -> tuple[float, ...]:
    """The layer's zoneout rate of each state part (zeros when it has none)."""
    return tuple(getattr(layer, "_zoneout_rates", (0.0,) * len(layer._kind.state_parts)))


def needs_scan(layer) -> bool:
    """Whether ONNX's operator cannot compute this layer (see the module docstring)."""
    return bool(layer.proj_size or getattr(layer, "layer_norm", False) or any(zoneout_rates(layer)))


def refuse_what_cannot_export(layer) -> None:
    owner = f"to_onnx({type(layer).__name__})"
    if layer.mode != "LSTM" and any(zoneout_rates(layer)):
        raise ValueError(f"{owner}: zoneout on a {layer.mode} is not exported (an LSTM's is); got {layer.zoneout!r}")


def recurrent_layer(graph: Graph, layer, x: str, lengths: str | None, initial: dict, *, scan: bool | None = None):
    """``(output, finals)`` of ``layer`` on ``x`` (see the module docstring); ``scan`` forces the
    Scan (True) or the operator (False), None chooses."""
    refuse_what_cannot_export(layer)
    spec, state = export_weights(layer)
    if scan is not None and not isinstance(scan, bool):
        raise TypeError(f"to_onnx: scan must be None, True or False, got {scan!r}")
    needed = needs_scan(layer)
    if scan is False and needed:
        raise ValueError(f"to_onnx: ONNX's LSTM operator cannot compute this layer ({layer!r}); it needs the Scan")
    scan = needed or bool(scan) and spec.mode == "LSTM"  # a GRU's or an RNN's is always the operator
    operator_weights = None if scan else to_onnx_weights(state, spec)
    lengths32 = None if lengths is None or scan else graph.op("Cast", [lengths], "lengths32", to=graph.int32_type)
    finals = {part: [] for part in layer._kind.state_parts}
    for index in range(spec.num_layers):
        layer_initial = {part: names[index] for part, names in initial.items()}
        if scan:
            directions, layer_finals = _scanned_layer(graph, layer, spec, state, index, x, lengths, layer_initial)
        else:
            directions, layer_finals = _operator_layer(
                graph, layer, spec, operator_weights[index], index, x, lengths32, layer_initial
            )
        x = merge_directions(graph, directions, layer.merge_mode)
        for part, name in layer_finals.items():
            finals[part].append(name)
    return x, finals


def merge_directions(graph: Graph, outputs: list[str], merge_mode: str) -> str:
    """Each direction's (T, N, H) output merged as lstmkit's ``merge_mode`` does."""
    if len(outputs) == 1:
        return outputs[0]
    if merge_mode == "concat":
        return graph.op("Concat", outputs, "merged", axis=-1)
    if merge_mode == "sum":
        return graph.op("Add", outputs, "merged")
    if merge_mode == "mul":
        return graph.op("Mul", outputs, "merged")
    return graph.op("Mul", [graph.op("Add", outputs), graph.constant(np.float32(0.5), "half")], "merged")


def _operator_layer(graph, layer, spec, weights, index, x, lengths32, initial):
    """One ONNX LSTM/GRU/RNN node: (per-direction outputs (T, N, H), finals (D, N, H) per part)."""
    mode = spec.mode
    names = {key: graph.constant(value, f"{key}_l{index}") for key, value in weights.items()}
    inputs = [x, names["W"], names["R"], names.get("B", ""), lengths32 or "", initial["h"]]
    attributes = {
        "hidden_size": spec.hidden_sizes[index],
        "direction": "bidirectional" if spec.bidirectional else "forward",
    }
    if mode == "LSTM":
        inputs += [initial["c"], names.get("P", "")]
    elif mode == "GRU":
        attributes.update(GRU_ATTRIBUTES)
    else:
        attributes["activations"] = [RNN_ACTIVATIONS[mode]] * spec.num_directions
    while inputs[-1] == "":
        inputs.pop()
    parts = layer._kind.state_parts
    y, *state_finals = graph.op(
        OPERATORS[mode], inputs, f"{mode.lower()}_l{index}", outputs=1 + len(parts), **attributes
    )
    directions = [
        graph.op("Gather", [y, graph.ints(d, "direction")], "y_direction", axis=1) for d in range(spec.num_directions)
    ]
    return directions, dict(zip(parts, state_finals))


def _scanned_layer(graph, layer, spec, state, index, x, lengths, initial):
    """An LSTM layer as one Scan per direction: (per-direction outputs (T, N, R), finals)."""
    mask = None
    if lengths is not None:  # (T, N, 1) bool: step t of sequence n is inside its length
        steps = graph.op("Gather", [graph.op("Shape", [x]), graph.ints(0, "zero")], "steps")
        times = graph.op("Range", [graph.ints(0, "zero"), steps, graph.ints(1, "one")], "times")
        inside = graph.op(
            "Less", [graph.op("Unsqueeze", [times, graph.ints([1])]), graph.op("Unsqueeze", [lengths, graph.ints([0])])]
        )
        mask = graph.op("Unsqueeze", [inside, graph.ints([2])], "mask")
    outputs, finals = [], {"h": [], "c": []}
    for direction in range(spec.num_directions):
        suffix = weight_suffix(index, direction)
        weights = {base: state[base + suffix] for base in spec.layer_shapes()[index]}
        xw = _input_share(graph, weights, layer, x)
        if direction:
            xw = _reverse_in_time(graph, xw, lengths)
        starts = [
            graph.op("Gather", [initial[part], graph.ints(direction, "direction")], f"{part}0") for part in ("h", "c")
        ]
        body = _step_body(graph, layer, weights, with_mask=mask is not None)
        scan_inputs = [xw] + ([mask] if mask is not None else [])
        h_final, c_final, y = graph.op(
            "Scan", starts + scan_inputs, "scan", outputs=3, body=body, num_scan_inputs=len(scan_inputs)
        )
        outputs.append(_reverse_in_time(graph, y, lengths) if direction else y)
        finals["h"].append(graph.op("Unsqueeze", [h_final, graph.ints([0])], "h_final"))
        finals["c"].append(graph.op("Unsqueeze", [c_final, graph.ints([0])], "c_final"))
    return outputs, {part: graph.op("Concat", names, f"{part}_n", axis=0) for part, names in finals.items()}


def _reverse_in_time(graph: Graph, values: str, lengths: str | None) -> str:
    """(T, N, F) with each sequence's steps reversed (within its length when ``lengths``)."""
    if lengths is None:
        return graph.op(
            "Slice",
            [values, graph.ints([-1]), graph.ints([np.iinfo(np.int64).min]), graph.ints([0]), graph.ints([-1])],
            "reversed",
        )
    return graph.op("ReverseSequence", [values, lengths], "reversed", batch_axis=1, time_axis=0)


def _input_share(graph: Graph, weights: dict, layer, x: str) -> str:
    """W_ih x_t + b for every step at once (with layer norm: LN(W_ih x_t) ⊙ g_ih + b_ih), plus the
    recurrent bias b_hh unless layer norm shifts the recurrent share with it."""
    product = graph.op("MatMul", [x, graph.constant(weights["weight_ih"].T, "weight_ih_t")], "xw")
    if "layer_norm_weight_ih" in weights:
        return _layer_norm(graph, product, weights["layer_norm_weight_ih"], weights.get("bias_ih"))
    if "bias_ih" not in weights:
        return product
    return graph.op("Add", [product, graph.constant(weights["bias_ih"] + weights["bias_hh"], "bias")], "xw_b")


def _layer_norm(graph: Graph, values: str, gain: np.ndarray, shift: np.ndarray | None) -> str:
    inputs = [values, graph.constant(gain, "ln_gain")] + (
        [graph.constant(shift, "ln_shift")] if shift is not None else []
    )
    return graph.op("LayerNormalization", inputs, "ln", axis=-1, epsilon=LAYER_NORM_EPS)


def _step_body(parent: Graph, layer, weights: dict, with_mask: bool):
    """The Scan body: one step of :mod:`lstmkit.ops.lstm` (state h, c; scan inputs xw_t, mask_t)."""
    import onnx

    body = Graph("lstm_step", parent)
    constant = body.constant  # held by the outer graph; the body reads them by name
    hidden = weights["weight_hh"].shape[0] // 4
    h, c, xw = body.fresh("h_prev"), body.fresh("c_prev"), body.fresh("xw_t")
    output_size = weights["weight_hh"].shape[1]
    for name, width in ((h, output_size), (c, hidden), (xw, 4 * hidden)):
        body.inputs.append(onnx.helper.make_tensor_value_info(name, body.float_type, ["batch", width]))
    mask = None
    if with_mask:
        mask = body.fresh("mask_t")
        body.inputs.append(onnx.helper.make_tensor_value_info(mask, onnx.TensorProto.BOOL, ["batch", 1]))
    recurrent = body.op("MatMul", [h, constant(weights["weight_hh"].T, "weight_hh_t")], "hw")
    if "layer_norm_weight_hh" in weights:
        recurrent = _layer_norm(body, recurrent, weights["layer_norm_weight_hh"], weights.get("bias_hh"))
    z = body.op("Add", [xw, recurrent], "z")
    z_i, z_f, z_g, z_o = body.op("Split", [z, body.ints([hidden] * 4, "gate_sizes")], "z_gate", outputs=4, axis=-1)
    peepholes = None if "weight_peephole" not in weights else np.split(weights["weight_peephole"], 3)
    if peepholes is not None:
        z_i = body.op("Add", [z_i, body.op("Mul", [c, constant(peepholes[0], "peephole_i")])])
        z_f = body.op("Add", [z_f, body.op("Mul", [c, constant(peepholes[1], "peephole_f")])])
    i, f, g = body.op("Sigmoid", [z_i], "i"), body.op("Sigmoid", [z_f], "f"), body.op("Tanh", [z_g], "g")
    c_new = body.op("Add", [body.op("Mul", [f, c]), body.op("Mul", [i, g])], "c")
    if peepholes is not None:
        z_o = body.op("Add", [z_o, body.op("Mul", [c_new, constant(peepholes[2], "peephole_o")])])
    o = body.op("Sigmoid", [z_o], "o")
    cell = c_new
    if "layer_norm_weight_c" in weights:
        cell = _layer_norm(body, c_new, weights["layer_norm_weight_c"], weights.get("layer_norm_bias_c"))
    h_new = body.op("Mul", [o, body.op("Tanh", [cell])], "m")
    if "weight_hr" in weights:
        h_new = body.op("MatMul", [h_new, constant(weights["weight_hr"].T, "weight_hr_t")], "h")
    rates = zoneout_rates(layer)
    h_new, c_new = (
        _zoned(body, new, previous, rate, constant) if rate else new
        for new, previous, rate in ((h_new, h, rates[0]), (c_new, c, rates[1]))
    )
    outputs = [h_new, c_new, h_new]
    if mask is not None:
        zero = constant(np.float32(0.0), "zero")
        outputs = [
            body.op("Where", [mask, h_new, h]),
            body.op("Where", [mask, c_new, c]),
            body.op("Where", [mask, h_new, zero]),
        ]
    for source, hint in zip(outputs, ("h_next", "c_next", "y_t")):
        name = body.fresh(hint)
        body.add_output(source, name, body.float_type, None)
    return body.proto()


def _zoned(body: Graph, new: str, previous: str, rate: float, constant) -> str:
    """Zoneout in evaluation: ``rate · previous + (1 - rate) · new``."""
    kept = body.op("Mul", [previous, constant(np.float32(rate), "zoneout_rate")])
    return body.op("Add", [kept, body.op("Mul", [new, constant(np.float32(1.0 - rate), "zoneout_keep")])], "zoned")
