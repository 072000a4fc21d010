"""Checkpoints that never unpickle, written atomically, and weights in PyTorch's names.

A checkpoint is one ``.npz`` file: the arrays under their names, plus one entry ``__meta__``
holding UTF-8 JSON (configuration, epoch, optimizer scalars, history). It is read with
``allow_pickle=False``, so loading a file can never run code. Every file is written to a
temporary name in the same folder, flushed to disk and renamed over the old one: a run killed
at any moment leaves either the old file or the new one, never half of one. Files get the
permissions any program's new files get: ``0o666`` less the process' umask.

Weights alone travel as ``.safetensors`` files (:func:`save_weights`, :func:`load_weights`;
needs ``pip install 'lstmkit[safetensors]'``), which PyTorch reads and writes as they are:

    ==========================================  =============================================
    lstmkit                                     PyTorch
    ==========================================  =============================================
    ``save_weights(lstm, "w.safetensors")``     ``torch_lstm.load_state_dict(load_file(...))``
    ``load_weights(lstm, "w.safetensors")``     ``save_file(torch_lstm.state_dict(), ...)``
    ==========================================  =============================================

A safetensors file is a JSON header (names, dtypes, shapes, offsets, a str -> str metadata
table) followed by raw little-endian array bytes: reading one never unpickles, so it cannot run
code. Names and shapes are ``module.state_dict()``'s, which are PyTorch's (``weight_ih_l0``
(4H, H_in), ``0.weight_hh_l1_reverse``, ...); the metadata records ``format`` and the module's
class, and for a recurrent layer its :class:`~lstmkit.convert.spec.LayerSpec` as JSON.
"""

from __future__ import annotations

import dataclasses
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


WEIGHTS_FORMAT = "lstmkit-weights"
_SAFETENSORS_HINT = "pip install 'lstmkit[safetensors]'"


def _safetensors(owner: str):
    try:
        import safetensors
        import safetensors.numpy
    except ImportError as error:
        raise ImportError(f"{owner} needs the safetensors package: {_SAFETENSORS_HINT}") from error
    return safetensors


def _weights_metadata(module: Module) -> dict[str, str]:
    from .convert.spec import LayerSpec
    from .nn.rnn_base import RNNBase

    metadata = {"format": WEIGHTS_FORMAT, "module": type(module).__name__}
    if isinstance(module, RNNBase):
        metadata["layer_spec"] = json.dumps(dataclasses.asdict(LayerSpec._of(module)))  # for people reading it
        if getattr(module, "runtime_forget_bias", 0.0):
            metadata["runtime_forget_bias"] = repr(float(module.runtime_forget_bias))
    return metadata


def save_weights(module: Module, path: str | Path) -> None:
    """Write ``module.state_dict()`` to a ``.safetensors`` file at ``path``, atomically.

    ``safetensors.torch.load_file(path)`` gives a state_dict that the PyTorch twin of ``module``
    (``torch.nn.LSTM`` of the same sizes, ...) loads as it is. Arrays are written C-contiguous in
    their own dtype; the metadata holds ``format``, ``module`` and, for a recurrent layer,
    ``layer_spec`` (JSON of its :class:`~lstmkit.convert.spec.LayerSpec`). For a recurrent layer
    with G gate blocks (LSTM 4, GRU 3, RNN 1), layer k, direction suffix ``_reverse`` or none:

        ==============================  ===========  ===============================
        name                            shape        note
        ==============================  ===========  ===============================
        ``weight_ih_l{k}{suffix}``      (G*H, I_k)   I_0 = input_size, else D*H_out
        ``weight_hh_l{k}{suffix}``      (G*H, H_out) H_out = proj_size or H
        ``bias_ih_l{k}{suffix}``, hh    (G*H,)       when ``bias=True``
        ``weight_hr_l{k}{suffix}``      (P, H)       when ``proj_size=P > 0``
        ``weight_peephole_l{k}...``     (3*H,)       the variants' (see
        ``layer_norm_*_l{k}...``                     :func:`lstmkit.nn.weight_shapes.layer_weight_shapes`)
        ==============================  ===========  ===============================

    The file holds the weights as they are: a layer's ``runtime_forget_bias`` (recorded in the
    metadata) is not in them, so a PyTorch twin needs :func:`lstmkit.convert.state_of`'s state.

    A model's names carry its children's prefixes (``0.weight_ih_l0``, ``2.weight``), as in torch.
    """
    safetensors = _safetensors("save_weights")
    arrays = {name: np.ascontiguousarray(value) for name, value in module.state_dict().items()}
    payload = safetensors.numpy.save(arrays, metadata=_weights_metadata(module))
    atomic_write(path, lambda handle: handle.write(payload))


def read_weights(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``(arrays, metadata)`` of a ``.safetensors`` file (lstmkit's or anyone's, e.g. PyTorch's
    ``save_file``); a :class:`CheckpointError` naming ``path`` for a file that is not one."""
    safetensors = _safetensors("read_weights")
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no weights file at {path}")
    try:
        with safetensors.safe_open(path, framework="numpy") as handle:
            metadata = handle.metadata() or {}
            arrays = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (safe_open is not iterable)
    except (safetensors.SafetensorError, OSError, ValueError, TypeError) as error:
        raise CheckpointError(
            f"{path} is not a readable .safetensors file ({error}): expected an 8-byte header length, a JSON "
            "header, then the arrays' bytes in dtypes NumPy has (not bfloat16: save tensor.float() instead)"
        ) from None
    return arrays, dict(metadata)


def load_weights(module: Module, path: str | Path, *, strict: bool = True) -> Module:
    """Copy the arrays of the ``.safetensors`` file at ``path`` into ``module``'s parameters.

    The file may come from :func:`save_weights` or from ``safetensors.torch.save_file(
    torch_module.state_dict(), path)``. Nothing is changed unless every name and shape fits:
    a CheckpointError names the path and every missing key, unexpected key and mis-shaped
    array (with ``strict=False``, missing and unexpected keys are allowed, as in
    ``load_state_dict``). Returns ``module``.
    """
    arrays, _ = read_weights(path)
    try:
        module.load_state_dict(arrays, strict=strict)
    except ValueError as error:
        raise CheckpointError(f"{path}: its weights do not fit the {type(module).__name__}: {error}") from None
    return module
