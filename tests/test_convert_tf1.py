"""TF1's LSTMCell / LSTMBlockCell checkpoints: names, layout, forget_bias, peepholes and projection,
against TF1's published equations written out below in NumPy (no TensorFlow here)."""

import re

import numpy as np
import pytest

import lstmkit
from lstmkit.convert.spec import LayerSpec
from lstmkit.convert.tf1_layout import from_tf1_layer, from_tf1_weights, tf1_shapes, to_tf1_weights


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def tf1_cell_run(x, arrays, prefix, forget_bias):
    """LSTMCell.call (rnn_cell_impl.py) over x (T, N, I), zero initial state: the outputs m_t."""
    kernel, bias = arrays[f"{prefix}/kernel"], arrays[f"{prefix}/bias"]
    hidden = bias.shape[0] // 4
    projection = arrays.get(f"{prefix}/projection/kernel")
    zero = np.zeros(hidden)
    w_i, w_f, w_o = (arrays.get(f"{prefix}/{name}", zero) for name in ("w_i_diag", "w_f_diag", "w_o_diag"))
    c = np.zeros((x.shape[1], hidden))
    m = np.zeros((x.shape[1], kernel.shape[0] - x.shape[2]))
    outputs = []
    for x_t in x:
        i, j, f, o = np.split(np.concatenate([x_t, m], axis=1) @ kernel + bias, 4, axis=1)
        c = sigmoid(f + forget_bias + w_f * c) * c + sigmoid(i + w_i * c) * np.tanh(j)
        m = sigmoid(o + w_o * c) * np.tanh(c)
        if projection is not None:
            m = m @ projection
        outputs.append(m)
    return np.stack(outputs)


def tf1_scope(layers, bidirectional, layer, direction):
    """The cell scope TF1 gives each layer-direction (dynamic_rnn, MultiRNNCell, bidirectional_dynamic_rnn,
    stack_bidirectional_dynamic_rnn), written out independently of the module."""
    if not bidirectional:
        return "rnn/lstm_cell" if layers == 1 else f"rnn/multi_rnn_cell/cell_{layer}/lstm_cell"
    side = ("fw", "bw")[direction]
    if layers == 1:
        return f"bidirectional_rnn/{side}/lstm_cell"
    return f"stack_bidirectional_rnn/cell_{layer}/bidirectional_rnn/{side}/lstm_cell"


def tf1_network(arrays, x, layers, bidirectional, forget_bias):
    """The TF1 graph: each layer's bw cell reads the reversed sequence; layer k reads both directions of k-1."""
    inputs = x
    for layer in range(layers):
        outputs = []
        for direction in range(2 if bidirectional else 1):
            prefix = tf1_scope(layers, bidirectional, layer, direction)
            sequence = inputs if direction == 0 else inputs[::-1]
            result = tf1_cell_run(sequence, arrays, prefix, forget_bias)
            outputs.append(result if direction == 0 else result[::-1])
        inputs = np.concatenate(outputs, axis=-1)
    return inputs


