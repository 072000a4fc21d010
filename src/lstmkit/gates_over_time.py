"""What an LSTM's gates and states do over one sequence: every layer's and direction's i, f, g, o, c and h.

``lstm_gates_over_time(lstm, sequence)`` runs ``lstm`` in evaluation mode (no dropout) on one
unbatched sequence and returns a dict keyed ``(layer, direction, name)``:

=======  ==========  ==============================================================
name     shape       what
=======  ==========  ==============================================================
``i``    (T, H_k)    input gate σ(·), in [0, 1]
``f``    (T, H_k)    forget gate σ(·), in [0, 1]
``g``    (T, H_k)    cell candidate tanh(·), in [-1, 1]
``o``    (T, H_k)    output gate σ(·), in [0, 1]
``c``    (T, H_k)    cell state c_t
``h``    (T, H_out)  hidden state h_t (projected when proj_size > 0), the layer's output
=======  ==========  ==============================================================

Every array is in the input's time: row t is input step t, for the reverse direction too
(direction 1 is the one that reads the sequence backwards, PyTorch's ``_reverse``).

``h`` and ``c`` are the layer's own states (its ``return_states="all"``). The gates come from
the reference op :func:`lstmkit.ops.lstm.lstm_forward`, whose cache keeps every step's
activated gates, run on each layer-direction's input: the sequence for layer 0, the previous
layer's h of both directions merged by ``merge_mode`` (:func:`~lstmkit.nn.directions.merge_directions`)
for the layers above, as in evaluation no dropout lies between them. That run's h and c must
equal the layer's, which is checked: the gates shown are those of the states the layer computed.

``recurrent_input(model, inputs)`` finds the LSTM inside a model lstmkit trains (a task's
``Sequential(LSTM, LastStep, Linear)`` or a :class:`~lstmkit.nn.language_model.LanguageModel`)
and the sequence that reaches it.
"""

from __future__ import annotations

import numpy as np

from .grad_mode import no_grad
from .nn.directions import merge_directions
from .nn.language_model import LanguageModel
from .nn.layers import Sequential
from .nn.module import Module
from .nn.recurrent import LSTM
from .nn.weight_shapes import weight_suffix
from .ops.lstm import LSTMWeights, lstm_forward
from .ops.recurrence import Zoneout

GATES = ("i", "f", "g", "o")
NAMES = (*GATES, "c", "h")
DIRECTIONS = ("forward", "reverse")

# how far the reference op's states may differ from the layer's (which may have run the fast ops)
_TOLERANCE = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}


def recurrent_input(model: Module, inputs: np.ndarray) -> tuple[LSTM, np.ndarray]:
    """``(lstm, sequence)``: the LSTM of ``model`` and the unbatched (T, H_in) sequence it reads
    when ``model`` is given ``inputs`` (one sample: (T, features), or (T,) token ids for a
    language model). A ValueError for a model of another shape."""
    if isinstance(model, LanguageModel):
        tokens = np.asarray(inputs)
        if tokens.ndim != 1:
            raise ValueError(f"a language model reads one sequence of token ids (T,), got shape {tokens.shape}")
        with no_grad():
            return model.lstm, model.embedding(tokens[:, None])[:, 0]  # input dropout: none in evaluation
    if isinstance(model, Sequential) and len(model) and isinstance(model[0], LSTM):
        return model[0], np.asarray(inputs)
    raise ValueError(
        f"expected a recurrent model (an LSTM first in a Sequential, or a LanguageModel), got {type(model).__name__}"
    )


def layer_weights(lstm: LSTM, layer: int, direction: int) -> LSTMWeights:
    """The parameters of one layer-direction, by their PyTorch names, as the reference op takes them."""
    suffix = weight_suffix(layer, direction)
    parameters = dict(lstm.named_parameters())
    return LSTMWeights(
        **{field: parameters[field + suffix].data for field in LSTMWeights._fields if field + suffix in parameters}
    )


