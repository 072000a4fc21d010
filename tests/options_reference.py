"""Torch references for the layer options (tests/test_layer_options.py): the recurrent equations
written out in torch (recurrent_dropout's masks), torch.nn layers stacked by hand (per-layer
sizes, merge modes), and one comparison of values and every gradient against either.

States are handled per layer: ``per_layer(layer, parts)`` turns the layer's own format (stacked
(D*num_layers, N, ·) arrays, or lists of per-layer (D, N, ·) arrays) into ``[layer][part]``.
"""

from __future__ import annotations

import numpy as np
import torch
from conftest import assert_close
from torch.nn.utils.rnn import pack_padded_sequence as torch_pack
from torch.nn.utils.rnn import pad_packed_sequence as torch_pad

TORCH_CLASSES = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "RNN_TANH": torch.nn.RNN, "RNN_RELU": torch.nn.RNN}
BASES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def per_layer(layer, parts: tuple) -> list[tuple]:
    """``[k]`` -> layer k's (D, N, ·) array of every state part."""
    D = layer.num_directions
    return [
        tuple(part[k] if isinstance(part, list) else part[k * D : (k + 1) * D] for part in parts)
        for k in range(layer.num_layers)
    ]


def random_hx(layer, batch: int, rng):
    """A random initial state in the layer's own format (lists with per-layer sizes)."""
    D, per_layer_lists = layer.num_directions, isinstance(layer.hidden_size, list)
    parts = []
    for part in range(len(layer._state_sizes())):
        arrays = [rng.standard_normal((D, batch, layer._state_sizes(k)[part])) for k in range(layer.num_layers)]
        parts.append(arrays if per_layer_lists else np.concatenate(arrays))
    return tuple(parts) if len(parts) > 1 else parts[0]


def merge(mode: str, forward, reverse):
    """Keras Bidirectional's merge, written in torch."""
    return {
        "concat": lambda: torch.cat([forward, reverse], dim=-1),
        "sum": lambda: forward + reverse,
        "mul": lambda: forward * reverse,
        "ave": lambda: (forward + reverse) / 2,
    }[mode]()


# ---- torch.nn layers stacked by hand -------------------------------------------------------
def torch_stack(layer):
    """One torch.nn layer per layer of ``layer`` (bidirectional if it is), holding its weights."""
    state = layer.state_dict()
    modules, features = [], layer.input_size
    for k, hidden in enumerate(layer.hidden_sizes):
        options = dict(bias=layer.bias, bidirectional=layer.bidirectional)
        if layer.proj_size:
            options["proj_size"] = layer.proj_size
        if layer.mode.startswith("RNN"):
            options["nonlinearity"] = layer.mode[4:].lower()
        module = TORCH_CLASSES[layer.mode](features, hidden, **options).double()
        own = {name: array for name, array in state.items() if name.endswith((f"_l{k}", f"_l{k}_reverse"))}
        module.load_state_dict({name.replace(f"_l{k}", "_l0"): torch.from_numpy(a.copy()) for name, a in own.items()})
        modules.append(module)
        features = layer.output_sizes[k] * (layer.num_directions if layer.merge_mode == "concat" else 1)
    return modules


def stack_reference(layer):
    """``run(x, hx, masks, lengths)`` over :func:`torch_stack`'s modules, the directions merged in torch."""
    modules = torch_stack(layer)
    leaves = {
        name.replace("_l0", f"_l{k}"): parameter
        for k, module in enumerate(modules)
        for name, parameter in module.named_parameters()
    }

    def run(x, hx, masks, lengths):
        assert masks is None
        h, finals = x, []
        for k, module in enumerate(modules):
            state = hx[k] if layer.mode == "LSTM" else hx[k][0]
            if lengths is None:
                out, final = module(h, state)
            else:
                packed = torch_pack(h, torch.tensor(lengths), enforce_sorted=False)
                out, final = module(packed, state)
                out, _ = torch_pad(out, total_length=x.shape[0])
            if layer.bidirectional:
                width = layer.output_sizes[k]
                out = merge(layer.merge_mode, out[..., :width], out[..., width:])
            h = out
            finals.append(as_tuple(final))
        return h, finals

    return run, leaves


# ---- the equations, written out (masks on h_{t-1}) -----------------------------------------
def step(mode: str, weights: dict, x_t, state: tuple, mask) -> tuple:
    """One step of one layer-direction on one sequence; ``mask`` multiplies h_{t-1} where W_hh meets it."""
    h = state[0]
    masked = h if mask is None else h * mask
    gi = x_t @ weights["weight_ih"].T
    gh = masked @ weights["weight_hh"].T
    if weights["bias_ih"] is not None:
        gi, gh = gi + weights["bias_ih"], gh + weights["bias_hh"]
    if mode == "LSTM":
        i, f, g, o = (gi + gh).chunk(4, dim=-1)
        c = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * torch.tanh(g)
        m = torch.sigmoid(o) * torch.tanh(c)
        return (m if weights["weight_hr"] is None else m @ weights["weight_hr"].T, c)
    if mode == "GRU":
        ir, iz, in_ = gi.chunk(3, dim=-1)
        hr, hz, hn = gh.chunk(3, dim=-1)
        r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
        n = torch.tanh(in_ + r * hn)
        return ((1 - z) * n + z * h,)  # z ⊙ h_{t-1}: the state as it is
    return (torch.tanh(gi + gh) if mode == "RNN_TANH" else torch.relu(gi + gh),)


