"""Saturated gates, huge and infinite inputs: the float32 fast path against torch (issue 28, point 2).

torch's float32 tanh is exactly ±1 from |x| >= 9.01084 and its sigmoid exactly 1 from x >= 16.635532,
so a gate driven past those points passes exactly 0 gradient, and an infinite input times that 0 is
NaN in dW_ih. The fast path's tanh/σ approximation (ops/fused/kernels/activations.py and its vector
form in ops/fused/intrinsics/lanes.py) must do the same: before, it stopped at 0.99999976, passing
4.8e-7 through every saturated gate (dW_ih off by 0.29 at inputs of 1e6, 2.9e23 at 1e30, ±inf where
torch has NaN). Every case runs the LSTM and the GRU, fast and reference backends, layers and every
fused loop, against torch: NaN exactly where torch has NaN, infinities equal, exactly 0 wherever
torch has exactly 0, and the rest within float32's tolerance relative to the array's magnitude, plus
twice torch's own float32 error there (its distance from torch in float64 on the same input): at inputs
of 1e4 a gate's pre-activation of about 10 is a sum of terms of 1e4, rounded to about 1e-3 in any
float32 implementation, so dW_ih's entries agree only to that (lstmkit's reference backend: 2.6e-4).
"""

import numba
import numpy as np
import pytest
import torch
from conftest import TORCH_DTYPES, to_torch_module
from test_fast_paths import LOOPS, plan_of

import lstmkit
from lstmkit.ops.fused.compiled import compiled_kernels
from lstmkit.ops.fused.gru import gru_backward_fused, gru_forward_fused
from lstmkit.ops.fused.intrinsics.lanes import SIGMOID_ONE_FROM, SIGMOID_ZERO_TO, TANH_ONE_FROM
from lstmkit.ops.fused.lstm import lstm_backward_fused, lstm_forward_fused
from lstmkit.ops.gru import GRUWeights
from lstmkit.ops.lstm import LSTMWeights

kernels = compiled_kernels()
TOLERANCE = 2e-5  # float32, relative to the largest finite magnitude of torch's array
TWO = (np.float32, np.float64)  # torch runs in both: float64 measures its own float32 error
SCALES = [1.0, 1e2, 1e4, 1e6, 1e30]
INFINITE = ["one +inf and one -inf", "±inf among ±1e30"]
CASES = [f"x{scale:g}" for scale in SCALES] + INFINITE
LAYERS = {"LSTM": (lstmkit.LSTM, torch.nn.LSTM), "GRU": (lstmkit.GRU, torch.nn.GRU)}


