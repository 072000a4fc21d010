"""Keras' ``Sequential`` for the Keras-style layers: masks travel from layer to layer, ``summary()``.

As in Keras, a layer's output mask goes to the next layer: ``Masking`` makes one, a recurrent
layer passes it on only when it returns sequences, and any other module (``lstmkit.Linear``,
``Dropout``: Keras' ``Dense`` and ``Dropout``) passes it through untouched.

    ==========  ==================================================================
    input       (N, T, F) batch-major
    output      the last layer's output
    backward    ``model.backward(doutput)`` -> gradient of the input (N, T, F)
    ==========  ==================================================================
"""

from __future__ import annotations

import re

import numpy as np
from numpy.typing import ArrayLike

from ..nn.layers import Linear
from ..nn.module import Module
from ._recurrent import KerasRNN
from .bidirectional import Bidirectional
from .masking import Masking


def _keras_name(module: Module) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", type(module).__name__).lower()  # SimpleRNN -> simple_rnn


def _returns_state(module: Module) -> bool:
    return getattr(module, "return_state", False)


class Sequential(Module):
    """``keras.Sequential(layers)``; ``input_shape=(T, F)`` (Keras' ``Input(shape=...)``) lets
    :meth:`summary` run before the first call (which otherwise sets it)."""

    def __init__(self, layers, input_shape: tuple[int, int] | None = None):
        super().__init__()
        counts: dict[str, int] = {}
        for index, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: layer {index} must be an lstmkit Module, got {type(layer).__name__}")
            if _returns_state(layer):
                raise ValueError(
                    f"Sequential: layer {index} ({layer!r}) has return_state=True; expected one output per layer"
                )
            base = _keras_name(layer)
            name = base if base not in counts else f"{base}_{counts[base]}"
            counts[base] = counts.get(base, 0) + 1
            self.register_module(name, layer)
        self.input_shape = None if input_shape is None else tuple(input_shape)

    @property
    def layers(self) -> list[Module]:
        return list(self._modules.values())

    def forward(self, inputs: ArrayLike, mask: ArrayLike | None = None, training: bool | None = None) -> np.ndarray:
        x = inputs
        self.input_shape = tuple(x.shape[1:])
        for layer in self.layers:
            if isinstance(layer, (KerasRNN, Bidirectional)):
                x, mask = layer(x, mask=mask, training=training), layer.compute_mask(x, mask)
            elif isinstance(layer, Masking):
                x, mask = layer(x), layer.compute_mask(x)
            else:
                x = layer(x)
        return x

    def backward(self, doutput: ArrayLike) -> np.ndarray:
        gradient = doutput
        for layer in reversed(self.layers):
            gradient = layer.backward(gradient)
        return gradient

    def count_params(self) -> int:
        return sum(parameter.data.size for parameter in self.parameters())

    # ---- summary ---------------------------------------------------------------------------
    def _output_shape(self, layer: Module, shape: tuple) -> tuple:
        if isinstance(layer, (KerasRNN, Bidirectional)):
            if not layer.built:
                layer.build(shape)
            return tuple(layer.output_shapes(None, shape[1])[0])
        if isinstance(layer, Linear):
            return shape[:-1] + (layer.out_features,)
        return shape  # Masking, Dropout: shape unchanged

    def summary(self) -> str:
        """Keras' ``model.summary()`` table: each layer's name (type), output shape and parameter count."""
        if self.input_shape is None:
            raise ValueError(
                "Sequential.summary: the input shape is unknown; expected Sequential(..., "
                "input_shape=(T, F)) "
                "or a call first"
            )
        rows, shape = [], (None, *self.input_shape)
        for name, layer in self._modules.items():
            shape = self._output_shape(layer, shape)
            params = sum(parameter.data.size for parameter in layer.parameters())
            rows.append((f"{name} ({type(layer).__name__})", "(" + ", ".join(map(str, shape)) + ")", f"{params:,}"))
        header = ("Layer (type)", "Output Shape", "Param #")
        widths = [max(len(row[column]) for row in rows + [header]) for column in range(3)]
        rule = "-" * (sum(widths) + 6)

        def line(row):
            return f"{row[0]:<{widths[0]}}   {row[1]:<{widths[1]}}   {row[2]:>{widths[2]}}"

        total = self.count_params()
        return "\n".join(
            [
                'Model: "sequential"',
                rule,
                line(header),
                rule,
                *map(line, rows),
                rule,
                f"Total params: {total:,}",
                f"Trainable params: {total:,}",
                "Non-trainable params: 0",
            ]
        )

    def __repr__(self) -> str:
        return "Sequential([" + ", ".join(repr(layer) for layer in self.layers) + "])"
