"""haste's LSTM, GRU and LayerNormLSTM parameters, against haste's own conversion and forward code
(frameworks/pytorch/lstm.py, gru.py, layer_norm_lstm.py) written out below in NumPy."""

import re

import numpy as np
import pytest

import lstmkit
from lstmkit.convert.haste_layout import from_haste_weights, haste_class, haste_shapes, to_haste_weights
from lstmkit.convert.spec import LayerSpec


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def chunk_order(w, source, target):
    """haste's reorder_weights: chunk the last axis by ``source`` gate names, concatenate in ``target``'s."""
    blocks = dict(zip(source, np.split(w, len(source), axis=-1)))
    return np.concatenate([blocks[name] for name in target], axis=-1)


# haste's to_native_weights / from_native_weights (lstm.py, gru.py), in NumPy
def haste_lstm_to_native(kernel, recurrent_kernel, bias):
    half_bias = chunk_order(bias, "igfo", "ifgo") / 2.0
    return chunk_order(kernel, "igfo", "ifgo").T, chunk_order(recurrent_kernel, "igfo", "ifgo").T, half_bias, half_bias


def haste_lstm_from_native(weight_ih, weight_hh, bias_ih, bias_hh):
    return [chunk_order(w, "ifgo", "igfo") for w in (weight_ih.T, weight_hh.T, bias_ih + bias_hh)]


def haste_gru_to_native(kernel, recurrent_kernel, bias, recurrent_bias):
    kernels = [chunk_order(w, "zrn", "rzn").T for w in (kernel, recurrent_kernel)]
    return *kernels, chunk_order(bias, "zrn", "rzn"), chunk_order(recurrent_bias, "zrn", "rzn")


def haste_gru_from_native(weight_ih, weight_hh, bias_ih, bias_hh):
    return [chunk_order(w, "rzn", "zrn") for w in (weight_ih.T, weight_hh.T, bias_ih, bias_hh)]


def layer_norm(a, gain, shift=0.0):
    centred = a - a.mean(axis=-1, keepdims=True)
    return centred / np.sqrt((centred**2).mean(axis=-1, keepdims=True) + 1e-5) * gain + shift


