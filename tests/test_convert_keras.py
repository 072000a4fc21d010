"""lstmkit.convert.keras_layout against Keras 3 itself (torch backend): a keras.Sequential of stacked
LSTM, GRU, SimpleRNN (tanh, relu) layers, Bidirectional or not, with or without bias, holding the
converted weights computes lstmkit's outputs, and Keras' own weights converted back run in lstmkit."""

import functools
import itertools
import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from lstmkit.convert.keras_layout import from_keras_weights, keras_shapes, to_keras_weights  # noqa: E402
from lstmkit.convert.spec import LayerSpec  # noqa: E402

# mode -> (Keras class, its options)
KERAS_LAYERS = {
    "LSTM": (keras.layers.LSTM, {}),
    "GRU": (keras.layers.GRU, {}),
    "RNN_TANH": (keras.layers.SimpleRNN, {}),
    "RNN_RELU": (keras.layers.SimpleRNN, {"activation": "relu"}),
}
FEATURES, UNITS = 3, 4
CONFIGS = list(itertools.product(KERAS_LAYERS, [1, 2], [False, True], [True, False]))  # mode, layers, bidi, bias
IDS = [
    f"{mode}-{layers}layers-{'bidi' if bidi else 'uni'}-{'bias' if bias else 'nobias'}"
    for mode, layers, bidi, bias in CONFIGS
]


def tolerance(mode):
    """1e-10, but 1e-6 for SimpleRNN: Keras' own float64 SimpleRNN (ops.matmul on the torch backend) agrees with
    a NumPy loop of its equations only to ~1.4e-7 here, while a wrong layout is off by ~0.1."""
    return 1e-6 if mode.startswith("RNN") else 1e-10


def spec_of(mode, layers, bidirectional, bias):
    return LayerSpec(mode, FEATURES, (UNITS,) * layers, bidirectional, bias=bias)


@functools.cache
def keras_model(mode, layers, bidirectional, bias):
    """A float64 keras.Sequential of ``layers`` stacked recurrent layers returning sequences (built once)."""
    keras_class, options = KERAS_LAYERS[mode]
    stack = [keras.Input((None, FEATURES), dtype="float64")]
    for _ in range(layers):
        layer = keras_class(UNITS, return_sequences=True, use_bias=bias, dtype="float64", **options)
        stack.append(keras.layers.Bidirectional(layer, dtype="float64") if bidirectional else layer)
    return keras.Sequential(stack)


def keras_output(model, x):
    return np.asarray(model(x).detach().cpu())


def inputs(seed):
    return np.random.default_rng(seed).standard_normal((2, 5, FEATURES))


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_keras_holding_converted_weights_computes_lstmkit_outputs(config):
    spec = spec_of(*config)
    layer = spec.build(batch_first=True, dtype=np.float64, seed=7)
    rng = np.random.default_rng(1)
    state = {name: rng.uniform(-0.7, 0.7, array.shape) for name, array in layer.state_dict().items()}
    layer.load_state_dict(state)  # random biases, bias_hh too: the summed bias is exercised
    model = keras_model(*config)
    weights = to_keras_weights(state, spec)
    assert [w.shape for w in weights] == [tuple(w.shape) for w in model.get_weights()]
    model.set_weights(weights)
    x = inputs(2)
    expected, _ = layer(x)
    actual = keras_output(model, x)
    assert actual.dtype == np.float64 and actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tolerance(spec.mode))


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_keras_weights_converted_back_run_in_lstmkit_and_round_trip_exactly(config):
    spec = spec_of(*config)
    model = keras_model(*config)
    rng = np.random.default_rng(3)
    keras_weights = [rng.uniform(-0.7, 0.7, w.shape) for w in model.get_weights()]
    model.set_weights(keras_weights)
    assert list(keras_shapes(spec).values()) == [w.shape for w in keras_weights]
    state = from_keras_weights(keras_weights, spec)
    assert list(state) == list(spec.shapes())  # PyTorch's names and order
    layer = spec.build(state, batch_first=True, dtype=np.float64)
    x = inputs(4)
    np.testing.assert_allclose(layer(x)[0], keras_output(model, x), rtol=0, atol=tolerance(spec.mode))
    # Keras -> PyTorch -> Keras is the identity, bit for bit
    for before, after in zip(keras_weights, to_keras_weights(state, spec), strict=True):
        np.testing.assert_array_equal(after, before)


