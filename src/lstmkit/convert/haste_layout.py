"""haste's (github.com/lmnt-com/haste) PyTorch ``LSTM``, ``GRU`` and ``LayerNormLSTM`` parameters, both ways.

A haste layer is one layer, one direction; a unidirectional stack is one dict per layer (haste
layers stacked by hand), as :mod:`.onnx_layout`'s list. Per layer (I input features, H units):

    ================  ===========  ======================================================
    haste             shape        from PyTorch's (layer k)
    ================  ===========  ======================================================
    kernel            (I, G*H)     weight_ih_l{k}ᵀ, gate blocks in haste's order
    recurrent_kernel  (H, G*H)     weight_hh_l{k}ᵀ, reordered
    bias              (G*H,)       LSTM: bias_ih + bias_hh, reordered; GRU: bias_ih
    recurrent_bias    (3H,)        GRU only: bias_hh, reordered
    gamma             (2, 4H)      LayerNormLSTM: [layer_norm_weight_ih, _hh], reordered
    gamma_h           (H,)         LayerNormLSTM: layer_norm_weight_c
    beta_h            (H,)         LayerNormLSTM: layer_norm_bias_c
    ================  ===========  ======================================================

Gate orders: haste's LSTM and LayerNormLSTM i, g, f, o (PyTorch's i, f, g, o), its GRU z, r, n
(PyTorch's r, z, n). An LSTM's one ``bias`` comes back as ``bias_ih = bias_hh = bias / 2``, as
haste's ``to_native_weights`` does, so haste -> lstmkit -> haste is the identity and lstmkit ->
haste -> lstmkit keeps ``bias_ih + bias_hh`` (the function), not the split.

What this module read of haste's source (lmnt-com/haste):

- ``frameworks/pytorch/lstm.py``: ``kernel`` (input_size, 4H), ``recurrent_kernel`` (H, 4H),
  ``bias`` (4H), "``i,g,f,o`` gate layout"; ``reset_parameters`` sets ``bias[2H:3H] =
  forget_bias`` (an initial value only: ``forget_bias`` never reaches the forward, unlike TF1's);
  ``to_native_weights`` chunks i, g, f, o, concatenates i, f, g, o, transposes the kernels and
  returns ``bias / 2`` twice; ``from_native_weights`` does the reverse with ``bias_ih + bias_hh``.
  ``LSTMScript``: ``v = h @ recurrent_kernel + x @ kernel + bias``, ``c = f c + i g``,
  ``h = o tanh(c)``: PyTorch's LSTM.
- ``frameworks/pytorch/gru.py``: ``kernel``, ``recurrent_kernel``, ``bias``, ``recurrent_bias``,
  "``z,r,h`` gate layout"; ``to_native_weights`` reorders z, r, n to r, z, n and keeps the two
  biases apart. ``GRUScript``: ``z = σ(Wx_z + b_z + Rh_z + rb_z)``, ``r`` likewise, ``g =
  tanh(Wx_n + b_n + r (Rh_n + rb_n))``, ``h = z h + (1 - z) g``: PyTorch's GRU (1406.1078v1, the
  reset gate after the product), so lstmkit's GRU computes it exactly.
- ``frameworks/pytorch/layer_norm_lstm.py`` (``LayerNormLSTMScript``), ``layer_norm_lstm.cc`` and
  ``lib/layer_norm_lstm_forward_gpu.cu.cc``, ``lib/layer_norm_forward_gpu.cu.cc``::

      v = LN(x @ kernel) ⊙ gamma[0] + LN(h @ recurrent_kernel) ⊙ gamma[1] + bias
      c_t = f ⊙ c_{t-1} + i ⊙ g;   h_t = o ⊙ tanh(LN(c_t) ⊙ gamma_h + beta_h)

  LN over the 4H (or H) units of one step and sequence, biased variance, eps = 1e-5 (the CUDA
  kernel's ``rsqrt(var + 1e-5)``; ``F.layer_norm``'s default in the script); the gains are ones,
  ``beta_h`` zeros at reset; c is carried un-normalised. lstmkit's layer norm LSTM is
  ``LN(W_ih x) ⊙ g_ih + b_ih + LN(W_hh h) ⊙ g_hh + b_hh`` and ``m = o ⊙ tanh(LN(c) ⊙ g_c + b_c)``,
  eps = 1e-5: the same function. The one difference is haste's single ``bias`` added after both
  norms where lstmkit has the norms' two shifts ``b_ih`` and ``b_hh``: only their sum matters, so
  it converts as the LSTM's bias. LN over all 4H units is blind to the order of the gate blocks, so
  reordering the gains with the weights keeps the function.

Refused (no haste layer computes them): bidirectional layers, ``proj_size``, ``peepholes``,
``bias=False`` (haste's layers always have biases) and RNN layers (haste's IndRNN has a diagonal
recurrent weight). haste's dropout (DropConnect on ``recurrent_kernel``) and zoneout are
training-time options, not parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .spec import LayerSpec, check_arrays, check_layer_list, checked_state, inverse_order, owner_of, reorder_blocks

# haste's gate block k is PyTorch's block HASTE_ORDER[mode][k]
HASTE_ORDER = {"LSTM": (0, 2, 1, 3), "GRU": (1, 0, 2)}


def _refuse_what_haste_lacks(owner: str, spec: LayerSpec) -> None:
    if spec.mode not in HASTE_ORDER:
        raise ValueError(
            f"{owner}: haste has LSTM, LayerNormLSTM and GRU layers to match lstmkit's, got mode {spec.mode!r} "
            "(haste's IndRNN has a diagonal recurrent weight: another function than lstmkit's RNN)"
        )
    problems = [
        problem
        for problem, on in (
            ("bidirectional=True (haste's layers run one direction)", spec.bidirectional),
            (f"proj_size={spec.proj_size} (no haste layer has a projection)", spec.proj_size),
            ("peepholes=True (no haste layer has peepholes)", spec.peepholes),
            ("bias=False (haste's layers always have biases; give the layer zero biases instead)", not spec.bias),
        )
        if on
    ]
    if problems:
        raise ValueError(f"{owner}: haste cannot express this layer: " + "; ".join(problems))


def haste_class(spec: LayerSpec) -> str:
    """The name of the haste class holding ``spec``'s layers: ``LSTM``, ``LayerNormLSTM`` or ``GRU``."""
    return "LayerNormLSTM" if spec.layer_norm else spec.mode


