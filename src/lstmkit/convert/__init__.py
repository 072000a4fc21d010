"""Every framework's recurrent weights in and out: pure functions between lstmkit's (PyTorch's)
state and another layout, both ways, given a :class:`~.spec.LayerSpec`.

A *state* is a dict of PyTorch's parameter names (``weight_ih_l0``, ``bias_hh_l1_reverse``,
``weight_hr_l0``, ...) to arrays in PyTorch's layouts, which are lstmkit's:
``layer.state_dict()``, and ``LayerSpec.of(layer)`` describes it. Each module holds one
framework's facts (gate orders, transposes, biases) and both directions:

    ==================  ==========================================  =====================================
    framework           functions                                   what it covers
    ==================  ==========================================  =====================================
    PyTorch             to/from_torch_state_dict,                   LSTM, GRU, RNN; whole task models
                        to/from_torch_module                        (Sequential, LanguageModel)
    Keras 3             to/from_keras_weights                       get_weights() of LSTM, GRU,
                                                                    SimpleRNN, Bidirectional, stacks
    TensorFlow 1        to/from_tf1_weights, from_tf1_layer         LSTMCell, LSTMBlockCell checkpoints
    ONNX                to/from_onnx_weights, from_onnx,            W, R, B, P of the LSTM/GRU/RNN
                        onnx_layers                                 operators; a model's nodes
    haste               to/from_haste_weights                       LSTM, GRU, LayerNormLSTM
    ==================  ==========================================  =====================================

A missing or mis-shaped weight is a ValueError naming the key, the shape expected and the shape
given; a configuration the other framework cannot express is refused, saying why. Round trips
are the identity where the other layout keeps both biases; where it keeps one sum, the sum
comes back in ``bias_ih`` (Keras, TF1) or halved in both (haste, as its own
``to_native_weights``). :func:`~.spec.state_of` gives a layer's spec and state with a
``runtime_forget_bias`` folded in. torch and onnx are imported only by the functions that need them.
ONNX export of whole graphs is :func:`lstmkit.export.to_onnx`.
"""

from .haste_layout import from_haste_weights, to_haste_weights
from .keras_layout import from_keras_weights, to_keras_weights
from .onnx_import import from_onnx, onnx_layers
from .onnx_layout import from_onnx_weights, to_onnx_weights
from .spec import LayerSpec, state_of
from .tf1_layout import from_tf1_layer, from_tf1_weights, to_tf1_weights
from .torch_layout import from_torch_module, from_torch_state_dict, to_torch_module, to_torch_state_dict

__all__ = [
    "LayerSpec",
    "from_haste_weights",
    "from_keras_weights",
    "from_onnx",
    "from_onnx_weights",
    "from_tf1_layer",
    "from_tf1_weights",
    "from_torch_module",
    "from_torch_state_dict",
    "onnx_layers",
    "state_of",
    "to_haste_weights",
    "to_keras_weights",
    "to_onnx_weights",
    "to_tf1_weights",
    "to_torch_module",
    "to_torch_state_dict",
]
