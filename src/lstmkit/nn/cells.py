"""Single-step recurrent cells with PyTorch's API: LSTMCell, GRUCell, RNNCell.

A cell runs its kind's whole-sequence op (on the backend asked for, :mod:`lstmkit.ops.backends`)
with one step, so a cell and a layer share their equations; :class:`RNNCellBase` holds what the
three share (parameters, checks, the cache stack).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ..grad_mode import is_grad_enabled
from . import checks
from .backend_switch import BackendSwitch
from .kinds import GRU_KIND, LSTM_KIND, CellKind, register_uniform_weights, rnn_kind
from .module import Module
from .packing import PackedSequence


class RNNCellBase(BackendSwitch, Module):
    """One step of a recurrent cell of the given kind; subclasses document the equations.

    Stepping a cell by hand over a sequence and then calling ``backward`` once per step, last
    step first, is backpropagation through time: each call consumes the matching forward.
    ``backend`` ("auto", "reference" or "fast") picks the implementation (see
    :class:`~.backend_switch.BackendSwitch`).
    """

    def __init__(
        self,
        kind: CellKind,
        input_size: int,
        hidden_size: int,
        bias: bool,
        *,
        dtype,
        seed: int | None,
        backend: str = "auto",
    ):
        super().__init__()
        owner = type(self).__name__
        self._kind = kind
        self.backend = backend
        self.input_size, self.hidden_size, self.bias, self.dtype = checks.check_recurrent_options(
            owner, input_size, hidden_size, bias, dtype
        )
        rows = kind.gate_count * self.hidden_size
        shapes = {"weight_ih": (rows, self.input_size), "weight_hh": (rows, self.hidden_size)}
        if self.bias:
            shapes.update(bias_ih=(rows,), bias_hh=(rows,))
        register_uniform_weights(self, shapes.items(), self.hidden_size, np.random.default_rng(seed), self.dtype)

    def _weights(self):
        return self._kind.weights(**{name: parameter.data for name, parameter in self._parameters.items()})

    def _check_state(self, state, name: str, batch: int, batched: bool) -> tuple[np.ndarray, ...]:
        part_names = tuple(("" if name == "hx" else "d") + part for part in self._kind.state_parts)
        shapes = [(batch, self.hidden_size)] * len(part_names)
        return checks.state_arrays(type(self).__name__, name, state, part_names, shapes, batched, self.dtype)

    @staticmethod
    def _caller_state(state: tuple, batched: bool):
        """``(h, c)`` for an LSTM cell, ``h`` for the others; without the batch axis if unbatched."""
        state = state if batched else tuple(part[0] for part in state)
        return state if len(state) > 1 else state[0]

    def forward(self, input: ArrayLike, hx: ArrayLike | tuple | None = None) -> np.ndarray | tuple[np.ndarray, ...]:
        """One step: returns the new state (``(h', c')`` for an LSTM cell, ``h'`` otherwise)."""
        owner = type(self).__name__
        if isinstance(input, PackedSequence):
            raise TypeError(
                f"{owner}: input must be one step, an array (N, H_in) or (H_in,), got a PackedSequence "
                f"(a cell takes no sequences; use the matching layer, e.g. lstmkit.{owner[:-4]})"
            )
        x = checks.as_float_array(owner, "input", input, self.dtype)
        if x.ndim not in (1, 2):
            raise ValueError(
                f"{owner}: expected input of rank 1 (H_in,) or 2 (N, H_in), got rank {x.ndim} with shape {x.shape}"
            )
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{owner}: input.shape[-1] must equal input_size={self.input_size}, got {x.shape[-1]}")
        batched = x.ndim == 2
        x = x if batched else x[None]
        state = self._check_state(hx, "hx", x.shape[0], batched)
        ops = self._ops()
        _, state1, cache = ops.forward(x[None], state, self._weights(), is_grad_enabled(), None)
        if cache is not None:
            self._save_for_backward((cache, batched, ops))
        return self._caller_state(state1, batched)

    def backward(self, dhx: ArrayLike | tuple) -> tuple[np.ndarray, np.ndarray | tuple[np.ndarray, ...]]:
        """``dx, dhx = cell.backward(dhx')`` for the latest unmatched forward (dhx' shaped like its output)."""
        if not self._saved:
            self._pop_saved()  # raises the RuntimeError that explains the missing forward
        cache, batched, ops = self._saved[-1]
        dstate1 = self._check_state(dhx, "dhx", cache.x.shape[1], batched)
        self._pop_saved()
        dx, dstate0, dweights = ops.backward(np.zeros_like(cache.h[1:]), dstate1, cache)
        for name, gradient in dweights._asdict().items():
            if gradient is not None:
                self._parameters[name].accumulate(gradient)
        return (dx[0] if batched else dx[0, 0]), self._caller_state(dstate0, batched)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


class LSTMCell(RNNCellBase):
    r"""One LSTM step, numerically identical to ``torch.nn.LSTMCell``::

        i = σ(W_ii x + b_ii + W_hi h + b_hi)      f = σ(W_if x + b_if + W_hf h + b_hf)
        g = tanh(W_ig x + b_ig + W_hg h + b_hg)   o = σ(W_io x + b_io + W_ho h + b_ho)
        c' = f ⊙ c + i ⊙ g                        h' = o ⊙ tanh(c')

    Args:
        input_size, hidden_size: features of x (H_in) and units of h and c (H).
        bias: whether ``bias_ih`` and ``bias_hh`` exist. Default True.
        dtype: numpy.float32 (default) or numpy.float64.
        seed: seed of the initialisation (uniform in (-1/sqrt(H), 1/sqrt(H))).
        backend: "auto" (default), "reference" or "fast": which implementation runs the equations
            (:mod:`lstmkit.ops.backends`); the same numbers either way.

    ==========  =============================  =====================================
    x           (N, H_in) or (H_in,)           input of this step
    hx          (h, c), each (N, H) or (H,)    zeros if omitted
    returns     (h', c'), each (N, H) or (H,)
    weight_ih   (4H, H_in)                     rows i, f, g, o
    weight_hh   (4H, H)
    bias_ih     (4H,)
    bias_hh     (4H,)
    ==========  =============================  =====================================

    ``dx, (dh, dc) = cell.backward((dh', dc'))``; stepped by hand T times, T backward calls
    (last step first) are backpropagation through time.
    """

    # The constructor as PyTorch and Keras write theirs, a few arguments a line (not formatted).
    # fmt: off
    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, dtype=np.float32,
                 seed: int | None = None, backend: str = "auto"):
        super().__init__(LSTM_KIND, input_size, hidden_size, bias, dtype=dtype, seed=seed, backend=backend)
    # fmt: on


