"""Multi-layer, optionally bidirectional recurrent layers with PyTorch's API: LSTM, GRU, RNN.

Each class chooses its cell kind and documents its equations; the stacking, the directions,
dropout between layers, variable lengths and the shape bookkeeping are :class:`RNNBase`'s,
written once, and the equations themselves live in :mod:`lstmkit.ops`.

Variable lengths, for all three: ``layer(pack_padded_sequence(x, lengths, ...))`` returns a
PackedSequence output and final states taken at each sequence's own last step (caller's batch
order), and ``layer.backward(packed doutput, dhx)`` returns the input gradient packed the same
way; ``layer(x, lengths=lengths)`` does the same on padded arrays (output zero past each end),
and ``layer(x, lengths=lengths, padding_side="left")`` on arrays padded at the front.
"""

from __future__ import annotations

import numpy as np

from .kinds import GRU_KIND, LSTM_KIND, rnn_kind
from .rnn_base import RNNBase

_SHARED_ARGS = """
        num_layers: stacked layers. Default 1.
        bias: whether the layers have ``bias_ih`` and ``bias_hh``. Default True.
        batch_first: input and output as (N, L, ·) instead of (L, N, ·); states are never batch-first.
        dropout: probability of zeroing each output of every layer but the last, in training.
        bidirectional: run a second layer over the reversed sequence and merge the two outputs as
            ``merge_mode`` says (concatenated by default). Default False.
        dtype: numpy.float32 (default) or numpy.float64.
        seed: seed of the ``numpy.random.Generator`` that draws the initial weights and dropout masks.
        backend: "auto" (default), "reference" or "fast": which implementation runs the equations
            (:mod:`lstmkit.ops.backends`; an RNN has no fast one); the same numbers either way.
        recurrent_dropout: variational dropout on the state (Gal & Ghahramani 2016), in [0, 1),
            default 0: in training, every layer and direction draws ONE mask per sequence of
            shape (N, H_out_k), entries 0 or 1/(1 - p), and multiplies h_{t-1} by it wherever
            W_hh meets it, the same mask at every step (drawn from ``seed``'s generator at each
            forward; none in eval mode). 1 is refused: it would cut every recurrence. An LSTM
            runs it on the fused variant ops (backend "auto" or "fast"); a GRU or RNN on the
            reference ops in training, the fast ones in eval mode (with backend "auto"), and
            ``backend="fast"`` with it is a ValueError.
        merge_mode: how the two directions' h_t become one output when bidirectional, at every
            layer (Keras Bidirectional's vocabulary): "concat" (default, PyTorch's: D*H_out
            features), "sum", "mul" or "ave" (H_out features; layer k > 0 then reads H_out
            features). h_n and c_n keep both directions either way.
        zoneout: Krueger et al. 2017, a rate z in [0, 1), default 0 (off); an LSTM takes one
            for h and c or a pair ``(z_h, z_c)``. Each unit of the state keeps its previous
            value with probability z at every step, ``s_t = k_t ⊙ s_{t-1} +
            (1 - k_t) ⊙ s̃_t`` with s̃_t the cell's new state. In training k_t is a 0/1 mask drawn
            afresh for every step, unit, sequence, layer and direction from ``seed``'s generator
            (after recurrent_dropout's masks, each layer's before its dropout mask); in eval mode
            k_t = z, the expectation, and nothing is random. The zoned state is what the output,
            the next step and h_n see. An LSTM runs it on the fused variant ops, a GRU or RNN on
            the reference ops. May be assigned after
            construction, as may ``recurrent_dropout``, ``return_states`` and an LSTM's
            ``runtime_forget_bias`` (checked as here).
        return_states: "last" (default: h_n only, as PyTorch) or "all": forward returns a third
            value, the states of every step of every layer and direction (see Outputs), and
            ``backward`` takes their gradient as ``dstates_all=``."""

