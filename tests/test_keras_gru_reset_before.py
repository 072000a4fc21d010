"""Keras' GRU(reset_after=False): the reference op against its equations written again in torch
(autograd for the gradients), lstmkit.keras.GRU(reset_after=False) against keras.layers.GRU
(torch backend), and lstmkit.convert's Keras layout of it against a real keras.Sequential.

Keras 3's GRUCell.call (keras/src/layers/rnn/gru.py), reset_after=False: one bias of 3U,
``recurrent_h = matmul(r * h_tm1_h, recurrent_kernel[:, 2U:])`` with ``h_tm1_h = h_tm1 *
rec_dp_mask[2]``, ``hh = tanh(x_h + recurrent_h)``, ``h = z * h_tm1 + (1 - z) * hh``.
"""

import itertools

import keras
import numpy as np
import pytest
import torch
from keras_reference import MASKS, as_list, keras_call, make_pair, random_weights
from test_keras_layers import _check_gradients
from test_keras_recurrent_dropout import _as_keras_masks, _hold_masks_fixed, _used_masks

import lstmkit
import lstmkit.keras as lk
from lstmkit.convert.keras_layout import from_keras_weights, keras_shapes, to_keras_weights
from lstmkit.convert.spec import LayerSpec
from lstmkit.explain import keras_parameter_count
from lstmkit.keras._formats import GRU_RESET_BEFORE_FORMAT
from lstmkit.ops.gru import GRUCache, GRUWeights, gru_backward, gru_forward
from lstmkit.ops.recurrence import GateDropout, Zoneout, padding_mask

STEPS, BATCH, FEATURES, HIDDEN = 5, 3, 2, 4


# ---- the reference op against the equations in torch ----------------------------------------
def torch_gru_reset_before(x, h0, w, input_masks=None, recurrent_masks=None, keep=None, running=None):
    """``(output, h_T)`` of Keras' reset_after=False GRU in PyTorch's layout (rows r, z, n), one
    Python step at a time: masks (K, N, ·) with K 1 or 3 (block k's input times mask k), ``keep``
    zoneout's (T, N, H), ``running`` (T, N) booleans (state carried, output zero)."""
    hidden = h0.shape[-1]
    w_ir, w_iz, w_in = w["weight_ih"].split(hidden)
    w_hr, w_hz, w_hn = w["weight_hh"].split(hidden)
    bias = w["bias_ih"] + w["bias_hh"] if w.get("bias_ih") is not None else torch.zeros(3 * hidden, dtype=x.dtype)
    b_r, b_z, b_n = bias.split(hidden)

    def masked(a, masks, block):
        return a if masks is None else a * masks[block if len(masks) == 3 else 0]

    h, outputs = h0, []
    for t in range(x.shape[0]):
        x_t = x[t]
        r = torch.sigmoid(masked(x_t, input_masks, 0) @ w_ir.T + b_r + masked(h, recurrent_masks, 0) @ w_hr.T)
        z = torch.sigmoid(masked(x_t, input_masks, 1) @ w_iz.T + b_z + masked(h, recurrent_masks, 1) @ w_hz.T)
        n = torch.tanh(masked(x_t, input_masks, 2) @ w_in.T + b_n + (r * masked(h, recurrent_masks, 2)) @ w_hn.T)
        h_new = z * h + (1 - z) * n
        if keep is not None:
            h_new = keep[t] * h + (1 - keep[t]) * h_new
        output = h_new
        if running is not None:
            run = running[t][:, None]
            h_new, output = torch.where(run, h_new, h), torch.where(run, h_new, torch.zeros_like(h_new))
        h = h_new
        outputs.append(output)
    return torch.stack(outputs), h


