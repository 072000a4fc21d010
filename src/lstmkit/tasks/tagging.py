"""``lstmkit train tag``: part-of-speech tagging of CoNLL-U treebanks with a word-and-character BiLSTM.

The data are three CoNLL-U files (``--train``, ``--valid``, ``--test``), read by
:mod:`lstmkit.data.treebank_files`; the tag is the UPOS column, or XPOS with ``--column xpos``.
The vocabularies come from the training file alone:

    ==========  =====================================================================
    vocabulary  what it holds (ids 0 and 1 are padding and unknown in the first two)
    ==========  =====================================================================
    words       every training word form, lowercased (case is the characters' job)
    chars       every character of the training words
    tags        every training tag
    ==========  =====================================================================

In training, a word seen once is replaced by the unknown word with probability
``unknown_rate`` (its characters stay), so the model learns to tag from spelling the words it
will not know (Lample et al. 2016). Sentences are batched by length: shuffled, sorted by length,
cut into batches, the batches shuffled.
"""

from __future__ import annotations

import collections
import time

import numpy as np

from .. import distributed
from ..grad_mode import no_grad
from ..nn.losses import CrossEntropyLoss
from ..nn.tagger import PADDING, UNKNOWN, Tagger, TaggerBatch
from .base import Task, capped_count, variant_options

SPECIALS = ["<pad>", "<unk>"]


def encoder(vocabulary: list[str]) -> dict[str, int]:
    return {token: index for index, token in enumerate(vocabulary)}


class TaggingData:
    """The encoded treebank: vocabularies from training, and each sentence's word, character and tag ids."""

    def __init__(self, parts: dict, vocabulary: dict | None = None):
        self.parts = parts  # part -> list of TaggedSentence
        train = parts.get("train", [])
        if vocabulary is None:
            forms = collections.Counter(word.lower() for sentence in train for word in sentence.words)
            chars = sorted({char for sentence in train for word in sentence.words for char in word})
            tags = sorted({tag for sentence in train for tag in sentence.tags})
            vocabulary = {"words": SPECIALS + sorted(forms), "chars": SPECIALS + chars, "tags": tags}
        self.vocabulary = vocabulary
        self.word_ids, self.char_ids = encoder(vocabulary["words"]), encoder(vocabulary["chars"])
        self.tag_ids = encoder(vocabulary["tags"])
        counts = collections.Counter(word.lower() for sentence in train for word in sentence.words)
        self.singletons = {self.word_ids[word] for word, count in counts.items() if count == 1}
        self.train_forms = {word for sentence in train for word in sentence.words}

    def batch(self, words: list[list[str]], rng: np.random.Generator | None = None, unknown_rate: float = 0.0):
        """The :class:`TaggerBatch` of these sentences; with ``rng``, singletons become unknown at ``unknown_rate``."""
        lengths = np.array([len(sentence) for sentence in words])
        steps, count = int(lengths.max()), len(words)
        ids = np.full((steps, count), PADDING, dtype=np.int64)
        positions = np.zeros((steps, count), dtype=np.int64)
        distinct: dict[str, int] = {}
        for n, sentence in enumerate(words):
            for t, word in enumerate(sentence):
                ids[t, n] = self.word_ids.get(word.lower(), UNKNOWN)
                positions[t, n] = distinct.setdefault(word, len(distinct))
        if rng is not None and unknown_rate > 0:
            rare = np.isin(ids, list(self.singletons)) & (rng.random(ids.shape) < unknown_rate)
            ids[rare] = UNKNOWN
        spelling_lengths = np.array([len(word) for word in distinct])
        spellings = np.full((int(spelling_lengths.max()), len(distinct)), PADDING, dtype=np.int64)
        for u, word in enumerate(distinct):
            spellings[: len(word), u] = [self.char_ids.get(char, UNKNOWN) for char in word]
        return TaggerBatch(ids, lengths, spellings, spelling_lengths, positions)

    def targets(self, sentences) -> np.ndarray:
        """Every word's tag id, sentence after sentence; -1 for a tag training never saw."""
        return np.array([self.tag_ids.get(tag, -1) for sentence in sentences for tag in sentence.tags])


