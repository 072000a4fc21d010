"""The LSTM variants reached from the layers and cells (issue 23): layer_norm, peepholes, zoneout,
runtime_forget_bias and return_states="all" on LSTM/GRU/RNN and the cells, against a torch
reference of the equations (float64, 1e-10) with the masks the layers drew, finite differences,
zoneout's statistics, parameters, explain, Keras conversion and errors."""

import re

import numpy as np
import pytest
import torch
from conftest import assert_close
from options_reference import as_tuple, per_layer, random_hx
from test_gradcheck import numeric_gradient
from variant_layer_reference import layer_masks, run_layer
from variant_reference import torch_lstm

import lstmkit
import lstmkit.keras as lk
from lstmkit.cli import main
from lstmkit.explain import explain_layer, parameter_count, parameter_shapes

F64 = np.float64
LAYERS = {"LSTM": lstmkit.LSTM, "GRU": lstmkit.GRU, "RNN_TANH": lstmkit.RNN}


def make(mode, input_size, hidden_size, num_layers=1, **options):
    return LAYERS[mode](input_size, hidden_size, num_layers, dtype=F64, seed=3, **options)


def per_index(layer, part, time_major: bool) -> list:
    """A state part of every step (stacked or per-layer lists) as [layer * D + direction] -> (T, N, ·)."""
    rows = [row for array in part for row in array] if isinstance(part, list) else list(part)
    return [row if time_major else row.swapaxes(0, 1) for row in rows]


def randoms_like(part, rng):
    return [rng.standard_normal(a.shape) for a in part] if isinstance(part, list) else rng.standard_normal(part.shape)


def compare(layer, x, hx, rng, lengths=None, packed=False):
    """Forward and backward of ``layer`` (random upstream gradients, those of every step's states
    included) against :func:`variant_layer_reference.run_layer` and torch autograd with the
    layer's masks: output, final states, states of every step and every gradient to 1e-10."""
    time_major = packed or not layer.batch_first
    x_tm = x if time_major else x.swapaxes(0, 1)
    steps, batch = x_tm.shape[:2]
    if packed:
        given = lstmkit.pack_padded_sequence(x_tm, lengths, enforce_sorted=False)
        output, state, *states_all = layer(given, hx)
        output = lstmkit.pad_packed_sequence(output, total_length=steps)[0]
    else:
        output, state, *states_all = layer(x, hx, lengths=lengths)
    masks = layer_masks(layer, steps, batch)
    g_output = rng.standard_normal(output.shape)
    if lengths is not None:  # the output is a constant zero past each end
        g_output *= (np.arange(steps)[:, None] < np.asarray(lengths))[..., None] if time_major else 1
    g_state = tuple(randoms_like(part, rng) for part in as_tuple(state))
    g_all = tuple(randoms_like(part, rng) for part in as_tuple(states_all[0])) if states_all else None
    doutput = lstmkit.pack_padded_sequence(g_output, lengths, enforce_sorted=False) if packed else g_output
    dstates_all = None if g_all is None else (g_all if len(g_all) > 1 else g_all[0])
    dx, dhx = layer.backward(doutput, g_state if len(g_state) > 1 else g_state[0], dstates_all=dstates_all)
    if packed:
        dx = lstmkit.pad_packed_sequence(dx, total_length=steps)[0]

    leaves = {name: torch.tensor(p.data, requires_grad=True) for name, p in layer.named_parameters()}
    x_t = torch.tensor(x_tm, requires_grad=True)
    hx_t = [tuple(torch.tensor(a, requires_grad=True) for a in parts) for parts in per_layer(layer, as_tuple(hx))]
    out_t, finals_t, steps_t = run_layer(layer, leaves, x_t, hx_t, lengths, masks)
    g_out_tm = g_output if time_major else g_output.swapaxes(0, 1)
    loss = (out_t * torch.from_numpy(np.ascontiguousarray(g_out_tm))).sum()
    for finals, grads in zip(finals_t, per_layer(layer, g_state)):
        loss = loss + sum((f * torch.from_numpy(g)).sum() for f, g in zip(finals, grads))
    if g_all is not None:
        for p, g_part in enumerate(g_all):
            for index, g in enumerate(per_index(layer, g_part, time_major)):
                loss = loss + (steps_t[index][p] * torch.from_numpy(np.ascontiguousarray(g))).sum()
    loss.backward()

    assert_close(output if time_major else output.swapaxes(0, 1), out_t.detach().numpy(), F64, "output")
    for k, (ours, theirs) in enumerate(zip(per_layer(layer, as_tuple(state)), finals_t)):
        for p, (a, b) in enumerate(zip(ours, theirs)):
            assert_close(a, b.detach().numpy(), F64, f"layer {k} final state part {p}")
    if states_all:
        for p, part in enumerate(as_tuple(states_all[0])):
            for index, ours in enumerate(per_index(layer, part, time_major)):
                assert_close(ours, steps_t[index][p].detach().numpy(), F64, f"states_all part {p} row {index}")
    assert_close(dx if time_major else dx.swapaxes(0, 1), x_t.grad.numpy(), F64, "dinput")
    for k, (ours, theirs) in enumerate(zip(per_layer(layer, as_tuple(dhx)), hx_t)):
        for p, (a, b) in enumerate(zip(ours, theirs)):
            assert_close(a, b.grad.numpy(), F64, f"layer {k} initial state gradient part {p}")
    for name, parameter in layer.named_parameters():
        assert_close(parameter.grad, leaves[name].grad.numpy(), F64, f"grad of {name}")
    return masks


