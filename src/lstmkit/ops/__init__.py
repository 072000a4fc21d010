"""Pure functions, no state: ``forward(...) -> (outputs, cache)`` and ``backward(grads, cache)``."""

from .lstm import LSTMCache, LSTMStep, LSTMWeights, lstm_backward, lstm_forward, lstm_step, lstm_step_backward

__all__ = ["LSTMCache", "LSTMStep", "LSTMWeights", "lstm_backward", "lstm_forward", "lstm_step", "lstm_step_backward"]
