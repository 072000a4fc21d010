"""save_weights / load_weights: .safetensors files that torch loads as they are, and the other way round;
a whole model round trip; clear errors; a failed write leaves the old file (or none), never half of one."""

import json
import os
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import lstmkit
from lstmkit import io
from lstmkit.convert.spec import LayerSpec
from lstmkit.io import CheckpointError, load_weights, read_weights, save_weights

X = np.random.default_rng(0).standard_normal((6, 2, 3)).astype(np.float32)
LAYERS = {
    "LSTM_proj_bidirectional": ("LSTM", dict(num_layers=2, bidirectional=True, proj_size=2)),
    "LSTM": ("LSTM", dict(num_layers=1)),
    "GRU_bidirectional": ("GRU", dict(num_layers=2, bidirectional=True)),
}


def _pair(kind, options, seed):
    torch.manual_seed(seed)
    return getattr(lstmkit, kind)(3, 4, seed=seed, **options), getattr(torch.nn, kind)(3, 4, **options)


def _assert_same_outputs(layer, torch_layer):
    with lstmkit.no_grad():
        output, state = layer(X)
    with torch.no_grad():
        expected_output, expected_state = torch_layer(torch.from_numpy(X))
    np.testing.assert_allclose(output, expected_output.numpy(), rtol=0, atol=1e-6)
    states, expected_states = (state, expected_state) if isinstance(state, tuple) else ((state,), (expected_state,))
    for actual, expected in zip(states, expected_states, strict=True):
        np.testing.assert_allclose(actual, expected.numpy(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", LAYERS)
def test_lstmkit_file_loads_into_torch(name, tmp_path):
    layer, torch_layer = _pair(*LAYERS[name], seed=1)
    save_weights(layer, tmp_path / "w.safetensors")
    torch_layer.load_state_dict(load_file(tmp_path / "w.safetensors"))  # strict: every name and shape
    _assert_same_outputs(layer, torch_layer)


@pytest.mark.parametrize("name", LAYERS)
def test_torch_file_loads_into_lstmkit(name, tmp_path):
    layer, torch_layer = _pair(*LAYERS[name], seed=2)
    save_file(torch_layer.state_dict(), tmp_path / "w.safetensors")
    assert load_weights(layer, tmp_path / "w.safetensors") is layer
    _assert_same_outputs(layer, torch_layer)


def test_a_sequential_model_round_trip_and_its_metadata(tmp_path):
    def model(seed):
        return lstmkit.Sequential(
            lstmkit.LSTM(3, 4, 2, bidirectional=True, seed=seed), lstmkit.LastStep(), lstmkit.Linear(8, 2, seed=seed)
        )

    saved, loaded = model(1), model(2)
    save_weights(saved, tmp_path / "model.safetensors")
    load_weights(loaded, tmp_path / "model.safetensors")
    for (name, expected), (other, actual) in zip(saved.state_dict().items(), loaded.state_dict().items()):
        assert name == other
        np.testing.assert_array_equal(actual, expected)
    with lstmkit.no_grad():
        np.testing.assert_array_equal(loaded(X), saved(X))
    arrays, metadata = read_weights(tmp_path / "model.safetensors")
    assert list(arrays) == sorted(saved.state_dict())  # safetensors sorts its names
    assert metadata == {"format": "lstmkit-weights", "module": "Sequential"}


def test_a_layer_records_its_spec(tmp_path):
    layer = lstmkit.GRU(3, [4, 5], 2, bias=False, dtype=np.float64)
    save_weights(layer, tmp_path / "gru.safetensors")
    arrays, metadata = read_weights(tmp_path / "gru.safetensors")
    assert LayerSpec(**json.loads(metadata["layer_spec"])) == LayerSpec.of(layer)
    assert all(array.dtype == np.float64 and array.flags.c_contiguous for array in arrays.values())


# ---- errors ----------------------------------------------------------------------------------
def test_a_file_that_is_not_safetensors_is_refused(tmp_path):
    for content in (b"", b"hello, world", (10**9).to_bytes(8, "little") + b"{}"):
        (tmp_path / "bad.safetensors").write_bytes(content)
        with pytest.raises(CheckpointError, match=r"bad.safetensors is not a readable .safetensors file"):
            load_weights(lstmkit.LSTM(3, 4), tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError, match="no weights file at"):
        load_weights(lstmkit.LSTM(3, 4), tmp_path / "missing.safetensors")


def test_weights_that_do_not_fit_are_refused_and_nothing_changes(tmp_path):
    save_weights(lstmkit.LSTM(3, 5), tmp_path / "w.safetensors")
    layer = lstmkit.LSTM(3, 4)
    before = layer.state_dict()
    with pytest.raises(CheckpointError, match=r"weight_ih_l0: expected shape \(16, 3\), got \(20, 3\)"):
        load_weights(layer, tmp_path / "w.safetensors")
    with pytest.raises(CheckpointError, match=r"do not fit the LSTM: .*missing keys \['weight_ih_l1', "):
        load_weights(lstmkit.LSTM(3, 5, 2), tmp_path / "w.safetensors")
    save_weights(lstmkit.LSTM(3, 5, 2), tmp_path / "two.safetensors")
    with pytest.raises(CheckpointError, match=r"unexpected keys \['bias_hh_l1', "):
        load_weights(lstmkit.LSTM(3, 5), tmp_path / "two.safetensors")
    for name, array in layer.state_dict().items():
        np.testing.assert_array_equal(array, before[name])


def test_a_failed_write_leaves_the_old_file_and_no_partial_one(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    old = lstmkit.LSTM(3, 4, seed=1)
    save_weights(old, path)

    def crash(descriptor):
        raise OSError("disk full")

    monkeypatch.setattr(io.os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        save_weights(lstmkit.LSTM(3, 4, seed=2), path)
    with pytest.raises(OSError, match="disk full"):
        save_weights(old, tmp_path / "new.safetensors")
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["w.safetensors"]
    np.testing.assert_array_equal(read_weights(path)[0]["weight_ih_l0"], old.weight_ih_l0.data)


def test_without_safetensors_the_error_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    with pytest.raises(ImportError, match=r"pip install 'lstmkit\[safetensors\]'"):
        save_weights(lstmkit.LSTM(3, 4), tmp_path / "w.safetensors")