def _op_case(rng, bias, dropout, zoneout, lengths):
    """Random float64 inputs, weights, masks of one case (numpy arrays)."""
    scale = 0.6
    weights = {
        "weight_ih": scale * rng.standard_normal((3 * HIDDEN, FEATURES)),
        "weight_hh": scale * rng.standard_normal((3 * HIDDEN, HIDDEN)),
        "bias_ih": scale * rng.standard_normal(3 * HIDDEN) if bias else None,
        "bias_hh": scale * rng.standard_normal(3 * HIDDEN) if bias else None,
    }
    count = {"none": 0, "shared": 1, "per_gate": 3}[dropout]
    masks = [
        None if not count else rng.choice([0.0, 1.0 / 0.7], size=(count, BATCH, size), p=[0.3, 0.7])
        for size in (FEATURES, HIDDEN)
    ]
    keep = (rng.random((STEPS, BATCH, HIDDEN)) < 0.3).astype(np.float64) if zoneout else None
    batch_sizes = {"none": None, "packed": np.array([3, 3, 2, 2, 1]), "any": MASKS["any"].T}[lengths]
    return weights, GateDropout(*masks), keep, batch_sizes


OP_CASES = list(
    itertools.product([True, False], ["none", "shared", "per_gate"], [False, True], ["none", "packed", "any"])
)


@pytest.mark.parametrize("bias,dropout,zoneout,lengths", OP_CASES)
def test_reference_op_equals_the_equations_in_torch_forward_and_backward(bias, dropout, zoneout, lengths):
    rng = np.random.default_rng(hash((bias, dropout, zoneout, lengths)) % 2**32)
    weights, masks, keep, batch_sizes = _op_case(rng, bias, dropout, zoneout, lengths)
    x, h0 = rng.standard_normal((STEPS, BATCH, FEATURES)), rng.standard_normal((BATCH, HIDDEN))
    dout, dh = rng.standard_normal((STEPS, BATCH, HIDDEN)), rng.standard_normal((BATCH, HIDDEN))
    output, h_last, cache = gru_forward(
        x, h0, GRUWeights(**weights), batch_sizes=batch_sizes, dropout=masks,
        zoneout=None if keep is None else Zoneout(keep), reset_after=False,
    )  # fmt: skip
    assert isinstance(cache, GRUCache) and cache.reset_after is False
    dx, dh0, dweights = gru_backward(dout, dh, cache)

    leaves = {name: torch.tensor(a, requires_grad=True) for name, a in weights.items() if a is not None}
    tx, th0 = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    running = None if batch_sizes is None else torch.from_numpy(padding_mask(batch_sizes, BATCH))
    as_tensor = [None if m is None else torch.from_numpy(m) for m in masks]
    expected, expected_h = torch_gru_reset_before(
        tx, th0, leaves, *as_tensor, None if keep is None else torch.from_numpy(keep), running
    )
    ((expected * torch.from_numpy(dout)).sum() + (expected_h * torch.from_numpy(dh)).sum()).backward()

    np.testing.assert_allclose(output, expected.detach().numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(h_last, expected_h.detach().numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=0, atol=1e-10, err_msg="dx")
    np.testing.assert_allclose(dh0, th0.grad.numpy(), rtol=0, atol=1e-10, err_msg="dh0")
    for name, gradient in dweights._asdict().items():
        assert (gradient is None) == (name not in leaves), name
        if gradient is not None:
            np.testing.assert_allclose(gradient, leaves[name].grad.numpy(), rtol=0, atol=1e-10, err_msg=name)


def test_reset_before_is_another_function_and_the_default_is_reset_after():
    rng = np.random.default_rng(0)
    weights, _, _, _ = _op_case(rng, True, "none", False, "none")
    x, h0 = rng.standard_normal((STEPS, BATCH, FEATURES)), rng.standard_normal((BATCH, HIDDEN))
    after, _, cache = gru_forward(x, h0, GRUWeights(**weights))
    before, _, _ = gru_forward(x, h0, GRUWeights(**weights), reset_after=False)
    assert cache.reset_after is True and cache.steps.reset_hidden is None
    assert np.abs(after - before).max() > 1e-2
    with pytest.raises(TypeError, match="gru_forward: reset_after must be True or False, got 'no'"):
        gru_forward(x, h0, GRUWeights(**weights), reset_after="no")


# ---- lstmkit.keras.GRU(reset_after=False) against keras.layers.GRU ----------------------------
LAYER_CASES = list(itertools.product([False, True], [False, True], MASKS, [False, True]))


@pytest.mark.parametrize("return_sequences,go_backwards,mask_name,with_state", LAYER_CASES)
def test_layer_outputs_and_states_equal_keras(return_sequences, go_backwards, mask_name, with_state):
    rng = np.random.default_rng(hash((return_sequences, go_backwards, mask_name, with_state)) % 2**32)
    options = dict(return_sequences=return_sequences, return_state=True, go_backwards=go_backwards)
    ours, reference = make_pair("GRU", 3, 4, rng, reset_after=False, **options)
    x = rng.standard_normal((3, 5, 3)).astype(np.float32)
    initial = [rng.standard_normal((3, 4)).astype(np.float32)] if with_state else None
    expected = keras_call(reference, x, mask=MASKS[mask_name], initial_state=initial)
    actual = ours(x, initial_state=initial, mask=MASKS[mask_name])
    assert len(actual) == len(expected) == 2
    for ours_part, keras_part in zip(actual, expected):
        assert ours_part.shape == keras_part.shape and ours_part.dtype == np.float32
        np.testing.assert_allclose(ours_part, keras_part, rtol=0, atol=1e-5)


def test_weights_are_keras_and_without_bias_too():
    for use_bias, shapes in ((True, [(3, 12), (4, 12), (12,)]), (False, [(3, 12), (4, 12)])):
        ours, reference = make_pair("GRU", 3, 4, np.random.default_rng(1), reset_after=False, use_bias=use_bias)
        assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in reference.weights] == shapes
        assert ours.count_params() == reference.count_params()
        x = np.random.default_rng(2).standard_normal((2, 4, 3)).astype(np.float32)
        np.testing.assert_allclose(ours(x), keras_call(reference, x)[0], rtol=0, atol=1e-5)
    assert repr(lk.GRU(4, reset_after=False)) == "GRU(4, reset_after=False)"


