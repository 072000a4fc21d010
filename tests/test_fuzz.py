"""Seeded random cases against torch (issue 28): every result equals torch's or is a clear error.

Each case draws a layer (LSTM, GRU, RNN tanh/relu; 1-3 layers, either direction, batch_first, bias,
proj_size, backend), a dtype (float32, float64), sizes (T, N, I, H), a way to give the input
(padded, unbatched, packed sorted or not, padded with ``lengths=``), a memory layout for the input,
the initial state and the output gradient (C order, Fortran order, a strided or transposed view,
read-only) and a magnitude (entries of order 1, 1e2 or 1e4). It compares the output, the final
state and the gradients of the input, the initial state and every weight with torch's: float64 to
1e-10, float32 to 2e-5, of the largest magnitude of the compared tensor (and, for float32 at large
magnitudes, times that magnitude: float32 rounding of a pre-activation of 1e4 is itself 1e-3). A
case that is made invalid on purpose (about one in twelve: a wrong feature size, state shape,
length, dtype, rank or gradient shape) must raise a ValueError or TypeError naming the layer (or
the packing function). Neither side's arrays may be written to by the call.

``LSTMKIT_FUZZ_CASES`` (default 150) sets the number of cases, ``LSTMKIT_FUZZ_SEED`` (default
2028) the seed; case k draws from ``numpy.random.default_rng([seed, k])``, so a failing case
reruns alone by its id. ±1e30, ±inf and NaN float32 inputs are the float32 fast path's saturation
(issue 28, point 2), tested in tests/test_saturation.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from conftest import to_torch_module
from torch.nn.utils.rnn import pack_padded_sequence as torch_pack
from torch.nn.utils.rnn import pad_packed_sequence as torch_pad

import lstmkit

CASES = int(os.environ.get("LSTMKIT_FUZZ_CASES", "150"))
SEED = int(os.environ.get("LSTMKIT_FUZZ_SEED", "2028"))
TOLERANCE = {np.float64: 1e-10, np.float32: 2e-5}
KINDS = ("LSTM", "GRU", "RNN_TANH", "RNN_RELU")
LAYOUTS = ("c", "fortran", "strided", "transposed", "readonly")
INVALID = ("input_size", "state_shape", "zero_length", "long_length", "float_lengths", "complex_input", "rank4",
           "doutput_shape")  # fmt: skip


@dataclass
class Case:
    """One drawn case: the layer's configuration, the input's and everything the run needs."""

    kind: str
    dtype: type
    steps: int
    batch: int
    features: int
    hidden: int
    layers: int
    bidirectional: bool
    batch_first: bool
    bias: bool
    proj_size: int
    backend: str
    mode: str  # padded, unbatched, packed, packed_unsorted, lengths
    with_hx: bool
    layout: str
    scale: float
    invalid: str | None
    seed: int
    lengths: list = field(default_factory=list)

    @property
    def layer_class(self):
        return {"LSTM": lstmkit.LSTM, "GRU": lstmkit.GRU}.get(self.kind, lstmkit.RNN)

    @property
    def torch_class(self):
        return {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}.get(self.kind, torch.nn.RNN)

    def config(self) -> dict:
        config = dict(input_size=self.features, hidden_size=self.hidden, num_layers=self.layers, bias=self.bias)
        config.update(batch_first=self.batch_first, bidirectional=self.bidirectional)
        if self.kind == "LSTM":
            config["proj_size"] = self.proj_size
        if self.kind.startswith("RNN"):
            config["nonlinearity"] = self.kind[4:].lower()
        return config


def draw_case(index: int) -> Case:
    rng = np.random.default_rng([SEED, index])
    kind = KINDS[rng.integers(len(KINDS))]
    dtype = (np.float32, np.float64)[rng.integers(2)]
    hidden = int(rng.integers(1, 10))
    steps, batch = int(rng.integers(1, 13)), int(rng.integers(1, 6))
    mode = str(rng.choice(["padded", "padded", "unbatched", "packed", "packed_unsorted", "lengths"]))
    lengths = []
    if mode in ("packed", "packed_unsorted", "lengths"):
        lengths = rng.integers(1, steps + 1, size=batch).tolist()
        lengths[rng.integers(batch)] = steps  # the padded length is the longest one, as torch's padding makes it
        if mode == "packed":
            lengths.sort(reverse=True)
    return Case(
        kind=kind,
        dtype=dtype,
        steps=steps,
        batch=batch,
        features=int(rng.integers(1, 8)),
        hidden=hidden,
        layers=int(rng.integers(1, 4)),
        bidirectional=bool(rng.integers(2)),
        batch_first=bool(rng.integers(2)),
        bias=bool(rng.random() < 0.8),
        proj_size=int(rng.integers(1, hidden)) if kind == "LSTM" and hidden > 1 and rng.random() < 0.3 else 0,
        backend="auto" if kind.startswith("RNN") or rng.random() < 0.7 else str(rng.choice(["reference", "fast"])),
        mode=mode,
        with_hx=bool(rng.integers(2)),
        layout=LAYOUTS[rng.integers(len(LAYOUTS))],
        scale=float(rng.choice([1.0, 1.0, 1.0, 1.0, 1e2, 1e4])),
        invalid=str(rng.choice(INVALID)) if rng.random() < 1 / 12 else None,
        seed=int(rng.integers(2**31)),
        lengths=lengths,
    )


def laid_out(array: np.ndarray, layout: str, rng) -> np.ndarray:
    """The same values as ``array`` in the given memory layout (never C-contiguous except for "c")."""
    if layout == "fortran":
        return np.asfortranarray(array)
    if layout == "strided":  # every other element of a larger array along a random axis
        axis = int(rng.integers(array.ndim))
        shape = list(array.shape)
        shape[axis] *= 2
        larger = np.full(shape, np.nan, dtype=array.dtype)
        index = [slice(None)] * array.ndim
        index[axis] = slice(None, None, 2)
        larger[tuple(index)] = array
        return larger[tuple(index)]
    if layout == "transposed" and array.ndim >= 2:  # a view with its first two axes swapped
        return np.ascontiguousarray(array.swapaxes(0, 1)).swapaxes(0, 1)
    if layout == "readonly":
        copy = array.copy()
        copy.setflags(write=False)
        return copy
    return array.copy()


def _close(what: str, actual, expected, dtype, scale: float) -> str | None:
    """None where ``actual`` equals ``expected`` within the case's tolerance (NaN where NaN, ±inf
    where ±inf), else a line saying how far off it is."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        return f"{what}: shape {actual.shape} != torch's {expected.shape}"
    same_special = (np.isnan(actual) == np.isnan(expected)).all() and (np.isinf(expected) <= (actual == expected)).all()
    if not same_special:
        return f"{what}: NaN or inf where torch has none, or the reverse"
    finite = np.isfinite(expected)
    if not finite.any():
        return None
    magnitude = max(float(np.max(np.abs(expected[finite]))), 1.0)
    tolerance = TOLERANCE[dtype] * magnitude * (scale if dtype == np.float32 else 1.0)
    error = float(np.max(np.abs(actual[finite] - expected[finite])))
    if not error <= tolerance:
        return f"{what}: max abs difference {error:.3g} > {tolerance:.3g}"
    return None