def make_input(case, shape, seed):
    """float32 input of ``shape``: standard normal times the case's scale, or with infinite entries."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    if case == "one +inf and one -inf":
        x[1, 0, 0], x[-2, -1, -1] = np.inf, -np.inf
    elif case == "±inf among ±1e30":
        x *= np.float32(1e30)
        x.flat[::9] = rng.choice(np.float32([np.inf, -np.inf]), size=x.flat[::9].shape)
    else:
        x *= np.float32(float(case[1:]))
    return x


def float32_error(expected, expected_float64):
    """torch's own float32 error on an array: its largest distance from torch's float64 result
    where both are finite."""
    both = np.isfinite(expected) & np.isfinite(expected_float64)
    return float(np.max(np.abs(expected[both] - expected_float64[both]), initial=0.0))


def assert_matches_torch(actual, expected, what, expected_float64=None, magnitude=1.0, exact_zeros=True):
    """NaN exactly where torch has NaN, the same infinities, 0 wherever torch has exactly 0 in float32
    and float64 (with ``exact_zeros``), and the finite rest within TOLERANCE times the array's magnitude (the largest
    finite one of ``expected``, at least ``magnitude``: 1, or for dW_ih the largest |x|, the size of the
    terms it sums) plus twice torch's own float32 error (:func:`float32_error`, from its float64 result)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype, what
    nan = np.isnan(expected)
    mismatched = int(np.count_nonzero(np.isnan(actual) != nan))
    assert mismatched == 0, f"{what}: {mismatched} entries NaN on one side only ({int(nan.sum())} NaN in torch's)"
    infinite = np.isinf(expected)
    np.testing.assert_array_equal(actual[infinite], expected[infinite], err_msg=f"{what}: infinities differ")
    zero = (expected == 0) & exact_zeros  # a saturated gate's exact 0, not float32's knife edge at the point:
    zero &= True if expected_float64 is None else expected_float64 == 0  # saturated in float64 too
    nonzero = actual[zero][np.abs(actual[zero]) >= np.finfo(np.float32).tiny]  # a denormal counts as 0
    assert nonzero.size == 0, (
        f"{what}: {nonzero.size} entries nonzero where torch's are 0 (largest {abs(nonzero).max():.3g})"
    )
    finite = ~nan & ~infinite
    assert np.all(np.isfinite(actual[finite])), f"{what}: infinite or NaN where torch's are finite"
    scale = max(float(np.max(np.abs(expected[finite]), initial=0.0)), magnitude)
    conditioning = 0.0 if expected_float64 is None else float32_error(expected, expected_float64)
    error = float(np.max(np.abs(actual[finite] - expected[finite]), initial=0.0))
    assert error <= TOLERANCE * scale + 2 * conditioning, (
        f"{what}: max abs difference {error:.3g} > {TOLERANCE} * {scale:.3g} + 2 * {conditioning:.3g}"
    )


# ---- whole layers, backend "fast" and "reference" ---------------------------------------------------
LAYER_SIZES = {"small, 2 layers, bidirectional": (7, 3, 5, 20, 2, True), "large (BLAS loop)": (5, 16, 8, 128, 1, False)}


@pytest.mark.parametrize("sizes", LAYER_SIZES)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("backend", ["fast", "reference"])
@pytest.mark.parametrize("kind", LAYERS)
def test_layer_matches_torch_at_huge_and_infinite_inputs(kind, backend, case, sizes):
    steps, batch, features, hidden, layers, bidirectional = LAYER_SIZES[sizes]
    ours_class, torch_class = LAYERS[kind]
    config = dict(input_size=features, hidden_size=hidden, num_layers=layers, bidirectional=bidirectional)
    ours = ours_class(**config, seed=3, backend=backend)
    x = make_input(case, (steps, batch, features), seed=len(case) + hidden)
    with np.errstate(all="ignore"):
        output, state = ours(x)
    state = state if kind == "LSTM" else (state,)
    rng = np.random.default_rng(7)
    g_output = rng.standard_normal(output.shape).astype(np.float32)
    g_state = [rng.standard_normal(part.shape).astype(np.float32) for part in state]
    with np.errstate(all="ignore"):
        dx, _ = ours.backward(g_output, tuple(g_state) if kind == "LSTM" else g_state[0])
    expected, expected_float64 = (_torch_layer(ours, torch_class, config, dtype, x, g_output, g_state) for dtype in TWO)
    names = ["output"] + [f"final state {k}" for k in range(len(state))] + ["dx"]
    names += [f"grad of {name}" for name, _ in ours.named_parameters()]
    actual = [output, *state, dx, *(parameter.grad for _, parameter in ours.named_parameters())]
    x_size = float(np.max(np.abs(x[np.isfinite(x)])))
    for what, mine, wanted, wanted_float64 in zip(names, actual, expected, expected_float64, strict=True):
        magnitude = x_size if "weight_ih_l0" in what else 1.0
        assert_matches_torch(mine, wanted, what, wanted_float64, magnitude)


