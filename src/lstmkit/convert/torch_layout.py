"""PyTorch's ``state_dict`` and ``torch.nn`` modules, both ways.

lstmkit's parameter names and layouts are PyTorch's, so a layer's state converts as it is
(checked, arrays <-> tensors, copied); whole models become ``torch.nn`` modules with the same
weights, the same forward and the same ``state_dict()`` keys:

    ================================  =========================================================
    lstmkit                           torch
    ================================  =========================================================
    LSTM, GRU, RNN                    torch.nn.LSTM, GRU, RNN (num_layers, bias, batch_first,
                                      dropout, bidirectional, proj_size, nonlinearity, dtype)
    Linear, Embedding, Dropout        torch.nn.Linear, Embedding (padding_idx), Dropout
    LastStep, Sequential              small torch.nn.Modules doing the same (a recurrent
                                      layer's output goes on, its state does not), keys "0.", ...
    LanguageModel                     a torch.nn.Module: embedding, input_dropout, lstm,
                                      output_dropout, decoder; ``(tokens, state) -> logits, state``
    ================================  =========================================================

torch is imported inside the functions, never when this module is imported. Refused (no torch
twin): the LSTM variants (``layer_norm``, ``peepholes``, ``zoneout``, ``runtime_forget_bias``),
``recurrent_dropout``, ``return_states="all"``, ``merge_mode`` other than "concat", and per-layer
hidden sizes that differ. Dropout (between layers too) is the same function in evaluation; in
training each framework draws its own masks.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..nn.kinds import KINDS
from .spec import LayerSpec, checked_state


def to_torch_state_dict(state: Mapping[str, np.ndarray], spec: LayerSpec) -> dict:
    """``state`` (checked against ``spec``) as a dict of torch tensors (copies), PyTorch's order."""
    import torch

    state = checked_state(f"to_torch_state_dict({spec.mode})", state, spec)
    return {name: torch.from_numpy(np.array(array)) for name, array in state.items()}


def from_torch_state_dict(state_dict: Mapping, spec: LayerSpec) -> dict[str, np.ndarray]:
    """A torch ``state_dict`` (tensors or arrays; checked against ``spec``) as a state of NumPy arrays (copies)."""
    state = checked_state(f"from_torch_state_dict({spec.mode})", state_dict, spec)
    return {name: np.array(array) for name, array in state.items()}


def to_torch_module(model):
    """A ``torch.nn.Module`` computing what ``model`` computes, with its weights (copied), dtype and
    train/eval mode: an lstmkit ``LSTM``, ``GRU``, ``RNN``, ``Linear``, ``Embedding``, ``Dropout``,
    ``LastStep``, ``Sequential`` of those, or ``LanguageModel`` (see the module docstring)."""
    converted = _convert(model, f"to_torch_module({type(model).__name__})")
    return converted.train(model.training)


def from_torch_module(module, **options):
    """The lstmkit ``LSTM``, ``GRU`` or ``RNN`` of a ``torch.nn.LSTM``, ``GRU`` or ``RNN``, with its
    weights (copied), ``batch_first``, ``dropout`` and dtype; ``options`` go to the lstmkit
    constructor and override those."""
    import torch

    owner = f"from_torch_module({type(module).__name__})"
    if not isinstance(module, torch.nn.RNNBase) or module.mode not in KINDS:
        raise TypeError(f"{owner}: expected a torch.nn.LSTM, GRU or RNN, got {type(module).__name__}")
    dtype = module.weight_ih_l0.dtype
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{owner}: lstmkit computes in float32 or float64, got a module of {dtype}")
    spec = LayerSpec(
        module.mode,
        module.input_size,
        (module.hidden_size,) * module.num_layers,
        module.bidirectional,
        getattr(module, "proj_size", 0),
        module.bias,
    )
    defaults = dict(
        batch_first=module.batch_first, dropout=module.dropout, dtype=torch.empty(0, dtype=dtype).numpy().dtype
    )
    layer = spec.build(from_torch_state_dict(module.state_dict(), spec), **{**defaults, **options})
    return layer.train(module.training)


