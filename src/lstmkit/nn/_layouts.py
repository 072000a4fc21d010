"""How a caller's arrays map to the time-major arrays a recurrent layer runs on, and back.

The layers run on (T, N, ·) arrays; when the sequences have different lengths they are sorted
longest first and ``batch_sizes[t]`` of them run at step t (see :mod:`lstmkit.ops.recurrence`).
The caller gives (L, N, ·), (N, L, ·) with batch_first, unbatched (L, ·), a
:class:`~lstmkit.nn.packing.PackedSequence`, or a padded batch with ``lengths=`` (padded on
the right, or on the left: each sequence then fills the last steps of the array). A layout,
made from the forward's input, converts the input and output, the states (in the caller's
batch order, as torch), and in backward their gradients, the same way.
"""

from __future__ import annotations

import numpy as np

from ..ops.recurrence import padding_mask
from . import checks
from .packing import PackedSequence, batch_sizes_of, check_packed, roll_in_time, sorting_permutation


class PaddedLayout:
    """Arrays as given: (L, N, ·), (N, L, ·) if batch_first, or unbatched (L, ·); no lengths."""

    batch_sizes = None

    def __init__(self, batched: bool, batch_first: bool, steps: int, batch: int):
        self.batched, self.batch_first, self.steps, self.batch = batched, batch_first, steps, batch

    def caller_shape(self, width: int) -> tuple[int, ...]:
        if not self.batched:
            return (self.steps, width)
        return (self.batch, self.steps, width) if self.batch_first else (self.steps, self.batch, width)

    def to_time_major(self, array: np.ndarray) -> np.ndarray:
        if not self.batched:
            array = array[:, None, :]
        elif self.batch_first:
            array = array.transpose(1, 0, 2)
        return np.ascontiguousarray(array)

    def from_time_major(self, array: np.ndarray) -> np.ndarray:
        if not self.batched:
            array = array[:, 0]
        elif self.batch_first:
            array = array.transpose(1, 0, 2)
        return np.ascontiguousarray(array)

    def states_in(self, states: tuple) -> tuple:
        return states

    def states_out(self, states: tuple) -> tuple:
        return states if self.batched else tuple(state[:, 0] for state in states)

    def checked_gradient(self, owner: str, doutput, width: int, dtype) -> np.ndarray:
        """The output's gradient as an array, refused unless shaped like the output."""
        dout = checks.as_float_array(owner, "doutput", doutput, dtype)
        checks.check_shape(owner, "doutput", dout, self.caller_shape(width))
        return dout

    def gradient_to_time_major(self, owner: str, doutput, width: int, dtype) -> np.ndarray:
        return self.to_time_major(self.checked_gradient(owner, doutput, width, dtype))


class _SortedLayout:
    """Sequences of different lengths, run longest first; states stay in the caller's order."""

    batched = True

    def __init__(self, batch_sizes: np.ndarray, sorted_indices, unsorted_indices):
        self.batch_sizes, self.sorted_indices, self.unsorted_indices = batch_sizes, sorted_indices, unsorted_indices
        self.batch = int(batch_sizes[0])
        self.mask = padding_mask(batch_sizes, self.batch)  # (T, N): True at valid steps

    def states_in(self, states: tuple) -> tuple:
        """(·, N, ·) states from the caller's order to the longest-first order (torch does the same)."""
        return states if self.sorted_indices is None else tuple(state[:, self.sorted_indices] for state in states)

    def states_out(self, states: tuple) -> tuple:
        return states if self.unsorted_indices is None else tuple(state[:, self.unsorted_indices] for state in states)


class PackedLayout(_SortedLayout):
    """A PackedSequence in, a PackedSequence out (the same batch_sizes and indices)."""

    def to_time_major(self, data: np.ndarray) -> np.ndarray:
        padded = np.zeros((*self.mask.shape, data.shape[-1]), dtype=data.dtype)
        padded[self.mask] = data
        return padded

    def from_time_major(self, array: np.ndarray) -> PackedSequence:
        indices = (
            (None, None) if self.sorted_indices is None else (self.sorted_indices.copy(), self.unsorted_indices.copy())
        )
        return PackedSequence(array[self.mask], self.batch_sizes.copy(), *indices)  # the caller's own index arrays

    def gradient_to_time_major(self, owner: str, doutput, width: int, dtype) -> np.ndarray:
        """The output's gradient, a PackedSequence packed like the output, as (T, N, width)."""
        if not isinstance(doutput, PackedSequence):
            raise TypeError(
                f"{owner}: doutput must be a PackedSequence packed like the output (the forward got a "
                f"PackedSequence), got {type(doutput).__name__}"
            )
        packed = check_packed(owner, "doutput", doutput, layer_input=True)
        for field in ("batch_sizes", "sorted_indices", "unsorted_indices"):
            given, expected = getattr(packed, field), getattr(self, field)
            if (given is None) != (expected is None) or given is not None and not np.array_equal(given, expected):
                raise ValueError(
                    f"{owner}: doutput must be packed like the output, with {field} "
                    f"{None if expected is None else expected.tolist()}, got "
                    f"{None if given is None else given.tolist()}"
                )
        data = checks.as_float_array(owner, "doutput.data", packed.data, dtype)
        checks.check_shape(owner, "doutput.data", data, (len(data), width))
        return self.to_time_major(data)


class LengthsLayout(_SortedLayout):
    """A padded batch with ``lengths=``: sorted and trimmed to the longest inside, padded outside.

    With ``padding_side='left'`` sequence n fills the caller's steps T - L_n to T - 1: inside,
    each sequence is moved to start at step 0 (:func:`~.packing.roll_in_time`), and the
    output (zero in the padding) is moved back, so the layers never see the difference.
    """

    def __init__(self, padded: PaddedLayout, lengths: np.ndarray, padding_side: str = "right"):
        self.padded = padded
        self.front_padding = padded.steps - lengths if padding_side == "left" else None  # (N,) or None
        sorted_indices, unsorted_indices = sorting_permutation(lengths)
        super().__init__(batch_sizes_of(lengths[sorted_indices]), sorted_indices, unsorted_indices)

    def to_time_major(self, array: np.ndarray) -> np.ndarray:
        """Sorted, trimmed to the longest sequence, and zero past each end (padding is never read)."""
        time_major = self.padded.to_time_major(array)
        if self.front_padding is not None:
            time_major = roll_in_time(time_major, -self.front_padding)
        sorted_array = time_major[: len(self.mask), self.sorted_indices]
        return np.where(self.mask[:, :, None], sorted_array, 0).astype(array.dtype, copy=False)

    def from_time_major(self, array: np.ndarray) -> np.ndarray:
        full = np.zeros((self.padded.steps, self.batch, array.shape[-1]), dtype=array.dtype)
        full[: len(array)] = array[:, self.unsorted_indices]
        if self.front_padding is not None:
            full = roll_in_time(full, self.front_padding)
        return self.padded.from_time_major(full)

    def gradient_to_time_major(self, owner: str, doutput, width: int, dtype) -> np.ndarray:
        return self.to_time_major(self.padded.checked_gradient(owner, doutput, width, dtype))