def haste_shapes(spec: LayerSpec, layer: int) -> dict[str, tuple[int, ...]]:
    """The names and shapes of layer ``layer``'s haste parameters."""
    hidden = spec.hidden_sizes[layer]
    rows = spec.gate_count * hidden
    shapes = {"kernel": (spec.layer_input_size(layer), rows), "recurrent_kernel": (hidden, rows), "bias": (rows,)}
    if spec.mode == "GRU":
        shapes["recurrent_bias"] = (rows,)
    if spec.layer_norm:
        shapes.update(gamma=(2, rows), gamma_h=(hidden,), beta_h=(hidden,))
    return shapes


def to_haste_weights(state: Mapping[str, np.ndarray], spec: LayerSpec) -> list[dict[str, np.ndarray]]:
    """One dict of :func:`haste_shapes`' parameters per layer, of a state in PyTorch's layout."""
    owner = owner_of("to_haste_weights", spec)
    _refuse_what_haste_lacks(owner, spec)
    state = checked_state(owner, state, spec)
    order = HASTE_ORDER[spec.mode]

    def blocks(name: str) -> np.ndarray:
        return reorder_blocks(state[name], order)

    layers = []
    for _, _, s in spec.directions():
        arrays = {
            "kernel": np.ascontiguousarray(blocks(f"weight_ih{s}").T),
            "recurrent_kernel": np.ascontiguousarray(blocks(f"weight_hh{s}").T),
        }
        if spec.mode == "GRU":
            arrays.update(bias=blocks(f"bias_ih{s}"), recurrent_bias=blocks(f"bias_hh{s}"))
        else:
            arrays["bias"] = reorder_blocks(state[f"bias_ih{s}"] + state[f"bias_hh{s}"], order)
        if spec.layer_norm:
            arrays["gamma"] = np.stack([blocks(f"layer_norm_weight_ih{s}"), blocks(f"layer_norm_weight_hh{s}")])
            arrays["gamma_h"] = state[f"layer_norm_weight_c{s}"].copy()
            arrays["beta_h"] = state[f"layer_norm_bias_c{s}"].copy()
        layers.append(arrays)
    return layers


def from_haste_weights(layers: Sequence[Mapping[str, np.ndarray]], spec: LayerSpec) -> dict[str, np.ndarray]:
    """The state (PyTorch's names and layout) of one dict of haste parameters per layer."""
    owner = owner_of("from_haste_weights", spec)
    _refuse_what_haste_lacks(owner, spec)
    layers = check_layer_list(owner, layers, spec)
    order = inverse_order(HASTE_ORDER[spec.mode])
    state = {}
    for (layer, _, s), given in zip(spec.directions(), layers):
        arrays = check_arrays(f"{owner}, layer {layer}", given, haste_shapes(spec, layer), what="haste parameter")
        state[f"weight_ih{s}"] = np.ascontiguousarray(reorder_blocks(arrays["kernel"].T, order))
        state[f"weight_hh{s}"] = np.ascontiguousarray(reorder_blocks(arrays["recurrent_kernel"].T, order))
        if spec.mode == "GRU":
            state[f"bias_ih{s}"] = reorder_blocks(arrays["bias"], order)
            state[f"bias_hh{s}"] = reorder_blocks(arrays["recurrent_bias"], order)
        else:
            half = reorder_blocks(arrays["bias"], order) / 2.0  # haste's to_native_weights
            state[f"bias_ih{s}"], state[f"bias_hh{s}"] = half, half.copy()
        if spec.layer_norm:
            state[f"layer_norm_weight_ih{s}"] = reorder_blocks(arrays["gamma"][0], order)
            state[f"layer_norm_weight_hh{s}"] = reorder_blocks(arrays["gamma"][1], order)
            state[f"layer_norm_weight_c{s}"] = arrays["gamma_h"].copy()
            state[f"layer_norm_bias_c{s}"] = arrays["beta_h"].copy()
    return {name: state[name] for name in spec.shapes()}  # PyTorch's order
