"""lstmkit.export.to_onnx: the exported graphs run in onnxruntime and give lstmkit's outputs and
final states (float32, 1e-5), and torch's where torch has the configuration."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

import lstmkit
from lstmkit.export import OPSET, to_onnx
from lstmkit.tasks.base import last_step_model

TOLERANCE = 1e-5


def session(model, **options) -> onnxruntime.InferenceSession:
    settings = onnxruntime.SessionOptions()
    settings.log_severity_level = 3  # not the warning that h0/c0 are overridable initializers: that is the point
    return onnxruntime.InferenceSession(
        to_onnx(model, **options).SerializeToString(), settings, providers=["CPUExecutionProvider"]
    )


def states_of(state) -> list[np.ndarray]:
    """h (and c) as a flat list: per-layer lists flattened, h's first."""
    parts = state if isinstance(state, tuple) else (state,)
    return [array for part in parts for array in (part if isinstance(part, list) else [part])]


def assert_outputs(actual: list, expected: list, names: list[str]) -> None:
    assert len(actual) == len(expected), names
    for got, want, name in zip(actual, expected, names):
        assert got.shape == want.shape, f"{name}: {got.shape} != {want.shape}"
        np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE, err_msg=name)


# every option of the recurrent layers, as (mode, constructor options)
GRID = [
    (mode, dict(num_layers=layers, bidirectional=bidirectional, batch_first=batch_first, bias=bias))
    for mode, layers, bidirectional, batch_first, bias in itertools.product(
        ("LSTM", "GRU", "RNN_TANH", "RNN_RELU"), (1, 2), (False, True), (False, True), (True, False)
    )
]
LSTM_VARIANTS = [
    dict(proj_size=3),
    dict(proj_size=2, num_layers=2, bidirectional=True, batch_first=True),
    dict(peepholes=True, bidirectional=True),
    dict(peepholes=True, proj_size=3, num_layers=2),
    dict(layer_norm=True, num_layers=2, bidirectional=True),
    dict(layer_norm=True, bias=False),
    dict(zoneout=0.25, bidirectional=True),
    dict(zoneout=(0.1, 0.4), proj_size=2),
    dict(runtime_forget_bias=1.0),
    dict(runtime_forget_bias=0.5, bias=False, bidirectional=True),
    dict(recurrent_dropout=0.3, num_layers=2, dropout=0.5),
    dict(bidirectional=True, merge_mode="sum", num_layers=2),
    dict(bidirectional=True, merge_mode="mul"),
    dict(bidirectional=True, merge_mode="ave", proj_size=2),
    dict(hidden_size=[6, 4], num_layers=2, bidirectional=True),
    dict(hidden_size=[3, 5, 4], num_layers=3, proj_size=2),
]


def make_layer(mode: str, options: dict, seed: int = 0):
    options = dict(options)
    hidden = options.pop("hidden_size", 6)
    if mode.startswith("RNN"):
        return lstmkit.RNN(5, hidden, nonlinearity=mode[4:].lower(), seed=seed, **options).eval()
    return getattr(lstmkit, mode)(5, hidden, seed=seed, **options).eval()


def inputs_for(layer, rng, batch=3, steps=7):
    shape = (batch, steps, layer.input_size) if layer.batch_first else (steps, batch, layer.input_size)
    return rng.standard_normal(shape).astype(np.float32)


def initial_state(layer, rng, batch=3):
    """Random h0 (and c0) in the layer's own form (a per-layer list with per-layer sizes)."""
    sizes = {"h": layer.output_sizes, "c": tuple(layer.hidden_sizes)}
    parts = []
    for part in layer._kind.state_parts:
        if layer._state_lists:
            parts.append(
                [rng.standard_normal((layer.num_directions, batch, size)).astype(np.float32) for size in sizes[part]]
            )
        else:
            rows = layer.num_layers * layer.num_directions
            parts.append(rng.standard_normal((rows, batch, sizes[part][0])).astype(np.float32))
    return tuple(parts) if len(parts) > 1 else parts[0]