def length_batches(sentences, batch_size: int, rng: np.random.Generator | None = None) -> list[list[int]]:
    """Indices of ``sentences`` in batches of similar length (shuffled with ``rng``; else in length order)."""
    order = rng.permutation(len(sentences)) if rng is not None else np.arange(len(sentences))
    order = sorted(order, key=lambda index: len(sentences[index].words))
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    if rng is not None:
        rng.shuffle(batches)
    return batches


class TagTask(Task):
    """Part-of-speech tagging of CoNLL-U files (``--train``, ``--valid``, ``--test``; ``--column``)."""

    name = "tag"
    metric = "accuracy"
    higher_is_better = True
    progress_unit = "words"
    # fmt: off
    defaults = dict(
        hidden_size=128, num_layers=1, bidirectional=True, dropout=0.25, epochs=20, batch_size=32, lr=2e-3,
        optimizer="adam", clip=5.0, schedule="none", word_size=100, char_size=32, char_hidden=50, unknown_rate=0.5,
        column="upos", train=None, valid=None, test=None, eval_batch_size=256,
    )
    # fmt: on

    def __init__(self, config: dict, vocabulary: dict | None = None):
        super().__init__(config)
        from ..data.treebank_files import read_tagged

        missing = [f"--{part} FILE" for part in ("train", "valid", "test") if not config.get(part)]
        if missing:
            raise ValueError(f"tag: expected the CoNLL-U files (a UD treebank's), missing {' '.join(missing)}")
        parts = {part: read_tagged(config[part], config["column"]) for part in ("train", "valid", "test")}
        self.data = TaggingData(parts, vocabulary)
        self.loss = CrossEntropyLoss(ignore_index=-1)

    @property
    def vocabulary(self) -> dict:
        return self.data.vocabulary

    def build_model(self) -> Tagger:
        return tagger_of(self.config, self.vocabulary)

    def epoch_size(self) -> int:
        """Words in an epoch (with --max-batches, the share of the sentences used, at the mean length)."""
        sentences = self.data.parts["train"]
        words = sum(len(s.words) for s in sentences)
        used = capped_count(len(sentences), self.config["batch_size"], self.config["max_batches"])
        return words if used == len(sentences) else round(words * used / len(sentences))

    def batches(self, rng):
        sentences = self.data.parts["train"]
        for indices in length_batches(sentences, self.config["batch_size"], rng):
            chosen = [sentences[i] for i in indices]
            batch = self.data.batch([s.words for s in chosen], rng, self.config["unknown_rate"])
            yield batch, self.data.targets(chosen)

    def train_step(self, model, batch):
        inputs, targets = batch
        loss = self.loss(model(inputs), targets)
        model.backward(self.loss.backward())
        count = int((targets >= 0).sum())
        return float(loss) * count, count

    def shard(self, batch, comm):
        """This rank's contiguous share of the batch's sentences (and their words' targets)."""
        inputs, targets = batch
        rows = distributed.shard(len(inputs.lengths), comm)
        if rows.stop == rows.start:
            return None
        ends = np.concatenate([[0], np.cumsum(inputs.lengths)])
        steps = int(inputs.lengths[rows].max())
        local = inputs._replace(
            words=inputs.words[:steps, rows], lengths=inputs.lengths[rows], positions=inputs.positions[:steps, rows]
        )
        return local, targets[ends[rows.start] : ends[rows.stop]]

    def predict(self, model, words: list[list[str]]) -> list[np.ndarray]:
        """Each sentence's predicted tag ids (see :func:`predict_tags`); under ``mpiexec`` each rank
        tags its share of the sentences and every rank gets all of them."""
        comm = distributed.init()
        if comm.size == 1:
            return predict_tags(model, self.data, words, self.config["eval_batch_size"])
        local = predict_tags(
            model, self.data, words[distributed.shard(len(words), comm)], self.config["eval_batch_size"]
        )
        flat = comm.allgather_rows(np.concatenate(local) if local else np.zeros(0, dtype=np.int64))
        return np.split(flat, np.cumsum([len(sentence) for sentence in words])[:-1])

    def evaluate(self, model, part):
        sentences = self.data.parts[part]
        predictions = np.concatenate(self.predict(model, [s.words for s in sentences]))
        targets = self.data.targets(sentences)
        unseen = np.array([word not in self.data.train_forms for s in sentences for word in s.words])
        with no_grad():
            loss = self._loss(model, sentences)
        correct = predictions == targets
        return {
            "loss": loss,
            "accuracy": float(correct.mean()),
            "unseen_word_accuracy": float(correct[unseen].mean()) if unseen.any() else float("nan"),
        }

    def _loss(self, model, sentences) -> float:
        comm = distributed.init()
        sentences = sentences[distributed.shard(len(sentences), comm)]  # each rank its share, the sums added
        total, count = 0.0, 0
        for indices in length_batches(sentences, self.config["eval_batch_size"]):
            chosen = [sentences[i] for i in indices]
            targets = self.data.targets(chosen)
            known = int((targets >= 0).sum())
            if known:
                total += float(self.loss(model(self.data.batch([s.words for s in chosen])), targets)) * known
                count += known
        total, count = comm.allreduce_sum(np.array([total, count], dtype=np.float64))
        return float(total / max(count, 1))

    def report(self, model) -> tuple[dict, list[str]]:
        """The baseline, errors and speed beside the accuracy: ``(numbers, lines to print)``."""
        from ..data.tagging import baseline_accuracy, most_frequent_tags

        train = self.data.parts["train"]
        word_tags, fallback = most_frequent_tags(train)
        numbers, lines = {}, []
        for part in ("valid", "test"):
            sentences = self.data.parts[part]
            started = time.perf_counter()
            predictions = self.predict(model, [s.words for s in sentences])
            seconds = time.perf_counter() - started
            numbers[part] = {
                "baseline_accuracy": baseline_accuracy(sentences, word_tags, fallback),
                "tagging_sentences_per_second": len(sentences) / seconds,
            }
            tags = self.vocabulary["tags"]
            errors = collections.Counter(
                (gold, tags[guess])
                for s, guess_row in zip(sentences, predictions)
                for gold, guess in zip(s.tags, guess_row)
                if gold != tags[guess]
            )
            unseen_tags = sorted({tag for s in sentences for tag in s.tags} - set(tags))
            numbers[part]["most_frequent_errors"] = [[gold, guess, n] for (gold, guess), n in errors.most_common(10)]
            numbers[part]["tags_not_in_training"] = unseen_tags
            lines.append(
                f"{part}: most-frequent-tag baseline {numbers[part]['baseline_accuracy']:.4f}; tagging "
                f"{numbers[part]['tagging_sentences_per_second']:.0f} sentences/s; most frequent errors (gold -> "
                "tagged): "
                + ", ".join(f"{g}->{p} {n}" for (g, p), n in errors.most_common(5))
                + (f"; tags not seen in training: {', '.join(unseen_tags)}" if unseen_tags else "")
            )
        return numbers, lines

    def describe(self):
        counts = ", ".join(
            f"{part} {len(s):,} sentences / {sum(len(x.words) for x in s):,} words"
            for part, s in self.data.parts.items()
        )
        sizes = {key: len(value) for key, value in self.vocabulary.items()}
        return f"tag ({self.config['column']}): {counts}; vocabularies {sizes}"


