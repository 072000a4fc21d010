"""Single-step recurrent cells with PyTorch's API; the equations come from :mod:`lstmkit.ops`."""

from __future__ import annotations

import math

import numpy as np

from ..grad_mode import is_grad_enabled
from ..ops.lstm import LSTMWeights, lstm_backward, lstm_forward
from . import _checks
from .module import Module


class LSTMCell(Module):
    r"""One LSTM step, numerically identical to ``torch.nn.LSTMCell``::

        i = σ(W_ii x + b_ii + W_hi h + b_hi)      f = σ(W_if x + b_if + W_hf h + b_hf)
        g = tanh(W_ig x + b_ig + W_hg h + b_hg)   o = σ(W_io x + b_io + W_ho h + b_ho)
        c' = f ⊙ c + i ⊙ g                        h' = o ⊙ tanh(c')

    Args:
        input_size, hidden_size: features of x (H_in) and units of h and c (H).
        bias: whether ``bias_ih`` and ``bias_hh`` exist. Default True.
        dtype: numpy.float32 (default) or numpy.float64.
        seed: seed of the initialisation (uniform in (-1/sqrt(H), 1/sqrt(H))).

    ==========  =============================  =====================================
    x           (N, H_in) or (H_in,)           input of this step
    hx          (h, c), each (N, H) or (H,)    zeros if omitted
    returns     (h', c'), each (N, H) or (H,)
    weight_ih   (4H, H_in)                     rows i, f, g, o
    weight_hh   (4H, H)
    bias_ih     (4H,)
    bias_hh     (4H,)
    ==========  =============================  =====================================

    Stepping a cell by hand over a sequence and then calling ``backward`` once per step, last
    step first, is backpropagation through time: each call consumes the matching forward.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, dtype=np.float32, seed=None):
        super().__init__()
        owner = type(self).__name__
        self.input_size = _checks.check_size(owner, "input_size", input_size)
        self.hidden_size = _checks.check_size(owner, "hidden_size", hidden_size)
        self.bias = _checks.check_flag(owner, "bias", bias)
        self.dtype = _checks.check_dtype(owner, dtype)
        rng = np.random.default_rng(seed)
        bound = 1.0 / math.sqrt(self.hidden_size)
        rows = 4 * self.hidden_size
        shapes = {"weight_ih": (rows, self.input_size), "weight_hh": (rows, self.hidden_size)}
        if self.bias:
            shapes.update(bias_ih=(rows,), bias_hh=(rows,))
        for name, shape in shapes.items():
            self.register_parameter(name, rng.uniform(-bound, bound, size=shape).astype(self.dtype))

    def _weights(self) -> LSTMWeights:
        return LSTMWeights(**{name: parameter.data for name, parameter in self._parameters.items()})

    def forward(self, input, hx=None):
        """Returns ``(h', c')`` for one step."""
        owner = type(self).__name__
        x = _checks.as_float_array(owner, "input", input, self.dtype)
        if x.ndim not in (1, 2):
            raise ValueError(f"{owner}: expected input of rank 1 (H_in,) or 2 (N, H_in), got rank {x.ndim} with shape {x.shape}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{owner}: input.shape[-1] must equal input_size={self.input_size}, got {x.shape[-1]}")
        batched = x.ndim == 2
        x = x if batched else x[None]
        h0, c0 = self._check_pair(hx, "hx", ("h", "c"), x.shape[0], batched)
        output, h1, c1, cache = lstm_forward(x[None], h0, c0, self._weights(), keep_cache=is_grad_enabled())
        if cache is not None:
            self._save_for_backward((cache, batched))
        return (h1, c1) if batched else (h1[0], c1[0])

    def _check_pair(self, pair, name, part_names, batch, batched):
        shapes = [(batch, self.hidden_size)] * 2
        return _checks.state_arrays(type(self).__name__, name, pair, part_names, shapes, batched, self.dtype)

    def backward(self, dhx):
        """``dx, (dh, dc) = cell.backward((dh', dc'))`` for the latest unmatched forward."""
        if not self._saved:
            self._pop_saved()  # raises the RuntimeError that explains the missing forward
        cache, batched = self._saved[-1]
        dh1, dc1 = self._check_pair(dhx, "dhx", ("dh", "dc"), cache.x.shape[1], batched)
        self._pop_saved()
        dx, dh0, dc0, dweights = lstm_backward(np.zeros_like(cache.h[1:]), dh1, dc1, cache)
        for name, gradient in dweights._asdict().items():
            if gradient is not None:
                self._parameters[name].accumulate(gradient)
        dx = dx[0]
        return (dx, (dh0, dc0)) if batched else (dx[0], (dh0[0], dc0[0]))

    def __repr__(self) -> str:
        extra = "" if self.bias else ", bias=False"
        return f"{type(self).__name__}({self.input_size}, {self.hidden_size}{extra})"
