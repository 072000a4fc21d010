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


def check_probability(owner: str, name: str, value, below_one: str = "") -> float:
    """A number in [0, 1]; in [0, 1) when ``below_one`` says why 1 is refused."""
    interval = "[0, 1)" if below_one else "[0, 1]"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a number in {interval}, got {value!r}")
    if not 0.0 <= float(value) <= 1.0 or below_one and float(value) == 1.0:
        why = f" ({below_one})" if below_one and float(value) == 1.0 else ""
        raise ValueError(f"{owner}: {name} must be in {interval}, got {value}{why}")
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


def check_hidden_sizes(owner: str, hidden_size, num_layers: int) -> tuple[int, ...]:
    """Every layer's hidden size: an int (the same for all) or a list or tuple of one int per layer."""
    if not isinstance(hidden_size, (list, tuple)):
        return (check_size(owner, "hidden_size", hidden_size),) * num_layers
    if len(hidden_size) != num_layers:
        raise ValueError(
            f"{owner}: hidden_size as a list must give one size per layer, num_layers={num_layers}, "
            f"got {len(hidden_size)} sizes {list(hidden_size)}"
        )
    return tuple(check_size(owner, f"hidden_size[{layer}]", size) for layer, size in enumerate(hidden_size))


def check_proj_size(owner: str, proj_size, hidden_size, hidden_sizes: tuple[int, ...]) -> int:
    """0 (no projection) or a size smaller than every layer's hidden size."""
    proj_size = check_size(owner, "proj_size", proj_size, minimum=0)
    if proj_size >= min(hidden_sizes):
        least = min(hidden_sizes)
        every = "" if isinstance(hidden_size, numbers.Integral) else f" (every layer's; the least is {least})"
        raise ValueError(f"{owner}: proj_size must be smaller than hidden_size={hidden_size!r}{every}, got {proj_size}")
    return proj_size


MERGE_MODES = ("concat", "sum", "mul", "ave")  # Keras Bidirectional's vocabulary
PADDING_SIDES = ("right", "left")


def check_merge_mode(owner: str, merge_mode, bidirectional: bool) -> str:
    """One of :data:`MERGE_MODES`; anything but "concat" needs two directions to merge."""
    if not isinstance(merge_mode, str) or merge_mode not in MERGE_MODES:
        raise ValueError(f"{owner}: merge_mode must be one of {', '.join(map(repr, MERGE_MODES))}, got {merge_mode!r}")
    if merge_mode != "concat" and not bidirectional:
        raise ValueError(
            f"{owner}: merge_mode={merge_mode!r} merges the two directions and needs bidirectional=True, "
            "got bidirectional=False"
        )
    return merge_mode


RETURN_STATES = ("last", "all")


def check_return_states(owner: str, return_states) -> str:
    """'last' (h_n and c_n only) or 'all' (also every step's states)."""
    if not isinstance(return_states, str) or return_states not in RETURN_STATES:
        raise ValueError(f"{owner}: return_states must be 'last' or 'all', got {return_states!r}")
    return return_states


def check_zoneout(owner: str, zoneout, state_parts: tuple[str, ...]) -> tuple[float, ...]:
    """Zoneout's rate of each state part: one number in [0, 1) for all, or (for an LSTM) a pair
    ``(z_h, z_c)``. 1 is refused: the state would never leave its initial value."""
    why = "1 would keep the initial state forever"
    if isinstance(zoneout, (tuple, list)):
        if len(zoneout) != len(state_parts):
            expected = (
                "a number in [0, 1) or a pair (z_h, z_c)"
                if len(state_parts) == 2
                else "one number in [0, 1) (its state is h alone, no c)"
            )
            raise ValueError(f"{owner}: zoneout must be {expected}, got {zoneout!r}")
        return tuple(
            check_probability(owner, f"zoneout[{index}] (z_{part})", rate, below_one=why)
            for index, (part, rate) in enumerate(zip(state_parts, zoneout))
        )
    return (check_probability(owner, "zoneout", zoneout, below_one=why),) * len(state_parts)


def check_real(owner: str, name: str, value, expected: str = "a number") -> float:
    """A finite real number (bool refused); ``expected`` is what the TypeError says it must be."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be {expected}, got {value!r}")
    if not np.isfinite(value):
        raise ValueError(f"{owner}: {name} must be a finite number, got {value!r}")
    return float(value)


# The LSTM's own options, and what another kind lacks for each (explain's wording)
LSTM_ONLY = {
    "proj_size": "projection",
    "layer_norm": "cell state to normalise",
    "peepholes": "cell state to peep at",
    "runtime_forget_bias": "forget gate",
    "forget_bias": "forget gate",
}


def check_lstm_only(owner: str, **options) -> None:
    """A ValueError naming the first of :data:`LSTM_ONLY`'s options that is on (anything but
    None, False or 0) for ``owner``, a GRU or RNN layer or cell."""
    for name, value in options.items():
        off = value is None or isinstance(value, (bool, np.bool_, numbers.Real)) and value == 0
        if not off:
            raise ValueError(
                f"{owner}: {name} is an LSTM option ({owner} has no {LSTM_ONLY[name]}), got {name}={value!r}"
            )


def check_padding_side(owner: str, padding_side) -> str:
    if not isinstance(padding_side, str) or padding_side not in PADDING_SIDES:
        raise ValueError(f"{owner}: padding_side must be 'right' or 'left', got {padding_side!r}")
    return padding_side


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


def layer_state_arrays(owner: str, name: str, value, part_names, layer_shapes, batched: bool, dtype) -> tuple:
    """A state of a layer with per-layer sizes: each part a list of one array per layer, checked.

    ``value`` is None, a list of arrays (one part), or a tuple of such lists (h and c); a
    missing list or array is zeros. ``layer_shapes[k]`` are layer k's batched shapes, one a
    part. Returns a tuple of lists (one a part) of batched arrays, as :func:`state_arrays`.
    """
    layers = len(layer_shapes)
    if value is None:
        value = (None,) * len(part_names)
    elif len(part_names) == 1:
        value = (value,)
    elif not isinstance(value, (tuple, list)) or len(value) != len(part_names):
        given = f"{type(value).__name__} of length {len(value)}" if isinstance(value, (tuple, list)) else "one array"
        raise TypeError(f"{owner}: {name} must be a pair ({', '.join(part_names)}) of lists, got {given}")
    per_part = []
    for part_name, part in zip(part_names, value):
        if part is None:
            part = (None,) * layers
        elif not isinstance(part, (tuple, list)) or len(part) != layers:
            given = f"{type(part).__name__} of length {len(part)}" if isinstance(part, (tuple, list)) else "one array"
            raise ValueError(
                f"{owner}: {part_name} must be a list of num_layers={layers} arrays, one per layer "
                f"(hidden_size is a list), got {given}"
            )
        per_part.append(part)
    arrays = [[] for _ in part_names]
    for layer, shapes in enumerate(layer_shapes):
        names = tuple(f"{part_name}[{layer}]" for part_name in part_names)
        given = tuple(part[layer] for part in per_part) if len(per_part) > 1 else per_part[0][layer]
        for slot, array in zip(arrays, state_arrays(owner, name, given, names, shapes, batched, dtype)):
            slot.append(array)
    return tuple(arrays)