# ---- lstmkit -> torch, one kind of module each ------------------------------------------
def _convert(model, owner: str):
    import torch

    from ..nn.language_model import LanguageModel
    from ..nn.layers import Dropout, Embedding, LastStep, Linear, Sequential
    from ..nn.rnn_base import RNNBase
    from . import _torch_modules

    if isinstance(model, RNNBase):
        return _recurrent(model, owner)
    if isinstance(model, Linear):
        linear = torch.nn.Linear(model.in_features, model.out_features, "bias" in model._parameters)
        return _with_weights(linear.to(_torch_dtype(model.dtype)), model)
    if isinstance(model, Embedding):
        embedding = torch.nn.Embedding(model.num_embeddings, model.embedding_dim, model.padding_idx)
        return _with_weights(embedding.to(_torch_dtype(model.dtype)), model)
    if isinstance(model, Dropout):
        return torch.nn.Dropout(model.p)
    if isinstance(model, LastStep):
        return _torch_modules.LastStep(bool(model.batch_first))
    if isinstance(model, Sequential):
        return _torch_modules.Sequential(
            *(_convert(child, f"{owner}, module {index} ({type(child).__name__})") for index, child in enumerate(model))
        )
    if isinstance(model, LanguageModel):
        children = {name: _convert(child, f"{owner}, {name}") for name, child in model._modules.items()}
        return _torch_modules.LanguageModel(**children)
    raise TypeError(
        f"{owner}: expected an lstmkit LSTM, GRU, RNN, Linear, Embedding, Dropout, LastStep, Sequential or "
        f"LanguageModel, got {type(model).__name__}"
    )


def _torch_dtype(dtype):
    import torch

    return {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[np.dtype(dtype)]


def _with_weights(module, model):
    """``module`` holding ``model``'s parameters (same names), copied."""
    import torch

    module.load_state_dict({name: torch.from_numpy(array) for name, array in model.state_dict().items()})
    return module


def _refuse_what_torch_lacks(owner: str, layer) -> None:
    lacking = [f"{name}={value!r}" for name, value in layer._variants_on().items()]
    if layer.recurrent_dropout:
        lacking.append(f"recurrent_dropout={layer.recurrent_dropout!r}")
    if layer._return_states != "last":
        lacking.append(f"return_states={layer._return_states!r}")
    if layer.merge_mode != "concat":
        lacking.append(f"merge_mode={layer.merge_mode!r}")
    if len(set(layer.hidden_sizes)) > 1:
        lacking.append(f"per-layer hidden sizes {list(layer.hidden_sizes)}")
    if lacking:
        raise ValueError(
            f"{owner}: torch.nn.{layer.mode.split('_')[0]} has no {', '.join(lacking)}; only a layer without "
            "them has a torch twin"
        )


def _recurrent(layer, owner: str):
    import torch

    _refuse_what_torch_lacks(owner, layer)
    spec = LayerSpec.of(layer)
    options = dict(
        num_layers=spec.num_layers,
        bias=spec.bias,
        batch_first=layer.batch_first,
        dropout=layer.dropout,
        bidirectional=spec.bidirectional,
        dtype=_torch_dtype(layer.dtype),
    )
    if spec.mode == "LSTM":
        module = torch.nn.LSTM(spec.input_size, spec.hidden_sizes[0], proj_size=spec.proj_size, **options)
    elif spec.mode == "GRU":
        module = torch.nn.GRU(spec.input_size, spec.hidden_sizes[0], **options)
    else:
        module = torch.nn.RNN(spec.input_size, spec.hidden_sizes[0], nonlinearity=layer.nonlinearity, **options)
    module.load_state_dict(to_torch_state_dict(layer.state_dict(), spec))
    return module