class _Words:
    """A bare sentence as :func:`length_batches` reads one (its ``words``)."""

    def __init__(self, words):
        self.words = words


def predict_tags(model: Tagger, data: TaggingData, words: list[list[str]], batch_size: int = 256) -> list[np.ndarray]:
    """Each sentence's predicted tag ids, in evaluation, storing nothing; sentences batched by length."""
    predictions: list[np.ndarray | None] = [None] * len(words)
    with no_grad():
        for indices in length_batches([_Words(sentence) for sentence in words], batch_size):
            logits = model(data.batch([words[i] for i in indices]))
            ends = np.cumsum([len(words[i]) for i in indices])
            for index, part in zip(indices, np.split(logits.argmax(axis=1), ends[:-1])):
                predictions[index] = part
    return predictions


def tagger_of(config: dict, vocabulary: dict) -> Tagger:
    """The tagger of a tag task's ``config`` and ``vocabulary`` (used to rebuild it from a checkpoint)."""
    return Tagger(
        len(vocabulary["words"]),
        len(vocabulary["chars"]),
        len(vocabulary["tags"]),
        config["word_size"],
        config["char_size"],
        config["char_hidden"],
        config["hidden_size"],
        config["num_layers"],
        config["dropout"],
        seed=config["seed"],
        lstm_options=variant_options(config),
    )
