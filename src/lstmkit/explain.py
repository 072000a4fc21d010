"""Shapes and parameter counts of an LSTM, GRU or RNN configuration, in PyTorch's and Keras' words.

Every shape printed is read off a real :class:`lstmkit.LSTM` (or GRU, RNN) built with the
configuration and off a real forward pass, so the text cannot drift from what the code does.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .grad_mode import no_grad
from .nn.checks import check_hidden_sizes, check_lstm_only, check_merge_mode, check_proj_size
from .nn.kinds import KINDS
from .nn.module import Module
from .nn.recurrent import GRU, LSTM, RNN
from .nn.weight_shapes import layer_weight_shapes, named_weight_shapes

MODES = tuple(KINDS)  # PyTorch's mode names: LSTM, GRU, RNN_TANH, RNN_RELU


class _KerasLayer(NamedTuple):
    """How Keras names and lays out the same layer."""

    name: str  # the keras.layers class
    options: str  # constructor arguments that make it this mode
    gate_order: str
    bias_rows: int  # 1: one bias (b_ih + b_hh); 2: both biases, stacked (GRU's reset_after=True)


_KERAS = {
    "LSTM": _KerasLayer("LSTM", "", "gate order i, f, c, o", 1),
    "GRU": _KerasLayer("GRU", "", "gate order z, r, h; reset_after=True", 2),
    "RNN_TANH": _KerasLayer("SimpleRNN", "", "activation tanh", 1),
    "RNN_RELU": _KerasLayer("SimpleRNN", ", activation='relu'", "activation relu", 1),
}


def count_parameters(module: Module) -> int:
    """Number of scalars in all parameters (PyTorch's ``sum(p.numel() for p in m.parameters())``)."""
    return sum(parameter.data.size for parameter in module.parameters())


def check_mode(mode: str) -> str:
    """``mode`` if it is one of LSTM, GRU, RNN_TANH, RNN_RELU; a ValueError naming them otherwise."""
    if mode not in KINDS:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def parameter_shapes(
    mode: str,
    input_size: int,
    hidden_size: int | list[int],
    num_layers: int = 1,
    bias: bool = True,
    bidirectional: bool = False,
    proj_size: int = 0,
    *,
    merge_mode: str = "concat",
    layer_norm: bool = False,
    peepholes: bool = False,
) -> dict[str, tuple[int, ...]]:
    """Names and shapes of a configuration's parameters, in PyTorch's names and order.

    =====================================  ====================  =============================
    name                                   shape                 when
    =====================================  ====================  =============================
    ``weight_ih_l{k}{suffix}``             (G*H_k, H_in of k)    always
    ``weight_hh_l{k}{suffix}``             (G*H_k, H_out_k)      always
    ``bias_ih_l{k}{suffix}``               (G*H_k,)              ``bias``
    ``bias_hh_l{k}{suffix}``               (G*H_k,)              ``bias``
    ``weight_hr_l{k}{suffix}``             (P, H_k)              ``proj_size`` P > 0 (LSTM only)
    ``weight_peephole_l{k}{suffix}``       (3*H_k,)              ``peepholes`` (LSTM only)
    ``layer_norm_weight_ih_l{k}{suffix}``  (G*H_k,)              ``layer_norm`` (LSTM only)
    ``layer_norm_weight_hh_l{k}{suffix}``  (G*H_k,)              ``layer_norm``
    ``layer_norm_weight_c_l{k}{suffix}``   (H_k,)                ``layer_norm``
    ``layer_norm_bias_c_l{k}{suffix}``     (H_k,)                ``layer_norm`` and ``bias``
    =====================================  ====================  =============================

    G = 4 (LSTM), 3 (GRU) or 1 (RNN) gate blocks; H_k = ``hidden_size`` (an int, or a list of
    one per layer); H_out_k = P or H_k; ``suffix`` is ``""`` or ``"_reverse"``; layer k > 0
    reads D*H_out_{k-1} features (D = 2 if ``bidirectional``), H_out_{k-1} with a
    ``merge_mode`` other than "concat". The shapes are :func:`lstmkit.nn.weight_shapes.layer_weight_shapes`,
    the ones the layers register.
    """
    kind = KINDS[check_mode(mode)]
    _check_lstm_options(mode, proj_size=proj_size, layer_norm=layer_norm, peepholes=peepholes)
    hidden_sizes = check_hidden_sizes(mode, hidden_size, num_layers)
    proj_size = check_proj_size(mode, proj_size, hidden_size, hidden_sizes)
    check_merge_mode(mode, merge_mode, bidirectional)
    directions = 2 if bidirectional else 1
    shapes = layer_weight_shapes(
        kind.gate_count, input_size, hidden_sizes, bias, proj_size, directions, merge_mode,
        layer_norm=layer_norm, peepholes=peepholes,
    )  # fmt: skip
    return named_weight_shapes(shapes, directions)


def _check_lstm_options(mode: str, **options) -> None:
    """A ValueError naming the first LSTM-only option (proj_size, layer_norm, peepholes) given to another mode."""
    if mode != "LSTM":
        check_lstm_only(mode, **options)


def parameter_count(mode: str, input_size: int, hidden_size: int, *layout: int | bool, **options: int | bool) -> int:
    """PyTorch's count: per layer and direction G·H(in + H_out) + 2G·H (biases) + P·H, with G = 4 (LSTM),
    3 (GRU) or 1 (RNN) gate blocks, + 3H with ``peepholes`` and + (2G + 1)·H (+ H with biases) with
    ``layer_norm``: the sum over :func:`parameter_shapes`, which takes the same arguments
    (``num_layers``, ``bias``, ``bidirectional``, ``proj_size``, ``merge_mode``, ``layer_norm``,
    ``peepholes``)."""
    shapes = parameter_shapes(mode, input_size, hidden_size, *layout, **options)
    return sum(math.prod(shape) for shape in shapes.values())


def keras_parameter_count(
    mode: str, input_size: int, units: int | list[int], num_layers: int = 1, use_bias: bool = True,
    bidirectional: bool = False, merge_mode: str = "concat", *, reset_after: bool = True,
) -> int:  # fmt: skip
    """Keras' ``count_params()`` of stacked layers of this mode (LSTM, GRU, SimpleRNN); ``units`` an
    int or one per layer, ``merge_mode`` that of every Bidirectional, ``reset_after`` that of every
    GRU (False: one bias of 3U per layer-direction instead of two)."""
    gates, bias_rows = KINDS[check_mode(mode)].gate_count, _KERAS[mode].bias_rows
    if mode == "GRU" and not reset_after:
        bias_rows = 1
    directions = 2 if bidirectional else 1
    total, layer_input = 0, input_size
    for size in check_hidden_sizes(mode, units, num_layers):
        total += directions * (gates * size * (layer_input + size) + (bias_rows * gates * size if use_bias else 0))
        layer_input = size * (directions if merge_mode == "concat" else 1)
    return total


def lstm_parameter_count(input_size: int, hidden_size: int, *layout: int | bool, **options: int | bool) -> int:
    """:func:`parameter_count` of an LSTM (``num_layers``, ``bias``, ``bidirectional``, ``proj_size`` as there)."""
    return parameter_count("LSTM", input_size, hidden_size, *layout, **options)


def keras_lstm_parameter_count(
    input_size: int, units: int, num_layers: int = 1, use_bias: bool = True, bidirectional: bool = False
) -> int:
    """:func:`keras_parameter_count` of stacked ``keras.layers.LSTM``: one bias of 4U per layer-direction."""
    return keras_parameter_count("LSTM", input_size, units, num_layers, use_bias, bidirectional)


def format_shape(shape: tuple[int, ...]) -> str:
    """``(3, 1, 20)``; a 1-tuple keeps Python's comma: ``(400,)``."""
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


def _rows(rows, indent="  ") -> list[str]:
    width = max(len(row[0]) for row in rows)
    shape_width = max(len(row[1]) for row in rows)
    return [f"{indent}{name:<{width}}  {shape:<{shape_width}}  {note}".rstrip() for name, shape, note in rows]


def _blocks(gates: int, size) -> str:
    """``4*100`` for G = 4 blocks of size 100, just ``100`` for one block."""
    return f"{gates}*{size}" if gates > 1 else f"{size}"


def build_layer(
    input_size: int,
    hidden_size: int | list[int],
    num_layers: int = 1,
    *,
    mode: str = "LSTM",
    bias: bool = True,
    batch_first: bool = False,
    bidirectional: bool = False,
    proj_size: int = 0,
    merge_mode: str = "concat",
    layer_norm: bool = False,
    peepholes: bool = False,
):
    """The layer ``explain`` reads its facts off (seed 0), from :func:`explain_layer`'s options;
    LSTM options on another mode are refused."""
    variants = {name: True for name, on in (("layer_norm", layer_norm), ("peepholes", peepholes)) if on}
    common = dict(
        num_layers=num_layers, bias=bias, batch_first=batch_first, bidirectional=bidirectional, seed=0,
        merge_mode=merge_mode,
    )  # fmt: skip
    mode = check_mode(mode)
    if mode == "LSTM":
        return LSTM(input_size, hidden_size, proj_size=proj_size, **common, **variants)
    _check_lstm_options(mode, proj_size=proj_size, **variants)
    if mode == "GRU":
        return GRU(input_size, hidden_size, **common)
    return RNN(input_size, hidden_size, nonlinearity=mode[4:].lower(), **common)


def explain_layer(
    input_size: int,
    hidden_size: int | list[int],
    num_layers: int = 1,
    seq_len: int = 1,
    batch: int | None = 1,
    *,
    mode: str = "LSTM",
    bias: bool = True,
    batch_first: bool = False,
    bidirectional: bool = False,
    proj_size: int = 0,
    merge_mode: str = "concat",
    layer_norm: bool = False,
    peepholes: bool = False,
) -> str:
    """The text of ``lstmkit explain``; ``mode`` is LSTM, GRU, RNN_TANH or RNN_RELU and
    ``batch=None`` explains an unbatched input. ``hidden_size`` may list one size per layer
    (the states are then printed layer by layer); ``merge_mode`` is the layers' (bidirectional);
    ``layer_norm`` and ``peepholes`` the LSTM variants (their parameters are printed too)."""
    variants = {name: True for name, on in (("layer_norm", layer_norm), ("peepholes", peepholes)) if on}
    layer = build_layer(
        input_size, hidden_size, num_layers, mode=mode, bias=bias, batch_first=batch_first,
        bidirectional=bidirectional, proj_size=proj_size, merge_mode=merge_mode, **variants,
    )  # fmt: skip
    is_lstm = mode == "LSTM"
    per_layer = isinstance(layer.hidden_size, list)
    D, H, P, L, N = layer.num_directions, layer.hidden_size, proj_size, seq_len, batch
    H_out, G = layer.output_size, KINDS[mode].gate_count
    merged = merge_mode != "concat"
    batched = N is not None
    if not batched:
        input_shape = (L, input_size)
    elif batch_first:
        input_shape = (N, L, input_size)
    else:
        input_shape = (L, N, input_size)
    with no_grad():
        output, state = layer(np.zeros(input_shape, np.float32))
    h_n = state[0] if is_lstm else state
    out_name = "H_out" if is_lstm else "H"
    width = out_name if merged else f"D*{out_name}"
    layout = "(L, H_in)" if not batched else ("(N, L, H_in)" if batch_first else "(L, N, H_in)")
    out_layout = f"(L, {width})" if not batched else (f"(N, L, {width})" if batch_first else f"(L, N, {width})")
    state_rows_axis = "D" if per_layer else "D*num_layers"

    def state_rows(name, arrays, size, note):
        """One row (an array), or one row a layer (a list: name[k], sizes with _k)."""
        if not per_layer:
            return [(name, format_shape(arrays.shape), _state_layout(state_rows_axis, size, batched) + note)]
        return [
            (f"{name}[{k}]", format_shape(array.shape), _state_layout("D", f"{size}_{k}", batched) + note * (k == 0))
            for k, array in enumerate(arrays)
        ]

    lines = [
        f"lstmkit.{layer!r}  ==  torch.nn.{layer!r}" if not (per_layer or merged or variants) else f"lstmkit.{layer!r}"
    ]
    if variants:
        lines.append(
            f"  (torch.nn has no {' and no '.join(variants)}; the names of their parameters follow PyTorch's pattern)"
        )
    elif per_layer or merged:
        lines.append(
            "  (torch.nn has no "
            + " and no ".join(["per-layer hidden sizes"] * per_layer + ["merge_mode"] * merged)
            + ": the same network as torch.nn layers stacked by hand)"
        )
    lines.append("")
    output_sizes = list(layer.output_sizes) if per_layer else H_out
    lines.append(
        f"sizes: L={L} steps, N={N if batched else '(unbatched)'}, H_in={input_size}, H={H}, "
        + (f"H_out={output_sizes}{' (proj_size)' if P else ''}, " if is_lstm else "")
        + f"D={D}, num_layers={num_layers}"
        + (f", merge_mode={merge_mode!r}" if merged else "")
    )
    lines += ["", "PyTorch: tensors in and out"]
    list_note = "; a list, one array per layer" if per_layer else ""
    rows = [("input", format_shape(input_shape), layout)]
    rows += state_rows("h_0", h_n, out_name, ", zeros if omitted; never batch-first" + list_note)
    if is_lstm:
        rows += state_rows("c_0", state[1], "H", ", zeros if omitted" + list_note)
    merge_text = f", directions merged by {merge_mode!r}" if merged else ", directions concatenated"
    rows.append(
        (
            "output",
            format_shape(output.shape),
            out_layout + ": the last layer's h_t at every step" + (merge_text if D == 2 else ""),
        )
    )
    rows += state_rows("h_n", h_n, out_name, ": every layer's and direction's final h")
    if is_lstm:
        rows += state_rows("c_n", state[1], "H", ": every layer's and direction's final c")
    lines += _rows(rows)
    if not is_lstm:
        lines.append(
            f"  the state is one array h ({type(layer).__name__} has no cell state c): hx is h_0 alone, not a pair"
            if not per_layer
            else f"  the state is h alone ({type(layer).__name__} has no cell state c): hx is the list h_0, not a pair"
        )
    note = final_state_note(
        num_layers, H_out, L, bidirectional, batch_first, batched, per_layer=per_layer, merge_mode=merge_mode
    )
    lines.append("  note: " + note)

    kind = KINDS[mode]
    block = f"every {G}H block in gate order {kind.gate_names}" if G > 1 else f"H each; act = {mode[4:].lower()}"
    lines += ["", f"PyTorch: parameters (rows of {block})" if G > 1 else f"PyTorch: parameters ({block})"]
    parameters = {name: parameter.shape for name, parameter in layer.named_parameters()}
    for index in range(num_layers):
        names = [name for name in parameters if name.endswith((f"_l{index}", f"_l{index}_reverse"))]
        layer_input = parameters[f"weight_ih_l{index}"][1]
        hidden = layer.hidden_sizes[index]
        formula, per_direction = parameter_formula(layer, index)
        lines.append(
            f"  layer {index} (input {layer_input}"
            + (f", H={hidden}" if per_layer else "")
            + f"): {formula} = {per_direction:,} per direction"
            + (f", {D * per_direction:,} for both" if D == 2 else "")
        )
        lines += _rows([(name, format_shape(parameters[name]), "") for name in names], indent="    ")
    total = count_parameters(layer)
    lines.append(
        f"  total: {total:,} parameters (torch: sum(p.numel() for p in {mode.split('_')[0].lower()}.parameters()))"
    )

    keras_layer = _KERAS[mode]
    lines += [
        "",
        f"Keras: the same network as keras.layers.{keras_layer.name} layers ({keras_layer.gate_order}; "
        "input batch-major)",
    ]
    lacking = [
        name for name, on in (("projection (proj_size)", P), ("layer_norm", layer_norm), ("peepholes", peepholes)) if on
    ]
    if lacking:
        lines.append(f"  Keras has no {' and no '.join(lacking)}: no Keras layer computes this network.")
        return "\n".join(lines)
    lines += keras_weight_lines(
        mode, input_size, hidden_size, num_layers, L, N, bias, bidirectional, merge_mode=merge_mode
    )
    return "\n".join(lines)


def parameter_formula(layer, index: int) -> tuple[str, int]:
    """``(formula, count)`` of layer ``index``'s parameters in one direction, e.g.
    ``("4*100*(20 + 10) + 8*100 + 10*100", 13800)``: G blocks of H rows over the input and the
    recurrent input, the biases, then a projection's, peepholes' and layer norm's."""
    parameters = {name: parameter.shape for name, parameter in layer.named_parameters()}
    gates, hidden = layer._kind.gate_count, layer.hidden_sizes[index]
    layer_input, proj = parameters[f"weight_ih_l{index}"][1], layer.proj_size
    layer_norm = getattr(layer, "layer_norm", False)
    formula = (
        f"{_blocks(gates, hidden)}*({layer_input} + {layer.output_sizes[index]})"
        + (f" + {2 * gates}*{hidden}" if layer.bias else "")
        + (f" + {proj}*{hidden}" if proj else "")
        + (" + 3*" + str(hidden) if getattr(layer, "peepholes", False) else "")
        + (f" + {2 * gates + 1 + layer.bias}*{hidden}" if layer_norm else "")
    )
    count = sum(math.prod(shape) for name, shape in parameters.items() if name.endswith(f"_l{index}"))
    return formula, count


def _state_layout(rows_axis: str, size: str, batched: bool) -> str:
    """``(D*num_layers, N, H_out)``: the axes of a state array, without N when unbatched."""
    return f"({rows_axis}, N, {size})" if batched else f"({rows_axis}, {size})"


def output_at(step: int, features: str, batched: bool, batch_first: bool) -> str:
    """The expression of ``output`` at time ``step`` (``features``: a slice of the last axis, or "")."""
    if not batched:
        axes = [str(step)]
    elif batch_first:
        axes = [":", str(step)]
    else:
        axes = [str(step), ":"]
    if features:
        axes.append(features)
    while axes[-1] == ":":
        axes.pop()
    return "output[" + ", ".join(axes) + "]"


def final_state_note(
    num_layers: int,
    output_size: int,
    seq_len: int,
    bidirectional: bool,
    batch_first: bool,
    batched: bool,
    *,
    per_layer: bool = False,
    merge_mode: str = "concat",
) -> str:
    """Which slices of ``output`` the last layer's rows of ``h_n`` equal, indexing ``output``'s time axis.

    Each claim reads ``h_n[i] equals output[...]`` (and ``not output[...]``), Python expressions on
    the arrays of a forward pass: the tests evaluate them on a real one. ``per_layer``: h_n is a
    list of per-layer arrays (``h_n[-1][i]``); a ``merge_mode`` other than "concat" leaves no
    direction's h in ``output``, and the note says so instead.
    """
    top_rows = 2 if bidirectional else 1  # the last layer's rows of h_n

    def top(row: int) -> str:
        return f"h_n[-1][{row}]" if per_layer else f"h_n[{row}]"

    lower_rows = "h_n[:-1]" if per_layer else f"h_n[:-{top_rows}]"
    lower = (
        f"; {lower_rows} are the lower layers' final states, which output does not contain" if num_layers > 1 else ""
    )
    if not bidirectional:
        return (
            f"{top(-1)} equals {output_at(-1, '', batched, batch_first)}, the last layer's h at the last step"
            + lower
            + "."
        )
    if merge_mode != "concat":
        return (
            f"output holds the two directions merged ({merge_mode!r}), so no row of h_n is a slice of it: "
            f"{top(-2)} is layer {num_layers - 1}'s forward direction at the last step, {top(-1)} its reverse "
            "direction at t = 0" + lower + "."
        )
    forward = output_at(-1, f":{output_size}", batched, batch_first)
    reverse = output_at(0, f"{output_size}:", batched, batch_first)
    not_reverse = output_at(-1, f"{output_size}:", batched, batch_first)
    return (
        f"{top(-2)} equals {forward} (layer {num_layers - 1}'s forward direction ends at the last step); "
        f"{top(-1)} equals {reverse} (its reverse direction ends at t = 0)"
        + (f", not {not_reverse}" if seq_len > 1 else "")
        + lower
        + "."
    )


def explain_lstm(
    input_size: int, hidden_size: int, num_layers: int = 1, seq_len: int = 1, batch: int | None = 1, **options
) -> str:
    """:func:`explain_layer` of an LSTM."""
    return explain_layer(input_size, hidden_size, num_layers, seq_len, batch, mode="LSTM", **options)


def keras_weight_lines(
    mode: str,
    input_size: int,
    units: int | list[int],
    num_layers: int,
    L: int,
    N: int | None,
    use_bias: bool,
    bidirectional: bool,
    merge_mode: str = "concat",
) -> list[str]:
    """The lines on the Keras layers of a configuration: each layer's weights beside PyTorch's, and the returns.
    ``units``: an int, or one per layer; ``merge_mode``: every Bidirectional's."""
    keras_layer, G = _KERAS[mode], KINDS[mode].gate_count
    D = 2 if bidirectional else 1
    merged_width = D if merge_mode == "concat" else 1  # outputs of a layer, in units
    sizes = check_hidden_sizes(mode, units, num_layers)
    batch = N if N is not None else 1
    reordered = " (blocks reordered r, z, n -> z, r, h)" if mode == "GRU" else ""
    lines = [f"  keras.Input(shape=({L}, {input_size}))  -> batches of shape ({batch}, {L}, {input_size})"]
    layer_input = input_size
    for layer, units in enumerate(sizes):
        last = layer == num_layers - 1
        call = (
            f"{keras_layer.name}({units}{keras_layer.options}{'' if use_bias else ', use_bias=False'}"
            f"{'' if last else ', return_sequences=True'})"
        )
        if bidirectional:
            call = f"Bidirectional({call}{'' if merge_mode == 'concat' else f', merge_mode={merge_mode!r}'})"
        bias_size = keras_layer.bias_rows * G * units
        params = G * units * (layer_input + units) + (bias_size if use_bias else 0)
        lines.append(
            f"  layer {layer}: {call}: {_blocks(G, units)}*({layer_input} + {units})"
            + (f" + {_blocks(keras_layer.bias_rows * G, units)}" if use_bias else "")
            + f" = {params:,}"
            + (" per direction" if D == 2 else "")
        )
        suffix = f"_l{layer}"
        rows = [
            ("kernel", format_shape((layer_input, G * units)), f"= weight_ih{suffix}.T{reordered}"),
            ("recurrent_kernel", format_shape((units, G * units)), f"= weight_hh{suffix}.T{reordered}"),
        ]
        if use_bias and keras_layer.bias_rows == 2:
            rows.append(
                ("bias", format_shape((2, G * units)), f"= [bias_ih{suffix}, bias_hh{suffix}] (both, as PyTorch)")
            )
        elif use_bias:
            fewer = f"{G if G > 1 else ''}U fewer parameters"
            rows.append(
                ("bias", format_shape((G * units,)), f"= bias_ih{suffix} + bias_hh{suffix} (one bias, {fewer})")
            )
        lines += _rows(rows, indent="    ")
        layer_input = merged_width * units
    total = keras_parameter_count(mode, input_size, list(sizes), num_layers, use_bias, bidirectional, merge_mode)
    lines.append(f"  total: {total:,} parameters (keras: model.count_params())")
    width = merged_width * units
    states = ["h", "c"] if mode == "LSTM" else ["h"]
    if D == 2:
        states = [f"{s}_{direction}" for direction in ("fwd", "bwd") for s in states]
    lines += ["", "Keras: what the last layer returns"]
    lines += _rows(
        [
            ("return_sequences=False", format_shape((batch, width)), "the last step's output (default)"),
            ("return_sequences=True", format_shape((batch, L, width)), "every step (PyTorch's output, batch-first)"),
            (
                "return_state=True",
                "[output, " + ", ".join(f"{s} {format_shape((batch, units))}" for s in states) + "]",
                "states of the last layer only",
            ),
        ]
    )
    return lines