_SIZES_NOTE = """Per-layer sizes: ``hidden_size=[256, 128, 64]`` (one int per layer, as many as num_layers)
    gives layer k the hidden size H_k and input D*H_out_{k-1} (H_out_{k-1} when a merge_mode
    merges). Each state (h_0, c_0, h_n, c_n, and their gradients) is then a *list* of
    num_layers arrays, layer k's (D, N, H_out_k) for h and (D, N, H_k) for c (unbatched:
    (D, H_out_k)): one array cannot hold different sizes without padding, and a list keeps
    every number exact and indexes naturally by layer. ``proj_size`` applies to every layer
    and must be smaller than every H_k. An int ``hidden_size`` keeps the stacked arrays.

    Left padding: ``layer(x, lengths=lengths, padding_side="left")`` takes a padded batch whose
    sequence n fills the last lengths[n] steps (steps T - lengths[n] ... T - 1). Output, h_n
    and gradients equal the right-padded run's, moved the same way: the output is zero in the
    padding at the front and h_n is each sequence's state at step T - 1."""

_LSTM_ONLY_ARGS = """
        layer_norm, peepholes, runtime_forget_bias, forget_bias: :class:`LSTM`'s options,
            accepted off only (False, 0 or None); on, each is a ValueError that says what this
            kind lacks for it."""


