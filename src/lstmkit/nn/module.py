"""``Parameter`` and ``Module``: the little that every layer shares.

A module's forward pushes what its backward needs onto a stack and backward pops it (last in,
first out), so a module called T times gets T backward calls in reverse order. Under
``lstmkit.no_grad()`` nothing is pushed.

Threads: each thread has its own stack on each module, so forward/backward pairs match within a
thread: several threads may train one shared layer at once, each backward consuming its own
thread's latest forward, and a backward runs in the thread that ran its forward. Gradients from
all threads add up in ``Parameter.grad`` (under a lock per parameter; their order, and so the
last bits of a float sum, depends on the threads' timing). Inference under ``no_grad()`` stores
nothing and needs none of this.

Every forward and backward runs inside :data:`~.fork_gate.FORK_GATE` (a fork waits until no thread
computes), and a training forward's cache shares no memory with the caller's arrays
(:mod:`.caller_memory`: editing the input or the output in place cannot change a gradient). Each
cache on the stack keeps the versions of the module's parameters at its forward, and the backward
refuses to run when one has changed since (:class:`Parameter`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import NamedTuple

import numpy as np

from ..grad_mode import is_grad_enabled
from .caller_memory import arrays_in, keep_apart
from .fork_gate import FORK_GATE, inside_fork_gate


class Parameter:
    """A trainable array in the owning layer's PyTorch shape, and its accumulated gradient.

    ``version`` counts the changes of ``data`` that go through the parameter (assigning ``.data``,
    ``p.data -= ...``, :meth:`assign`, an optimizer's step, ``load_state_dict``, ``set_weights``),
    as torch's version counter does: a backward whose forward saw another version refuses to run,
    since its gradient would mix weights the forward did not use. A write into the array itself
    (``p.data[...] = x``) is not counted; use :meth:`assign`."""

    __slots__ = ("_data", "grad", "_lock", "version")

    def __init__(self, data: np.ndarray):
        self._data = data
        self.grad: np.ndarray | None = None
        self._lock = threading.Lock()  # backward calls of several threads accumulate one at a time
        self.version = 0

    @property
    def data(self) -> np.ndarray:
        return self._data

    @data.setter
    def data(self, value: np.ndarray) -> None:
        self._data = value
        self.version += 1

    def assign(self, array) -> None:
        """Write ``array`` into ``data`` in place (its shape and dtype stay), counted as a change."""
        self._data[...] = array
        self.version += 1

    def mark_changed(self) -> None:
        """Count a change made to ``data`` in place (the optimizers call it after each update)."""
        self.version += 1

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def accumulate(self, gradient: np.ndarray) -> None:
        """Add ``gradient`` into ``grad`` (PyTorch accumulates across backward calls). Thread-safe:
        NumPy's in-place add lets go of the GIL, so two threads adding at once would lose a sum."""
        with self._lock:
            if self.grad is None:
                self.grad = np.array(gradient, dtype=self.data.dtype, copy=True)
            else:
                self.grad += gradient

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class _Pending(NamedTuple):
    """A forward's cache on the stack, and the versions of its module's parameters it saw."""

    saved: object
    versions: tuple[int, ...]


class _ThreadCaches(threading.local):
    """A module's cache stacks, one per thread: ``stack`` is a new empty list the first time a
    thread looks, and is dropped with its thread."""

    def __init__(self) -> None:
        self.stack: list = []


class Module:
    """Base class: parameters in registration order, child modules, train/eval, a cache stack per thread."""

    def __init_subclass__(cls, **kwargs) -> None:
        """Every subclass's ``backward`` runs inside the fork gate, as ``__call__`` runs ``forward``
        (see :mod:`.fork_gate`: a fork waits until no thread computes)."""
        super().__init_subclass__(**kwargs)
        backward = cls.__dict__.get("backward")
        if callable(backward) and not getattr(backward, "inside_fork_gate", False):
            cls.backward = inside_fork_gate(backward)

    def __init__(self) -> None:
        self._parameters: dict[str, Parameter] = {}
        self._modules: dict[str, Module] = {}
        self._caches = _ThreadCaches()
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
            own[name].assign(array)
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
        """Run :meth:`forward`; a training forward's cache is then kept apart from the caller's
        arrays both ways (see :mod:`.caller_memory`), so editing the input or the result in
        place before ``backward`` cannot change a gradient."""
        stack = self._caches.stack
        depth = len(stack)
        with FORK_GATE:
            result = self.forward(*args, **kwargs)
            if len(stack) > depth:  # this call pushed a cache (a training forward)
                stack[-1], result = keep_apart(stack[-1], result, arrays_in((args, kwargs), array_likes=True))
        return result

    def forward(self, *args, **kwargs):  # pragma: no cover - every layer overrides it
        raise NotImplementedError

    @property
    def _saved(self) -> list:
        """The calling thread's cache stack (forwards without their backward yet, latest last)."""
        return self._caches.stack

    def _save_for_backward(self, saved) -> None:
        """Push what backward needs onto this thread's stack (nothing under ``no_grad()``), with
        the versions of the module's own parameters (see :class:`Parameter`)."""
        if is_grad_enabled():
            versions = tuple(parameter.version for parameter in self._parameters.values())
            self._caches.stack.append(_Pending(saved, versions))

    def _missing_forward(self) -> RuntimeError:
        return RuntimeError(
            f"{type(self).__name__}.backward: expected a matching forward call before it, got none in this "
            "thread (every forward outside no_grad() allows exactly one backward, in the thread that ran it)"
        )

    def _checked(self, pending: _Pending):
        """``pending`` (the top of this thread's stack)'s cache, or a RuntimeError, its forward
        dropped, naming a parameter changed since."""
        if pending.versions != tuple(parameter.version for parameter in self._parameters.values()):
            for (name, parameter), version in zip(self._parameters.items(), pending.versions):
                if parameter.version != version:
                    self._caches.stack.pop()
                    raise RuntimeError(
                        f"{type(self).__name__}.backward: parameter {name} was changed after the forward this "
                        f"backward belongs to (version {version} then, {parameter.version} now: an optimizer "
                        "step, load_state_dict, set_weights or an assignment to .data), so its gradient would "
                        "mix weights that the forward did not use; call backward before optimizer.step() "
                        "(that forward is dropped)"
                    )
        return pending.saved

    def _peek_saved(self):
        """This thread's latest unmatched forward's cache, left on the stack (a backward that checks
        its arguments first pops it only once they are good)."""
        stack = self._caches.stack
        if not stack:
            raise self._missing_forward()
        return self._checked(stack[-1])

    def _pop_saved(self):
        """Take this thread's latest unmatched forward's cache off its stack."""
        stack = self._caches.stack
        if not stack:
            raise self._missing_forward()
        pending = stack[-1]
        saved = self._checked(pending)
        stack.pop()
        return saved

    def clear_saved(self) -> None:
        """Drop this thread's caches of forwards that will never get a backward (e.g. after an
        aborted step); other threads' are theirs to drop."""
        self._caches.stack.clear()
