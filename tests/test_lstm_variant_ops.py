"""The LSTM variants' reference ops (peepholes, layer norm, forget_bias, zoneout, per-step c
gradients) against torch autograd on the equations written again (variant_reference.py), finite
differences, and onnxruntime's LSTM operator with peepholes; with every option off, the plain op's
results bit for bit."""

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from conftest import assert_close
from onnx import TensorProto, helper
from test_gradcheck import numeric_gradient
from variant_reference import torch_lstm

from lstmkit.convert.onnx_layout import ONNX_ORDER
from lstmkit.convert.spec import reorder_blocks
from lstmkit.ops.fused import lstm_backward_fused, lstm_forward_fused
from lstmkit.ops.lstm import LSTMCache, LSTMWeights, lstm_backward, lstm_forward
from lstmkit.ops.recurrence import GateDropout, Zoneout, padding_mask, reverse_in_time

SIZES = (5, 3, 4, 5)  # T, N, I, H


def random_weights(rng, features, hidden, *, proj=0, bias=True, peephole=False, layer_norm=False, bias_c=True):
    """An :class:`LSTMWeights` with the chosen parts drawn at random (gains near 1)."""
    size = proj or hidden
    return LSTMWeights(
        weight_ih=rng.uniform(-0.6, 0.6, (4 * hidden, features)),
        weight_hh=rng.uniform(-0.6, 0.6, (4 * hidden, size)),
        bias_ih=rng.uniform(-0.5, 0.5, 4 * hidden) if bias else None,
        bias_hh=rng.uniform(-0.5, 0.5, 4 * hidden) if bias else None,
        weight_hr=rng.uniform(-0.6, 0.6, (proj, hidden)) if proj else None,
        weight_peephole=rng.uniform(-0.8, 0.8, 3 * hidden) if peephole else None,
        layer_norm_weight_ih=rng.uniform(0.6, 1.4, 4 * hidden) if layer_norm else None,
        layer_norm_weight_hh=rng.uniform(0.6, 1.4, 4 * hidden) if layer_norm else None,
        layer_norm_weight_c=rng.uniform(0.6, 1.4, hidden) if layer_norm else None,
        layer_norm_bias_c=rng.uniform(-0.5, 0.5, hidden) if layer_norm and bias_c else None,
    )


def batch_sizes_of(lengths, steps: int):
    """PyTorch's packed batch sizes (T,) of sequences of ``lengths``, sorted by decreasing length."""
    return (np.arange(steps)[:, None] < np.asarray(lengths)[None, :]).sum(axis=1)


def make_case(rng, sizes=SIZES, *, proj=0, forget_bias=0.0, zoneout=None, dropout=(), lengths=None, **variants):
    """Inputs, options and upstream gradients of one random configuration: ``sizes`` (T, N, I, H),
    ``dropout`` the masked inputs ("input", "recurrent"), ``zoneout`` "train" or "eval",
    ``lengths`` as packed batch sizes or, with ``mask_form=True``, a (T, N) mask, ``dc_steps``
    whether c at every step gets a gradient, and the rest :func:`random_weights`' keywords."""
    steps, batch, features, hidden = sizes
    size = proj or hidden
    mask_form, dc_steps = variants.pop("mask_form", False), variants.pop("dc_steps", False)
    weights = random_weights(rng, features, hidden, proj=proj, **variants)
    x = rng.standard_normal((steps, batch, features))
    h0, c0 = rng.standard_normal((batch, size)), rng.standard_normal((batch, hidden))
    masks = GateDropout(
        input=(rng.random((1, batch, features)) < 0.7) / 0.7 if "input" in dropout else None,
        recurrent=(rng.random((1, batch, size)) < 0.7) / 0.7 if "recurrent" in dropout else None,
    )
    if zoneout == "train":  # 0/1 masks, 1 = keep the previous state
        zoneout = Zoneout(
            h=(rng.random((steps, batch, size)) < 0.3).astype(float),
            c=(rng.random((steps, batch, hidden)) < 0.4).astype(float),
        )
    elif zoneout == "eval":  # the rates themselves
        zoneout = Zoneout(h=np.array(0.3), c=np.full(hidden, 0.15))
    batch_sizes = None
    if lengths is not None:
        mask = np.arange(steps)[:, None] < np.asarray(lengths)[None, :]
        batch_sizes = mask if mask_form else batch_sizes_of(lengths, steps)
    upstream = (
        rng.standard_normal((steps, batch, size)),
        rng.standard_normal((batch, size)),
        rng.standard_normal((batch, hidden)),
        rng.standard_normal((steps, batch, hidden)) if dc_steps else None,
    )
    options = {"batch_sizes": batch_sizes, "dropout": masks, "forget_bias": forget_bias, "zoneout": zoneout}
    return x, h0, c0, weights, options, upstream