def random_arrays(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return {name: rng.uniform(-0.6, 0.6, shape) for name, shape in shapes.items()}


def lstmkit_output(layer, x):
    with lstmkit.no_grad():
        return layer(x)[0]


CONFIGS = [  # (hidden_sizes, bidirectional, proj_size, peepholes, cell)
    ((4,), False, 0, False, "LSTMCell"),
    ((5, 3), False, 0, True, "LSTMCell"),
    ((4,), True, 2, False, "LSTMCell"),
    ((5, 4), True, 3, True, "LSTMCell"),
    ((4, 3, 4), False, 2, False, "LSTMCell"),
    ((4,), True, 0, True, "LSTMBlockCell"),
    ((3, 4), True, 0, False, "LSTMBlockCell"),
]


def spec_of(hidden_sizes, bidirectional, proj_size, peepholes, input_size=3):
    return LayerSpec("LSTM", input_size, hidden_sizes, bidirectional, proj_size, peepholes=peepholes)


@pytest.mark.parametrize("keep", [True, False])
@pytest.mark.parametrize("hidden_sizes,bidirectional,proj_size,peepholes,cell", CONFIGS)
def test_tf1_checkpoint_computes_what_lstmkit_computes(hidden_sizes, bidirectional, proj_size, peepholes, cell, keep):
    spec = spec_of(hidden_sizes, bidirectional, proj_size, peepholes)
    arrays = random_arrays(tf1_shapes(spec, cell=cell))
    x = np.random.default_rng(1).standard_normal((6, 2, 3))
    expected = tf1_network(arrays, x, spec.num_layers, bidirectional, forget_bias=0.75)
    layer = from_tf1_layer(arrays, spec, cell=cell, forget_bias=0.75, keep_forget_bias=keep, dtype=np.float64)
    assert layer.runtime_forget_bias == (0.75 if keep else 0.0)
    np.testing.assert_allclose(lstmkit_output(layer, x), expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("keep", [True, False])
@pytest.mark.parametrize("hidden_sizes,bidirectional,proj_size,peepholes,cell", CONFIGS)
def test_lstmkit_layer_runs_the_same_in_tf1(hidden_sizes, bidirectional, proj_size, peepholes, cell, keep):
    spec = spec_of(hidden_sizes, bidirectional, proj_size, peepholes)
    hidden = hidden_sizes[0] if len(set(hidden_sizes)) == 1 else list(hidden_sizes)
    layer = lstmkit.LSTM(
        3, hidden, len(hidden_sizes), bidirectional=bidirectional, proj_size=proj_size, peepholes=peepholes,
        runtime_forget_bias=0.25, dtype=np.float64, seed=4,
    )  # fmt: skip
    arrays = to_tf1_weights(layer.state_dict(), spec, cell=cell, keep_forget_bias=keep, runtime_forget_bias=0.25)
    assert set(arrays) == set(tf1_shapes(spec, cell=cell))
    x = np.random.default_rng(2).standard_normal((5, 3, 3))
    tf_forget_bias = 1.0 if keep else 0.0  # the TF cell's forget_bias the caller builds it with
    expected = tf1_network(arrays, x, spec.num_layers, bidirectional, tf_forget_bias)
    np.testing.assert_allclose(expected, lstmkit_output(layer, x), rtol=0, atol=1e-10)


@pytest.mark.parametrize("layers,bidirectional", [(1, False), (3, False), (1, True), (2, True)])
def test_variable_names_are_tf1s(layers, bidirectional):
    spec = LayerSpec("LSTM", 3, (4,) * layers, bidirectional, 2, peepholes=True)
    names = set(tf1_shapes(spec))
    expected = {
        f"{tf1_scope(layers, bidirectional, layer, direction)}/{variable}"
        for layer in range(layers)
        for direction in range(2 if bidirectional else 1)
        for variable in ("kernel", "bias", "projection/kernel", "w_i_diag", "w_f_diag", "w_o_diag")
    }
    assert names == expected
    scoped = set(tf1_shapes(spec, scope="encoder/rnn"))
    assert all(name.startswith("encoder/rnn/") for name in scoped) and len(scoped) == len(expected)


def test_stacked_names_spelled_out():
    assert list(tf1_shapes(LayerSpec("LSTM", 2, (3, 5)))) == [
        "rnn/multi_rnn_cell/cell_0/lstm_cell/kernel",
        "rnn/multi_rnn_cell/cell_0/lstm_cell/bias",
        "rnn/multi_rnn_cell/cell_1/lstm_cell/kernel",
        "rnn/multi_rnn_cell/cell_1/lstm_cell/bias",
    ]
    shapes = tf1_shapes(LayerSpec("LSTM", 2, (3, 5), bidirectional=True))
    assert shapes["stack_bidirectional_rnn/cell_1/bidirectional_rnn/bw/lstm_cell/kernel"] == (6 + 5, 20)


def test_hand_made_checkpoint_folded():
    """I = 1, H = 1; kernel rows (x, h), columns (i, j, f, o); forget_bias 1.0 folded into bias_ih's f."""
    arrays = {
        "rnn/lstm_cell/kernel": np.array([[0.125, 0.25, 0.375, 0.5], [0.625, 0.75, 0.875, 1.0]]),
        "rnn/lstm_cell/bias": np.array([0.5, -0.5, 0.25, -0.25]),
    }
    state = from_tf1_weights(arrays, LayerSpec("LSTM", 1, (1,)), forget_bias=1.0, keep_forget_bias=False)
    np.testing.assert_array_equal(state["weight_ih_l0"], [[0.125], [0.375], [0.25], [0.5]])
    np.testing.assert_array_equal(state["weight_hh_l0"], [[0.625], [0.875], [0.75], [1.0]])
    np.testing.assert_array_equal(state["bias_ih_l0"], [0.5, 1.25, -0.5, -0.25])
    np.testing.assert_array_equal(state["bias_hh_l0"], [0.0, 0.0, 0.0, 0.0])
    # one step by hand from x = 1, h = c = 0: c = σ(0.625) tanh(-0.25), h = σ(0.25) tanh(c)
    layer = from_tf1_layer(arrays, LayerSpec("LSTM", 1, (1,)), forget_bias=1.0, dtype=np.float64)
    c = sigmoid(0.125 + 0.5) * np.tanh(0.25 - 0.5)
    np.testing.assert_allclose(lstmkit_output(layer, np.ones((1, 1, 1))), [[[sigmoid(0.5 - 0.25) * np.tanh(c)]]])


def test_hand_made_checkpoint_projection_and_peepholes():
    """I = 1, H = 2, num_proj P = 1, use_peepholes; forget_bias kept (bias_ih = bias, reordered)."""
    prefix = "rnn/lstm_cell"
    arrays = {
        f"{prefix}/kernel": np.array([[1.0, 2, 3, 4, 5, 6, 7, 8], [9, 10, 11, 12, 13, 14, 15, 16]]),
        f"{prefix}/bias": np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]),
        f"{prefix}/projection/kernel": np.array([[0.5], [-0.25]]),
        f"{prefix}/w_i_diag": np.array([0.01, 0.02]),
        f"{prefix}/w_f_diag": np.array([0.03, 0.04]),
        f"{prefix}/w_o_diag": np.array([0.05, 0.06]),
    }
    state = from_tf1_weights(arrays, LayerSpec("LSTM", 1, (2,), proj_size=1, peepholes=True), keep_forget_bias=True)
    assert list(state) == [
        "weight_ih_l0",
        "weight_hh_l0",
        "bias_ih_l0",
        "bias_hh_l0",
        "weight_hr_l0",
        "weight_peephole_l0",
    ]
    np.testing.assert_array_equal(state["weight_ih_l0"], [[1], [2], [5], [6], [3], [4], [7], [8]])
    np.testing.assert_array_equal(state["weight_hh_l0"], [[9], [10], [13], [14], [11], [12], [15], [16]])
    np.testing.assert_array_equal(state["bias_ih_l0"], [0.1, 0.2, 0.5, 0.6, 0.3, 0.4, 0.7, 0.8])
    np.testing.assert_array_equal(state["bias_hh_l0"], np.zeros(8))
    np.testing.assert_array_equal(state["weight_hr_l0"], [[0.5, -0.25]])
    np.testing.assert_array_equal(state["weight_peephole_l0"], [0.01, 0.02, 0.03, 0.04, 0.05, 0.06])


