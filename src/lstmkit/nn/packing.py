"""Variable-length batches in PyTorch's packed layout (``torch.nn.utils.rnn``), in NumPy.

A :class:`PackedSequence` holds N sequences of lengths L_1 >= L_2 >= ... (sorted by decreasing
length) as one array ``data``: the time-major concatenation of the rows still running at each
step, so ``data[:batch_sizes[0]]`` is step 0 of every sequence, the next ``batch_sizes[1]`` rows
step 1 of the sequences at least 2 long, and so on. ``sorted_indices[k]`` is the caller's index
of the k-th longest sequence (None when the caller's order was already sorted) and
``unsorted_indices`` its inverse.

Packing (:func:`pack_padded_sequence`) gathers the valid positions of a padded array and
padding (:func:`pad_packed_sequence`) scatters them back: each is the other's transpose, which
is why the gradient of a packed output is packed like it and the gradient of the packed input
comes back packed.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np

from ..ops.recurrence import padding_mask
from .checks import check_flag, check_padding_side


class PackedSequence(NamedTuple):
    """Sequences of different lengths in PyTorch's packed layout (see the module docstring).

    ==================  =========================  ============================================
    data                (sum(batch_sizes), *)      every valid step of every sequence, time-major
    batch_sizes         (L_max,) int64             sequences still running at each step
    sorted_indices      (N,) int64 or None         caller's index of the k-th longest sequence
    unsorted_indices    (N,) int64 or None         its inverse: where caller's sequence n went
    ==================  =========================  ============================================
    """

    data: np.ndarray
    batch_sizes: np.ndarray
    sorted_indices: np.ndarray | None = None
    unsorted_indices: np.ndarray | None = None


def check_lengths(owner: str, lengths, batch: int, steps: int) -> np.ndarray:
    """``lengths`` as an int64 array of one length in [1, steps] per sequence of the batch."""
    array = np.asarray(lengths)
    if array.dtype.kind not in "iu" or array.ndim != 1:
        raise TypeError(
            f"{owner}: lengths must be a 1-D sequence of integers, got {type(lengths).__name__} "
            f"with dtype {array.dtype} and shape {array.shape}"
        )
    if len(array) != batch:
        raise ValueError(f"{owner}: lengths must have one entry per sequence, batch size {batch}, got {len(array)}")
    for index, length in enumerate(array.tolist()):
        if not 1 <= length <= steps:
            raise ValueError(
                f"{owner}: every length must be in [1, {steps}] (the padded sequence length), "
                f"got {length} at index {index}"
            )
    return array.astype(np.int64)


def _shown(array: np.ndarray, limit: int = 12) -> str:
    """A short picture of an index array for an error message: its first values, then how many more."""
    values = array.ravel()[:limit].tolist()
    more = array.size - len(values)
    return f"{values}{f' (and {more} more)' if more > 0 else ''} of dtype {array.dtype} and shape {array.shape}"


def _integer_array(owner: str, field: str, value, expected: str) -> np.ndarray:
    """``value`` as a 1-D integer array, or a TypeError naming ``field``, what was expected and what was given."""
    if value is None:
        raise TypeError(f"{owner}: {field} must be {expected}, got None")
    array = np.asarray(value)
    if array.dtype.kind not in "iu" or array.ndim != 1:
        raise TypeError(f"{owner}: {field} must be {expected}, got {_shown(array)}")
    return array


def _check_batch_sizes(owner: str, field: str, value) -> np.ndarray:
    """``batch_sizes`` as int64: a non-empty 1-D integer array, positive and non-increasing."""
    batch_sizes = _integer_array(owner, field, value, "a non-empty 1-D integer array")
    if len(batch_sizes) == 0:
        raise ValueError(f"{owner}: {field} must be a non-empty 1-D integer array, got an empty array")
    if batch_sizes[-1] < 1 or np.any(np.diff(batch_sizes) > 0):
        raise ValueError(f"{owner}: {field} must be positive and non-increasing, got {batch_sizes.tolist()}")
    if int(batch_sizes[0]) > np.iinfo(np.int64).max // len(batch_sizes):  # their int64 sum must not wrap around
        raise ValueError(f"{owner}: {field} must sum to a number of rows, got {_shown(batch_sizes)}")
    return batch_sizes.astype(np.int64)


def _check_data(owner: str, field: str, value, rows: int, layer_input: bool) -> np.ndarray:
    """``data``: an array of ``rows`` rows; for a layer's input, real floating-point numbers of rank 2."""
    if value is None:
        raise TypeError(f"{owner}: {field} must be an array of sum(batch_sizes) = {rows} rows, got None")
    data = np.asarray(value)
    kinds, expected = ("f", "real floating-point numbers") if layer_input else ("biufc", "numbers")
    if data.dtype.kind not in kinds:
        raise TypeError(f"{owner}: {field} must hold {expected}, got dtype {data.dtype}")
    if layer_input and data.ndim != 2:
        raise ValueError(
            f"{owner}: {field} must be of rank 2 (sum(batch_sizes), H_in), got rank {data.ndim} with shape {data.shape}"
        )
    if data.ndim < 1 or data.shape[0] != rows:
        raise ValueError(f"{owner}: {field} must have sum(batch_sizes) = {rows} rows, got shape {data.shape}")
    return data