@pytest.mark.parametrize("go_backwards,mask_name", [(False, "any"), (True, "padded")])
def test_gradients_equal_keras_autograd(go_backwards, mask_name):
    """The input's and every weight's gradient against torch autograd through keras' own layer."""
    rng = np.random.default_rng(3)
    options = dict(return_sequences=True, go_backwards=go_backwards)
    ours, reference = make_pair("GRU", 3, 4, rng, reset_after=False, **options)
    x = rng.standard_normal((3, 5, 3)).astype(np.float32)
    upstream = rng.standard_normal((3, 5, 4)).astype(np.float32)
    ours(x, mask=MASKS[mask_name])
    dx = ours.backward(upstream)
    tx = torch.tensor(x, requires_grad=True)
    (reference(tx, mask=torch.from_numpy(MASKS[mask_name])) * torch.from_numpy(upstream)).sum().backward()
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=0, atol=1e-5, err_msg="inputs")
    for (name, parameter), variable in zip(ours.named_parameters(), reference.trainable_weights):
        np.testing.assert_allclose(parameter.grad, variable.value.grad.numpy(), rtol=0, atol=2e-5, err_msg=name)


@pytest.mark.parametrize("mask_name,go_backwards,use_bias", [("any", True, True), ("none", False, False)])
def test_layer_gradients_by_finite_differences(mask_name, go_backwards, use_bias):
    rng = np.random.default_rng(5)
    layer = lk.GRU(3, reset_after=False, return_sequences=True, return_state=True, go_backwards=go_backwards,
                   use_bias=use_bias, dtype=np.float64, seed=2)  # fmt: skip
    layer.build((None, None, 2))
    layer.set_weights(random_weights(layer, rng))
    _check_gradients(layer, rng.standard_normal((3, 5, 2)), [rng.standard_normal((3, 3))], MASKS[mask_name])


@pytest.mark.parametrize("rates", [(0.3, 0.4), (0.0, 0.5), (0.25, 0.0)])
def test_training_call_equals_keras_with_the_same_masks(rates):
    """Keras' per-gate masks, the h block's on h_{t-1} before r scales it (injected into Keras' cell)."""
    rng = np.random.default_rng(11)
    options = dict(return_sequences=True, return_state=True, dropout=rates[0], recurrent_dropout=rates[1])
    ours, reference = make_pair("GRU", 3, 4, rng, reset_after=False, **options)
    x = rng.standard_normal((3, 5, 3)).astype(np.float32)
    actual = ours(x, mask=MASKS["padded"], training=True)
    used = _used_masks(ours)
    reference.cell._dropout_mask = _as_keras_masks(used.input, GRU_RESET_BEFORE_FORMAT, "float32")
    reference.cell._recurrent_dropout_mask = _as_keras_masks(used.recurrent, GRU_RESET_BEFORE_FORMAT, "float32")
    expected = keras_call(reference, x, mask=MASKS["padded"], training=True)
    for ours_part, keras_part in zip(actual, expected):
        np.testing.assert_allclose(ours_part, keras_part, rtol=0, atol=1e-5)
    assert not np.allclose(actual[0], keras_call(reference, x, mask=MASKS["padded"])[0], atol=1e-3)