def _as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def run_case(case: Case) -> list[str]:
    """Run one valid case on both sides: the list of mismatches (empty when all agree)."""
    rng = np.random.default_rng(case.seed)
    dtype, config = case.dtype, case.config()
    ours = case.layer_class(**config, dtype=dtype, seed=case.seed, backend=case.backend)
    reference = to_torch_module(ours, case.torch_class, dtype, **config)
    D = 2 if case.bidirectional else 1
    batched = case.mode != "unbatched"
    if not batched:
        x_shape = (case.steps, case.features)
    elif case.batch_first:
        x_shape = (case.batch, case.steps, case.features)
    else:
        x_shape = (case.steps, case.batch, case.features)
    values = rng.standard_normal(x_shape) * case.scale
    x = laid_out(values.astype(dtype), case.layout, rng)
    state_batch = (case.batch,) if batched else ()
    hx = None
    if case.with_hx:
        sizes = [case.proj_size or case.hidden] + ([case.hidden] if case.kind == "LSTM" else [])
        parts = tuple(
            laid_out(rng.standard_normal((D * case.layers, *state_batch, size)).astype(dtype), case.layout, rng)
            for size in sizes
        )
        hx = parts if case.kind == "LSTM" else parts[0]
    originals = [np.array(a, copy=True) for a in (x, *(_as_tuple(hx) if hx is not None else ()))]

    x_t = torch.tensor(np.ascontiguousarray(x), requires_grad=True)
    hx_t = None
    if hx is not None:
        parts_t = [torch.tensor(np.ascontiguousarray(s), requires_grad=True) for s in _as_tuple(hx)]
        hx_t = tuple(parts_t) if case.kind == "LSTM" else parts_t[0]
    total_length = case.steps
    if case.mode in ("packed", "packed_unsorted", "lengths"):
        packed_t = torch_pack(
            x_t, torch.tensor(case.lengths), batch_first=case.batch_first, enforce_sorted=case.mode == "packed"
        )
        output_t, state_t = reference(packed_t, hx_t)
        if case.mode == "lengths":
            output_t, _ = torch_pad(output_t, batch_first=case.batch_first, total_length=total_length)
            output, state = ours(x, hx, lengths=case.lengths)
        else:
            packed = lstmkit.pack_padded_sequence(
                x, case.lengths, batch_first=case.batch_first, enforce_sorted=case.mode == "packed"
            )
            output, state = ours(packed, hx)
    else:
        output_t, state_t = reference(x_t, hx_t)
        output, state = ours(x, hx)
    is_packed = isinstance(output, lstmkit.PackedSequence)
    output_array = output.data if is_packed else output
    output_array_t = output_t.data if is_packed else output_t

    problems = [_close("output", output_array, output_array_t.detach().numpy(), dtype, case.scale)]
    for index, (part, part_t) in enumerate(zip(_as_tuple(state), _as_tuple(state_t))):
        problems.append(_close(f"final state {index}", part, part_t.detach().numpy(), dtype, case.scale))

    g_output = laid_out(rng.standard_normal(output_array.shape).astype(dtype), case.layout, rng)
    g_state = [laid_out(rng.standard_normal(part.shape).astype(dtype), case.layout, rng) for part in _as_tuple(state)]
    doutput = output._replace(data=g_output) if is_packed else g_output
    dinput, dhx = ours.backward(doutput, tuple(g_state) if case.kind == "LSTM" else g_state[0])
    if isinstance(dinput, lstmkit.PackedSequence):
        dinput, _ = lstmkit.pad_packed_sequence(dinput, batch_first=case.batch_first, total_length=total_length)
    loss = (output_array_t * torch.from_numpy(np.array(g_output))).sum()
    loss = loss + sum((p * torch.from_numpy(np.array(g))).sum() for p, g in zip(_as_tuple(state_t), g_state))
    loss.backward()
    problems.append(_close("dinput", dinput, x_t.grad.numpy(), dtype, case.scale))
    if hx is not None:
        for index, (part, part_t) in enumerate(zip(_as_tuple(dhx), _as_tuple(hx_t))):
            problems.append(_close(f"dhx {index}", part, part_t.grad.numpy(), dtype, case.scale))
    torch_parameters = dict(reference.named_parameters())
    for name, parameter in ours.named_parameters():
        problems.append(
            _close(f"grad of {name}", parameter.grad, torch_parameters[name].grad.numpy(), dtype, case.scale)
        )
    for index, (now, before) in enumerate(zip((x, *(_as_tuple(hx) if hx is not None else ())), originals)):
        if not np.array_equal(now, before, equal_nan=True):
            problems.append(f"the call wrote into the caller's array {index} (input, then state parts)")
    return [problem for problem in problems if problem is not None]