def _check_indices(owner: str, name: str, sorted_indices, unsorted_indices, batch: int):
    """``(sorted_indices, unsorted_indices)`` as int64: both None, or permutations of range(batch), inverses.

    O(N): both in range and ``sorted_indices[unsorted_indices]`` the identity make both permutations.
    """
    if sorted_indices is None and unsorted_indices is None:
        return None, None
    if (sorted_indices is None) != (unsorted_indices is None):
        raise ValueError(f"{owner}: {name}.sorted_indices and unsorted_indices must both be given or both be None")
    expected = f"a 1-D integer permutation of range({batch}) (batch_sizes[0] = {batch} sequences)"
    arrays = []
    for field, value in (("sorted_indices", sorted_indices), ("unsorted_indices", unsorted_indices)):
        array = _integer_array(owner, f"{name}.{field}", value, expected)
        if len(array) != batch or np.any(array < 0) or np.any(array >= batch):
            raise ValueError(f"{owner}: {name}.{field} must be {expected}, got {_shown(array)}")
        arrays.append(array.astype(np.int64))
    sorted_indices, unsorted_indices = arrays
    if not np.array_equal(sorted_indices[unsorted_indices], np.arange(batch)):
        raise ValueError(
            f"{owner}: {name}.sorted_indices must be a permutation of range({batch}) and unsorted_indices its "
            f"inverse (sorted_indices[unsorted_indices] = range({batch})), got {_shown(sorted_indices)} and "
            f"{_shown(unsorted_indices)}"
        )
    return sorted_indices, unsorted_indices


def check_packed(owner: str, name: str, sequence, layer_input: bool = False) -> PackedSequence:
    """``sequence`` if it is a consistent :class:`PackedSequence`; otherwise a message naming what is wrong.

    Every field is checked (a hand-built PackedSequence can hold anything): ``data`` a numeric
    array of sum(batch_sizes) rows (real floating-point of rank 2 (sum(batch_sizes), H) for a
    layer's input or gradient: ``layer_input=True``), ``batch_sizes`` a non-empty 1-D integer
    array, positive and non-increasing, and the indices both None or integer permutations of
    range(batch_sizes[0]) that are each other's inverse. A TypeError for a wrong type or dtype,
    a ValueError for a wrong value; each names the field, what was expected and what was given.
    O(N + T) on the small arrays, once per call.
    """
    if not isinstance(sequence, PackedSequence):
        raise TypeError(f"{owner}: {name} must be a PackedSequence, got {type(sequence).__name__}")
    batch_sizes = _check_batch_sizes(owner, f"{name}.batch_sizes", sequence.batch_sizes)
    data = _check_data(owner, f"{name}.data", sequence.data, int(batch_sizes.sum()), layer_input)
    indices = _check_indices(owner, name, sequence.sorted_indices, sequence.unsorted_indices, int(batch_sizes[0]))
    return PackedSequence(data, batch_sizes, *indices)


def batch_sizes_of(sorted_lengths: np.ndarray) -> np.ndarray:
    """(L_max,) sequences still running at each step, for lengths sorted in decreasing order."""
    return (sorted_lengths[None, :] > np.arange(sorted_lengths[0])[:, None]).sum(axis=1).astype(np.int64)


