"""Dropout between layers: eval equals torch, masks are honest, training is reproducible."""

import numpy as np
import torch
from conftest import assert_close, to_torch_module

import lstmkit

CONFIG = dict(input_size=3, hidden_size=8, num_layers=3, bidirectional=True)


def assert_matches_torch(dropout: float, training: bool):
    ours = lstmkit.LSTM(**CONFIG, dropout=dropout, dtype=np.float64, seed=0).train(training)
    reference = to_torch_module(ours, torch.nn.LSTM, np.float64, **CONFIG, dropout=dropout).train(training)
    x = np.random.default_rng(0).standard_normal((6, 2, 3))
    output, (h_n, c_n) = ours(x)
    out_t, (h_t, c_t) = reference(torch.tensor(x))
    assert_close(output, out_t.detach().numpy(), np.float64, "output")
    assert_close(h_n, h_t.detach().numpy(), np.float64, "h_n")
    assert_close(c_n, c_t.detach().numpy(), np.float64, "c_n")


def test_eval_mode_equals_torch():
    assert_matches_torch(0.5, training=False)


def test_dropout_one_zeroes_every_layer_input_like_torch():
    """p = 1 is deterministic (every upper layer sees zeros), so torch in training mode must agree."""
    assert_matches_torch(1.0, training=True)


def test_kept_fraction_and_scale():
    p = 0.3
    lstm = lstmkit.LSTM(4, 64, num_layers=2, dropout=p, seed=0)
    lstm(np.ones((50, 32, 4), np.float32))
    mask = lstm._saved[-1].saved.dropout_masks[0]
    assert mask.shape == (50, 32, 64)
    kept = mask != 0
    fraction = kept.mean()
    standard_error = np.sqrt(p * (1 - p) / mask.size)
    assert abs(fraction - (1 - p)) < 5 * standard_error, f"kept {fraction:.4f}, expected {1 - p}"
    np.testing.assert_allclose(mask[kept], 1 / (1 - p), rtol=1e-6)
    assert lstm._saved[-1].saved.dropout_masks[1] is None  # never after the last layer


def test_training_is_reproducible_and_masks_differ_between_calls():
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    first = lstmkit.LSTM(**CONFIG, dropout=0.5, seed=7)
    second = lstmkit.LSTM(**CONFIG, dropout=0.5, seed=7)
    a1, _ = first(x)
    b1, _ = second(x)
    np.testing.assert_array_equal(a1, b1)
    a2, _ = first(x)
    assert not np.array_equal(a1, a2)


def test_dropout_is_ignored_in_eval_and_with_zero_probability():
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    lstm = lstmkit.LSTM(**CONFIG, dropout=0.5, seed=7).eval()
    np.testing.assert_array_equal(lstm(x)[0], lstm(x)[0])
