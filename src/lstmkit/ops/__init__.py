"""Pure functions, no state: ``forward(...) -> (outputs, cache)`` and ``backward(grads, cache)``."""

from .backends import Backend, resolve_backend
from .fused import recycle_cache, release_scratch
from .gru import GRUCache, GRUStep, GRUWeights, gru_backward, gru_forward, gru_step, gru_step_backward
from .layer_norm import layer_norm, layer_norm_backward
from .lstm import LSTMCache, LSTMStep, LSTMWeights, lstm_backward, lstm_forward, lstm_step, lstm_step_backward
from .recurrence import GateDropout, Zoneout
from .rnn import RNNCache, RNNStep, RNNWeights, rnn_backward, rnn_forward, rnn_step, rnn_step_backward

__all__ = [
    "Backend",
    "GateDropout",
    "Zoneout",
    "layer_norm",
    "layer_norm_backward",
    "recycle_cache",
    "release_scratch",
    "resolve_backend",
    "GRUCache",
    "GRUStep",
    "GRUWeights",
    "gru_backward",
    "gru_forward",
    "gru_step",
    "gru_step_backward",
    "LSTMCache",
    "LSTMStep",
    "LSTMWeights",
    "lstm_backward",
    "lstm_forward",
    "lstm_step",
    "lstm_step_backward",
    "RNNCache",
    "RNNStep",
    "RNNWeights",
    "rnn_backward",
    "rnn_forward",
    "rnn_step",
    "rnn_step_backward",
]
