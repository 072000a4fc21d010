"""``lstmkit explain`` and parameter counts against torch and Keras."""

import itertools

import keras
import numpy as np
import pytest
import torch

import lstmkit
from lstmkit.cli import main
from lstmkit.explain import explain_lstm, keras_lstm_parameter_count, lstm_parameter_count

CONFIGS = list(itertools.product([1, 7, 20], [1, 5, 100], [1, 2, 3], [True, False], [False, True]))


@pytest.mark.parametrize("input_size,hidden,layers,bias,bidirectional", CONFIGS)
def test_counts_equal_torch(input_size, hidden, layers, bias, bidirectional):
    for proj in [0] + ([hidden // 2] if hidden > 1 else []):
        reference = torch.nn.LSTM(input_size, hidden, layers, bias=bias, bidirectional=bidirectional, proj_size=proj)
        ours = lstmkit.LSTM(input_size, hidden, layers, bias=bias, bidirectional=bidirectional, proj_size=proj)
        expected = sum(p.numel() for p in reference.parameters())
        assert lstmkit.count_parameters(ours) == expected
        assert lstm_parameter_count(input_size, hidden, layers, bias, bidirectional, proj) == expected


def keras_model(input_size, units, layers, use_bias, bidirectional, seq_len=3, **last_layer):
    model = [keras.Input((seq_len, input_size))]
    for layer in range(layers):
        options = dict(use_bias=use_bias, return_sequences=layer < layers - 1)
        if layer == layers - 1:
            options.update(last_layer)
        lstm = keras.layers.LSTM(units, **options)
        model.append(keras.layers.Bidirectional(lstm) if bidirectional else lstm)
    return keras.Sequential(model)


@pytest.mark.parametrize(
    "input_size,units,layers,use_bias,bidirectional",
    [(20, 100, 2, True, False), (3, 5, 3, False, True), (7, 1, 1, True, True), (1, 4, 2, True, True)],
)
def test_counts_equal_keras(input_size, units, layers, use_bias, bidirectional):
    expected = keras_model(input_size, units, layers, use_bias, bidirectional).count_params()
    assert keras_lstm_parameter_count(input_size, units, layers, use_bias, bidirectional) == expected
    text = explain_lstm(input_size, units, layers, 3, 1, bias=use_bias, bidirectional=bidirectional)
    assert f"total: {expected:,} parameters (keras" in text


@pytest.mark.parametrize("bidirectional", [False, True])
def test_keras_return_shapes_in_text_are_keras_own(bidirectional):
    text = explain_lstm(6, 4, 2, 5, 3, bidirectional=bidirectional)
    sequences = keras_model(6, 4, 2, True, bidirectional, seq_len=5, return_sequences=True)(np.zeros((3, 5, 6)))
    assert f"return_sequences=True   {tuple(sequences.shape)}" in text
    last = keras_model(6, 4, 2, True, bidirectional, seq_len=5)(np.zeros((3, 5, 6)))
    assert f"return_sequences=False  {tuple(last.shape)}" in text
    states = keras_model(6, 4, 2, True, bidirectional, seq_len=5, return_state=True)(np.zeros((3, 5, 6)))
    assert len(states) == (5 if bidirectional else 3)
    assert all(tuple(s.shape) == (3, 4) for s in states[1:])


def test_seed_example_cli_output(capsys):
    """The README's example: a 3-word sentence, input size 20, hidden 100, 2 layers."""
    assert (
        main(
            [
                "explain",
                "--input-size",
                "20",
                "--hidden-size",
                "100",
                "--num-layers",
                "2",
                "--seq-len",
                "3",
                "--batch",
                "1",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    reference = torch.nn.LSTM(20, 100, 2)
    output, (h_n, c_n) = reference(torch.zeros(3, 1, 20))
    assert "input   (3, 1, 20)" in text
    assert f"output  {tuple(output.shape)}" in text
    assert f"h_n     {tuple(h_n.shape)}" in text
    assert f"c_n     {tuple(c_n.shape)}" in text
    for name, parameter in reference.named_parameters():
        assert f"{name}  " in text and str(tuple(parameter.shape)) in text
    assert "4*100*(20 + 100) + 8*100 = 48,800" in text
    assert f"total: {sum(p.numel() for p in reference.parameters()):,} parameters (torch" in text


@pytest.mark.parametrize(
    "flags", [["--batch", "2", "--batch-first", "--bidirectional", "--proj-size", "3"], ["--unbatched", "--no-bias"]]
)
def test_cli_shapes_equal_torch(flags, capsys):
    assert main(["explain", "--input-size", "4", "--hidden-size", "6", "--seq-len", "5", *flags]) == 0
    text = capsys.readouterr().out
    batch_first, bidirectional = "--batch-first" in flags, "--bidirectional" in flags
    proj = 3 if "--proj-size" in flags else 0
    reference = torch.nn.LSTM(
        4, 6, batch_first=batch_first, bidirectional=bidirectional, proj_size=proj, bias="--no-bias" not in flags
    )
    x = torch.zeros((5, 4) if "--unbatched" in flags else ((2, 5, 4) if batch_first else (5, 2, 4)))
    output, (h_n, c_n) = reference(x)
    for name, tensor in (("input", x), ("output", output), ("h_n", h_n), ("c_n", c_n)):
        assert any(line.split()[:1] == [name] and str(tuple(tensor.shape)) in line for line in text.splitlines()), name


def test_cli_rejects_bad_configuration(capsys):
    assert main(["explain", "--input-size", "4", "--hidden-size", "6", "--proj-size", "6"]) == 2
    assert "proj_size must be smaller than hidden_size=6, got 6" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["explain", "--input-size", "0", "--hidden-size", "6"])
