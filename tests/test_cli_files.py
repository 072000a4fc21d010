"""Files written with the user's umask, and ``evaluate`` on files that are not checkpoints."""

import os
import stat

import numpy as np
import pytest

from lstmkit import io
from lstmkit.cli import main


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_get_0666_less_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        io.write_text(tmp_path / "a.json", "{}\n")
        io.save_checkpoint(tmp_path / "c.npz", {"w": np.zeros(2)}, {"epoch": 1})
        io.write_text(tmp_path / "a.json", '{"again": 1}\n')  # replacing a file gives the same mode
    finally:
        os.umask(previous)
    for name in ("a.json", "c.npz"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []  # no temporary left


def test_write_text_is_utf8_whatever_the_locale(tmp_path):
    io.write_text(tmp_path / "t.txt", "naïve ✓\n")
    assert (tmp_path / "t.txt").read_bytes() == "naïve ✓\n".encode()


def test_evaluate_a_text_file_says_what_it_expected_not_numpys_advice(tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    assert main(["evaluate", str(text)]) == 2
    error = capsys.readouterr().err
    assert error == (
        f"lstmkit evaluate: {text} is not an lstmkit checkpoint: expected an .npz file written by "
        "lstmkit (a zip archive), got a file that is not a zip archive\n"
    )
    pickled = tmp_path / "pickled.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert main(["evaluate", str(pickled)]) == 2
    assert "allow_pickle" not in capsys.readouterr().err


def test_evaluate_a_folder_points_at_the_checkpoint_inside(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"lstmkit evaluate: {tmp_path} is a folder; expected a checkpoint file in it, e.g. {tmp_path / 'best.npz'}\n"
    )
    assert main(["evaluate", str(tmp_path / "missing.npz")]) == 2
    assert capsys.readouterr().err == f"lstmkit evaluate: no checkpoint at {tmp_path / 'missing.npz'}\n"
