"""Masking and Sequential (masks travelling between layers, summary) against Keras; bad input."""

import re

import keras
import numpy as np
import pytest
from keras_reference import random_weights

import lstmkit
import lstmkit.keras as lk


def _models(rng):
    ours = lk.Sequential(
        [
            lk.Masking(0.0),
            lk.Bidirectional(lk.LSTM(4, return_sequences=True), merge_mode="sum"),
            lk.SimpleRNN(3, return_sequences=True),
            lk.GRU(2),
        ],
        input_shape=(6, 3),
    )
    reference = keras.Sequential(
        [
            keras.Input((6, 3)),
            keras.layers.Masking(0.0),
            keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True), merge_mode="sum"),
            keras.layers.SimpleRNN(3, return_sequences=True),
            keras.layers.GRU(2),
        ]
    )
    summary = ours.summary()  # builds every layer
    for layer, twin in zip(ours.layers[1:], reference.layers[1:]):
        layer.set_weights(random_weights(layer, rng))
        twin.set_weights(layer.get_weights())
    return ours, reference, summary


def test_masks_travel_through_sequential_as_in_keras():
    rng = np.random.default_rng(0)
    ours, reference, _ = _models(rng)
    x = rng.standard_normal((3, 6, 3)).astype(np.float32)
    x[0, 4:] = 0.0  # padding at the end
    x[1, :2] = 0.0  # at the start
    x[2, [1, 3]] = 0.0  # anywhere
    expected = np.asarray(reference(x).detach())
    np.testing.assert_allclose(ours(x), expected, rtol=0, atol=1e-5)


def test_sequential_gradients_by_finite_differences():
    from test_gradcheck import numeric_gradient

    rng = np.random.default_rng(1)
    model = lk.Sequential(
        [
            lk.Masking(0.0),
            lk.LSTM(3, return_sequences=True, dtype=np.float64, seed=0),
            lk.Bidirectional(lk.GRU(2, dtype=np.float64, seed=1), merge_mode="mul"),
        ]
    )
    x = rng.standard_normal((2, 5, 2))
    x[1, 1] = 0.0
    upstream = rng.standard_normal((2, 2))

    def loss():
        with lstmkit.no_grad():
            return float(np.sum(model(x) * upstream))

    model(x)
    dx = model.backward(upstream)
    for name, parameter in model.named_parameters():
        np.testing.assert_allclose(
            parameter.grad, numeric_gradient(loss, parameter.data), rtol=1e-6, atol=1e-8, err_msg=name
        )
    keep = np.any(x != 0, axis=-1)[..., None]
    np.testing.assert_allclose(dx[keep[..., 0]], numeric_gradient(loss, x)[keep[..., 0]], rtol=1e-6, atol=1e-8)
    assert not dx[1, 1].any()  # a masked step: Masking zeroes it, no gradient


def test_summary_shapes_and_counts_are_keras_own():
    _, reference, summary = _models(np.random.default_rng(2))
    names = ["masking (Masking)", "bidirectional (Bidirectional)", "simple_rnn (SimpleRNN)", "gru (GRU)"]
    for name, layer in zip(names, reference.layers):
        shape = "(" + ", ".join(map(str, layer.output.shape)) + ")"
        row = next(line for line in summary.splitlines() if line.startswith(name))
        assert shape in row and row.endswith(f"{layer.count_params():,}")
    assert f"Total params: {reference.count_params():,}" in summary


