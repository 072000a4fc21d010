"""``lstmkit train``, ``lstmkit evaluate`` and ``lstmkit generate``: thin wrappers around tasks and the Trainer."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import numpy as np

from . import io
from .data import MissingDatasetPackage
from .grad_mode import no_grad
from .tasks import TASKS, get_task
from .train import TrainingDiverged, Trainer

# option name -> (type, help); None defaults mean "the task's recipe"
TRAIN_OPTIONS = {
    "hidden_size": (int, "units of the LSTM"),
    "num_layers": (int, "stacked LSTM layers"),
    "dropout": (float, "dropout probability"),
    "epochs": (int, "epochs to train"),
    "batch_size": (int, "sequences per batch"),
    "lr": (float, "learning rate"),
    "optimizer": (str, "sgd, adam or adamw"),
    "clip": (float, "clip the gradient norm to this value (0: no clipping)"),
    "schedule": (str, "learning-rate schedule: none, cosine, step, halve or plateau"),
    "patience": (int, "stop after this many epochs without a better validation metric (0: never)"),
    "seed": (int, "seed of the weights, the shuffling and the dropout masks"),
    "file": (str, "the text file to learn (task text)"),
    "max_batches": (int, "train on at most this many batches per epoch (0: all; for quick trials)"),
}


def add_train_parser(commands) -> None:
    parser = commands.add_parser("train", help="train an LSTM on a dataset that ships inside a package",
                                 description="Train with the task's best recipe; every option overrides it.")
    parser.add_argument("task", choices=list(TASKS), help="dataset and task")
    for name, (kind, text) in TRAIN_OPTIONS.items():
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=None, help=text)
    parser.add_argument("--bidirectional", action="store_true", default=None, help="a bidirectional LSTM")
    parser.add_argument("--out", default=None, help="folder for checkpoints and reports (default runs/TASK)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--repeats", type=int, default=None, help="train this many seeds (seed, seed+1, ...) and report "
                        "the median test metric (default: 5 for sunspots, else 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    evaluate = commands.add_parser("evaluate", help="evaluate a checkpoint on its task's test data")
    evaluate.add_argument("checkpoint")
    generate = commands.add_parser("generate", help="sample text from a language-model checkpoint")
    generate.add_argument("checkpoint")
    generate.add_argument("--prompt", default="")
    generate.add_argument("--length", type=int, default=50)
    generate.add_argument("--temperature", type=float, default=1.0)
    generate.add_argument("--seed", type=int, default=0)


def run_train(args) -> dict:
    task_class = get_task(args.task)
    overrides = {name: getattr(args, name) for name in [*TRAIN_OPTIONS, "bidirectional"]}
    config = task_class.make_config(**overrides)
    out = Path(args.out or f"runs/{args.task}")
    repeats = args.repeats or (5 if args.task == "sunspots" else 1)
    if repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {repeats}")
    summaries = []
    for repeat in range(repeats):
        run_config = dict(config, seed=config["seed"] + repeat)
        run_out = out / f"seed{run_config['seed']}" if repeats > 1 else out
        trainer = Trainer(task_class(run_config), run_out, progress=not args.no_progress)
        summary = trainer.fit(resume=args.resume and (run_out / "checkpoint.npz").exists())
        print(f"{args.task} seed {run_config['seed']}: test {json.dumps(summary['test'])} "
              f"(best epoch {summary['best_epoch']}, {summary['train_seconds']:.1f}s of training) -> {run_out}")
        summaries.append(summary)
    result = {"runs": summaries}
    if repeats > 1:
        metric = task_class.metric
        values = [s["test"][metric] for s in summaries]
        result["median_test"] = {metric: statistics.median(values)}
        print(f"median test {metric} over {repeats} seeds: {statistics.median(values):.4f} (each: "
              + ", ".join(f"{v:.4f}" for v in values) + ")")
    if args.task == "sunspots":
        from .data.sunspots import baselines, load_sunspots

        result["baselines"] = baselines(load_sunspots())
        print("baselines on the same test years: " + ", ".join(f"{k} {v:.2f}" for k, v in result["baselines"].items()))
    io.write_text(out / "result.json", json.dumps(result, indent=2) + "\n")
    return result


def _checkpoint_and_task(checkpoint: str):
    arrays, meta = io.load_checkpoint(checkpoint)
    task_class = get_task(meta["config"]["task"])
    return arrays, meta, task_class


def run_evaluate(args) -> dict:
    arrays, meta, task_class = _checkpoint_and_task(args.checkpoint)
    task = task_class(meta["config"])
    model = task.build_model()
    model.load_state_dict(io.prefixed(arrays, "model"))
    model.eval()
    result = {part: task.evaluate(model, part) for part in ("valid", "test")}
    print(json.dumps({"checkpoint": args.checkpoint, "epoch": meta["epoch"], **result}))
    return result


def run_generate(args) -> str:
    from .nn.language_model import LanguageModel

    arrays, meta, task_class = _checkpoint_and_task(args.checkpoint)
    vocabulary = meta.get("vocabulary")
    if vocabulary is None:
        raise ValueError(f"{args.checkpoint} is a {meta['config']['task']} checkpoint; generate needs a language model (ptb or text)")
    if args.temperature <= 0 or args.length < 1:
        raise ValueError(f"--temperature must be > 0 and --length >= 1, got {args.temperature} and {args.length}")
    config = meta["config"]
    model = LanguageModel(len(vocabulary), config["embedding_size"], config["hidden_size"], config["num_layers"], init_range=0)
    model.load_state_dict(io.prefixed(arrays, "model"))
    model.eval()
    index = {token: i for i, token in enumerate(vocabulary)}
    words = config["task"] == "ptb"
    prompt = args.prompt.split() if words else list(args.prompt)
    unknown = [token for token in prompt if token not in index]
    if unknown and words and "<unk>" in index:
        prompt = [token if token in index else "<unk>" for token in prompt]
    elif unknown:
        raise ValueError(f"the prompt holds tokens this model never saw: {unknown[:5]}")
    tokens = [index[t] for t in prompt] or [index.get("<eos>", 0)]
    rng = np.random.default_rng(args.seed)
    state, generated = None, []
    with no_grad():
        logits, state = model(np.array(tokens)[:, None], state)
        for _ in range(args.length):
            scaled = logits[-1, 0].astype(np.float64) / args.temperature
            probabilities = np.exp(scaled - scaled.max())
            token = int(rng.choice(len(vocabulary), p=probabilities / probabilities.sum()))
            generated.append(vocabulary[token])
            logits, state = model(np.array([[token]]), state)
    text = (" " if words else "").join(prompt + generated)
    print(text)
    return text


def dispatch(args) -> int:
    """Run train/evaluate/generate, turning expected failures into one clear line and exit code 2."""
    handlers = {"train": run_train, "evaluate": run_evaluate, "generate": run_generate}
    try:
        handlers[args.command](args)
    except (MissingDatasetPackage, TrainingDiverged, io.CheckpointError, ValueError, FileNotFoundError) as error:
        print(f"lstmkit {args.command}: {error}", flush=True, file=sys.stderr)
        return 2
    return 0
