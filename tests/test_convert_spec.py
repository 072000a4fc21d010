"""lstmkit.convert's shared core: LayerSpec refuses what no layer can be, state_of folds a runtime
forget bias so that every converter's output computes what the layer computes, and the converters
name what is wrong with their arguments."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lstmkit
from lstmkit.convert import (
    LayerSpec,
    from_haste_weights,
    from_keras_weights,
    from_onnx_weights,
    state_of,
    to_onnx_weights,
    to_tf1_weights,
    to_torch_state_dict,
)


@pytest.mark.parametrize(
    "arguments,error,message",
    [
        (("LSTM", 3, "12"), TypeError, r"hidden_size\[0\] must be an integer, got '12'"),
        (("LSTM", 3, 4.0), TypeError, r"hidden_size\[0\] must be an integer, got 4.0"),
        (("LSTM", 3, (4, 0)), ValueError, r"hidden_size\[1\] must be >= 1"),
        (("LSTM", -3, 4), ValueError, "input_size must be >= 1"),
        (("LSTM", 3, 4, "no"), TypeError, "bidirectional must be True or False"),
        (("LSTM", 3, 4, False, 4), ValueError, "proj_size must be smaller than hidden_size"),
        (("GRU", 3, 4, False, 2), ValueError, "LSTM options"),
        (("LSTM", 3, 4, False, 0, True, False, False, "sum"), ValueError, "needs bidirectional=True"),
        (("LSTM", 3, 4, True, 0, True, False, False, "max"), ValueError, "merge_mode must be one of"),
        (("CELL", 3, 4), ValueError, "mode must be one of"),
    ],
)
def test_layer_spec_refuses_what_no_layer_can_be(arguments, error, message):
    with pytest.raises(error, match=message):
        LayerSpec(*arguments)


def test_layer_spec_of_a_layer_and_back():
    layer = lstmkit.LSTM(3, [5, 4], num_layers=2, bidirectional=True, proj_size=2, merge_mode="ave", peepholes=True)
    spec = LayerSpec.of(layer)
    assert spec == LayerSpec("LSTM", 3, (5, 4), True, 2, True, True, False, "ave")
    assert spec.shapes() == {name: value.shape for name, value in layer.state_dict().items()}
    rebuilt = spec.build(layer.state_dict(), dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    np.testing.assert_allclose(rebuilt(x)[0], layer(x)[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("bias", [True, False])
def test_state_of_folds_the_runtime_forget_bias_so_torch_computes_the_same(bias):
    layer = lstmkit.LSTM(3, 4, num_layers=2, bidirectional=True, bias=bias, runtime_forget_bias=1.0, seed=0)
    with pytest.raises(ValueError, match="state_of"):
        LayerSpec.of(layer)
    spec, state = state_of(layer)
    assert spec.bias  # a layer without biases gets biases to hold the constant
    reference = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True).double()
    reference.load_state_dict(to_torch_state_dict({k: v.astype(np.float64) for k, v in state.items()}, spec))
    x = np.random.default_rng(1).standard_normal((5, 2, 3))
    with torch.no_grad():
        expected = reference(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(expected, layer(x.astype(np.float32))[0], rtol=0, atol=1e-5)


def test_converters_name_wrong_arguments():
    spec = LayerSpec("LSTM", 3, (4, 4))
    weights = to_onnx_weights(spec.build().state_dict(), spec)
    with pytest.raises(TypeError, match="expected a list of 2 dicts of arrays"):
        from_onnx_weights(None, spec)
    with pytest.raises(TypeError, match="expected a list of 2 dicts of arrays"):
        from_onnx_weights(weights[0], spec)
    with pytest.raises(ValueError, match="expected 2 layers of weights, got 1"):
        from_onnx_weights(weights[:1], spec)
    with pytest.raises(TypeError, match="expected a LayerSpec"):
        to_onnx_weights(spec.build().state_dict(), "LSTM")
    with pytest.raises(TypeError, match="expected a list of 1 dicts"):
        from_haste_weights(None, LayerSpec("LSTM", 3, 4))
    with pytest.raises(ValueError, match="expected an array of shape"):
        from_keras_weights([[1.0, [2.0, 3.0]], np.zeros((4, 16)), np.zeros(16)], LayerSpec("LSTM", 3, 4))


def test_tf1_refuses_merged_directions():
    spec = LayerSpec("LSTM", 3, (4, 4), bidirectional=True, merge_mode="sum")
    with pytest.raises(ValueError, match="concatenate the directions"):
        to_tf1_weights(spec.build().state_dict(), spec)
