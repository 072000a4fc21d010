"""Feed-forward layers with PyTorch's names and layouts: Linear, Embedding, Dropout, LastStep, Sequential.

Each layer's forward pushes what its backward needs; backward pops it and adds parameter
gradients into ``Parameter.grad``, returning the gradient of its input (None for integer input).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from . import checks
from .masks import inverted_dropout_mask
from .module import Module
from .rnn_base import RNNBase


class Linear(Module):
    """``y = x Wᵀ + b``, as ``torch.nn.Linear``.

    ==========  ===================  ==================================================
    input       (*, in_features)     any leading axes
    output      (*, out_features)
    weight      (out_features, in_features)   uniform(-1/sqrt(in), 1/sqrt(in))
    bias        (out_features,)               uniform(-1/sqrt(in), 1/sqrt(in))
    ==========  ===================  ==================================================
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, dtype=np.float32, seed=None):
        super().__init__()
        owner = type(self).__name__
        self.in_features = checks.check_size(owner, "in_features", in_features)
        self.out_features = checks.check_size(owner, "out_features", out_features)
        self.dtype = checks.check_dtype(owner, dtype)
        rng = np.random.default_rng(seed)
        bound = 1.0 / math.sqrt(self.in_features)
        weight = rng.uniform(-bound, bound, (self.out_features, self.in_features))
        self.register_parameter("weight", weight.astype(self.dtype))
        if checks.check_flag(owner, "bias", bias):
            self.register_parameter("bias", rng.uniform(-bound, bound, (self.out_features,)).astype(self.dtype))

    def forward(self, input: ArrayLike) -> np.ndarray:
        owner = type(self).__name__
        x = checks.as_float_array(owner, "input", input, self.dtype)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"{owner}: input.shape[-1] must equal in_features={self.in_features}, got shape {x.shape}")
        self._save_for_backward(x)
        y = x.reshape(-1, self.in_features) @ self.weight.data.T  # one 2-D product, not one per leading index
        if "bias" in self._parameters:
            y += self.bias.data
        return y.reshape(x.shape[:-1] + (self.out_features,))

    def backward(self, doutput: ArrayLike) -> np.ndarray | None:
        x = self._pop_saved()
        dy = np.asarray(doutput, dtype=self.dtype).reshape(-1, self.out_features)
        self.weight.accumulate(dy.T @ x.reshape(-1, self.in_features))
        if "bias" in self._parameters:
            self.bias.accumulate(dy.sum(axis=0))
        return (dy @ self.weight.data).reshape(x.shape)

    def __repr__(self) -> str:
        return (
            f"Linear(in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={'bias' in self._parameters})"
        )


