"""Keras 3's ``LSTM``, ``GRU`` and ``SimpleRNN``: Keras' arguments, weights and outputs, lstmkit's ops.

Shared behaviour (inputs, masks, states, ``backward``) is documented on
:class:`~._recurrent.KerasRNN`; each class here picks its cell kind and weight layout.
"""

from __future__ import annotations

import numpy as np

from ..nn import checks
from ..nn.kinds import LSTM_KIND, RNN_KINDS
from ._formats import GRU_FORMATS, LSTM_FORMAT, SIMPLE_RNN_FORMAT
from ._recurrent import KerasRNN, _check_choice

_COMMON = """
    Common arguments (Keras' names and defaults): ``use_bias=True``, ``dropout=0.0`` (one mask per
    sequence on the input, in training), ``recurrent_dropout=0.0`` (one mask per sequence and gate
    on h_{t-1}, in training; the input then also gets one mask per gate, as Keras' cell does),
    ``return_sequences=False``, ``return_state=False``, ``go_backwards=False``,
    ``stateful=False`` (the final states of a call start the next one; ``reset_states()``),
    ``seed=None`` (initial weights and dropout masks), and ``dtype=numpy.float32`` (or float64).
    Keyword-only, lstmkit's own: ``backend="auto"`` ("reference" or "fast"; SimpleRNN has no fast
    one), which implementation runs the equations (:mod:`lstmkit.ops.backends`).
"""


class LSTM(KerasRNN):
    """``keras.layers.LSTM``: gate order i, f, c, o (PyTorch's i, f, g, o)::

        z = x_t kernel + h_{t-1} recurrent_kernel + bias      (N, 4U)
        i, f, o = σ(z_i), σ(z_f), σ(z_o);   c̃ = tanh(z_c)
        c_t = f ⊙ c_{t-1} + i ⊙ c̃;          h_t = o ⊙ tanh(c_t)

    ==================  ==========  ===========================================================
    kernel              (F, 4U)     = weight_ihᵀ (glorot_uniform)
    recurrent_kernel    (U, 4U)     = weight_hhᵀ (orthogonal)
    bias                (4U,)       = bias_ih + bias_hh (zeros; ones in the f block with
                                    ``unit_forget_bias=True``)
    states              [h, c]      each (N, U)
    ==================  ==========  ===========================================================

    ``activation`` must be 'tanh' and ``recurrent_activation`` 'sigmoid' (others are refused).
    """

    # The constructor as PyTorch and Keras write theirs, a few arguments a line (not formatted).
    # fmt: off
    def __init__(self, units: int, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 unit_forget_bias=True, dropout=0.0, recurrent_dropout=0.0, return_sequences=False,
                 return_state=False, go_backwards=False, stateful=False, seed=None, *, dtype=np.float32,
                 backend: str = "auto"):
        _check_choice("LSTM", "activation", activation, ("tanh",))
        _check_choice("LSTM", "recurrent_activation", recurrent_activation, ("sigmoid",))
        self.unit_forget_bias = bool(unit_forget_bias)
        super().__init__(LSTM_FORMAT, LSTM_KIND, units, use_bias=use_bias, dropout=dropout,
                         recurrent_dropout=recurrent_dropout, return_sequences=return_sequences,
                         return_state=return_state, go_backwards=go_backwards, stateful=stateful, seed=seed,
                         dtype=dtype, forget_bias_block=1 if unit_forget_bias else None, backend=backend)
    # fmt: on


