"""Stable activations and NaN propagation."""

import warnings

import numpy as np
import torch
from conftest import to_torch_module

import lstmkit


def test_huge_inputs_give_no_warning_and_no_nan():
    lstm = lstmkit.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2, seed=0)
    x = np.random.default_rng(0).choice([-1e4, 1e4, 3e30], size=(6, 2, 3)).astype(np.float32)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        output, (h_n, c_n) = lstm(x)
        dx, _ = lstm.backward(np.ones_like(output))
    assert np.all(np.isfinite(output)) and np.all(np.isfinite(dx)) and np.all(np.isfinite(c_n))
    reference = to_torch_module(
        lstm, torch.nn.LSTM, np.float32, input_size=3, hidden_size=4, num_layers=2, bidirectional=True, proj_size=2
    )
    np.testing.assert_allclose(output, reference(torch.tensor(x))[0].detach().numpy(), atol=2e-5)


def test_sigmoid_is_exact_in_both_tails():
    from lstmkit.ops.activations import sigmoid

    z = np.array([-800.0, -40.0, -1.0, 0.0, 1.0, 40.0, 800.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = sigmoid(z)
    np.testing.assert_allclose(y, torch.sigmoid(torch.tensor(z)).numpy(), rtol=1e-15, atol=0)


def test_nan_propagates_like_torch():
    lstm = lstmkit.LSTM(3, 4, dtype=np.float64, seed=0)
    reference = to_torch_module(lstm, torch.nn.LSTM, np.float64, input_size=3, hidden_size=4)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    x[2, 0, 1] = np.nan
    output, (h_n, _) = lstm(x)
    expected = reference(torch.tensor(x))[0].detach().numpy()
    np.testing.assert_array_equal(np.isnan(output), np.isnan(expected))
    assert np.isnan(output[2:, 0]).all() and not np.isnan(output[:2]).any() and not np.isnan(output[:, 1]).any()
