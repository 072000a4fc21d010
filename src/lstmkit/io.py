"""Checkpoints that never unpickle, written atomically, and weight export to PyTorch.

A checkpoint is one ``.npz`` file: the arrays under their names, plus one entry ``__meta__``
holding UTF-8 JSON (configuration, epoch, optimizer scalars, history). It is read with
``allow_pickle=False``, so loading a file can never run code. Every file is written to a
temporary name in the same folder, flushed to disk and renamed over the old one: a run killed
at any moment leaves either the old file or the new one, never half of one. Files get the
permissions any program's new files get: ``0o666`` less the process' umask.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .nn.module import Module

FORMAT = "lstmkit-checkpoint"
VERSION = 1
_META = "__meta__"


class CheckpointError(ValueError):
    """A file that is not a readable lstmkit checkpoint, or one that does not fit the model."""


def current_umask() -> int:
    """The process' umask (read by setting it and putting it back: there is no other portable way)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def atomic_write(path: str | Path, write: Callable[[IO], object], mode: str = "wb") -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, then rename it to ``path``.

    The file's permissions are ``0o666 & ~umask``, as ``open(path, "w")`` would give (the
    temporary file starts as 0o600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(descriptor, 0o666 & ~current_umask())
        with os.fdopen(descriptor, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def save_checkpoint(path: str | Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write ``arrays`` and the JSON-able ``meta`` as one checkpoint file, atomically."""
    payload = json.dumps({"format": FORMAT, "version": VERSION, **meta}).encode("utf-8")
    entries = {name: np.asarray(value) for name, value in arrays.items()}
    entries[_META] = np.frombuffer(payload, dtype=np.uint8)
    atomic_write(path, lambda handle: np.savez(handle, **entries))


def load_checkpoint(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """``(arrays, meta)`` of a checkpoint; a clear :class:`CheckpointError` for anything else."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path} is not an lstmkit checkpoint: expected an .npz file written by lstmkit "
            "(a zip archive), got a file that is not a zip archive"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        reason = "it holds pickled objects, which lstmkit never loads" if "pickle" in str(error) else str(error)
        raise CheckpointError(f"{path} is not a readable lstmkit checkpoint ({reason})") from None
    if _META not in arrays:
        raise CheckpointError(f"{path} is an .npz file but not an lstmkit checkpoint (no {_META} entry)")
    try:
        meta = json.loads(arrays.pop(_META).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: its metadata is corrupt ({error})") from None
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: expected format {FORMAT} version {VERSION}, got "
            f"{meta.get('format')} version {meta.get('version')}"
        )
    return arrays, meta


def prefixed(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The entries of ``arrays`` under ``prefix + '/'``, with the prefix removed."""
    start = prefix + "/"
    return {name[len(start) :]: value for name, value in arrays.items() if name.startswith(start)}


def torch_state_dict(module: Module) -> dict:
    """``module``'s weights as a PyTorch state_dict (torch tensors), e.g. for ``torch.nn.LSTM.load_state_dict``.

    lstmkit's names and layouts are PyTorch's, so this is a conversion of array types only.
    Needs torch installed; lstmkit itself never does.
    """
    try:
        import torch
    except ImportError as error:
        raise ImportError("torch_state_dict needs PyTorch: pip install torch") from error
    return {name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in module.state_dict().items()}
