"""Conversion both ways between the PyTorch-style layers and their Keras-style twins.

    ==========================================  =============================================
    lstmkit.LSTM / GRU / RNN (one layer)        lstmkit.keras.LSTM / GRU / SimpleRNN
    ... with bidirectional=True and any         Bidirectional(..., merge_mode=layer.merge_mode)
    merge_mode ("concat", "sum", "mul", "ave")  (and back; merge_mode=None has no twin)
    weight_ih_l0 (G·H, I), rows torch's order   kernel (I, G·U) = weight_ihᵀ, Keras' order
    weight_hh_l0 (G·H, H)                       recurrent_kernel (U, G·U) = weight_hhᵀ
    bias_ih_l0, bias_hh_l0 (G·H,)               bias: LSTM, SimpleRNN: bias_ih + bias_hh;
                                                GRU: (2, 3U) = [bias_ih, bias_hh]
    ==========================================  =============================================

The twins compute the same function: ``to_keras(layer)`` returns sequences and states, so
``keras_twin(x)`` gives ``[output, *states]`` equal to ``layer(x)`` with ``batch_first=True``;
``to_torch(keras_layer)`` is batch-first. A summed LSTM bias comes back as ``bias_ih`` with a
zero ``bias_hh``. Multi-layer, projected (``proj_size``) and ``go_backwards`` layers have no
twin and are refused, and so are the variants Keras lacks (``layer_norm``, ``peepholes``,
``zoneout``, ``runtime_forget_bias``) and ``recurrent_dropout`` (Keras' draws a mask per gate,
lstmkit's one mask on h_{t-1}: another function in training). ``return_states="all"`` is not
carried over: the twin returns what a Keras layer returns. Keras' ``GRU(reset_after=False)``
computes another candidate than PyTorch's GRU, so it has no twin either way.
"""

from __future__ import annotations

from ..nn.kinds import KINDS
from ..nn.recurrent import GRU as TorchGRU
from ..nn.recurrent import LSTM as TorchLSTM
from ..nn.recurrent import RNN as TorchRNN
from ..nn.rnn_base import RNNBase
from ._formats import FORMATS
from ._recurrent import KerasRNN
from .bidirectional import Bidirectional
from .layers import GRU, LSTM, SimpleRNN


def to_keras(layer: RNNBase, **options) -> KerasRNN | Bidirectional:
    """The Keras-style twin of a one-layer ``lstmkit.LSTM``, ``GRU`` or ``RNN`` (weights copied).

    ``options`` go to the Keras layer's constructor (default: ``return_sequences=True,
    return_state=True``, the PyTorch layer's outputs).
    """
    owner = f"to_keras({type(layer).__name__})"
    if not isinstance(layer, RNNBase):
        raise TypeError(f"{owner}: expected an lstmkit.LSTM, GRU or RNN, got {type(layer).__name__}")
    if layer.num_layers != 1 or layer.proj_size:
        raise ValueError(
            f"{owner}: expected num_layers=1 and proj_size=0 (one Keras layer), "
            f"got num_layers={layer.num_layers}, proj_size={layer.proj_size}; for a stack of real Keras layers, "
            "lstmkit.convert.to_keras_weights gives their get_weights() list (Keras has no projection)"
        )
    variants = layer._variants_on()  # the variant options on, name -> value
    variants.pop("return_states", None)  # not carried over (see the module docstring)
    if "recurrent_dropout" in variants:
        raise ValueError(
            f"{owner}: Keras' recurrent_dropout draws one mask per gate, lstmkit's one mask on h_{{t-1}}, so "
            f"recurrent_dropout={variants['recurrent_dropout']!r} has no Keras twin; convert the layer with "
            "recurrent_dropout=0 and set the Keras layer's own recurrent_dropout if you want Keras' kind"
        )
    lacking = [f"{name}={value!r}" for name, value in variants.items()]
    if lacking:
        raise ValueError(f"{owner}: Keras' layers have no {', '.join(lacking)}; only a plain layer has a Keras twin")
    if layer.mode == "GRU" and options.get("reset_after", True) is not True:
        raise ValueError(
            f"{owner}: a PyTorch-style GRU computes Keras' reset_after=True equations, so its twin is a "
            f"GRU(reset_after=True); got reset_after={options['reset_after']!r}"
        )
    keras_format, _ = FORMATS[layer.mode]
    options = dict(return_sequences=True, return_state=True, use_bias=layer.bias, dtype=layer.dtype, **options)
    units = layer.hidden_sizes[0]  # one layer: a list of one size is that size
    if layer.mode.startswith("RNN"):
        twin = SimpleRNN(units, activation=layer.nonlinearity, **options)
    else:
        twin = {"LSTM": LSTM, "GRU": GRU}[layer.mode](units, **options)
    if layer.bidirectional:
        twin = Bidirectional(twin, merge_mode=layer.merge_mode)
    twin.set_weights(
        [
            array
            for direction in range(layer.num_directions)
            for array in keras_format.keras_weights(layer._weights(0, direction))
        ]
    )
    return twin