def run_lstmkit(x, h0, c0, weights, options, upstream):
    """``(output, h_T, c_T, dx, dh0, dc0, dweights)`` from the reference ops."""
    output, h_last, c_last, cache = lstm_forward(x, h0, c0, weights, **options)
    doutput, dh_last, dc_last, dc_steps = upstream
    dx, dh0, dc0, dweights = lstm_backward(doutput, dh_last, dc_last, cache, dc_steps=dc_steps)
    return output, h_last, c_last, dx, dh0, dc0, dweights


def run_torch(x, h0, c0, weights, options, upstream):
    """The same from :func:`variant_reference.torch_lstm` and autograd."""
    steps, batch = x.shape[:2]
    leaves = {name: torch.tensor(w, requires_grad=True) for name, w in weights._asdict().items() if w is not None}
    inputs = [torch.tensor(a, requires_grad=True) for a in (x, h0, c0)]
    masks, zoneout = options["dropout"], options["zoneout"] or Zoneout()
    keeps = [
        None if keep is None else torch.tensor(np.broadcast_to(keep, (steps, batch, size)).copy())
        for keep, size in zip(zoneout, (h0.shape[-1], c0.shape[-1]))
    ]
    running = None if options["batch_sizes"] is None else torch.tensor(padding_mask(options["batch_sizes"], batch))
    output, h_last, c_last, c_steps = torch_lstm(
        *inputs,
        leaves,
        options["forget_bias"],
        keeps,
        [None if mask is None else torch.tensor(mask[0]) for mask in masks],
        running,
    )
    results = (output, h_last, c_last, c_steps)
    loss = sum((a * torch.tensor(g)).sum() for a, g in zip(results, upstream) if g is not None)
    loss.backward()
    grads = {name: leaf.grad.numpy() for name, leaf in leaves.items()}
    return (
        *(a.detach().numpy() for a in results[:3]),
        *(a.grad.numpy() for a in inputs),
        LSTMWeights(**{name: grads.get(name) for name in LSTMWeights._fields}),
    )


CASES = {
    "peepholes": dict(peephole=True),
    "layer_norm": dict(layer_norm=True),
    "layer_norm_no_bias_forget_bias": dict(layer_norm=True, bias=False, bias_c=False, forget_bias=1.0),
    "all_with_projection_zoneout_dropout": dict(
        proj=3, peephole=True, layer_norm=True, zoneout="train", dropout=("recurrent",), dc_steps=True
    ),
    "all_packed": dict(
        peephole=True,
        layer_norm=True,
        forget_bias=0.5,
        zoneout="train",
        dropout=("recurrent",),
        lengths=[5, 4, 2],
        dc_steps=True,
    ),
    "mask_form_eval_zoneout": dict(
        proj=2, peephole=True, bias=False, zoneout="eval", lengths=[2, 5, 3], mask_form=True, dc_steps=True
    ),
    "forget_bias_zoneout_input_dropout": dict(forget_bias=1.0, zoneout="eval", dropout=("input",), lengths=[5, 5, 1]),
    "plain_dc_steps": dict(dc_steps=True, lengths=[5, 3, 3]),
}


@pytest.mark.parametrize("name", CASES)
def test_variants_equal_torch_autograd(name):
    case = make_case(np.random.default_rng(len(name)), **CASES[name])
    actual, expected = run_lstmkit(*case), run_torch(*case)
    labels = ("output", "h_T", "c_T", "dx", "dh0", "dc0")
    for label, a, e in zip(labels, actual[:6], expected[:6]):
        assert_close(a, e, np.float64, label)
    for field, a, e in zip(LSTMWeights._fields, actual[6], expected[6]):
        assert (a is None) == (e is None), f"{field}: lstmkit {a is None}, torch {e is None}"
        if a is not None:
            assert_close(a, e, np.float64, field)


