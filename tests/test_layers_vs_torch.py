"""Linear, Embedding, Dropout, LastStep, Sequential and the losses against torch (float64, 1e-10)."""

import numpy as np
import pytest
import torch
from conftest import assert_close, to_torch_module, torch_grads

import lstmkit
from lstmkit.nn.layers import Dropout, Embedding, LastStep, Linear, Sequential
from lstmkit.nn.losses import CrossEntropyLoss, MSELoss

F64 = np.float64


@pytest.mark.parametrize("shape", [(5, 4), (3, 2, 4), (4,)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear(shape, bias):
    rng = np.random.default_rng(0)
    ours = Linear(4, 3, bias=bias, dtype=F64, seed=1)
    reference = to_torch_module(ours, torch.nn.Linear, F64, in_features=4, out_features=3, bias=bias)
    x = rng.standard_normal(shape)
    upstream = rng.standard_normal(shape[:-1] + (3,))
    x_t = torch.tensor(x, requires_grad=True)
    y_t = reference(x_t)
    assert_close(ours(x), y_t.detach().numpy(), F64, "output")
    (dx_t,) = torch_grads([y_t], [upstream], [x_t])
    assert_close(ours.backward(upstream), dx_t, F64, "dx")
    for name, parameter in ours.named_parameters():
        assert_close(parameter.grad, dict(reference.named_parameters())[name].grad.numpy(), F64, name)


@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding(padding_idx):
    rng = np.random.default_rng(0)
    ours = Embedding(7, 3, padding_idx=padding_idx, dtype=F64, seed=0)
    reference = to_torch_module(
        ours, torch.nn.Embedding, F64, num_embeddings=7, embedding_dim=3, padding_idx=padding_idx
    )
    indices = rng.integers(0, 7, size=(5, 4))
    indices[0, 0] = 6
    upstream = rng.standard_normal((5, 4, 3))
    y_t = reference(torch.tensor(indices))
    assert_close(ours(indices), y_t.detach().numpy(), F64, "output")
    (y_t * torch.tensor(upstream)).sum().backward()
    assert ours.backward(upstream) is None
    assert_close(ours.weight.grad, reference.weight.grad.numpy(), F64, "weight grad")
    if padding_idx is not None:
        assert np.all(ours.weight.data[padding_idx % 7] == 0)


def test_embedding_errors():
    embedding = Embedding(5, 2)
    with pytest.raises(ValueError, match=r"indices must be in \[0, 5\), got values from 0 to 7"):
        embedding(np.array([0, 7]))
    with pytest.raises(TypeError, match="input must hold integer indices, got dtype float64"):
        embedding(np.array([0.0]))


def test_dropout_layer():
    dropout = Dropout(0.25, seed=0)
    x = np.ones((200, 100))
    y = dropout(x)
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 5 * np.sqrt(0.25 * 0.75 / x.size)
    np.testing.assert_allclose(y[kept], 1 / 0.75)
    np.testing.assert_array_equal(dropout.backward(x), y)
    dropout.eval()
    np.testing.assert_array_equal(dropout(x), x)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cross_entropy(reduction, label_smoothing):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((6, 5)) * 3
    labels = rng.integers(0, 5, size=6)
    labels[2] = -100
    ours = CrossEntropyLoss(reduction=reduction, label_smoothing=label_smoothing)
    reference = torch.nn.CrossEntropyLoss(reduction=reduction, label_smoothing=label_smoothing)
    logits_t = torch.tensor(logits, requires_grad=True)
    loss_t = reference(logits_t, torch.tensor(labels))
    loss = ours(logits, labels)
    assert_close(loss, loss_t.detach().numpy(), F64, "loss")
    upstream = rng.standard_normal(loss_t.shape) if reduction == "none" else np.array(1.7)
    (dlogits_t,) = torch_grads([loss_t], [upstream], [logits_t])
    assert_close(ours.backward(upstream), dlogits_t, F64, "dlogits")


def test_cross_entropy_errors():
    loss = CrossEntropyLoss()
    with pytest.raises(ValueError, match=r"target must be in \[0, 3\) or ignore_index=-100, got 3"):
        loss(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(TypeError, match="target must hold integer class indices, got dtype float64"):
        loss(np.zeros((2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"expected input \(N, C\) and target \(N,\), got \(2, 3\) and \(3,\)"):
        loss(np.zeros((2, 3)), np.array([0, 1, 2]))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse(reduction):
    rng = np.random.default_rng(0)
    prediction, target = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    prediction_t = torch.tensor(prediction, requires_grad=True)
    loss_t = torch.nn.MSELoss(reduction=reduction)(prediction_t, torch.tensor(target))
    ours = MSELoss(reduction=reduction)
    assert_close(ours(prediction, target), loss_t.detach().numpy(), F64, "loss")
    upstream = rng.standard_normal(loss_t.shape) if reduction == "none" else np.array(0.3)
    (d_t,) = torch_grads([loss_t], [upstream], [prediction_t])
    assert_close(ours.backward(upstream), d_t, F64, "dprediction")


@pytest.mark.parametrize("batch_first", [True, False])
def test_sequential_classifier_equals_torch(batch_first):
    """Sequential(LSTM, LastStep(), Linear) == torch's LSTM -> output[:, -1] -> Linear, values and gradients."""
    rng = np.random.default_rng(0)
    model = Sequential(
        lstmkit.LSTM(6, 8, batch_first=batch_first, dtype=F64, seed=0), LastStep(), Linear(8, 3, dtype=F64, seed=1)
    )
    assert model[1].batch_first == batch_first
    lstm_t = to_torch_module(model[0], torch.nn.LSTM, F64, input_size=6, hidden_size=8, batch_first=batch_first)
    linear_t = to_torch_module(model[2], torch.nn.Linear, F64, in_features=8, out_features=3)
    x = rng.standard_normal((4, 5, 6))
    labels = rng.integers(0, 3, size=4 if batch_first else 5)
    x_t = torch.tensor(x, requires_grad=True)
    out_t, _ = lstm_t(x_t)
    logits_t = linear_t(out_t[:, -1] if batch_first else out_t[-1])
    loss_t = torch.nn.functional.cross_entropy(logits_t, torch.tensor(labels))
    loss_t.backward()
    criterion = CrossEntropyLoss()
    loss = criterion(model(x), labels)
    dx = model.backward(criterion.backward())
    assert_close(loss, loss_t.detach().numpy(), F64, "loss")
    assert_close(dx, x_t.grad.numpy(), F64, "dx")
    torch_grads_by_name = {f"0.{n}": p.grad for n, p in lstm_t.named_parameters()}
    torch_grads_by_name.update({f"2.{n}": p.grad for n, p in linear_t.named_parameters()})
    assert [n for n, _ in model.named_parameters()] == list(torch_grads_by_name)
    for name, parameter in model.named_parameters():
        assert_close(parameter.grad, torch_grads_by_name[name].numpy(), F64, name)
