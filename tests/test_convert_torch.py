"""lstmkit.convert.torch_layout: state dicts both ways, and lstmkit layers and task models as torch.nn
modules (and torch's recurrent layers as lstmkit's) computing the same numbers."""

import subprocess
import sys

import numpy as np
import pytest
import torch

import lstmkit
from lstmkit.convert.spec import LayerSpec
from lstmkit.convert.torch_layout import (
    from_torch_module,
    from_torch_state_dict,
    to_torch_module,
    to_torch_state_dict,
)
from lstmkit.tasks.base import COMMON_DEFAULTS, last_step_model

LAYERS = {
    "lstm": lambda **o: lstmkit.LSTM(3, 5, **o),
    "lstm-proj": lambda **o: lstmkit.LSTM(3, 5, 2, proj_size=2, **o),
    "lstm-2layers-bidi": lambda **o: lstmkit.LSTM(3, 4, 2, bidirectional=True, **o),
    "lstm-proj-bidi-nobias": lambda **o: lstmkit.LSTM(3, 5, 2, bias=False, bidirectional=True, proj_size=3, **o),
    "gru-2layers-bidi": lambda **o: lstmkit.GRU(3, 4, 2, bidirectional=True, **o),
    "rnn-tanh": lambda **o: lstmkit.RNN(3, 4, 2, **o),
    "rnn-relu-bidi": lambda **o: lstmkit.RNN(3, 4, nonlinearity="relu", bidirectional=True, **o),
}


def numpy_of(tensors):
    """A torch output (tensor or tuple of them) as NumPy arrays, the same nesting."""
    if isinstance(tensors, (tuple, list)):
        return type(tensors)(numpy_of(t) for t in tensors)
    return tensors.detach().numpy()


def assert_same(actual, expected, atol):
    if isinstance(expected, (tuple, list)):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected):
            assert_same(a, e, atol)
    else:
        assert np.asarray(actual).shape == np.asarray(expected).shape
        np.testing.assert_allclose(actual, expected, rtol=0, atol=atol)


def assert_same_state_dicts(torch_module, model):
    torch_state, state = torch_module.state_dict(), model.state_dict()
    assert list(torch_state) == list(state)
    for name, array in state.items():
        np.testing.assert_array_equal(torch_state[name].numpy(), array, err_msg=name)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("name", LAYERS)
def test_to_torch_module_of_a_layer_computes_its_outputs_and_states(name, batch_first):
    layer = LAYERS[name](batch_first=batch_first, dtype=np.float64, seed=1)
    module = to_torch_module(layer)
    assert type(module).__name__ == type(layer).__name__ and module.batch_first == batch_first
    assert module.weight_ih_l0.dtype == torch.float64
    assert_same_state_dicts(module, layer)
    x = np.random.default_rng(2).standard_normal((4, 3, 3))  # (L, N, I) or (N, L, I)
    assert_same(numpy_of(module(torch.from_numpy(x))), layer(x), 1e-10)


@pytest.mark.parametrize("name", LAYERS)
def test_from_torch_module_computes_torchs_outputs_and_states(name):
    torch.manual_seed(0)
    reference = to_torch_module(LAYERS[name](batch_first=True, dtype=np.float64, seed=1))
    with torch.no_grad():  # torch's own random weights, not lstmkit's
        for parameter in reference.parameters():
            parameter.uniform_(-0.6, 0.6)
    layer = from_torch_module(reference)
    assert layer.batch_first and layer.dtype == np.float64 and layer.training
    assert_same_state_dicts(reference, layer)
    x = np.random.default_rng(3).standard_normal((3, 4, 3))
    assert_same(layer(x), numpy_of(reference(torch.from_numpy(x))), 1e-10)


def test_from_torch_module_takes_float32_and_lstmkit_options():
    reference = torch.nn.GRU(2, 3, num_layers=2, dropout=0.25).eval()
    layer = from_torch_module(reference, batch_first=True, seed=0)
    assert layer.dtype == np.float32 and layer.batch_first and layer.dropout == 0.25 and not layer.training
    x = np.random.default_rng(4).standard_normal((2, 5, 2)).astype(np.float32)
    expected = numpy_of(reference(torch.from_numpy(x.transpose(1, 0, 2))))
    output, h_n = layer(x)
    assert output.dtype == np.float32
    assert_same((output.transpose(1, 0, 2), h_n), expected, 1e-5)


def test_a_last_step_model_of_a_task_gives_torchs_numbers():
    config = dict(COMMON_DEFAULTS, hidden_size=6, num_layers=2, bidirectional=True, dropout=0.3, seed=5)
    model = last_step_model(config, input_size=3, output_size=4)
    model.eval()
    module = to_torch_module(model)
    assert not module.training
    assert_same_state_dicts(module, model)
    x = np.random.default_rng(5).standard_normal((3, 7, 3)).astype(np.float32)  # batch-first
    actual = numpy_of(module(torch.from_numpy(x)))
    assert actual.shape == (3, 4)
    assert_same(actual, model(x), 1e-5)


def test_a_sequential_of_embedding_gru_last_step_dropout_linear_in_float64():
    model = lstmkit.Sequential(
        lstmkit.Embedding(9, 3, padding_idx=0, dtype=np.float64, seed=0),
        lstmkit.GRU(3, 4, dtype=np.float64, seed=1),  # time-major: LastStep takes x[-1]
        lstmkit.LastStep(),
        lstmkit.Dropout(0.5),
        lstmkit.Linear(4, 2, dtype=np.float64, seed=2),
    ).eval()
    module = to_torch_module(model)
    assert_same_state_dicts(module, model)
    tokens = np.random.default_rng(6).integers(0, 9, (5, 3))
    assert_same(numpy_of(module(torch.from_numpy(tokens))), model(tokens), 1e-10)