def _torch_layer(ours, torch_class, config, dtype, x, g_output, g_state):
    """torch's output, final states, dx and parameter gradients in ``dtype``, for lstmkit's weights."""
    reference = to_torch_module(ours, torch_class, dtype, **config)
    x_t = torch.tensor(x.astype(dtype), requires_grad=True)
    output_t, state_t = reference(x_t)
    state_t = state_t if isinstance(state_t, tuple) else (state_t,)
    loss = (output_t * torch.from_numpy(g_output.astype(dtype))).sum()
    (loss + sum((part * torch.from_numpy(g.astype(dtype))).sum() for part, g in zip(state_t, g_state))).backward()
    results = [output_t, *state_t, x_t.grad, *(p.grad for _, p in reference.named_parameters())]
    return [r.detach().numpy().astype(np.float32) for r in results]


def test_saturated_gates_pass_exactly_zero_gradient():
    """At inputs of 1e30 every gate of the first layer is saturated: torch's dW_ih, dW_hh and bias
    gradients are exactly 0, and so are the fast path's (they were 2.9e23 off)."""
    x = make_input("x1e+30", (6, 4, 5), seed=0)
    for ours_class, _ in LAYERS.values():
        layer = ours_class(5, 16, seed=0, backend="fast")
        output, state = layer(x)
        layer.backward(
            np.ones_like(output), tuple(np.ones_like(s) for s in state) if isinstance(state, tuple) else None
        )
        for name, parameter in layer.named_parameters():
            assert np.all(parameter.grad == 0), name


# ---- every fused loop, at the ops' level --------------------------------------------------------
OP_SIZES = (6, 4, 5, 20)  # T, N, I, H: a whole vector of lanes and a masked remainder


def _torch_run(kind, x, h0, c0, weights, upstream, dtype):
    """torch's outputs and gradients (x, h0[, c0], then each weight) for the ops' arrays, computed in
    ``dtype`` and given back in float32."""
    steps, batch, features = x.shape
    hidden = h0.shape[-1]
    module = (torch.nn.LSTM if kind == "LSTM" else torch.nn.GRU)(features, hidden).to(TORCH_DTYPES[dtype])
    with torch.no_grad():
        for parameter, array in zip(
            (module.weight_ih_l0, module.weight_hh_l0, module.bias_ih_l0, module.bias_hh_l0), weights
        ):
            parameter.copy_(torch.from_numpy(array))
    upstream = [g.astype(dtype) for g in upstream]
    leaves = [torch.tensor(a.astype(dtype), requires_grad=True) for a in ((x, h0) if c0 is None else (x, h0, c0))]
    states = tuple(leaf[None] for leaf in leaves[1:])
    output, state = module(leaves[0], states if kind == "LSTM" else states[0])
    finals = state if kind == "LSTM" else (state,)
    results = [output, *(part[0] for part in finals)]
    loss = sum((r * torch.from_numpy(g)).sum() for r, g in zip(results, upstream))
    loss.backward()
    grads = [leaf.grad.numpy() for leaf in leaves]
    grads += [p.grad.numpy() for p in (module.weight_ih_l0, module.weight_hh_l0, module.bias_ih_l0, module.bias_hh_l0)]
    return [r.detach().numpy().astype(np.float32) for r in results], [g.astype(np.float32) for g in grads]


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", LAYERS)
def test_every_fused_loop_matches_torch_at_huge_and_infinite_inputs(kind, case, loop):
    steps, batch, features, hidden = OP_SIZES
    gates = 4 if kind == "LSTM" else 3
    rng = np.random.default_rng(11)
    bound = np.float32(1 / np.sqrt(hidden))
    shapes = [(gates * hidden, features), (gates * hidden, hidden), (gates * hidden,), (gates * hidden,)]
    arrays = [rng.uniform(-bound, bound, shape).astype(np.float32) for shape in shapes]
    x = make_input(case, (steps, batch, features), seed=5)
    h0 = rng.standard_normal((batch, hidden)).astype(np.float32)
    c0 = rng.standard_normal((batch, hidden)).astype(np.float32) if kind == "LSTM" else None
    shapes = [(steps, batch, hidden)] + [(batch, hidden)] * (2 if kind == "LSTM" else 1)
    upstream = [rng.standard_normal(shape).astype(np.float32) for shape in shapes]
    (expected, expected_grads), (expected_float64, expected_grads_float64) = (
        _torch_run(kind, x, h0, c0, arrays, upstream, dtype) for dtype in TWO
    )
    with np.errstate(all="ignore"):
        if kind == "LSTM":
            weights = LSTMWeights(*arrays)
            *results, cache = lstm_forward_fused(x, h0, c0, weights, plan=plan_of(loop, OP_SIZES, kind, True))
            inference = lstm_forward_fused(
                x, h0, c0, weights, keep_cache=False, plan=plan_of(loop, OP_SIZES, kind, False)
            )
            dx, dh0, dc0, dweights = lstm_backward_fused(*upstream, cache)
            grads = [dx, dh0, dc0, *dweights[:4]]
        else:
            weights = GRUWeights(*arrays)
            *results, cache = gru_forward_fused(x, h0, weights, plan=plan_of(loop, OP_SIZES, kind, True))
            inference = gru_forward_fused(x, h0, weights, keep_cache=False, plan=plan_of(loop, OP_SIZES, kind, False))
            dx, dh0, dweights = gru_backward_fused(*upstream, cache)
            grads = [dx, dh0, *dweights[:4]]
    for what, actual, wanted, wanted_float64 in zip(["output", "h_n", "c_n"], results, expected, expected_float64):
        assert_matches_torch(actual, wanted, what, wanted_float64)
    for what, actual, wanted, wanted_float64 in zip(["output", "h_n", "c_n"], inference, expected, expected_float64):
        assert_matches_torch(actual, wanted, f"inference {what}", wanted_float64)
    names = ["dx", "dh0"] + (["dc0"] if kind == "LSTM" else []) + ["dW_ih", "dW_hh", "db_ih", "db_hh"]
    x_size = float(np.max(np.abs(x[np.isfinite(x)])))
    for what, actual, wanted, wanted_float64 in zip(names, grads, expected_grads, expected_grads_float64, strict=True):
        assert_matches_torch(actual, wanted, what, wanted_float64, x_size if what == "dW_ih" else 1.0)