def test_gradients_with_dropout_by_finite_differences():
    rng = np.random.default_rng(2)
    layer = lk.GRU(3, reset_after=False, return_sequences=True, return_state=True, dropout=0.3,
                   recurrent_dropout=0.4, dtype=np.float64, seed=2)  # fmt: skip
    layer.build((None, None, 2))
    layer.set_weights(random_weights(layer, rng))
    layer.train()
    x, initial = rng.standard_normal((3, 5, 2)), [rng.standard_normal((3, 3))]
    _check_gradients(_hold_masks_fixed(layer), x, initial, MASKS["padded"])
    layer(x, initial_state=initial)
    assert (_used_masks(layer).recurrent == 0).any() and len(_used_masks(layer).recurrent) == 3


@pytest.mark.parametrize("merge_mode,mask_name", [("concat", "any"), ("sum", "none"), (None, "padded")])
def test_bidirectional_equals_keras(merge_mode, mask_name):
    rng = np.random.default_rng(6)
    options = dict(return_sequences=True, return_state=True)
    ours = lk.Bidirectional(lk.GRU(3, reset_after=False, **options), merge_mode=merge_mode)
    ours.build((None, None, 2))
    ours.set_weights(random_weights(ours, rng))
    reference = keras.layers.Bidirectional(keras.layers.GRU(3, reset_after=False, **options), merge_mode=merge_mode)
    reference.build((None, None, 2))
    reference.set_weights(ours.get_weights())
    x = rng.standard_normal((3, 5, 2)).astype(np.float32)
    expected = keras_call(reference, x, mask=MASKS[mask_name])
    actual = as_list(ours(x, mask=MASKS[mask_name]))
    assert len(actual) == len(expected)
    for ours_part, keras_part in zip(actual, expected):
        np.testing.assert_allclose(ours_part, keras_part, rtol=0, atol=1e-5)


def test_bidirectional_gradients_by_finite_differences():
    rng = np.random.default_rng(4)
    layer = lk.Bidirectional(lk.GRU(2, reset_after=False, return_sequences=True, dtype=np.float64), "ave")
    layer.build((None, None, 3))
    layer.set_weights(random_weights(layer, rng))
    _check_gradients(layer, rng.standard_normal((3, 5, 3)), mask=MASKS["any"])


# ---- backends, twins and errors --------------------------------------------------------------
def test_runs_the_reference_ops_and_refuses_the_fast_backend(monkeypatch):
    monkeypatch.setenv("LSTMKIT_BACKEND", "fast")
    layer = lk.GRU(3, reset_after=False)
    assert layer._ops().backend == "reference"
    layer(np.ones((2, 4, 2), np.float32))
    assert isinstance(layer._saved[-1].saved.cache, GRUCache) and layer._saved[-1].saved.cache.reset_after is False
    assert lk.GRU(3)._ops().backend == "fast"  # reset_after=True keeps its fast path
    message = "GRU: backend='fast' runs the fused ops, which lack reset_after=False; use backend='auto' or"
    with pytest.raises(ValueError, match=message):
        lk.GRU(3, reset_after=False, backend="fast")
    with pytest.raises(ValueError, match=message):
        layer.backend = "fast"
    assert layer.backend == "auto"
    with pytest.raises(TypeError, match="GRU: reset_after must be True or False, got 'False'"):
        lk.GRU(3, reset_after="False")


def test_no_pytorch_twin_either_way():
    layer = lk.GRU(3, reset_after=False)
    layer.build((None, None, 2))
    with pytest.raises(ValueError, match=r"to_torch\(GRU\): Keras' GRU\(reset_after=False\) .* no PyTorch twin"):
        lk.to_torch(layer)
    with pytest.raises(ValueError, match=r"to_torch\(Bidirectional\): .*reset_after=False"):
        lk.to_torch(lk.Bidirectional(layer))
    with pytest.raises(
        ValueError, match=r"to_keras\(GRU\): .*twin is a GRU\(reset_after=True\); got reset_after=False"
    ):
        lk.to_keras(lstmkit.GRU(2, 3), reset_after=False)