def to_torch(layer: KerasRNN | Bidirectional) -> RNNBase:
    """The PyTorch-style twin (``batch_first=True``) of a Keras-style layer or a Bidirectional
    (its ``merge_mode`` becomes the twin's: "concat" is torch's bidirectional, "sum", "mul" and
    "ave" lstmkit's own)."""
    owner = f"to_torch({type(layer).__name__})"
    bidirectional = isinstance(layer, Bidirectional)
    if bidirectional and layer.merge_mode is None:
        raise ValueError(
            f"{owner}: merge_mode=None returns the two directions apart, which an lstmkit layer does not; "
            "expected merge_mode 'concat', 'sum', 'mul' or 'ave'"
        )
    if bidirectional and layer.forward_layer.go_backwards:
        raise ValueError(f"{owner}: expected a forward layer going forwards, got go_backwards=True")
    directions = [layer.forward_layer, layer.backward_layer] if bidirectional else [layer]
    first = directions[0]
    if not isinstance(first, KerasRNN):
        raise TypeError(f"{owner}: expected an lstmkit.keras LSTM, GRU, SimpleRNN or Bidirectional")
    if not bidirectional and first.go_backwards:
        raise ValueError(f"{owner}: a go_backwards layer has no PyTorch twin (its output runs backwards in time)")
    if not getattr(first, "reset_after", True):
        raise ValueError(
            f"{owner}: Keras' GRU(reset_after=False) applies the reset gate to h_{{t-1}} before the recurrent "
            "product, another function than PyTorch's GRU (r * (W_hn h + b_hn)), so it has no PyTorch twin; "
            "expected reset_after=True (lstmkit.convert.from_keras_weights(..., reset_after=False) gives its "
            "weights in PyTorch's layout, for the reset_after=False equations)"
        )
    if not first.built:
        raise ValueError(f"{owner}: the layer has no weights yet; call it or build() it first")
    kind = first._kind
    options = dict(bias=first.use_bias, batch_first=True, bidirectional=bidirectional, dtype=first.dtype)
    if bidirectional:
        options["merge_mode"] = layer.merge_mode
    if kind.mode.startswith("RNN"):
        twin = TorchRNN(first.input_size, first.units, nonlinearity=first.activation, **options)
    else:
        twin = {"LSTM": TorchLSTM, "GRU": TorchGRU}[kind.mode](first.input_size, first.units, **options)
    for direction, sublayer in enumerate(directions):
        weights = first._format.torch_weights(KINDS[kind.mode], *sublayer.get_weights())
        suffix = twin._suffix(0, direction)
        for name, array in weights._asdict().items():
            if array is not None:
                twin._parameters[name + suffix].assign(array)
    return twin
