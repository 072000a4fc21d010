"""Modules: parameters in PyTorch's names and layouts, forward and backward."""

from .cells import GRUCell, LSTMCell, RNNCell
from .module import Module, Parameter
from .packing import PackedSequence, pack_padded_sequence, pack_sequence, pad_packed_sequence, pad_sequence
from .recurrent import GRU, LSTM, RNN

__all__ = [
    "GRU",
    "GRUCell",
    "LSTM",
    "LSTMCell",
    "Module",
    "PackedSequence",
    "Parameter",
    "RNN",
    "RNNCell",
    "pack_padded_sequence",
    "pack_sequence",
    "pad_packed_sequence",
    "pad_sequence",
]
