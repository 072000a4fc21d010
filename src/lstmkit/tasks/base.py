"""The task interface the trainer drives."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .. import distributed
from ..grad_mode import no_grad
from ..nn.layers import LastStep, Linear, Sequential
from ..nn.module import Module
from ..nn.recurrent import LSTM

# The LSTM variants a task's model takes from its config (lstmkit.LSTM's keyword arguments), off by default.
VARIANT_DEFAULTS = dict(recurrent_dropout=0.0, zoneout=0.0, layer_norm=False, peepholes=False)
# Options every task understands (the variants last); a task's ``defaults`` override them with its recipe.
# fmt: off
COMMON_DEFAULTS = dict(
    hidden_size=128, num_layers=1, bidirectional=False, dropout=0.0, epochs=10, batch_size=64, lr=1e-3,
    optimizer="adam", weight_decay=0.0, momentum=0.0, clip=0.0, schedule="none", lr_decay=0.5, decay_start=0,
    patience=0, seed=0, max_batches=0, **VARIANT_DEFAULTS,
)
# fmt: on


def variant_options(config: dict) -> dict:
    """The LSTM variants ``config`` turns on, as keyword arguments of :class:`~lstmkit.nn.recurrent.LSTM`
    (none for a config written before they existed)."""
    return {name: config[name] for name, off in VARIANT_DEFAULTS.items() if config.get(name, off) != off}


class Task:
    """One dataset and what training on it means.

    Subclasses set ``name``, ``metric`` (the validation number that picks the best epoch),
    ``higher_is_better`` and ``defaults`` (the recipe), and implement the methods below.
    ``config`` is a plain JSON-able dict of every option; it is stored in checkpoints so
    ``evaluate`` and ``generate`` can rebuild the model.
    """

    name = ""
    metric = "loss"
    higher_is_better = False
    defaults: dict = {}
    progress_unit = "samples"  # what train_step counts, as the progress bar's throughput names it

    def __init__(self, config: dict) -> None:
        self.config = config

    @classmethod
    def make_config(cls, **overrides) -> dict:
        """The recipe with ``overrides`` (None values are ignored) applied."""
        config = {**COMMON_DEFAULTS, **cls.defaults, "task": cls.name}
        config.update({key: value for key, value in overrides.items() if value is not None})
        return config

    def build_model(self) -> Module:
        raise NotImplementedError

    def batches(self, rng: np.random.Generator) -> Iterator:
        """One epoch of training batches, shuffled by ``rng``."""
        raise NotImplementedError

    def epoch_size(self) -> int:
        """How many ``progress_unit`` one training epoch counts (within ``max_batches``): the bar's total."""
        raise NotImplementedError

    def train_step(self, model: Module, batch) -> tuple[float, int]:
        """Forward, loss and backward of one batch (gradients land in ``.grad``); returns (summed loss, count)."""
        raise NotImplementedError

    def evaluate(self, model: Module, part: str) -> dict[str, float]:
        """Metrics on ``part`` ('valid' or 'test'), always including 'loss' and ``self.metric``."""
        raise NotImplementedError

    def shard(self, batch, comm: distributed.Communicator):
        """This rank's share of a global batch (data-parallel training): contiguous rows of every
        array of ``batch``, batch-major (a task whose batches are laid out otherwise overrides it);
        None when the share is empty (a last batch smaller than the number of ranks)."""
        rows = distributed.shard(len(batch[0]), comm)
        return tuple(array[rows] for array in batch) if rows.stop > rows.start else None

    def report(self, model: Module) -> tuple[dict, list[str]]:
        """What the task says beside its metrics once training ends (baselines, errors, speed):
        ``(numbers for the summary, lines to print)``; none by default."""
        return {}, []

    def describe(self) -> str:
        """One line on the data, for the log."""
        return self.name


def predict_in_chunks(model: Module, inputs: np.ndarray, chunk: int = 1000) -> np.ndarray:
    """The model's outputs for many samples, in chunks, storing nothing for backward. Under
    ``mpiexec`` each rank predicts its contiguous share and every rank gets all of them, in order."""
    comm = distributed.init()
    inputs = inputs[distributed.shard(len(inputs), comm)]
    with no_grad():
        outputs = [model(inputs[start : start + chunk]) for start in range(0, len(inputs), chunk)]
    return comm.allgather_rows(np.concatenate(outputs) if outputs else np.zeros((0,)))


def last_step_model(config: dict, input_size: int, output_size: int) -> Sequential:
    """A batch-first LSTM of ``config``'s sizes, its last step, then ``Linear(D*H, output_size)``.

    ============  ===================  =====================================
    input         (N, L, input_size)   batch-first sequences
    output        (N, output_size)     from the last step's h (both directions)
    ============  ===================  =====================================
    """
    seeds = np.random.SeedSequence(config["seed"]).spawn(2)
    lstm = LSTM(
        input_size,
        config["hidden_size"],
        config["num_layers"],
        batch_first=True,
        dropout=config["dropout"],
        bidirectional=config["bidirectional"],
        seed=seeds[0],
        **variant_options(config),
    )
    width = lstm.num_directions * config["hidden_size"]
    return Sequential(lstm, LastStep(), Linear(width, output_size, seed=seeds[1]))


def capped_count(count: int, per_batch: int, max_batches: int) -> int:
    """``count`` items in batches of ``per_batch``, of which at most ``max_batches`` (0: all) are used."""
    return min(count, max_batches * per_batch) if max_batches else count


def shuffled_batches(rng: np.random.Generator, count: int, batch_size: int) -> Iterator[np.ndarray]:
    """Index arrays of one shuffled epoch (the last batch may be smaller)."""
    order = rng.permutation(count)
    for start in range(0, count, batch_size):
        yield order[start : start + batch_size]
