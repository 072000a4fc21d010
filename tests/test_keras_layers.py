"""lstmkit.keras.LSTM, GRU, SimpleRNN against Keras 3 (torch backend) with the same weights."""

import itertools

import numpy as np
import pytest
from keras_reference import KINDS, MASKS, as_list, keras_call, make_pair
from test_gradcheck import numeric_gradient

import lstmkit
import lstmkit.keras as lk
from lstmkit.ops.gru import gru_backward, gru_forward
from lstmkit.ops.recurrence import padding_mask

SIZES = {"LSTM": (3, 4), "GRU": (1, 5), "SimpleRNN": (6, 2), "SimpleRNN-relu": (2, 3)}  # (F, U)
CASES = list(itertools.product(KINDS, [False, True], [False, True], MASKS, [False, True]))


@pytest.mark.parametrize("kind,return_sequences,go_backwards,mask_name,with_state", CASES)
def test_outputs_and_states_equal_keras(kind, return_sequences, go_backwards, mask_name, with_state):
    rng = np.random.default_rng(hash((kind, mask_name)) % 2**32)
    features, units = SIZES[kind]
    options = dict(return_sequences=return_sequences, return_state=True, go_backwards=go_backwards)
    ours, reference = make_pair(kind, features, units, rng, **options)
    x = rng.standard_normal((3, 5, features)).astype(np.float32)
    states = [rng.standard_normal((3, units)).astype(np.float32) for _ in range(KINDS[kind][3])]
    initial = states if with_state else None
    mask = MASKS[mask_name]
    expected = keras_call(reference, x, mask=mask, initial_state=initial)
    actual = ours(x, initial_state=initial, mask=mask)
    assert len(actual) == len(expected) == 1 + KINDS[kind][3]
    for ours_part, keras_part in zip(actual, expected):
        assert ours_part.shape == keras_part.shape and ours_part.dtype == np.float32
        np.testing.assert_allclose(ours_part, keras_part, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_return_state_false_returns_the_output_alone(kind):
    rng = np.random.default_rng(3)
    ours, reference = make_pair(kind, 2, 3, rng)
    x = rng.standard_normal((4, 6, 2)).astype(np.float32)
    output = ours(x)
    assert isinstance(output, np.ndarray) and output.shape == (4, 3)
    np.testing.assert_allclose(output, keras_call(reference, x)[0], rtol=0, atol=1e-5)


def _check_gradients(layer, x, initial_state=None, mask=None):
    """Every weight's, the input's and the initial state's gradient against float64 finite differences."""
    rng = np.random.default_rng(5)
    with lstmkit.no_grad():
        result = as_list(layer(x, initial_state=initial_state, mask=mask))
    upstream = [rng.standard_normal(part.shape) for part in result]

    def loss():
        with lstmkit.no_grad():
            parts = as_list(layer(x, initial_state=initial_state, mask=mask))
        return float(sum(np.sum(p * u) for p, u in zip(parts, upstream)))

    layer.zero_grad()
    layer(x, initial_state=initial_state, mask=mask)
    gradients = layer.backward(upstream if layer.return_state else upstream[0])
    dx, dstates = gradients if initial_state is not None else (gradients, [])
    for name, parameter in layer.named_parameters():
        np.testing.assert_allclose(
            parameter.grad, numeric_gradient(loss, parameter.data), rtol=1e-6, atol=1e-8, err_msg=name
        )
    np.testing.assert_allclose(dx, numeric_gradient(loss, x), rtol=1e-6, atol=1e-8, err_msg="inputs")
    for index, (gradient, state) in enumerate(zip(dstates, initial_state or [])):
        np.testing.assert_allclose(
            gradient, numeric_gradient(loss, state), rtol=1e-6, atol=1e-8, err_msg=f"state {index}"
        )


@pytest.mark.parametrize(
    "kind,mask_name,go_backwards,return_sequences",
    [
        ("LSTM", "any", False, True),
        ("LSTM", "padded", True, False),
        ("GRU", "any", True, True),
        ("GRU", "none", False, False),
        ("SimpleRNN", "any", False, False),
        ("SimpleRNN-relu", "padded", True, True),
    ],
)
def test_gradients_by_finite_differences(kind, mask_name, go_backwards, return_sequences):
    rng = np.random.default_rng(7)
    layer_class, _, kind_options, state_count = KINDS[kind]
    layer = layer_class(
        3,
        **kind_options,
        return_sequences=return_sequences,
        return_state=True,
        go_backwards=go_backwards,
        dtype=np.float64,
        seed=2,
    )
    layer.build((None, None, 2))
    layer.set_weights([0.6 * rng.standard_normal(w.shape) for w in layer.get_weights()])
    x = rng.standard_normal((3, 5, 2))
    initial = [rng.standard_normal((3, 3)) for _ in range(state_count)]
    _check_gradients(layer, x, initial, MASKS[mask_name])


def test_gradients_without_bias_and_without_initial_state():
    layer = lk.LSTM(2, use_bias=False, return_sequences=True, dtype=np.float64, seed=1)
    _check_gradients(layer, np.random.default_rng(0).standard_normal((2, 4, 3)), mask=MASKS["any"][:2, :4])


def test_any_mask_equal_to_padding_gives_what_batch_sizes_gives():
    """The loop's boolean running mask generalises batch_sizes: the same numbers, forward and backward."""
    rng = np.random.default_rng(0)
    weights = lstmkit.GRU(3, 4, dtype=np.float64, seed=0)._weights(0, 0)
    x, h0 = rng.standard_normal((6, 3, 3)), rng.standard_normal((3, 4))
    batch_sizes = np.array([3, 3, 2, 2, 1, 1])
    results = [gru_forward(x, h0, weights, batch_sizes=b) for b in (batch_sizes, padding_mask(batch_sizes, 3))]
    for a, b in zip(results[0][:2], results[1][:2]):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-14)
    dout, dh = rng.standard_normal((6, 3, 4)), rng.standard_normal((3, 4))
    grads = [gru_backward(dout, dh, cache) for _, _, cache in results]
    for a, b in zip(grads[0][:2] + tuple(grads[0][2]), grads[1][:2] + tuple(grads[1][2])):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-14)