# ---- lstmkit.convert's Keras layout against a real keras.Sequential ---------------------------
# Keras' generic (not cuDNN/torch) GRU path agrees with float64 loops of its equations only to ~6e-8 on
# the torch backend (reset_after=True with use_cudnn=False too), while a wrong layout is off by ~0.1;
# the equations themselves are checked to 1e-10 against torch autograd above.
KERAS_FLOAT64_ATOL = 1e-6


@pytest.mark.parametrize("bidirectional,bias", [(False, True), (True, True), (True, False)])
def test_keras_sequential_holding_converted_weights_equals_lstmkit_keras(bidirectional, bias):
    spec = LayerSpec("GRU", 3, (4, 4), bidirectional, bias=bias)
    rng = np.random.default_rng(8)
    state = {name: rng.uniform(-0.7, 0.7, shape) for name, shape in spec.shapes().items()}
    weights = to_keras_weights(state, spec, reset_after=False)
    assert [w.shape for w in weights] == list(keras_shapes(spec, reset_after=False).values())

    keras_layers, our_layers = [], []
    for _ in range(2):
        keras_layer = keras.layers.GRU(4, reset_after=False, return_sequences=True, use_bias=bias, dtype="float64")
        our_layer = lk.GRU(4, reset_after=False, return_sequences=True, use_bias=bias, dtype=np.float64)
        keras_layers.append(keras.layers.Bidirectional(keras_layer, dtype="float64") if bidirectional else keras_layer)
        our_layers.append(lk.Bidirectional(our_layer) if bidirectional else our_layer)
    model = keras.Sequential([keras.Input((None, 3), dtype="float64"), *keras_layers])
    model.set_weights(weights)
    ours = lk.Sequential(our_layers)
    per_layer = len(weights) // 2
    for index, layer in enumerate(ours.layers):
        layer.set_weights(weights[index * per_layer : (index + 1) * per_layer])
    assert ours.count_params() == model.count_params()
    assert keras_parameter_count("GRU", 3, 4, 2, bias, bidirectional, reset_after=False) == model.count_params()
    x = rng.standard_normal((2, 5, 3))
    expected = np.asarray(model(x).detach())
    np.testing.assert_allclose(ours(x), expected, rtol=0, atol=KERAS_FLOAT64_ATOL)

    if not bidirectional:  # the state is that of the reset_after=False equations, the op's weights
        first = GRUWeights(*(state.get(f"{name}_l0") for name in GRUWeights._fields))
        out, _, _ = gru_forward(x.transpose(1, 0, 2), np.zeros((2, 4)), first, reset_after=False)
        np.testing.assert_allclose(
            out.transpose(1, 0, 2), np.asarray(model.layers[0](x).detach()), atol=KERAS_FLOAT64_ATOL
        )


def test_keras_weights_converted_back_have_the_bias_in_bias_ih_and_round_trip_exactly():
    spec = LayerSpec("GRU", 3, (4,), True)
    layer = keras.layers.Bidirectional(keras.layers.GRU(4, reset_after=False))
    layer.build((None, None, 3))
    keras_weights = random_weights(layer, np.random.default_rng(9))
    state = from_keras_weights(keras_weights, spec, reset_after=False)
    assert list(state) == list(spec.shapes())
    for suffix in ("_l0", "_l0_reverse"):
        assert not state["bias_hh" + suffix].any()
    np.testing.assert_array_equal(state["bias_ih_l0"], GRU_RESET_BEFORE_FORMAT.to_torch_blocks(keras_weights[2]))
    for before, after in zip(keras_weights, to_keras_weights(state, spec, reset_after=False), strict=True):
        np.testing.assert_array_equal(after, before)
    with pytest.raises(ValueError, match=r"layer 0 forward bias'.*expected shape \(12,\), got \(2, 12\)"):
        from_keras_weights(to_keras_weights(state, spec), spec, reset_after=False)
