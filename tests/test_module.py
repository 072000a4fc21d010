"""Module behaviour: names, state_dict, gradient accumulation, no_grad, LIFO backward, init."""

import numpy as np
import pytest
import torch

import lstmkit


def test_parameter_names_and_shapes_equal_torch():
    for kwargs in (dict(num_layers=3, bidirectional=True, proj_size=2), dict(num_layers=2, bias=False)):
        ours = lstmkit.LSTM(5, 4, **kwargs)
        reference = torch.nn.LSTM(5, 4, **kwargs)
        assert [(n, p.shape) for n, p in ours.named_parameters()] == [
            (n, tuple(p.shape)) for n, p in reference.named_parameters()
        ]
        assert lstmkit.count_parameters(ours) == sum(p.numel() for p in reference.parameters())


def test_torch_state_dict_loads_and_state_dict_returns_copies():
    reference = torch.nn.LSTM(3, 4, num_layers=2)
    ours = lstmkit.LSTM(3, 4, num_layers=2)
    ours.load_state_dict({k: v.numpy() for k, v in reference.state_dict().items()})
    for name, value in ours.state_dict().items():
        np.testing.assert_array_equal(value, reference.state_dict()[name].numpy())
    state = ours.state_dict()
    state["weight_ih_l0"][...] = 0
    assert np.any(ours.state_dict()["weight_ih_l0"] != 0)


def test_load_state_dict_names_every_problem_and_changes_nothing():
    ours = lstmkit.LSTM(3, 4, num_layers=2)
    before = ours.state_dict()
    other = lstmkit.LSTM(3, 5, num_layers=1, proj_size=2).state_dict()
    with pytest.raises(ValueError) as error:
        ours.load_state_dict(other)
    message = str(error.value)
    assert "weight_ih_l0: expected shape (16, 3), got (20, 3)" in message
    assert "missing keys ['weight_ih_l1'" in message
    assert "unexpected keys ['weight_hr_l0']" in message
    for name, value in ours.state_dict().items():
        np.testing.assert_array_equal(value, before[name])
    missing, unexpected = ours.load_state_dict({"weight_ih_l0": np.zeros((16, 3))}, strict=False)
    assert "weight_hh_l0" in missing and unexpected == []
    assert np.all(ours.state_dict()["weight_ih_l0"] == 0)


def test_gradients_accumulate_and_zero_grad_resets():
    lstm = lstmkit.LSTM(3, 4, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    out, _ = lstm(x)
    lstm.backward(np.ones_like(out))
    once = {n: p.grad.copy() for n, p in lstm.named_parameters()}
    out, _ = lstm(x)
    lstm.backward(np.ones_like(out))
    for name, parameter in lstm.named_parameters():
        np.testing.assert_allclose(parameter.grad, 2 * once[name], rtol=1e-12)
    lstm.zero_grad()
    assert all(p.grad is None for p in lstm.parameters())
    lstm(x)
    lstm.backward(np.ones_like(out))
    lstm.zero_grad(set_to_none=False)
    assert all(np.all(p.grad == 0) for p in lstm.parameters())


def test_no_grad_stores_nothing_and_backward_then_refuses():
    lstm = lstmkit.LSTM(3, 4)
    with lstmkit.no_grad():
        assert not lstmkit.is_grad_enabled()
        out, _ = lstm(np.zeros((5, 1, 3), np.float32))
    assert lstmkit.is_grad_enabled()
    assert lstm._saved == []
    with pytest.raises(RuntimeError, match="expected a matching forward call"):
        lstm.backward(out)


def test_backward_pairs_with_forwards_last_in_first_out():
    """Two forwards on different inputs, then two backwards: each gradient belongs to its own forward."""
    lstm = lstmkit.LSTM(3, 4, dtype=np.float64, seed=0)
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((4, 2, 3)), rng.standard_normal((6, 2, 3))
    single = lstmkit.LSTM(3, 4, dtype=np.float64, seed=0)
    single(x1)
    expected_dx1, _ = single.backward(np.ones((4, 2, 4)))
    lstm(x1)
    lstm(x2)
    dx2, _ = lstm.backward(np.ones((6, 2, 4)))
    dx1, _ = lstm.backward(np.ones((4, 2, 4)))
    assert dx2.shape == x2.shape
    np.testing.assert_allclose(dx1, expected_dx1, rtol=1e-13)


def test_initialisation_is_uniform_within_torch_bound_and_seeded():
    lstm = lstmkit.LSTM(10, 64, num_layers=2, proj_size=16, seed=3)
    bound = 1 / np.sqrt(64)
    values = np.concatenate([p.data.ravel() for p in lstm.parameters()])
    assert values.min() >= -bound and values.max() <= bound
    assert values.min() < -0.95 * bound and values.max() > 0.95 * bound
    assert abs(values.mean()) < 0.01 * bound * 10
    again = lstmkit.LSTM(10, 64, num_layers=2, proj_size=16, seed=3)
    for (_, a), (_, b) in zip(lstm.named_parameters(), again.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    assert all(p.data.dtype == np.float32 for p in lstm.parameters())
    assert all(p.data.dtype == np.float64 for p in lstmkit.LSTM(2, 3, dtype=np.float64).parameters())


def test_train_eval_and_repr():
    lstm = lstmkit.LSTM(20, 100, num_layers=2, dropout=0.1)
    assert lstm.training
    assert lstm.eval() is lstm and not lstm.training
    assert lstm.train().training
    assert repr(lstm) == "LSTM(20, 100, num_layers=2, dropout=0.1)"
    assert repr(lstmkit.LSTMCell(3, 4, bias=False)) == "LSTMCell(3, 4, bias=False)"


def test_float_input_is_cast_to_the_module_dtype():
    lstm = lstmkit.LSTM(3, 4)
    out, (h, c) = lstm(np.zeros((2, 1, 3), np.float64))
    assert out.dtype == h.dtype == c.dtype == np.float32


def test_parameters_are_attributes_like_torch():
    lstm = lstmkit.LSTM(3, 4, bidirectional=True)
    assert lstm.weight_hh_l0_reverse is dict(lstm.named_parameters())["weight_hh_l0_reverse"]
    with pytest.raises(AttributeError, match="LSTM has no attribute 'weight_hr_l0'"):
        _ = lstm.weight_hr_l0