def run_invalid_case(case: Case) -> BaseException | None:
    """Make the case invalid as ``case.invalid`` says and run it; the exception it raised, or None."""
    rng = np.random.default_rng(case.seed)
    ours = case.layer_class(**case.config(), dtype=case.dtype, seed=case.seed, backend=case.backend)
    T, N, features = case.steps, case.batch, case.features
    shape = (N, T, features) if case.batch_first else (T, N, features)
    x = rng.standard_normal(shape).astype(case.dtype)
    hx, lengths = None, np.array(case.lengths or [T] * N)
    try:
        if case.invalid == "input_size":
            x = rng.standard_normal((*shape[:2], features + 1)).astype(case.dtype)
        elif case.invalid == "state_shape":
            D = 2 if case.bidirectional else 1
            h = np.zeros((D * case.layers, N + 1, case.proj_size or case.hidden), dtype=case.dtype)
            hx = (h, np.zeros((D * case.layers, N + 1, case.hidden), case.dtype)) if case.kind == "LSTM" else h
        elif case.invalid == "zero_length":
            lengths[int(rng.integers(N))] = 0
        elif case.invalid == "long_length":
            lengths[int(rng.integers(N))] = T + 1
        elif case.invalid == "float_lengths":
            lengths = lengths + 0.5
        elif case.invalid == "complex_input":
            x = x + 1j
        elif case.invalid == "rank4":
            x = x[..., None]
        if case.invalid in ("zero_length", "long_length", "float_lengths"):
            if case.mode.startswith("packed"):
                sorted_ = case.mode == "packed" and case.invalid != "float_lengths"
                lengths = np.sort(lengths)[::-1] if sorted_ else lengths
                output, _ = ours(lstmkit.pack_padded_sequence(x, lengths, case.batch_first, enforce_sorted=sorted_), hx)
            else:
                output, _ = ours(x, hx, lengths=lengths)
        else:
            output, _ = ours(x, hx)
        if case.invalid == "doutput_shape":
            ours.backward(np.zeros((*np.shape(output)[:-1], np.shape(output)[-1] + 1), dtype=case.dtype))
    except Exception as error:  # noqa: BLE001  judged by the caller
        return error
    return None


