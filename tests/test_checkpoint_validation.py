"""Bad checkpoint files are refused cheaply and clearly (issue 28, defect 3).

Each bad file is written by hand from a good checkpoint of ``lstmkit train digits``: metadata
that is a list or a number or lacks a key, optimizer state for parameter 999 or -1, an array
whose .npy header claims 10**12 elements, and a zip bomb (3 GiB of zeros deflated to 3 MB).
``load_checkpoint`` raises a CheckpointError naming the problem while allocating less than
twice the model's size; ``lstmkit evaluate FILE`` and ``lstmkit train digits --resume`` print
one line and exit 2, and never allocate what the file claims.
"""

import io as bytes_io
import json
import os
import subprocess
import sys
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest
from numpy.lib import format as npy_format

from lstmkit import io
from lstmkit.cli import main

TINY = ["--hidden-size", "64", "--epochs", "1", "--max-batches", "2", "--optimizer", "adam", "--no-progress"]
BOMB_BYTES = 3 * 2**30
ZEROS = bytes(16 * 2**20)


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """``(arrays, meta)`` of a real checkpoint: an LSTM of 64 units on digits after 2 Adam steps."""
    out = tmp_path_factory.mktemp("good") / "run"
    assert main(["train", "digits", *TINY, "--out", str(out)]) == 0
    arrays, meta = io.load_checkpoint(out / "checkpoint.npz")
    assert any(name.endswith(".step") for name in arrays)  # Adam's state is in it
    return arrays, meta


def model_bytes(good) -> int:
    return sum(value.nbytes for name, value in good[0].items() if name.startswith("model/"))


def npy_bytes(shape, descr="<f4") -> bytes:
    """A .npy version 1.0 header for ``shape`` of ``descr`` (no data)."""
    header = bytes_io.BytesIO()
    npy_format.write_array_header_1_0(header, {"descr": descr, "fortran_order": False, "shape": shape})
    return header.getvalue()


def write_npz(path, arrays: dict, meta) -> None:
    """An .npz file as numpy.savez writes it, with ``meta`` (any JSON) as ``__meta__``."""
    np.savez(path, **arrays, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))


class _ReplayedDeflate:
    """zipfile's compressor, made fast for long runs of ``ZEROS``: each write ends with a full flush,
    which makes its deflate bytes independent of what came before, so ``ZEROS`` is compressed once
    and its bytes repeated. The stream stays valid: it inflates to exactly what was written."""

    def __init__(self):
        self._deflate, self._zeros = zlib.compressobj(6, zlib.DEFLATED, -15), None

    def compress(self, data):
        if data is ZEROS and self._zeros is not None:
            return self._zeros
        compressed = self._deflate.compress(data) + self._deflate.flush(zlib.Z_FULL_FLUSH)
        if data is ZEROS:
            self._zeros = compressed
        return compressed

    def flush(self):
        return self._deflate.flush()