def state_feeds(layer, state) -> dict[str, np.ndarray]:
    parts = state if isinstance(state, tuple) else (state,)
    feeds = {}
    for part, value in zip(layer._kind.state_parts, parts):
        if isinstance(value, list):
            feeds.update({f"{part}0_l{k}": array for k, array in enumerate(value)})
        else:
            feeds[f"{part}0"] = value
    return feeds


def output_names(layer) -> list[str]:
    if layer._state_lists:
        return ["output"] + [f"{part}_n_l{k}" for part in layer._kind.state_parts for k in range(layer.num_layers)]
    return ["output"] + [f"{part}_n" for part in layer._kind.state_parts]


CASES = GRID + [("LSTM", options) for options in LSTM_VARIANTS]


@pytest.mark.parametrize("mode,options", CASES, ids=[f"{m}-{o}" for m, o in CASES])
def test_exported_layer_equals_lstmkit_with_and_without_initial_states(mode, options):
    rng = np.random.default_rng(len(str(options)))
    layer = make_layer(mode, options)
    x = inputs_for(layer, rng)
    runner = session(layer)
    assert [output.name for output in runner.get_outputs()] == output_names(layer)
    output, state = layer(x)
    assert_outputs(runner.run(None, {"input": x}), [output, *states_of(state)], output_names(layer))
    h0 = initial_state(layer, rng)
    output, state = layer(x, h0)
    assert_outputs(
        runner.run(None, {"input": x, **state_feeds(layer, h0)}), [output, *states_of(state)], output_names(layer)
    )


@pytest.mark.parametrize(
    "mode,options",
    [
        ("LSTM", dict(num_layers=2, bidirectional=True)),
        ("LSTM", dict(proj_size=3, bidirectional=True, batch_first=True)),
        ("LSTM", dict(peepholes=True, layer_norm=True, bidirectional=True)),
        ("LSTM", dict(zoneout=0.2, num_layers=2, bidirectional=True, merge_mode="sum")),
        ("GRU", dict(num_layers=2, bidirectional=True, batch_first=True)),
        ("RNN_TANH", dict(bidirectional=True)),
        ("RNN_RELU", dict(num_layers=2)),
    ],
)
def test_lengths_give_lstmkit_padded_outputs_and_states(mode, options):
    rng = np.random.default_rng(7)
    layer = make_layer(mode, options)
    x = inputs_for(layer, rng, batch=4)
    lengths = np.array([7, 2, 5, 1])
    output, state = layer(x, lengths=lengths)
    actual = session(layer, lengths=True).run(None, {"input": x, "lengths": lengths})
    assert_outputs(actual, [output, *states_of(state)], output_names(layer))


@pytest.mark.parametrize(
    "options", [dict(), dict(num_layers=2, bidirectional=True, proj_size=3), dict(peepholes=True, zoneout=0.3)]
)
def test_the_scan_gives_what_the_operator_gives_and_lstmkit(options):
    """Every LSTM can be built from a Scan (scan=True): the same numbers as ONNX's LSTM operator."""
    rng = np.random.default_rng(3)
    layer = make_layer("LSTM", options)
    x = inputs_for(layer, rng)
    output, state = layer(x)
    for scan in (None, True):
        assert_outputs(
            session(layer, scan=scan).run(None, {"input": x}), [output, *states_of(state)], output_names(layer)
        )
    if not (layer.proj_size or layer.zoneout):
        graph = to_onnx(layer).graph
        assert [node.op_type for node in graph.node if node.op_type in ("LSTM", "Scan")] == ["LSTM"] * layer.num_layers


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
def test_unbatched_graph_takes_one_sequence(mode):
    rng = np.random.default_rng(5)
    layer = make_layer(mode, dict(num_layers=2, bidirectional=True, **({"proj_size": 2} if mode == "LSTM" else {})))
    x = rng.standard_normal((6, 5)).astype(np.float32)
    runner = session(layer, unbatched=True)
    output, state = layer(x)
    assert_outputs(runner.run(None, {"input": x}), [output, *states_of(state)], output_names(layer))
    h0 = tuple(part[:, 0] for part in states_of(initial_state(layer, rng, batch=1)))
    h0 = h0 if len(h0) > 1 else h0[0]
    output, state = layer(x, h0)
    assert_outputs(
        runner.run(None, {"input": x, **state_feeds(layer, h0)}), [output, *states_of(state)], output_names(layer)
    )