BAD_CALLS = [
    (
        lambda layer: layer(np.zeros((2, 5, 3), np.float32), mask=np.ones((2, 4), bool)),
        ValueError,
        r"mask \(N, T\) must have shape \(2, 5\), got \(2, 4\)",
    ),
    (
        lambda layer: layer(np.zeros((2, 5, 3), np.float32), mask=np.ones((2, 5))),
        TypeError,
        "boolean array of shape .* got dtype float64",
    ),
    (lambda layer: layer.set_weights(layer.get_weights()[:2]), ValueError, "expected 3 arrays .* got 2"),
    (
        lambda layer: layer.set_weights([np.zeros((4, 8))] + layer.get_weights()[1:]),
        ValueError,
        r"kernel must have shape \(3, 8\), got \(4, 8\)",
    ),
    (lambda layer: layer(np.zeros((2, 5, 4), np.float32)), ValueError, "input size 3 .* got 4"),
    (
        lambda layer: layer(np.zeros((2, 5, 3), np.float32), initial_state=[np.zeros((2, 2))]),
        ValueError,
        "list of 2 arrays",
    ),
]


@pytest.mark.parametrize("call,error,message", BAD_CALLS)
def test_bad_input_names_expected_and_given(call, error, message):
    layer = lk.LSTM(2)
    layer.build((None, None, 3))
    with pytest.raises(error, match=message):
        call(layer)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: lk.LSTM(2, activation="relu"), "activation must be one of 'tanh'.* got 'relu'"),
        (lambda: lk.GRU(2, recurrent_activation="hard_sigmoid"), "recurrent_activation must be one of 'sigmoid'"),
        (lambda: lk.SimpleRNN(2, activation="selu"), "activation must be one of 'tanh', 'relu'"),
        (lambda: lk.GRU(2, reset_after=False, backend="fast"), "backend='fast' .* lack reset_after=False"),
        (lambda: lk.Bidirectional(lk.LSTM(2), merge_mode="max"), "merge_mode must be one of .* got 'max'"),
        (lambda: lk.Bidirectional(lk.LSTM(2), backward_layer=lk.LSTM(2)), "different go_backwards"),
        (lambda: lk.Sequential([lk.LSTM(2, return_state=True)]), "return_state=True"),
    ],
)
def test_bad_configuration_names_expected_and_given(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_stateful_batch_change_is_refused():
    layer = lk.GRU(2, stateful=True)
    layer(np.zeros((4, 3, 1), np.float32))
    with pytest.raises(ValueError, match="keeps states for batch size 4, got inputs with batch size 2"):
        layer(np.zeros((2, 3, 1), np.float32))


def test_input_dropout_one_mask_per_sequence_in_training_only():
    layer = lk.SimpleRNN(3, dropout=0.5, return_sequences=True, dtype=np.float64, seed=0)
    x = np.ones((200, 4, 5))
    np.testing.assert_array_equal(layer(x), layer(x, training=False))
    layer.train()
    layer(x)
    saved = layer._saved[-1].saved.cache.dropout.input[0]  # one mask shared by the gates (SimpleRNN has one)
    assert saved.shape == (200, 5) and set(np.unique(saved)) == {0.0, 2.0} and 0.4 < (saved == 0).mean() < 0.6
    dx = layer.backward(np.ones((200, 4, 3)))
    assert np.all(dx[saved[:, None, :].repeat(4, axis=1) == 0] == 0)  # dropped features get no gradient


def test_explain_style_keras_prints_keras_own_summary(capsys):
    from lstmkit.cli import main

    assert (
        main(
            [
                "explain",
                "--style",
                "keras",
                "--mode",
                "GRU",
                "--input-size",
                "3",
                "--hidden-size",
                "4",
                "--num-layers",
                "2",
                "--bidirectional",
                "--seq-len",
                "5",
                "--batch",
                "2",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    reference = keras.Sequential(
        [
            keras.Input((5, 3)),
            keras.layers.Bidirectional(keras.layers.GRU(4, return_sequences=True)),
            keras.layers.Bidirectional(keras.layers.GRU(4)),
        ]
    )
    assert f"Total params: {reference.count_params():,}" in text
    assert re.search(r"bidirectional \(Bidirectional\) +\(None, 5, 8\)", text)
    assert re.search(r"bidirectional_1 \(Bidirectional\) +\(None, 8\)", text)
    assert "output  (2, 8)" in text
    assert main(["explain", "--style", "keras", "--input-size", "3", "--hidden-size", "4", "--proj-size", "2"]) == 2
