"""What protects a user's run folder: no silent overwrite, no silent fresh start, a clean stop.

* :func:`prepare_run_folder` refuses an ``--out`` that holds a previous run unless ``--resume``
  (continue it) or ``--force`` (start over: its run files are removed) is given, refuses
  ``--resume`` when there is nothing to resume, and refuses an ``--out`` that is a file.
* :func:`stop_signals_raise` turns SIGTERM into :class:`Terminated` (a KeyboardInterrupt), so
  Ctrl-C and ``kill`` end the same way: :func:`interrupted_message` names the kept checkpoint and
  the command that resumes the run.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from .io import CheckpointError, load_checkpoint
from .train import CHECKPOINT, RUN_FILES

RESULT = "result.json"  # written by ``lstmkit train`` beside the run files: every seed's summary
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM


class RunFolderError(ValueError):
    """``--out`` cannot be used as asked (a previous run, nothing to resume, a file)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: stop as after Ctrl-C."""


def run_folders(out: Path) -> list[Path]:
    """``out`` and its ``seed<N>`` folders (written by ``--repeats``), the places a run's files live."""
    seeds = sorted(path for path in out.glob("seed*") if path.is_dir() and path.name[4:].isdigit())
    return [out, *seeds]


def previous_run_files(out: Path) -> list[Path]:
    """The files of earlier runs in ``out``: checkpoints, metrics, curves, summaries, results."""
    if not out.is_dir():
        return []
    names = (*RUN_FILES, RESULT)
    return [folder / name for folder in run_folders(out) for name in names if (folder / name).is_file()]


def prepare_run_folder(out: Path, *, resume: bool, force: bool) -> None:
    """Check ``out`` before any data is loaded; with ``force``, remove its previous run's files.

    Only lstmkit's own files go (and ``seed<N>`` folders they leave empty); anything else stays.
    """
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"--out {out} is a file; expected a folder for the run (created if missing)")
    previous = previous_run_files(out)
    if resume:
        if not any((folder / CHECKPOINT).is_file() for folder in run_folders(out)):
            raise RunFolderError(
                f"--resume: there is no checkpoint to resume in {out} (expected {out / CHECKPOINT}); "
                "leave out --resume to start a new run there"
            )
        return
    if previous and not force:
        listed = ", ".join(str(path.relative_to(out)) for path in previous[:4]) + (", ..." if len(previous) > 4 else "")
        raise RunFolderError(
            f"{out} already holds a run ({listed}); add --resume to continue it, "
            "or --force to start over and replace it"
        )
    for path in previous:
        path.unlink()
    for folder in run_folders(out)[1:]:
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread (Ctrl-C already raises)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def resume_command(argv: Sequence[str], out: Path) -> str:
    """The command line that continues the run ``argv`` started: the same options, ``--out``, ``--resume``."""
    words = [word for word in argv if word != "--force"]
    if not any(word == "--out" or word.startswith("--out=") for word in words):
        words += ["--out", str(out)]
    if "--resume" not in words:
        words.append("--resume")
    return shlex.join(["lstmkit", *words])


def interrupted_message(interrupt: KeyboardInterrupt, run_out: Path, argv: Sequence[str], out: Path) -> str:
    """One line: what stopped the run, which checkpoint is kept and how to resume."""
    cause = "stopped by SIGTERM" if isinstance(interrupt, Terminated) else "interrupted (Ctrl-C)"
    checkpoint = run_out / CHECKPOINT
    try:
        _, meta = load_checkpoint(checkpoint)
    except CheckpointError:
        return f"{cause} before the first checkpoint in {run_out}: nothing to resume there"
    return (
        f"{cause}; the checkpoint of epoch {meta['epoch']} is kept in {checkpoint}; "
        f"resume with: {resume_command(argv, out)}"
    )


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """130 after Ctrl-C, 143 after SIGTERM."""
    return EXIT_TERMINATED if isinstance(interrupt, Terminated) else EXIT_INTERRUPTED