def test_batch_and_steps_are_dynamic_axes():
    layer = make_layer("LSTM", dict(num_layers=2, bidirectional=True, proj_size=3, batch_first=True))
    runner = session(layer)
    input_shape = [dim.dim_param or dim.dim_value for dim in to_onnx(layer).graph.input[0].type.tensor_type.shape.dim]
    assert input_shape == ["batch", "steps", 5]
    rng = np.random.default_rng(0)
    for batch, steps in ((1, 1), (2, 9), (5, 3)):
        x = inputs_for(layer, rng, batch=batch, steps=steps)
        output, state = layer(x)
        assert_outputs(runner.run(None, {"input": x}), [output, *states_of(state)], output_names(layer))


TORCH_CASES = [
    ("LSTM", dict(num_layers=2, bidirectional=True, proj_size=3)),
    ("LSTM", dict(batch_first=True, bidirectional=True)),
    ("GRU", dict(num_layers=2, bidirectional=True)),
    ("RNN_RELU", dict(batch_first=True, bidirectional=True)),
]


@pytest.mark.parametrize("mode,options", TORCH_CASES)
def test_exported_layer_equals_torch_with_lengths(mode, options):
    """The graph against torch itself (the same weights, packed sequences for the lengths)."""
    rng = np.random.default_rng(11)
    layer = make_layer(mode, options)
    torch_class = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}.get(mode, torch.nn.RNN)
    extra = {"nonlinearity": mode[4:].lower()} if mode.startswith("RNN") else {}
    reference = torch_class(5, 6, **options, **extra)
    reference.load_state_dict({name: torch.from_numpy(value) for name, value in layer.state_dict().items()})
    x = inputs_for(layer, rng, batch=4)
    lengths = np.array([3, 7, 1, 6])
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        torch.from_numpy(x), torch.from_numpy(lengths), batch_first=layer.batch_first, enforce_sorted=False
    )
    with torch.no_grad():
        packed_output, state = reference(packed)
    output, _ = torch.nn.utils.rnn.pad_packed_sequence(packed_output, batch_first=layer.batch_first, total_length=7)
    expected = [output.numpy()] + [part.numpy() for part in (state if isinstance(state, tuple) else (state,))]
    assert_outputs(
        session(layer, lengths=True).run(None, {"input": x, "lengths": lengths}), expected, output_names(layer)
    )


def test_sequential_task_model_equals_lstmkit_and_file_is_checked(tmp_path):
    model = last_step_model(dict(seed=0, hidden_size=8, num_layers=2, dropout=0.2, bidirectional=True), 28, 10).eval()
    path = tmp_path / "mnist.onnx"
    to_onnx(model, path)
    loaded = onnx.load(path)
    onnx.checker.check_model(loaded, full_check=True)
    assert loaded.opset_import[0].version == OPSET
    runner = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(2).standard_normal((4, 28, 28)).astype(np.float32)
    assert_outputs(runner.run(None, {"input": x}), [model(x)], ["output"])


