"""The LSTM variants' fast path (:mod:`lstmkit.ops.fused.variants`) equals the reference ops on
random inputs (float64 to 1e-12, float32 to 1e-5 of the largest magnitude), hands the calls it
does not support to them, and is what a layer with those variants runs with backend="auto"."""

import itertools
import zlib

import numpy as np
import pytest

import lstmkit
from lstmkit.ops.fused.variants import VariantLSTMCache, lstm_variant_backward_fused, lstm_variant_forward_fused
from lstmkit.ops.lstm import LSTMCache, LSTMWeights, lstm_backward, lstm_forward
from lstmkit.ops.recurrence import GateDropout, Zoneout

LAYER_NORM = ("layer_norm_weight_ih", "layer_norm_weight_hh", "layer_norm_weight_c")
# (T, N, I, H): whole loops compiled (W_hh transposed; as stored, H > 128, with a BLAS backward),
# and BLAS loops (N H 4H above the small-layer limits)
SIZES = [(1, 1, 3, 2), (7, 4, 5, 6), (12, 2, 5, 40), (3, 1, 4, 130), (6, 20, 5, 64), (4, 9, 5, 150)]
VARIANTS = {
    "peepholes": dict(peepholes=True),
    "zoneout": dict(zoneout=True),
    "recurrent_dropout": dict(recurrent_dropout=True),
    "forget_bias": dict(forget_bias=1.25),
    "all": dict(peepholes=True, zoneout=True, recurrent_dropout=True, forget_bias=-0.5),
    "plain": {},
    "layer_norm": dict(layer_norm=True),
    "layer_norm_all": dict(layer_norm=True, peepholes=True, zoneout=True, recurrent_dropout=True, forget_bias=0.75),
}
CASES = list(itertools.product([np.float64, np.float32], SIZES, VARIANTS, [True, False]))


def random_call(rng, dtype, sizes, peepholes=False, zoneout=False, recurrent_dropout=False, forget_bias=0.0,
                training=True, bias=True, layer_norm=False):  # fmt: skip
    """``(args, options, upstream)`` of one forward call and its backward's upstream gradients."""
    steps, batch, features, hidden = sizes
    scale = 1.5 / np.sqrt(hidden)  # some gates saturated
    shapes = [(4 * hidden, features), (4 * hidden, hidden)] + ([(4 * hidden,)] * 2 if bias else [])
    weights = LSTMWeights(*((rng.standard_normal(shape) * scale).astype(dtype) for shape in shapes))
    if peepholes:
        weights = weights._replace(weight_peephole=rng.standard_normal(3 * hidden).astype(dtype))
    if layer_norm:  # gains in (0.8, 1.2), b_c in (-0.2, 0.2): far from 0, where the norms' rounding grows
        gains = [rng.uniform(0.8, 1.2, size) for size in (4 * hidden, 4 * hidden, hidden)]
        shift = rng.uniform(-0.2, 0.2, hidden) if bias else None
        weights = weights._replace(**dict(zip(LAYER_NORM, [g.astype(dtype) for g in gains])))
        weights = weights._replace(layer_norm_bias_c=None if shift is None else shift.astype(dtype))
    x = (rng.standard_normal((steps, batch, features)) * 2).astype(dtype)
    h0, c0 = (rng.standard_normal((batch, hidden)).astype(dtype) for _ in range(2))
    dropout = None
    if recurrent_dropout:
        dropout = GateDropout(recurrent=((rng.random((1, batch, hidden)) < 0.7) / 0.7).astype(dtype))
    options = dict(forget_bias=forget_bias)
    if zoneout and training:  # 0/1 masks, fresh at every step
        shape = (steps, batch, hidden)
        options["zoneout"] = Zoneout(*((rng.random(shape) < rate).astype(dtype) for rate in (0.3, 0.2)))
    elif zoneout:  # the rates, broadcast
        options["zoneout"] = Zoneout(np.asarray(0.3, dtype), np.asarray(0.2, dtype))
    shapes = [(steps, batch, hidden), (batch, hidden), (batch, hidden)]
    upstream = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    return (x, h0, c0, weights, True, None, dropout), options, upstream


def assert_equal_within(actual, expected, dtype):
    if expected is None:
        assert actual is None
        return
    tolerance = 1e-12 if dtype == np.float64 else 1e-5 * max(1.0, float(np.max(np.abs(expected))))
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    assert float(np.max(np.abs(actual - expected))) <= tolerance


def gradients(dx, dh0, dc0, dweights):
    return [dx, dh0, dc0, *dweights]