@pytest.mark.parametrize("kind", KINDS)
def test_weights_in_keras_names_order_and_shapes(kind):
    import keras

    ours, reference = make_pair(kind, 3, 4, np.random.default_rng(0))
    assert [name for name, _ in ours.named_parameters()] == ["kernel", "recurrent_kernel", "bias"]
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in reference.weights]
    assert ours.count_params() == reference.count_params()
    fresh = KINDS[kind][0](4, **KINDS[kind][2])
    fresh.build((2, 5, 3))
    kernel, recurrent, bias = fresh.get_weights()
    limit = np.sqrt(6 / sum(kernel.shape))
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.5 * limit  # glorot_uniform
    gram = recurrent @ recurrent.T if recurrent.shape[0] <= recurrent.shape[1] else recurrent.T @ recurrent
    np.testing.assert_allclose(gram, np.eye(len(gram)), atol=1e-5)  # orthogonal
    expected_bias = keras.layers.LSTM(4) if kind == "LSTM" else None
    if expected_bias is not None:
        expected_bias.build((None, None, 3))
        np.testing.assert_array_equal(bias, np.asarray(expected_bias.get_weights()[2]))  # unit forget bias
    else:
        assert not bias.any()


def test_stateful_three_consecutive_batches_equal_keras():
    import keras

    rng = np.random.default_rng(9)
    for kind in ("LSTM", "GRU"):
        ours, reference = make_pair(kind, 3, 4, rng, batch=2, stateful=True, return_sequences=True)
        batches = [rng.standard_normal((2, 5, 3)).astype(np.float32) for _ in range(3)]
        for x in batches:
            np.testing.assert_allclose(ours(x), keras_call(reference, x)[0], rtol=0, atol=1e-5)
        for ours_state, keras_state in zip(ours.states, reference.states):
            np.testing.assert_allclose(ours_state, np.asarray(keras_state.value.detach()), rtol=0, atol=1e-5)
        ours.reset_states()
        reference.reset_states()
        np.testing.assert_allclose(ours(batches[0]), keras_call(reference, batches[0])[0], rtol=0, atol=1e-5)
        with pytest.raises(ValueError, match="batch size 2, got inputs with batch size 3"):
            ours(np.zeros((3, 5, 3), np.float32))
    assert keras  # the reference above is keras'