def _zoneout(lstm: LSTM, dtype) -> Zoneout | None:
    """Zoneout in evaluation: the previous state is kept in the fraction z of each part."""
    rates = lstm.zoneout if isinstance(lstm.zoneout, tuple) else (lstm.zoneout, lstm.zoneout)
    if not any(rates):
        return None
    return Zoneout(*(np.asarray(rate, dtype) if rate else None for rate in rates))


def _layer_states(lstm: LSTM, sequence: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The layer's own (h, c) of every step, (T, ·) each, per layer-direction (layer-major)."""
    previous_mode, previous_states = lstm.training, lstm.return_states
    lstm.eval()
    lstm.return_states = "all"
    try:
        with no_grad():
            _, _, (h_all, c_all) = lstm(sequence)
    finally:
        lstm.return_states = previous_states
        lstm.train(previous_mode)
    if isinstance(h_all, list):  # per-layer hidden sizes: one (D, T, ·) array per layer
        h_all, c_all = [row for part in h_all for row in part], [row for part in c_all for row in part]
    return list(zip(h_all, c_all))


def lstm_gates_over_time(lstm: LSTM, sequence) -> dict[tuple[int, int, str], np.ndarray]:
    """``(layer, direction, name) -> (T, units)`` for name in i, f, g, o, c, h (see the module docstring).

    ``sequence``: one unbatched input (T, input_size). The layer's mode and return_states are
    restored afterwards. A ValueError for a layer that is not an LSTM or an input of another shape.
    """
    if not isinstance(lstm, LSTM):
        raise ValueError(f"lstm_gates_over_time: expected an lstmkit LSTM, got {type(lstm).__name__}")
    x = np.asarray(sequence, dtype=lstm.dtype)
    if x.ndim != 2 or x.shape[-1] != lstm.input_size or len(x) == 0:
        raise ValueError(
            f"lstm_gates_over_time: expected one sequence of shape (T >= 1, {lstm.input_size}), got shape {x.shape}"
        )
    states = _layer_states(lstm, x)
    D, zoneout = lstm.num_directions, _zoneout(lstm, lstm.dtype)
    result, layer_input = {}, x[:, None, :]  # time-major (T, N=1, features)
    for layer in range(lstm.num_layers):
        for direction in range(D):
            h_layer, c_layer = states[layer * D + direction]
            sequence_in = layer_input[::-1] if direction else layer_input
            weights = layer_weights(lstm, layer, direction)
            h0 = np.zeros((1, h_layer.shape[-1]), lstm.dtype)
            c0 = np.zeros((1, c_layer.shape[-1]), lstm.dtype)
            output, _, _, cache = lstm_forward(
                np.ascontiguousarray(sequence_in), h0, c0, weights,
                forget_bias=lstm.runtime_forget_bias, zoneout=zoneout,
            )  # fmt: skip
            in_time = slice(None, None, -1) if direction else slice(None)
            h, c, gates = output[in_time, 0], cache.c[1:][in_time, 0], cache.steps.gates[in_time, 0]
            _check_same(layer, direction, (h, c), (h_layer, c_layer), _TOLERANCE.get(lstm.dtype, 1e-4))
            for name, gate in zip(GATES, np.split(gates, 4, axis=-1)):
                result[layer, direction, name] = gate
            result[layer, direction, "c"], result[layer, direction, "h"] = c_layer, h_layer
        outputs = [result[layer, direction, "h"] for direction in range(D)]
        merged = merge_directions(lstm.merge_mode, *outputs) if D == 2 else outputs[0]
        layer_input = merged[:, None, :]
    return result


def _check_same(layer: int, direction: int, recomputed, layers_own, tolerance: float) -> None:
    for name, mine, theirs in zip(("h", "c"), recomputed, layers_own):
        if not np.allclose(mine, theirs, rtol=0, atol=tolerance):
            raise RuntimeError(
                f"lstm_gates_over_time: layer {layer} {DIRECTIONS[direction]}: the reference op's {name} differs from "
                f"the layer's by {np.max(np.abs(mine - theirs)):.3g}; this layer has an option the recomputation lacks"
            )