@pytest.mark.parametrize("dtype,sizes,variant,training", CASES)
def test_fused_variants_equal_reference(dtype, sizes, variant, training):
    rng = np.random.default_rng(zlib.crc32(repr((sizes, variant, training)).encode()))  # the same in every process
    args, options, (doutput, dh, dc) = random_call(rng, dtype, sizes, training=training, **VARIANTS[variant])
    *expected, reference_cache = lstm_forward(*args, **options)
    *actual, cache = lstm_variant_forward_fused(*args, **options)
    assert isinstance(cache, VariantLSTMCache)
    for a, e in zip(actual, expected):
        assert_equal_within(a, e, dtype)
    expected_grads = lstm_backward(doutput, dh, dc, reference_cache)
    actual_grads = lstm_variant_backward_fused(doutput, dh, dc, cache)
    for a, e in zip(gradients(*actual_grads), gradients(*expected_grads)):
        assert_equal_within(a, e, dtype)
    # without a cache: the same outputs and final states, no cache
    no_cache = (*args[:4], False, *args[5:])
    *actual, cache = lstm_variant_forward_fused(*no_cache, **options)
    assert cache is None
    for a, e in zip(actual, expected):
        assert_equal_within(a, e, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sizes", [(7, 4, 5, 6), (4, 9, 5, 150), (6, 20, 5, 64)])
@pytest.mark.parametrize("variant", ["all", "layer_norm", "layer_norm_all"])
def test_fused_variants_without_bias_and_with_dc_steps(dtype, sizes, variant):
    rng = np.random.default_rng(7)
    args, options, (doutput, dh, dc) = random_call(rng, dtype, sizes, bias=False, **VARIANTS[variant])
    dc_steps = rng.standard_normal(doutput.shape).astype(dtype)
    *expected, reference_cache = lstm_forward(*args, **options)
    *actual, cache = lstm_variant_forward_fused(*args, **options)
    for a, e in zip(actual, expected):
        assert_equal_within(a, e, dtype)
    expected_grads = lstm_backward(doutput, dh, dc, reference_cache, dc_steps)
    actual_grads = lstm_variant_backward_fused(doutput, dh, dc, cache, dc_steps)
    for a, e in zip(gradients(*actual_grads), gradients(*expected_grads)):
        assert_equal_within(a, e, dtype)


def _batch_sizes(args, options):
    return (*args[:5], np.array([3, 3, 2, 1, 1, 1, 1]), args[6]), options


def _projection(args, options):
    x, h0, c0, weights, *rest = args
    rng = np.random.default_rng(3)
    hidden, proj = c0.shape[-1], 3
    weights = weights._replace(
        weight_hh=weights.weight_hh[:, :proj].copy(), weight_hr=rng.standard_normal((proj, hidden)).astype(x.dtype)
    )
    zoneout = options["zoneout"]
    options = dict(options, zoneout=zoneout._replace(h=zoneout.h[..., :proj]))  # h is (T, N, P)
    return (x, h0[:, :proj].copy(), c0, weights, *rest[:2], None), options


def _per_gate_masks(args, options):
    x, h0, *rest = args
    masks = (np.random.default_rng(4).random((4, *h0.shape)) < 0.7).astype(x.dtype) / 0.7
    return (x, h0, *rest[:4], GateDropout(recurrent=masks)), options


def _input_dropout(args, options):
    x, *rest = args
    masks = (np.random.default_rng(5).random((1, *x.shape[1:])) < 0.7).astype(x.dtype) / 0.7
    return (x, *rest[:5], GateDropout(input=masks, recurrent=args[6].recurrent)), options


def _mixed_dtypes(args, options):
    x, h0, c0, weights, *rest = args
    return (x.astype(np.float32), h0, c0, weights, *rest), options


FALLBACKS = {
    "batch_sizes": _batch_sizes,
    "weight_hr": _projection,
    "K=4 recurrent masks": _per_gate_masks,
    "input dropout": _input_dropout,
    "mixed dtypes": _mixed_dtypes,
}


@pytest.mark.parametrize("case", list(FALLBACKS))
def test_unsupported_calls_run_the_reference(case):
    rng = np.random.default_rng(11)
    args, options, (doutput, dh, dc) = random_call(rng, np.float64, (7, 3, 5, 6), **VARIANTS["all"])
    args, options = FALLBACKS[case](args, options)
    *expected, reference_cache = lstm_forward(*args, **options)
    *actual, cache = lstm_variant_forward_fused(*args, **options)
    assert isinstance(cache, LSTMCache)
    for a, e in zip(actual, expected):
        np.testing.assert_array_equal(a, e)
    dh = dh[:, : args[1].shape[-1]]
    doutput = doutput[..., : args[1].shape[-1]]
    for a, e in zip(
        gradients(*lstm_variant_backward_fused(doutput, dh, dc, cache)),
        gradients(*lstm_backward(doutput, dh, dc, reference_cache)),
    ):
        if e is None:
            assert a is None
        else:
            np.testing.assert_array_equal(a, e)


def test_errors_are_the_reference_ops():
    rng = np.random.default_rng(12)
    args, options, _ = random_call(rng, np.float64, (4, 2, 3, 5), **VARIANTS["all"])
    with pytest.raises(ValueError, match="forget_bias must be a finite number"):
        lstm_variant_forward_fused(*args, **dict(options, forget_bias=float("inf")))
    with pytest.raises(TypeError, match="forget_bias must be a number"):
        lstm_variant_forward_fused(*args, **dict(options, forget_bias=True))
    with pytest.raises(ValueError, match="zoneout.h must hold fractions"):
        lstm_variant_forward_fused(*args, **dict(options, zoneout=Zoneout(np.asarray(1.5), None)))
    weights = args[3]._replace(weight_peephole=np.zeros(7))
    with pytest.raises(ValueError, match="weight_peephole must have shape"):
        lstm_variant_forward_fused(*args[:3], weights, *args[4:], **options)


def assert_backends_agree(dtype, training, options, hidden=8, seed=3, changed=(), inputs=None):
    """A 2-layer bidirectional LSTM(**options) caches VariantLSTMCache with "auto" and "fast",
    LSTMCache with "reference", and the three give the same outputs and gradients. ``changed``:
    prefixes of parameters moved from their initial values (each by its own draw); ``inputs``:
    ``(x, hx)``, else x drawn from seed 0 and no hx."""
    x, hx = inputs or (np.random.default_rng(0).standard_normal((9, 4, 5)).astype(dtype), None)
    results, caches = {}, {}
    for backend in ("auto", "reference", "fast"):
        layer = lstmkit.LSTM(5, hidden, num_layers=2, bidirectional=True, dtype=dtype, seed=seed, backend=backend,
                             **options)  # fmt: skip
        for name, parameter in layer.named_parameters():
            if name.startswith(changed):
                parameter.data += np.random.default_rng(len(name)).uniform(-0.3, 0.3, parameter.data.shape)
        layer.train(training)
        output, (h_n, c_n) = layer(x, hx)
        caches[backend] = layer._saved[-1].saved.caches[0][0]
        dx, (dh_0, dc_0) = layer.backward(np.ones_like(output), (np.ones_like(h_n), np.ones_like(c_n)))
        grads = [parameter.grad.copy() for _, parameter in layer.named_parameters()]
        results[backend] = [output, h_n, c_n, dx, dh_0, dc_0, *grads]
    assert isinstance(caches["auto"], VariantLSTMCache) and isinstance(caches["fast"], VariantLSTMCache)
    assert isinstance(caches["reference"], LSTMCache)
    for backend in ("auto", "fast"):
        for actual, expected in zip(results[backend], results["reference"]):
            assert_equal_within(actual, expected, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("training", [True, False])
def test_layer_with_variants_runs_the_fused_variant_ops(dtype, training):
    options = dict(peepholes=True, zoneout=0.1, recurrent_dropout=0.2, runtime_forget_bias=0.5)
    assert_backends_agree(dtype, training, options)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_layer_with_layer_norm_runs_the_fused_variant_ops(dtype, training, bias):
    # H = 32 and a random initial state: from h0 = 0, LN(W_hh h0) normalises a constant row (rstd =
    # 1/sqrt(eps)), which scales dh0 to about 1e4 and both backends' rounding with it. Even so the
    # layer's gradients are ill-conditioned: a 1-ulp change of the weights moves the reference's own
    # by about 1e-14 (float64) and 3e-6 (float32) of their largest magnitude (5e-5 at H = 8), so
    # these inputs (seed 1) sit at about half the tolerance and other seeds come within 1-3x of it
    rng = np.random.default_rng(1)
    x = rng.standard_normal((9, 4, 5)).astype(dtype)
    hx = tuple(rng.standard_normal((4, 4, 32)).astype(dtype) for _ in range(2))
    options = dict(layer_norm=True, peepholes=True, zoneout=0.1, recurrent_dropout=0.2, bias=bias)
    assert_backends_agree(dtype, training, options, hidden=32, seed=4, changed=("layer_norm",), inputs=(x, hx))


def test_packed_input_still_runs_the_reference():
    layer = lstmkit.LSTM(5, 8, layer_norm=True, peepholes=True, dtype=np.float64, seed=1)
    layer(np.ones((4, 2, 5)), lengths=[4, 3])  # variable lengths: the fused variant op hands it on
    assert isinstance(layer._saved[-1].saved.caches[0][0], LSTMCache)
    layer = lstmkit.LSTM(5, 8, peepholes=True, dtype=np.float64, seed=1)
    layer(np.ones((4, 2, 5)), lengths=[4, 3])
    assert isinstance(layer._saved[-1].saved.caches[0][0], LSTMCache)
