"""A word- or character-level language model: Embedding -> LSTM -> Linear over the vocabulary."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .layers import Dropout, Embedding, Linear
from .module import Module
from .recurrent import LSTM


class LanguageModel(Module):
    """Zaremba et al. (2014)'s network: embeddings, stacked LSTM, dropout around it, a softmax layer.

    ==========  ==============  ============================================
    tokens      (L, N) int      token ids, time-major
    state       (h, c)          each (num_layers, N, hidden_size); None = zeros
    returns     logits, state   (L, N, vocab_size) and the final (h, c)
    ==========  ==============  ============================================

    ``init_range`` > 0 draws every weight uniform in (-init_range, init_range) as the paper does
    (but a layer norm's gains and shifts); 0 keeps each layer's PyTorch initialisation.
    ``lstm_options``: keyword arguments of the :class:`~.recurrent.LSTM` (its variants, e.g.
    ``{"recurrent_dropout": 0.25}``).
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_size: int,
        hidden_size: int,
        num_layers: int = 2,
        dropout: float = 0.0,
        init_range: float = 0.1,
        *,
        seed=None,
        lstm_options: dict | None = None,
    ):
        super().__init__()
        seeds = np.random.SeedSequence(seed).spawn(5)
        self.vocab_size = vocab_size
        self.register_module("embedding", Embedding(vocab_size, embedding_size, seed=seeds[0]))
        self.register_module("input_dropout", Dropout(dropout, seed=seeds[1]))
        self.register_module(
            "lstm",
            LSTM(embedding_size, hidden_size, num_layers, dropout=dropout, seed=seeds[2], **(lstm_options or {})),
        )
        self.register_module("output_dropout", Dropout(dropout, seed=seeds[3]))
        self.register_module("decoder", Linear(hidden_size, vocab_size, seed=seeds[4]))
        if init_range > 0:
            rng = np.random.default_rng(seeds[0].spawn(1)[0])
            for name, parameter in self.named_parameters():
                if "layer_norm" not in name:  # the norms' gains and shifts keep their ones and zeros
                    parameter.assign(rng.uniform(-init_range, init_range, parameter.shape))

    def forward(
        self,
        tokens: ArrayLike,
        state: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        embedded = self.input_dropout(self.embedding(tokens))
        output, state = self.lstm(embedded, state)
        return self.decoder(self.output_dropout(output)), state

    def backward(self, dlogits: ArrayLike) -> None:
        """Backward of the latest forward; the gradient of the incoming state is dropped (truncated BPTT)."""
        doutput = self.output_dropout.backward(self.decoder.backward(dlogits))
        dembedded, _ = self.lstm.backward(doutput)
        self.embedding.backward(self.input_dropout.backward(dembedded))
