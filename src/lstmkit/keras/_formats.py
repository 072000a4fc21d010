"""Keras' weight layouts and their PyTorch twins: the facts that convert between them, once.

Every Keras-style layer runs on the PyTorch-layout ops of :mod:`lstmkit.ops`; this module turns
its Keras weights into the ops' weights before a call and the ops' gradients back into Keras'
layout after it (transposes, gate reorder, bias split), exactly, so both stay one implementation.

    ======================  ===========  ========================  ========================================
    Keras                   gate blocks  kernel, recurrent_kernel  bias
    ======================  ===========  ========================  ========================================
    LSTM                    i, f, c, o   (I, 4U), (U, 4U)          (4U,)    = bias_ih + bias_hh
    GRU                     z, r, h      (I, 3U), (U, 3U)          (2, 3U)  = [input bias, recurrent bias]
    GRU(reset_after=False)  z, r, h      (I, 3U), (U, 3U)          (3U,)    = bias_ih + bias_hh
    SimpleRNN               one          (I, U), (U, U)            (U,)     = bias_ih + bias_hh
    ======================  ===========  ========================  ========================================

PyTorch's blocks are i, f, g, o (the same order as Keras'), r, z, n (Keras' first two swapped)
and one; ``weight_ih = kernelᵀ`` and ``weight_hh = recurrent_kernelᵀ`` with rows reordered.
Keras' ``GRU(reset_after=True)`` (its default) has PyTorch's equations; ``reset_after=False``
has another candidate (:mod:`lstmkit.ops.gru`), which the ops compute with the keyword
``reset_after=False`` (:data:`GRU_RESET_BEFORE_KIND`), and one bias, every bias being hoisted.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..nn.kinds import GRU_KIND, LSTM_KIND, RNN_KINDS, CellKind


class KerasFormat(NamedTuple):
    """How one Keras layer lays out the weights of one PyTorch cell kind."""

    name: str  # Keras' class name
    gate_count: int
    torch_blocks: tuple[int, ...]  # torch's block k is Keras' block torch_blocks[k]
    two_biases: bool  # bias (2, G*U) = [input, recurrent] instead of one summed bias (G*U,)

    def _reorder(self, array, axis, order):
        if order == tuple(range(self.gate_count)):
            return array
        blocks = np.split(array, self.gate_count, axis=axis)
        return np.concatenate([blocks[k] for k in order], axis=axis)

    def to_torch_blocks(self, array, axis=-1):
        """Keras' gate blocks along ``axis`` in PyTorch's order."""
        return self._reorder(array, axis, self.torch_blocks)

    def to_keras_blocks(self, array, axis=-1):
        """PyTorch's gate blocks along ``axis`` in Keras' order (the inverse of :meth:`to_torch_blocks`)."""
        return self._reorder(array, axis, tuple(int(k) for k in np.argsort(self.torch_blocks)))

    def bias_shape(self, units: int) -> tuple[int, ...]:
        return (2, self.gate_count * units) if self.two_biases else (self.gate_count * units,)

    def weight_shapes(self, input_size: int, units: int, use_bias: bool) -> dict[str, tuple[int, ...]]:
        """Keras' names and shapes, in ``get_weights()`` order."""
        shapes = {"kernel": (input_size, self.gate_count * units), "recurrent_kernel": (units, self.gate_count * units)}
        if use_bias:
            shapes["bias"] = self.bias_shape(units)
        return shapes

    # ---- Keras layout -> PyTorch layout (and back) -------------------------------------
    def torch_biases(self, bias):
        """``(bias_ih, bias_hh)`` of a Keras bias; a summed bias goes to bias_ih, bias_hh is zero."""
        if bias is None:
            return None, None
        if self.two_biases:
            return self.to_torch_blocks(bias[0]), self.to_torch_blocks(bias[1])
        return self.to_torch_blocks(bias), np.zeros_like(bias)

    def keras_bias(self, bias_ih, bias_hh):
        """The Keras bias of PyTorch's two (summed unless the layer keeps both)."""
        if bias_ih is None:
            return None
        if self.two_biases:
            return np.stack([self.to_keras_blocks(bias_ih), self.to_keras_blocks(bias_hh)])
        return self.to_keras_blocks(bias_ih + bias_hh)

    def torch_weights(self, kind: CellKind, kernel, recurrent_kernel, bias=None):
        """The ops' weights (PyTorch layout) of Keras' ``kernel, recurrent_kernel, bias``."""
        return kind.weights(
            self.to_torch_blocks(kernel).T, self.to_torch_blocks(recurrent_kernel).T, *self.torch_biases(bias)
        )

    def keras_weights(self, weights) -> list[np.ndarray]:
        """``[kernel, recurrent_kernel(, bias)]`` of the ops' weights (or of their gradients, with
        :meth:`keras_gradients`)."""
        arrays = [self.to_keras_blocks(weights.weight_ih.T), self.to_keras_blocks(weights.weight_hh.T)]
        return arrays if weights.bias_ih is None else arrays + [self.keras_bias(weights.bias_ih, weights.bias_hh)]

    def keras_gradients(self, dweights) -> list[np.ndarray]:
        """Gradients of ``[kernel, recurrent_kernel(, bias)]`` from those of the ops' weights: a summed
        bias feeds bias_ih (bias_hh is a constant zero), so its gradient is bias_ih's."""
        if self.two_biases or dweights.bias_ih is None:
            return self.keras_weights(dweights)
        return self.keras_weights(dweights._replace(bias_hh=np.zeros_like(dweights.bias_hh)))


LSTM_FORMAT = KerasFormat("LSTM", 4, (0, 1, 2, 3), False)
GRU_FORMAT = KerasFormat("GRU", 3, (1, 0, 2), True)
GRU_RESET_BEFORE_FORMAT = GRU_FORMAT._replace(two_biases=False)  # GRU(reset_after=False): one bias
# the ops' GRU with Keras' reset_after=False candidate (a keyword the reference op takes; no fast path)
GRU_RESET_BEFORE_KIND = GRU_KIND._replace(options=(("reset_after", False),))
GRU_FORMATS = {True: (GRU_FORMAT, GRU_KIND), False: (GRU_RESET_BEFORE_FORMAT, GRU_RESET_BEFORE_KIND)}  # by reset_after
SIMPLE_RNN_FORMAT = KerasFormat("SimpleRNN", 1, (0,), False)

FORMATS = {"LSTM": (LSTM_FORMAT, LSTM_KIND), "GRU": (GRU_FORMAT, GRU_KIND)}
FORMATS.update({kind.mode: (SIMPLE_RNN_FORMAT, kind) for kind in RNN_KINDS.values()})
