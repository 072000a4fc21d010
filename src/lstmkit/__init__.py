"""lstmkit: LSTMs in NumPy that behave exactly like PyTorch's, with backpropagation written out.

>>> import numpy as np, lstmkit
>>> lstm = lstmkit.LSTM(input_size=20, hidden_size=100, num_layers=2, seed=0)
>>> output, (h_n, c_n) = lstm(np.zeros((3, 1, 20), np.float32))
>>> output.shape, h_n.shape, c_n.shape
((3, 1, 100), (2, 1, 100), (2, 1, 100))
"""

from . import _openblas  # noqa: F401  first: before anything loads NumPy (and OpenBLAS)

# isort: split
from . import (  # lstmkit.io.save_weights(...), lstmkit.export.to_onnx(...) after a plain `import lstmkit`
    convert,  # noqa: F401
    distributed,  # noqa: F401
    export,  # noqa: F401
    io,  # noqa: F401
)
from .explain import count_parameters
from .grad_mode import is_grad_enabled, no_grad
from .nn import (
    GRU,
    LSTM,
    RNN,
    GRUCell,
    LSTMCell,
    Module,
    PackedSequence,
    Parameter,
    RNNCell,
    pack_padded_sequence,
    pack_sequence,
    pad_packed_sequence,
    pad_sequence,
)
from .nn.language_model import LanguageModel
from .nn.layers import Dropout, Embedding, LastStep, Linear, Sequential
from .nn.losses import CrossEntropyLoss, MSELoss
from .ops.fused.helper import set_helper_thread
from .optim import SGD, Adam, AdamW, CosineAnnealingLR, LambdaLR, ReduceLROnPlateau, StepLR, clip_grad_norm_

__version__ = "0.1.0"

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "GRUCell",
    "LSTMCell",
    "RNNCell",
    "Module",
    "Parameter",
    "PackedSequence",
    "pack_padded_sequence",
    "pack_sequence",
    "pad_packed_sequence",
    "pad_sequence",
    "Dropout",
    "Embedding",
    "LastStep",
    "Linear",
    "Sequential",
    "LanguageModel",
    "CrossEntropyLoss",
    "MSELoss",
    "SGD",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "LambdaLR",
    "ReduceLROnPlateau",
    "StepLR",
    "clip_grad_norm_",
    "count_parameters",
    "is_grad_enabled",
    "no_grad",
    "set_helper_thread",
    "__version__",
]
