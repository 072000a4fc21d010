"""Keras' ``Bidirectional`` wrapper: a forward and a backward copy of a recurrent layer, merged.

    ============  ===========================  ==========================================
    merge_mode    output (U = units)           backward of the merge
    ============  ===========================  ==========================================
    'concat'      [y, y_rev] along features    split
    'sum'         y + y_rev                    d, d
    'ave'         (y + y_rev) / 2              d/2, d/2
    'mul'         y ⊙ y_rev                    d ⊙ y_rev, d ⊙ y
    None          [y, y_rev] (two outputs)     the two gradients as given
    ============  ===========================  ==========================================

``y_rev`` is the backward layer's output, flipped back to forward time when returning
sequences. With ``return_state`` the call returns ``[output(s), *forward states, *backward
states]``, Keras' order; ``get_weights()`` is the forward layer's then the backward layer's.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ..nn.module import Module
from ._recurrent import KerasRNN

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def _merge(mode, y, y_rev):
    if mode == "concat":
        return np.concatenate([y, y_rev], axis=-1)
    if mode is None:
        return [y, y_rev]
    return {"sum": lambda: y + y_rev, "ave": lambda: (y + y_rev) / 2, "mul": lambda: y * y_rev}[mode]()


def _merge_backward(mode, doutput, y, y_rev):
    """Gradients of ``y`` and ``y_rev`` from the merged output's (a pair for merge_mode None)."""
    if mode == "concat":
        return np.split(doutput, 2, axis=-1)
    if mode is None:
        return doutput
    if mode == "mul":
        return doutput * y_rev, doutput * y
    scale = 0.5 if mode == "ave" else 1.0
    return doutput * scale, doutput * scale


class _Saved(NamedTuple):
    y: np.ndarray
    y_rev: np.ndarray
    given_state: bool


