"""The plan of a fused call (ops/fused/plan.py): which loop the default thresholds choose at each size,
and a Tuning that moves them; the fused ops follow the plan they are given."""

import numpy as np
import pytest

from lstmkit.ops.fused import HalvesLSTMCache, Plan, Tuning, choose_plan, lstm_forward_fused
from lstmkit.ops.fused.lstm import FusedLSTMCache
from lstmkit.ops.lstm import LSTMWeights, lstm_forward

ALWAYS_HALVES = Tuning(halves_in_training=True)


@pytest.mark.parametrize(
    "sizes,gate_count,training,helper,forward,backward",
    [
        ((1000, 1, 32, 32), 4, False, True, "compiled", None),  # small, batch 1, too few weights for two cores
        ((100, 1, 64, 128), 4, False, True, "two_cores", None),  # batch 1, H = 128: two cores
        ((100, 1, 64, 128), 3, True, True, "compiled", "compiled"),  # training: two cores from more weights
        ((100, 1, 64, 128), 4, True, True, "compiled", "compiled"),
        ((100, 1, 64, 256), 4, True, True, "two_cores", "blas"),
        ((100, 1, 64, 256), 3, True, True, "two_cores", "blas"),
        ((100, 1, 64, 128), 4, False, False, "compiled", None),  # no helper: one core
        ((28, 64, 28, 128), 4, False, True, "halves", None),  # 8 rows or more, up to 4,194,304 multiply-adds
        ((28, 64, 28, 128), 4, True, True, "halves", "halves"),
        ((100, 32, 64, 128), 3, False, True, "compiled", None),  # a GRU has no halves: compiled up to 32x the limit
        ((100, 32, 64, 128), 3, True, True, "blas", "blas"),  # training: up to 4x the limit only
        ((50, 128, 512, 512), 4, False, True, "batch_last", None),  # large LSTM inference
        ((50, 128, 512, 512), 3, False, True, "blas", None),  # large GRU inference
        ((50, 128, 512, 512), 4, True, True, "blas", "blas"),
        ((200, 4, 32, 64), 4, True, True, "compiled", "compiled"),  # below halves' batch
    ],
)
def test_default_plans(sizes, gate_count, training, helper, forward, backward):
    plan = choose_plan(*sizes, gate_count, training, helper, ALWAYS_HALVES)
    assert (plan.forward, plan.backward) == (forward, backward)


def test_a_tuning_moves_the_thresholds():
    sizes = (100, 1, 64, 128)
    assert choose_plan(*sizes, 4, False, True, Tuning(two_core_max_batch=0)).forward == "compiled"
    assert choose_plan(*sizes, 4, False, True, Tuning(small_layer_multiply_adds=1, inference_factor=1)).forward == (
        "batch_last"
    )
    assert choose_plan(28, 64, 28, 128, 4, True, True, Tuning(halves_in_training=False)).forward == "blas"
    assert not choose_plan(*sizes, 4, False, True, Tuning(transposed_product_max_hidden=64)).transposed_weight
    pipelined = choose_plan(1000, 1, 32, 32, 4, False, True)
    assert pipelined.pipelined and pipelined.chunk_steps == (1 << 18) // (32 * 128)
    assert not choose_plan(1000, 1, 32, 32, 4, False, False).pipelined  # no helper to compute it beside the loop


def test_a_tuning_is_a_value():
    assert Tuning() == Tuning() and hash(Tuning()) == hash(Tuning())
    assert Tuning(forward_factor=2) != Tuning() and choose_plan.cache_info().maxsize >= 1


@pytest.mark.parametrize(
    "plan,cache_type",
    [
        (Plan("halves", "halves"), HalvesLSTMCache),
        (Plan("compiled", "blas"), FusedLSTMCache),
        (Plan("blas", "blas"), FusedLSTMCache),
    ],
)
def test_the_fused_op_follows_the_plan_it_is_given(plan, cache_type):
    rng = np.random.default_rng(0)
    weights = LSTMWeights(*(rng.standard_normal(shape) * 0.3 for shape in [(20, 3), (20, 5), (20,), (20,)]))
    x, h0, c0 = rng.standard_normal((6, 4, 3)), rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    *outputs, cache = lstm_forward_fused(x, h0, c0, weights, plan=plan)
    assert isinstance(cache, cache_type)
    if cache_type is FusedLSTMCache:
        assert cache.backward_loop == plan.backward
    for actual, expected in zip(outputs, lstm_forward(x, h0, c0, weights)[:3]):
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-12)
