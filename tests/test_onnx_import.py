"""from_onnx: torch's own ONNX export of nn.LSTM / GRU / RNN read back into lstmkit computes what torch computes;
a hand-built LSTM node with peepholes computes in lstmkit what it computes in onnxruntime; what lstmkit cannot
hold is refused, saying why."""

import io
import warnings

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import lstmkit
from lstmkit.convert.onnx_import import from_onnx, onnx_layers
from lstmkit.convert.spec import LayerSpec

INPUT, HIDDEN, STEPS, BATCH = 3, 5, 6, 2
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def _torch_onnx(module: torch.nn.Module, x: torch.Tensor) -> bytes:
    """torch's legacy (TorchScript) ONNX export of ``module`` run on ``x``, serialized."""
    outputs = ["output", "h_n", "c_n"] if isinstance(module, torch.nn.LSTM) else ["output", "h_n"]
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), buffer, dynamo=False, input_names=["input"], output_names=outputs)
    return buffer.getvalue()


def _assert_same_as_torch(kind, options, layers, bidirectional, bias, batch_first=False):
    torch.manual_seed(layers * 4 + bidirectional * 2 + bias)
    module = getattr(torch.nn, kind)(
        INPUT, HIDDEN, layers, bias=bias, batch_first=batch_first, bidirectional=bidirectional, **options
    )
    shape = (BATCH, STEPS, INPUT) if batch_first else (STEPS, BATCH, INPUT)
    x = torch.randn(shape)
    with torch.no_grad():
        expected_output, expected_state = module(x)
    layer = from_onnx(_torch_onnx(module, x), batch_first=batch_first)
    assert type(layer).__name__ == kind and layer.num_layers == layers and layer.bidirectional == bidirectional
    assert layer.bias == bias and getattr(layer, "nonlinearity", "tanh") == options.get("nonlinearity", "tanh")
    with lstmkit.no_grad():
        output, state = layer(x.numpy())
    states = state if kind == "LSTM" else (state,)
    expected_states = expected_state if kind == "LSTM" else (expected_state,)
    np.testing.assert_allclose(output, expected_output.numpy(), rtol=0, atol=1e-5)
    for actual, expected in zip(states, expected_states, strict=True):
        np.testing.assert_allclose(actual, expected.numpy(), rtol=0, atol=1e-5)
    return layer, x.numpy(), expected_output.numpy()


KINDS = [("LSTM", {}), ("GRU", {}), ("RNN", {"nonlinearity": "tanh"}), ("RNN", {"nonlinearity": "relu"})]


@pytest.mark.parametrize("kind,options", KINDS, ids=["LSTM", "GRU", "RNN_TANH", "RNN_RELU"])
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (1, True), (2, False), (2, True)])
def test_torch_export_read_back_computes_what_torch_computes(kind, options, layers, bidirectional):
    _assert_same_as_torch(kind, options, layers, bidirectional, bias=True)


@pytest.mark.parametrize("kind,options", KINDS, ids=["LSTM", "GRU", "RNN_TANH", "RNN_RELU"])
def test_torch_export_without_bias(kind, options):
    _assert_same_as_torch(kind, options, layers=2, bidirectional=True, bias=False)


def test_batch_first_and_the_comparison_sees_a_wrong_weight():
    layer, x, expected = _assert_same_as_torch("LSTM", {}, 2, True, True, batch_first=True)
    layer.weight_hh_l1_reverse.data[0, 0] += 0.1  # one weight off: the comparison must notice
    with lstmkit.no_grad():
        output = layer(x)[0]
    assert np.max(np.abs(output - expected)) > 1e-4


# ---- hand-built graphs ---------------------------------------------------------------------
def _weights(rng, op, input_size, hidden, directions=1, bias=True, peepholes=False):
    rows = GATES[op] * hidden
    arrays = {
        "W": rng.uniform(-0.5, 0.5, (directions, rows, input_size)),
        "R": rng.uniform(-0.5, 0.5, (directions, rows, hidden)),
    }
    if bias:
        arrays["B"] = rng.uniform(-0.5, 0.5, (directions, 2 * rows))
    if peepholes:
        arrays["P"] = rng.uniform(-0.5, 0.5, (directions, 3 * hidden))
    return {key: value.astype(np.float32) for key, value in arrays.items()}


