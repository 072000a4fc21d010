"""Options checked when parsed, help with defaults, ``--version``, ``python -m lstmkit``, and options that
do not apply refused rather than ignored."""

import argparse
import subprocess
import sys
from importlib import metadata

import numpy as np
import pytest

from lstmkit import io
from lstmkit.cli import build_parser, main
from lstmkit.cli_options import HelpFormatter
from lstmkit.nn.language_model import LanguageModel
from lstmkit.tasks import get_task

BAD_VALUES = [
    (["train", "digits", "--batch-size", "0"], "argument --batch-size: must be an integer >= 1, got 0"),
    (["train", "digits", "--batch-size", "abc"], "argument --batch-size: must be an integer >= 1, got 'abc'"),
    (["train", "digits", "--epochs", "0"], "argument --epochs: must be an integer >= 1, got 0"),
    (["train", "digits", "--hidden-size", "-3"], "argument --hidden-size: must be an integer >= 1, got -3"),
    (["train", "digits", "--num-layers", "0"], "argument --num-layers: must be an integer >= 1, got 0"),
    (["train", "digits", "--lr", "0"], "argument --lr: must be a number > 0, got 0"),
    (["train", "digits", "--lr", "nan"], "argument --lr: must be a finite number > 0, got nan"),
    (["train", "digits", "--dropout", "1"], "argument --dropout: must be a number in [0, 1), got 1"),
    (["train", "digits", "--dropout", "-0.1"], "argument --dropout: must be a number in [0, 1), got -0.1"),
    (["train", "digits", "--clip", "-1"], "argument --clip: must be a number >= 0, got -1"),
    (["train", "digits", "--clip", "inf"], "argument --clip: must be a finite number >= 0, got inf"),
    (["train", "digits", "--patience", "-1"], "argument --patience: must be an integer >= 0, got -1"),
    (["train", "digits", "--repeats", "0"], "argument --repeats: must be an integer >= 1, got 0"),
    (["train", "digits", "--max-batches", "-2"], "argument --max-batches: must be an integer >= 0, got -2"),
    (["train", "digits", "--seed", "-1"], "argument --seed: must be an integer >= 0, got -1"),
    (["train", "digits", "--schedule", "linear"], "argument --schedule: invalid choice: 'linear'"),
    (["generate", "x.npz", "--length", "0"], "argument --length: must be an integer >= 1, got 0"),
    (["generate", "x.npz", "--temperature", "0"], "argument --temperature: must be a number > 0, got 0"),
    (["generate", "x.npz", "--seed", "-2"], "argument --seed: must be an integer >= 0, got -2"),
    (["explain", "--input-size", "0", "--hidden-size", "4"], "argument --input-size: must be an integer >= 1, got 0"),
    (
        ["explain", "--input-size", "3", "--hidden-size", "4", "--seq-len", "0"],
        "argument --seq-len: must be an integer >= 1, got 0",
    ),
    (
        ["explain", "--input-size", "3", "--hidden-size", "4", "--batch", "0"],
        "argument --batch: must be an integer >= 1, got 0",
    ),
    (
        ["explain", "--input-size", "3", "--hidden-size", "4", "--proj-size", "-1"],
        "argument --proj-size: must be an integer >= 0, got -1",
    ),
]


@pytest.mark.parametrize("argv,message", BAD_VALUES)
def test_bad_numbers_stop_the_parser_with_argparse_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert f"lstmkit {argv[0]}: error: {message}" in error


def subcommands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("name", ["explain", "train", "evaluate", "generate", "export", "inspect"])
def test_every_option_has_help_and_shows_its_default(name):
    parser = subcommands()[name]
    formatter = HelpFormatter(f"lstmkit {name}")
    arguments = [action for action in parser._actions if action.dest != "help"]
    assert all(action.help for action in arguments), [action.dest for action in arguments if not action.help]
    options = [action for action in arguments if action.option_strings]  # positionals have no default to show
    for action in options:
        shown = formatter._get_help_string(action)
        assert "(default: " in shown or "(required)" in shown, (action.option_strings, shown)
    text = " ".join(parser.format_help().split())
    assert all(action.option_strings[0] in text for action in options)


def test_train_help_lists_each_tasks_recipe():
    text = " ".join(subcommands()["train"].format_help().split())
    assert "units of the LSTM (default: digits 64, sunspots 64, ptb 200, others 128)" in text
    assert "learning rate (default: ptb 1.0, tag 0.002, others 0.003)" in text
    assert "(default: sunspots 5, others 1)" in text


