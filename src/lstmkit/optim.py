"""Optimizers, gradient clipping and learning-rate schedules with PyTorch's update rules and defaults.

Each optimizer holds a list of :class:`~lstmkit.nn.Parameter` and updates ``data`` in place from
``grad`` (parameters whose grad is None are skipped, as in torch). ``state_dict()`` returns plain
numbers and arrays so a checkpoint can store it without pickling.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .nn.module import Parameter


def _parameter_list(owner: str, parameters: Iterable[Parameter]) -> list[Parameter]:
    parameters = list(parameters)
    if not parameters:
        raise ValueError(f"{owner}: expected a non-empty iterable of Parameters, got an empty one")
    return parameters


def _check_lr(owner, lr):
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or lr < 0:
        raise ValueError(f"{owner}: lr must be a number >= 0, got {lr!r}")
    return float(lr)


STATE_NAMES = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer")
_STATE_KEY = re.compile(r"(0|[1-9][0-9]{0,17})\.(" + "|".join(STATE_NAMES) + ")")


def parse_state_key(owner: str, key: str, count: int) -> tuple[int, str]:
    """``(index, name)`` of a state key ``"<index>.<name>"`` (``state_dict()``'s format), or a ValueError.

    ``index`` must name one of the ``count`` parameters (0 to count - 1: ``-1.step`` or ``999.step``
    are refused) and ``name`` one of :data:`STATE_NAMES`.
    """
    match = _STATE_KEY.fullmatch(key) if isinstance(key, str) else None
    if match is None or int(match[1]) >= count:
        raise ValueError(
            f"{owner}: state key {key!r} does not fit this optimizer's parameters: expected '<index>.<name>' "
            f"with index in 0..{count - 1} (one per parameter) and name one of {', '.join(STATE_NAMES)}"
        )
    return int(match[1]), match[2]


def state_shape(name: str, parameter_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of a parameter's state array ``name``: () for Adam's step count, else the parameter's."""
    return () if name == "step" else tuple(parameter_shape)


class Optimizer:
    """Base: a parameter list, a learning rate, per-parameter state arrays, zero_grad and state_dict."""

    def __init__(self, parameters: Iterable[Parameter], lr: float) -> None:
        self.parameters = _parameter_list(type(self).__name__, parameters)
        self.lr = _check_lr(type(self).__name__, lr)
        self.step_count = 0
        self.state: list[dict[str, np.ndarray]] = [{} for _ in self.parameters]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for parameter in self.parameters:
            if set_to_none or parameter.grad is None:
                parameter.grad = None
            else:
                parameter.grad.fill(0)

    def step(self) -> None:
        self.step_count += 1
        for parameter, state in zip(self.parameters, self.state):
            if parameter.grad is not None:
                self._update(parameter.data, parameter.grad, state)
                parameter.mark_changed()

    def _update(self, data, grad, state) -> None:  # pragma: no cover - every optimizer overrides it
        raise NotImplementedError

    def state_dict(self) -> dict:
        """``{"lr", "step_count", "state": {"<index>.<name>": array}}``: numbers and arrays only."""
        arrays = {
            f"{index}.{name}": value.copy() for index, state in enumerate(self.state) for name, value in state.items()
        }
        return {"lr": self.lr, "step_count": self.step_count, "state": arrays}

    def load_state_dict(self, state_dict: dict) -> None:
        """Take ``state_dict()``'s numbers and arrays; a ValueError for a key or shape that does not fit."""
        owner = f"{type(self).__name__}.load_state_dict"
        states = [{} for _ in self.parameters]
        for key, value in state_dict["state"].items():
            index, name = parse_state_key(owner, key, len(self.parameters))
            expected = state_shape(name, self.parameters[index].shape)
            if np.shape(value) != expected:
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: state {key!r} of shape {np.shape(value)} "
                    "does not fit this optimizer's parameters"
                )
            states[index][name] = np.array(
                value, dtype=np.float64 if name == "step" else self.parameters[index].data.dtype
            )
        self.lr, self.step_count, self.state = float(state_dict["lr"]), int(state_dict["step_count"]), states