@pytest.mark.parametrize("lengths", [None, [3, 3, 1]])
def test_variants_finite_differences(lengths):
    """Every parameter's, x's and the initial state's gradient against central differences."""
    rng = np.random.default_rng(5)
    x, h0, c0, weights, options, upstream = make_case(
        rng,
        (3, 3, 2, 3),
        proj=2 if lengths is None else 0,
        peephole=True,
        layer_norm=True,
        forget_bias=0.7,
        zoneout="train",
        dropout=("recurrent",),
        lengths=lengths,
        dc_steps=True,
    )

    def loss():  # c at every step counts where the sequence runs, as the output does
        output, h_last, c_last, cache = lstm_forward(x, h0, c0, weights, **options)
        c_steps = cache.c[1:] if lengths is None else padding_mask(options["batch_sizes"], 3)[..., None] * cache.c[1:]
        return float(sum(np.sum(a * g) for a, g in zip((output, h_last, c_last, c_steps), upstream)))

    *_, dx, dh0, dc0, dweights = run_lstmkit(x, h0, c0, weights, options, upstream)
    for name, gradient in dweights._asdict().items():
        parameter = getattr(weights, name)
        if parameter is not None:
            np.testing.assert_allclose(gradient, numeric_gradient(loss, parameter), rtol=1e-6, atol=1e-8, err_msg=name)
    for label, gradient, array in (("x", dx, x), ("h0", dh0, h0), ("c0", dc0, c0)):
        np.testing.assert_allclose(gradient, numeric_gradient(loss, array), rtol=1e-6, atol=1e-8, err_msg=label)


def _onnx_lstm(directions: int, hidden: int, features: int):
    """An onnxruntime session of one LSTM node with every input fed: X, W, R, B, sequence_lens,
    initial_h, initial_c, P; outputs Y (T, D, N, H), Y_h and Y_c (D, N, H)."""
    names = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"]
    shapes = {
        "X": ["T", "N", features],
        "W": [directions, 4 * hidden, features],
        "R": [directions, 4 * hidden, hidden],
        "B": [directions, 8 * hidden],
        "sequence_lens": ["N"],
        "initial_h": [directions, "N", hidden],
        "initial_c": [directions, "N", hidden],
        "P": [directions, 3 * hidden],
    }
    inputs = [
        helper.make_tensor_value_info(name, TensorProto.INT32 if name == "sequence_lens" else TensorProto.FLOAT, shape)
        for name, shape in shapes.items()
    ]
    final = [directions, "N", hidden]
    outputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
        for name, shape in (("Y", ["T", directions, "N", hidden]), ("Y_h", final), ("Y_c", final))
    ]
    direction = "bidirectional" if directions == 2 else "forward"
    node = helper.make_node("LSTM", names, ["Y", "Y_h", "Y_c"], hidden_size=hidden, direction=direction)
    model = helper.make_model(
        helper.make_graph([node], "lstm", inputs, outputs), opset_imports=[helper.make_opsetid("", 14)], ir_version=8
    )
    onnx.checker.check_model(model)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _onnx_gates(array):
    """PyTorch's gate blocks (i, f, g, o) in ONNX's order (i, o, f, c)."""
    return reorder_blocks(array, ONNX_ORDER["LSTM"])


