"""``lstmkit train``, ``lstmkit evaluate`` and ``lstmkit generate``: thin wrappers around tasks and the Trainer.

What ``lstmkit train TASK`` writes into ``--out`` (default ``runs/TASK``): ``checkpoint.npz``,
``best.npz``, ``metrics.jsonl``, ``training_curve.png`` (train and valid loss) and
``metric_curve.png`` (the valid metric), each marking the best epoch and titled with the test
result, ``summary.json`` and ``result.json``.
With ``--repeats N`` (sunspots' default is 5) every seed's run gets those files, except
``result.json``, in ``seed<S>/`` folders, and ``result.json`` (every seed's summary, the median
test metric, sunspots' baselines) sits in ``--out`` itself.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import distributed, io
from .cli_guard import RESULT, RunFolderError, exit_code, interrupted_message, prepare_run_folder, stop_signals_raise
from .cli_options import (
    NON_NEGATIVE_INT,
    POSITIVE_INT,
    HelpFormatter,
    non_negative_float,
    positive_float,
    probability_below_one,
)
from .data import MissingDatasetPackage
from .grad_mode import no_grad
from .nn.module import Module
from .tasks import TASKS, Task, get_task
from .train import Trainer, TrainingDiverged

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("none", "cosine", "step", "halve", "plateau")
LANGUAGE_TASKS = ("ptb", "text")
TAG_FILES = ("train", "valid", "test")

# option name -> (argparse type or choices, help); each default is the task's recipe, listed in the help
TRAIN_OPTIONS: dict[str, tuple[Callable | tuple[str, ...], str]] = {
    "hidden_size": (POSITIVE_INT, "units of the LSTM"),
    "num_layers": (POSITIVE_INT, "stacked LSTM layers"),
    "dropout": (
        probability_below_one,
        "dropout probability, in [0, 1): between stacked layers (and around the LSTM for ptb, text and tag)",
    ),
    "recurrent_dropout": (
        probability_below_one,
        "variational dropout on h_{t-1}, in [0, 1): one mask per sequence, reused at every step (Gal & Ghahramani)",
    ),
    "zoneout": (
        probability_below_one,
        "zoneout rate of h and c, in [0, 1): each unit keeps its previous value with this probability (Krueger et al.)",
    ),
    "epochs": (POSITIVE_INT, "epochs to train"),
    "batch_size": (POSITIVE_INT, "sequences per batch"),
    "lr": (positive_float, "learning rate"),
    "optimizer": (OPTIMIZERS, "the optimizer"),
    "clip": (non_negative_float, "clip the gradient norm to this value; 0: no clipping"),
    "schedule": (SCHEDULES, "learning-rate schedule"),
    "patience": (NON_NEGATIVE_INT, "stop after this many epochs without a better validation metric; 0: never"),
    "seed": (NON_NEGATIVE_INT, "seed of the weights, the shuffling and the dropout masks"),
    "max_batches": (NON_NEGATIVE_INT, "train on at most this many batches per epoch (for quick trials); 0: all"),
}
# How a recipe value reads in the help where a number would mislead.
_SHOWN = {("patience", 0): "never", ("max_batches", 0): "all", ("clip", 0.0): "no clipping"}


def recipe_default(name: str) -> str:
    """``(default: 64)`` or, where the tasks' recipes differ, ``(default: ptb 200, text 128, others 64)``."""
    shown = {
        task: str(_SHOWN.get((name, value), value))
        for task, value in ((task, task_class.make_config()[name]) for task, task_class in TASKS.items())
    }
    values = list(shown.values())
    most_common = max(values, key=values.count)
    if values.count(most_common) == len(values):
        return f"(default: {most_common})"
    if values.count(most_common) == 1:
        return "(default: " + ", ".join(f"{task} {value}" for task, value in shown.items()) + ")"
    exceptions = [f"{task} {value}" for task, value in shown.items() if value != most_common]
    return "(default: " + ", ".join(exceptions) + f", others {most_common})"


