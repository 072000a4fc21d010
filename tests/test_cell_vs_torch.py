"""lstmkit.LSTMCell against torch.nn.LSTMCell, one step and stepped by hand over a sequence."""

import itertools

import numpy as np
import pytest
import torch

import lstmkit
from conftest import assert_close, to_torch_module, torch_grads

CASES = list(itertools.product([True, False], [True, False], [True, False], [np.float64, np.float32]))


@pytest.mark.parametrize("bias,batched,with_hx,dtype", CASES)
def test_cell_step_matches_torch(bias, batched, with_hx, dtype):
    rng = np.random.default_rng(7)
    cell = lstmkit.LSTMCell(6, 5, bias=bias, dtype=dtype, seed=1)
    reference = to_torch_module(cell, torch.nn.LSTMCell, dtype, input_size=6, hidden_size=5, bias=bias)
    batch = (4,) if batched else ()
    x = rng.standard_normal((*batch, 6)).astype(dtype)
    hx = tuple(rng.standard_normal((*batch, 5)).astype(dtype) for _ in range(2)) if with_hx else None
    h1, c1 = cell(x, hx)
    x_t = torch.tensor(x, requires_grad=True)
    hx_t = tuple(torch.tensor(s, requires_grad=True) for s in hx) if with_hx else None
    h1_t, c1_t = reference(x_t, hx_t)
    assert_close(h1, h1_t.detach().numpy(), dtype, "h'")
    assert_close(c1, c1_t.detach().numpy(), dtype, "c'")

    dh1, dc1 = rng.standard_normal(h1.shape).astype(dtype), rng.standard_normal(c1.shape).astype(dtype)
    dx, (dh0, dc0) = cell.backward((dh1, dc1))
    dx_t, dh0_t, dc0_t = torch_grads([h1_t, c1_t], [dh1, dc1], [x_t, *(hx_t or (None, None))])
    assert_close(dx, dx_t, dtype, "dx")
    if with_hx:
        assert_close(dh0, dh0_t, dtype, "dh")
        assert_close(dc0, dc0_t, dtype, "dc")
    for name, parameter in cell.named_parameters():
        assert_close(parameter.grad, dict(reference.named_parameters())[name].grad.numpy(), dtype, name)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cell_stepped_by_hand_is_bptt(dtype):
    """T forwards then T backwards (last first) equal torch's autograd through the unrolled loop."""
    rng = np.random.default_rng(3)
    steps, batch = 7, 3
    cell = lstmkit.LSTMCell(4, 6, dtype=dtype, seed=2)
    reference = to_torch_module(cell, torch.nn.LSTMCell, dtype, input_size=4, hidden_size=6)
    xs = rng.standard_normal((steps, batch, 4)).astype(dtype)
    upstream = rng.standard_normal((steps, batch, 6)).astype(dtype)

    state = None
    for t in range(steps):
        state = cell(xs[t], state)
    dxs = np.zeros_like(xs)
    dh, dc = np.zeros((batch, 6), dtype), None
    for t in reversed(range(steps)):
        dxs[t], (dh, dc) = cell.backward((dh + upstream[t], dc))

    x_t = torch.tensor(xs, requires_grad=True)
    state_t, loss = None, 0
    for t in range(steps):
        state_t = reference(x_t[t], state_t)
        loss = loss + (state_t[0] * torch.from_numpy(upstream[t])).sum()
    loss.backward()
    assert_close(dxs, x_t.grad.numpy(), dtype, "dx over the sequence")
    for name, parameter in cell.named_parameters():
        assert_close(parameter.grad, dict(reference.named_parameters())[name].grad.numpy(), dtype, name)


def test_cell_and_layer_compute_the_same_step():
    """An LSTMCell with an LSTM's weights gives the LSTM's output step by step."""
    lstm = lstmkit.LSTM(3, 4, dtype=np.float64, seed=5)
    cell = lstmkit.LSTMCell(3, 4, dtype=np.float64)
    cell.load_state_dict({name[:-3]: value for name, value in lstm.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    output, _ = lstm(x)
    state = None
    for t in range(5):
        state = cell(x[t], state)
        np.testing.assert_allclose(state[0], output[t], rtol=0, atol=1e-14)