def equations_reference(layer):
    """``run(x, hx, masks, lengths)``: every sequence on its own, step by step, in torch."""
    leaves = {name: torch.tensor(p.data, requires_grad=True) for name, p in layer.named_parameters()}
    D = layer.num_directions

    def run(x, hx, masks, lengths):
        steps, batch = x.shape[:2]
        lengths = [steps] * batch if lengths is None else list(lengths)
        outputs = []
        finals = [[[None] * batch for _ in range(D)] for _ in range(layer.num_layers)]  # [k][d][n] state tuple
        for n in range(batch):
            sequence = x[: lengths[n], n]
            for k in range(layer.num_layers):
                outs = []
                for d in range(D):
                    suffix = f"_l{k}" + ("_reverse" if d else "")
                    weights = {base: leaves.get(base + suffix) for base in BASES}
                    state = tuple(part[d, n] for part in hx[k])
                    mask = None if masks is None else torch.from_numpy(masks[k][d, n])
                    hs = []
                    for x_t in sequence.flip(0) if d else sequence:
                        state = step(layer.mode, weights, x_t, state, mask)
                        hs.append(state[0])
                    out = torch.stack(hs)
                    outs.append(out.flip(0) if d else out)
                    finals[k][d][n] = state
                sequence = merge(layer.merge_mode, *outs) if D == 2 else outs[0]
            padding = torch.zeros((steps - lengths[n], sequence.shape[-1]), dtype=x.dtype)
            outputs.append(torch.cat([sequence, padding]))
        per_layer_finals = [
            tuple(
                torch.stack([torch.stack([finals[k][d][n][p] for n in range(batch)]) for d in range(D)])
                for p in range(len(hx[k]))
            )
            for k in range(layer.num_layers)
        ]
        return torch.stack(outputs, dim=1), per_layer_finals

    return run, leaves


# ---- one comparison: values and every gradient ---------------------------------------------
def compare_with(layer, reference, x, hx, rng, lengths=None, padding_side="right"):
    """Run ``layer`` forward and backward on (x, hx), and ``reference`` (from :func:`stack_reference`
    or :func:`equations_reference`) with the masks the layer drew; assert every value and
    gradient agrees to 1e-10 (float64). Returns the layer's masks (None without recurrent_dropout)."""
    run, leaves = reference
    output, state = layer(x, hx, lengths=lengths, padding_side=padding_side)
    masks = layer._saved[-1].saved.recurrent_masks
    g_output = rng.standard_normal(output.shape)
    g_state = tuple(
        [rng.standard_normal(a.shape) for a in part] if isinstance(part, list) else rng.standard_normal(part.shape)
        for part in as_tuple(state)
    )
    dx, dhx = layer.backward(g_output, g_state if len(g_state) > 1 else g_state[0])

    x_t = torch.tensor(x, requires_grad=True)
    hx_t = [tuple(torch.tensor(a, requires_grad=True) for a in parts) for parts in per_layer(layer, as_tuple(hx))]
    output_t, finals_t = run(x_t, hx_t, masks, lengths)
    loss = (output_t * torch.from_numpy(g_output)).sum()
    for finals, grads in zip(finals_t, per_layer(layer, g_state)):
        loss = loss + sum((final * torch.from_numpy(g)).sum() for final, g in zip(finals, grads))
    loss.backward()

    assert_close(output, output_t.detach().numpy(), np.float64, "output")
    for k, (ours, theirs) in enumerate(zip(per_layer(layer, as_tuple(state)), finals_t)):
        for p, (a, b) in enumerate(zip(ours, theirs)):
            assert_close(a, b.detach().numpy(), np.float64, f"layer {k} final state part {p}")
    assert_close(dx, x_t.grad.numpy(), np.float64, "dinput")
    for k, (ours, theirs) in enumerate(zip(per_layer(layer, as_tuple(dhx)), hx_t)):
        for p, (a, b) in enumerate(zip(ours, theirs)):
            assert_close(a, b.grad.numpy(), np.float64, f"layer {k} initial state gradient part {p}")
    names = [name for name, _ in layer.named_parameters()]
    assert sorted(names) == sorted(leaves)
    for name, parameter in layer.named_parameters():
        assert_close(parameter.grad, leaves[name].grad.numpy(), np.float64, f"grad of {name}")
    return masks