class LSTM(RNNBase):
    r"""A multi-layer long short-term memory RNN, numerically identical to ``torch.nn.LSTM``.

    For each element of the input sequence, each layer computes (gate order i, f, g, o)::

        i_t = σ(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)
        f_t = σ(W_if x_t + b_if + W_hf h_{t-1} + b_hf)
        g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)
        o_t = σ(W_io x_t + b_io + W_ho h_{t-1} + b_ho)
        c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
        h_t = o_t ⊙ tanh(c_t)              (then h_t = W_hr h_t when proj_size > 0)

    Layer k > 0 takes the previous layer's h_t (both directions concatenated, or merged by
    ``merge_mode``), multiplied by a dropout mask in training mode when ``dropout > 0``.

    The variants, each off by default (with W x = W_ih x_t, W h = W_hh h_{t-1}, z = the 4H
    pre-activations in blocks z_i, z_f, z_g, z_o, b = b_ih + b_hh)::

        peepholes=True:           i_t = σ(z_i + p_i ⊙ c_{t-1})   f_t = σ(z_f + p_f ⊙ c_{t-1})
                                  o_t = σ(z_o + p_o ⊙ c_t)       (ONNX's P, TF1's use_peepholes)
        layer_norm=True:          z = LN(W x) ⊙ g_ih + LN(W h) ⊙ g_hh + b
                                  h_t = o_t ⊙ tanh(LN(c_t) ⊙ g_c + b_c)   (Ba et al. 2016, haste)
        runtime_forget_bias=β:    f_t = σ(z_f + β)                (TF1's forget_bias)
        zoneout=(z_h, z_c):       h_t ← k_h ⊙ h_{t-1} + (1 - k_h) ⊙ h_t, the same for c (see Args)

    LN(a) = (a - mean(a)) / sqrt(var(a) + 1e-5) over the 4H (or H) units of one step and
    sequence; c_t itself is carried un-normalised. Layer norm, peepholes, zoneout,
    ``recurrent_dropout`` and ``runtime_forget_bias`` run the fused variant ops
    (:mod:`lstmkit.ops.fused.variants`) with backend "auto" or "fast" (the reference ops where
    those hand a call on: packed input, ``proj_size``). ``return_states="all"``, whose c of every
    step the reference op keeps, runs the reference ops: ``backend="fast"`` with it is a ValueError.

    Args:
        input_size: features of x_t (H_in).
        hidden_size: units of h_t and c_t (H), or a list of one per layer (see below).{shared}
        proj_size: if > 0, h_t is projected to this size by ``weight_hr`` (H_out = proj_size).
        forget_bias: None (default: PyTorch's initialisation), or a number b (Jozefowicz et al.
            2015): after the uniform initialisation, the f block (rows H:2H) of every
            ``bias_ih`` is set to b and that of every ``bias_hh`` to 0, so the forget gate's
            bias, their sum, starts at b (1.0 is the usual choice). Needs ``bias=True`` and a
            finite b. An initial value: training moves it.
        runtime_forget_bias: a number β, default 0 (TF1's ``forget_bias``): added to the forget
            gate's pre-activation at every step of every call, a constant that is no parameter
            and that training never moves.
        layer_norm: normalise W x, W h and c_t before its tanh, with learned gains and shifts
            (see above and Parameters). Default False. Fixed at construction: it defines
            parameters (assigning it is an AttributeError).
        peepholes: i and f see c_{t-1}, o sees c_t through ``weight_peephole`` (see above).
            Default False; fixed at construction as layer_norm is.

    Inputs: ``input, (h_0, c_0)`` with D = 2 if bidirectional else 1, H_out = proj_size or hidden_size:

        =========  =================================================================
        input      (L, N, H_in), (N, L, H_in) if batch_first, unbatched (L, H_in), or a
                   PackedSequence (or give ``lengths=`` (N,) with a padded batch)
        h_0        (D * num_layers, N, H_out) or unbatched (D * num_layers, H_out); zeros if omitted
        c_0        (D * num_layers, N, H) or unbatched (D * num_layers, H); zeros if omitted
        =========  =================================================================

    Outputs: ``output, (h_n, c_n)``, and ``(h_all, c_all)`` third with return_states="all":

        =========  =================================================================
        output     (L, N, D * H_out) (batch-first if batch_first): the last layer's h_t, every t;
                   (L, N, H_out) with merge_mode "sum", "mul" or "ave"
        h_n        (D * num_layers, N, H_out): every layer's and direction's final h
        c_n        (D * num_layers, N, H): every layer's and direction's final c
        h_all      (D * num_layers, L, N, H_out): h_t of every layer and direction at every
                   step t (the input's time: the reverse direction's h_t is the one it
                   computed at input step t); (D * num_layers, N, L, H_out) if batch_first,
                   (D * num_layers, L, H_out) unbatched
        c_all      (D * num_layers, L, N, H): c_t likewise
        =========  =================================================================

    With ``hidden_size`` a list: h_0, c_0, h_n and c_n (and h_all, c_all) are lists, layer k's
    h (D, N, H_out_k) and c (D, N, H_k) (h_all[k] (D, L, N, H_out_k)); H_out in output is the
    last layer's. With ``lengths=``, h_all and c_all are zero past each sequence's end (before
    its start with left padding), like output; with a PackedSequence input they are padded
    arrays (D * num_layers, L_max, N, ·), time-major, in the caller's batch order, zero past
    each end. Under ``no_grad()`` they still come back. Their gradient goes to
    ``backward(doutput, dhx, dstates_all=(dh_all, dc_all))`` (either may be None).

    ``h_n[-1]`` is the last layer's *reverse* direction, whose final step is t = 0, so for a
    bidirectional LSTM ``h_n[-1]`` equals ``output[0, :, H_out:]``, not ``output[-1]``.
    {sizes}

    Parameters (k = layer, suffix ``_reverse`` for the second direction; H = H_k, H_out =
    H_out_k of layer k), each layer-direction's in this order:

        ==========================  ========  ===============================================
        weight_ih_l{k}              (4H, H_in) for k = 0, else (4H, D * H_out_{k-1})
                                              (H_out_{k-1} with merge_mode "sum", "mul" or
                                              "ave"); rows i, f, g, o
        weight_hh_l{k}              (4H, H_out)
        bias_ih_l{k}                (4H,)     when bias
        bias_hh_l{k}                (4H,)     when bias
        weight_hr_l{k}              (proj_size, H), only when proj_size > 0
        weight_peephole_l{k}        (3H,)     peepholes: p_i, p_f, p_o
        layer_norm_weight_ih_l{k}   (4H,)     layer_norm: g_ih, initialised to ones
        layer_norm_weight_hh_l{k}   (4H,)     layer_norm: g_hh, ones
        layer_norm_weight_c_l{k}    (H,)      layer_norm: g_c, ones
        layer_norm_bias_c_l{k}      (H,)      layer_norm and bias: b_c, zeros
        ==========================  ========  ===============================================

    The weights, biases and peepholes are initialised uniform in (-1/sqrt(H_k), 1/sqrt(H_k)),
    PyTorch's weights first in PyTorch's order and the peepholes after all of them (so that the
    plain weights are the same numbers with or without a variant). With layer_norm, b_ih and
    b_hh are the two norms' shifts (there are none without bias).

    Backward: ``dinput, (dh_0, dc_0) = lstm.backward(doutput, (dh_n, dc_n))`` with gradients
    shaped like the forward's outputs and inputs; ``dhx`` or either of its parts may be None.
    Parameter gradients are added to each ``Parameter.grad``.
    """

    _defaults = dict(
        RNNBase._defaults, proj_size=0, forget_bias=None, layer_norm=False, peepholes=False, runtime_forget_bias=0.0
    )

    # The constructor as PyTorch and Keras write theirs, a few arguments a line (not formatted).
    # fmt: off
    def __init__(self, input_size: int, hidden_size: int | list[int], num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 *, dtype=np.float32, seed: int | None = None, backend: str = "auto", recurrent_dropout: float = 0.0,
                 merge_mode: str = "concat", forget_bias: float | None = None, layer_norm: bool = False,
                 peepholes: bool = False, zoneout: float | tuple[float, float] = 0.0, runtime_forget_bias: float = 0.0,
                 return_states: str = "last"):
        super().__init__(LSTM_KIND, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, dtype=dtype, seed=seed, backend=backend, recurrent_dropout=recurrent_dropout,
                         merge_mode=merge_mode, zoneout=zoneout, return_states=return_states, layer_norm=layer_norm,
                         peepholes=peepholes, runtime_forget_bias=runtime_forget_bias, forget_bias=forget_bias)
    # fmt: on