@pytest.mark.parametrize("directions", [1, 2])
@pytest.mark.parametrize("lengths,mask_form", [(None, False), ([5, 3, 2, 2], False), ([2, 5, 1, 4], True)])
def test_peepholes_equal_onnxruntime(directions, lengths, mask_form):
    """ONNX's LSTM with P (peepholes i, o, f) and sequence_lens: Y (zero past each end), Y_h and Y_c
    at each sequence's last step; its reverse direction is lstmkit's op on each sequence reversed."""
    rng = np.random.default_rng(directions + 10 * len(lengths or []))
    steps, batch, features, hidden = 5, 4, 3, 6
    f32 = lambda a: a.astype(np.float32)  # noqa: E731  onnxruntime's LSTM runs in float32
    x = f32(rng.standard_normal((steps, batch, features)))
    h0, c0 = (f32(rng.standard_normal((directions, batch, hidden))) for _ in range(2))
    weights = [
        LSTMWeights(*(None if w is None else f32(w) for w in random_weights(rng, features, hidden, peephole=True)))
        for _ in range(directions)
    ]
    batch_sizes, lens = None, np.full(batch, steps, dtype=np.int32)
    if lengths is not None:
        lens = np.array(lengths, dtype=np.int32)
        mask = np.arange(steps)[:, None] < lens[None, :]
        batch_sizes = mask if mask_form else batch_sizes_of(lengths, steps)
    feeds = {
        "X": x,
        "W": np.stack([_onnx_gates(w.weight_ih) for w in weights]),
        "R": np.stack([_onnx_gates(w.weight_hh) for w in weights]),
        "B": np.stack([np.concatenate([_onnx_gates(w.bias_ih), _onnx_gates(w.bias_hh)]) for w in weights]),
        "sequence_lens": lens,
        "initial_h": h0,
        "initial_c": c0,
        "P": np.stack([np.concatenate([np.split(w.weight_peephole, 3)[k] for k in (0, 2, 1)]) for w in weights]),
    }
    y, y_h, y_c = _onnx_lstm(directions, hidden, features).run(None, feeds)
    for d, w in enumerate(weights):
        wide = LSTMWeights(*(None if a is None else a.astype(np.float64) for a in w))
        source = x if d == 0 else reverse_in_time(x, batch_sizes)
        output, h_last, c_last, _ = lstm_forward(
            source.astype(np.float64), h0[d].astype(np.float64), c0[d].astype(np.float64), wide, False, batch_sizes
        )
        output = output if d == 0 else reverse_in_time(output, batch_sizes)
        for label, actual, expected in (("Y", output, y[:, d]), ("Y_h", h_last, y_h[d]), ("Y_c", c_last, y_c[d])):
            np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5, err_msg=f"{label}, direction {d}")


@pytest.mark.parametrize("lengths", [None, [4, 2, 2]])
def test_options_off_are_the_plain_op_bit_for_bit(lengths):
    """Explicit off values (forget_bias=0.0, no zoneout, dc_steps None), and neutral variants (zero
    peepholes, zoneout keeping nothing, zero dc_steps), give the plain op's arrays exactly."""
    x, h0, c0, weights, options, upstream = make_case(
        np.random.default_rng(3), (4, 3, 2, 3), proj=2, dropout=("recurrent",), lengths=lengths
    )
    plain_options = {"batch_sizes": options["batch_sizes"], "dropout": options["dropout"]}
    output, h_last, c_last, cache = lstm_forward(x, h0, c0, weights, True, **plain_options)
    expected = (output, h_last, c_last, *lstm_backward(*upstream[:3], cache))
    expected = [a.copy() for a in expected[:6]] + [LSTMWeights(*(a.copy() for a in expected[6][:5]))]
    neutral = (
        (weights, dict(forget_bias=0.0, zoneout=None), None),
        (weights, dict(zoneout=Zoneout()), None),
        (weights, dict(zoneout=Zoneout(h=np.zeros(2), c=np.zeros((4, 3, 3)))), np.zeros((4, 3, 3))),
        (weights._replace(weight_peephole=np.zeros(9)), {}, None),
    )
    for variant, extra, dc_steps in neutral:
        output, h_last, c_last, cache = lstm_forward(x, h0, c0, variant, **plain_options, **extra)
        actual = (output, h_last, c_last, *lstm_backward(*upstream[:3], cache, dc_steps=dc_steps))
        for a, e in zip(actual[:6], expected[:6]):
            assert np.array_equal(a, e), extra
        for a, e in zip(actual[6][:5], expected[6]):
            assert np.array_equal(a, e), extra


