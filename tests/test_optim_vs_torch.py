"""Optimizers step for step against torch.optim on the same gradients; clipping and schedules likewise."""

import math

import numpy as np
import pytest
import torch

from lstmkit.nn.module import Parameter
from lstmkit.optim import SGD, Adam, AdamW, CosineAnnealingLR, LambdaLR, ReduceLROnPlateau, StepLR, clip_grad_norm_

SHAPES = [(4, 3), (5,), (2, 2, 2)]


def run_both(ours_class, torch_class, steps=6, **kwargs):
    rng = np.random.default_rng(0)
    values = [rng.standard_normal(shape) for shape in SHAPES]
    ours = [Parameter(v.copy()) for v in values]
    theirs = [torch.tensor(v.copy(), requires_grad=True) for v in values]
    optimizer = ours_class(ours, **kwargs)
    reference = torch_class(theirs, **kwargs)
    for step in range(steps):
        for p, t in zip(ours, theirs):
            gradient = rng.standard_normal(p.shape)
            if step == 2 and p is ours[1]:
                p.grad, t.grad = None, None  # a parameter without gradient is skipped
                continue
            p.grad, t.grad = gradient.copy(), torch.tensor(gradient)
        optimizer.step()
        reference.step()
        for p, t in zip(ours, theirs):
            np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(lr=0.1),
        dict(lr=0.1, momentum=0.9),
        dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
        dict(lr=0.1, momentum=0.5, dampening=0.3, weight_decay=0.1),
    ],
)
def test_sgd(kwargs):
    run_both(SGD, torch.optim.SGD, **kwargs)


@pytest.mark.parametrize(
    "kwargs", [dict(lr=1e-2), dict(lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1), dict(lr=1e-2, amsgrad=True)]
)
def test_adam(kwargs):
    run_both(Adam, torch.optim.Adam, **kwargs)


@pytest.mark.parametrize("kwargs", [dict(lr=1e-2), dict(lr=1e-2, weight_decay=0.3, amsgrad=True)])
def test_adamw(kwargs):
    run_both(AdamW, torch.optim.AdamW, **kwargs)


@pytest.mark.parametrize("max_norm,norm_type", [(1.0, 2.0), (100.0, 2.0), (0.5, 1.0), (0.5, math.inf)])
def test_clip_grad_norm(max_norm, norm_type):
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(shape) for shape in SHAPES]
    ours = [Parameter(np.zeros(shape)) for shape in SHAPES]
    theirs = [torch.zeros(shape, dtype=torch.float64, requires_grad=True) for shape in SHAPES]
    for p, t, g in zip(ours, theirs, grads):
        p.grad, t.grad = g.copy(), torch.tensor(g)
    total = clip_grad_norm_(ours, max_norm, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    assert abs(total - float(expected)) < 1e-10
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=0, atol=1e-12)


def schedule_pair(ours_factory, torch_factory, metrics=None, epochs=12):
    ours_optimizer = SGD([Parameter(np.zeros(1))], lr=0.5)
    torch_optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)
    ours, theirs = ours_factory(ours_optimizer), torch_factory(torch_optimizer)
    for epoch in range(epochs):
        assert abs(ours_optimizer.lr - torch_optimizer.param_groups[0]["lr"]) < 1e-12, f"epoch {epoch}"
        torch_optimizer.step()
        if metrics is None:
            ours.step()
            theirs.step()
        else:
            ours.step(metrics[epoch])
            theirs.step(metrics[epoch])


def test_step_lr():
    schedule_pair(lambda o: StepLR(o, 3, 0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5))


def test_cosine():
    schedule_pair(
        lambda o: CosineAnnealingLR(o, 10, 0.01),
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 10, 0.01),
        epochs=10,
    )


def test_lambda():
    factor = lambda epoch: 0.5 ** max(epoch - 3, 0)  # noqa: E731
    schedule_pair(lambda o: LambdaLR(o, factor), lambda o: torch.optim.lr_scheduler.LambdaLR(o, factor))


@pytest.mark.parametrize("mode", ["min", "max"])
def test_reduce_on_plateau(mode):
    metrics = [1.0, 0.9, 0.95, 0.93, 0.92, 0.91, 0.8, 0.85, 0.86, 0.87, 0.88, 0.9]
    schedule_pair(
        lambda o: ReduceLROnPlateau(o, mode=mode, factor=0.5, patience=2),
        lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o, mode=mode, factor=0.5, patience=2),
        metrics,
    )


def test_optimizer_state_round_trip():
    parameters = [Parameter(np.ones(3)), Parameter(np.ones(2))]
    optimizer = Adam(parameters, lr=0.1)
    for p in parameters:
        p.grad = np.full(p.shape, 0.5)
    optimizer.step()
    copy = Adam([Parameter(p.data.copy()) for p in parameters], lr=0.1)
    copy.load_state_dict(optimizer.state_dict())
    for p, q in zip(parameters, copy.parameters):
        p.grad = q.grad = np.full(p.shape, -0.2)
    optimizer.step()
    copy.step()
    for p, q in zip(parameters, copy.parameters):
        np.testing.assert_array_equal(p.data, q.data)
    with pytest.raises(ValueError, match="does not fit this optimizer's parameters"):
        Adam([Parameter(np.ones(4))]).load_state_dict(optimizer.state_dict())
