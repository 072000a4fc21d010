"""``Parameter`` and ``Module``: the little that every layer shares.

A module's forward pushes what its backward needs onto a stack and backward pops it (last in,
first out), so a module called T times gets T backward calls in reverse order. Under
``lstmkit.no_grad()`` nothing is pushed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from ..grad_mode import is_grad_enabled


class Parameter:
    """A trainable array in the owning layer's PyTorch shape, and its accumulated gradient."""

    __slots__ = ("data", "grad")

    def __init__(self, data: np.ndarray):
        self.data = data
        self.grad: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def accumulate(self, gradient: np.ndarray) -> None:
        """Add ``gradient`` into ``grad`` (PyTorch accumulates across backward calls)."""
        if self.grad is None:
            self.grad = np.array(gradient, dtype=self.data.dtype, copy=True)
        else:
            self.grad += gradient

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class Module:
    """Base class: parameters in registration order, child modules, train/eval, a cache stack."""

    def __init__(self) -> None:
        self._parameters: dict[str, Parameter] = {}
        self._modules: dict[str, Module] = {}
        self._saved: list = []
        self.training = True

    # ---- registration -------------------------------------------------------------
    def register_parameter(self, name: str, data: np.ndarray) -> Parameter:
        parameter = Parameter(data)
        self._parameters[name] = parameter
        return parameter

    def register_module(self, name: str, module: Module) -> Module:
        self._modules[name] = module
        return module

    def __getattr__(self, name: str):
        """``lstm.weight_ih_l0`` and ``model.encoder`` as in PyTorch (called only for unknown attributes)."""
        registry = self.__dict__
        for table in ("_parameters", "_modules"):
            if name in registry.get(table, {}):
                return registry[table][name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    # ---- parameters ---------------------------------------------------------------
    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """(name, Parameter) pairs in PyTorch's order and with PyTorch's names."""
        for name, parameter in self._parameters.items():
            yield prefix + name, parameter
        for child_name, child in self._modules.items():
            yield from child.named_parameters(prefix + child_name + ".")

    def modules(self) -> Iterator[Module]:
        """This module and every descendant, depth first (PyTorch's order)."""
        yield self
        for child in self._modules.values():
            yield from child.modules()

    def reseed(self, seed) -> None:
        """Restart the random generators (dropout masks) of this module and its descendants from ``seed``."""
        for index, module in enumerate(self.modules()):
            if "_rng" in module.__dict__:
                module._rng = np.random.default_rng([*np.atleast_1d(seed).tolist(), index])

    def parameters(self) -> Iterator[Parameter]:
        for _, parameter in self.named_parameters():
            yield parameter

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget accumulated gradients (``None`` by default, as PyTorch)."""
        for parameter in self.parameters():
            if set_to_none or parameter.grad is None:
                parameter.grad = None
            else:
                parameter.grad.fill(0)

    # ---- state dict ---------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Name -> copy of the parameter's array."""
        return {name: parameter.data.copy() for name, parameter in self.named_parameters()}

    def load_state_dict(self, state_dict: Mapping[str, np.ndarray], strict: bool = True) -> tuple[list[str], list[str]]:
        """Copy arrays into the parameters; refuse (naming every problem) before changing any.

        Returns ``(missing_keys, unexpected_keys)`` as lists, like PyTorch's named tuple.
        """
        own = dict(self.named_parameters())
        missing = [name for name in own if name not in state_dict]
        unexpected = [name for name in state_dict if name not in own]
        problems = []
        arrays = {}
        for name, value in state_dict.items():
            if name not in own:
                continue
            array = np.asarray(value)
            if array.shape != own[name].shape:
                problems.append(f"{name}: expected shape {own[name].shape}, got {array.shape}")
            elif not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
                problems.append(f"{name}: expected a real floating-point array, got dtype {array.dtype}")
            else:
                arrays[name] = array
        if strict and missing:
            problems.append(f"missing keys {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys {unexpected}")
        if problems:
            raise ValueError(f"{type(self).__name__}.load_state_dict refused: " + "; ".join(problems))
        for name, array in arrays.items():
            own[name].data[...] = array
        return missing, unexpected

    # ---- modes --------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        self.training = bool(mode)
        for child in self._modules.values():
            child.train(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    # ---- forward / backward bookkeeping -----------------------------------------------
    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):  # pragma: no cover - every layer overrides it
        raise NotImplementedError

    def _save_for_backward(self, saved) -> None:
        if is_grad_enabled():
            self._saved.append(saved)

    def _pop_saved(self):
        if not self._saved:
            raise RuntimeError(
                f"{type(self).__name__}.backward: expected a matching forward call before it, "
                "got none (every forward outside no_grad() allows exactly one backward)"
            )
        return self._saved.pop()

    def clear_saved(self) -> None:
        """Drop caches of forwards that will never get a backward (e.g. after an aborted step)."""
        self._saved.clear()
