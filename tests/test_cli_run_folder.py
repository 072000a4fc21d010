"""``lstmkit train`` never overwrites a run silently, never starts afresh when asked to resume, and
says which files each task writes."""

import json
import os
import stat

import pytest

from lstmkit.cli import main

TINY = ["--hidden-size", "8", "--epochs", "1", "--max-batches", "3", "--no-progress"]
RUN_FILES = ["best.npz", "checkpoint.npz", "metric_curve.png", "metrics.jsonl", "summary.json", "training_curve.png"]


def test_a_second_run_into_a_folder_that_holds_one_is_refused_at_once(tmp_path, capsys):
    out = tmp_path / "digits"
    assert main(["train", "digits", *TINY, "--out", str(out)]) == 0
    before = {name: (out / name).read_bytes() for name in RUN_FILES}
    capsys.readouterr()
    assert main(["train", "digits", *TINY, "--epochs", "3", "--out", str(out)]) == 2
    printed = capsys.readouterr()
    assert printed.out == ""  # stopped before loading data or building a model
    assert printed.err.startswith(f"lstmkit train: {out} already holds a run (checkpoint.npz, ")
    assert "add --resume to continue it, or --force to start over and replace it" in printed.err
    assert {name: (out / name).read_bytes() for name in RUN_FILES} == before


def test_force_replaces_the_previous_run_and_keeps_the_users_own_files(tmp_path, capsys):
    out = tmp_path / "digits"
    assert main(["train", "digits", *TINY, "--epochs", "2", "--out", str(out)]) == 0
    (out / "notes.txt").write_text("mine")
    assert main(["train", "digits", *TINY, "--seed", "3", "--force", "--out", str(out)]) == 0
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in metrics] == [1]  # the new one-epoch run, not the old two-epoch one
    assert json.loads((out / "summary.json").read_text())["config"]["seed"] == 3
    assert (out / "notes.txt").read_text() == "mine"


def test_resume_with_nothing_to_resume_is_an_error(tmp_path, capsys):
    out = tmp_path / "empty"
    assert main(["train", "digits", *TINY, "--resume", "--out", str(out)]) == 2
    printed = capsys.readouterr()
    assert printed.err == (
        f"lstmkit train: --resume: there is no checkpoint to resume in {out} "
        f"(expected {out / 'checkpoint.npz'}); leave out --resume to start a new run there\n"
    )
    assert printed.out == "" and not out.exists()


def test_resume_and_force_together_are_refused_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "digits", "--resume", "--force", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "argument --force: not allowed with argument --resume" in capsys.readouterr().err


def test_out_naming_a_file_is_refused_before_training(tmp_path, capsys):
    existing = tmp_path / "a_file"
    existing.write_text("not a folder")
    assert main(["train", "digits", *TINY, "--out", str(existing)]) == 2
    printed = capsys.readouterr()
    assert printed.err == (
        f"lstmkit train: --out {existing} is a file; expected a folder for the run (created if missing)\n"
    )
    assert printed.out == "" and existing.read_text() == "not a folder"


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_files_a_single_run_writes_and_their_permissions(tmp_path, capsys, umask_022):
    out = tmp_path / "digits"
    assert main(["train", "digits", *TINY, "--out", str(out)]) == 0
    assert sorted(os.listdir(out)) == sorted([*RUN_FILES, "result.json"])
    assert {stat.S_IMODE((out / name).stat().st_mode) for name in os.listdir(out)} == {0o644}
    result = json.loads((out / "result.json").read_text())
    assert result["runs"][0] == json.loads((out / "summary.json").read_text())


def test_files_of_repeated_seeds_sunspots_default(tmp_path, capsys):
    """Each seed is a whole run in seed<S>/; result.json beside them has the median and the baselines."""
    out = tmp_path / "sunspots"
    assert main(["train", "sunspots", "--repeats", "2", "--seed", "4", *TINY, "--out", str(out)]) == 0
    assert sorted(os.listdir(out)) == ["result.json", "seed4", "seed5"]
    for seed in ("seed4", "seed5"):
        assert sorted(os.listdir(out / seed)) == RUN_FILES
    result = json.loads((out / "result.json").read_text())
    assert [run["config"]["seed"] for run in result["runs"]] == [4, 5]
    assert set(result) == {"runs", "median_test", "baselines"}
    # the folder is protected as a whole: a new run there needs --resume or --force
    assert main(["train", "sunspots", "--repeats", "2", *TINY, "--out", str(out)]) == 2
    assert f"{out} already holds a run (result.json, seed4/checkpoint.npz, " in capsys.readouterr().err
    assert main(["train", "sunspots", "--repeats", "2", "--seed", "4", *TINY, "--out", str(out), "--resume"]) == 0
    assert "resumed from " + str(out / "seed5" / "checkpoint.npz") + " after epoch 1" in capsys.readouterr().out