# haste's LSTMScript, GRUScript and LayerNormLSTMScript (zero initial state, no zoneout), in NumPy
def haste_lstm_run(x, p):
    hidden = p["recurrent_kernel"].shape[0]
    h, c = np.zeros((x.shape[1], hidden)), np.zeros((x.shape[1], hidden))
    norm = "gamma" in p
    wx = layer_norm(x @ p["kernel"], p["gamma"][0]) if norm else x @ p["kernel"]
    outputs = []
    for wx_t in wx:
        rh = h @ p["recurrent_kernel"]
        i, g, f, o = np.split((layer_norm(rh, p["gamma"][1]) if norm else rh) + wx_t + p["bias"], 4, axis=1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(layer_norm(c, p["gamma_h"], p["beta_h"]) if norm else c)
        outputs.append(h)
    return np.stack(outputs)


def haste_gru_run(x, p):
    h = np.zeros((x.shape[1], p["recurrent_kernel"].shape[0]))
    outputs = []
    for wx_t in x @ p["kernel"] + p["bias"]:
        vx, vh = np.split(wx_t, 3, axis=1), np.split(h @ p["recurrent_kernel"] + p["recurrent_bias"], 3, axis=1)
        z, r = sigmoid(vx[0] + vh[0]), sigmoid(vx[1] + vh[1])
        h = z * h + (1 - z) * np.tanh(vx[2] + r * vh[2])
        outputs.append(h)
    return np.stack(outputs)


def haste_stack_run(x, layers, mode):
    for params in layers:
        x = (haste_gru_run if mode == "GRU" else haste_lstm_run)(x, params)
    return x


def random_haste(spec, seed=0):
    rng = np.random.default_rng(seed)
    layers = [
        {k: rng.uniform(-0.7, 0.7, s) for k, s in haste_shapes(spec, k_).items()} for k_ in range(spec.num_layers)
    ]
    for params in layers:  # gains near haste's initial ones
        for name in ("gamma", "gamma_h"):
            if name in params:
                params[name] += 1.0
    return layers


SPECS = [
    LayerSpec("LSTM", 3, (4,)),
    LayerSpec("LSTM", 3, (5, 4)),
    LayerSpec("GRU", 3, (4,)),
    LayerSpec("GRU", 3, (3, 5)),
    LayerSpec("LSTM", 3, (4,), layer_norm=True),
    LayerSpec("LSTM", 3, (4, 3), layer_norm=True),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{haste_class(s)}{s.hidden_sizes}")
def test_haste_layers_compute_what_lstmkit_computes(spec):
    layers = random_haste(spec)
    x = np.random.default_rng(1).standard_normal((6, 2, 3))
    layer = spec.build(from_haste_weights(layers, spec), dtype=np.float64)
    with lstmkit.no_grad():
        actual = layer(x)[0]
    np.testing.assert_allclose(actual, haste_stack_run(x, layers, spec.mode), rtol=0, atol=1e-10)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{haste_class(s)}{s.hidden_sizes}")
def test_lstmkit_layers_run_the_same_in_haste(spec):
    layer = spec.build(dtype=np.float64, seed=3)
    state = layer.state_dict()
    if spec.layer_norm:  # move the norms' gains and shifts off their initial values
        rng = np.random.default_rng(4)
        state = {k: v + rng.uniform(-0.3, 0.3, v.shape) if "layer_norm" in k else v for k, v in state.items()}
        layer.load_state_dict(state)
    x = np.random.default_rng(2).standard_normal((5, 3, 3))
    with lstmkit.no_grad():
        expected = layer(x)[0]
    np.testing.assert_allclose(
        haste_stack_run(x, to_haste_weights(state, spec), spec.mode), expected, rtol=0, atol=1e-10
    )


@pytest.mark.parametrize("spec", [SPECS[0], SPECS[2]], ids=["LSTM", "GRU"])
def test_conversion_is_hastes_to_native_and_from_native(spec):
    params = random_haste(spec)[0]
    to_native, from_native = (
        (haste_lstm_to_native, haste_lstm_from_native)
        if spec.mode == "LSTM"
        else (haste_gru_to_native, haste_gru_from_native)
    )
    state = from_haste_weights([params], spec)
    native = to_native(*params.values())
    for name, array in zip(("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"), native):
        np.testing.assert_array_equal(state[name], array, err_msg=name)
    torch_state = lstmkit.LSTM(3, 4, seed=5, dtype=np.float64) if spec.mode == "LSTM" else lstmkit.GRU(3, 4, seed=5)
    torch_state = torch_state.state_dict()
    ours = to_haste_weights(torch_state, spec)[0]
    for name, array in zip(params, from_native(*torch_state.values())):
        np.testing.assert_array_equal(ours[name], array, err_msg=name)


def test_hand_made_haste_weights():
    """I = 1, H = 1: LSTM columns i, g, f, o; GRU columns z, r, n."""
    lstm = from_haste_weights(
        [
            {
                "kernel": np.array([[1.0, 2, 3, 4]]),
                "recurrent_kernel": np.array([[5.0, 6, 7, 8]]),
                "bias": np.array([0.5, 1, 1.5, 2]),
            }
        ],
        LayerSpec("LSTM", 1, (1,)),
    )
    np.testing.assert_array_equal(lstm["weight_ih_l0"], [[1], [3], [2], [4]])
    np.testing.assert_array_equal(lstm["weight_hh_l0"], [[5], [7], [6], [8]])
    np.testing.assert_array_equal(lstm["bias_ih_l0"], [0.25, 0.75, 0.5, 1.0])
    np.testing.assert_array_equal(lstm["bias_hh_l0"], [0.25, 0.75, 0.5, 1.0])
    gru = from_haste_weights(
        [
            {
                "kernel": np.array([[1.0, 2, 3]]),
                "recurrent_kernel": np.array([[4.0, 5, 6]]),
                "bias": np.array([0.1, 0.2, 0.3]),
                "recurrent_bias": np.array([0.4, 0.5, 0.6]),
            }
        ],
        LayerSpec("GRU", 1, (1,)),
    )
    np.testing.assert_array_equal(gru["weight_ih_l0"], [[2], [1], [3]])
    np.testing.assert_array_equal(gru["weight_hh_l0"], [[5], [4], [6]])
    np.testing.assert_array_equal(gru["bias_ih_l0"], [0.2, 0.1, 0.3])
    np.testing.assert_array_equal(gru["bias_hh_l0"], [0.5, 0.4, 0.6])
    norm = from_haste_weights(
        [
            {
                "kernel": np.array([[1.0, 2, 3, 4]]),
                "recurrent_kernel": np.array([[5.0, 6, 7, 8]]),
                "bias": np.array([0.5, 1, 1.5, 2]),
                "gamma": np.array([[1.0, 2, 3, 4], [5, 6, 7, 8]]),
                "gamma_h": np.array([0.5]),
                "beta_h": np.array([-0.5]),
            }
        ],
        LayerSpec("LSTM", 1, (1,), layer_norm=True),
    )
    np.testing.assert_array_equal(norm["layer_norm_weight_ih_l0"], [1, 3, 2, 4])
    np.testing.assert_array_equal(norm["layer_norm_weight_hh_l0"], [5, 7, 6, 8])
    np.testing.assert_array_equal(norm["layer_norm_weight_c_l0"], [0.5])
    np.testing.assert_array_equal(norm["layer_norm_bias_c_l0"], [-0.5])


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{haste_class(s)}{s.hidden_sizes}")
def test_round_trips_are_the_identity(spec):
    layers = random_haste(spec, seed=7)
    back = to_haste_weights(from_haste_weights(layers, spec), spec)
    assert [list(params) for params in back] == [list(params) for params in layers]
    for given, returned in zip(layers, back):
        for name in given:
            np.testing.assert_array_equal(returned[name], given[name], err_msg=name)
    state = from_haste_weights(layers, spec)  # bias_ih == bias_hh: haste's split, which comes back exactly
    again = from_haste_weights(to_haste_weights(state, spec), spec)
    for name in state:
        np.testing.assert_array_equal(again[name], state[name], err_msg=name)


def test_haste_class():
    assert [haste_class(spec) for spec in SPECS[::2]] == ["LSTM", "GRU", "LayerNormLSTM"]


def test_missing_and_misshaped_parameters_are_named():
    spec = LayerSpec("GRU", 3, (4,))
    params = random_haste(spec)[0]
    del params["recurrent_bias"]
    with pytest.raises(ValueError, match=re.escape("layer 0: missing haste parameter 'recurrent_bias' of shape (12,)")):
        from_haste_weights([params], spec)
    params = random_haste(spec)[0]
    params["kernel"] = params["kernel"].T
    with pytest.raises(ValueError, match=re.escape("haste parameter 'kernel': expected shape (3, 12), got (12, 3)")):
        from_haste_weights([params], spec)
    with pytest.raises(TypeError, match=re.escape("expected a list of 1 dicts of arrays (one per layer), got dict")):
        from_haste_weights(random_haste(spec)[0], spec)
    with pytest.raises(ValueError, match="expected 2 layers of weights, got 1"):
        from_haste_weights(random_haste(spec), LayerSpec("GRU", 3, (4, 4)))
    state = lstmkit.GRU(3, 4).state_dict()
    state["weight_hh_l0"] = state["weight_hh_l0"][:, :2]
    with pytest.raises(ValueError, match=re.escape("weight 'weight_hh_l0': expected shape (12, 4), got (12, 2)")):
        to_haste_weights(state, spec)


@pytest.mark.parametrize(
    "spec,message",
    [
        (LayerSpec("LSTM", 3, (4,), bidirectional=True), "run one direction"),
        (LayerSpec("LSTM", 3, (4,), proj_size=2), "no haste layer has a projection"),
        (LayerSpec("LSTM", 3, (4,), peepholes=True), "no haste layer has peepholes"),
        (LayerSpec("LSTM", 3, (4,), bias=False, layer_norm=True), "always have biases"),
        (LayerSpec("RNN_TANH", 3, (4,)), "got mode 'RNN_TANH'"),
    ],
)
def test_what_haste_cannot_express_is_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        to_haste_weights({}, spec)
    with pytest.raises(ValueError, match=message):
        from_haste_weights([{}] * spec.num_layers, spec)
