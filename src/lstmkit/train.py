"""The Trainer: batches -> model -> loss -> backward -> clip -> optimizer, epoch after epoch.

Every epoch ends with a validation pass, a checkpoint (atomic, never pickled), the metrics as
JSON lines and the training curves as PNGs (:mod:`lstmkit.training_curves`). Randomness of
epoch e (shuffling, dropout masks) is drawn from ``(seed, e)``, so a run resumed from the
checkpoint of epoch e ends with exactly the weights of a run that was never interrupted.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import distributed, io
from .nn.module import Module, Parameter
from .optim import SGD, Adam, AdamW, CosineAnnealingLR, LambdaLR, Optimizer, ReduceLROnPlateau, StepLR, clip_grad_norm_
from .tasks.base import Task
from .training_curves import CURVE_FILES, is_better, write_curves

if TYPE_CHECKING:
    from tqdm import tqdm

Scheduler = StepLR | CosineAnnealingLR | ReduceLROnPlateau | LambdaLR

CHECKPOINT = "checkpoint.npz"
BEST = "best.npz"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
RUN_FILES = (CHECKPOINT, BEST, METRICS, *CURVE_FILES, SUMMARY)  # everything a Trainer writes into its folder
PROGRESS_FORMAT = (
    "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt}{unit} "
    "[{elapsed} elapsed, ETA {remaining}, {rate_fmt}{postfix}]"
)


class TrainingDiverged(RuntimeError):
    """The loss or the gradient norm stopped being finite."""


def make_optimizer(config: dict, parameters: Iterable[Parameter]) -> Optimizer:
    """The optimizer ``config['optimizer']`` names (sgd, adam or adamw) with the config's lr and decay."""
    name = config["optimizer"]
    if name == "sgd":
        return SGD(parameters, lr=config["lr"], momentum=config["momentum"], weight_decay=config["weight_decay"])
    if name == "adam":
        return Adam(parameters, lr=config["lr"], weight_decay=config["weight_decay"])
    if name == "adamw":
        return AdamW(parameters, lr=config["lr"], weight_decay=config["weight_decay"] or 1e-2)
    raise ValueError(f"unknown optimizer {name!r}: expected sgd, adam or adamw")


