"""Language-model text: Penn Treebank words (treebank package) or the characters of any UTF-8 file.

A corpus is a vocabulary plus token ids per part. :func:`lm_batches` cuts a part into the
truncated-BPTT batches of Zaremba et al.: the id stream is laid out as ``batch_size`` parallel
columns and read ``bptt`` steps at a time, so batch k+1 continues batch k in every column and
the hidden state can be carried across batches.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import require

EOS = "<eos>"


class Corpus(NamedTuple):
    vocabulary: list[str]  # id -> token
    parts: dict[str, np.ndarray]  # part -> (n,) int64 token ids
    level: str  # "word" or "char"


def load_ptb() -> Corpus:
    """The Penn Treebank of Mikolov et al. (10k words incl. <unk>; <eos> ends every sentence)."""
    treebank = require("treebank", "treebank", "ptb")
    texts = {part: treebank.penn[part] for part in ("train", "valid", "test")}
    tokenised = {
        part: [word for line in text.split("\n") if line.strip() for word in line.split() + [EOS]]
        for part, text in texts.items()
    }
    vocabulary = sorted(set(tokenised["train"]))
    index = {word: i for i, word in enumerate(vocabulary)}
    unknown = [w for part in ("valid", "test") for w in tokenised[part] if w not in index]
    if unknown:
        raise ValueError(f"ptb: valid/test words missing from the training vocabulary, e.g. {unknown[:3]}")
    parts = {part: np.array([index[w] for w in words], dtype=np.int64) for part, words in tokenised.items()}
    return Corpus(vocabulary, parts, "word")


def load_text_file(path: str | Path, valid_fraction: float = 0.05, test_fraction: float = 0.05) -> Corpus:
    """Characters of a UTF-8 file; the last 10% are split into valid and test (contiguous, in order)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"text: no file at {path}") from None
    except UnicodeDecodeError as error:
        raise ValueError(
            f"text: {path} is not UTF-8 text ({error.reason} at byte {error.start}); convert it, e.g. iconv -t UTF-8"
        ) from None
    minimum = 200
    if len(text) < minimum:
        raise ValueError(f"text: {path} must hold at least {minimum} characters to train on, got {len(text)}")
    vocabulary = sorted(set(text))
    index = {ch: i for i, ch in enumerate(vocabulary)}
    ids = np.array([index[ch] for ch in text], dtype=np.int64)
    n_test, n_valid = max(int(len(ids) * test_fraction), 50), max(int(len(ids) * valid_fraction), 50)
    n_train = len(ids) - n_valid - n_test
    parts = {"train": ids[:n_train], "valid": ids[n_train : n_train + n_valid], "test": ids[n_train + n_valid :]}
    return Corpus(vocabulary, parts, "char")


def lm_batches(ids: np.ndarray, batch_size: int, bptt: int):
    """Yield ``(inputs, targets)`` pairs of shape (steps <= bptt, batch_size), targets shifted by one."""
    columns = (len(ids) - 1) // batch_size
    if columns < 1:
        raise ValueError(f"lm_batches: {len(ids)} tokens are too few for batch_size={batch_size}")
    inputs = ids[: columns * batch_size].reshape(batch_size, columns).T
    targets = ids[1 : columns * batch_size + 1].reshape(batch_size, columns).T
    for start in range(0, columns, bptt):
        yield inputs[start : start + bptt], targets[start : start + bptt]
