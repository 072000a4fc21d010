"""In-place edits cannot corrupt a gradient (issue 28, point 1).

torch keeps a version counter per tensor and refuses a backward whose saved tensors were edited in
place. NumPy arrays have no counter, so lstmkit never lets a cache reach the caller's memory: a
training forward keeps private copies of the caller's arrays it needs (input, initial state,
indices, targets) where they are not copies already, and copies what it returns where that shares
memory with its cache (output, final state). Each case here runs a forward, then overwrites every
array the caller passed in or got back, then runs the backward; every gradient must equal, bit for
bit, the one of the same call left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pytest
import torch
from conftest import assert_close, to_torch_module, torch_grads

import lstmkit
from lstmkit import keras
from lstmkit.nn.packing import PackedSequence, pack_padded_sequence

T, N, FEATURES, H = 6, 3, 4, 5


class Case(NamedTuple):
    """``build(rng) -> (module, args, kwargs)``; ``backward(module, upstream)`` returns the
    caller's gradients (``upstream`` shaped like the forward's result)."""

    build: Callable
    backward: Callable


def _recurrent(layer_class, backend, *, batch_first=False, packed=False, lengths=False, unbatched=False, **options):
    def build(rng):
        layer = layer_class(FEATURES, H, batch_first=batch_first, backend=backend, seed=1, **options)
        shape = (T, FEATURES) if unbatched else ((N, T, FEATURES) if batch_first else (T, N, FEATURES))
        x = rng.standard_normal(shape).astype(np.float32)
        rows = () if unbatched else (N,)
        sizes = (options.get("proj_size") or H, H) if layer_class is lstmkit.LSTM else (H,)
        layers = layer.num_directions * layer.num_layers
        state = [rng.standard_normal((layers, *rows, size)).astype(np.float32) for size in sizes]
        hx = tuple(state) if len(state) > 1 else state[0]
        kwargs = {}
        if packed:
            x = pack_padded_sequence(x, np.array([T, 2, 4]), batch_first=batch_first, enforce_sorted=False)
        if lengths:
            kwargs["lengths"] = np.array([T, 2, 4])
        return layer, (x, hx), kwargs

    def backward(layer, upstream):
        doutput, dstate, *dsteps = upstream
        return layer.backward(doutput, dstate, **({"dstates_all": dsteps[0]} if dsteps else {}))

    return Case(build, backward)


def _cell(cell_class, **options):
    def build(rng):
        cell = cell_class(FEATURES, H, seed=1, **options)
        x = rng.standard_normal((N, FEATURES)).astype(np.float32)
        state = [
            rng.standard_normal((N, H)).astype(np.float32) for _ in range(2 if cell_class is lstmkit.LSTMCell else 1)
        ]
        return cell, (x, tuple(state) if len(state) > 1 else state[0]), {}

    return Case(build, lambda cell, upstream: cell.backward(upstream))


def _keras(layer_factory, *, with_state):
    def build(rng):
        layer = layer_factory()
        x = rng.standard_normal((N, T, FEATURES)).astype(np.float32)
        kwargs = {}
        if with_state:
            kwargs["initial_state"] = [rng.standard_normal((N, H)).astype(np.float32) for _ in range(2)]
        return layer, (x,), kwargs

    return Case(build, lambda layer, upstream: layer.backward(upstream))


def _floats(rng, *shape) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def _single(build_module, make_input, backward=lambda module, upstream: module.backward(upstream)):
    def build(rng):
        module = build_module()
        return module, make_input(rng), {}

    return Case(build, backward)


RECURRENT = {
    f"{name}-{backend}-{variant}": _recurrent(layer_class, backend, **options)
    for name, layer_class in (("LSTM", lstmkit.LSTM), ("GRU", lstmkit.GRU), ("RNN", lstmkit.RNN))
    for backend in ("auto", "reference")
    for variant, options in {
        "plain": {},
        "batch_first": dict(batch_first=True),
        "bidirectional-2": dict(bidirectional=True, num_layers=2),
        "sum": dict(bidirectional=True, merge_mode="sum"),
        "mul": dict(bidirectional=True, merge_mode="mul"),
        "lengths": dict(lengths=True),
        "packed": dict(packed=True),
        "unbatched": dict(unbatched=True),
        "states_all": dict(return_states="all"),
    }.items()
}
RECURRENT.update({
    f"LSTM-{backend}-{variant}": _recurrent(lstmkit.LSTM, backend, **options)
    for backend in ("auto", "reference")
    for variant, options in {
        "proj": dict(proj_size=2, num_layers=2),
        "layer_norm": dict(layer_norm=True),
        "peepholes": dict(peepholes=True),
        "zoneout": dict(zoneout=0.3),
        "recurrent_dropout": dict(recurrent_dropout=0.3, dropout=0.2, num_layers=2),
    }.items()
})  # fmt: skip

OTHERS = {
    "LSTMCell": _cell(lstmkit.LSTMCell),
    "LSTMCell-layer_norm": _cell(lstmkit.LSTMCell, layer_norm=True),
    "GRUCell": _cell(lstmkit.GRUCell),
    "RNNCell": _cell(lstmkit.RNNCell),
    "Linear": _single(lambda: lstmkit.Linear(FEATURES, H, seed=1), lambda rng: (_floats(rng, N, FEATURES),)),
    "Embedding": _single(lambda: lstmkit.Embedding(10, H, seed=1), lambda rng: (rng.integers(0, 10, (T, N)),)),
    "Dropout": _single(lambda: lstmkit.Dropout(0.5, seed=1), lambda rng: (_floats(rng, T, N),)),
    "LastStep": _single(lambda: lstmkit.LastStep(), lambda rng: (_floats(rng, T, N, H),)),
    "Sequential": _single(
        lambda: lstmkit.Sequential(lstmkit.LSTM(FEATURES, H, seed=1), lstmkit.LastStep(), lstmkit.Linear(H, 2, seed=2)),
        lambda rng: (_floats(rng, T, N, FEATURES),),
    ),
    "CrossEntropyLoss": _single(
        lambda: lstmkit.CrossEntropyLoss(), lambda rng: (rng.standard_normal((N, 7)), rng.integers(0, 7, N))
    ),
    "MSELoss": _single(
        lambda: lstmkit.MSELoss(), lambda rng: (rng.standard_normal((N, 2)), rng.standard_normal((N, 2)))
    ),
    "keras-LSTM": _keras(lambda: keras.LSTM(H, return_sequences=True, return_state=True, seed=1), with_state=True),
    "keras-GRU-sequences": _keras(lambda: keras.GRU(H, return_sequences=True, seed=1), with_state=False),
    "keras-SimpleRNN-last": _keras(lambda: keras.SimpleRNN(H, seed=1), with_state=False),
    "keras-Bidirectional": _keras(
        lambda: keras.Bidirectional(keras.LSTM(H, return_sequences=True, seed=1)), with_state=False
    ),
    "keras-Masking": _keras(lambda: keras.Masking(0.0), with_state=False),
}


def _arrays(value):
    """Every ndarray in a nest of tuples, lists and PackedSequences."""
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, (tuple, list)):
        for part in value:
            yield from _arrays(part)
    elif isinstance(value, dict):
        for part in value.values():
            yield from _arrays(part)


def _like(value, rng):
    """A random upstream gradient shaped like a forward's result (PackedSequences keep their
    packing; integer arrays stay as they are)."""
    if isinstance(value, PackedSequence):
        return PackedSequence(*(_like(part, rng) for part in value))
    if isinstance(value, np.ndarray):
        if value.dtype.kind != "f":
            return value.copy()
        return rng.standard_normal(value.shape).astype(value.dtype)
    if isinstance(value, (tuple, list)):
        return type(value)(_like(part, rng) for part in value)
    return value


def _overwrite(value) -> None:
    """Overwrite, in place, every writable array in ``value``: floats with 7.5, integers with
    their largest entry (so indices and lengths stay valid)."""
    for array in _arrays(value):
        if array.flags.writeable and array.size:
            array[...] = 7.5 if array.dtype.kind == "f" else array.max()


def _gradients(case: Case, overwrite: bool) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    module, args, kwargs = case.build(rng)
    result = module(*args, **kwargs)
    upstream = _like(result, rng)
    if overwrite:
        _overwrite((args, kwargs, result))
    got = case.backward(module, upstream)
    return [*_arrays(got), *(p.grad for _, p in module.named_parameters() if p.grad is not None)]


@pytest.mark.parametrize("name", sorted({**RECURRENT, **OTHERS}))
def test_overwriting_inputs_and_results_between_forward_and_backward_changes_no_gradient(name):
    case = {**RECURRENT, **OTHERS}[name]
    left_alone = _gradients(case, overwrite=False)
    overwritten = _gradients(case, overwrite=True)
    assert len(left_alone) == len(overwritten) > 0
    for index, (got, want) in enumerate(zip(overwritten, left_alone)):
        np.testing.assert_array_equal(got, want, err_msg=f"{name}: gradient {index} changed")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", ["fast", "reference"])
def test_the_issues_reproducers_give_torchs_gradients(backend, dtype):
    """``out *= 0`` and ``x[...] = 0`` between forward and backward (which changed dW_hh by 1.89
    and dW_ih by 4.46 when the cache shared their memory): the gradients are torch's for the
    forward's own x."""
    rng = np.random.default_rng(28)
    layer = lstmkit.LSTM(4, 6, backend=backend, dtype=dtype, seed=2)
    x = rng.standard_normal((7, 3, 4)).astype(dtype)
    upstream = rng.standard_normal((7, 3, 6)).astype(dtype)
    reference = to_torch_module(layer, torch.nn.LSTM, dtype, input_size=4, hidden_size=6)
    x_torch = torch.from_numpy(x.copy()).requires_grad_()
    out_torch, _ = reference(x_torch)
    want = torch_grads([out_torch], [upstream], [x_torch, reference.weight_ih_l0, reference.weight_hh_l0])
    out, _ = layer(x)
    out *= 0
    x[...] = 0
    dx, _ = layer.backward(upstream)
    for got, expected, what in zip(
        [dx, layer.weight_ih_l0.grad, layer.weight_hh_l0.grad], want, ("dx", "dW_ih", "dW_hh")
    ):
        assert_close(got, expected, dtype, what)