def make_scheduler(config: dict, optimizer: Optimizer, higher_is_better: bool) -> Scheduler | None:
    """The learning-rate schedule ``config['schedule']`` names, or None for ``none``."""
    name = config["schedule"]
    if name == "none":
        return None
    if name == "cosine":
        return CosineAnnealingLR(optimizer, T_max=config["epochs"])
    if name == "step":
        return StepLR(optimizer, step_size=max(config["decay_start"], 1), gamma=config["lr_decay"])
    if name == "halve":  # Zaremba et al.: epochs 1 .. decay_start-1 at lr, then multiplied by lr_decay each epoch
        start, decay = config["decay_start"], config["lr_decay"]
        return LambdaLR(optimizer, lambda completed: decay ** max(completed + 2 - start, 0))
    if name == "plateau":
        return ReduceLROnPlateau(
            optimizer,
            mode="max" if higher_is_better else "min",
            factor=config["lr_decay"],
            patience=max(config["patience"] // 2, 1),
        )
    raise ValueError(f"unknown schedule {name!r}: expected none, cosine, step, halve or plateau")


def use_backend(model: Module, backend: str) -> None:
    """Set ``backend`` on every module of ``model`` that has one (the recurrent layers and cells)."""
    switches = [module for module in model.modules() if hasattr(type(module), "backend")]
    if backend != "auto" and not switches:
        raise ValueError(f"backend={backend!r}: this model has no layer with a backend to choose")
    for module in switches:
        module.backend = backend


class Trainer:
    """Train ``task``'s model, writing everything into ``out_dir``.

    Files: ``checkpoint.npz`` (latest epoch: model, optimizer, schedule, history),
    ``best.npz`` (the epoch with the best validation metric), ``metrics.jsonl``,
    ``training_curve.png`` (the losses) and ``metric_curve.png`` (the valid metric), the best epoch
    marked (see :mod:`lstmkit.training_curves`), and, at the end, ``summary.json`` with the test
    metrics of the best model (also in the curves' titles).
    ``backend`` ("auto", "reference" or "fast") is set on every recurrent layer of the model; it is
    not part of the config (both give the same numbers), so a run may resume on another backend.
    """

    def __init__(
        self,
        task: Task,
        out_dir: str | Path,
        progress: bool = True,
        log: Callable[[str], object] = print,
        backend: str = "auto",
        comm: distributed.Communicator | None = None,
    ) -> None:
        self.task, self.config = task, task.config
        self.out_dir = Path(out_dir)
        self.comm = comm or distributed.init()  # one process unless started by mpiexec
        if self.comm.size > self.config["batch_size"]:
            raise ValueError(
                f"{self.comm.size} ranks share each batch of --batch-size {self.config['batch_size']}: "
                "expected at most one rank per sample"
            )
        root = self.comm.is_root  # rank 0 alone prints, draws the progress bar and writes files
        self.progress, self.log = progress and root, log if root else (lambda _: None)
        self.model = task.build_model()
        use_backend(self.model, backend)
        self.optimizer = make_optimizer(self.config, list(self.model.parameters()))
        self.scheduler = make_scheduler(self.config, self.optimizer, task.higher_is_better)
        self.epoch = 0
        self.history: list[dict] = []
        self.best: dict | None = None
        self.bad_epochs = 0
        self._last_plot = -math.inf

    # ---- checkpoints --------------------------------------------------------------------
    def _meta(self) -> dict:
        meta = {
            "config": self.config,
            "epoch": self.epoch,
            "history": self.history,
            "best": self.best,
            "bad_epochs": self.bad_epochs,
            "optimizer": {"lr": self.optimizer.lr, "step_count": self.optimizer.step_count},
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
        }
        vocabulary = getattr(self.task, "vocabulary", None)
        if vocabulary is not None:
            meta["vocabulary"] = vocabulary
        return meta

    def save(self, path: Path) -> None:
        if not self.comm.is_root:
            return
        arrays = {f"model/{name}": value for name, value in self.model.state_dict().items()}
        arrays.update({f"optimizer/{key}": value for key, value in self.optimizer.state_dict()["state"].items()})
        io.save_checkpoint(path, arrays, self._meta())

    def resume(self) -> None:
        """Continue from ``out_dir/checkpoint.npz``; refuse one written with other options."""
        arrays, meta = self._read(self.out_dir / CHECKPOINT)
        differing = {k: (meta["config"].get(k), v) for k, v in self.config.items() if meta["config"].get(k) != v}
        if differing:
            described = ", ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, (a, b) in differing.items())
            raise io.CheckpointError(
                f"cannot resume: the checkpoint was trained with other options ({described}); "
                "resume with the same options or choose another --out"
            )
        self.model.load_state_dict(io.prefixed(arrays, "model"))
        self.optimizer.load_state_dict({**meta["optimizer"], "state": io.prefixed(arrays, "optimizer")})
        if self.scheduler is not None:
            self.scheduler.load_state_dict(meta["scheduler"])
        self.epoch, self.history, self.best, self.bad_epochs = (
            meta["epoch"],
            meta["history"],
            meta["best"],
            meta["bad_epochs"],
        )

    def _read(self, path: Path) -> tuple[dict, dict]:
        """A checkpoint's ``(arrays, meta)``: read by rank 0 and sent to every rank (the others may not
        see rank 0's disk); an unreadable file raises the same error on every rank."""
        if self.comm.size == 1:
            return io.load_checkpoint(path)
        loaded = None
        if self.comm.is_root:
            try:
                loaded = io.load_checkpoint(path)
            except io.CheckpointError as error:
                loaded = error
        loaded = self.comm.bcast(loaded)
        if isinstance(loaded, Exception):
            raise loaded
        return loaded

    # ---- training -----------------------------------------------------------------------
    def _better(self, value: float, than: float) -> bool:
        return is_better(value, than, self.task.higher_is_better)

    def progress_bar(self, epoch: int) -> tqdm:
        """The tqdm bar of one epoch: percentage, count/total, elapsed, ETA and throughput in the
        task's unit (``samples/s``; ``words/s`` or ``chars/s`` for language models)."""
        from tqdm import tqdm

        total = self.task.epoch_size()
        return tqdm(
            total=total,
            desc=f"epoch {epoch}/{self.config['epochs']}",
            unit=f" {self.task.progress_unit}",
            unit_scale=total >= 100_000,  # 929k rather than 929589
            smoothing=0,  # the epoch's average rate: the first batch's compilation fades instead of ruling
            bar_format=PROGRESS_FORMAT,
            disable=not self.progress,
            leave=False,
            dynamic_ncols=True,
        )

    def train_epoch(self, epoch: int) -> dict:
        """One epoch of training; returns ``{"train_loss", "train_seconds"}``."""
        seed = self.config["seed"]
        self.model.train()
        self.model.reseed([seed, epoch])
        rng = np.random.default_rng([seed, epoch, 1])
        with self.progress_bar(epoch) as bar:
            return self._train_batches(self.task.batches(rng), epoch, bar)

    def _train_batches(self, batches: Iterable, epoch: int, bar) -> dict:
        parameters = list(self.model.parameters())
        total, count, started, reducing = 0.0, 0, time.perf_counter(), 0.0
        comm = self.comm
        for index, batch in enumerate(batches):
            self.model.zero_grad()
            if comm.size > 1:  # this rank's share of the global batch, then everyone's gradients summed
                local = self.task.shard(batch, comm)
                loss_sum, n = self.task.train_step(self.model, local) if local is not None else (0.0, 0)
                reduce_started = time.perf_counter()
                loss_sum, n = comm.allreduce_gradients(parameters, loss_sum, n)
                reducing += time.perf_counter() - reduce_started
            else:
                loss_sum, n = self.task.train_step(self.model, batch)
            clip = self.config["clip"]
            norm = clip_grad_norm_(parameters, clip) if clip else 0.0
            if not (math.isfinite(loss_sum) and math.isfinite(norm)):
                what, value = ("loss", loss_sum / n) if not math.isfinite(loss_sum) else ("gradient norm", norm)
                raise TrainingDiverged(
                    f"epoch {epoch}, batch {index + 1}: the {what} is {value}; training stopped. The last good "
                    f"checkpoint (epoch {self.epoch}) is kept in {self.out_dir}. Try a smaller --lr or a --clip value."
                )
            self.optimizer.step()
            total, count = total + loss_sum, count + n
            if index % 10 == 0:
                bar.set_postfix(loss=f"{total / count:.4f}", refresh=False)
            bar.update(n)
            if index + 1 == self.config["max_batches"]:
                break
        bar.refresh()  # the epoch's last state (100%) is shown before the bar is cleared
        record = {"train_loss": total / count, "train_seconds": time.perf_counter() - started}
        if comm.size > 1:
            record.update(ranks=comm.size, allreduce_seconds=reducing)
        return record

    def fit(self, resume: bool = False, stop_after: int | None = None) -> dict:
        """Train to ``config['epochs']`` (from the checkpoint when ``resume``); return the summary.

        ``stop_after`` ends this call after that many epochs, as if the run had been killed
        right after its checkpoint (used to test resuming).
        """
        if resume:
            self.resume()
            self.log(f"resumed from {self.out_dir / CHECKPOINT} after epoch {self.epoch}")
        self.log(self.task.describe())
        parameter_count = sum(parameter.data.size for parameter in self.model.parameters())
        self.log(f"model: {parameter_count:,} parameters; config: {json.dumps(self.config)}")
        metric, patience = self.task.metric, self.config["patience"]
        run_epochs = 0
        while self.epoch < self.config["epochs"] and not (patience and self.bad_epochs >= patience):
            epoch = self.epoch + 1
            record = {"epoch": epoch, "lr": self.optimizer.lr, **self.train_epoch(epoch)}
            self.model.eval()
            valid = self.task.evaluate(self.model, "valid")
            record.update({f"valid_{key}": value for key, value in valid.items()})
            self.history.append(record)
            self.epoch = epoch
            if self.best is None or self._better(valid[metric], self.best[f"valid_{metric}"]):
                self.best, self.bad_epochs = dict(record), 0
                self.save(self.out_dir / BEST)
            else:
                self.bad_epochs += 1
            if self.scheduler is not None:
                self.scheduler.step(valid[metric])
            self.save(self.out_dir / CHECKPOINT)
            self.write_reports()
            self.log(
                f"epoch {epoch}: train loss {record['train_loss']:.4f}, valid {metric} {valid[metric]:.4f}, "
                f"lr {record['lr']:.3g}, {record['train_seconds']:.1f}s" + (" *best*" if self.bad_epochs == 0 else "")
            )
            run_epochs += 1
            if stop_after is not None and run_epochs >= stop_after:
                return {"stopped_after_epoch": self.epoch}
        if patience and self.bad_epochs >= patience:
            self.log(f"early stop: no better valid {metric} for {patience} epochs")
        summary = self.finish()
        self.write_reports(final=True, test=summary["test"])
        return summary

    def finish(self) -> dict:
        """Evaluate the best epoch's model on the test part and write ``summary.json``."""
        arrays, meta = self._read(self.out_dir / BEST)
        self.model.load_state_dict(io.prefixed(arrays, "model"))
        self.model.eval()
        test = self.task.evaluate(self.model, "test")
        summary = {
            "task": self.task.name,
            "best_epoch": meta["epoch"],
            "epochs_run": self.epoch,
            "train_seconds": sum(r["train_seconds"] for r in self.history),
            "valid": {k[len("valid_") :]: v for k, v in self.best.items() if k.startswith("valid_")},
            "test": test,
            "config": self.config,
        }
        if self.comm.is_root:
            io.write_text(self.out_dir / SUMMARY, json.dumps(summary, indent=2) + "\n")
        return summary

    # ---- reports ------------------------------------------------------------------------
    def write_reports(self, final: bool = False, test: dict | None = None) -> None:
        """Metrics every epoch; the curves at the end (with the ``test`` result in their titles) and at
        most every 15 s on the way (plotting is slow)."""
        if not self.comm.is_root:
            return
        io.write_text(self.out_dir / METRICS, "".join(json.dumps(record) + "\n" for record in self.history))
        if self.history and (final or time.monotonic() - self._last_plot > 15):
            task = self.task
            write_curves(
                self.history, task.metric, task.higher_is_better, self.out_dir, f"lstmkit train {task.name}", test
            )
            self._last_plot = time.monotonic()