@pytest.mark.parametrize("forget_bias", [1.0, 0.0, -0.3])
@pytest.mark.parametrize("hidden_sizes,bidirectional,proj_size,peepholes,cell", CONFIGS)
def test_round_trips_are_the_identity(hidden_sizes, bidirectional, proj_size, peepholes, cell, forget_bias):
    spec = spec_of(hidden_sizes, bidirectional, proj_size, peepholes)
    arrays = random_arrays(tf1_shapes(spec, cell=cell), seed=5)
    state = from_tf1_weights(arrays, spec, cell=cell, forget_bias=forget_bias, keep_forget_bias=True)
    back = to_tf1_weights(state, spec, cell=cell, forget_bias=forget_bias, runtime_forget_bias=forget_bias)
    assert list(back) == list(arrays)
    for name in arrays:
        np.testing.assert_array_equal(back[name], arrays[name], err_msg=name)
    # and lstmkit -> TF1 -> lstmkit, for a state with TF1's one bias (bias_hh zero)
    again = from_tf1_weights(back, spec, cell=cell, forget_bias=forget_bias, keep_forget_bias=True)
    assert list(again) == list(state)
    for name in state:
        np.testing.assert_array_equal(again[name], state[name], err_msg=name)


def test_folded_with_zero_forget_bias_round_trips_too():
    spec = LayerSpec("LSTM", 2, (3,), peepholes=True)
    arrays = random_arrays(tf1_shapes(spec), seed=6)
    state = from_tf1_weights(arrays, spec, forget_bias=0.0, keep_forget_bias=False)
    back = to_tf1_weights(state, spec, keep_forget_bias=False)
    for name in arrays:
        np.testing.assert_array_equal(back[name], arrays[name], err_msg=name)