def write_bomb(path, meta) -> None:
    """A valid checkpoint-shaped zip whose array ``model/bomb`` is BOMB_BYTES of zeros, deflated ~1000x."""
    write_npz(path, {}, meta)
    with (
        zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive,
        archive.open("model/bomb.npy", "w", force_zip64=True) as member,
    ):
        member._compressor = _ReplayedDeflate()
        member.write(npy_bytes((BOMB_BYTES // 4,)))
        for _ in range(BOMB_BYTES // len(ZEROS)):
            member.write(ZEROS)


def without(meta, key):
    return {name: value for name, value in meta.items() if name != key}


def renamed_step(arrays, new_key):
    """The arrays with one Adam ``step`` moved to ``optimizer/<new_key>``."""
    old = next(name for name in arrays if name.endswith(".step"))
    return {(f"optimizer/{new_key}" if name == old else name): value for name, value in arrays.items()}


def write_bad(case, path, good) -> None:
    arrays, meta = good
    if case == "list metadata":
        write_npz(path, arrays, [meta])
    elif case == "number metadata":
        write_npz(path, arrays, 3)
    elif case in ("no config", "no optimizer", "no history"):
        write_npz(path, arrays, without(meta, case.split()[1]))
    elif case == "epoch -1":
        write_npz(path, arrays, {**meta, "epoch": -1})
    elif case == "unknown task":
        write_npz(path, arrays, {**meta, "config": {**meta["config"], "task": "chess"}})
    elif case in ("999.step", "-1.step"):
        write_npz(path, renamed_step(arrays, case), meta)
    elif case == "huge header":
        write_npz(path, arrays, meta)
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr("model/huge.npy", npy_bytes((10**6, 10**6)) + bytes(64))
    elif case == "zip bomb":
        write_bomb(path, meta)
    else:  # pragma: no cover
        raise AssertionError(case)


CASES = {  # case -> what the CheckpointError says (a regular expression)
    "list metadata": "its metadata must be a JSON object, got list",
    "number metadata": "its metadata must be a JSON object, got int 3",
    "no config": r"its metadata lacks 'config' \(a JSON object\); not a complete checkpoint",
    "no optimizer": r"its metadata lacks 'optimizer' \(a JSON object\)",
    "no history": r"its metadata lacks 'history' \(a list of JSON objects\)",
    "epoch -1": "its metadata's 'epoch' must be an integer >= 0, got -1",
    "unknown task": "its metadata's config 'task' must be one of mnist, digits, .*, got 'chess'",
    "999.step": r"optimizer: state key '999.step' does not fit .* index in 0..\d+ \(one per parameter\)",
    "-1.step": r"optimizer: state key '-1.step' does not fit",
    "huge header": r"array 'model/huge' declares shape \(1000000, 1000000\) of float32 \(4000000000000 bytes\), "
    r"but its entry holds 64 bytes of data; refused before reading it",
    "zip bomb": r"refused without unpacking it: its entries would expand to 32\d{8} bytes from a file of \d+ bytes",
}


@pytest.fixture(scope="module")
def bad_files(good, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    paths = {}
    for case in CASES:
        paths[case] = folder / f"{case.replace(' ', '_')}.npz"
        write_bad(case, paths[case], good)
    assert os.path.getsize(paths["zip bomb"]) < 8 * 2**20
    return paths


@pytest.mark.parametrize("case", CASES)
def test_a_bad_file_is_a_clear_checkpoint_error_within_twice_the_models_memory(case, bad_files, good):
    path = bad_files[case]
    tracemalloc.start()
    try:
        with pytest.raises(io.CheckpointError, match=CASES[case]) as refused:
            io.load_checkpoint(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(refused.value).startswith(str(path)) and "\n" not in str(refused.value)
    assert peak < 2 * model_bytes(good), f"{case}: peak {peak} bytes, model {model_bytes(good)} bytes"


PEAK_RSS = """
import resource, sys
from lstmkit.cli import main
code = main(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)  # MiB
sys.exit(code)
"""


def run_cli(*argv):
    """``(exit code, stderr, peak resident MiB)`` of ``lstmkit ARGV`` in its own process."""
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, *argv], capture_output=True, text=True, timeout=300, check=False
    )
    return done.returncode, done.stderr, int(done.stdout.split()[-1])


def test_evaluate_and_resume_end_with_one_line_for_every_bad_file(bad_files, tmp_path, capsys):
    for case, path in bad_files.items():
        assert main(["evaluate", str(path)]) == 2, case
        printed = capsys.readouterr()
        assert printed.err.startswith(f"lstmkit evaluate: {path}") and printed.err.count("\n") == 1, printed.err
        out = tmp_path / case.replace(" ", "_")
        out.mkdir()
        os.symlink(path, out / "checkpoint.npz")
        assert main(["train", "digits", *TINY, "--resume", "--out", str(out)]) == 2, case
        printed = capsys.readouterr()
        expected = f"lstmkit train: {out / 'checkpoint.npz'}"
        assert printed.err.startswith(expected) and printed.err.count("\n") == 1, printed.err
        assert [line for line in printed.err.splitlines() if "Traceback" in line] == []


@pytest.mark.parametrize("case", ["huge header", "zip bomb"])
def test_the_cli_never_allocates_what_a_bad_file_claims(case, bad_files, tmp_path):
    baseline_code, _, baseline = run_cli("evaluate", str(tmp_path / "missing.npz"))
    code, stderr, peak = run_cli("evaluate", str(bad_files[case]))
    assert code == baseline_code == 2 and stderr.count("\n") == 1 and CASES[case].split()[0] in stderr
    assert peak < baseline + 64, f"{case}: peak {peak} MiB against {baseline} MiB refusing a missing file"


def test_a_good_checkpoint_still_loads_and_resumes(good, tmp_path):
    arrays, meta = good
    path = tmp_path / "again.npz"
    io.save_checkpoint(path, arrays, without(without(meta, "format"), "version"))
    again, meta_again = io.load_checkpoint(path)
    assert meta_again == meta and again.keys() == arrays.keys()
    assert all(np.array_equal(again[name], arrays[name]) for name in arrays)
