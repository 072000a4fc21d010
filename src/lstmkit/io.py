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
import math
import os
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np
from numpy.lib import format as npy_format

from .optim import parse_state_key, state_shape

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


# ---- reading a checkpoint: the zip's directory and every .npy header first, then the data ----------
MAX_EXPANSION = 20  # lstmkit stores members uncompressed (1x); deflated float weights shrink ~1.1x, not 20x
MAX_MEMBERS = 100_000
MAX_META_BYTES = 64 * 2**20
_SECTIONS = ("model/", "optimizer/")  # what a Trainer's checkpoint holds besides __meta__
_NPY_HEADER_READERS = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}


@dataclasses.dataclass(frozen=True)
class _Member:
    """One array of a checkpoint as its directory entry and .npy header describe it, before reading it."""

    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool


def _check_directory(path: Path, archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The zip's entries, refused when their sizes do not fit the file (a zip bomb, a lying directory)."""
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise CheckpointError(f"{path}: expected at most {MAX_MEMBERS} arrays in a checkpoint, got {len(infos)}")
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        raise CheckpointError(f"{path}: its zip directory names an entry twice; a checkpoint's names are unique")
    file_size = path.stat().st_size
    stored = sum(info.compress_size for info in infos)
    unpacked = sum(info.file_size for info in infos)
    if stored > file_size:
        raise CheckpointError(
            f"{path}: its zip directory claims {stored} bytes of data in a file of {file_size} bytes (overlapping "
            "or truncated entries)"
        )
    if unpacked > MAX_EXPANSION * file_size + 2**20:
        raise CheckpointError(
            f"{path}: refused without unpacking it: its entries would expand to {unpacked} bytes from a file of "
            f"{file_size} bytes ({unpacked / file_size:.0f}x; a checkpoint expands at most {MAX_EXPANSION}x)"
        )
    for info in infos:
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise CheckpointError(
                f"{path}: entry {info.filename!r} is compressed with method {info.compress_type}; expected stored "
                "or deflated entries, as numpy.savez and savez_compressed write"
            )
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise CheckpointError(
                f"{path}: entry {info.filename!r} is stored uncompressed but its directory gives two sizes, "
                f"{info.file_size} and {info.compress_size} bytes"
            )
    return infos


def _read_member_header(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> _Member:
    """The member's .npy header (shape, dtype), checked against its size in the zip directory: no data is read."""
    name = info.filename.removesuffix(".npy")
    with archive.open(info) as handle:
        try:
            version = npy_format.read_magic(handle)
        except ValueError:
            raise CheckpointError(f"{path}: entry {info.filename!r} is not a .npy array") from None
        if version not in _NPY_HEADER_READERS:
            raise CheckpointError(
                f"{path}: array {name!r} has .npy format version {version}; expected 1.0 or 2.0 (numpy.savez's)"
            )
        shape, fortran_order, dtype = _NPY_HEADER_READERS[version](handle)
        header_size = handle.tell()
    if dtype.hasobject:
        raise CheckpointError(
            f"{path} is not a readable lstmkit checkpoint (it holds pickled objects, which lstmkit never loads: "
            f"array {name!r} has dtype {dtype})"
        )
    declared = math.prod(shape) * dtype.itemsize
    if declared != info.file_size - header_size:
        raise CheckpointError(
            f"{path}: array {name!r} declares shape {shape} of {dtype} ({declared} bytes), but its entry holds "
            f"{info.file_size - header_size} bytes of data; refused before reading it"
        )
    return _Member(info, shape, dtype, fortran_order)


def _read_members(path: Path, archive: zipfile.ZipFile) -> dict[str, _Member]:
    """Every entry's header, by array name (``numpy.load``'s: the entry's name less ``.npy``)."""
    members = {}
    for info in _check_directory(path, archive):
        if not info.filename.endswith(".npy"):
            raise CheckpointError(f"{path}: entry {info.filename!r} is not a .npy array (expected NAME.npy)")
        members[info.filename.removesuffix(".npy")] = _read_member_header(path, archive, info)
    return members


def _read_array(archive: zipfile.ZipFile, member: _Member) -> np.ndarray:
    """The data of a member whose header was checked; reading to the end checks the entry's CRC."""
    with archive.open(member.info) as handle:
        array = npy_format.read_array(handle, allow_pickle=False)
        if handle.read(1):
            raise ValueError(f"array {member.info.filename!r} holds more data than its header declares")
    return array


def _read_meta(path: Path, archive: zipfile.ZipFile, members: dict[str, _Member]) -> dict:
    """The checkpoint's metadata: UTF-8 JSON in the 1-D uint8 array ``__meta__``, of a bounded size."""
    member = members.get(_META)
    if member is None:
        raise CheckpointError(f"{path} is an .npz file but not an lstmkit checkpoint (no {_META} entry)")
    if member.dtype != np.uint8 or len(member.shape) != 1 or member.shape[0] > MAX_META_BYTES:
        raise CheckpointError(
            f"{path}: its {_META} entry must be UTF-8 JSON bytes (a 1-D uint8 array of at most {MAX_META_BYTES} "
            f"bytes), got shape {member.shape} of {member.dtype}"
        )
    try:
        return json.loads(_read_array(archive, member).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: its metadata is corrupt ({error})") from None


def _check_arrays(path: Path, members: dict[str, _Member]) -> None:
    """Names in the model/ and optimizer/ sections; optimizer state that refers to existing parameters.

    The model's arrays are its parameters in order (``state_dict()``'s), so the optimizer's key
    ``<index>.<name>`` (:meth:`lstmkit.optim.Optimizer.state_dict`) must have an index below their
    count and the shape of that parameter (() for ``step``).
    """
    unexpected = [name for name in members if name != _META and not name.startswith(_SECTIONS)]
    if unexpected:
        raise CheckpointError(
            f"{path}: unexpected arrays {unexpected[:5]}: a checkpoint holds {_META} and arrays named "
            f"{' or '.join(section + '...' for section in _SECTIONS)}"
        )
    parameters = [member for name, member in members.items() if name.startswith("model/")]
    for name, member in members.items():
        if name != _META and member.dtype.kind != "f":
            raise CheckpointError(f"{path}: array {name!r} must hold floating-point numbers, got dtype {member.dtype}")
        if name.startswith("optimizer/"):
            try:
                index, state = parse_state_key("optimizer", name.removeprefix("optimizer/"), len(parameters))
            except ValueError as error:
                raise CheckpointError(f"{path}: {error}") from None
            expected = state_shape(state, parameters[index].shape)
            if member.shape != expected:
                raise CheckpointError(
                    f"{path}: optimizer state {name!r} must have shape {expected} (parameter {index}'s), "
                    f"got {member.shape}"
                )


def load_checkpoint(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """``(arrays, meta)`` of a checkpoint; a clear :class:`CheckpointError` for anything else.

    A bad file is refused cheaply, before any array is allocated: the zip's directory first
    (sizes that fit the file, at most :data:`MAX_EXPANSION` times its size once unpacked), then
    every member's .npy header (a dtype without objects, a shape whose bytes its entry holds),
    then the metadata (:func:`check_meta`) and the optimizer's keys (each names an existing
    parameter and has its shape). Only then is the data read.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path} is not an lstmkit checkpoint: expected an .npz file written by lstmkit "
            "(a zip archive), got a file that is not a zip archive"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            members = _read_members(path, archive)
            meta = check_meta(path, _read_meta(path, archive, members))
            _check_arrays(path, members)
            arrays = {name: _read_array(archive, member) for name, member in members.items() if name != _META}
    except CheckpointError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error) as error:
        raise CheckpointError(f"{path} is not a readable lstmkit checkpoint ({error})") from None
    return arrays, meta


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_KIND_CHECKS: dict[str, tuple[str, Callable[[object], bool]]] = {
    "object": ("a JSON object", lambda value: isinstance(value, dict)),
    "object or null": ("a JSON object or null", lambda value: value is None or isinstance(value, dict)),
    "list of objects": (
        "a list of JSON objects",
        lambda value: isinstance(value, list) and all(isinstance(item, dict) for item in value),
    ),
    "count": ("an integer >= 0", lambda value: _is_int(value) and value >= 0),
    "number": ("a number", _is_number),
    "string": ("a non-empty string", lambda value: isinstance(value, str) and value != ""),
}
# what Trainer._meta() writes: key -> kind; "vocabulary" (a list of strings, or an object of such lists) is optional
META_SCHEMA = {
    "config": "object",
    "epoch": "count",
    "history": "list of objects",
    "best": "object or null",
    "bad_epochs": "count",
    "optimizer": "object",
    "scheduler": "object or null",
}
_OPTIMIZER_SCHEMA = {"lr": "number", "step_count": "count"}
_SCHEDULER_SCHEMAS = {  # by config["schedule"]: the state its scheduler's state_dict() gives
    "none": None,
    "cosine": {"base_lr": "number", "last_epoch": "count"},
    "step": {"base_lr": "number", "last_epoch": "count"},
    "halve": {"base_lr": "number", "last_epoch": "count"},
    "plateau": {"best": "number", "bad_epochs": "count"},
}


def _check_fields(path: Path, where: str, value: dict, schema: dict[str, str]) -> None:
    for key, kind in schema.items():
        expected, fits = _KIND_CHECKS[kind]
        if key not in value:
            raise CheckpointError(f"{path}: its metadata lacks {where}{key!r} ({expected}); not a complete checkpoint")
        if not fits(value[key]):
            raise CheckpointError(
                f"{path}: its metadata's {where}{key!r} must be {expected}, got {json.dumps(value[key])[:80]}"
            )


def _strings(items) -> bool:
    return isinstance(items, list) and all(isinstance(item, str) for item in items)


_VOCABULARIES = {  # the tasks whose model needs the vocabulary kept in the checkpoint (generate, tag)
    "ptb": ("a list of strings", _strings),
    "text": ("a list of strings", _strings),
    "tag": (
        "an object of lists of strings 'words', 'chars' and 'tags'",
        lambda value: isinstance(value, dict) and all(_strings(value.get(part)) for part in ("words", "chars", "tags")),
    ),
}
_ANY_VOCABULARY = (
    "a list of strings or an object of such lists",
    lambda value: _strings(value) or isinstance(value, dict) and all(_strings(items) for items in value.values()),
)


def _check_vocabulary(path: Path, meta: dict) -> None:
    task = meta["config"]["task"]
    expected, fits = _VOCABULARIES.get(task, _ANY_VOCABULARY)
    if "vocabulary" not in meta and task not in _VOCABULARIES:
        return
    if "vocabulary" not in meta:
        raise CheckpointError(f"{path}: its metadata lacks 'vocabulary' ({expected}), which a {task} model needs")
    if not fits(meta["vocabulary"]):
        raise CheckpointError(
            f"{path}: its metadata's 'vocabulary' must be {expected}, got {json.dumps(meta['vocabulary'])[:80]}"
        )


def check_meta(path: str | Path, meta) -> dict:
    """``meta`` if it has the schema :class:`~lstmkit.train.Trainer` writes; a :class:`CheckpointError` otherwise.

    A JSON object with ``format`` and ``version`` (this module's), ``config`` (an object whose
    ``task`` names a known task), ``epoch`` and ``bad_epochs`` (integers >= 0), ``history`` (a list of
    objects), ``best`` (an object or null), ``optimizer`` (``lr``, ``step_count``), ``scheduler``
    (null, or the state of the scheduler ``config["schedule"]`` names) and ``vocabulary`` (for
    the tasks whose model needs it: ptb and text a list of strings, tag an object of such lists).
    Other keys are allowed.
    """
    path = Path(path)
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: its metadata must be a JSON object, got {type(meta).__name__} {str(meta)[:80]}")
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: expected format {FORMAT} version {VERSION}, got "
            f"{meta.get('format')} version {meta.get('version')}"
        )
    _check_fields(path, "", meta, META_SCHEMA)
    _check_fields(path, "config ", meta["config"], {"task": "string"})
    from .tasks import TASKS  # here, not at the top: the tasks sit above io (they build models, read data)

    if meta["config"]["task"] not in TASKS:
        raise CheckpointError(
            f"{path}: its metadata's config 'task' must be one of {', '.join(TASKS)}, got {meta['config']['task']!r}"
        )
    _check_fields(path, "optimizer ", meta["optimizer"], _OPTIMIZER_SCHEMA)
    schedule = meta["config"].get("schedule", "none")
    if schedule in _SCHEDULER_SCHEMAS:
        expected = _SCHEDULER_SCHEMAS[schedule]
        if (expected is None) != (meta["scheduler"] is None):
            raise CheckpointError(
                f"{path}: its metadata's 'scheduler' must be {'null' if expected is None else 'an object'} "
                f"for schedule {schedule!r}, got {json.dumps(meta['scheduler'])[:80]}"
            )
        if expected is not None:
            _check_fields(path, "scheduler ", meta["scheduler"], expected)
    _check_vocabulary(path, meta)
    return meta


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
