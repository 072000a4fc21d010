"""Keras 3's recurrent layers with Keras' semantics, running on lstmkit's ops.

``LSTM``, ``GRU``, ``SimpleRNN`` (``return_sequences``, ``return_state``, ``go_backwards``,
``stateful``, masks), ``Masking``, ``Bidirectional`` (merge modes), ``Sequential`` (masks
travel, ``summary()``), and conversion to and from the PyTorch-style layers. Input is batch-major
(N, T, F); weights are Keras' (``kernel``, ``recurrent_kernel``, ``bias``) in Keras' layout.
"""

from .bidirectional import Bidirectional
from .convert import to_keras, to_torch
from .layers import GRU, LSTM, SimpleRNN
from .masking import Masking
from .model import Sequential

__all__ = ["Bidirectional", "GRU", "LSTM", "Masking", "Sequential", "SimpleRNN", "to_keras", "to_torch"]
