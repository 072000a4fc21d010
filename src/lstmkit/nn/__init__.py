"""Modules: parameters in PyTorch's names and layouts, forward and backward."""

from .cells import LSTMCell
from .module import Module, Parameter
from .recurrent import LSTM

__all__ = ["LSTM", "LSTMCell", "Module", "Parameter"]