class SGD(Optimizer):
    """Stochastic gradient descent as ``torch.optim.SGD``::

    g = grad + weight_decay * w
    b = g (first step), else momentum * b + (1 - dampening) * g
    g = g + momentum * b if nesterov else b          (when momentum > 0)
    w = w - lr * g
    """

    def __init__(
        self,
        parameters: Iterable[Parameter],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(parameters, lr)
        if momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: momentum and weight_decay must be >= 0, got {momentum} and {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov momentum requires momentum > 0 and dampening = 0")
        self.momentum, self.dampening, self.weight_decay, self.nesterov = momentum, dampening, weight_decay, nesterov

    def _update(self, data, grad, state) -> None:
        if self.weight_decay:
            grad = grad + self.weight_decay * data
        if self.momentum:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = np.array(grad, copy=True)
            else:
                buffer = state["momentum_buffer"]
                buffer *= self.momentum
                buffer += (1 - self.dampening) * grad
            buffer = state["momentum_buffer"]
            grad = grad + self.momentum * buffer if self.nesterov else buffer
        data -= self.lr * grad


class Adam(Optimizer):
    """Adam as ``torch.optim.Adam`` (L2 ``weight_decay`` added to the gradient)::

    m = β1 m + (1 - β1) g;   v = β2 v + (1 - β2) g²   (v_max = max(v_max, v) with amsgrad)
    w = w - lr / (1 - β1ᵗ) * m / (sqrt(v) / sqrt(1 - β2ᵗ) + eps)
    """

    decoupled_weight_decay = False
    default_weight_decay = 0.0  # torch's default: 0 for Adam, 1e-2 for AdamW

    def __init__(
        self,
        parameters: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float | None = None,
        amsgrad: bool = False,
    ) -> None:
        """``weight_decay=None`` is the class' torch default (0 for Adam, 1e-2 for AdamW)."""
        super().__init__(parameters, lr)
        weight_decay = self.default_weight_decay if weight_decay is None else weight_decay
        if not all(0.0 <= beta < 1.0 for beta in betas) or len(betas) != 2:
            raise ValueError(f"{type(self).__name__}: betas must be two numbers in [0, 1), got {betas}")
        self.betas, self.eps, self.weight_decay, self.amsgrad = tuple(betas), eps, weight_decay, amsgrad

    def _update(self, data, grad, state) -> None:
        beta1, beta2 = self.betas
        if self.weight_decay and self.decoupled_weight_decay:
            data *= 1 - self.lr * self.weight_decay
        elif self.weight_decay:
            grad = grad + self.weight_decay * data
        if "exp_avg" not in state:
            state["step"] = np.array(0.0)
            state["exp_avg"] = np.zeros_like(data)
            state["exp_avg_sq"] = np.zeros_like(data)
            if self.amsgrad:
                state["max_exp_avg_sq"] = np.zeros_like(data)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= beta1
        m += (1 - beta1) * grad
        v *= beta2
        v += (1 - beta2) * grad * grad
        if self.amsgrad:
            np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            v = state["max_exp_avg_sq"]
        state["step"] += 1  # per parameter: one skipped for lack of a gradient does not advance
        t = float(state["step"])
        bias_correction1 = 1 - beta1**t
        bias_correction2_sqrt = math.sqrt(1 - beta2**t)
        denominator = np.sqrt(v) / bias_correction2_sqrt + self.eps
        data -= (self.lr / bias_correction1) * m / denominator


class AdamW(Adam):
    """Adam with decoupled weight decay (``w *= 1 - lr * weight_decay`` first), as ``torch.optim.AdamW``."""

    decoupled_weight_decay = True
    default_weight_decay = 1e-2


def clip_grad_norm_(parameters: Iterable[Parameter], max_norm: float, norm_type: float = 2.0) -> float:
    """Scale all gradients together so their joint norm is at most ``max_norm``; return the norm before.

    As ``torch.nn.utils.clip_grad_norm_``: the scale is ``max_norm / (norm + 1e-6)``, applied only
    when it is below 1. A non-finite norm is returned as it is (the caller decides what to do).
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    if math.isinf(norm_type):
        total = max(float(np.max(np.abs(g))) for g in grads)
    elif norm_type == 2.0:
        total = math.sqrt(sum(float(np.dot(g.ravel(), g.ravel())) for g in grads))
    else:
        total = float(sum(float(np.sum(np.abs(g.astype(np.float64)) ** norm_type)) for g in grads) ** (1.0 / norm_type))
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for g in grads:
            g *= g.dtype.type(scale)
    return total


class StepLR:
    """lr = base_lr * gamma ** (epoch // step_size); call ``step()`` once per epoch."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        self.optimizer, self.step_size, self.gamma = optimizer, int(step_size), float(gamma)
        self.base_lr, self.last_epoch = optimizer.lr, 0

    def step(self, metric: float | None = None) -> None:
        self.last_epoch += 1
        self.optimizer.lr = self.base_lr * self.gamma ** (self.last_epoch // self.step_size)

    def state_dict(self) -> dict:
        return {"base_lr": self.base_lr, "last_epoch": self.last_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.base_lr, self.last_epoch = float(state["base_lr"]), int(state["last_epoch"])


class CosineAnnealingLR:
    """lr = eta_min + (base_lr - eta_min) (1 + cos(pi t / T_max)) / 2, the closed form of torch's schedule."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        self.optimizer, self.T_max, self.eta_min = optimizer, int(T_max), float(eta_min)
        self.base_lr, self.last_epoch = optimizer.lr, 0

    def step(self, metric: float | None = None) -> None:
        self.last_epoch += 1
        progress = math.pi * self.last_epoch / self.T_max
        self.optimizer.lr = self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(progress)) / 2

    state_dict = StepLR.state_dict
    load_state_dict = StepLR.load_state_dict


class ReduceLROnPlateau:
    """Multiply lr by ``factor`` after ``patience`` epochs without improvement (torch's 'rel' threshold)."""

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        min_lr: float = 0.0,
    ) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceLROnPlateau: mode must be 'min' or 'max', got {mode!r}")
        if not 0 < factor < 1:
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1), got {factor}")
        self.optimizer, self.mode, self.factor, self.patience = optimizer, mode, float(factor), int(patience)
        self.threshold, self.min_lr = float(threshold), float(min_lr)
        self.best = math.inf if mode == "min" else -math.inf
        self.bad_epochs = 0

    def _improves(self, metric: float) -> bool:
        if self.mode == "min":
            return metric < self.best * (1 - self.threshold)
        return metric > self.best * (1 + self.threshold)

    def step(self, metric: float) -> None:
        if self._improves(float(metric)):
            self.best, self.bad_epochs = float(metric), 0
        else:
            self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            self.optimizer.lr = max(self.optimizer.lr * self.factor, self.min_lr)
            self.bad_epochs = 0

    def state_dict(self) -> dict:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.bad_epochs = float(state["best"]), int(state["bad_epochs"])


class LambdaLR:
    """lr = base_lr * factor(completed_epochs), as ``torch.optim.lr_scheduler.LambdaLR``."""

    def __init__(self, optimizer: Optimizer, lr_lambda: Callable[[int], float]) -> None:
        self.optimizer, self.lr_lambda = optimizer, lr_lambda
        self.base_lr, self.last_epoch = optimizer.lr, 0
        optimizer.lr = self.base_lr * lr_lambda(0)

    def step(self, metric: float | None = None) -> None:
        self.last_epoch += 1
        self.optimizer.lr = self.base_lr * self.lr_lambda(self.last_epoch)

    state_dict = StepLR.state_dict
    load_state_dict = StepLR.load_state_dict