def add_train_parser(commands) -> None:
    """The ``train``, ``evaluate`` and ``generate`` subcommands."""
    options = dict(formatter_class=HelpFormatter, allow_abbrev=False)
    parser = commands.add_parser(
        "train",
        help="train an LSTM on a dataset that ships inside a package",
        description="Train with the task's best recipe; every option overrides it.",
        **options,
    )
    parser.add_argument("task", choices=list(TASKS), help="dataset and task")
    for name, (kind, text) in TRAIN_OPTIONS.items():
        typed = {"choices": kind} if isinstance(kind, tuple) else {"type": kind}
        parser.add_argument(
            "--" + name.replace("_", "-"), dest=name, default=None, help=f"{text} {recipe_default(name)}", **typed
        )
    parser.add_argument(
        "--file", default=None, help="the UTF-8 text file to learn (task text only; required there) (default: none)"
    )
    for part in TAG_FILES:
        parser.add_argument(
            f"--{part}", default=None, help=f"the {part} CoNLL-U file (task tag only; required there) (default: none)"
        )
    parser.add_argument(
        "--column", choices=("upos", "xpos"), default=None, help="the CoNLL-U column to tag (task tag) (default: upos)"
    )
    parser.add_argument(
        "--bidirectional",
        action="store_true",
        default=None,
        help="a bidirectional LSTM (mnist, digits, sunspots) (default: off)",
    )
    for flag, text in (
        ("layer_norm", "layer normalisation of the pre-activations and of the cell state (Ba et al.)"),
        ("peepholes", "peephole connections from the cell state to the gates (Gers et al.; ONNX's P)"),
    ):
        parser.add_argument(
            "--" + flag.replace("_", "-"), dest=flag, action="store_true", default=None, help=f"{text} (default: off)"
        )
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for checkpoints and reports (default: runs/TASK)"
    )
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    again.add_argument("--force", action="store_true", help="start over in an --out that holds a run, replacing it")
    parser.add_argument(
        "--repeats",
        type=POSITIVE_INT,
        default=None,
        help="train this many seeds (seed, seed+1, ...) "
        "in OUT/seed<S>/ and report the median test metric (default: sunspots 5, others 1)",
    )
    parser.add_argument(
        "--sweep",
        action="append",
        type=sweep_values,
        default=None,
        metavar="NAME=V1,V2",
        help="train every combination of these values of a training option (repeatable; e.g. --sweep lr=1e-3,3e-3 "
        "--sweep hidden-size=64,128), each in OUT/NAME=V,.../, and report the best by validation (default: none)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--backend",
        choices=("auto", "reference", "fast"),
        default="auto",
        help="which implementation runs the LSTM: the reference equations or the fast paths; "
        "the same numbers either way; auto follows LSTMKIT_BACKEND, else fast",
    )

    evaluate = commands.add_parser(
        "evaluate", help="evaluate a checkpoint on its task's valid and test data", **options
    )
    evaluate.add_argument(
        "checkpoint", type=Path, help="a checkpoint written by lstmkit train, e.g. runs/digits/best.npz"
    )
    generate = commands.add_parser(
        "generate", help="sample text from a language-model checkpoint (ptb or text)", **options
    )
    generate.add_argument("checkpoint", type=Path, help="a ptb or text checkpoint, e.g. runs/ptb/best.npz")
    generate.add_argument(
        "--prompt",
        default="",
        help="the text to continue: words for ptb, characters for text (default: none, start after an end of sentence)",
    )
    generate.add_argument("--length", type=POSITIVE_INT, default=50, help="tokens to generate")
    generate.add_argument(
        "--temperature",
        type=positive_float,
        default=1.0,
        help="divides the logits: below 1 is more conservative, above 1 more varied",
    )
    generate.add_argument("--seed", type=NON_NEGATIVE_INT, default=0, help="seed of the sampling")


def sweep_values(text: str) -> tuple[str, list]:
    """An argparse ``type=``: ``lr=1e-3,3e-3`` -> ("lr", [0.001, 0.003]), each value checked as its option's."""
    name, equals, values = text.partition("=")
    name = name.strip().lstrip("-").replace("-", "_")
    if not equals or name not in TRAIN_OPTIONS or name in ("seed", "epochs"):
        sweepable = ", ".join(n.replace("_", "-") for n in TRAIN_OPTIONS if n not in ("seed", "epochs"))
        raise argparse.ArgumentTypeError(f"expected NAME=V1,V2 with NAME one of {sweepable}, got {text!r}")
    kind = TRAIN_OPTIONS[name][0]
    parsed = []
    for value in values.split(","):
        if isinstance(kind, tuple):
            if value not in kind:
                raise argparse.ArgumentTypeError(f"{name}: expected one of {', '.join(kind)}, got {value!r}")
            parsed.append(value)
        else:
            parsed.append(kind(value))
    if len(set(parsed)) != len(parsed) or not parsed:
        raise argparse.ArgumentTypeError(f"{name}: expected distinct values, got {values!r}")
    return name, parsed


