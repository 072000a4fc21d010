"""One cell of a layer, drawn: its inputs, the weights on the edges, the gates and the new state.

:func:`cell_layout` lays out layer 0's forward cell of a :class:`~.facts.LayerFacts` in the
same model as the unrolled picture (:mod:`.layout`), each weight's shape read off the layer's
parameters; :data:`EQUATIONS` are the equations the cell computes, as the reference ops
(:mod:`lstmkit.ops.lstm`, ``gru``, ``rnn``) write them.
"""

from __future__ import annotations

from ..explain import format_shape
from .facts import LayerFacts
from .layout import Arrow, Box, Layout

EQUATIONS = {
    "LSTM": [
        "z_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh          (4H: blocks i, f, g, o)",
        "i_t = σ(z_t[i])   f_t = σ(z_t[f])   g_t = tanh(z_t[g])   o_t = σ(z_t[o])",
        "c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t",
        "h_t = o_t ⊙ tanh(c_t)",
    ],
    "GRU": [
        "r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)",
        "z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)",
        "n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t-1} + b_hn))",
        "h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}",
    ],
    "RNN": ["h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)"],
}
VARIANT_EQUATIONS = {
    "proj_size": "h_t = W_hr (o_t ⊙ tanh(c_t))             (projection to P units)",
    "peepholes": "i_t, f_t see p_i ⊙ c_{t-1}, p_f ⊙ c_{t-1}; o_t sees p_o ⊙ c_t",
    "layer_norm": "z_t = LN(W_ih x_t) g_ih + b_ih + LN(W_hh h_{t-1}) g_hh + b_hh;  h_t = o_t ⊙ tanh(LN(c_t) g_c + b_c)",
}
GATES = {"LSTM": ("i σ", "f σ", "g tanh", "o σ"), "GRU": ("r σ", "z σ", "n tanh"), "RNN": ("act",)}


def equations(facts: LayerFacts) -> list[str]:
    """The cell's equations, with the lines of the variants it has."""
    layer = facts.layer
    lines = list(EQUATIONS[facts.mode.split("_")[0]])
    if facts.mode.startswith("RNN"):
        lines[0] = lines[0].replace("act", layer.nonlinearity)
    for option, line in VARIANT_EQUATIONS.items():
        if getattr(layer, option, False):
            lines.append(line)
    return lines


def cell_layout(facts: LayerFacts) -> Layout:
    """Layer 0's forward cell: inputs, weights on the edges, gates, new state (shapes from the layer)."""
    layer, kind = facts.layer, facts.mode.split("_")[0]
    shapes = {name: format_shape(parameter.shape) for name, parameter in layer.named_parameters()}
    gates = GATES[kind]
    width = 800
    layout = Layout(width=width, height=470)
    center = width / 2
    x_input, x_hidden = center - 220, center + 40
    hidden, cell = format_shape(facts.hidden[0]), None if facts.cell is None else format_shape(facts.cell[0])
    layout.boxes.append(Box(x_input - 80, 20, 160, 36, ["x_t", format_shape(facts.step_input)], "input"))
    layout.boxes.append(Box(x_hidden - 80, 20, 160, 36, ["h_{t-1}", hidden], "input"))
    sum_y = 130
    pre = f"({len(gates)}H)" if len(gates) > 1 else "(H)"
    layout.boxes.append(Box(center - 150, sum_y, 300, 36, [f"W_ih x_t + W_hh h_{{t-1}} + biases {pre}"], "cell"))
    layout.arrows.append(Arrow([(x_input, 56), (center - 60, sum_y)], f"W_ih {shapes['weight_ih_l0']}", "input"))
    layout.arrows.append(Arrow([(x_hidden, 56), (center + 60, sum_y)], f"W_hh {shapes['weight_hh_l0']}", "state"))
    gate_y, spacing = 230, width / (len(gates) + 1)
    for index, gate in enumerate(gates):
        gx = spacing * (index + 1)
        layout.boxes.append(
            Box(gx - 45, gate_y, 90, 36, [gate, hidden if kind == "RNN" else _gate_size(facts)], "gate")
        )
        layout.arrows.append(Arrow([(center, sum_y + 36), (gx, gate_y)], "", "up"))
    new_y = 340
    new_state = {"LSTM": "c_t = f ⊙ c_{t-1} + i ⊙ g", "GRU": "h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}", "RNN": "h_t"}[kind]
    layout.boxes.append(Box(center - 150, new_y, 300, 36, [new_state, cell or hidden], "cell"))
    for index in range(len(gates)):
        layout.arrows.append(Arrow([(spacing * (index + 1), gate_y + 36), (center, new_y)], "", "up"))
    if kind == "LSTM":
        layout.boxes.append(Box(x_hidden + 120, 20, 130, 36, ["c_{t-1}", cell], "input"))
        layout.arrows.append(
            Arrow([(x_hidden + 185, 56), (x_hidden + 185, new_y + 18), (center + 150, new_y + 18)], "", "state")
        )
        out = ["h_t = o ⊙ tanh(c_t)" + (" then W_hr" if layer.proj_size else ""), hidden]
        layout.boxes.append(Box(center - 150, 420, 300, 36, out, "output"))
        label = f"W_hr {shapes['weight_hr_l0']}" if layer.proj_size else ""
        layout.arrows.append(Arrow([(center, new_y + 36), (center, 420)], label, "output"))
    return layout


def _gate_size(facts: LayerFacts) -> str:
    """One gate's shape: (N, H) (H, not H_out: a projected LSTM's gates are H wide)."""
    shape = facts.cell[0] if facts.cell is not None else facts.hidden[0]
    return format_shape(shape)