def sorting_permutation(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(sorted_indices, unsorted_indices)``: longest first, ties in the caller's order (as torch)."""
    sorted_indices = np.argsort(-lengths, kind="stable").astype(np.int64)
    return sorted_indices, np.argsort(sorted_indices).astype(np.int64)


def roll_in_time(padded: np.ndarray, shifts) -> np.ndarray:
    """(T, N, *) with sequence n rolled ``shifts[n]`` steps later in time (``np.roll`` per column).

    How left padding maps to right padding and back: a sequence of length L in T steps moves
    from the end to the front with ``shifts = L - T`` and back with ``T - L``. A permutation of
    the steps, so the gradient takes the opposite shifts.
    """
    steps = padded.shape[0]
    source = (np.arange(steps)[:, None] - np.asarray(shifts)[None, :]) % steps  # (T, N)
    return np.take_along_axis(padded, source.reshape(source.shape + (1,) * (padded.ndim - 2)), axis=0)


def _pack_time_major(owner: str, padded, lengths, enforce_sorted: bool) -> PackedSequence:
    steps, batch = padded.shape[:2]
    lengths = check_lengths(owner, lengths, batch, steps)
    sorted_indices = unsorted_indices = None
    if check_flag(owner, "enforce_sorted", enforce_sorted):
        if np.any(np.diff(lengths) > 0):
            raise ValueError(
                f"{owner}: with enforce_sorted=True, lengths must be sorted in decreasing order, got "
                f"{lengths.tolist()} (pass enforce_sorted=False to have them sorted)"
            )
    else:
        sorted_indices, unsorted_indices = sorting_permutation(lengths)
        padded, lengths = padded[:, sorted_indices], lengths[sorted_indices]
    batch_sizes = batch_sizes_of(lengths)
    data = padded[: len(batch_sizes)][padding_mask(batch_sizes, batch)]
    return PackedSequence(data, batch_sizes, sorted_indices, unsorted_indices)


def pack_padded_sequence(
    input, lengths, batch_first: bool = False, enforce_sorted: bool = True, padding_side: str = "right"
) -> PackedSequence:
    """Pack a padded batch: ``input`` (L, N, *) or (N, L, *) if batch_first, ``lengths`` (N,).

    With ``enforce_sorted=True`` the lengths must already be in decreasing order; with False
    the sequences are sorted here and ``sorted_indices`` / ``unsorted_indices`` remember how.
    ``padding_side='left'``: each sequence fills the last ``lengths[n]`` steps of ``input``
    (as :func:`pad_sequence` with ``padding_side='left'`` makes them); the packed result is
    the same as for the right-padded batch.
    """
    owner = "pack_padded_sequence"
    padded = np.asarray(input)
    if padded.ndim < 2:
        layout = "(N, L, *)" if batch_first else "(L, N, *)"
        raise ValueError(
            f"{owner}: expected input of rank >= 2 {layout}, got rank {padded.ndim} with shape {padded.shape}"
        )
    if check_flag(owner, "batch_first", batch_first):
        padded = np.swapaxes(padded, 0, 1)
    if check_padding_side(owner, padding_side) == "left":
        steps = padded.shape[0]
        padded = roll_in_time(padded, check_lengths(owner, lengths, padded.shape[1], steps) - steps)
    return _pack_time_major(owner, padded, lengths, enforce_sorted)


def pad_packed_sequence(
    sequence: PackedSequence,
    batch_first: bool = False,
    padding_value: float = 0.0,
    total_length: int | None = None,
    padding_side: str = "right",
) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`pack_padded_sequence`: returns ``(padded, lengths)`` in the caller's order.

    ``padded`` is (T, N, *) (or (N, T, *) if batch_first) with T = ``total_length`` or the
    longest length, ``padding_value`` past each sequence's end (before its start with
    ``padding_side='left'``: sequence n then fills steps T - lengths[n] to T - 1);
    ``lengths`` (N,) is int64.
    """
    owner = "pad_packed_sequence"
    check_padding_side(owner, padding_side)
    data, batch_sizes, _, unsorted_indices = check_packed(owner, "sequence", sequence)
    steps, batch = len(batch_sizes), int(batch_sizes[0])
    if total_length is None:
        total_length = steps
    elif isinstance(total_length, bool) or not isinstance(total_length, numbers.Integral) or total_length < steps:
        raise ValueError(
            f"{owner}: total_length must be an integer at least the length of the longest sequence, {steps}, "
            f"got {total_length!r}"
        )
    mask = padding_mask(batch_sizes, batch)
    padded = np.full((total_length, batch, *data.shape[1:]), padding_value, dtype=data.dtype)
    padded[:steps][mask] = data
    lengths = mask.sum(axis=0).astype(np.int64)
    if unsorted_indices is not None:
        padded, lengths = padded[:, unsorted_indices], lengths[unsorted_indices]
    if padding_side == "left":
        padded = roll_in_time(padded, total_length - lengths)
    if check_flag(owner, "batch_first", batch_first):
        padded = padded.swapaxes(0, 1)
    return np.ascontiguousarray(padded), lengths


def pad_sequence(sequences, batch_first: bool = False, padding_value=0.0, padding_side: str = "right") -> np.ndarray:
    """Stack sequences of shapes (L_i, *) into (L_max, N, *) (or (N, L_max, *) if batch_first),
    ``padding_value`` after each (before each with ``padding_side='left'``)."""
    owner = "pad_sequence"
    arrays = [np.asarray(sequence) for sequence in sequences]
    if not arrays:
        raise ValueError(f"{owner}: expected at least one sequence, got none")
    check_padding_side(owner, padding_side)
    trailing = arrays[0].shape[1:]
    for index, array in enumerate(arrays):
        if array.ndim < 1 or array.shape[1:] != trailing:
            raise ValueError(
                f"{owner}: every sequence must have shape (L_i, {', '.join(map(str, trailing))}) like the first, "
                f"got shape {array.shape} at index {index}"
            )
    steps = max(len(array) for array in arrays)
    dtype = np.result_type(*{array.dtype for array in arrays})
    padded = np.full((steps, len(arrays), *trailing), padding_value, dtype=dtype)
    for index, array in enumerate(arrays):
        start = 0 if padding_side == "right" else steps - len(array)
        padded[start : start + len(array), index] = array
    return np.ascontiguousarray(padded.swapaxes(0, 1)) if check_flag(owner, "batch_first", batch_first) else padded


def pack_sequence(sequences, enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of sequences of shapes (L_i, *): ``pack_padded_sequence(pad_sequence(...), lengths)``."""
    sequences = [np.asarray(sequence) for sequence in sequences]
    padded = pad_sequence(sequences)
    lengths = np.array([len(sequence) for sequence in sequences], dtype=np.int64)
    return _pack_time_major("pack_sequence", padded, lengths, enforce_sorted)