def test_embedding_sequential_and_language_model_equal_lstmkit():
    rng = np.random.default_rng(4)
    classifier = lstmkit.Sequential(
        lstmkit.Embedding(30, 6, seed=0),
        lstmkit.GRU(6, 5, batch_first=True, seed=1),
        lstmkit.LastStep(),
        lstmkit.Dropout(0.5),
        lstmkit.Linear(5, 3, seed=2),
    ).eval()
    tokens = rng.integers(0, 30, (4, 9))
    assert_outputs(session(classifier).run(None, {"input": tokens}), [classifier(tokens)], ["output"])
    model = lstmkit.LanguageModel(40, 8, 12, num_layers=2, dropout=0.3, seed=0).eval()
    tokens = rng.integers(0, 40, (9, 3))
    runner = session(model)
    logits, state = model(tokens)
    assert_outputs(runner.run(None, {"tokens": tokens}), [logits, *state], ["logits", "h_n", "c_n"])
    logits, next_state = model(tokens, state)  # the states carried into the next batch, as evaluation does
    feeds = {"tokens": tokens, "h0": state[0], "c0": state[1]}
    assert_outputs(runner.run(None, feeds), [logits, *next_state], ["logits", "h_n", "c_n"])


def test_float64_layer_exports_in_float32():
    layer = lstmkit.LSTM(5, 6, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((4, 2, 5))
    output, (h_n, c_n) = layer(x)
    actual = session(layer).run(None, {"input": x.astype(np.float32)})
    assert actual[0].dtype == np.float32
    assert_outputs(
        actual, [output.astype(np.float32), h_n.astype(np.float32), c_n.astype(np.float32)], output_names(layer)
    )


@pytest.mark.parametrize(
    "model,options,message",
    [
        (lstmkit.GRU(3, 4, zoneout=0.2), {}, "zoneout on a GRU"),
        (lstmkit.Linear(3, 4), {}, "expected an lstmkit LSTM, GRU, RNN, Sequential or LanguageModel, got Linear"),
        (lstmkit.Sequential(lstmkit.Linear(3, 4)), {}, "expected an Embedding or a recurrent layer first"),
        (lstmkit.Sequential(lstmkit.LSTM(3, 4), lstmkit.Sequential()), {}, "module 1 is a Sequential"),
        (lstmkit.Sequential(lstmkit.LSTM(3, 4)), {"lengths": True}, "apply to a recurrent layer"),
        (lstmkit.LSTM(3, 4), {"lengths": True, "unbatched": True}, "one length"),
        (lstmkit.LSTM(3, 4, proj_size=2), {"scan": False}, "needs the Scan"),
        (lstmkit.LSTM(3, 4), {"scan": "no"}, "scan must be None, True or False"),
    ],
)
def test_what_cannot_be_exported_is_refused_clearly(model, options, message):
    with pytest.raises((ValueError, TypeError), match=message):
        to_onnx(model, **options)


def test_scan_applies_to_lstms_only():
    """scan=True builds LSTMs from a Scan; a GRU or an RNN stays ONNX's operator."""
    model = lstmkit.Sequential(lstmkit.GRU(3, 4, seed=0), lstmkit.LSTM(4, 5, seed=1), lstmkit.LastStep()).eval()
    graph = to_onnx(model, scan=True).graph
    assert [node.op_type for node in graph.node if node.op_type in ("GRU", "LSTM", "Scan")] == ["GRU", "Scan"]
    x = np.random.default_rng(0).standard_normal((6, 2, 3)).astype(np.float32)
    assert_outputs(session(model, scan=True).run(None, {"input": x}), [model(x)], ["output"])


def test_a_folder_is_not_a_file_name(tmp_path):
    with pytest.raises(ValueError, match="is a folder"):
        to_onnx(lstmkit.LSTM(3, 4), tmp_path)


def test_a_failed_export_leaves_no_file(tmp_path):
    path = tmp_path / "model.onnx"
    with pytest.raises(TypeError):
        to_onnx(lstmkit.Linear(3, 4), path)
    assert list(tmp_path.iterdir()) == []