class Bidirectional(Module):
    """``keras.layers.Bidirectional(layer, merge_mode='concat', backward_layer=None)``.

    ``layer`` is a :class:`~lstmkit.keras.LSTM`, ``GRU`` or ``SimpleRNN``; as in Keras, the wrapper
    runs a fresh copy of it (``forward_layer``) and, unless ``backward_layer`` is given, a fresh copy
    with ``go_backwards`` flipped (``backward_layer``). Call as the wrapped layer:
    ``(inputs (N, T, F), initial_state=[forward states..., backward states...], mask (N, T))``.
    With ``return_sequences`` both layers output zero at masked steps (Keras forces
    ``zero_output_for_mask`` there). ``backward(grad)`` takes a gradient structured like the
    return and returns the input's gradient (and the initial states', if given).
    """

    def __init__(self, layer, merge_mode="concat", backward_layer=None):
        super().__init__()
        if not isinstance(layer, KerasRNN):
            raise TypeError(
                f"Bidirectional: layer must be an lstmkit.keras LSTM, GRU or SimpleRNN, got {type(layer).__name__}"
            )
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"Bidirectional: merge_mode must be one of {MERGE_MODES}, got {merge_mode!r}")
        forward_layer = layer.fresh_copy()
        if backward_layer is None:
            backward_layer = layer.fresh_copy(go_backwards=not layer.go_backwards)
        elif not isinstance(backward_layer, KerasRNN):
            raise TypeError(
                f"Bidirectional: backward_layer must be an lstmkit.keras layer, got {type(backward_layer).__name__}"
            )
        if backward_layer.go_backwards == forward_layer.go_backwards:
            raise ValueError(
                "Bidirectional: the forward and backward layers must have different go_backwards, "
                f"got {forward_layer.go_backwards} for both"
            )
        for name in ("stateful", "return_sequences", "return_state"):
            if getattr(forward_layer, name) != getattr(backward_layer, name):
                raise ValueError(
                    f"Bidirectional: forward and backward layers must have the same {name}, got "
                    f"{getattr(forward_layer, name)} and {getattr(backward_layer, name)}"
                )
        for sublayer in (forward_layer, backward_layer):
            sublayer.zero_output_for_mask = sublayer.return_sequences
        self.merge_mode = merge_mode
        self.return_sequences, self.return_state = layer.return_sequences, layer.return_state
        self.stateful = layer.stateful
        self.register_module("forward_layer", forward_layer)
        self.register_module("backward_layer", backward_layer)
        self.training = layer.training

    def _layers(self):
        return self.forward_layer, self.backward_layer

    @property
    def built(self) -> bool:
        return self.forward_layer.built and self.backward_layer.built

    def build(self, input_shape) -> None:
        for sublayer in self._layers():
            sublayer.build(input_shape)

    def get_weights(self) -> list[np.ndarray]:
        return self.forward_layer.get_weights() + self.backward_layer.get_weights()

    def set_weights(self, weights) -> None:
        weights = list(weights)
        if len(weights) % 2:
            raise ValueError(
                f"Bidirectional.set_weights: expected an even count (forward's then backward's), got {len(weights)}"
            )
        half = len(weights) // 2
        self.forward_layer.set_weights(weights[:half])
        self.backward_layer.set_weights(weights[half:])

    def count_params(self) -> int:
        return sum(sublayer.count_params() for sublayer in self._layers())

    def _halves(self, states):
        if states is None:
            return None, None
        half = len(states) // 2
        return list(states[:half]), list(states[half:])

    def forward(
        self,
        inputs: ArrayLike,
        initial_state: list | None = None,
        mask: ArrayLike | None = None,
        training: bool | None = None,
    ) -> np.ndarray | list[np.ndarray]:
        results = [
            sublayer(inputs, initial_state=state, mask=mask, training=training)
            for sublayer, state in zip(self._layers(), self._halves(initial_state))
        ]
        states = []
        if self.return_state:
            states = results[0][1:] + results[1][1:]
            results = [results[0][0], results[1][0]]
        y, y_rev = results
        if self.return_sequences:
            y_rev = np.ascontiguousarray(y_rev[:, ::-1])
        self._save_for_backward(_Saved(y, y_rev, initial_state is not None))
        output = _merge(self.merge_mode, y, y_rev)
        if not self.return_state:
            return output
        return (output if self.merge_mode is None else [output]) + states

    def backward(self, grad: ArrayLike | list) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
        saved = self._pop_saved()
        outputs = 2 if self.merge_mode is None else 1
        parts = list(grad) if self.return_state or self.merge_mode is None else [grad]
        doutput = parts[:outputs] if self.merge_mode is None else parts[0]
        dy, dy_rev = _merge_backward(self.merge_mode, doutput, saved.y, saved.y_rev)
        if self.return_sequences:
            dy_rev = dy_rev[:, ::-1]
        dstates = self._halves(parts[outputs:]) if self.return_state else (None, None)
        gradients = [
            sublayer.backward([d, *ds] if self.return_state else d)
            for sublayer, d, ds in zip(self._layers(), (dy, dy_rev), dstates)
        ]
        if not saved.given_state:
            return gradients[0] + gradients[1]
        (dx, dstate), (dx_rev, dstate_rev) = gradients
        return dx + dx_rev, dstate + dstate_rev

    def output_shapes(self, batch, steps) -> list[tuple]:
        """Shapes of the call's return, as :meth:`KerasRNN.output_shapes`."""
        shapes = self.forward_layer.output_shapes(batch, steps)
        output, states = shapes[0], shapes[1:]
        if self.merge_mode == "concat":
            output = output[:-1] + (2 * output[-1],)
        return ([output, output] if self.merge_mode is None else [output]) + states * 2

    def compute_mask(self, inputs: ArrayLike, mask: ArrayLike | None = None) -> ArrayLike | None:
        return mask if self.return_sequences else None

    def __repr__(self) -> str:
        return f"Bidirectional({self.forward_layer!r}, merge_mode={self.merge_mode!r})"
