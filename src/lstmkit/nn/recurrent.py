"""Multi-layer, optionally bidirectional recurrent layers with PyTorch's API.

The stacking, the directions, dropout between layers and the shape bookkeeping are written
here once; the cell's equations come from :mod:`lstmkit.ops`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..ops.lstm import LSTMWeights, lstm_backward, lstm_forward
from ..grad_mode import is_grad_enabled
from . import _checks
from .module import Module


class _Saved(NamedTuple):
    """What one forward call of a recurrent layer keeps for its backward."""

    caches: list  # [layer][direction] op cache
    dropout_masks: list  # [layer] mask or None, applied to that layer's output
    batched: bool
    time_major_shape: tuple  # (L, N, D*R) of the output, before any batch_first transpose


class LSTM(Module):
    r"""A multi-layer long short-term memory RNN, numerically identical to ``torch.nn.LSTM``.

    For each element of the input sequence, each layer computes (gate order i, f, g, o)::

        i_t = σ(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)
        f_t = σ(W_if x_t + b_if + W_hf h_{t-1} + b_hf)
        g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)
        o_t = σ(W_io x_t + b_io + W_ho h_{t-1} + b_ho)
        c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
        h_t = o_t ⊙ tanh(c_t)              (then h_t = W_hr h_t when proj_size > 0)

    Layer k > 0 takes the previous layer's h_t (both directions concatenated), multiplied by a
    dropout mask in training mode when ``dropout > 0``.

    Args:
        input_size: features of x_t (H_in).
        hidden_size: units of h_t and c_t (H).
        num_layers: stacked layers. Default 1.
        bias: whether the layers have ``bias_ih`` and ``bias_hh``. Default True.
        batch_first: input and output as (N, L, ·) instead of (L, N, ·); states are never batch-first.
        dropout: probability of zeroing each output of every layer but the last, in training.
        bidirectional: run a second LSTM over the reversed sequence and concatenate. Default False.
        proj_size: if > 0, h_t is projected to this size by ``weight_hr`` (H_out = proj_size).
        dtype: numpy.float32 (default) or numpy.float64.
        seed: seed of the ``numpy.random.Generator`` that draws the initial weights and dropout masks.

    Inputs: ``input, (h_0, c_0)`` with D = 2 if bidirectional else 1, H_out = proj_size or hidden_size:

        =========  =================================================================
        input      (L, N, H_in), (N, L, H_in) if batch_first, or unbatched (L, H_in)
        h_0        (D * num_layers, N, H_out) or unbatched (D * num_layers, H_out); zeros if omitted
        c_0        (D * num_layers, N, H) or unbatched (D * num_layers, H); zeros if omitted
        =========  =================================================================

    Outputs: ``output, (h_n, c_n)``:

        =========  =================================================================
        output     (L, N, D * H_out) (batch-first if batch_first): the last layer's h_t, every t
        h_n        (D * num_layers, N, H_out): every layer's and direction's final h
        c_n        (D * num_layers, N, H): every layer's and direction's final c
        =========  =================================================================

    ``h_n[-1]`` is the last layer's *reverse* direction, whose final step is t = 0, so for a
    bidirectional LSTM ``h_n[-1]`` equals ``output[0, :, H_out:]``, not ``output[-1]``.

    Parameters (k = layer, suffix ``_reverse`` for the second direction), all initialised
    uniform in (-1/sqrt(H), 1/sqrt(H)):

        ================  ==============================================================
        weight_ih_l{k}    (4H, H_in) for k = 0, else (4H, D * H_out); rows i, f, g, o
        weight_hh_l{k}    (4H, H_out)
        bias_ih_l{k}      (4H,)
        bias_hh_l{k}      (4H,)
        weight_hr_l{k}    (proj_size, H), only when proj_size > 0
        ================  ==============================================================

    Backward: ``dinput, (dh_0, dc_0) = lstm.backward(doutput, (dh_n, dc_n))`` with gradients
    shaped like the forward's outputs and inputs; ``dhx`` or either of its parts may be None.
    Parameter gradients are added to each ``Parameter.grad``.
    """

    _gate_count = 4

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        *,
        dtype=np.float32,
        seed: int | None = None,
    ):
        super().__init__()
        owner = type(self).__name__
        self.input_size = _checks.check_size(owner, "input_size", input_size)
        self.hidden_size = _checks.check_size(owner, "hidden_size", hidden_size)
        self.num_layers = _checks.check_size(owner, "num_layers", num_layers)
        self.bias = _checks.check_flag(owner, "bias", bias)
        self.batch_first = _checks.check_flag(owner, "batch_first", batch_first)
        self.dropout = _checks.check_probability(owner, "dropout", dropout)
        self.bidirectional = _checks.check_flag(owner, "bidirectional", bidirectional)
        self.proj_size = _checks.check_size(owner, "proj_size", proj_size, minimum=0)
        if self.proj_size >= self.hidden_size:
            raise ValueError(
                f"{owner}: proj_size must be smaller than hidden_size={self.hidden_size}, got {self.proj_size}"
            )
        self.dtype = _checks.check_dtype(owner, dtype)
        self._rng = np.random.default_rng(seed)
        self._register_weights()

    # ---- parameters ------------------------------------------------------------------
    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """H_out: the size of h_t (proj_size if set, else hidden_size)."""
        return self.proj_size or self.hidden_size

    def _layer_input_size(self, layer: int) -> int:
        return self.input_size if layer == 0 else self.num_directions * self.output_size

    def _weight_shapes(self, layer: int) -> dict[str, tuple[int, ...]]:
        """Base name -> shape of one layer-direction's parameters, in PyTorch's order."""
        rows = self._gate_count * self.hidden_size
        shapes = {"weight_ih": (rows, self._layer_input_size(layer)), "weight_hh": (rows, self.output_size)}
        if self.bias:
            shapes.update(bias_ih=(rows,), bias_hh=(rows,))
        if self.proj_size:
            shapes["weight_hr"] = (self.proj_size, self.hidden_size)
        return shapes

    @staticmethod
    def _suffix(layer: int, direction: int) -> str:
        return f"_l{layer}" + ("_reverse" if direction else "")

    def _register_weights(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                for base, shape in self._weight_shapes(layer).items():
                    data = self._rng.uniform(-bound, bound, size=shape).astype(self.dtype)
                    self.register_parameter(base + self._suffix(layer, direction), data)

    def _weights(self, layer: int, direction: int) -> LSTMWeights:
        suffix = self._suffix(layer, direction)
        return LSTMWeights(
            **{base: self._parameters[base + suffix].data for base in self._weight_shapes(layer)}
        )

    def _accumulate(self, layer: int, direction: int, gradients: LSTMWeights) -> None:
        suffix = self._suffix(layer, direction)
        for base, gradient in gradients._asdict().items():
            if gradient is not None:
                self._parameters[base + suffix].accumulate(gradient)

    # ---- the cell kind: LSTM state is (h, c) -----------------------------------------
    def _state_sizes(self) -> tuple[int, ...]:
        return (self.output_size, self.hidden_size)

    def _state_names(self) -> tuple[str, ...]:
        return ("h_0", "c_0")

    def _run_direction(self, x, state, weights, keep_cache):
        output, h_last, c_last, cache = lstm_forward(x, state[0], state[1], weights, keep_cache)
        return output, (h_last, c_last), cache

    def _run_direction_backward(self, doutput, dstate_last, cache):
        dx, dh0, dc0, dweights = lstm_backward(doutput, dstate_last[0], dstate_last[1], cache)
        return dx, (dh0, dc0), dweights

    def _pack_state(self, state):
        return tuple(state)

    # ---- forward ---------------------------------------------------------------------
    def _time_major_input(self, input) -> tuple[np.ndarray, bool]:
        owner = type(self).__name__
        x = _checks.as_float_array(owner, "input", input, self.dtype)
        if x.ndim not in (2, 3):
            raise ValueError(
                f"{owner}: expected input of rank 2 (L, H_in) unbatched or 3 "
                f"({'N, L' if self.batch_first else 'L, N'}, H_in), got rank {x.ndim} with shape {x.shape}"
            )
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{owner}: input.shape[-1] must equal input_size={self.input_size}, got {x.shape[-1]}")
        batched = x.ndim == 3
        if not batched:
            x = x[:, None, :]
        elif self.batch_first:
            x = x.transpose(1, 0, 2)
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"{owner}: expected a sequence length and batch size >= 1, got input shape {np.shape(input)}")
        return np.ascontiguousarray(x), batched

    def _check_state(self, hx, name: str, batch: int, batched: bool) -> tuple[np.ndarray, ...]:
        """``hx`` (or the gradient of the final state) as a tuple of (D*num_layers, N, size) arrays."""
        part_names = self._state_names()
        if name != "hx":
            part_names = tuple("d" + part.replace("_0", "_n") for part in part_names)
        count = self.num_directions * self.num_layers
        shapes = [(count, batch, size) for size in self._state_sizes()]
        return _checks.state_arrays(type(self).__name__, name, hx, part_names, shapes, batched, self.dtype)

    def forward(self, input, hx=None):
        """Run the layer; see the class docstring for shapes. Returns ``output, (h_n, c_n)``."""
        x, batched = self._time_major_input(input)
        state0 = self._check_state(hx, "hx", x.shape[1], batched)
        keep_cache = is_grad_enabled()
        caches, masks, final_states = [], [], []
        layer_input = x
        for layer in range(self.num_layers):
            outputs, layer_caches = [], []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                sequence = layer_input[::-1] if direction else layer_input
                output, state_last, cache = self._run_direction(
                    np.ascontiguousarray(sequence), tuple(s[index] for s in state0), self._weights(layer, direction), keep_cache
                )
                outputs.append(output[::-1] if direction else output)
                layer_caches.append(cache)
                final_states.append(state_last)
            layer_output = np.concatenate(outputs, axis=-1) if len(outputs) > 1 else outputs[0]
            mask = self._dropout_mask(layer_output.shape) if layer < self.num_layers - 1 else None
            if mask is not None:
                layer_output = layer_output * mask
            caches.append(layer_caches)
            masks.append(mask)
            layer_input = layer_output

        output = layer_input
        states_n = tuple(np.stack(parts) for parts in zip(*final_states))
        if keep_cache:
            self._save_for_backward(_Saved(caches, masks, batched, output.shape))
        if not batched:
            output, states_n = output[:, 0], tuple(s[:, 0] for s in states_n)
        elif self.batch_first:
            output = output.transpose(1, 0, 2)
        return np.ascontiguousarray(output), self._pack_state(states_n)

    def reseed(self, seed: int | None) -> None:
        """Restart the generator that draws dropout masks (same seed, same masks from here on)."""
        self._rng = np.random.default_rng(seed)

    def _dropout_mask(self, shape) -> np.ndarray | None:
        if not self.training or self.dropout == 0.0:
            return None
        if self.dropout == 1.0:
            return np.zeros(shape, dtype=self.dtype)
        keep = self._rng.random(shape) >= self.dropout
        return keep.astype(self.dtype) / self.dtype.type(1.0 - self.dropout)

    # ---- backward --------------------------------------------------------------------
    def backward(self, doutput, dhx=None):
        """Gradients of the input and initial state for the latest unmatched forward.

        Returns ``dinput, (dh_0, dc_0)`` shaped like the forward's input and state.
        """
        owner = type(self).__name__
        if not self._saved:
            self._pop_saved()  # raises the RuntimeError that explains the missing forward
        saved = self._saved[-1]
        length, batch, width = saved.time_major_shape
        dout = _checks.as_float_array(owner, "doutput", doutput, self.dtype)
        if not saved.batched:
            expected = (length, width)
        elif self.batch_first:
            expected = (batch, length, width)
        else:
            expected = (length, batch, width)
        _checks.check_shape(owner, "doutput", dout, expected)
        dstate_n = self._check_state(dhx, "dhx", batch, saved.batched)
        self._pop_saved()

        if not saved.batched:
            dout = dout[:, None, :]
        elif self.batch_first:
            dout = dout.transpose(1, 0, 2)
        dstate0 = [[None] * self.num_directions * self.num_layers for _ in dstate_n]
        dlayer_output = dout
        for layer in reversed(range(self.num_layers)):
            if saved.dropout_masks[layer] is not None:
                dlayer_output = dlayer_output * saved.dropout_masks[layer]
            dlayer_input = 0.0
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                dpart = dlayer_output[..., direction * self.output_size : (direction + 1) * self.output_size]
                if direction:
                    dpart = dpart[::-1]
                dx, dstate, dweights = self._run_direction_backward(
                    np.ascontiguousarray(dpart), tuple(d[index] for d in dstate_n), saved.caches[layer][direction]
                )
                self._accumulate(layer, direction, dweights)
                dlayer_input = dlayer_input + (dx[::-1] if direction else dx)
                for slot, value in zip(dstate0, dstate):
                    slot[index] = value
            dlayer_output = dlayer_input

        dinput = dlayer_output
        dstates = tuple(np.stack(parts) for parts in dstate0)
        if not saved.batched:
            dinput, dstates = dinput[:, 0], tuple(d[:, 0] for d in dstates)
        elif self.batch_first:
            dinput = dinput.transpose(1, 0, 2)
        return np.ascontiguousarray(dinput), self._pack_state(dstates)

    def extra_repr(self) -> str:
        parts = [f"{self.input_size}, {self.hidden_size}"]
        defaults = dict(num_layers=1, bias=True, batch_first=False, dropout=0.0, bidirectional=False, proj_size=0)
        parts += [f"{key}={getattr(self, key)}" for key, default in defaults.items() if getattr(self, key) != default]
        if self.dtype != np.float32:
            parts.append(f"dtype={self.dtype.name}")
        return ", ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"
