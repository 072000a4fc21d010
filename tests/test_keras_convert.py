"""to_keras / to_torch: the PyTorch-style layers and their Keras-style twins give the same numbers."""

import numpy as np
import pytest

import lstmkit
import lstmkit.keras as lk
from lstmkit.keras._formats import GRU_FORMAT


def _states(state):
    return list(state) if isinstance(state, tuple) else [state]


LAYERS = [
    lambda **o: lstmkit.LSTM(3, 4, batch_first=True, **o),
    lambda **o: lstmkit.GRU(3, 4, batch_first=True, **o),
    lambda **o: lstmkit.RNN(3, 4, batch_first=True, **o),
    lambda **o: lstmkit.RNN(3, 4, nonlinearity="relu", batch_first=True, **o),
]


@pytest.mark.parametrize("make", LAYERS)
@pytest.mark.parametrize("bidirectional,bias", [(False, True), (True, True), (False, False)])
def test_torch_style_to_keras_and_back_give_identical_outputs(make, bidirectional, bias):
    rng = np.random.default_rng(0)
    torch_style = make(bidirectional=bidirectional, bias=bias, seed=3, dtype=np.float64)
    x = rng.standard_normal((2, 5, 3))
    output, state = torch_style(x)
    twin = lk.to_keras(torch_style)
    keras_output, *keras_states = twin(x)
    np.testing.assert_allclose(keras_output, output, rtol=0, atol=1e-12)
    torch_states = _states(state)  # (D, N, U) per part; keras: forward's parts then backward's
    expected_states = [part[d] for d in range(torch_style.num_directions) for part in torch_states]
    for ours, expected in zip(keras_states, expected_states, strict=True):
        np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12)
    back = lk.to_torch(twin)
    back_output, back_state = back(x)
    np.testing.assert_allclose(back_output, output, rtol=0, atol=1e-12)
    for ours, expected in zip(_states(back_state), torch_states):
        np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12)


def test_keras_layer_to_torch_keeps_gradients_equal():
    rng = np.random.default_rng(1)
    layer = lk.GRU(4, return_sequences=True, dtype=np.float64, seed=0)
    x = rng.standard_normal((2, 6, 3))
    output = layer(x)
    twin = lk.to_torch(layer)
    twin_output, _ = twin(x)
    np.testing.assert_allclose(twin_output, output, rtol=0, atol=1e-12)
    dout = rng.standard_normal(output.shape)
    np.testing.assert_allclose(twin.backward(dout)[0], layer.backward(dout), rtol=0, atol=1e-12)
    torch_grads = twin._kind.weights(**{name[:-3]: p.grad for name, p in twin.named_parameters()})
    for name, expected in zip(["kernel", "recurrent_kernel", "bias"], GRU_FORMAT.keras_weights(torch_grads)):
        np.testing.assert_allclose(getattr(layer, name).grad, expected, rtol=0, atol=1e-12, err_msg=name)


@pytest.mark.parametrize(
    "layer,message",
    [
        (lstmkit.LSTM(3, 4, num_layers=2), "num_layers=1"),
        (lstmkit.LSTM(3, 4, proj_size=2), "proj_size=0"),
    ],
)
def test_to_keras_refuses_what_keras_has_not(layer, message):
    with pytest.raises(ValueError, match=message):
        lk.to_keras(layer)


def test_to_keras_refuses_recurrent_dropout_whose_masks_differ():
    with pytest.raises(ValueError, match=r"^to_keras\(GRU\): Keras' recurrent_dropout draws one mask per gate.*"
                       r"recurrent_dropout=0.2 has no Keras twin"):  # fmt: skip
        lk.to_keras(lstmkit.GRU(3, 4, recurrent_dropout=0.2))
    twin = lk.to_keras(lstmkit.LSTM(3, 4, return_states="all"))  # not carried over: Keras returns its own
    assert isinstance(twin, lk.LSTM)


@pytest.mark.parametrize("merge_mode", ["sum", "mul", "ave"])
@pytest.mark.parametrize("keras_class", [lk.LSTM, lk.GRU, lk.SimpleRNN])
def test_a_merged_bidirectional_converts_to_a_layer_with_that_merge_mode(merge_mode, keras_class):
    rng = np.random.default_rng(2)
    keras_style = lk.Bidirectional(
        keras_class(4, return_sequences=True, return_state=True, dtype=np.float64, seed=1), merge_mode=merge_mode
    )
    x = rng.standard_normal((2, 5, 3))
    keras_output, *keras_states = keras_style(x)
    twin = lk.to_torch(keras_style)
    assert twin.merge_mode == merge_mode and twin.bidirectional and twin.batch_first
    output, state = twin(x)
    np.testing.assert_allclose(output, keras_output, rtol=0, atol=1e-12)
    expected = [part[d] for d in range(2) for part in _states(state)]  # keras: forward's parts then backward's
    for ours, theirs in zip(keras_states, expected, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    back = lk.to_keras(twin)
    assert back.merge_mode == merge_mode
    np.testing.assert_allclose(back(x)[0], keras_output, rtol=0, atol=1e-12)


def test_to_torch_refuses_go_backwards_and_unmerged_directions():
    layer = lk.LSTM(2, go_backwards=True)
    layer.build((None, None, 3))
    with pytest.raises(ValueError, match="go_backwards"):
        lk.to_torch(layer)
    unmerged = lk.Bidirectional(lk.LSTM(2), merge_mode=None)
    unmerged.build((None, None, 3))
    with pytest.raises(ValueError, match=r"merge_mode=None returns the two directions apart"):
        lk.to_torch(unmerged)