class GRU(RNNBase):
    r"""A multi-layer gated recurrent unit RNN, numerically identical to ``torch.nn.GRU``.

    For each element of the input sequence, each layer computes (gate order r, z, n)::

        r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
        z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
        n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t-1} + b_hn))
        h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}

    Layer k > 0 takes the previous layer's h_t (both directions concatenated, or merged by
    ``merge_mode``), multiplied by a dropout mask in training mode when ``dropout > 0``. With
    ``recurrent_dropout``, the mask on h_{t-1} reaches W_hh h_{t-1} only (z_t ⊙ h_{t-1} uses
    the state as it is, as Keras does).

    Args:
        input_size: features of x_t (H_in).
        hidden_size: units of h_t (H), or a list of one per layer (see below).{shared}{lstm_only}

    Inputs ``input, h_0`` and outputs ``output, h_n`` (D = 2 if bidirectional else 1), and
    ``h_all`` third with return_states="all"; the state is one array, not a pair:

        =========  =================================================================
        input      (L, N, H_in), (N, L, H_in) if batch_first, unbatched (L, H_in), or a
                   PackedSequence (or give ``lengths=`` (N,) with a padded batch)
        h_0        (D * num_layers, N, H) or unbatched (D * num_layers, H); zeros if omitted
        output     (L, N, D * H) (batch-first if batch_first): the last layer's h_t, every t;
                   (L, N, H) with merge_mode "sum", "mul" or "ave"
        h_n        (D * num_layers, N, H): every layer's and direction's final h
        h_all      (D * num_layers, L, N, H): h_t of every layer and direction at every step
                   (as :class:`LSTM`'s: batch-first if batch_first, zero past each end)
        =========  =================================================================

    With ``hidden_size`` a list: h_0 and h_n (and h_all) are lists, layer k's (D, N, H_k).
    ``zoneout=z`` (one number: the state is h alone) zones h as :class:`LSTM` does; it runs
    the reference ops. The gradient of h_all goes to ``backward(doutput, dh_n, dstates_all=dh_all)``.
    {sizes}

    Parameters (k = layer, suffix ``_reverse`` for the second direction; H = H_k of layer k),
    all initialised uniform in (-1/sqrt(H_k), 1/sqrt(H_k)):

        ================  ==============================================================
        weight_ih_l{k}    (3H, H_in) for k = 0, else (3H, D * H_{k-1}) (H_{k-1} with
                          merge_mode "sum", "mul" or "ave"); rows r, z, n
        weight_hh_l{k}    (3H, H)
        bias_ih_l{k}      (3H,)
        bias_hh_l{k}      (3H,)
        ================  ==============================================================

    Backward: ``dinput, dh_0 = gru.backward(doutput, dh_n)`` (``dh_n`` may be None).
    """

    # The constructor as PyTorch and Keras write theirs, a few arguments a line (not formatted).
    # fmt: off
    def __init__(self, input_size: int, hidden_size: int | list[int], num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 *, dtype=np.float32, seed: int | None = None, backend: str = "auto", recurrent_dropout: float = 0.0,
                 merge_mode: str = "concat", zoneout: float = 0.0, return_states: str = "last",
                 layer_norm: bool = False, peepholes: bool = False, runtime_forget_bias: float = 0.0,
                 forget_bias: float | None = None):
        super().__init__(GRU_KIND, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype=dtype, seed=seed, backend=backend, recurrent_dropout=recurrent_dropout,
                         merge_mode=merge_mode, zoneout=zoneout, return_states=return_states, layer_norm=layer_norm,
                         peepholes=peepholes, runtime_forget_bias=runtime_forget_bias, forget_bias=forget_bias)
    # fmt: on