@pytest.mark.parametrize("mode", KERAS_LAYERS)
def test_torch_to_keras_and_back_moves_a_summed_bias_into_bias_ih(mode):
    """PyTorch -> Keras -> PyTorch is the identity for the GRU (two biases); for the LSTM and SimpleRNN,
    whose Keras bias is bias_ih + bias_hh, the sum comes back in bias_ih and bias_hh is zero."""
    spec = spec_of(mode, 2, True, True)
    state = spec.build(dtype=np.float64, seed=5).state_dict()
    back = from_keras_weights(to_keras_weights(state, spec), spec)
    for name, array in state.items():
        if mode == "GRU" or not name.startswith("bias"):
            np.testing.assert_array_equal(back[name], array, err_msg=name)
        elif name.startswith("bias_ih"):
            np.testing.assert_array_equal(back[name], array + state[name.replace("bias_ih", "bias_hh")])
        else:
            np.testing.assert_array_equal(back[name], np.zeros_like(array))


def test_float32_weights_stay_float32_and_match_keras_to_1e_5():
    spec = spec_of("LSTM", 1, False, True)
    layer = spec.build(batch_first=True, seed=0)  # float32
    weights = to_keras_weights(layer.state_dict(), spec)
    assert all(w.dtype == np.float32 for w in weights)
    model = keras.Sequential([keras.Input((None, FEATURES)), keras.layers.LSTM(UNITS, return_sequences=True)])
    model.set_weights(weights)
    x = inputs(6).astype(np.float32)
    np.testing.assert_allclose(keras_output(model, x), layer(x)[0], rtol=0, atol=1e-5)


# ---- errors ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "spec,match",
    [
        (LayerSpec("LSTM", 3, (4,), proj_size=2), "no proj_size"),
        (LayerSpec("LSTM", 3, (4,), layer_norm=True), "no layer_norm"),
        (LayerSpec("LSTM", 3, (4,), peepholes=True, layer_norm=True), "no layer_norm and no peepholes"),
    ],
)
def test_what_keras_lacks_is_refused_both_ways(spec, match):
    state = spec.build(seed=0).state_dict()
    with pytest.raises(ValueError, match=match):
        to_keras_weights(state, spec)
    with pytest.raises(ValueError, match=match):
        from_keras_weights([], spec)


def test_gru_reset_after_false_has_one_bias_per_layer_direction():
    """Converted both ways (against Keras: tests/test_keras_gru_reset_before.py)."""
    spec = spec_of("GRU", 1, True, True)
    state = spec.build(seed=0).state_dict()
    weights = to_keras_weights(state, spec, reset_after=False)
    assert [w.shape for w in weights] == list(keras_shapes(spec, reset_after=False).values())
    assert [w.shape for w in weights] == [(3, 12), (4, 12), (12,)] * 2
    assert len(to_keras_weights(state, spec, reset_after=True)) == 6


def test_a_mis_shaped_keras_weight_is_named_with_both_shapes():
    spec = spec_of("LSTM", 2, True, True)
    weights = [np.zeros(shape) for shape in keras_shapes(spec).values()]
    weights[7] = np.zeros((4, 8))  # layer 1's forward recurrent_kernel is (4, 16)
    with pytest.raises(
        ValueError, match=r"\[7\] layer 1 forward recurrent_kernel'.*expected shape \(4, 16\), got \(4, 8\)"
    ):
        from_keras_weights(weights, spec)


def test_a_keras_bias_of_reset_after_false_is_named():
    spec = spec_of("GRU", 1, False, True)
    weights = [np.zeros((3, 12)), np.zeros((4, 12)), np.zeros(12)]  # reset_after=False's one bias
    with pytest.raises(ValueError, match=r"layer 0 forward bias'.*expected shape \(2, 12\), got \(12,\)"):
        from_keras_weights(weights, spec)


def test_a_wrong_number_of_keras_weights_lists_what_is_expected():
    spec = spec_of("GRU", 1, True, False)
    with pytest.raises(ValueError, match=r"expected 4 arrays \(\[0\] layer 0 forward kernel, .*backward.*\), got 2"):
        from_keras_weights([np.zeros((3, 12)), np.zeros((4, 12))], spec)
    with pytest.raises(TypeError, match="expected a list of arrays"):
        from_keras_weights({"kernel": np.zeros((3, 12))}, spec)


def test_a_state_that_does_not_fit_the_spec_is_refused_naming_the_weight():
    spec = spec_of("RNN_TANH", 1, False, True)
    state = spec.build(seed=0).state_dict()
    state["weight_hh_l0"] = np.zeros((4, 3))
    del state["bias_hh_l0"]
    with pytest.raises(ValueError, match=r"missing weight 'bias_hh_l0'.*'weight_hh_l0': expected shape \(4, 4\)"):
        to_keras_weights(state, spec)