def planned_runs(config: dict, sweep: list | None, repeats: int, out: Path) -> list[tuple[dict, Path, dict]]:
    """Every run of a command: ``(config, folder, its sweep settings)`` for each combination of the
    sweep's values (none: the config itself) and each seed."""
    names = [name for name, _ in sweep or []]
    combinations = itertools.product(*(values for _, values in sweep or []))
    runs = []
    for values in combinations:
        settings = dict(zip(names, values))
        folder = out / ",".join(f"{name}={value}" for name, value in settings.items()) if settings else out
        for repeat in range(repeats):
            run_config = {**config, **settings, "seed": config["seed"] + repeat}
            runs.append((run_config, folder / f"seed{run_config['seed']}" if repeats > 1 else folder, settings))
    return runs


def refuse_options_that_do_not_apply(args: argparse.Namespace, config: dict) -> None:
    """Options the chosen task would ignore are errors, not silently dropped."""
    if args.file is not None and args.task != "text":
        raise ValueError(f"--file applies to the text task only; {args.task} reads its own dataset")
    given = [f"--{name}" for name in (*TAG_FILES, "column") if getattr(args, name) is not None]
    if given and args.task != "tag":
        raise ValueError(f"{' '.join(given)} apply to the tag task only; {args.task} reads its own dataset")
    if args.bidirectional and args.task in (*LANGUAGE_TASKS, "tag"):
        reason = "the tagger is always bidirectional" if args.task == "tag" else "a language model reads left to right"
        raise ValueError(f"--bidirectional does not apply to {args.task}: {reason}")
    if config["dropout"] > 0 and config["num_layers"] == 1 and args.task not in (*LANGUAGE_TASKS, "tag"):
        raise ValueError(
            f"--dropout {config['dropout']} applies between stacked LSTM layers and {args.task} has one: "
            "add --num-layers 2 (or more) or leave out --dropout"
        )


def run_train(args: argparse.Namespace) -> dict:
    task_class = get_task(args.task)
    overrides = {
        name: getattr(args, name)
        for name in [*TRAIN_OPTIONS, "file", "column", "bidirectional", "layer_norm", "peepholes"]
    }
    overrides.update({part: str(Path(getattr(args, part)).resolve()) for part in TAG_FILES if getattr(args, part)})
    config = task_class.make_config(**overrides)
    refuse_options_that_do_not_apply(args, config)
    out = args.out or Path("runs", args.task)
    comm = distributed.init()  # one process, unless started by mpiexec: then rank 0 alone prints and writes
    say = print if comm.is_root else (lambda *_, **__: None)
    on_root(comm, lambda: prepare_run_folder(out, resume=args.resume, force=args.force))
    if comm.size > 1:  # MPI's launcher names a dead process by its pid: this line maps pids to ranks
        pids = comm.allgather_rows(np.array([os.getpid()]))
        say(
            f"data-parallel over {comm.size} ranks (MPI): " + ", ".join(f"rank {r} pid {p}" for r, p in enumerate(pids))
        )
    repeats = args.repeats or (5 if args.task == "sunspots" else 1)
    runs = planned_runs(config, args.sweep, repeats, out)
    groups = min(comm.size, len(runs))  # several runs under mpiexec: one rank group a run (or more)
    color = comm.rank * groups // comm.size
    group = comm.split(color) if groups > 1 else comm
    summaries = []
    with distributed.active(group):
        for index in range(color, len(runs), groups):
            run_config, run_out, settings = runs[index]
            summary = train_one(args, task_class, run_config, run_out, out, group)
            summaries.append({**summary, "sweep": settings} if settings else summary)
    if groups > 1:  # every group's summaries, in the planned order, on rank 0
        gathered = comm.gather([(index, s) for index, s in zip(range(color, len(runs), groups), summaries)]
                               if group.is_root else [])  # fmt: skip
        summaries = [s for _, s in sorted(pair for part in gathered or [] for pair in part)]
    if not comm.is_root:  # rank 0 alone reports the runs together and writes result.json
        return {"runs": summaries}
    result = {"runs": summaries}
    metric = task_class.metric
    if repeats > 1 and not args.sweep:
        values = [s["test"][metric] for s in summaries]
        result["median_test"] = {metric: statistics.median(values)}
        say(
            f"median test {metric} over {repeats} seeds: {statistics.median(values):.4f} (each: "
            + ", ".join(f"{v:.4f}" for v in values)
            + ")"
        )
    if args.sweep:
        result["sweep"], lines = sweep_table(summaries, metric, task_class.higher_is_better)
        for line in lines:
            say(line)
    if args.task == "sunspots":
        from .data.sunspots import baselines, load_sunspots

        result["baselines"] = baselines(load_sunspots())
        say("baselines on the same test years: " + ", ".join(f"{k} {v:.2f}" for k, v in result["baselines"].items()))
    io.write_text(out / RESULT, json.dumps(result, indent=2) + "\n")
    return result