# ---- parameters changed between a forward and its backward: refused, as torch refuses -------------
def _step(layer):
    layer.zero_grad()
    output, _ = layer(np.ones((4, 2, 3), dtype=np.float32))
    layer.backward(np.ones_like(output))
    return output


CHANGES = {
    "optimizer step": lambda layer: lstmkit.SGD(layer.parameters(), lr=0.1).step(),
    "Adam step": lambda layer: lstmkit.Adam(layer.parameters(), lr=0.1).step(),
    "load_state_dict": lambda layer: layer.load_state_dict({k: v + 1 for k, v in layer.state_dict().items()}),
    "assignment to .data": lambda layer: setattr(layer.weight_hh_l0, "data", layer.weight_hh_l0.data * 2),
    "in-place update of .data": lambda layer: layer.weight_hh_l0.__setattr__("data", layer.weight_hh_l0.data),
    "assign": lambda layer: layer.bias_ih_l0.assign(0.5),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
@pytest.mark.parametrize("backend", ["fast", "reference"])
def test_a_backward_after_its_parameters_changed_is_refused(backend, change):
    layer = lstmkit.LSTM(3, 5, backend=backend, seed=0)
    _step(layer)  # every parameter has a gradient, as after a real step
    output, _ = layer(np.ones((4, 2, 3), dtype=np.float32))
    CHANGES[change](layer)
    with pytest.raises(RuntimeError, match=r"LSTM\.backward: parameter \w+ was changed after the forward") as error:
        layer.backward(np.ones_like(output))
    assert "call backward before optimizer.step()" in str(error.value)
    assert layer._saved == []  # that forward is dropped; the next pair works
    _step(layer)
    assert layer._saved == []


def test_p_data_minus_equals_counts_as_a_change_and_a_normal_loop_is_unaffected():
    layer = lstmkit.GRU(3, 4, seed=0)
    optimizer = lstmkit.Adam(layer.parameters(), lr=0.01)
    for _ in range(3):  # forward, backward, step: never refused
        _step(layer)
        optimizer.step()
    version = layer.weight_ih_l0.version
    layer.weight_ih_l0.data -= 0.1  # the setter runs after the in-place subtraction
    assert layer.weight_ih_l0.version == version + 1


def test_keras_set_weights_between_forward_and_backward_is_refused():
    layer = keras.LSTM(4, seed=0)
    x = np.ones((2, 5, 3), dtype=np.float32)
    output = layer(x)
    layer.set_weights(layer.get_weights())
    with pytest.raises(RuntimeError, match="parameter kernel was changed after the forward"):
        layer.backward(np.ones_like(output))


def test_each_module_checks_its_own_parameters():
    """In a Sequential, stepping only the Linear's parameters refuses the Linear's backward first."""
    model = lstmkit.Sequential(lstmkit.LSTM(3, 4, seed=0), lstmkit.LastStep(), lstmkit.Linear(4, 2, seed=1))
    output = model(np.ones((5, 2, 3), dtype=np.float32))
    model[2].weight.mark_changed()
    with pytest.raises(RuntimeError, match=r"Linear\.backward: parameter weight was changed"):
        model.backward(np.ones_like(output))


# ---- what the review found: inputs that are not ndarrays, and containers the caller holds ----------
@pytest.mark.parametrize("kind", ["torch tensor", "memoryview"])
def test_array_likes_that_numpy_reads_without_a_copy_are_kept_apart_too(kind):
    """``np.asarray`` of a CPU tensor or a memoryview shares its memory: editing it after the
    forward must leave the gradients as they were."""

    def gradient(edit):
        layer = lstmkit.LSTM(4, 5, seed=1)
        x = torch.from_numpy(np.random.default_rng(0).standard_normal((6, 3, 4)).astype(np.float32))
        x = memoryview(x.numpy()) if kind == "memoryview" else x
        output, _ = layer(x)
        if edit:
            np.asarray(x)[...] = 0
        layer.backward(np.ones_like(output))
        return layer.weight_ih_l0.grad

    np.testing.assert_array_equal(gradient(edit=True), gradient(edit=False))


class _KeepsItsList(lstmkit.Module):
    def forward(self, arrays):
        self._save_for_backward(arrays)
        return np.concatenate(arrays)

    def backward(self, doutput):
        return float(sum(array.sum() for array in self._pop_saved()))


class _ReturnsWhatItKeeps(lstmkit.Module):
    def forward(self, x):
        parts = [x * 2, x * 3]
        self._save_for_backward(parts)
        return parts

    def backward(self, doutput):
        return float(sum(part.sum() for part in self._pop_saved()))


def test_lists_shared_by_the_caller_and_the_cache_are_rebuilt_not_changed_in_place():
    first, second = np.ones(3), np.ones(3)
    arrays = [first, second]
    keeper = _KeepsItsList()
    keeper(arrays)
    assert arrays[0] is first and arrays[1] is second  # the caller's list is the caller's
    first[...] = 100
    assert keeper.backward(None) == 6.0
    splitter = _ReturnsWhatItKeeps()
    parts = splitter(np.ones(3))
    parts[0][...] = 100
    assert splitter.backward(None) == 15.0