def test_version_and_python_dash_m():
    result = subprocess.run([sys.executable, "-m", "lstmkit", "--version"], capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout == f"lstmkit {metadata.version('lstmkit')}\n"
    result = subprocess.run(
        [sys.executable, "-m", "lstmkit", "explain", "--input-size", "2", "--hidden-size", "3"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and "lstmkit.LSTM(2, 3)" in result.stdout


REFUSED = [
    (
        ["train", "digits", "--file", "x.txt"],
        "lstmkit train: --file applies to the text task only; digits reads its own dataset",
    ),
    (
        ["train", "text", "--file", "x.txt", "--bidirectional"],
        "lstmkit train: --bidirectional does not apply to text: a language model reads left to right",
    ),
    (
        ["train", "digits", "--dropout", "0.3"],
        "lstmkit train: --dropout 0.3 applies between stacked LSTM layers and "
        "digits has one: add --num-layers 2 (or more) or leave out --dropout",
    ),
    (
        ["explain", "--input-size", "3", "--hidden-size", "4", "--unbatched", "--batch", "5"],
        "lstmkit explain: --unbatched explains an input without a batch axis; leave out --batch 5",
    ),
    (
        ["explain", "--input-size", "3", "--hidden-size", "4", "--style", "keras", "--batch-first"],
        "lstmkit explain: --style keras: Keras layers are always batch-major with a batch axis; "
        "leave out --batch-first",
    ),
    (
        ["explain", "--input-size", "3", "--hidden-size", "4", "--style", "keras", "--unbatched"],
        "lstmkit explain: --style keras: Keras layers are always batch-major with a batch axis; leave out --unbatched",
    ),
]


@pytest.mark.parametrize("argv,message", REFUSED)
def test_options_that_do_not_apply_are_refused(argv, message, tmp_path, capsys):
    out = ["--out", str(tmp_path / "run")] if argv[0] == "train" else []
    assert main(argv + out) == 2
    printed = capsys.readouterr()
    assert printed.err == message + "\n" and printed.out == ""
    assert not (tmp_path / "run").exists()


def test_dropout_between_two_layers_is_accepted(tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "digits",
                "--dropout",
                "0.3",
                "--num-layers",
                "2",
                "--hidden-size",
                "4",
                "--epochs",
                "1",
                "--max-batches",
                "2",
                "--no-progress",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )


@pytest.fixture
def ptb_like_checkpoint(tmp_path):
    """A tiny word-level model saved as a ptb checkpoint (the real corpus is not needed to sample)."""
    vocabulary = ["<eos>", "<unk>", "N", "cat", "sat", "the"]
    model = LanguageModel(len(vocabulary), 4, 6, 2, init_range=0, seed=0)
    path = tmp_path / "ptb.npz"
    meta = {
        "config": {"task": "ptb", "embedding_size": 4, "hidden_size": 6, "num_layers": 2},
        "epoch": 1,
        "vocabulary": vocabulary,
        **{"history": [], "best": None, "bad_epochs": 0, "scheduler": None},  # the rest of what a Trainer writes
        "optimizer": {"lr": 1.0, "step_count": 0},
    }
    io.save_checkpoint(path, {f"model/{name}": value for name, value in model.state_dict().items()}, meta)
    return path, vocabulary


def test_a_ptb_prompt_word_outside_the_vocabulary_is_an_error_naming_it(ptb_like_checkpoint, capsys):
    path, vocabulary = ptb_like_checkpoint
    assert main(["generate", str(path), "--prompt", "the dog sat on", "--length", "3"]) == 2
    assert capsys.readouterr().err == (
        "lstmkit generate: the prompt holds words this model never saw: ['dog', 'on'] "
        "(ptb's words are lowercase; rare words are written <unk>, numbers N)\n"
    )
    assert main(["generate", str(path), "--prompt", "the cat", "--length", "3"]) == 0
    words = capsys.readouterr().out.split()
    assert words[:2] == ["the", "cat"] and len(words) == 5 and set(words) <= set(vocabulary)


def test_generate_is_reproducible_with_its_seed(ptb_like_checkpoint, capsys):
    path, _ = ptb_like_checkpoint
    runs = []
    for seed in ("1", "1", "2"):
        assert main(["generate", str(path), "--length", "30", "--seed", seed]) == 0
        runs.append(capsys.readouterr().out)
    assert runs[0] == runs[1] and runs[0] != runs[2]
    assert np.all([len(run.split()) == 30 for run in runs])


def test_zero_switches_clipping_early_stopping_and_the_batch_cap_off(tmp_path, capsys):
    """``--clip 0``, ``--patience 0`` and ``--max-batches 0`` mean off, as the recipes' 0 does."""
    out = tmp_path / "run"
    argv = ["train", "digits", "--hidden-size", "4", "--epochs", "1", "--no-progress", "--out", str(out)]
    assert main([*argv, "--clip", "0", "--patience", "0", "--max-batches", "0"]) == 0
    meta = io.load_checkpoint(out / "checkpoint.npz")[1]
    assert {k: meta["config"][k] for k in ("clip", "patience", "max_batches")} == {
        "clip": 0.0,
        "patience": 0,
        "max_batches": 0,
    }
    batches = meta["config"]["batch_size"]  # digits' training split: every batch of the epoch ran
    steps = meta["optimizer"]["step_count"]
    assert steps == -(-len(get_task("digits")(meta["config"]).parts["train"].y) // batches)
    capped = tmp_path / "capped"
    assert main([*argv[:-1], str(capped), "--max-batches", "2"]) == 0
    assert io.load_checkpoint(capped / "checkpoint.npz")[1]["optimizer"]["step_count"] == 2
