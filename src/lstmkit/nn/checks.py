"""Argument checks shared by nn and keras: every message names what was expected and what was given."""

from __future__ import annotations

import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_size(owner: str, name: str, value, minimum: int = 1) -> int:
    """An integer >= ``minimum`` (bool is refused: ``True`` is not a size)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}: {name} must be an integer, got {value!r} of type {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {value}")
    return int(value)


def check_flag(owner: str, name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {name} must be True or False, got {value!r}")
    return bool(value)


def check_probability(owner: str, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a number in [0, 1], got {value!r}")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{owner}: {name} must be in [0, 1], got {value}")
    return float(value)


def check_dtype(owner: str, dtype) -> np.dtype:
    try:
        resolved = np.dtype(dtype)
    except TypeError as error:
        raise TypeError(f"{owner}: dtype must be numpy.float32 or numpy.float64, got {dtype!r}") from error
    if resolved not in FLOAT_DTYPES:
        raise TypeError(f"{owner}: dtype must be numpy.float32 or numpy.float64, got {resolved}")
    return resolved


def check_recurrent_options(owner: str, input_size, hidden_size, bias, dtype) -> tuple[int, int, bool, np.dtype]:
    """What every recurrent layer and cell is built from: ``input_size, hidden_size, bias, dtype``, checked."""
    return (
        check_size(owner, "input_size", input_size),
        check_size(owner, "hidden_size", hidden_size),
        check_flag(owner, "bias", bias),
        check_dtype(owner, dtype),
    )


def as_float_array(owner: str, name: str, value, dtype: np.dtype) -> np.ndarray:
    """``value`` as an array of the module's dtype; integer, bool, complex or object input is refused."""
    if value is None or isinstance(value, (tuple, list)) and len(value) and isinstance(value[0], np.ndarray):
        raise TypeError(f"{owner}: {name} must be one array, got {type(value).__name__}")
    array = np.asarray(value)
    if array.dtype.kind != "f":
        raise TypeError(f"{owner}: {name} must hold real floating-point numbers, got dtype {array.dtype}")
    return array.astype(dtype, copy=False)


def check_shape(owner: str, name: str, array: np.ndarray, expected: tuple[int, ...]) -> None:
    if array.shape != tuple(expected):
        raise ValueError(f"{owner}: {name} must have shape {tuple(expected)}, got {array.shape}")


def state_arrays(owner: str, name: str, value, part_names, batched_shapes, batched: bool, dtype) -> tuple:
    """A recurrent state given as one array or a tuple of them, as a tuple of batched arrays.

    ``batched_shapes[k]`` is part k's shape with the batch axis, which is always the second to
    last axis: (N, size) for a cell, (layers, N, size) for a layer. Unbatched parts are given
    without it and get it back here. A missing part (``value`` or one entry None) is zeros.
    """
    if value is None:
        value = (None,) * len(part_names)
    elif len(part_names) == 1:
        if isinstance(value, tuple) or isinstance(value, list) and value and isinstance(value[0], np.ndarray):
            raise TypeError(
                f"{owner}: {name} must be one array ({part_names[0]}), got {type(value).__name__} of length "
                f"{len(value)} (only an LSTM's state is a pair)"
            )
        value = (value,)
    elif not isinstance(value, (tuple, list)) or len(value) != len(part_names):
        if isinstance(value, (tuple, list)):
            given = f"{type(value).__name__} of length {len(value)}"
        else:
            given = f"a single {type(value).__name__}"
        raise TypeError(f"{owner}: {name} must be a pair ({', '.join(part_names)}), got {given}")
    parts = []
    for part_name, part, shape in zip(part_names, value, batched_shapes):
        if part is None:
            parts.append(np.zeros(shape, dtype=dtype))
            continue
        array = as_float_array(owner, part_name, part, dtype)
        check_shape(owner, part_name, array, shape if batched else shape[:-2] + shape[-1:])
        parts.append(array if batched else np.expand_dims(array, -2))
    return tuple(parts)