def test_fused_op_routes_variants_to_the_reference():
    """The fast path's guard: a weight of a variant sends the call to the reference op, whose
    results (and backward) it returns unchanged."""
    for variant in (dict(peephole=True), dict(layer_norm=True, bias_c=False)):
        x, h0, c0, weights, _, upstream = make_case(np.random.default_rng(8), **variant)
        *fused, cache = lstm_forward_fused(x, h0, c0, weights)
        *reference, reference_cache = lstm_forward(x, h0, c0, weights)
        assert isinstance(cache, LSTMCache)
        for a, e in zip(fused, reference):
            assert np.array_equal(a, e)
        gradients = lstm_backward_fused(*upstream[:3], cache)
        expected = lstm_backward(*upstream[:3], reference_cache)
        for a, e in zip((*gradients[:3], *gradients[3]), (*expected[:3], *expected[3])):
            assert (a is None and e is None) or np.array_equal(a, e)


def _weights_with(**changes):
    return random_weights(np.random.default_rng(0), 2, 3)._replace(**changes)


@pytest.mark.parametrize(
    "weights,options,message",
    [
        (_weights_with(weight_peephole=np.zeros(6)), {}, r"weight_peephole must have shape \(9,\).*got shape \(6,\)"),
        (_weights_with(layer_norm_weight_ih=np.ones(12)), {}, "layer norm needs all of"),
        (_weights_with(layer_norm_weight_c=np.ones(4)), {}, r"layer_norm_weight_c must have shape \(3,\)"),
        (_weights_with(layer_norm_bias_c=np.ones(3)), {}, "layer_norm_bias_c needs layer norm's gains"),
        (_weights_with(), {"zoneout": Zoneout(h=np.zeros((4, 2, 5)))}, r"zoneout.h must broadcast to .* \(4, 2, 3\)"),
        (_weights_with(), {"zoneout": Zoneout(c=np.full(3, 1.5))}, r"zoneout.c must hold fractions in \[0, 1\]"),
        (_weights_with(), {"zoneout": (0.1, 0.1)}, "zoneout must be a Zoneout or None, got tuple"),
        (_weights_with(), {"forget_bias": float("nan")}, "forget_bias must be a finite number, got nan"),
        (_weights_with(), {"forget_bias": True}, "forget_bias must be a number, got True of type bool$"),
        (_weights_with(), {"forget_bias": np.True_}, "forget_bias must be a number, got np.True_ of type bool"),
        (_weights_with(), {"forget_bias": "1"}, "forget_bias must be a number, got '1' of type str$"),
        (_weights_with(), {"forget_bias": np.ones(3)}, r"forget_bias must be a number, got array\(.* of type ndarray$"),
    ],
)
def test_bad_variant_inputs_raise_clear_errors(weights, options, message):
    rng = np.random.default_rng(1)
    x, h0, c0 = rng.standard_normal((4, 2, 2)), rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    error = TypeError if "must be a number" in message or "must be a Zoneout" in message else ValueError
    with pytest.raises(error, match="^lstm_forward: " + message):
        lstm_forward(x, h0, c0, weights, **options)


def test_forget_bias_of_a_numpy_scalar_is_the_same_number(rng):
    x, h0, c0, weights, _, _ = make_case(rng)
    expected = lstm_forward(x, h0, c0, weights, forget_bias=0.5)
    for given in (np.float64(0.5), np.float32(0.5), 0.5):
        for a, e in zip(lstm_forward(x, h0, c0, weights, forget_bias=given)[:3], expected[:3]):
            np.testing.assert_array_equal(a, e)


def test_dc_steps_of_the_wrong_shape_raises():
    rng = np.random.default_rng(2)
    x, h0, c0 = rng.standard_normal((4, 2, 2)), rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    _, h_last, c_last, cache = lstm_forward(x, h0, c0, _weights_with())
    with pytest.raises(ValueError, match=r"dc_steps must have shape \(T, N, H\) = \(4, 2, 3\), got shape \(4, 2\)"):
        lstm_backward(np.zeros((4, 2, 3)), h_last, c_last, cache, dc_steps=np.zeros((4, 2)))


def test_weights_keep_their_first_five_positions():
    """The fast path builds ``LSTMWeights(*gradients)`` positionally: the variants come after them."""
    assert LSTMWeights._fields[:5] == ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
    assert LSTMWeights(1, 2, 3, 4)[5:] == (None,) * 5