class RNN(RNNBase):
    r"""A multi-layer Elman RNN with tanh or ReLU, numerically identical to ``torch.nn.RNN``.

    For each element of the input sequence, each layer computes::

        h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)      act = tanh or relu

    Layer k > 0 takes the previous layer's h_t (both directions concatenated, or merged by
    ``merge_mode``), multiplied by a dropout mask in training mode when ``dropout > 0``.

    Args:
        input_size: features of x_t (H_in).
        hidden_size: units of h_t (H), or a list of one per layer (see :class:`GRU`).
        nonlinearity: ``'tanh'`` (default) or ``'relu'``; fourth positionally, as in PyTorch.{shared}{lstm_only}

    Inputs ``input, h_0`` and outputs ``output, h_n`` exactly as :class:`GRU`'s (per-layer
    sizes, left padding, ``zoneout`` and ``return_states`` too).

    Parameters (k = layer, suffix ``_reverse`` for the second direction; H = H_k of layer k),
    all initialised uniform in (-1/sqrt(H_k), 1/sqrt(H_k)):

        ================  ==============================================================
        weight_ih_l{k}    (H, H_in) for k = 0, else (H, D * H_{k-1}) (H_{k-1} with
                          merge_mode "sum", "mul" or "ave")
        weight_hh_l{k}    (H, H)
        bias_ih_l{k}      (H,)
        bias_hh_l{k}      (H,)
        ================  ==============================================================

    Backward: ``dinput, dh_0 = rnn.backward(doutput, dh_n)`` (``dh_n`` may be None).
    """

    _defaults = dict(RNNBase._defaults, nonlinearity="tanh")

    # The constructor as PyTorch and Keras write theirs, a few arguments a line (not formatted).
    # fmt: off
    def __init__(self, input_size: int, hidden_size: int | list[int], num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 *, dtype=np.float32, seed: int | None = None, backend: str = "auto", recurrent_dropout: float = 0.0,
                 merge_mode: str = "concat", zoneout: float = 0.0, return_states: str = "last",
                 layer_norm: bool = False, peepholes: bool = False, runtime_forget_bias: float = 0.0,
                 forget_bias: float | None = None):
        kind = rnn_kind(type(self).__name__, nonlinearity)
        self.nonlinearity = nonlinearity
        super().__init__(kind, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype=dtype, seed=seed, backend=backend, recurrent_dropout=recurrent_dropout,
                         merge_mode=merge_mode, zoneout=zoneout, return_states=return_states, layer_norm=layer_norm,
                         peepholes=peepholes, runtime_forget_bias=runtime_forget_bias, forget_bias=forget_bias)
    # fmt: on


for _layer in (LSTM, GRU, RNN):
    _layer.__doc__ = (
        _layer.__doc__.replace("{shared}", _SHARED_ARGS).replace("{sizes}", _SIZES_NOTE)
        .replace("{lstm_only}", _LSTM_ONLY_ARGS)
    )  # fmt: skip
