"""Shapes and parameter counts of an LSTM, GRU or RNN configuration, in PyTorch's and Keras' words.

Every shape printed is read off a real :class:`lstmkit.LSTM` (or GRU, RNN) built with the
configuration and off a real forward pass, so the text cannot drift from what the code does.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .grad_mode import no_grad
from .nn.kinds import KINDS
from .nn.module import Module
from .nn.recurrent import GRU, LSTM, RNN

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
    hidden_size: int,
    num_layers: int = 1,
    bias: bool = True,
    bidirectional: bool = False,
    proj_size: int = 0,
) -> dict[str, tuple[int, ...]]:
    """Names and shapes of a configuration's parameters, in PyTorch's names and order.

    ==================================  ====================  ==============================
    name                                shape                 when
    ==================================  ====================  ==============================
    ``weight_ih_l{k}{suffix}``          (G*H, H_in of k)      always
    ``weight_hh_l{k}{suffix}``          (G*H, H_out)          always
    ``bias_ih_l{k}{suffix}``            (G*H,)                ``bias``
    ``bias_hh_l{k}{suffix}``            (G*H,)                ``bias``
    ``weight_hr_l{k}{suffix}``          (P, H)                ``proj_size`` P > 0 (LSTM only)
    ==================================  ====================  ==============================

    G = 4 (LSTM), 3 (GRU) or 1 (RNN) gate blocks; H_out = P or H; ``suffix`` is ``""`` or
    ``"_reverse"``; layer k > 0 reads D*H_out features (D = 2 if ``bidirectional``).
    """
    rows = KINDS[check_mode(mode)].gate_count * hidden_size
    if proj_size and mode != "LSTM":
        raise ValueError(f"{mode}: proj_size is an LSTM option ({mode} has no projection), got proj_size={proj_size}")
    directions = 2 if bidirectional else 1
    output_size = proj_size or hidden_size
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in range(num_layers):
        layer_input = input_size if layer == 0 else directions * output_size
        for suffix in ("", "_reverse")[:directions]:
            names = f"_l{layer}{suffix}"
            shapes[f"weight_ih{names}"] = (rows, layer_input)
            shapes[f"weight_hh{names}"] = (rows, output_size)
            if bias:
                shapes[f"bias_ih{names}"] = (rows,)
                shapes[f"bias_hh{names}"] = (rows,)
            if proj_size:
                shapes[f"weight_hr{names}"] = (proj_size, hidden_size)
    return shapes


def parameter_count(mode: str, input_size: int, hidden_size: int, *layout: int | bool, **options: int | bool) -> int:
    """PyTorch's count: per layer and direction G·H(in + H_out) + 2G·H (biases) + P·H, with G = 4 (LSTM),
    3 (GRU) or 1 (RNN) gate blocks: the sum over :func:`parameter_shapes`, which takes the same arguments
    (``num_layers``, ``bias``, ``bidirectional``, ``proj_size``)."""
    shapes = parameter_shapes(mode, input_size, hidden_size, *layout, **options)
    return sum(math.prod(shape) for shape in shapes.values())


def keras_parameter_count(
    mode: str, input_size: int, units: int, num_layers: int = 1, use_bias: bool = True, bidirectional: bool = False
) -> int:
    """Keras' ``count_params()`` of stacked layers of this mode (LSTM, GRU with reset_after, SimpleRNN)."""
    gates, bias_rows = KINDS[check_mode(mode)].gate_count, _KERAS[mode].bias_rows
    directions = 2 if bidirectional else 1
    total = 0
    for layer in range(num_layers):
        layer_input = input_size if layer == 0 else directions * units
        total += directions * (gates * units * (layer_input + units) + (bias_rows * gates * units if use_bias else 0))
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


def _build(mode, input_size, hidden_size, num_layers, bias, batch_first, bidirectional, proj_size):
    common = dict(num_layers=num_layers, bias=bias, batch_first=batch_first, bidirectional=bidirectional, seed=0)
    if mode == "LSTM":
        return LSTM(input_size, hidden_size, proj_size=proj_size, **common)
    if proj_size:
        raise ValueError(f"{mode}: proj_size is an LSTM option ({mode} has no projection), got proj_size={proj_size}")
    if mode == "GRU":
        return GRU(input_size, hidden_size, **common)
    return RNN(input_size, hidden_size, nonlinearity=mode[4:].lower(), **common)


