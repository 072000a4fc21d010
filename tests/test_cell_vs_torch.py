"""lstmkit's LSTMCell, GRUCell and RNNCell against torch's, one step and stepped by hand over a sequence."""

import itertools

import numpy as np
import pytest
import torch
from conftest import assert_close, to_torch_module, torch_grads
from layer_reference import as_tuple, like_state

import lstmkit

CELLS = {
    "lstm": (lstmkit.LSTMCell, torch.nn.LSTMCell, lstmkit.LSTM, {}),
    "gru": (lstmkit.GRUCell, torch.nn.GRUCell, lstmkit.GRU, {}),
    "rnn_tanh": (lstmkit.RNNCell, torch.nn.RNNCell, lstmkit.RNN, {}),
    "rnn_relu": (lstmkit.RNNCell, torch.nn.RNNCell, lstmkit.RNN, {"nonlinearity": "relu"}),
}
CASES = list(itertools.product(CELLS, [True, False], [True, False], [True, False], [np.float64, np.float32]))


def make_cell(kind, input_size, hidden_size, dtype, seed, **options):
    cell_class, torch_class, _, extra = CELLS[kind]
    cell = cell_class(input_size, hidden_size, dtype=dtype, seed=seed, **options, **extra)
    reference = to_torch_module(
        cell, torch_class, dtype, input_size=input_size, hidden_size=hidden_size, **options, **extra
    )
    return cell, reference


def state_count(kind):
    return 2 if kind == "lstm" else 1


@pytest.mark.parametrize("kind,bias,batched,with_hx,dtype", CASES)
def test_cell_step_matches_torch(kind, bias, batched, with_hx, dtype):
    rng = np.random.default_rng(7)
    cell, reference = make_cell(kind, 6, 5, dtype, seed=1, bias=bias)
    batch = (4,) if batched else ()
    x = rng.standard_normal((*batch, 6)).astype(dtype)
    template = (None,) * state_count(kind) if state_count(kind) > 1 else None
    parts = [rng.standard_normal((*batch, 5)).astype(dtype) for _ in range(state_count(kind))]
    hx = like_state(parts, template) if with_hx else None
    state1 = cell(x, hx)
    x_t = torch.tensor(x, requires_grad=True)
    hx_t = like_state([torch.tensor(s, requires_grad=True) for s in as_tuple(hx)], hx) if with_hx else None
    state1_t = reference(x_t, hx_t)
    for index, (part, part_t) in enumerate(zip(as_tuple(state1), as_tuple(state1_t))):
        assert_close(part, part_t.detach().numpy(), dtype, f"new state {index}")

    upstream = [rng.standard_normal(part.shape).astype(dtype) for part in as_tuple(state1)]
    dx, dhx = cell.backward(like_state(upstream, state1))
    leaves = [x_t, *(as_tuple(hx_t) if with_hx else (None,) * state_count(kind))]
    dx_t, *dhx_t = torch_grads(as_tuple(state1_t), upstream, leaves)
    assert_close(dx, dx_t, dtype, "dx")
    if with_hx:
        for index, (part, part_t) in enumerate(zip(as_tuple(dhx), dhx_t)):
            assert_close(part, part_t, dtype, f"state gradient {index}")
    for name, parameter in cell.named_parameters():
        assert_close(parameter.grad, dict(reference.named_parameters())[name].grad.numpy(), dtype, name)


@pytest.mark.parametrize("kind", CELLS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_cell_stepped_by_hand_is_bptt(kind, dtype):
    """T forwards then T backwards (last first) equal torch's autograd through the unrolled loop."""
    rng = np.random.default_rng(3)
    steps, batch = 7, 3
    cell, reference = make_cell(kind, 4, 6, dtype, seed=2)
    xs = rng.standard_normal((steps, batch, 4)).astype(dtype)
    upstream = rng.standard_normal((steps, batch, 6)).astype(dtype)

    state = None
    for t in range(steps):
        state = cell(xs[t], state)
    dxs = np.zeros_like(xs)
    dstate = like_state([np.zeros((batch, 6), dtype)] + [None] * (state_count(kind) - 1), state)
    for t in reversed(range(steps)):
        dh, *rest = as_tuple(dstate)
        dxs[t], dstate = cell.backward(like_state([dh + upstream[t], *rest], state))

    x_t = torch.tensor(xs, requires_grad=True)
    state_t, loss = None, 0
    for t in range(steps):
        state_t = reference(x_t[t], state_t)
        loss = loss + (as_tuple(state_t)[0] * torch.from_numpy(upstream[t])).sum()
    loss.backward()
    assert_close(dxs, x_t.grad.numpy(), dtype, "dx over the sequence")
    for name, parameter in cell.named_parameters():
        assert_close(parameter.grad, dict(reference.named_parameters())[name].grad.numpy(), dtype, name)


@pytest.mark.parametrize("kind", CELLS)
def test_cell_and_layer_compute_the_same_step(kind):
    """A cell with a layer's weights gives the layer's output step by step."""
    cell_class, _, layer_class, extra = CELLS[kind]
    layer = layer_class(3, 4, dtype=np.float64, seed=5, **extra)
    cell = cell_class(3, 4, dtype=np.float64, **extra)
    cell.load_state_dict({name[:-3]: value for name, value in layer.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    output, _ = layer(x)
    state = None
    for t in range(5):
        state = cell(x[t], state)
        np.testing.assert_allclose(as_tuple(state)[0], output[t], rtol=0, atol=1e-14)