def sweep_table(summaries: list[dict], metric: str, higher_is_better: bool) -> tuple[list[dict], list[str]]:
    """Each sweep setting's median validation and test metric over its seeds, the best (by validation)
    marked: ``(rows for result.json, lines to print)``."""
    settings: dict[str, list[dict]] = {}
    for summary in summaries:
        settings.setdefault(json.dumps(summary["sweep"]), []).append(summary)
    rows = [
        {
            "settings": json.loads(key),
            "median_valid": statistics.median(s["valid"][metric] for s in runs),
            "median_test": statistics.median(s["test"][metric] for s in runs),
            "seeds": len(runs),
        }
        for key, runs in settings.items()
    ]
    pick = max if higher_is_better else min
    best = pick(rows, key=lambda row: row["median_valid"])
    lines = [f"sweep ({metric}, median over seeds; the best by validation marked *):"]
    for row in rows:
        described = ", ".join(f"{name}={value}" for name, value in row["settings"].items())
        mark = " *" if row is best else ""
        lines.append(f"  {described}: valid {row['median_valid']:.4f}, test {row['median_test']:.4f}{mark}")
    for row in rows:
        row["best"] = row is best
    return rows, lines


def train_one(args, task_class, run_config: dict, run_out: Path, out: Path, comm) -> dict:
    """One run (over ``comm``'s ranks) in ``run_out``; its group's rank 0 prints its lines."""
    say = print if comm.is_root else (lambda *_, **__: None)
    try:
        with stop_signals_raise():
            trainer = Trainer(
                task_class(run_config), run_out, progress=not args.no_progress, backend=args.backend, comm=comm
            )
            resume = on_root(comm, lambda: args.resume and (run_out / "checkpoint.npz").exists())
            summary = trainer.fit(resume=resume)
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM through stop_signals_raise
        raise Interrupted(interrupted_message(interrupt, run_out, args.argv, out), exit_code(interrupt)) from None
    say(
        f"{args.task} seed {run_config['seed']}: test {json.dumps(summary['test'])} "
        f"(best epoch {summary['best_epoch']}, {summary['train_seconds']:.1f}s of training) -> {run_out}"
    )
    report, lines = trainer.task.report(trainer.model)  # the best epoch's model, in evaluation
    if report:
        summary["report"] = report
    for line in lines:
        say(line)
    return summary


def on_root(comm: distributed.Communicator, work: Callable):
    """``work()`` on rank 0, its result (or its error, raised on every rank) sent to every rank."""
    if comm.size == 1:
        return work()
    outcome = None
    if comm.is_root:
        try:
            outcome = ("value", work())
        except Exception as error:  # noqa: BLE001  every rank raises it below
            outcome = ("error", error)
    kind, value = comm.bcast(outcome)
    if kind == "error":
        raise value
    return value