def explain_layer(
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    seq_len: int = 1,
    batch: int | None = 1,
    *,
    mode: str = "LSTM",
    bias: bool = True,
    batch_first: bool = False,
    bidirectional: bool = False,
    proj_size: int = 0,
) -> str:
    """The text of ``lstmkit explain``; ``mode`` is LSTM, GRU, RNN_TANH or RNN_RELU and
    ``batch=None`` explains an unbatched input."""
    layer = _build(check_mode(mode), input_size, hidden_size, num_layers, bias, batch_first, bidirectional, proj_size)
    is_lstm = mode == "LSTM"
    D, H, P, L, N = layer.num_directions, hidden_size, proj_size, seq_len, batch
    H_out, G = layer.output_size, KINDS[mode].gate_count
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
    layout = "(L, H_in)" if not batched else ("(N, L, H_in)" if batch_first else "(L, N, H_in)")
    out_layout = (
        f"(L, D*{out_name})" if not batched else (f"(N, L, D*{out_name})" if batch_first else f"(L, N, D*{out_name})")
    )
    state_layout = f"(D*num_layers, {out_name})" if not batched else f"(D*num_layers, N, {out_name})"
    cell_layout = state_layout.replace("H_out", "H")

    lines = [f"lstmkit.{layer!r}  ==  torch.nn.{layer!r}", ""]
    lines.append(
        f"sizes: L={L} steps, N={N if batched else '(unbatched)'}, H_in={input_size}, H={H}, "
        + (f"H_out={H_out}{' (proj_size)' if P else ''}, " if is_lstm else "")
        + f"D={D}, num_layers={num_layers}"
    )
    lines += ["", "PyTorch: tensors in and out"]
    rows = [
        ("input", format_shape(input_shape), layout),
        ("h_0", format_shape(h_n.shape), state_layout + ", zeros if omitted; never batch-first"),
    ]
    if is_lstm:
        rows.append(("c_0", format_shape(state[1].shape), cell_layout + ", zeros if omitted"))
    rows += [
        (
            "output",
            format_shape(output.shape),
            out_layout + ": the last layer's h_t at every step" + (", directions concatenated" if D == 2 else ""),
        ),
        ("h_n", format_shape(h_n.shape), state_layout + ": every layer's and direction's final h"),
    ]
    if is_lstm:
        rows.append(("c_n", format_shape(state[1].shape), cell_layout + ": every layer's and direction's final c"))
    lines += _rows(rows)
    if not is_lstm:
        lines.append(
            f"  the state is one array h ({type(layer).__name__} has no cell state c): hx is h_0 alone, not a pair"
        )
    lines.append("  note: " + final_state_note(num_layers, H_out, L, bidirectional, batch_first, batched))

    kind = KINDS[mode]
    block = f"every {G}H block in gate order {kind.gate_names}" if G > 1 else f"H each; act = {mode[4:].lower()}"
    lines += ["", f"PyTorch: parameters (rows of {block})" if G > 1 else f"PyTorch: parameters ({block})"]
    parameters = {name: parameter.shape for name, parameter in layer.named_parameters()}
    for index in range(num_layers):
        names = [name for name in parameters if name.endswith((f"_l{index}", f"_l{index}_reverse"))]
        layer_input = parameters[f"weight_ih_l{index}"][1]
        per_direction = sum(math.prod(parameters[name]) for name in names if not name.endswith("_reverse"))
        formula = (
            f"{_blocks(G, H)}*({layer_input} + {H_out})"
            + (f" + {2 * G}*{H}" if bias else "")
            + (f" + {P}*{H}" if P else "")
        )
        lines.append(
            f"  layer {index} (input {layer_input}): {formula} = {per_direction:,} per direction"
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
    if P:
        lines.append("  Keras has no projection (proj_size): no Keras layer computes this network.")
        return "\n".join(lines)
    lines += keras_weight_lines(mode, input_size, hidden_size, num_layers, L, N, bias, bidirectional)
    return "\n".join(lines)


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
    num_layers: int, output_size: int, seq_len: int, bidirectional: bool, batch_first: bool, batched: bool
) -> str:
    """Which slices of ``output`` the last layer's rows of ``h_n`` equal, indexing ``output``'s time axis.

    Each claim reads ``h_n[i] equals output[...]`` (and ``not output[...]``), Python expressions on
    the arrays of a forward pass: the tests evaluate them on a real one.
    """
    top_rows = 2 if bidirectional else 1  # the last layer's rows of h_n
    lower = (
        f"; h_n[:-{top_rows}] are the lower layers' final states, which output does not contain"
        if num_layers > 1
        else ""
    )
    if not bidirectional:
        return (
            f"h_n[-1] equals {output_at(-1, '', batched, batch_first)}, the last layer's h at the last step"
            + lower
            + "."
        )
    forward = output_at(-1, f":{output_size}", batched, batch_first)
    reverse = output_at(0, f"{output_size}:", batched, batch_first)
    not_reverse = output_at(-1, f"{output_size}:", batched, batch_first)
    return (
        f"h_n[-2] equals {forward} (layer {num_layers - 1}'s forward direction ends at the last step); "
        f"h_n[-1] equals {reverse} (its reverse direction ends at t = 0)"
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
    mode: str, input_size: int, units: int, num_layers: int, L: int, N: int | None, use_bias: bool, bidirectional: bool
) -> list[str]:
    """The lines on the Keras layers of a configuration: each layer's weights beside PyTorch's, and the returns."""
    keras_layer, G = _KERAS[mode], KINDS[mode].gate_count
    D = 2 if bidirectional else 1
    batch = N if N is not None else 1
    reordered = " (blocks reordered r, z, n -> z, r, h)" if mode == "GRU" else ""
    lines = [f"  keras.Input(shape=({L}, {input_size}))  -> batches of shape ({batch}, {L}, {input_size})"]
    for layer in range(num_layers):
        layer_input = input_size if layer == 0 else D * units
        last = layer == num_layers - 1
        call = (
            f"{keras_layer.name}({units}{keras_layer.options}{'' if use_bias else ', use_bias=False'}"
            f"{'' if last else ', return_sequences=True'})"
        )
        if bidirectional:
            call = f"Bidirectional({call})"
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
    total = keras_parameter_count(mode, input_size, units, num_layers, use_bias, bidirectional)
    lines.append(f"  total: {total:,} parameters (keras: model.count_params())")
    width = D * units
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
