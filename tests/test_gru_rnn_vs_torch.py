"""lstmkit.GRU and RNN against torch: outputs, h_n and every gradient (the cells: test_cell_vs_torch.py)."""

import itertools

import numpy as np
import pytest
import torch
from conftest import assert_close
from layer_reference import compare_layer, make_layer, random_state

import lstmkit

KINDS = {"gru": (lstmkit.GRU, {}), "rnn_tanh": (lstmkit.RNN, {}), "rnn_relu": (lstmkit.RNN, {"nonlinearity": "relu"})}
OPTIONS = list(
    itertools.product(
        KINDS,
        [1, 2, 3],  # num_layers
        [True, False],  # bias
        [False, True],  # batch_first
        [False, True],  # bidirectional
        [True, False],  # batched
        [False, True],  # hx given
    )
)


def _case_id(option):
    kind, layers, bias, batch_first, bidir, batched, with_hx = option
    return (
        f"{kind}-L{layers}-{'bias' if bias else 'nobias'}-{'bf' if batch_first else 'tf'}-"
        f"{'bi' if bidir else 'uni'}-{'b' if batched else 'u'}-{'hx' if with_hx else 'nohx'}"
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("option", OPTIONS, ids=[_case_id(o) for o in OPTIONS])
def test_layer_matches_torch(option, dtype):
    kind, layers, bias, batch_first, bidirectional, batched, with_hx = option
    index = OPTIONS.index(option)
    rng = np.random.default_rng(index)
    seq_len, batch = [1, 30, 2, 17, 9, 5][index % 6], 1 + index % 5
    layer_class, extra = KINDS[kind]
    config = dict(input_size=4, hidden_size=5, num_layers=layers, bias=bias, **extra)
    config.update(batch_first=batch_first, bidirectional=bidirectional)
    ours, reference = make_layer(layer_class, config, dtype, seed=index)
    x_shape = (seq_len, 4) if not batched else (batch, seq_len, 4) if batch_first else (seq_len, batch, 4)
    x = rng.standard_normal(x_shape).astype(dtype)
    hx = random_state(ours, batch, rng, dtype, batched) if with_hx else None
    compare_layer(ours, reference, x, hx, dtype, rng)


@pytest.mark.parametrize("kind", KINDS)
def test_larger_layer_float32_matches_torch(kind):
    """Layers of realistic size (H_in=28, H=128, N=16, L=28), float32, forward and backward."""
    layer_class, extra = KINDS[kind]
    config = dict(input_size=28, hidden_size=128, num_layers=2, batch_first=True, bidirectional=True, **extra)
    ours, reference = make_layer(layer_class, config, np.float32, seed=5)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((16, 28, 28)).astype(np.float32)
    compare_layer(ours, reference, x, random_state(ours, 16, rng, np.float32), np.float32, rng)


def test_parameters_initialisation_and_repr_follow_torch():
    gru = lstmkit.GRU(3, 4, num_layers=2, bidirectional=True, seed=0)
    reference = torch.nn.GRU(3, 4, num_layers=2, bidirectional=True)
    expected = {n: tuple(p.shape) for n, p in reference.named_parameters()}
    assert {n: tuple(p.shape) for n, p in gru.named_parameters()} == expected
    bound = 1 / np.sqrt(4)
    assert all(np.abs(p.data).max() <= bound for p in gru.parameters())
    assert lstmkit.count_parameters(gru) == sum(p.numel() for p in reference.parameters())
    rnn = lstmkit.RNN(3, 4, 2, "relu", bias=False)
    assert (rnn.mode, rnn.nonlinearity, repr(rnn)) == (
        "RNN_RELU",
        "relu",
        "RNN(3, 4, num_layers=2, bias=False, nonlinearity='relu')",
    )
    assert (gru.mode, lstmkit.LSTM(3, 4).mode, lstmkit.RNN(3, 4).mode) == ("GRU", "LSTM", "RNN_TANH")
    assert repr(lstmkit.RNNCell(3, 4, nonlinearity="relu")) == "RNNCell(3, 4, nonlinearity='relu')"
    state = {name: value * 0 + 0.5 for name, value in gru.state_dict().items()}
    gru.load_state_dict(state)
    assert all(np.all(p.data == 0.5) for p in gru.parameters())


def test_dropout_eval_equals_torch_and_train_is_reproducible():
    config = dict(input_size=3, hidden_size=6, num_layers=3, bidirectional=True, dropout=0.5)
    ours, reference = make_layer(lstmkit.GRU, config, np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((6, 2, 3))
    ours.eval(), reference.eval()
    output, h_n = ours(x)
    output_t, h_n_t = reference(torch.tensor(x))
    assert_close(output, output_t.detach().numpy(), np.float64, "output")
    assert_close(h_n, h_n_t.detach().numpy(), np.float64, "h_n")
    first, second = lstmkit.RNN(**config, seed=3), lstmkit.RNN(**config, seed=3)
    np.testing.assert_array_equal(first(x)[0], second(x)[0])
    assert not np.array_equal(first(x)[0], first(x)[0])


def test_no_grad_keeps_nothing_and_gives_the_same_numbers():
    gru = lstmkit.GRU(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    with lstmkit.no_grad():
        output, h_n = gru(x)
    assert gru._saved == []
    output2, h_n2 = gru(x)
    np.testing.assert_array_equal(output, output2)
    np.testing.assert_array_equal(h_n, h_n2)
