"""Shapes and parameter counts of an LSTM configuration, in PyTorch's and Keras' words.

Every shape printed is read off a real :class:`lstmkit.LSTM` built with the configuration and
off a real forward pass, so the text cannot drift from what the code does.
"""

from __future__ import annotations

import numpy as np

from .grad_mode import no_grad
from .nn.module import Module
from .nn.recurrent import LSTM


def count_parameters(module: Module) -> int:
    """Number of scalars in all parameters (PyTorch's ``sum(p.numel() for p in m.parameters())``)."""
    return sum(parameter.data.size for parameter in module.parameters())


def lstm_parameter_count(input_size, hidden_size, num_layers=1, bias=True, bidirectional=False, proj_size=0) -> int:
    """PyTorch's count by formula: per layer and direction 4H(in + H_out) + 8H (biases) + P·H."""
    directions = 2 if bidirectional else 1
    output_size = proj_size or hidden_size
    total = 0
    for layer in range(num_layers):
        layer_input = input_size if layer == 0 else directions * output_size
        per_direction = 4 * hidden_size * (layer_input + output_size) + (8 * hidden_size if bias else 0)
        per_direction += proj_size * hidden_size
        total += directions * per_direction
    return total


def keras_lstm_parameter_count(input_size, units, num_layers=1, use_bias=True, bidirectional=False) -> int:
    """Keras' ``count_params()`` of stacked ``LSTM(units)`` layers: one bias of 4U per layer-direction."""
    directions = 2 if bidirectional else 1
    total = 0
    for layer in range(num_layers):
        layer_input = input_size if layer == 0 else directions * units
        total += directions * (4 * units * (layer_input + units) + (4 * units if use_bias else 0))
    return total


def _shape(shape) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


def _rows(rows, indent="  ") -> list[str]:
    width = max(len(row[0]) for row in rows)
    shape_width = max(len(row[1]) for row in rows)
    return [f"{indent}{name:<{width}}  {shape:<{shape_width}}  {note}".rstrip() for name, shape, note in rows]


def explain_lstm(
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    seq_len: int = 1,
    batch: int | None = 1,
    *,
    bias: bool = True,
    batch_first: bool = False,
    bidirectional: bool = False,
    proj_size: int = 0,
) -> str:
    """The text of ``lstmkit explain``; ``batch=None`` explains an unbatched input."""
    lstm = LSTM(input_size, hidden_size, num_layers, bias, batch_first, 0.0, bidirectional, proj_size, seed=0)
    D, H, P, L, N = lstm.num_directions, hidden_size, proj_size, seq_len, batch
    H_out = lstm.output_size
    batched = N is not None
    if not batched:
        input_shape = (L, input_size)
    elif batch_first:
        input_shape = (N, L, input_size)
    else:
        input_shape = (L, N, input_size)
    with no_grad():
        output, (h_n, c_n) = lstm(np.zeros(input_shape, np.float32))
    h0_shape, c0_shape = h_n.shape, c_n.shape
    layout = "(L, H_in)" if not batched else ("(N, L, H_in)" if batch_first else "(L, N, H_in)")
    out_layout = "(L, D*H_out)" if not batched else ("(N, L, D*H_out)" if batch_first else "(L, N, D*H_out)")
    state_layout = "(D*num_layers, H_out)" if not batched else "(D*num_layers, N, H_out)"
    cell_layout = state_layout.replace("H_out", "H")

    lines = [f"lstmkit.{lstm!r}  ==  torch.nn.{lstm!r}", ""]
    lines.append(f"sizes: L={L} steps, N={N if batched else '(unbatched)'}, H_in={input_size}, H={H}, "
                 f"H_out={H_out}{' (proj_size)' if P else ''}, D={D}, num_layers={num_layers}")
    lines += ["", "PyTorch: tensors in and out"]
    lines += _rows([
        ("input", _shape(input_shape), layout),
        ("h_0", _shape(h0_shape), state_layout + ", zeros if omitted; never batch-first"),
        ("c_0", _shape(c0_shape), cell_layout + ", zeros if omitted"),
        ("output", _shape(output.shape), out_layout + ": the last layer's h_t at every step"
         + (", directions concatenated" if D == 2 else "")),
        ("h_n", _shape(h_n.shape), state_layout + ": every layer's and direction's final h"),
        ("c_n", _shape(c_n.shape), cell_layout + ": every layer's and direction's final c"),
    ])
    if D == 2:
        lines.append(f"  note: h_n[-1] is layer {num_layers - 1}'s reverse direction, which ends at t = 0: it equals "
                     f"output[0, ..., {H_out}:], not output[-1]; output[-1, ..., :{H_out}] equals h_n[-2].")
    else:
        lines.append("  note: h_n[-1] equals output[-1] here; with num_layers > 1, h_n[:-1] are the lower layers' "
                     "final states, which output does not contain.")

    lines += ["", "PyTorch: parameters (rows of every 4H block in gate order i, f, g, o)"]
    parameters = dict(lstm.named_parameters())
    for layer in range(num_layers):
        layer_input = lstm._layer_input_size(layer)
        rows = []
        for direction in range(D):
            suffix = lstm._suffix(layer, direction)
            for base in lstm._weight_shapes(layer):
                rows.append((base + suffix, _shape(parameters[base + suffix].shape), ""))
        per_direction = sum(int(np.prod(shape)) for shape in lstm._weight_shapes(layer).values())
        formula = f"4*{H}*({layer_input} + {H_out})" + (f" + 8*{H}" if bias else "") + (f" + {P}*{H}" if P else "")
        lines.append(f"  layer {layer} (input {layer_input}): {formula} = {per_direction:,} per direction"
                     + (f", {D * per_direction:,} for both" if D == 2 else ""))
        lines += _rows(rows, indent="    ")
    total = count_parameters(lstm)
    lines.append(f"  total: {total:,} parameters (torch: sum(p.numel() for p in lstm.parameters()))")

    lines += ["", "Keras: the same network as keras.layers.LSTM layers (gate order i, f, c, o; input batch-major)"]
    if P:
        lines.append("  Keras has no projection (proj_size): no Keras layer computes this network.")
        return "\n".join(lines)
    lines += _keras_lines(input_size, hidden_size, num_layers, L, N, bias, bidirectional)
    return "\n".join(lines)