# ---- the approximations themselves --------------------------------------------------------------
@numba.njit
def _scalar(values, which):
    """The scalar kernels (the loops a cell falls back to) over an array: 0 tanh, 1 σ."""
    out = np.empty_like(values)
    for k in range(values.size):
        out[k] = kernels.tanh_approx(values[k]) if which == 0 else kernels.sigmoid_approx(values[k])
    return out


def _lanes(values):
    """tanh and σ as the vector cell computes them (intrinsics/lanes.py): the values as the LSTM
    cell's g gate (tanh) and i gate (σ), 1000 units a row (whole vectors and a masked remainder)."""
    hidden = 1000
    rows = -(-values.size // hidden)
    padded = np.zeros(rows * hidden, dtype=np.float32)
    padded[: values.size] = values
    z = np.zeros((rows, 4 * hidden), dtype=np.float32)
    z[:, :hidden] = z[:, 2 * hidden : 3 * hidden] = padded.reshape(rows, hidden)
    state = [np.zeros((rows, hidden), dtype=np.float32) for _ in range(4)]
    kernels.lstm_cell_forward(z, np.zeros_like(z), *state)
    return z[:, 2 * hidden : 3 * hidden].ravel()[: values.size], z[:, :hidden].ravel()[: values.size]


FORMS = {"scalar": lambda values: (_scalar(values, 0), _scalar(values, 1)), "lanes": _lanes}


def _floats_between(low, high):
    """Every float32 in [low, high] (same sign)."""
    a, b = np.float32(low).view(np.int32), np.float32(high).view(np.int32)
    return np.arange(min(a, b), max(a, b) + 1, dtype=np.int32).view(np.float32)


@pytest.mark.parametrize("form", ["scalar", "lanes"])
def test_approximations_saturate_exactly_where_torch_does(form):
    around_tanh = np.concatenate([_floats_between(8.9, 9.1), -_floats_between(8.9, 9.1)])
    tanh, _ = FORMS[form](around_tanh)
    np.testing.assert_array_equal(tanh, np.where(np.abs(around_tanh) >= TANH_ONE_FROM, np.sign(around_tanh), tanh))
    torch_tanh = torch.tanh(torch.from_numpy(around_tanh)).numpy()
    np.testing.assert_array_equal(np.abs(tanh) == 1, np.abs(torch_tanh) == 1)
    around_sigmoid = _floats_between(16.0, 17.5)
    _, sigmoid = FORMS[form](around_sigmoid)
    np.testing.assert_array_equal(sigmoid == 1, torch.sigmoid(torch.from_numpy(around_sigmoid)).numpy() == 1)
    beyond = np.float32([9.01084, 9.5, 10, 17, 18.1, 40, 100, 1e4, 1e30, 3.4e38, np.inf])
    tanh, sigmoid = FORMS[form](np.concatenate([beyond, -beyond]))
    np.testing.assert_array_equal(tanh, np.concatenate([np.ones(beyond.size), -np.ones(beyond.size)]))
    assert np.all(sigmoid[beyond.size :][-beyond <= SIGMOID_ZERO_TO] == 0)
    assert np.all(sigmoid[: beyond.size][beyond >= SIGMOID_ONE_FROM] == 1)
    top = sigmoid[: beyond.size][beyond >= 17]
    assert np.all(1 - tanh * tanh == 0) and np.all(top * (1 - top) == 0)  # the gradients through them
    nan, _ = FORMS[form](np.float32([np.nan, -np.nan]))
    assert np.all(np.isnan(nan)) and np.all(np.isnan(FORMS[form](np.float32([np.nan]))[1]))


@pytest.mark.parametrize("form", ["scalar", "lanes"])
def test_approximations_are_monotone_and_within_their_documented_error(form):
    """Within 3e-7 (tanh) and 2e-7 (σ) of the true functions, within [-1, 1] and [0, 1], and
    monotone up to that error (float32 rounding in the rational): never more than 6e-7 below a value
    taken at a smaller x (every float32 from 4 to 9.2, and from 8 to 20 for σ, either sign; a grid
    elsewhere), and never below an earlier value across the saturation points."""
    dense = np.concatenate([_floats_between(4.0, 9.2), np.linspace(0, 12, 200001, dtype=np.float32)])
    grid = np.unique(np.concatenate([-dense, dense]))
    tanh, _ = FORMS[form](grid)
    assert float(np.max(np.maximum.accumulate(tanh) - tanh)) <= 6e-7, "tanh not monotone"
    assert np.all(tanh[grid < -TANH_ONE_FROM] == -1) and np.all(tanh[grid > -TANH_ONE_FROM] > -1)
    assert float(np.max(np.abs(tanh - np.tanh(grid.astype(np.float64))))) <= 3e-7 and np.all(np.abs(tanh) <= 1)
    dense = np.concatenate([_floats_between(8.0, 20.0), np.linspace(0, 40, 200001, dtype=np.float32)])
    wide = np.unique(np.concatenate([-dense, dense]))
    _, sigmoid = FORMS[form](wide)
    assert float(np.max(np.maximum.accumulate(sigmoid) - sigmoid)) <= 6e-7, "σ not monotone"
    assert np.all(sigmoid[wide <= SIGMOID_ZERO_TO] == 0) and np.all(sigmoid[wide > SIGMOID_ZERO_TO] > 0)
    exact = 1 / (1 + np.exp(-wide.astype(np.float64)))
    assert float(np.max(np.abs(sigmoid - exact))) <= 2e-7 and np.all((sigmoid >= 0) & (sigmoid <= 1))


def test_scalar_and_vector_forms_agree():
    grid = np.linspace(-30, 30, 300001, dtype=np.float32)
    for scalar, vector in zip(FORMS["scalar"](grid), FORMS["lanes"](grid)):
        assert float(np.max(np.abs(scalar - vector))) <= 1.2e-7
