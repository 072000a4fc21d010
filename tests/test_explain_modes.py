"""``lstmkit explain --mode GRU|RNN_TANH|RNN_RELU`` and parameter counts against torch and Keras."""

import itertools

import keras
import numpy as np
import pytest
import torch

import lstmkit
from lstmkit.cli import main
from lstmkit.explain import explain_layer, keras_parameter_count, parameter_count

TORCH = {
    "GRU": (lstmkit.GRU, torch.nn.GRU, {}),
    "RNN_TANH": (lstmkit.RNN, torch.nn.RNN, {}),
    "RNN_RELU": (lstmkit.RNN, torch.nn.RNN, {"nonlinearity": "relu"}),
}
CONFIGS = list(itertools.product(TORCH, [1, 7], [1, 5, 100], [1, 3], [True, False], [False, True]))


@pytest.mark.parametrize("mode,input_size,hidden,layers,bias,bidirectional", CONFIGS)
def test_counts_equal_torch(mode, input_size, hidden, layers, bias, bidirectional):
    ours_class, torch_class, extra = TORCH[mode]
    reference = torch_class(input_size, hidden, layers, bias=bias, bidirectional=bidirectional, **extra)
    ours = ours_class(input_size, hidden, layers, bias=bias, bidirectional=bidirectional, **extra)
    expected = sum(p.numel() for p in reference.parameters())
    assert lstmkit.count_parameters(ours) == expected
    assert parameter_count(mode, input_size, hidden, layers, bias, bidirectional) == expected
    text = explain_layer(input_size, hidden, layers, 2, 1, mode=mode, bias=bias, bidirectional=bidirectional)
    assert f"total: {expected:,} parameters (torch" in text


def keras_model(mode, input_size, units, layers, use_bias, bidirectional, seq_len=3, **last_layer):
    model = [keras.Input((seq_len, input_size))]
    for layer in range(layers):
        options = dict(use_bias=use_bias, return_sequences=layer < layers - 1)
        if layer == layers - 1:
            options.update(last_layer)
        if mode == "GRU":
            recurrent = keras.layers.GRU(units, **options)  # reset_after=True, Keras 3's default
        else:
            recurrent = keras.layers.SimpleRNN(units, activation=mode[4:].lower(), **options)
        model.append(keras.layers.Bidirectional(recurrent) if bidirectional else recurrent)
    return keras.Sequential(model)


@pytest.mark.parametrize("mode", TORCH)
@pytest.mark.parametrize(
    "input_size,units,layers,use_bias,bidirectional",
    [(20, 100, 2, True, False), (3, 5, 3, False, True), (7, 1, 1, True, True)],
)
def test_counts_equal_keras(mode, input_size, units, layers, use_bias, bidirectional):
    expected = keras_model(mode, input_size, units, layers, use_bias, bidirectional).count_params()
    assert keras_parameter_count(mode, input_size, units, layers, use_bias, bidirectional) == expected
    text = explain_layer(input_size, units, layers, 3, 1, mode=mode, bias=use_bias, bidirectional=bidirectional)
    assert f"total: {expected:,} parameters (keras" in text


@pytest.mark.parametrize("mode", TORCH)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_keras_return_shapes_in_text_are_keras_own(mode, bidirectional):
    text = explain_layer(6, 4, 2, 5, 3, mode=mode, bidirectional=bidirectional)
    x = np.zeros((3, 5, 6))
    sequences = keras_model(mode, 6, 4, 2, True, bidirectional, seq_len=5, return_sequences=True)(x)
    assert f"return_sequences=True   {tuple(sequences.shape)}" in text
    last = keras_model(mode, 6, 4, 2, True, bidirectional, seq_len=5)(x)
    assert f"return_sequences=False  {tuple(last.shape)}" in text
    states = keras_model(mode, 6, 4, 2, True, bidirectional, seq_len=5, return_state=True)(x)
    state_line = next(line for line in text.splitlines() if "return_state=True" in line)
    assert state_line.count("(3, 4)") == len(states) - 1 and all(tuple(s.shape) == (3, 4) for s in states[1:])


@pytest.mark.parametrize("mode", TORCH)
@pytest.mark.parametrize(
    "flags", [["--batch", "2", "--batch-first", "--bidirectional", "--num-layers", "2"], ["--unbatched", "--no-bias"]]
)
def test_cli_shapes_and_names_equal_torch(mode, flags, capsys):
    command = ["explain", "--mode", mode, "--input-size", "4", "--hidden-size", "6", "--seq-len", "5", *flags]
    assert main(command) == 0
    text = capsys.readouterr().out
    _, torch_class, extra = TORCH[mode]
    batch_first = "--batch-first" in flags
    reference = torch_class(
        4,
        6,
        2 if "--num-layers" in flags else 1,
        batch_first=batch_first,
        bidirectional="--bidirectional" in flags,
        bias="--no-bias" not in flags,
        **extra,
    )
    x = torch.zeros((5, 4) if "--unbatched" in flags else ((2, 5, 4) if batch_first else (5, 2, 4)))
    output, h_n = reference(x)
    for name, tensor in (("input", x), ("output", output), ("h_n", h_n), ("h_0", h_n)):
        assert any(line.split()[:1] == [name] and str(tuple(tensor.shape)) in line for line in text.splitlines()), name
    assert "c_0" not in text and "c_n" not in text
    for name, parameter in reference.named_parameters():
        assert f"{name}  " in text and str(tuple(parameter.shape)) in text


def test_cli_rejects_proj_size_for_gru_and_unknown_modes(capsys):
    assert main(["explain", "--mode", "GRU", "--input-size", "4", "--hidden-size", "6", "--proj-size", "2"]) == 2
    assert "GRU: proj_size is an LSTM option (GRU has no projection), got proj_size=2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["explain", "--mode", "LSTMX", "--input-size", "4", "--hidden-size", "6"])
    with pytest.raises(ValueError, match="mode must be one of LSTM, GRU, RNN_TANH, RNN_RELU, got 'rnn'"):
        parameter_count("rnn", 3, 4)
