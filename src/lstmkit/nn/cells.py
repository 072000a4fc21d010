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
from .kinds import GRU_KIND, LSTM_KIND, CellKind, register_weights, rnn_kind
from .module import Module
from .packing import PackedSequence
from .variants import VariantOptions
from .weight_shapes import layer_weight_shapes


class RNNCellBase(VariantOptions, Module):
    """One step of a recurrent cell of the given kind; subclasses document the equations.

    Stepping a cell by hand over a sequence and then calling ``backward`` once per step, last
    step first, is backpropagation through time: each call consumes the matching forward.
    ``backend`` ("auto", "reference" or "fast") picks the implementation (see
    :class:`~.backend_switch.BackendSwitch`); a GRU's or RNN's zoneout runs the reference ops,
    an LSTM's layer norm, peepholes, zoneout and runtime forget_bias the fused variant ops.

    ``zoneout`` (every kind; a pair (z_h, z_c) or one number for an LSTM cell, one number
    otherwise), in [0, 1): in training each call draws 0/1 keep masks (1, N, H) (one step of
    N sequences), 1 with probability z, from the cell's generator (``seed``), and the new
    state is ``keep ⊙ state + (1 - keep) ⊙ state'``; in eval mode keep = z. Stepped by hand,
    every call draws afresh: a fresh mask every step. ``zoneout`` and an LSTM cell's
    ``runtime_forget_bias`` may be assigned after construction (checked as the constructor
    checks them); ``layer_norm`` and ``peepholes`` define parameters and are fixed.
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
        zoneout: float | tuple[float, float] = 0.0,
        layer_norm: bool = False,
        peepholes: bool = False,
        runtime_forget_bias: float = 0.0,
    ):
        super().__init__()
        owner = type(self).__name__
        self._kind = kind
        self.input_size, self.hidden_size, self.bias, self.dtype = checks.check_recurrent_options(
            owner, input_size, hidden_size, bias, dtype
        )
        self._set_variants(backend, zoneout, layer_norm, peepholes, runtime_forget_bias)
        (shapes,) = layer_weight_shapes(
            kind.gate_count, self.input_size, [self.hidden_size], self.bias, layer_norm=self.layer_norm,
            peepholes=self.peepholes,
        )  # fmt: skip
        self._rng = np.random.default_rng(seed)  # the initial weights, then zoneout's masks
        entries = [(base, base, shape) for base, shape in shapes.items()]
        register_weights(self, [(self.hidden_size, entries)], self._rng, self.dtype)

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
        options = self._op_options
        if self._zoned:  # one step of N sequences
            options = dict(options, zoneout=self._zoneout_masks((1, x.shape[0]), (self.hidden_size,) * len(state)))
        _, state1, cache = ops.forward(x[None], state, self._weights(), is_grad_enabled(), None, **options)
        if cache is not None:
            self._save_for_backward((cache, batched, ops))
        return self._caller_state(state1, batched)

    def backward(self, dhx: ArrayLike | tuple) -> tuple[np.ndarray, np.ndarray | tuple[np.ndarray, ...]]:
        """``dx, dhx = cell.backward(dhx')`` for the latest unmatched forward (dhx' shaped like its output)."""
        cache, batched, ops = self._peek_saved()
        dstate1 = self._check_state(dhx, "dhx", cache.x.shape[1], batched)
        self._pop_saved()
        dx, dstate0, dweights = ops.backward(np.zeros_like(cache.h[1:]), dstate1, cache)
        for name, gradient in dweights._asdict().items():
            if gradient is not None:
                self._parameters[name].accumulate(gradient)
        return (dx[0] if batched else dx[0, 0]), self._caller_state(dstate0, batched)

    _defaults = dict(zoneout=0.0, layer_norm=False, peepholes=False, runtime_forget_bias=0.0)  # shown when not these

    def extra_repr(self) -> str:
        options = "".join(
            f", {key}={getattr(self, key)!r}"
            for key, default in self._defaults.items()
            if getattr(self, key) != default
        )
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False") + options

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


class LSTMCell(RNNCellBase):
    r"""One LSTM step, numerically identical to ``torch.nn.LSTMCell``::

        i = σ(W_ii x + b_ii + W_hi h + b_hi)      f = σ(W_if x + b_if + W_hf h + b_hf)
        g = tanh(W_ig x + b_ig + W_hg h + b_hg)   o = σ(W_io x + b_io + W_ho h + b_ho)
        c' = f ⊙ c + i ⊙ g                        h' = o ⊙ tanh(c')

    The variants, each off by default, as :class:`~.recurrent.LSTM`'s (z = the 4H
    pre-activations in blocks z_i, z_f, z_g, z_o, b = b_ih + b_hh)::

        peepholes=True:         i = σ(z_i + p_i ⊙ c)   f = σ(z_f + p_f ⊙ c)   o = σ(z_o + p_o ⊙ c')
        layer_norm=True:        z = LN(W_ih x) ⊙ g_ih + LN(W_hh h) ⊙ g_hh + b
                                h' = o ⊙ tanh(LN(c') ⊙ g_c + b_c)
        runtime_forget_bias=β:  f = σ(z_f + β)
        zoneout=(z_h, z_c):     h' ← k_h ⊙ h + (1 - k_h) ⊙ h', the same for c (see RNNCellBase)

    Args:
        input_size, hidden_size: features of x (H_in) and units of h and c (H).
        bias: whether ``bias_ih`` and ``bias_hh`` (and ``layer_norm_bias_c``) exist. Default True.
        dtype: numpy.float32 (default) or numpy.float64.
        seed: seed of the initialisation (uniform in (-1/sqrt(H), 1/sqrt(H))) and of zoneout's masks.
        backend: "auto" (default), "reference" or "fast": which implementation runs the equations
            (:mod:`lstmkit.ops.backends`); the same numbers either way. The variants run the
            fused variant ops.
        layer_norm, peepholes: the variants above (False by default).
        zoneout: one number in [0, 1) for h and c, or a pair (z_h, z_c). Default 0.
        runtime_forget_bias: TF1's forget_bias β, added to f's pre-activation at every call; no
            parameter (an initial forget-gate bias is ``bias_ih``'s to set). Default 0.

    ======================  =============================  ===========================================
    x                       (N, H_in) or (H_in,)           input of this step
    hx                      (h, c), each (N, H) or (H,)    zeros if omitted
    returns                 (h', c'), each (N, H) or (H,)
    weight_ih               (4H, H_in)                     rows i, f, g, o
    weight_hh               (4H, H)
    bias_ih                 (4H,)                          when bias
    bias_hh                 (4H,)                          when bias
    weight_peephole         (3H,)                          peepholes: p_i, p_f, p_o, uniform as the
                                                           weights, drawn after them
    layer_norm_weight_ih    (4H,)                          layer_norm: g_ih, ones
    layer_norm_weight_hh    (4H,)                          layer_norm: g_hh, ones
    layer_norm_weight_c     (H,)                           layer_norm: g_c, ones
    layer_norm_bias_c       (H,)                           layer_norm and bias: b_c, zeros
    ======================  =============================  ===========================================

    ``dx, (dh, dc) = cell.backward((dh', dc'))``; stepped by hand T times, T backward calls
    (last step first) are backpropagation through time.
    """

    # The constructor as PyTorch and Keras write theirs, a few arguments a line (not formatted).
    # fmt: off
    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, dtype=np.float32,
                 seed: int | None = None, backend: str = "auto", layer_norm: bool = False, peepholes: bool = False,
                 zoneout: float | tuple[float, float] = 0.0, runtime_forget_bias: float = 0.0):
        super().__init__(LSTM_KIND, input_size, hidden_size, bias, dtype=dtype, seed=seed, backend=backend,
                         zoneout=zoneout, layer_norm=layer_norm, peepholes=peepholes,
                         runtime_forget_bias=runtime_forget_bias)
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
        zoneout: one number z in [0, 1) for h (see :class:`RNNCellBase`); it runs the reference ops.
        layer_norm, peepholes, runtime_forget_bias: :class:`LSTMCell`'s options, accepted off
            only (False or 0); on, each is a ValueError that says what a GRU cell lacks for it.

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
                 seed: int | None = None, backend: str = "auto", zoneout: float = 0.0, layer_norm: bool = False,
                 peepholes: bool = False, runtime_forget_bias: float = 0.0):
        super().__init__(GRU_KIND, input_size, hidden_size, bias, dtype=dtype, seed=seed, backend=backend,
                         zoneout=zoneout, layer_norm=layer_norm, peepholes=peepholes,
                         runtime_forget_bias=runtime_forget_bias)
    # fmt: on


class RNNCell(RNNCellBase):
    r"""One Elman RNN step, numerically identical to ``torch.nn.RNNCell``::

        h' = act(W_ih x + b_ih + W_hh h + b_hh)      act = tanh (default) or relu

    Arguments (``zoneout`` and the refused LSTM options too), input, state and output as
    :class:`GRUCell`'s, plus ``nonlinearity`` ('tanh' or 'relu'); the parameters have one block
    of H rows: weight_ih (H, H_in), weight_hh (H, H), bias_ih and bias_hh (H,).
    ``dx, dh = cell.backward(dh')``.
    """

    # The constructor as PyTorch and Keras write theirs, a few arguments a line (not formatted).
    # fmt: off
    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 *, dtype=np.float32, seed: int | None = None, backend: str = "auto", zoneout: float = 0.0,
                 layer_norm: bool = False, peepholes: bool = False, runtime_forget_bias: float = 0.0):
        self.nonlinearity = nonlinearity
        super().__init__(rnn_kind(type(self).__name__, nonlinearity), input_size, hidden_size, bias,
                         dtype=dtype, seed=seed, backend=backend, zoneout=zoneout, layer_norm=layer_norm,
                         peepholes=peepholes, runtime_forget_bias=runtime_forget_bias)
    # fmt: on

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.nonlinearity == "tanh" else f", nonlinearity={self.nonlinearity!r}")