# (mode, hidden_size, num_layers, constructor options, call: lengths, packed, eval)
CASES = {
    "layer_norm_bidirectional_batch_first_lengths_dropouts": (
        "LSTM", 4, 2, dict(layer_norm=True, bidirectional=True, batch_first=True, dropout=0.3, recurrent_dropout=0.2),
        dict(lengths=[5, 2, 4]),
    ),
    "peepholes_projection_sum_lengths": (
        "LSTM", 5, 2, dict(peepholes=True, proj_size=2, bidirectional=True, merge_mode="sum"), dict(lengths=[3, 5, 1]),
    ),
    "zoneout_per_layer_sizes_recurrent_dropout": (
        "LSTM", [5, 3], 2, dict(zoneout=(0.3, 0.2), bidirectional=True, recurrent_dropout=0.3), {},
    ),
    "every_variant_no_bias_mul": (
        "LSTM", 4, 2,
        dict(layer_norm=True, peepholes=True, runtime_forget_bias=1.0, bias=False, bidirectional=True,
             merge_mode="mul"),
        {},
    ),
    "every_variant_all_states_lengths": (
        "LSTM", 4, 2,
        dict(layer_norm=True, peepholes=True, zoneout=0.25, runtime_forget_bias=-0.5, bidirectional=True,
             return_states="all", dropout=0.2, forget_bias=1.0),
        dict(lengths=[4, 5, 2]),
    ),
    "eval_zoneout_all_states_batch_first_projection": (
        "LSTM", 4, 2, dict(layer_norm=True, zoneout=(0.4, 0.1), return_states="all", batch_first=True, proj_size=3),
        dict(eval=True),
    ),
    "packed_all_states_ave": (
        "LSTM", [4, 3], 2,
        dict(peepholes=True, zoneout=0.2, return_states="all", bidirectional=True, merge_mode="ave"),
        dict(lengths=[2, 5, 3], packed=True),
    ),
    "gru_zoneout_all_states_lengths": (
        "GRU", 4, 2, dict(zoneout=0.3, return_states="all", bidirectional=True, recurrent_dropout=0.2),
        dict(lengths=[5, 1, 3]),
    ),
    "rnn_zoneout_per_layer_sizes_all_states": (
        "RNN_TANH", [3, 5], 2, dict(zoneout=0.35, return_states="all", dropout=0.25), dict(lengths=[4, 5, 5]),
    ),
    "gru_all_states_fast_backend": ("GRU", 4, 1, dict(return_states="all", backend="fast", bidirectional=True), {}),
    "eval_rnn_zoneout_all_states": (  # a fraction kept: the state is no longer the activation's output
        "RNN_TANH", 4, 2, dict(zoneout=0.3, return_states="all", bidirectional=True),
        dict(eval=True, lengths=[5, 3, 4]),
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", CASES)
def test_variants_equal_the_torch_reference(name):
    mode, hidden_size, num_layers, options, call = CASES[name]
    rng = np.random.default_rng(len(name))
    layer = make(mode, 3, hidden_size, num_layers, **options)
    if call.get("eval"):
        layer.eval()
    for parameter_name, parameter in layer.named_parameters():  # the variants' away from their initial values
        if "layer_norm" in parameter_name or "peephole" in parameter_name:
            parameter.data[...] = rng.uniform(0.5, 1.5, parameter.shape) * rng.choice([-1, 1], parameter.shape)
    batch_first = options.get("batch_first", False)
    x = rng.standard_normal((3, 5, 3) if batch_first else (5, 3, 3))
    hx = random_hx(layer, 3, rng)
    masks = compare(layer, x, hx, rng, call.get("lengths"), call.get("packed", False))
    zoned = [part for layer_masks_ in masks["zoneout"] for parts in layer_masks_ for part in parts if part is not None]
    assert bool(zoned) == bool(options.get("zoneout"))
    if zoned and not call.get("eval"):
        assert all(set(np.unique(part)) <= {0.0, 1.0} for part in zoned)


def test_variant_layers_run_the_ops_that_have_them_and_plain_ones_keep_theirs(monkeypatch):
    monkeypatch.setenv("LSTMKIT_BACKEND", "fast")
    assert lstmkit.LSTM(3, 4)._ops().backend == "fast"
    assert lstmkit.GRU(3, 4, return_states="all")._ops().backend == "fast"  # h of every step is the output
    for options in [dict(return_states="all"), dict(layer_norm=True, return_states="all")]:
        assert lstmkit.LSTM(3, 4, **options)._ops().backend == "reference", options
    fused_variants = [
        dict(layer_norm=True),
        dict(layer_norm=True, peepholes=True),
        dict(peepholes=True),
        dict(zoneout=0.1),
        dict(runtime_forget_bias=1.0),
        dict(recurrent_dropout=0.2),
    ]
    for options in fused_variants:  # the fused variant ops (tests/test_fast_variants.py)
        assert lstmkit.LSTM(3, 4, **options)._ops().backend == "fast", options
    assert lstmkit.LSTMCell(3, 4, peepholes=True)._ops().backend == "fast"
    assert lstmkit.LSTMCell(3, 4, layer_norm=True)._ops().backend == "fast"
    assert lstmkit.GRU(3, 4, zoneout=0.2)._ops().backend == "reference"
    assert lstmkit.GRUCell(3, 4, zoneout=0.2)._ops().backend == "reference"


# ---- finite differences --------------------------------------------------------------------
def test_finite_differences_of_a_layer_norm_peephole_zoneout_layer():
    """Input, initial state and the new parameters against central differences, through output,
    h_n, c_n and every step's h and c; zoneout's training masks fixed by reseeding."""
    rng = np.random.default_rng(7)
    layer = lstmkit.LSTM(
        2, 3, 2, bidirectional=True, layer_norm=True, peepholes=True, zoneout=(0.3, 0.3), runtime_forget_bias=0.5,
        return_states="all", dtype=F64, seed=1,
    )  # fmt: skip
    for name, parameter in layer.named_parameters():
        if "layer_norm" in name:
            parameter.data[...] = rng.uniform(0.5, 1.5, parameter.shape)
    x, hx = rng.standard_normal((3, 2, 2)), random_hx(layer, 2, rng)
    layer.reseed(5)
    output, state, states_all = layer(x, hx)
    upstream = [rng.standard_normal(a.shape) for a in (output, *state, *states_all)]

    def loss():
        layer.reseed(5)
        with lstmkit.no_grad():
            out, final, every = layer(x, hx)
        return float(sum(np.sum(a * g) for a, g in zip((out, *final, *every), upstream)))

    dx, dhx = layer.backward(upstream[0], tuple(upstream[1:3]), dstates_all=tuple(upstream[3:]))
    for name in ("weight_peephole_l0", "layer_norm_weight_ih_l0", "layer_norm_weight_c_l1_reverse",
                 "layer_norm_bias_c_l1", "layer_norm_weight_hh_l0_reverse", "weight_peephole_l1_reverse"):  # fmt: skip
        parameter = getattr(layer, name)
        expected = numeric_gradient(loss, parameter.data)
        np.testing.assert_allclose(parameter.grad, expected, rtol=1e-6, atol=1e-8, err_msg=name)
    np.testing.assert_allclose(dx, numeric_gradient(loss, x), rtol=1e-6, atol=1e-8, err_msg="input")
    for index, (gradient, array) in enumerate(zip(dhx, hx)):
        np.testing.assert_allclose(gradient, numeric_gradient(loss, array), rtol=1e-6, atol=1e-8, err_msg=f"hx {index}")


# ---- zoneout's masks -------------------------------------------------------------------------
def test_zoneout_keeps_units_at_the_rate_with_a_fresh_mask_every_step():
    z_h, z_c = 0.3, 0.6
    layer = lstmkit.LSTM(2, 40, bidirectional=True, zoneout=(z_h, z_c), seed=0)
    kept = {"h": [], "c": []}
    for _ in range(3):
        layer(np.zeros((10, 25, 2), np.float32))
        for cache in layer._saved.pop().saved.caches[0]:
            kept["h"].append(np.asarray(cache.zoneout.h))
            kept["c"].append(np.asarray(cache.zoneout.c))
    for part, rate in (("h", z_h), ("c", z_c)):
        masks = np.stack(kept[part])  # (6, T, N, H)
        assert masks.shape == (6, 10, 25, 40) and set(np.unique(masks)) == {0.0, 1.0}
        standard_error = np.sqrt(rate * (1 - rate) / masks.size)  # 60,000 units
        assert abs(masks.mean() - rate) < 3 * standard_error
        changed = np.mean(masks[:, 1:] != masks[:, :-1])  # independent draws: 2 z (1 - z) of them differ
        assert abs(changed - 2 * rate * (1 - rate)) < 3 * np.sqrt(0.25 / masks[:, 1:].size) + 0.01


def test_zoneout_in_eval_is_the_expectation_and_nothing_is_random(rng):
    x = rng.standard_normal((5, 2, 3))
    layer = make("LSTM", 3, 4, 2, zoneout=(0.3, 0.2), peepholes=True).eval()
    first, (h_n, c_n) = layer(x)
    second, _ = layer(x)
    np.testing.assert_array_equal(first, second)
    keeps = [torch.full((5, 2, 4), 0.3, dtype=torch.float64), torch.full((5, 2, 4), 0.2, dtype=torch.float64)]
    leaves = {name: torch.from_numpy(p.data) for name, p in layer.named_parameters()}
    h0, inputs = torch.zeros(2, 4, dtype=torch.float64), torch.from_numpy(x)
    for k in range(2):
        weights = {name[: -len(f"_l{k}")]: leaf for name, leaf in leaves.items() if name.endswith(f"_l{k}")}
        inputs, h, c, _ = torch_lstm(inputs, h0, h0, weights, keep=keeps)
        assert_close(h_n[k], h.numpy(), F64, f"h_n[{k}]")
    assert_close(first, inputs.numpy(), F64, "output")


def test_zoneout_is_reproducible_from_the_seed_and_differs_between_calls(rng):
    x = rng.standard_normal((5, 2, 3))
    first, second = (make("GRU", 3, 4, 2, zoneout=0.5, bidirectional=True) for _ in range(2))
    a, b = first(x)[0], second(x)[0]
    np.testing.assert_array_equal(a, b)
    assert np.max(np.abs(first(x)[0] - a)) > 1e-3  # the next call draws new masks
    cell = lstmkit.LSTMCell(3, 4, zoneout=0.5, dtype=F64, seed=2)
    other = lstmkit.LSTMCell(3, 4, zoneout=0.5, dtype=F64, seed=2)
    np.testing.assert_array_equal(cell(x[0])[0], other(x[0])[0])


# ---- every step's states -------------------------------------------------------------------
def test_all_states_equal_a_layer_stepped_one_step_at_a_time(rng):
    layer = make("LSTM", 3, [5, 4], 2, layer_norm=True, peepholes=True, zoneout=0.3, proj_size=2, return_states="all")
    layer.eval()
    x = rng.standard_normal((6, 2, 3))
    output, (h_n, c_n), (h_all, c_all) = layer(x)
    assert [a.shape for a in h_all] == [(1, 6, 2, 2)] * 2 and [a.shape for a in c_all] == [(1, 6, 2, 5), (1, 6, 2, 4)]
    state = None
    for t in range(6):
        step_output, state, _ = layer(x[t : t + 1], state)
        np.testing.assert_array_equal(step_output[0], output[t])
        for k in range(2):
            assert_close(h_all[k][:, t], state[0][k], F64, f"h_all[{k}][:, {t}]")
            assert_close(c_all[k][:, t], state[1][k], F64, f"c_all[{k}][:, {t}]")
    for k in range(2):
        np.testing.assert_array_equal(h_all[k][:, -1], h_n[k])
    layer.clear_saved()


def test_all_states_come_back_without_gradients_and_unbatched(rng):
    layer = make("LSTM", 3, 4, 2, bidirectional=True, return_states="all", layer_norm=True)
    x = rng.standard_normal((5, 3))
    output, _, (h_all, c_all) = layer(x)
    layer.clear_saved()
    with lstmkit.no_grad():
        again, _, (h_again, c_again) = layer(x)
    assert not layer._saved and h_all.shape == (4, 5, 4) and c_all.shape == (4, 5, 4)
    np.testing.assert_array_equal(h_again, h_all)
    np.testing.assert_array_equal(c_again, c_all)
    np.testing.assert_array_equal(h_all[2], output[:, :4])  # the last layer's forward direction
    np.testing.assert_array_equal(h_all[3], output[:, 4:])  # and its reverse, in the input's time


def test_all_states_with_left_padding_are_zero_in_the_padding(rng):
    layer = make("GRU", 3, 4, bidirectional=True, return_states="all")
    x = rng.standard_normal((5, 2, 3))
    output, _, h_all = layer(x, lengths=[5, 2], padding_side="left")
    assert np.all(h_all[:, :3, 1] == 0) and np.all(h_all[:, 3:, 1] != 0)
    np.testing.assert_array_equal(np.concatenate(list(h_all), axis=-1), output)
    dx, _ = layer.backward(np.zeros_like(output), dstates_all=np.ones_like(h_all))
    assert np.all(dx[:3, 1] == 0) and np.all(dx[3:, 1] != 0)


# ---- cells ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "options",
    [
        dict(layer_norm=True),
        dict(peepholes=True, runtime_forget_bias=1.0),
        dict(layer_norm=True, peepholes=True, bias=False, zoneout=(0.5, 0.4)),
    ],
)
def test_lstm_cell_variants_equal_the_torch_reference(options, rng):
    cell = lstmkit.LSTMCell(3, 4, dtype=F64, seed=0, **options)
    for name, parameter in cell.named_parameters():
        if "layer_norm" in name:
            parameter.data[...] = rng.uniform(0.5, 1.5, parameter.shape)
    x, h, c = rng.standard_normal((2, 3)), rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    h1, c1 = cell(x, (h, c))
    zoneout = cell._saved[-1].saved[0].zoneout
    keep = [None, None] if zoneout is None else [torch.from_numpy(np.array(part)) for part in zoneout]
    dh1, dc1 = rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    dx, (dh, dc) = cell.backward((dh1, dc1))

    leaves = {name: torch.tensor(p.data, requires_grad=True) for name, p in cell.named_parameters()}
    inputs = [torch.tensor(a[None] if i == 0 else a, requires_grad=True) for i, a in enumerate((x, h, c))]
    _, h_t, c_t, _ = torch_lstm(*inputs, leaves, cell.runtime_forget_bias, keep)
    ((h_t * torch.from_numpy(dh1)).sum() + (c_t * torch.from_numpy(dc1)).sum()).backward()
    assert_close(h1, h_t.detach().numpy(), F64, "h'")
    assert_close(c1, c_t.detach().numpy(), F64, "c'")
    for label, ours, leaf in (("dx", dx, inputs[0]), ("dh", dh, inputs[1]), ("dc", dc, inputs[2])):
        assert_close(ours, leaf.grad.numpy()[0] if label == "dx" else leaf.grad.numpy(), F64, label)
    for name, parameter in cell.named_parameters():
        assert_close(parameter.grad, leaves[name].grad.numpy(), F64, f"grad of {name}")


@pytest.mark.parametrize("cell_class", [lstmkit.GRUCell, lstmkit.RNNCell])
def test_gru_and_rnn_cells_zone_out_h(cell_class, rng):
    cell = cell_class(3, 4, dtype=F64, seed=0, zoneout=0.5)
    plain = cell_class(3, 4, dtype=F64, seed=0)
    x, h = rng.standard_normal((2, 3)), rng.standard_normal((2, 4))
    h1 = cell(x, h)
    keep = np.asarray(cell._saved[-1].saved[0].zoneout.h)[0]
    new = plain(x, h)
    assert_close(h1, keep * h + (1 - keep) * new, F64, "h'")
    dh1 = rng.standard_normal((2, 4))
    dx, dh = cell.backward(dh1)
    dx_plain, dh_plain = plain.backward((1 - keep) * dh1)
    assert_close(dx, dx_plain, F64, "dx")
    assert_close(dh, dh_plain + keep * dh1, F64, "dh")
    cell.eval()
    assert_close(cell(x, h), 0.5 * h + 0.5 * new, F64, "h' in eval")


# ---- parameters, state_dict, explain -------------------------------------------------------
def test_plain_weights_are_drawn_as_without_the_variants_and_the_new_ones_initialised():
    plain = lstmkit.LSTM(3, [5, 4], 2, bidirectional=True, proj_size=2, seed=4)
    layer = lstmkit.LSTM(3, [5, 4], 2, bidirectional=True, proj_size=2, seed=4, layer_norm=True, peepholes=True)
    state = layer.state_dict()
    for name, array in plain.state_dict().items():
        np.testing.assert_array_equal(state[name], array)
    for k, hidden in enumerate((5, 4)):
        for suffix in (f"_l{k}", f"_l{k}_reverse"):
            peephole = state["weight_peephole" + suffix]
            assert peephole.shape == (3 * hidden,) and 0 < np.max(np.abs(peephole)) <= 1 / np.sqrt(hidden)
            np.testing.assert_array_equal(state["layer_norm_weight_ih" + suffix], np.ones(4 * hidden))
            np.testing.assert_array_equal(state["layer_norm_weight_hh" + suffix], np.ones(4 * hidden))
            np.testing.assert_array_equal(state["layer_norm_weight_c" + suffix], np.ones(hidden))
            np.testing.assert_array_equal(state["layer_norm_bias_c" + suffix], np.zeros(hidden))
    cell, plain_cell = lstmkit.LSTMCell(3, 4, seed=1, layer_norm=True, bias=False), lstmkit.LSTMCell(3, 4, seed=1)
    assert [name for name, _ in cell.named_parameters()] == [
        "weight_ih", "weight_hh", "layer_norm_weight_ih", "layer_norm_weight_hh", "layer_norm_weight_c",
    ]  # fmt: skip
    np.testing.assert_array_equal(cell.weight_hh.data, plain_cell.weight_hh.data)


def test_state_dict_round_trip_with_variants(rng):
    options = dict(bidirectional=True, layer_norm=True, peepholes=True, zoneout=0.2, runtime_forget_bias=1.0)
    first, second = lstmkit.LSTM(3, 4, 2, seed=1, **options), lstmkit.LSTM(3, 4, 2, seed=2, **options)
    for parameter in first.parameters():
        parameter.data[...] = rng.uniform(-1, 1, parameter.shape)
    state = first.state_dict()
    assert list(state) == list(parameter_shapes("LSTM", 3, 4, 2, True, True, layer_norm=True, peepholes=True))
    second.load_state_dict(state)
    first.eval(), second.eval()
    x = rng.standard_normal((4, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(first(x)[0], second(x)[0])
    with pytest.raises(ValueError, match=r"missing keys \['weight_peephole_l0', "):  # a plain layer's state
        second.load_state_dict({name: array for name, array in state.items() if "peephole" not in name})
    with pytest.raises(ValueError, match=r"unexpected keys \['weight_peephole_l0', "):
        lstmkit.LSTM(3, 4, 2, bidirectional=True, layer_norm=True).load_state_dict(state)


def test_counts_and_explain_of_a_layer_norm_peephole_layer():
    layer = lstmkit.LSTM(3, 4, 2, bidirectional=True, layer_norm=True, peepholes=True)
    # per direction: 4H(in + H) + 8H (biases) + 3H (peepholes) + 4H + 4H + H + H (norms), H = 4
    by_hand = 2 * (16 * (3 + 4) + 32 + 12 + 40) + 2 * (16 * (8 + 4) + 32 + 12 + 40)
    assert by_hand == 944
    assert lstmkit.count_parameters(layer) == by_hand
    assert parameter_count("LSTM", 3, 4, 2, True, True, layer_norm=True, peepholes=True) == by_hand
    no_bias = 2 * (16 * 7 + 12 + 36) + 2 * (16 * 12 + 12 + 36)  # no b_c either
    assert parameter_count("LSTM", 3, 4, 2, False, True, layer_norm=True, peepholes=True) == no_bias
    without_biases = lstmkit.LSTM(3, 4, 2, False, bidirectional=True, layer_norm=True, peepholes=True)
    assert lstmkit.count_parameters(without_biases) == no_bias
    shapes = {name: tuple(p.shape) for name, p in layer.named_parameters()}
    assert parameter_shapes("LSTM", 3, 4, 2, True, True, layer_norm=True, peepholes=True) == shapes
    text = explain_layer(3, 4, 2, 5, 2, bidirectional=True, layer_norm=True, peepholes=True)
    assert "lstmkit.LSTM(3, 4, num_layers=2, bidirectional=True, layer_norm=True, peepholes=True)" in text
    assert "layer 0 (input 3): 4*4*(3 + 4) + 8*4 + 3*4 + 10*4 = 196 per direction, 392 for both" in text
    assert re.search(r"layer_norm_weight_c_l1_reverse\s+\(4,\)", text)
    assert re.search(r"weight_peephole_l0\s+\(12,\)", text)
    assert f"total: {by_hand:,} parameters" in text
    assert "Keras has no layer_norm and no peepholes" in text


def test_cli_explain_layer_norm_and_peepholes(capsys):
    flags = ["--input-size", "3", "--hidden-size", "4", "--num-layers", "2", "--bidirectional"]
    assert main(["explain", *flags, "--layer-norm", "--peepholes"]) == 0
    assert "total: 944 parameters" in capsys.readouterr().out
    assert main(["explain", *flags, "--mode", "GRU", "--peepholes"]) == 2
    assert "GRU: peepholes is an LSTM option (GRU has no cell state to peep at), got peepholes=True" in (
        capsys.readouterr().err
    )
    assert main(["explain", *flags, "--layer-norm", "--style", "keras"]) == 2
    assert "Keras' layers have no layer norm and no peepholes; leave out --layer-norm" in capsys.readouterr().err


# ---- Keras conversion ----------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_a_sum_merged_layer_converts_to_a_keras_twin_with_the_same_output(mode, rng):
    layer = LAYERS[mode](3, [4], 1, batch_first=True, bidirectional=True, merge_mode="sum", dtype=F64, seed=2)
    x = rng.standard_normal((2, 5, 3))
    output, state = layer(x)
    twin = lk.to_keras(layer)
    assert twin.merge_mode == "sum"
    keras_output, *keras_states = twin(x)
    np.testing.assert_allclose(keras_output, output, rtol=0, atol=1e-12)
    expected = [part[0][d] for d in range(2) for part in as_tuple(state)]  # per-layer lists: layer 0's (D, N, H)
    for ours, theirs in zip(keras_states, expected, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "options", [dict(layer_norm=True), dict(peepholes=True), dict(zoneout=0.1), dict(runtime_forget_bias=1.0)]
)
def test_to_keras_refuses_the_variants_keras_lacks(options):
    name, value = next(iter(options.items()))
    with pytest.raises(ValueError, match=rf"Keras' layers have no {name}={value!r}"):
        lk.to_keras(lstmkit.LSTM(3, 4, **options))


# ---- options assigned after construction ---------------------------------------------------
def _arrays(result) -> list:
    """Every array of a layer's nested result (output, states, states of every step), in order."""
    if isinstance(result, (tuple, list)):
        return [array for part in result for array in _arrays(part)]
    return [result]


def _run(layer, x, rng_seed: int) -> list:
    """Forward and backward (every output's gradient ones) after reseeding: outputs, dx, grads."""
    layer.reseed(rng_seed)
    output, state, *every = layer(x)
    dstates_all = None
    if every:
        dstates_all = (
            tuple(np.ones_like(a) for a in every[0]) if isinstance(every[0], tuple) else np.ones_like(every[0])
        )
    dstate = tuple(np.ones_like(a) for a in state) if isinstance(state, tuple) else np.ones_like(state)
    dx, dhx = layer.backward(np.ones_like(output), dstate, dstates_all=dstates_all)
    return _arrays((output, state, *every, dx, dhx)) + [p.grad for p in layer.parameters()]


SETTABLE = {
    "lstm_zoneout_pair": ("LSTM", dict(zoneout=(0.3, 0.2))),
    "lstm_runtime_forget_bias": ("LSTM", dict(runtime_forget_bias=0.7)),
    "lstm_all_states": ("LSTM", dict(return_states="all")),  # the fused backward has no dc_steps
    "lstm_recurrent_dropout_zoneout": ("LSTM", dict(recurrent_dropout=0.4, zoneout=0.25)),
    "gru_zoneout_all_states": ("GRU", dict(zoneout=0.3, return_states="all")),
    "rnn_zoneout_recurrent_dropout": ("RNN_TANH", dict(zoneout=0.2, recurrent_dropout=0.3)),
}


@pytest.mark.parametrize("name", SETTABLE)
def test_options_assigned_after_construction_equal_the_constructors(name, rng):
    """A layer given an option by assignment computes what one built with it does, forward and
    backward; assigned back to off, what a plain layer does."""
    mode, options = SETTABLE[name]
    x = rng.standard_normal((5, 2, 3))
    built, assigned = make(mode, 3, 4, 2, bidirectional=True, **options), make(mode, 3, 4, 2, bidirectional=True)
    for option, value in options.items():
        setattr(assigned, option, value)
        assert getattr(assigned, option) == value
    assert repr(assigned) == repr(built)
    for ours, expected in zip(_run(assigned, x, 1), _run(built, x, 1), strict=True):
        np.testing.assert_array_equal(ours, expected)
    plain = make(mode, 3, 4, 2, bidirectional=True)
    for option in options:
        setattr(assigned, option, plain._defaults[option])
    assert repr(assigned) == repr(plain)
    for parameter in (*assigned.parameters(), *plain.parameters()):
        parameter.grad = None
    for ours, expected in zip(_run(assigned, x, 2), _run(plain, x, 2), strict=True):
        np.testing.assert_array_equal(ours, expected)


def test_cell_options_assigned_after_construction_equal_the_constructors(rng):
    x, h, c = rng.standard_normal((2, 3)), rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    for cell_class, options in (
        (lstmkit.LSTMCell, dict(zoneout=(0.5, 0.2), runtime_forget_bias=-0.4)),
        (lstmkit.GRUCell, dict(zoneout=0.4)),
        (lstmkit.RNNCell, dict(zoneout=0.4)),
    ):
        built, assigned = cell_class(3, 4, dtype=F64, seed=2, **options), cell_class(3, 4, dtype=F64, seed=2)
        for option, value in options.items():
            setattr(assigned, option, value)
        assert repr(assigned) == repr(built)
        state = (h, c) if cell_class is lstmkit.LSTMCell else h
        for cell in (built, assigned):
            cell.reseed(3)
        for ours, expected in zip(_arrays(assigned(x, state)), _arrays(built(x, state)), strict=True):
            np.testing.assert_array_equal(ours, expected)


def test_assignments_are_checked_and_a_refused_one_changes_nothing(monkeypatch, rng):
    monkeypatch.delenv("LSTMKIT_BACKEND", raising=False)
    layer = lstmkit.LSTM(3, 4, backend="fast")
    fast = r"^LSTM: backend='fast' runs the fused ops, which lack "
    with pytest.raises(ValueError, match=fast + re.escape("return_states='all'")):
        layer.return_states = "all"
    assert layer.return_states == "last"
    for option, value in (("zoneout", 0.2), ("runtime_forget_bias", 1.0), ("recurrent_dropout", 0.1)):
        setattr(layer, option, value)  # the fused variant ops run them
        assert layer._ops().backend == "fast" and getattr(layer, option) == value
        with pytest.raises(ValueError, match=fast + re.escape("return_states='all'")):
            layer.return_states = "all"
        setattr(layer, option, 0.0)
    assert (layer.zoneout, layer.runtime_forget_bias, layer.return_states, layer.recurrent_dropout) == (
        0.0, 0.0, "last", 0.0,
    )  # fmt: skip
    assert layer._ops().backend == "fast" and repr(layer) == "LSTM(3, 4)"
    for option, value, error, message in (
        ("zoneout", 1.5, ValueError, r"zoneout must be in \[0, 1\), got 1.5$"),
        ("zoneout", (0.1,), ValueError, r"zoneout must be a number in \[0, 1\) or a pair \(z_h, z_c\)"),
        ("runtime_forget_bias", float("nan"), ValueError, r"runtime_forget_bias must be a finite number, got nan"),
        ("return_states", "every", ValueError, r"return_states must be 'last' or 'all', got 'every'"),
        ("recurrent_dropout", 1.0, ValueError, r"recurrent_dropout must be in \[0, 1\), got 1.0 \(1 would zero"),
    ):
        with pytest.raises(error, match="^LSTM: " + message):
            setattr(layer, option, value)
    layer.backend = "auto"
    layer.return_states = "all"
    assert layer._ops().backend == "reference"
    with pytest.raises(ValueError, match=fast + r"return_states='all'"):
        layer.backend = "fast"
    layer.return_states = "last"
    assert layer._ops().backend == "fast"
    layer.backend = "fast"
    fixed = "defines parameters and is fixed at construction; build a new"
    for owner, why in ((layer, fixed), (lstmkit.LSTMCell(3, 4, layer_norm=True), fixed), (lstmkit.GRU(3, 4), None)):
        for option in ("layer_norm", "peepholes"):
            before, name = getattr(owner, option), type(owner).__name__
            reason = why or rf"is an LSTM option \(GRU has no {LSTM_ONLY[option][1]}\), always False here"
            with pytest.raises(AttributeError, match=rf"^{name}: {option} {reason}"):
                setattr(owner, option, not before)
            assert getattr(owner, option) == before


def test_recurrent_dropout_runs_the_fused_ops_that_take_its_masks(monkeypatch, rng):
    """backend "auto": an LSTM with recurrent_dropout runs the fused variant ops, in training and
    in eval mode; a GRU's fused op hands a call with masks to the reference op (its cache says
    so), and in eval mode there are no masks."""
    monkeypatch.delenv("LSTMKIT_BACKEND", raising=False)
    x = rng.standard_normal((5, 2, 3))
    for mode, training_cache, eval_cache in (
        ("LSTM", "VariantLSTMCache", "VariantLSTMCache"), ("GRU", "GRUCache", "FusedGRUCache"),
    ):  # fmt: skip
        layer = make(mode, 3, 4, recurrent_dropout=0.3)
        assert layer._ops().backend == "fast"
        layer(x)
        in_training = layer._saved.pop().saved.caches[0][0]
        layer.eval()
        layer(x)
        in_eval = layer._saved.pop().saved.caches[0][0]
        assert type(in_training).__name__ == training_cache
        assert type(in_eval).__name__ == eval_cache


# ---- errors --------------------------------------------------------------------------------
FAST = r"backend='fast' runs the fused ops, which lack "
CONSTRUCTOR_ERRORS = [
    (dict(zoneout=1.0), ValueError, r"zoneout must be in \[0, 1\), got 1.0 \(1 would keep the initial state"),
    (dict(zoneout=-0.2), ValueError, r"zoneout must be in \[0, 1\), got -0.2$"),  # the reason is 1's alone
    (dict(zoneout=float("nan")), ValueError, r"zoneout must be in \[0, 1\), got nan$"),
    (dict(zoneout=(0.1, 1.5)), ValueError, r"zoneout\[1\] \(z_c\) must be in \[0, 1\), got 1.5$"),
    (dict(zoneout=(0.1, 1.0)), ValueError, r"zoneout\[1\] \(z_c\) must be in \[0, 1\), got 1.0 \(1 would keep"),
    (
        dict(zoneout=(0.1, 0.2, 0.3)), ValueError,
        r"zoneout must be a number in \[0, 1\) or a pair \(z_h, z_c\), got \(0.1, 0.2, 0.3\)$",
    ),
    (dict(zoneout="0.1"), TypeError, r"zoneout must be a number in \[0, 1\), got '0.1'"),
    (dict(return_states="every"), ValueError, r"return_states must be 'last' or 'all', got 'every'"),
    (dict(layer_norm=1), TypeError, r"layer_norm must be True or False, got 1"),
    (dict(runtime_forget_bias="1"), TypeError, r"runtime_forget_bias must be a number, got '1'"),
    (dict(runtime_forget_bias=float("inf")), ValueError, r"runtime_forget_bias must be a finite number, got inf"),
    (dict(return_states="all", backend="fast"), ValueError, FAST + r"return_states='all'"),
    (dict(zoneout=(0.0, 0.3), return_states="all", backend="fast"), ValueError, FAST + r"return_states='all'"),
    (dict(layer_norm=True, peepholes=True, return_states="all", backend="fast"), ValueError,
     FAST + r"return_states='all'; use backend='auto' or 'reference'"),
    (dict(forget_bias=float("nan")), ValueError, r"forget_bias must be a finite number, got nan$"),
    (dict(forget_bias=float("-inf")), ValueError, r"forget_bias must be a finite number, got -inf$"),
    (dict(forget_bias=True), TypeError, r"forget_bias must be a finite number or None, got True$"),
]  # fmt: skip


@pytest.mark.parametrize("options,error,message", CONSTRUCTOR_ERRORS)
def test_constructor_errors_name_the_option_and_value(options, error, message):
    with pytest.raises(error, match="^LSTM: " + message):
        lstmkit.LSTM(3, 4, **options)


LSTM_ONLY = {
    "layer_norm": (True, "cell state to normalise"),
    "peepholes": (True, "cell state to peep at"),
    "runtime_forget_bias": (1.0, "forget gate"),
    "forget_bias": (1.0, "forget gate"),
}


@pytest.mark.parametrize("owner", ["GRU", "RNN", "GRUCell", "RNNCell"])
def test_gru_and_rnn_refuse_the_lstm_options_saying_why(owner):
    layer_class = getattr(lstmkit, owner)
    for name, (value, lacks) in LSTM_ONLY.items():
        if owner.endswith("Cell") and name == "forget_bias":
            continue  # no cell takes an initial forget_bias, an LSTM cell neither
        reason = rf"^{owner}: {name} is an LSTM option \({owner} has no {lacks}\), got {name}={value!r}$"
        with pytest.raises(ValueError, match=reason):
            layer_class(3, 4, **{name: value})
    off = dict(layer_norm=False, peepholes=False, runtime_forget_bias=0.0)  # off, they are accepted
    plain, given_off = layer_class(3, 4, seed=0, **off), layer_class(3, 4, seed=0)
    for (name, a), (_, b) in zip(plain.named_parameters(), given_off.named_parameters(), strict=True):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)
    with pytest.raises(ValueError, match=rf"^{owner}: runtime_forget_bias is an LSTM option"):
        plain.runtime_forget_bias = 0.5  # assigned later, too
    assert plain.runtime_forget_bias == 0.0


def test_gru_rnn_and_cell_errors():
    with pytest.raises(
        ValueError,
        match=r"^GRU: zoneout must be one number in \[0, 1\) \(its state is h alone, no c\), got \(0.1, 0.2\)$",
    ):
        lstmkit.GRU(3, 4, zoneout=(0.1, 0.2))
    with pytest.raises(ValueError, match=r"^GRU: backend='fast' runs the fused ops, which lack zoneout=0.1"):
        lstmkit.GRU(3, 4, zoneout=0.1, backend="fast")
    assert lstmkit.LSTMCell(3, 4, peepholes=True, layer_norm=True, backend="fast").backend == "fast"
    with pytest.raises(ValueError, match=r"^GRU: backend='fast' runs the fused ops, which lack recurrent_dropout=0.3"):
        lstmkit.GRU(3, 4, recurrent_dropout=0.3, backend="fast")
    with pytest.raises(ValueError, match=r"^RNNCell: zoneout must be in \[0, 1\), got 1"):
        lstmkit.RNNCell(3, 4, zoneout=1)
    layer = lstmkit.LSTM(3, 4, layer_norm=True, return_states="all")
    with pytest.raises(ValueError, match=r"^LSTM: backend='fast' runs the fused ops, which lack return_states='all'"):
        layer.backend = "fast"
    assert layer.backend == "auto"


def test_backward_errors_of_every_steps_gradient(rng):
    x = rng.standard_normal((5, 2, 3))
    plain = make("LSTM", 3, 4)
    output, _ = plain(x)
    with pytest.raises(ValueError, match=r"^LSTM.backward: dstates_all .* got return_states='last'"):
        plain.backward(output, dstates_all=(None, None))
    layer = make("LSTM", 3, 4, 2, return_states="all")
    output, _, (h_all, c_all) = layer(x)
    with pytest.raises(TypeError, match=r"^LSTM.backward: dstates_all must be a pair \(dh_all, dc_all\)"):
        layer.backward(output, dstates_all=h_all)
    with pytest.raises(ValueError, match=r"^LSTM: dstates_all \(dc_all\) must have shape \(2, 5, 2, 4\), got"):
        layer.backward(output, dstates_all=(None, c_all[:, :, 0]))
    dx, _ = layer.backward(output, dstates_all=(None, c_all))  # a part may be None
    assert dx.shape == x.shape
    sizes = make("GRU", 3, [4, 5], 2, return_states="all")
    output, _, h_all = sizes(x)
    with pytest.raises(ValueError, match=r"^GRU.backward: dstates_all \(dh_all\) must be a list of num_layers=2"):
        sizes.backward(output, dstates_all=np.zeros((2, 5, 2, 4)))