class Embedding(Module):
    """Rows of ``weight`` looked up by integer index, as ``torch.nn.Embedding`` (init N(0, 1)).

    ``padding_idx``'s row starts at zero and never receives a gradient.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        *,
        dtype=np.float32,
        seed: int | None = None,
    ):
        super().__init__()
        owner = type(self).__name__
        self.num_embeddings = checks.check_size(owner, "num_embeddings", num_embeddings)
        self.embedding_dim = checks.check_size(owner, "embedding_dim", embedding_dim)
        if padding_idx is not None:
            if not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(
                    f"{owner}: padding_idx must be in [-{num_embeddings}, {num_embeddings}), got {padding_idx}"
                )
            padding_idx %= self.num_embeddings
        self.padding_idx = padding_idx
        self.dtype = checks.check_dtype(owner, dtype)
        weight = np.random.default_rng(seed).standard_normal((self.num_embeddings, self.embedding_dim))
        weight = weight.astype(self.dtype)
        if padding_idx is not None:
            weight[padding_idx] = 0
        self.register_parameter("weight", weight)

    def forward(self, input: ArrayLike) -> np.ndarray:
        owner = type(self).__name__
        indices = np.asarray(input)
        if indices.dtype.kind not in "iu":
            raise TypeError(f"{owner}: input must hold integer indices, got dtype {indices.dtype}")
        if indices.size and (indices.min() < 0 or indices.max() >= self.num_embeddings):
            raise ValueError(
                f"{owner}: indices must be in [0, {self.num_embeddings}), got values from {indices.min()} to "
                f"{indices.max()}"
            )
        self._save_for_backward(indices)
        return self.weight.data[indices]

    def backward(self, doutput: ArrayLike) -> np.ndarray | None:
        indices = self._pop_saved()
        gradient = np.zeros_like(self.weight.data)
        np.add.at(gradient, indices.ravel(), np.asarray(doutput, self.dtype).reshape(-1, self.embedding_dim))
        if self.padding_idx is not None:
            gradient[self.padding_idx] = 0
        self.weight.accumulate(gradient)
        return None

    def __repr__(self) -> str:
        extra = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"Embedding({self.num_embeddings}, {self.embedding_dim}{extra})"


class Dropout(Module):
    """Zero each element with probability p in training, scale the rest by 1/(1-p); identity in eval."""

    def __init__(self, p: float = 0.5, *, seed=None):
        super().__init__()
        self.p = checks.check_probability(type(self).__name__, "p", p)
        self._rng = np.random.default_rng(seed)

    def forward(self, input: ArrayLike) -> np.ndarray:
        x = np.asarray(input)
        if not self.training or self.p == 0.0:
            self._save_for_backward(None)
            return x
        mask = inverted_dropout_mask(self._rng, x.shape, self.p, x.dtype)
        self._save_for_backward(mask)
        return x * mask

    def backward(self, doutput: ArrayLike) -> np.ndarray | None:
        mask = self._pop_saved()
        return doutput if mask is None else doutput * mask

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"


class LastStep(Module):
    """The last time step of a sequence: ``x[-1]``, or ``x[:, -1]`` when ``batch_first``.

    ==========  ===================================  ================
    input       (L, N, H), (N, L, H) or (L, H)       a recurrent layer's output
    output      (N, H) or (H,)
    ==========  ===================================  ================

    Inside a :class:`Sequential`, ``batch_first=None`` (the default) takes the setting of the
    recurrent layer before it; standing alone, None means time-major (PyTorch's default).
    """

    def __init__(self, batch_first: bool | None = None):
        super().__init__()
        self.batch_first = batch_first

    def forward(self, input: ArrayLike) -> np.ndarray:
        x = np.asarray(input)
        if x.ndim not in (2, 3):
            raise ValueError(f"LastStep: expected a sequence of rank 2 (L, H) or 3, got shape {x.shape}")
        self._save_for_backward(x.shape)
        return x[:, -1] if self.batch_first and x.ndim == 3 else x[-1]

    def backward(self, doutput: ArrayLike) -> np.ndarray | None:
        shape = self._pop_saved()
        dx = np.zeros(shape, dtype=np.asarray(doutput).dtype)
        if self.batch_first and len(shape) == 3:
            dx[:, -1] = doutput
        else:
            dx[-1] = doutput
        return dx

    def __repr__(self) -> str:
        return f"LastStep(batch_first={self.batch_first})"


class Sequential(Module):
    """Modules applied in order; backward runs them in reverse.

    A recurrent layer returns ``(output, state)``: only ``output`` goes on to the next module,
    and its backward is given no state gradient. Children are named "0", "1", ... as in torch,
    so parameters are called ``0.weight_ih_l0``, ``2.weight``, ...
    """

    def __init__(self, *modules: Module):
        super().__init__()
        batch_first = None
        for index, module in enumerate(modules):
            if not isinstance(module, Module):
                raise TypeError(f"Sequential: argument {index} must be a Module, got {type(module).__name__}")
            if isinstance(module, LastStep) and module.batch_first is None:
                module.batch_first = bool(batch_first)
            batch_first = getattr(module, "batch_first", batch_first)
            self.register_module(str(index), module)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index: int) -> Module:
        return list(self._modules.values())[index]

    def __len__(self) -> int:
        return len(self._modules)

    def forward(self, input: ArrayLike) -> np.ndarray:
        x = input
        for module in self:
            x = module(x)
            if isinstance(module, RNNBase):  # (output, state): only the output goes on
                x = x[0]
        return x

    def backward(self, doutput: ArrayLike) -> np.ndarray | None:
        gradient = doutput
        for module in reversed(list(self)):
            gradient = module.backward(gradient)
            if isinstance(module, RNNBase):  # (dinput, dstate)
                gradient = gradient[0]
        return gradient

    def __repr__(self) -> str:
        lines = [f"  ({name}): {module!r}" for name, module in self._modules.items()]
        return "Sequential(\n" + "\n".join(lines) + "\n)"
