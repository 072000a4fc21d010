"""The standard neural sequence tagger: word embedding ⊕ character BiLSTM → BiLSTM → Linear per word.

Plank et al. (2016) and Lample et al. (2016): each word is its embedding concatenated with the
final states of a bidirectional LSTM over its characters (so words never seen in training still
get a representation from their spelling); a bidirectional LSTM over the sentence reads those,
and a linear layer gives each word's tag scores. Dropout acts on the word representations and on
the sentence LSTM's output.

A batch (:class:`TaggerBatch`) holds sentences padded to the longest and their lengths; every
distinct word of the batch runs through the character LSTM once. Both LSTMs take their
sequences with ``lengths=`` (packed inside: padding is never computed on).

    ===============  =================  ==============================================
    name             shape              what
    ===============  =================  ==============================================
    words            (T, N) int         word ids (0: padding, 1: unknown), time-major
    lengths          (N,) int           each sentence's length
    spellings        (C, U) int         the characters of the batch's U distinct words
    spelling_length  (U,) int           each distinct word's length in characters
    positions        (T, N) int         which distinct word sits at each place
    logits           (W, tags)          W = sum(lengths): every word, sentence by sentence
    ===============  =================  ==============================================
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .layers import Dropout, Embedding, Linear
from .module import Module
from .recurrent import LSTM

PADDING, UNKNOWN = 0, 1  # ids every vocabulary of the tagger starts with


class TaggerBatch(NamedTuple):
    """One batch of sentences, as :class:`Tagger` reads it (see the module docstring)."""

    words: np.ndarray
    lengths: np.ndarray
    spellings: np.ndarray
    spelling_lengths: np.ndarray
    positions: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """(T, N) bool: True at the words, False at the padding."""
        return np.arange(len(self.words))[:, None] < self.lengths[None, :]


class Tagger(Module):
    """Word embedding ⊕ character BiLSTM → ``num_layers`` BiLSTM → Linear, one tag per word.

    ================  ======================================================
    argument          meaning
    ================  ======================================================
    word_count        word vocabulary size (ids 0 and 1: padding, unknown)
    char_count        character vocabulary size (ids 0 and 1 likewise)
    tag_count         number of tags
    word_size         word embedding size
    char_size         character embedding size
    char_hidden       the character LSTM's units per direction
    hidden_size       the sentence LSTM's units per direction
    ================  ======================================================
    """

    def __init__(
        self,
        word_count: int,
        char_count: int,
        tag_count: int,
        word_size: int = 100,
        char_size: int = 32,
        char_hidden: int = 50,
        hidden_size: int = 128,
        num_layers: int = 1,
        dropout: float = 0.25,
        *,
        dtype=np.float32,
        seed=None,
        lstm_options: dict | None = None,
    ):
        super().__init__()
        seeds = np.random.SeedSequence(seed).spawn(7)
        self.char_hidden = char_hidden
        words = Embedding(word_count, word_size, padding_idx=PADDING, dtype=dtype, seed=seeds[0])
        self.register_module("word_embedding", words)
        chars = Embedding(char_count, char_size, padding_idx=PADDING, dtype=dtype, seed=seeds[1])
        self.register_module("char_embedding", chars)
        self.register_module("char_lstm", LSTM(char_size, char_hidden, bidirectional=True, dtype=dtype, seed=seeds[2]))
        self.register_module("input_dropout", Dropout(dropout, seed=seeds[3]))
        sentence_input = word_size + 2 * char_hidden
        lstm = LSTM(
            sentence_input, hidden_size, num_layers, dropout=dropout, bidirectional=True, dtype=dtype, seed=seeds[4],
            **(lstm_options or {}),
        )  # fmt: skip
        self.register_module("lstm", lstm)
        self.register_module("output_dropout", Dropout(dropout, seed=seeds[5]))
        self.register_module("output", Linear(2 * hidden_size, tag_count, dtype=dtype, seed=seeds[6]))

    def forward(self, batch: TaggerBatch) -> np.ndarray:
        """Tag scores (W, tag_count) of every word, in the order of ``batch.words[mask]`` read
        sentence by sentence (the mask's order when transposed: see :meth:`word_order`)."""
        spelled = self.char_embedding(batch.spellings)  # (C, U, char_size)
        _, (h_n, _) = self.char_lstm(spelled, lengths=batch.spelling_lengths)  # h_n: (2, U, char_hidden)
        spellings = np.concatenate([h_n[0], h_n[1]], axis=-1)  # forward's last char, reverse's first
        embedded = self.word_embedding(batch.words)  # (T, N, word_size)
        words = np.concatenate([embedded, spellings[batch.positions]], axis=-1)
        output, _ = self.lstm(self.input_dropout(words), lengths=batch.lengths)  # (T, N, 2H), zero past each end
        mask = batch.mask
        self._save_for_backward((batch, output.shape))
        return self.output(self.output_dropout(self.word_order(output, mask)))

    @staticmethod
    def word_order(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The (T, N, ·) ``values`` at the words, sentence after sentence: (W, ·)."""
        return values.transpose(1, 0, *range(2, values.ndim))[mask.T]

    def backward(self, dlogits: np.ndarray) -> None:
        """Backward of the latest forward: every parameter's gradient from that of the logits."""
        batch, shape = self._pop_saved()
        dwords_out = self.output_dropout.backward(self.output.backward(dlogits))
        doutput = np.zeros(shape, dtype=dwords_out.dtype)
        doutput.transpose(1, 0, 2)[batch.mask.T] = dwords_out
        dwords, _ = self.lstm.backward(doutput)
        dwords = self.input_dropout.backward(dwords)
        word_size = self.word_embedding.embedding_dim
        self.word_embedding.backward(dwords[..., :word_size])
        dspellings = np.zeros((batch.spellings.shape[1], 2 * self.char_hidden), dtype=dwords.dtype)
        np.add.at(dspellings, batch.positions[batch.mask], dwords[..., word_size:][batch.mask])
        dh_n = np.stack([dspellings[:, : self.char_hidden], dspellings[:, self.char_hidden :]])
        char_output = (*batch.spellings.shape, 2 * self.char_hidden)
        dspelled, _ = self.char_lstm.backward(np.zeros(char_output, dwords.dtype), (dh_n, None))
        self.char_embedding.backward(dspelled)