def test_missing_and_misshaped_variables_are_named():
    spec = LayerSpec("LSTM", 3, (4,))
    arrays = random_arrays(tf1_shapes(spec))
    del arrays["rnn/lstm_cell/bias"]
    with pytest.raises(ValueError, match=re.escape("missing TF1 variable 'rnn/lstm_cell/bias' of shape (16,)")):
        from_tf1_weights(arrays, spec)
    arrays = random_arrays(tf1_shapes(spec))
    arrays["rnn/lstm_cell/kernel"] = np.zeros((6, 16))
    with pytest.raises(ValueError, match=re.escape("'rnn/lstm_cell/kernel': expected shape (7, 16), got (6, 16)")):
        from_tf1_weights(arrays, spec)
    arrays = random_arrays(tf1_shapes(spec, scope="encoder"))
    with pytest.raises(ValueError, match="unexpected TF1 variable 'encoder/lstm_cell/kernel'"):
        from_tf1_weights(arrays, spec)
    state = lstmkit.LSTM(3, 4, dtype=np.float64).state_dict()
    del state["bias_hh_l0"]
    with pytest.raises(ValueError, match=re.escape("missing weight 'bias_hh_l0' of shape (16,)")):
        to_tf1_weights(state, spec)


@pytest.mark.parametrize(
    "spec,cell,message",
    [
        (LayerSpec("LSTM", 3, (4,), layer_norm=True), "LSTMCell", "no layer norm"),
        (LayerSpec("LSTM", 3, (4,), bias=False), "LSTMCell", "always have a bias"),
        (LayerSpec("LSTM", 3, (4,), proj_size=2), "LSTMBlockCell", "LSTMBlockCell has no num_proj"),
        (LayerSpec("GRU", 3, (4,)), "LSTMCell", "reset gate"),
        (LayerSpec("RNN_TANH", 3, (4,)), "LSTMCell", "only LSTM layers"),
        (
            LayerSpec("LSTM", 3, (4,)),
            "BasicLSTMCell",
            "cell must be one of LSTMCell, LSTMBlockCell, got 'BasicLSTMCell'",
        ),
    ],
)
def test_what_tf1_cannot_express_is_refused(spec, cell, message):
    for convert in (
        lambda: tf1_shapes(spec, cell=cell),
        lambda: from_tf1_weights({}, spec, cell=cell),
        lambda: to_tf1_weights({}, spec, cell=cell),
    ):
        with pytest.raises(ValueError, match=message):
            convert()