def _model(layers, *, x_shape=("T", "N", INPUT), constant_nodes=(), opset=14):
    """A graph of recurrent nodes, each ``(op, weights, attributes)`` reading the previous one's Y (as given);
    weights named in ``constant_nodes`` are Constant nodes, the others initializers."""
    nodes, initializers, source, outputs = [], [], "X", []
    for index, (op, weights, attributes) in enumerate(layers):
        inputs = [source]
        for key, position in (("W", 1), ("R", 2), ("B", 3), ("P", 7)):
            if key not in weights:
                continue
            inputs += [""] * (position - len(inputs)) + [f"{key}{index}"]
            tensor = numpy_helper.from_array(weights[key], f"{key}{index}")
            if key in constant_nodes:
                nodes.append(helper.make_node("Constant", [], [f"{key}{index}"], value=tensor))
            else:
                initializers.append(tensor)
        source = f"Y{index}"
        state_outputs = [f"Y_h{index}"] + ([f"Y_c{index}"] if op == "LSTM" else [])
        nodes.append(helper.make_node(op, inputs, [source, *state_outputs], **attributes))
        outputs = [source, *state_outputs]
    graph = helper.make_graph(
        nodes,
        "recurrent",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(x_shape))],
        [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, list("abcd"[: 3 + (k == 0)]))
            for k, name in enumerate(outputs)
        ],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _run_onnxruntime(model, x):
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"X": x})


def test_peepholes_computes_what_onnxruntime_computes():
    rng = np.random.default_rng(0)
    weights = _weights(rng, "LSTM", INPUT, HIDDEN, directions=2, peepholes=True)
    attributes = {"hidden_size": HIDDEN, "direction": "bidirectional"}
    model = _model([("LSTM", weights, attributes)], constant_nodes=("R", "P"))  # both ways of storing weights
    onnx.checker.check_model(model)
    x = rng.standard_normal((STEPS, BATCH, INPUT)).astype(np.float32)
    y, y_h, y_c = _run_onnxruntime(model, x)
    layer = from_onnx(model)
    assert layer.peepholes and layer.bidirectional
    with lstmkit.no_grad():
        output, (h_n, c_n) = layer(x)
    np.testing.assert_allclose(output, y.transpose(0, 2, 1, 3).reshape(STEPS, BATCH, -1), rtol=0, atol=1e-5)
    np.testing.assert_allclose(h_n, y_h, rtol=0, atol=1e-5)
    np.testing.assert_allclose(c_n, y_c, rtol=0, atol=1e-5)


def test_layout_1_reads_the_same_weights():
    """layout=1 changes X's and Y's layouts only (onnxruntime's CPU kernels refuse it): the layer read from it,
    batch-first, computes what onnxruntime computes with the same weights in layout 0."""
    rng = np.random.default_rng(1)
    weights = _weights(rng, "GRU", INPUT, HIDDEN)
    attributes = {"hidden_size": HIDDEN, "linear_before_reset": 1}
    x = rng.standard_normal((STEPS, BATCH, INPUT)).astype(np.float32)
    y = _run_onnxruntime(_model([("GRU", weights, attributes)]), x)[0]  # (T, D, N, H)
    layer = from_onnx(_model([("GRU", weights, {**attributes, "layout": 1})]), batch_first=True, dtype=np.float64)
    with lstmkit.no_grad():
        output = layer(x.transpose(1, 0, 2).astype(np.float64))[0]
    assert output.dtype == np.float64
    np.testing.assert_allclose(output, y[:, 0].transpose(1, 0, 2), rtol=0, atol=1e-5)


def test_a_stack_with_bias_and_peepholes_on_some_layers_fills_zeros():
    rng = np.random.default_rng(2)
    attributes = {"hidden_size": HIDDEN}
    first = _weights(rng, "LSTM", INPUT, HIDDEN, bias=False, peepholes=True)
    second = _weights(rng, "LSTM", HIDDEN, HIDDEN)
    layer = from_onnx(_model([("LSTM", first, attributes), ("LSTM", second, attributes)]))
    assert layer.bias and layer.peepholes
    assert not layer.bias_ih_l0.data.any() and not layer.weight_peephole_l1.data.any()
    assert layer.bias_ih_l1.data.any() and layer.weight_peephole_l0.data.any()