def _keras_lines(input_size, units, num_layers, L, N, use_bias, bidirectional) -> list[str]:
    D = 2 if bidirectional else 1
    batch = N if N is not None else 1
    lines = [f"  keras.Input(shape=({L}, {input_size}))  -> batches of shape ({batch}, {L}, {input_size})"]
    for layer in range(num_layers):
        layer_input = input_size if layer == 0 else D * units
        last = layer == num_layers - 1
        call = f"LSTM({units}{'' if use_bias else ', use_bias=False'}{'' if last else ', return_sequences=True'})"
        if bidirectional:
            call = f"Bidirectional({call})"
        params = 4 * units * (layer_input + units) + (4 * units if use_bias else 0)
        lines.append(f"  layer {layer}: {call}: 4*{units}*({layer_input} + {units})"
                     + (f" + 4*{units}" if use_bias else "") + f" = {params:,}" + (" per direction" if D == 2 else ""))
        suffix = f"_l{layer}"
        rows = [
            ("kernel", _shape((layer_input, 4 * units)), f"= weight_ih{suffix}.T"),
            ("recurrent_kernel", _shape((units, 4 * units)), f"= weight_hh{suffix}.T"),
        ]
        if use_bias:
            rows.append(("bias", _shape((4 * units,)), f"= bias_ih{suffix} + bias_hh{suffix} (one bias, 4U fewer parameters)"))
        lines += _rows(rows, indent="    ")
    total = keras_lstm_parameter_count(input_size, units, num_layers, use_bias, bidirectional)
    lines.append(f"  total: {total:,} parameters (keras: model.count_params())")
    width = D * units
    lines += ["", "Keras: what the last layer returns"]
    lines += _rows([
        ("return_sequences=False", _shape((batch, width)), "the last step's output (default)"),
        ("return_sequences=True", _shape((batch, L, width)), "every step (PyTorch's output, batch-first)"),
        ("return_state=True", "[output, " + ", ".join(
            f"{s} {_shape((batch, units))}" for s in (["h", "c"] if D == 1 else ["h_fwd", "c_fwd", "h_bwd", "c_bwd"])) + "]",
         "states of the last layer only"),
    ])
    return lines