class GRU(KerasRNN):
    """``keras.layers.GRU``; with ``reset_after=True`` (Keras' default) PyTorch's equations::

        z = σ(x_t K_z + b_z + h_{t-1} R_z + r_z)              update gate
        r = σ(x_t K_r + b_r + h_{t-1} R_r + r_r)              reset gate
        h̃ = tanh(x_t K_h + b_h + r ⊙ (h_{t-1} R_h + r_h))     candidate, reset_after=True
        h̃ = tanh(x_t K_h + b_h + (r ⊙ h_{t-1}) R_h)           candidate, reset_after=False
        h_t = z ⊙ h_{t-1} + (1 - z) ⊙ h̃

    ==================  ==========  ===========================================================
    kernel              (F, 3U)     blocks z, r, h = PyTorch's weight_ih blocks z, r, n, ᵀ
    recurrent_kernel    (U, 3U)     likewise of weight_hh
    bias                (2, 3U)     reset_after=True: [input bias (b), recurrent bias (r)]
                                    = [bias_ih, bias_hh]
                        (3U,)       reset_after=False: one bias (b; r is none)
    states              [h]         (N, U)
    ==================  ==========  ===========================================================

    ``reset_after=False`` (Keras' other candidate: the reset gate scales h_{t-1} before the
    recurrent product, and its recurrent dropout mask of the h block is on h_{t-1}, as Keras'
    cell has it) runs the reference ops (:mod:`lstmkit.ops.gru`; the fast ones lack it, so
    ``backend="fast"`` is a ValueError) and has no PyTorch twin (:func:`~.convert.to_torch`).
    """

    # The constructor as PyTorch and Keras write theirs, a few arguments a line (not formatted).
    # fmt: off
    def __init__(self, units: int, activation="tanh", recurrent_activation="sigmoid", use_bias=True, dropout=0.0,
                 recurrent_dropout=0.0, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, seed=None, reset_after=True, *, dtype=np.float32, backend: str = "auto"):
        _check_choice("GRU", "activation", activation, ("tanh",))
        _check_choice("GRU", "recurrent_activation", recurrent_activation, ("sigmoid",))
        self._reset_after = checks.check_flag("GRU", "reset_after", reset_after)
        keras_format, kind = GRU_FORMATS[self._reset_after]
        super().__init__(keras_format, kind, units, use_bias=use_bias, dropout=dropout,
                         recurrent_dropout=recurrent_dropout, return_sequences=return_sequences,
                         return_state=return_state, go_backwards=go_backwards, stateful=stateful, seed=seed,
                         dtype=dtype, backend=backend, fast_lacks=None if self.reset_after else "reset_after=False")
    # fmt: on

    @property
    def reset_after(self) -> bool:
        """Which candidate (the class docstring); fixed at construction, as the weights' layout is."""
        return self._reset_after

    def _config_repr(self) -> list[str]:
        return super()._config_repr() + ([] if self.reset_after else ["reset_after=False"])


class SimpleRNN(KerasRNN):
    """``keras.layers.SimpleRNN``: ``h_t = act(x_t kernel + h_{t-1} recurrent_kernel + bias)``.

    ==================  ==========  ===========================================================
    kernel              (F, U)      = weight_ihᵀ
    recurrent_kernel    (U, U)      = weight_hhᵀ
    bias                (U,)        = bias_ih + bias_hh
    states              [h]         (N, U)
    ==================  ==========  ===========================================================

    ``activation`` is 'tanh' (default) or 'relu' (PyTorch's RNN nonlinearities). As in Keras, a
    dropout rate of 1 zeroes what it drops (LSTM and GRU ignore a rate of 1).
    """

    drops_all_at_rate_one = True

    # The constructor as PyTorch and Keras write theirs, a few arguments a line (not formatted).
    # fmt: off
    def __init__(self, units: int, activation="tanh", use_bias=True, dropout=0.0, recurrent_dropout=0.0,
                 return_sequences=False, return_state=False, go_backwards=False, stateful=False, seed=None,
                 *, dtype=np.float32, backend: str = "auto"):
        _check_choice("SimpleRNN", "activation", activation, tuple(RNN_KINDS))
        self.activation = activation
        super().__init__(SIMPLE_RNN_FORMAT, RNN_KINDS[activation], units, use_bias=use_bias, dropout=dropout,
                         recurrent_dropout=recurrent_dropout, return_sequences=return_sequences,
                         return_state=return_state, go_backwards=go_backwards, stateful=stateful, seed=seed,
                         dtype=dtype, backend=backend)
    # fmt: on


for _layer in (LSTM, GRU, SimpleRNN):
    _layer.__doc__ += _COMMON
