"""lstmkit.LSTM against torch.nn.LSTM: outputs, final states and every gradient, all option combinations."""

import itertools

import numpy as np
import pytest
import torch
from conftest import assert_close, to_torch_module, torch_grads

import lstmkit
from lstmkit._openblas import WORKERS_SLEEP_SOON
from lstmkit.ops.fused import HalvesLSTMCache, helper_thread_enabled

OPTIONS = list(
    itertools.product(
        [1, 2, 3],  # num_layers
        [True, False],  # bias
        [False, True],  # batch_first
        [False, True],  # bidirectional
        [0, 3],  # proj_size (hidden_size is 5)
        [True, False],  # batched
        [False, True],  # hx given
    )
)


def _case_id(option):
    layers, bias, batch_first, bidir, proj, batched, with_hx = option
    return (
        f"L{layers}-{'bias' if bias else 'nobias'}-{'bf' if batch_first else 'tf'}-{'bi' if bidir else 'uni'}"
        f"-p{proj}-{'b' if batched else 'u'}-{'hx' if with_hx else 'nohx'}"
    )


def compare_with_torch(option, dtype, seq_len, seed, sizes=(4, 5, 3)):
    layers, bias, batch_first, bidirectional, proj_size, batched, with_hx = option
    rng = np.random.default_rng(seed)
    input_size, hidden_size, batch = sizes
    config = dict(input_size=input_size, hidden_size=hidden_size, num_layers=layers, bias=bias)
    config.update(batch_first=batch_first, bidirectional=bidirectional, proj_size=proj_size)
    ours = lstmkit.LSTM(**config, dtype=dtype, seed=seed)
    reference = to_torch_module(ours, torch.nn.LSTM, dtype, **config)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in reference.named_parameters()]

    D = 2 if bidirectional else 1
    H_out = proj_size or hidden_size
    if not batched:
        x_shape = (seq_len, input_size)
    else:
        x_shape = (batch, seq_len, input_size) if batch_first else (seq_len, batch, input_size)
    state_batch = (batch,) if batched else ()
    x = rng.standard_normal(x_shape).astype(dtype)
    hx = None
    if with_hx:
        hx = (
            rng.standard_normal((D * layers, *state_batch, H_out)).astype(dtype),
            rng.standard_normal((D * layers, *state_batch, hidden_size)).astype(dtype),
        )

    output, (h_n, c_n) = ours(x, hx)
    x_t = torch.tensor(x, requires_grad=True)
    hx_t = None if hx is None else tuple(torch.tensor(s, requires_grad=True) for s in hx)
    out_t, (h_n_t, c_n_t) = reference(x_t, hx_t)
    assert_close(output, out_t.detach().numpy(), dtype, "output")
    assert_close(h_n, h_n_t.detach().numpy(), dtype, "h_n")
    assert_close(c_n, c_n_t.detach().numpy(), dtype, "c_n")

    g_out, g_h, g_c = (rng.standard_normal(a.shape).astype(dtype) for a in (output, h_n, c_n))
    dx, (dh0, dc0) = ours.backward(g_out, (g_h, g_c))
    leaves = [x_t] + list(hx_t or (None, None))
    dx_t, dh0_t, dc0_t = torch_grads([out_t, h_n_t, c_n_t], [g_out, g_h, g_c], leaves)
    assert_close(dx, dx_t, dtype, "dinput")
    if with_hx:
        assert_close(dh0, dh0_t, dtype, "dh0")
        assert_close(dc0, dc0_t, dtype, "dc0")
    torch_parameters = dict(reference.named_parameters())
    for name, parameter in ours.named_parameters():
        assert_close(parameter.grad, torch_parameters[name].grad.numpy(), dtype, f"grad of {name}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("option", OPTIONS, ids=[_case_id(o) for o in OPTIONS])
def test_lstm_matches_torch(option, dtype):
    index = OPTIONS.index(option)
    seq_len = [1, 50, 2, 17, 33, 8][index % 6]  # lengths 1..50, both ends included
    compare_with_torch(option, dtype, seq_len, seed=index)


def test_h0_gradient_without_hx_is_the_zero_state_gradient():
    """Without hx the zero initial state still has a gradient; it equals torch's for explicit zeros."""
    ours = lstmkit.LSTM(4, 5, 2, bidirectional=True, proj_size=3, dtype=np.float64, seed=3)
    reference = to_torch_module(
        ours, torch.nn.LSTM, np.float64, input_size=4, hidden_size=5, num_layers=2, bidirectional=True, proj_size=3
    )
    x = np.random.default_rng(0).standard_normal((6, 2, 4))
    out, _ = ours(x)
    dx, (dh0, dc0) = ours.backward(np.ones_like(out))
    h0 = torch.zeros(4, 2, 3, dtype=torch.float64, requires_grad=True)
    c0 = torch.zeros(4, 2, 5, dtype=torch.float64, requires_grad=True)
    out_t, _ = reference(torch.tensor(x), (h0, c0))
    out_t.sum().backward()
    assert_close(dh0, h0.grad.numpy(), np.float64, "dh0")
    assert_close(dc0, c0.grad.numpy(), np.float64, "dc0")


def test_larger_layer_float32_matches_torch():
    """Layers of realistic size (H_in=28, H=128, N=16, L=28), float32, forward and backward."""
    compare_with_torch((2, True, True, True, 0, True, True), np.float32, seq_len=28, seed=99, sizes=(28, 128, 16))
    compare_with_torch((1, True, False, False, 64, True, True), np.float32, seq_len=28, seed=98, sizes=(28, 128, 16))


@pytest.mark.skipif(
    not (WORKERS_SLEEP_SOON and helper_thread_enabled()),
    reason="training runs on batch halves only beside a helper thread, where OpenBLAS's worker sleeps "
    "soon (tests/test_fast_paths.py checks that loop against the reference on every machine)",
)
def test_training_on_batch_halves_matches_torch():
    """A size whose training steps run half of the batch on each core (11 rows: 5 and 6), float64,
    two layers, both directions: each layer and direction's forward kept a cache of halves."""
    layer = lstmkit.LSTM(6, 40, num_layers=2, bidirectional=True, seed=0, dtype=np.float64)
    layer(np.zeros((12, 11, 6)))
    caches = [cache for layer_caches in layer._saved[-1].saved.caches for cache in layer_caches]
    assert len(caches) == 4 and all(isinstance(cache, HalvesLSTMCache) for cache in caches)
    compare_with_torch((2, True, False, True, 0, True, True), np.float64, seq_len=12, seed=97, sizes=(6, 40, 11))


def test_bidirectional_h_n_is_not_output_last():
    lstm = lstmkit.LSTM(3, 4, bidirectional=True, seed=0)
    output, (h_n, _) = lstm(np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32))
    np.testing.assert_array_equal(h_n[-1], output[0, :, 4:])
    np.testing.assert_array_equal(h_n[-2], output[-1, :, :4])
    assert not np.allclose(h_n[-1], output[-1, :, 4:])