def test_onnx_layers_lists_the_nodes_with_decoded_attributes():
    rng = np.random.default_rng(3)
    model = _model([("RNN", _weights(rng, "RNN", INPUT, HIDDEN, bias=False), {"activations": ["Relu"]})])
    (node,) = onnx_layers(model)
    assert node.op_type == "RNN" and node.attributes == {"activations": ["Relu"]} and set(node.weights) == {"W", "R"}
    assert from_onnx(model).nonlinearity == "relu"


# ---- refusals ------------------------------------------------------------------------------
def _lstm(rng, input_size=INPUT, **attributes):
    return ("LSTM", _weights(rng, "LSTM", input_size, HIDDEN), {"hidden_size": HIDDEN, **attributes})


@pytest.mark.parametrize(
    "layers,match",
    [
        (lambda rng: [("GRU", _weights(rng, "GRU", INPUT, HIDDEN), {})], "linear_before_reset=1"),
        (lambda rng: [_lstm(rng, direction="reverse")], "expected direction 'forward' or 'bidirectional'"),
        (lambda rng: [_lstm(rng), _lstm(rng, input_size=2 * HIDDEN)], r"D \* hidden_size = 1 \* 5.*not one stack"),
        (
            lambda rng: [_lstm(rng), ("GRU", _weights(rng, "GRU", HIDDEN, HIDDEN), {"linear_before_reset": 1})],
            "layers of one kind and direction",
        ),
        (lambda rng: [_lstm(rng, clip=3.0)], "expected no clip"),
        (lambda rng: [_lstm(rng, input_forget=1)], "expected input_forget=0"),
        (lambda rng: [_lstm(rng, activations=["Sigmoid", "Tanh", "Relu"])], "expected the default activations"),
        (lambda rng: [("RNN", _weights(rng, "RNN", INPUT, HIDDEN), {"activations": ["Sigmoid"]})], "Tanh or Relu"),
        (lambda rng: [_lstm(rng, hidden_size=HIDDEN + 1)], r"expected hidden_size=5 \(R's shape \(1, 20, 5\)\), got 6"),
        (lambda rng: [_lstm(rng, direction="bidirectional")], r"'bidirectional' expects W of 2 direction\(s\)"),
    ],
    ids=["lbr", "reverse", "stack_sizes", "kinds", "clip", "input_forget", "activations", "rnn", "hidden", "D"],
)
def test_what_lstmkit_cannot_hold_is_refused(layers, match):
    with pytest.raises(ValueError, match=match):
        from_onnx(_model(layers(np.random.default_rng(4))))


def test_a_model_without_recurrent_nodes_is_refused():
    graph = helper.make_graph(
        [helper.make_node("Relu", ["X"], ["Y"])],
        "plain",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2])],
    )
    with pytest.raises(ValueError, match=r"expected at least one LSTM, GRU or RNN node.*got none \(its ops: Relu"):
        from_onnx(helper.make_model(graph))


def test_weights_computed_at_run_time_are_refused():
    model = _model([_lstm(np.random.default_rng(5))])
    model.graph.initializer.pop(0)  # W0 is now nobody's constant
    with pytest.raises(ValueError, match="expected input W to be a constant"):
        from_onnx(model)


def test_a_file_that_is_not_onnx_is_refused(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\xff\xff not a protobuf \x00")
    with pytest.raises(ValueError, match="is not a readable ONNX model"):
        from_onnx(path)
    with pytest.raises(ValueError, match="no file at"):
        from_onnx(tmp_path / "missing.onnx")


@pytest.mark.parametrize(
    "make",
    [
        lambda: lstmkit.LSTM(INPUT, [4, 6], 2, bidirectional=True, peepholes=True, seed=1),
        lambda: lstmkit.GRU(INPUT, HIDDEN, 2, bias=False, seed=2),
        lambda: lstmkit.RNN(INPUT, HIDDEN, nonlinearity="relu", bidirectional=True, seed=3),
    ],
    ids=["LSTM_peepholes_sizes", "GRU_no_bias", "RNN_RELU"],
)
def test_lstmkit_export_read_back_gives_the_same_weights(make):
    from lstmkit.export import to_onnx

    layer = make()
    read = from_onnx(to_onnx(layer))
    assert LayerSpec.of(read) == LayerSpec.of(layer)
    for name, array in layer.state_dict().items():
        np.testing.assert_array_equal(read.state_dict()[name], array)
