"""Language modelling with truncated BPTT: the state is carried from batch to batch, gradients are not."""

from __future__ import annotations

import math

import numpy as np

from .. import distributed
from ..data.text import Corpus, lm_batches, load_ptb, load_text_file
from ..grad_mode import no_grad
from ..nn.language_model import LanguageModel
from ..nn.losses import CrossEntropyLoss
from .base import Task, capped_count, variant_options


class LanguageTask(Task):
    metric = "perplexity"
    higher_is_better = False

    def __init__(self, config: dict):
        super().__init__(config)
        self.corpus = self.load()
        self.loss = CrossEntropyLoss()
        self._state = None

    def load(self) -> Corpus:
        raise NotImplementedError

    @property
    def vocabulary(self) -> list[str]:
        return self.corpus.vocabulary

    def build_model(self):
        config = self.config
        return LanguageModel(
            len(self.vocabulary),
            config["embedding_size"],
            config["hidden_size"],
            config["num_layers"],
            config["dropout"],
            config["init_range"],
            seed=config["seed"],
            lstm_options=variant_options(config),
        )

    def epoch_size(self) -> int:
        """Tokens predicted in one epoch: ``batch_size`` columns of ``bptt``-step batches."""
        batch_size = self.config["batch_size"]
        columns = (len(self.corpus.parts["train"]) - 1) // batch_size
        return capped_count(columns, self.config["bptt"], self.config["max_batches"]) * batch_size

    def batches(self, rng):
        self._state = None  # every epoch starts from a zero state, as Zaremba et al.
        yield from lm_batches(self.corpus.parts["train"], self.config["batch_size"], self.config["bptt"])

    def train_step(self, model, batch):
        inputs, targets = batch
        logits, self._state = model(inputs, self._state)
        loss = self.loss(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        # Zaremba et al. minimise the loss summed over the steps and averaged over the batch:
        # the per-token mean times the number of steps (this sets the gradient scale that lr and clip assume).
        steps = targets.shape[0]
        model.backward(self.loss.backward(float(steps)).reshape(logits.shape))
        return float(loss) * targets.size, targets.size

    def shard(self, batch, comm):
        """This rank's contiguous share of the batch's streams (columns), so the hidden state a rank
        carries from batch to batch is that of its own streams, as in one process."""
        columns = distributed.shard(batch[0].shape[1], comm)
        return tuple(array[:, columns] for array in batch) if columns.stop > columns.start else None

    def evaluate(self, model, part):
        """Loss and perplexity over ``part``; under ``mpiexec`` each rank reads its share of the
        streams and the sums are added (with one stream, the test part's, rank 0 reads it)."""
        batch_size = self.config["eval_batch_size"] if part == "test" else self.config["batch_size"]
        comm = distributed.init()
        total, count, state = 0.0, 0, None
        with no_grad():
            for batch in lm_batches(self.corpus.parts[part], batch_size, 200):
                local = self.shard(batch, comm) if comm.size > 1 else batch
                if local is None:
                    continue
                inputs, targets = local
                logits, state = model(inputs, state)
                total += float(self.loss(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))) * targets.size
                count += targets.size
        total, count = comm.allreduce_sum(np.array([total, count], dtype=np.float64))
        loss = total / count
        return {"loss": loss, "perplexity": math.exp(min(loss, 700.0))}

    def describe(self):
        sizes = ", ".join(f"{part} {len(ids):,}" for part, ids in self.corpus.parts.items())
        return f"{self.name}: {len(self.vocabulary):,} {self.corpus.level} types; tokens: {sizes}"


class PtbTask(LanguageTask):
    """Zaremba et al. (2014), small: 2x200 LSTM, 35 steps, batch 20, SGD lr 1 halved each epoch from epoch 5, clip 5."""

    name = "ptb"
    progress_unit = "words"
    # fmt: off
    defaults = dict(
        hidden_size=200, embedding_size=200, num_layers=2, epochs=13, batch_size=20, bptt=35, lr=1.0, optimizer="sgd",
        clip=5.0, schedule="halve", decay_start=5, lr_decay=0.5, init_range=0.1, eval_batch_size=1,
    )
    # fmt: on

    def load(self):
        return load_ptb()


class TextTask(LanguageTask):
    """A character-level model of any UTF-8 file (``--file PATH``)."""

    name = "text"
    progress_unit = "chars"
    # fmt: off
    defaults = dict(
        hidden_size=128, embedding_size=32, num_layers=2, epochs=10, batch_size=32, bptt=64, lr=3e-3, optimizer="adam",
        clip=5.0, schedule="cosine", init_range=0.0, eval_batch_size=1, file=None,
    )
    # fmt: on

    def load(self):
        if not self.config.get("file"):
            raise ValueError("text: give the file to learn with --file PATH (any UTF-8 text)")
        return load_text_file(self.config["file"])
