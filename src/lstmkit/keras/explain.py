"""``lstmkit explain --style keras``: a configuration as Keras layers, read off real lstmkit.keras ones."""

from __future__ import annotations

import numpy as np

from ..explain import check_mode, format_shape, keras_weight_lines
from ..grad_mode import no_grad
from .bidirectional import Bidirectional
from .layers import GRU, LSTM, SimpleRNN
from .model import Sequential


def _layer(mode: str, units: int, use_bias: bool, return_sequences: bool, seed: int):
    options = dict(use_bias=use_bias, return_sequences=return_sequences, seed=seed)
    if mode.startswith("RNN"):
        return SimpleRNN(units, activation=mode[4:].lower(), **options)
    return {"LSTM": LSTM, "GRU": GRU}[mode](units, **options)


def keras_model(
    mode: str,
    input_size: int,
    units: int,
    num_layers: int = 1,
    seq_len: int = 1,
    use_bias: bool = True,
    bidirectional: bool = False,
) -> Sequential:
    """The stacked Keras-style layers of a configuration (all but the last return sequences)."""
    layers = []
    for index in range(num_layers):
        layer = _layer(check_mode(mode), units, use_bias, index < num_layers - 1, seed=index)
        layers.append(Bidirectional(layer) if bidirectional else layer)
    return Sequential(layers, input_shape=(seq_len, input_size))


def explain_keras(
    input_size: int,
    units: int,
    num_layers: int = 1,
    seq_len: int = 1,
    batch: int = 1,
    *,
    mode: str = "LSTM",
    bias: bool = True,
    bidirectional: bool = False,
    proj_size: int = 0,
) -> str:
    """The text of ``lstmkit explain --style keras``: the model, its summary, weights and returns."""
    if proj_size:
        raise ValueError(f"--style keras: Keras has no projection, expected proj_size=0, got {proj_size}")
    model = keras_model(mode, input_size, units, num_layers, seq_len, bias, bidirectional)
    batch = batch or 1
    x = np.zeros((batch, seq_len, input_size), np.float32)
    with no_grad():
        output = model(x)
    lines = [
        f"lstmkit.keras.{model!r}",
        "  ==  keras.Sequential([keras.Input(shape=" + format_shape((seq_len, input_size)) + "), ...])",
        "",
        f"sizes: N={batch}, T={seq_len} steps, F={input_size} features, U={units} units, layers={num_layers}",
        "",
        "Keras: arrays in and out (batch-major)",
        f"  inputs  {format_shape(x.shape)}  (N, T, F)",
        f"  output  {format_shape(output.shape)}  the last layer's last step (return_sequences=False)",
        "",
        model.summary(),
        "",
    ]
    lines += ["Keras: weights (and the PyTorch twin's)"] + keras_weight_lines(
        mode, input_size, units, num_layers, seq_len, batch, bias, bidirectional
    )
    return "\n".join(lines)