class Interrupted(Exception):
    """A run stopped by Ctrl-C or SIGTERM: ``message`` is the one line to print, ``code`` the exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def checkpoint_and_task(checkpoint: Path) -> tuple[dict[str, np.ndarray], dict, type[Task]]:
    if checkpoint.is_dir():
        raise io.CheckpointError(
            f"{checkpoint} is a folder; expected a checkpoint file in it, e.g. {checkpoint / 'best.npz'}"
        )
    arrays, meta = io.load_checkpoint(checkpoint)
    task_class = get_task(meta["config"]["task"])
    return arrays, meta, task_class


def trained_model(checkpoint: Path) -> tuple[Module, Task, dict]:
    """``(model, task, meta)`` of a checkpoint: its task's model holding its weights, in evaluation mode."""
    arrays, meta, task_class = checkpoint_and_task(checkpoint)
    task = task_class(meta["config"])
    model = task.build_model()
    model.load_state_dict(io.prefixed(arrays, "model"))
    return model.eval(), task, meta


def run_evaluate(args: argparse.Namespace) -> dict:
    model, task, meta = trained_model(args.checkpoint)
    result = {part: task.evaluate(model, part) for part in ("valid", "test")}
    report, _ = task.report(model)
    if report:
        result["report"] = report
    print(json.dumps({"checkpoint": str(args.checkpoint), "epoch": meta["epoch"], **result}))
    return result


def prompt_tokens(prompt: str, vocabulary: list[str], words: bool) -> list[int]:
    """The ids of ``prompt``'s words (``words``) or characters; every one must be in ``vocabulary``."""
    index = {token: i for i, token in enumerate(vocabulary)}
    tokens = prompt.split() if words else list(prompt)
    unknown = list(dict.fromkeys(token for token in tokens if token not in index))
    if unknown:
        kind = "words" if words else "characters"
        hint = " (ptb's words are lowercase; rare words are written <unk>, numbers N)" if words else ""
        raise ValueError(f"the prompt holds {kind} this model never saw: {unknown[:5]}{hint}")
    return [index[token] for token in tokens]


def run_generate(args: argparse.Namespace) -> str:
    from .nn.language_model import LanguageModel

    arrays, meta, task_class = checkpoint_and_task(args.checkpoint)
    vocabulary = meta.get("vocabulary")
    if meta["config"]["task"] not in LANGUAGE_TASKS:
        raise ValueError(
            f"{args.checkpoint} is a {meta['config']['task']} checkpoint; generate needs a language model (ptb or text)"
        )
    config = meta["config"]
    words = config["task"] == "ptb"
    prompt = prompt_tokens(args.prompt, vocabulary, words)
    model = LanguageModel(
        len(vocabulary), config["embedding_size"], config["hidden_size"], config["num_layers"], init_range=0
    )
    model.load_state_dict(io.prefixed(arrays, "model"))
    model.eval()
    start = prompt or [vocabulary.index("<eos>") if "<eos>" in vocabulary else 0]
    rng = np.random.default_rng(args.seed)
    state, generated = None, []
    with no_grad():
        logits, state = model(np.array(start)[:, None], state)
        for _ in range(args.length):
            scaled = logits[-1, 0].astype(np.float64) / args.temperature
            probabilities = np.exp(scaled - scaled.max())
            token = int(rng.choice(len(vocabulary), p=probabilities / probabilities.sum()))
            generated.append(vocabulary[token])
            logits, state = model(np.array([[token]]), state)
    text = (" " if words else "").join([vocabulary[token] for token in prompt] + generated)
    print(text)
    return text


EXPECTED_FAILURES = (
    MissingDatasetPackage,
    TrainingDiverged,
    io.CheckpointError,
    RunFolderError,
    ValueError,
    FileNotFoundError,
)


def dispatch(args: argparse.Namespace, more_handlers: dict[str, Callable] | None = None) -> int:
    """Run train/evaluate/generate (or a command of ``more_handlers``), turning expected failures into
    one clear line and exit code 2.

    Ctrl-C or SIGTERM during training ends with one line naming the kept checkpoint and the command
    that resumes the run (exit code 130, or 143 after SIGTERM).
    """
    handlers = {"train": run_train, "evaluate": run_evaluate, "generate": run_generate, **(more_handlers or {})}
    try:
        handlers[args.command](args)
    except EXPECTED_FAILURES as error:
        print(f"lstmkit {args.command}: {error}", flush=True, file=sys.stderr)
        return 2
    except Interrupted as interrupted:
        print(f"lstmkit {args.command}: {interrupted}", flush=True, file=sys.stderr)
        return interrupted.code
    except KeyboardInterrupt as interrupt:
        print(f"lstmkit {args.command}: interrupted", flush=True, file=sys.stderr)
        return exit_code(interrupt)
    return 0
