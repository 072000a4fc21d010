"""lstmkit: LSTMs in NumPy that behave exactly like PyTorch's, with backpropagation written out.

>>> import numpy as np, lstmkit
>>> lstm = lstmkit.LSTM(input_size=20, hidden_size=100, num_layers=2, seed=0)
>>> output, (h_n, c_n) = lstm(np.zeros((3, 1, 20), np.float32))
>>> output.shape, h_n.shape, c_n.shape
((3, 1, 100), (2, 1, 100), (2, 1, 100))
"""

from .explain import count_parameters
from .grad_mode import is_grad_enabled, no_grad
from .nn import LSTM, LSTMCell, Module, Parameter
from .nn import GRU, RNN, GRUCell, RNNCell
from .nn import PackedSequence, pack_padded_sequence, pack_sequence, pad_packed_sequence, pad_sequence

__version__ = "0.1.0"

__all__ = ["LSTM", "LSTMCell", "Module", "Parameter", "count_parameters", "is_grad_enabled", "no_grad", "__version__"]
__all__ += ["GRU", "GRUCell", "PackedSequence", "RNN", "RNNCell", "pack_padded_sequence", "pack_sequence",
            "pad_packed_sequence", "pad_sequence"]