class GRUCell(RNNCellBase):
    r"""One GRU step, numerically identical to ``torch.nn.GRUCell``::

        r = σ(W_ir x + b_ir + W_hr h + b_hr)      z = σ(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
        h' = (1 - z) ⊙ n + z ⊙ h

    Args:
        input_size, hidden_size: features of x (H_in) and units of h (H).
        bias: whether ``bias_ih`` and ``bias_hh`` exist. Default True.
        dtype: numpy.float32 (default) or numpy.float64.
        seed: seed of the initialisation (uniform in (-1/sqrt(H), 1/sqrt(H))).
        backend: "auto" (default), "reference" or "fast": which implementation runs the equations
            (:mod:`lstmkit.ops.backends`); the same numbers either way.

    ==========  =============================  =====================================
    x           (N, H_in) or (H_in,)           input of this step
    hx          h, (N, H) or (H,)              one array; zeros if omitted
    returns     h', (N, H) or (H,)
    weight_ih   (3H, H_in)                     rows r, z, n
    weight_hh   (3H, H)
    bias_ih     (3H,)
    bias_hh     (3H,)
    ==========  =============================  =====================================

    ``dx, dh = cell.backward(dh')``.
    """

    # The constructor as PyTorch and Keras write theirs, a few arguments a line (not formatted).
    # fmt: off
    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, dtype=np.float32,
                 seed: int | None = None, backend: str = "auto"):
        super().__init__(GRU_KIND, input_size, hidden_size, bias, dtype=dtype, seed=seed, backend=backend)
    # fmt: on


class RNNCell(RNNCellBase):
    r"""One Elman RNN step, numerically identical to ``torch.nn.RNNCell``::

        h' = act(W_ih x + b_ih + W_hh h + b_hh)      act = tanh (default) or relu

    Arguments, input, state and output as :class:`GRUCell`'s, plus ``nonlinearity`` ('tanh' or
    'relu'); the parameters have one block of H rows: weight_ih (H, H_in), weight_hh (H, H),
    bias_ih and bias_hh (H,). ``dx, dh = cell.backward(dh')``.
    """

    # The constructor as PyTorch and Keras write theirs, a few arguments a line (not formatted).
    # fmt: off
    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 *, dtype=np.float32, seed: int | None = None, backend: str = "auto"):
        self.nonlinearity = nonlinearity
        super().__init__(rnn_kind(type(self).__name__, nonlinearity), input_size, hidden_size, bias,
                         dtype=dtype, seed=seed, backend=backend)
    # fmt: on

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.nonlinearity == "tanh" else f", nonlinearity={self.nonlinearity!r}")
