"""Keep a backward's cache out of the caller's reach (in-place edits cannot corrupt a gradient).

torch gives every tensor a version counter and refuses a backward whose saved tensors were
edited in place ("modified by an inplace operation"). A NumPy array has no counter, so lstmkit
makes the edit harmless instead: :meth:`~.module.Module.__call__` runs a training forward, then
:func:`keep_apart`:

- the cache keeps a copy of every array that may share memory with an array the caller passed
  in (the input, the initial state, indices, targets, a view of them, or an object NumPy reads
  without a copy: a torch CPU tensor, a memoryview), so ``x[...] = 0`` after the forward leaves
  the cache as it was;
- the caller gets a copy of every returned array that may share memory with the cache (the
  output is the fast path's buffer of h for every step), so ``out *= 0`` leaves it as it was.

Both copy only where memory may be shared (the same owning array, then ``np.may_share_memory``), so an
input that the forward converted (another dtype, batch-first to time-major) costs nothing more.
Where a copy is made, it costs a pass over the input or the output, small next to the products
of the forward and backward (measured in ``benchmarks/bench_recurrent.py``). Parameters are the
module's own: a change to one between a forward and its backward (an optimizer step) is refused by
the backward, through the parameter's version (:class:`~.module.Parameter`), as torch refuses it.
"""

from __future__ import annotations

import numpy as np


def arrays_in(value, array_likes: bool = False) -> list[np.ndarray]:
    """Every ndarray in a nest of tuples (NamedTuples too), lists and dicts; with ``array_likes``
    also, as arrays, the objects NumPy reads without a copy (a torch CPU tensor, a memoryview):
    a forward's ``np.asarray`` of those shares the caller's memory."""
    found: list[np.ndarray] = []
    _collect(value, found, array_likes)
    return found


def _collect(value, found: list, array_likes: bool) -> None:
    if isinstance(value, np.ndarray):
        found.append(value)
    elif isinstance(value, (tuple, list)):
        for part in value:
            if part is not None:
                _collect(part, found, array_likes)
    elif isinstance(value, dict):
        for part in value.values():
            _collect(part, found, array_likes)
    elif array_likes and _is_array_like(value):
        found.append(np.asarray(value))


def _is_array_like(value) -> bool:
    if isinstance(value, (memoryview, bytearray)):
        return True
    kind = type(value)
    return hasattr(kind, "__array__") or hasattr(kind, "__array_interface__") or hasattr(kind, "__array_struct__")


_FOREIGN = -1  # the owner of memory that a non-NumPy buffer holds (any two such arrays may share)


def _owner(array: np.ndarray) -> int:
    """The id of the array that owns ``array``'s memory (two arrays with different owners share
    none), or _FOREIGN where a non-NumPy buffer holds it. A cheap first test before
    ``np.may_share_memory``."""
    while True:
        parent = array.base
        if parent is None:
            return id(array)
        if not isinstance(parent, np.ndarray):
            return _FOREIGN
        array = parent


def _copied_where_shared(value, others: list[np.ndarray], owners: set[int]):
    """``value`` with each array that may share memory with one of ``others`` (whose owners are
    ``owners``) replaced by a copy, or None where nothing changed. A tuple, list or dict is
    rebuilt (a NamedTuple keeping its type) only where a part changed, never changed in place."""
    if isinstance(value, np.ndarray):
        if _owner(value) in owners and any(np.may_share_memory(value, other) for other in others):
            return value.copy()
        return None
    if isinstance(value, (tuple, list, dict)):  # rebuilt, never changed in place: the caller may hold it
        items = value.items() if isinstance(value, dict) else enumerate(value)
        changed = None
        for key, part in items:
            new = None if part is None else _copied_where_shared(part, others, owners)
            if new is not None:
                if changed is None:
                    changed = dict(value) if isinstance(value, dict) else list(value)
                changed[key] = new
        if changed is None or isinstance(value, (list, dict)):
            return changed
        return type(value)(*changed) if hasattr(value, "_fields") else tuple(changed)
    return None


def _apart(value, others: list[np.ndarray]):
    """``value`` sharing no memory with ``others`` (see :func:`_copied_where_shared`)."""
    if not others:
        return value
    new = _copied_where_shared(value, others, {_owner(array) for array in others})
    return value if new is None else new


def keep_apart(saved, result, caller_arrays: list[np.ndarray]):
    """``(saved, result)``: a forward's cache holding no memory of the caller's arrays, and what
    it returns sharing none with that cache."""
    saved = _apart(saved, caller_arrays)
    return saved, _apart(result, arrays_in(saved))