def _case_id(index: int) -> str:
    case = draw_case(index)
    extra = f"-invalid:{case.invalid}" if case.invalid else ""
    return f"{index}-{case.kind}-{np.dtype(case.dtype).name}-{case.mode}-{case.layout}-x{case.scale:g}{extra}"


@pytest.mark.parametrize("index", range(CASES), ids=[_case_id(index) for index in range(CASES)])
def test_fuzz_case_matches_torch_or_is_a_clear_error(index):
    case = draw_case(index)
    if case.invalid is None:
        problems = run_case(case)
        assert problems == [], f"{case}: " + "; ".join(problems)
        return
    error = run_invalid_case(case)
    assert error is not None, f"{case}: the invalid input ({case.invalid}) was accepted"
    assert isinstance(error, (ValueError, TypeError)), f"{case}: {type(error).__name__}: {error}"
    named = (case.layer_class.__name__, "pack_padded_sequence")
    assert any(name in str(error) for name in named), (
        f"{case}: the message names neither the layer nor the call: {error}"
    )


def test_the_drawn_cases_cover_every_option():
    """The default count reaches every kind, dtype, mode, layout, magnitude and invalid input."""
    cases = [draw_case(index) for index in range(150)]
    assert {c.kind for c in cases} == set(KINDS)
    assert {c.mode for c in cases} == {"padded", "unbatched", "packed", "packed_unsorted", "lengths"}
    assert {c.layout for c in cases} == set(LAYOUTS)
    assert {c.scale for c in cases} == {1.0, 1e2, 1e4}
    assert {np.dtype(c.dtype).name for c in cases} == {"float32", "float64"}
    assert any(c.proj_size for c in cases) and any(c.backend == "reference" for c in cases)
    assert len({c.invalid for c in cases if c.invalid}) >= 5