@pytest.mark.parametrize("with_state", [False, True])
def test_a_language_model_gives_torchs_logits_and_state(with_state):
    model = lstmkit.LanguageModel(11, 4, 5, num_layers=2, dropout=0.2, seed=0).eval()
    module = to_torch_module(model)
    assert_same_state_dicts(module, model)
    rng = np.random.default_rng(7)
    tokens = rng.integers(0, 11, (6, 3))
    state = tuple(rng.standard_normal((2, 3, 5)).astype(np.float32) for _ in range(2)) if with_state else None
    torch_state = None if state is None else tuple(map(torch.from_numpy, state))
    assert_same(numpy_of(module(torch.from_numpy(tokens), torch_state)), model(tokens, state), 1e-5)


def test_training_mode_is_carried_over():
    model = lstmkit.LanguageModel(5, 2, 3, num_layers=1, seed=0)
    assert model.training and to_torch_module(model).training
    assert not to_torch_module(model.eval()).lstm.training


# ---- state dicts -------------------------------------------------------------------------
@pytest.mark.parametrize("name", LAYERS)
def test_state_dicts_round_trip_exactly_both_ways(name):
    layer = LAYERS[name](dtype=np.float64, seed=8)
    spec, state = LayerSpec.of(layer), layer.state_dict()
    tensors = to_torch_state_dict(state, spec)
    assert all(isinstance(t, torch.Tensor) and t.dtype == torch.float64 for t in tensors.values())
    back = from_torch_state_dict(tensors, spec)
    assert list(back) == list(state)
    for key, array in state.items():
        np.testing.assert_array_equal(back[key], array)
        assert isinstance(back[key], np.ndarray)
    torch_state = to_torch_module(layer).state_dict()
    again = to_torch_state_dict(from_torch_state_dict(torch_state, spec), spec)
    assert all(torch.equal(again[key], tensor) for key, tensor in torch_state.items())


def test_state_dicts_are_copies():
    layer = lstmkit.GRU(2, 3, seed=0)
    spec, state = LayerSpec.of(layer), layer.state_dict()
    tensors = to_torch_state_dict(state, spec)
    tensors["weight_ih_l0"].zero_()
    assert np.any(state["weight_ih_l0"] != 0)
    back = from_torch_state_dict(tensors, spec)
    back["bias_hh_l0"][...] = 0
    assert torch.any(tensors["bias_hh_l0"] != 0)


# ---- errors ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "layer,match",
    [
        (lstmkit.LSTM(3, 4, layer_norm=True), "no layer_norm=True"),
        (lstmkit.LSTM(3, 4, peepholes=True), "no peepholes=True"),
        (lstmkit.GRU(3, 4, zoneout=0.1), "no zoneout=0.1"),
        (lstmkit.LSTM(3, 4, runtime_forget_bias=1.0), "no runtime_forget_bias=1.0"),
        (lstmkit.RNN(3, 4, recurrent_dropout=0.2), r"torch.nn.RNN has no recurrent_dropout=0.2"),
        (lstmkit.LSTM(3, 4, bidirectional=True, merge_mode="sum"), "no merge_mode='sum'"),
        (lstmkit.LSTM(3, [4, 5], num_layers=2), r"no per-layer hidden sizes \[4, 5\]"),
        (lstmkit.GRU(3, 4, return_states="all"), "no return_states='all'"),
    ],
)
def test_variants_torch_lacks_are_refused(layer, match):
    with pytest.raises(ValueError, match=match):
        to_torch_module(layer)


def test_a_refused_module_inside_a_model_is_named_by_its_place():
    model = lstmkit.Sequential(lstmkit.LSTM(3, 4, peepholes=True), lstmkit.LastStep(), lstmkit.Linear(4, 1))
    with pytest.raises(ValueError, match=r"to_torch_module\(Sequential\), module 0 \(LSTM\): .*peepholes"):
        to_torch_module(model)


def test_modules_without_a_torch_twin_are_refused():
    import lstmkit.keras as lk

    with pytest.raises(TypeError, match="expected an lstmkit LSTM, GRU, RNN, Linear.*got LSTM"):
        to_torch_module(lk.LSTM(3))
    with pytest.raises(TypeError, match=r"from_torch_module\(Linear\): expected a torch.nn.LSTM, GRU or RNN"):
        from_torch_module(torch.nn.Linear(2, 3))
    with pytest.raises(TypeError, match="float32 or float64, got a module of torch.float16"):
        from_torch_module(torch.nn.LSTM(2, 3).half())


def test_a_state_dict_that_does_not_fit_the_spec_names_the_weight_and_both_shapes():
    spec = LayerSpec("LSTM", 3, (4,), proj_size=2)
    state = torch.nn.LSTM(3, 4, proj_size=2).state_dict()
    state["weight_hr_l0"] = torch.zeros(4, 2)
    del state["bias_hh_l0"]
    match = r"missing weight 'bias_hh_l0' of shape \(16,\).*'weight_hr_l0': expected shape \(2, 4\), got \(4, 2\)"
    with pytest.raises(ValueError, match=match):
        from_torch_state_dict(state, spec)
    with pytest.raises(ValueError, match=r"unexpected weight 'weight_hr_l0'"):
        to_torch_state_dict(lstmkit.LSTM(3, 4, proj_size=2).state_dict(), LayerSpec("LSTM", 3, (4,)))


def test_importing_the_converter_does_not_import_torch():
    code = "import sys, lstmkit.convert.torch_layout; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
