"""TensorFlow 1's LSTM checkpoints (``tf.compat.v1.nn.rnn_cell.LSTMCell``, ``tf.contrib.rnn.LSTMBlockCell``),
both ways: a dict of TF variable names (``rnn/lstm_cell/kernel``, ...) to arrays.

Each layer-direction is one cell, whose variables are (H = num_units, H_out = num_proj or H):

    =========================  ================  ================================================
    TF1 variable (cell scope)  shape             from PyTorch's (layer k, each direction)
    =========================  ================  ================================================
    kernel                     (I_k + H_out, 4H) [weight_ih, weight_hh]ᵀ (rows: x, then h), gate
                                                 columns i, j, f, o (PyTorch's i, f, g, o; j = g)
    bias                       (4H,)             bias_ih + bias_hh, gates i, j, f, o, minus the
                                                 cell's run-time ``forget_bias`` on f (below)
    projection/kernel          (H, P)            weight_hrᵀ (LSTMCell's ``num_proj`` = proj_size)
    w_i_diag                   (H,)              weight_peephole's p_i (``use_peepholes``)
    w_f_diag                   (H,)              p_f
    w_o_diag                   (H,)              p_o
    =========================  ================  ================================================

The cell scope of each layer-direction (``scope`` replaces the outermost name, as TF's ``scope=``):

    ======================  ==================================================================
    layer                   cell scope
    ======================  ==================================================================
    1 layer                 ``rnn/lstm_cell``                         (``tf.nn.dynamic_rnn``)
    stacked                 ``rnn/multi_rnn_cell/cell_{k}/lstm_cell``  (``MultiRNNCell``)
    bidirectional, 1 layer  ``bidirectional_rnn/fw/lstm_cell``, ``.../bw/lstm_cell``
                            (``tf.nn.bidirectional_dynamic_rnn``)
    bidirectional, stacked  ``stack_bidirectional_rnn/cell_{k}/bidirectional_rnn/fw/lstm_cell``,
                            ``.../bw/...`` (``tf.contrib.rnn.stack_bidirectional_dynamic_rnn``:
                            layer k reads both directions of layer k-1, as PyTorch's)
    ======================  ==================================================================

**forget_bias.** TF1's cells add their constructor's ``forget_bias`` (default 1.0) to f's
pre-activation at every step; it is not in ``bias``. ``keep_forget_bias=True`` keeps it a run-time
constant on both sides: TF's ``bias`` is the stored bias, lstmkit runs with
``LSTM(runtime_forget_bias=forget_bias)`` (:func:`from_tf1_layer` builds it so). With
``keep_forget_bias=False`` it is folded into the arrays: into ``bias_ih``'s f block on the way in
(the state is then a plain PyTorch LSTM's), and on the way out into ``bias`` for a TF cell built
with ``forget_bias=0.0``. Coming in, ``bias_hh`` is zero (TF has one bias); going out, ``bias`` is
``bias_ih + bias_hh + (runtime_forget_bias - forget_bias)`` on f, so TF -> lstmkit -> TF with the
constant kept is the identity.

What this module read of TensorFlow's source (tensorflow/tensorflow):

- ``tensorflow/python/ops/rnn_cell_impl.py``: ``LSTMCell.build`` adds ``kernel`` [input_depth +
  h_depth, 4 * num_units] (h_depth = num_proj or num_units), ``bias`` [4 * num_units] (zeros),
  ``w_f_diag``/``w_i_diag``/``w_o_diag`` [num_units] when ``use_peepholes``, and
  ``projection/kernel`` [num_units, num_proj] when ``num_proj``. ``call``: ``lstm_matrix =
  concat([inputs, m_prev], 1) @ kernel + bias``; ``i, j, f, o = split(lstm_matrix, 4)``;
  ``c = sigmoid(f + forget_bias + w_f_diag * c_prev) * c_prev + sigmoid(i + w_i_diag * c_prev) *
  tanh(j)``; optional ``cell_clip``; ``m = sigmoid(o + w_o_diag * c) * tanh(c)``; ``m = m @
  projection kernel`` (optional ``proj_clip``). ``MultiRNNCell.call`` builds cell i under
  ``variable_scope("cell_%d" % i)``. ``GRUCell`` computes its candidate from
  ``concat([inputs, r * state]) @ candidate/kernel``: the reset gate acts *before* the product.
- ``tensorflow/python/ops/rnn.py``: ``dynamic_rnn`` scope ``scope or "rnn"``;
  ``bidirectional_dynamic_rnn`` scope ``scope or "bidirectional_rnn"`` with ``fw`` and ``bw``.
- ``tensorflow/contrib/rnn/python/ops/rnn.py``: ``stack_bidirectional_dynamic_rnn`` scope ``scope
  or "stack_bidirectional_rnn"``, layer i under ``cell_%d``, each a ``bidirectional_dynamic_rnn``
  fed the concatenated outputs of the layer below.
- ``tensorflow/contrib/rnn/python/ops/lstm_ops.py``: ``LSTMBlockCell(num_units, forget_bias=1.0,
  cell_clip=None, use_peephole=False, name="lstm_cell")`` ("for variable-name compatibility with
  LSTMCell"), variables ``kernel`` [input_size + num_units, 4 * num_units], ``bias``, ``w_i_diag``,
  ``w_f_diag``, ``w_o_diag``; its op computes ``[i, ci, f, o] = [x, h_prev] @ w + b``, ``f += forget_bias``,
  ``i = sigmoid(cs_prev * wci + i)``, ``f = sigmoid(cs_prev * wcf + f)``, ``cs = tanh(ci) * i +
  cs_prev * f``, ``o = sigmoid(cs * wco + o)``, ``h = tanh(cs) * o``: LSTMCell's layout and
  function, without a projection; ``cell_clip`` None means no clipping.
- The default cell names ``lstm_cell`` and ``multi_rnn_cell`` (Keras-style snake case of the class
  names) and the names above were checked against checkpoints' variable lists in public code.

Not converted: layer norm (TF1's ``LayerNormBasicLSTMCell`` is another cell), a layer without bias
(TF1's cells always have one), ``proj_size`` with ``LSTMBlockCell`` (no ``num_proj``), GRU (TF1's
``GRUCell`` resets h before the recurrent product, lstmkit's/PyTorch's GRU after it: another
function) and RNN layers. ``cell_clip`` and ``proj_clip`` are constructor options, not variables:
lstmkit does not clip, so a checkpoint trained with them computes another function here.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .spec import LayerSpec, check_arrays, check_spec, checked_state, inverse_order, reorder_blocks, with_forget_bias

CELLS = ("LSTMCell", "LSTMBlockCell")
TF1_ORDER = (0, 2, 1, 3)  # TF1's gate block k (i, j, f, o) is PyTorch's block TF1_ORDER[k] (i, f, g, o)
PEEPHOLE_NAMES = ("w_i_diag", "w_f_diag", "w_o_diag")  # lstmkit's weight_peephole blocks p_i, p_f, p_o
DIRECTION_SCOPES = ("fw", "bw")


def _refuse_what_tf1_lacks(owner: str, spec: LayerSpec, cell: str) -> None:
    if cell not in CELLS:
        raise ValueError(f"{owner}: cell must be one of {', '.join(CELLS)}, got {cell!r}")
    if spec.mode != "LSTM":
        reason = (
            "TF1's GRUCell applies the reset gate to h_{t-1} before the recurrent product (W (r * h)), "
            "lstmkit's GRU (PyTorch's) after it (r * (W h + b)): another function"
            if spec.mode == "GRU"
            else "only LSTM layers are converted"
        )
        raise ValueError(f"{owner}: expected an LSTM spec, got mode {spec.mode!r}: {reason}")
    check_spec(owner, spec)
    problems = []
    if spec.merge_mode != "concat":
        problems.append(f"merge_mode={spec.merge_mode!r} (TF1's bidirectional stacks concatenate the directions)")
    if spec.layer_norm:
        problems.append("layer_norm=True (TF1's LSTMCell and LSTMBlockCell have no layer norm)")
    if not spec.bias:
        problems.append("bias=False (TF1's cells always have a bias; give the layer zero biases instead)")
    if spec.proj_size and cell == "LSTMBlockCell":
        problems.append(f"proj_size={spec.proj_size} (LSTMBlockCell has no num_proj; use cell='LSTMCell')")
    if problems:
        raise ValueError(f"{owner}: TF1's {cell} cannot express this layer: " + "; ".join(problems))


def cell_scopes(spec: LayerSpec, scope: str | None = None) -> dict[str, str]:
    """PyTorch's suffix (``_l0``, ``_l1_reverse``, ...) -> the TF1 cell scope of that layer-direction."""
    scopes = {}
    for layer, direction, suffix in spec.directions():
        if not spec.bidirectional:
            outer = scope or "rnn"
            scopes[suffix] = (
                f"{outer}/multi_rnn_cell/cell_{layer}/lstm_cell" if spec.num_layers > 1 else f"{outer}/lstm_cell"
            )
        elif spec.num_layers == 1:
            scopes[suffix] = f"{scope or 'bidirectional_rnn'}/{DIRECTION_SCOPES[direction]}/lstm_cell"
        else:
            outer = scope or "stack_bidirectional_rnn"
            scopes[suffix] = f"{outer}/cell_{layer}/bidirectional_rnn/{DIRECTION_SCOPES[direction]}/lstm_cell"
    return scopes


def tf1_shapes(spec: LayerSpec, *, cell: str = "LSTMCell", scope: str | None = None) -> dict[str, tuple[int, ...]]:
    """The TF1 checkpoint's variable names and shapes of ``spec``'s layer, in PyTorch's layer order."""
    _refuse_what_tf1_lacks(f"tf1_shapes({cell})", spec, cell)
    return _shapes(spec, scope)


def _shapes(spec: LayerSpec, scope: str | None) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for (layer, _, _), prefix in zip(spec.directions(), cell_scopes(spec, scope).values()):
        hidden = spec.hidden_sizes[layer]
        shapes[f"{prefix}/kernel"] = (spec.layer_input_size(layer) + spec.output_sizes[layer], 4 * hidden)
        shapes[f"{prefix}/bias"] = (4 * hidden,)
        if spec.proj_size:
            shapes[f"{prefix}/projection/kernel"] = (hidden, spec.proj_size)
        if spec.peepholes:
            shapes.update({f"{prefix}/{name}": (hidden,) for name in PEEPHOLE_NAMES})
    return shapes


def to_tf1_weights(
    state: Mapping[str, np.ndarray],
    spec: LayerSpec,
    *,
    cell: str = "LSTMCell",
    forget_bias: float = 1.0,
    keep_forget_bias: bool = True,
    runtime_forget_bias: float = 0.0,
    scope: str | None = None,
) -> dict[str, np.ndarray]:
    """The TF1 checkpoint variables (names as in the module docstring) of a state in PyTorch's layout.

    ``runtime_forget_bias`` is the lstmkit layer's (0 for a PyTorch LSTM). ``keep_forget_bias=True``:
    build the TF cell with ``forget_bias=forget_bias`` (``bias`` is stored without it);
    ``False``: build it with ``forget_bias=0.0`` (``bias`` holds everything; ``forget_bias`` unused).
    """
    owner = f"to_tf1_weights({cell})"
    _refuse_what_tf1_lacks(owner, spec, cell)
    state = checked_state(owner, state, spec)
    shift = float(runtime_forget_bias) - (float(forget_bias) if keep_forget_bias else 0.0)
    arrays = {}
    for suffix, prefix in cell_scopes(spec, scope).items():
        weights = np.concatenate([state[f"weight_ih{suffix}"], state[f"weight_hh{suffix}"]], axis=1)
        arrays[f"{prefix}/kernel"] = np.ascontiguousarray(reorder_blocks(weights, TF1_ORDER).T)
        bias = with_forget_bias(state[f"bias_ih{suffix}"] + state[f"bias_hh{suffix}"], shift)
        arrays[f"{prefix}/bias"] = reorder_blocks(bias, TF1_ORDER)
        if spec.proj_size:
            arrays[f"{prefix}/projection/kernel"] = np.ascontiguousarray(state[f"weight_hr{suffix}"].T)
        if spec.peepholes:
            peepholes = np.split(state[f"weight_peephole{suffix}"], 3)
            arrays.update({f"{prefix}/{name}": p.copy() for name, p in zip(PEEPHOLE_NAMES, peepholes)})
    return arrays


def from_tf1_weights(
    arrays: Mapping[str, np.ndarray],
    spec: LayerSpec,
    *,
    cell: str = "LSTMCell",
    forget_bias: float = 1.0,
    keep_forget_bias: bool = False,
    scope: str | None = None,
) -> dict[str, np.ndarray]:
    """The state (PyTorch's names and layout) of a TF1 checkpoint's variables, whose cells were built
    with ``forget_bias``. ``keep_forget_bias=False`` (the default): it is folded into ``bias_ih``'s
    f block and the state is a plain PyTorch LSTM's; ``True``: run the state with
    ``runtime_forget_bias=forget_bias`` (:func:`from_tf1_layer` builds that layer)."""
    owner = f"from_tf1_weights({cell})"
    _refuse_what_tf1_lacks(owner, spec, cell)
    arrays = check_arrays(owner, arrays, _shapes(spec, scope), what="TF1 variable")
    order = inverse_order(TF1_ORDER)
    state = {}
    for (layer, _, suffix), prefix in zip(spec.directions(), cell_scopes(spec, scope).values()):
        weights = reorder_blocks(arrays[f"{prefix}/kernel"].T, order)  # (4H, I_k + H_out), PyTorch's gates
        inputs = spec.layer_input_size(layer)
        state[f"weight_ih{suffix}"] = np.ascontiguousarray(weights[:, :inputs])
        state[f"weight_hh{suffix}"] = np.ascontiguousarray(weights[:, inputs:])
        bias = reorder_blocks(arrays[f"{prefix}/bias"], order)
        state[f"bias_ih{suffix}"] = bias if keep_forget_bias else with_forget_bias(bias, float(forget_bias))
        state[f"bias_hh{suffix}"] = np.zeros_like(bias)
        if spec.proj_size:
            state[f"weight_hr{suffix}"] = np.ascontiguousarray(arrays[f"{prefix}/projection/kernel"].T)
        if spec.peepholes:
            state[f"weight_peephole{suffix}"] = np.concatenate([arrays[f"{prefix}/{name}"] for name in PEEPHOLE_NAMES])
    return {name: state[name] for name in spec.shapes()}  # PyTorch's order


def from_tf1_layer(
    arrays: Mapping[str, np.ndarray],
    spec: LayerSpec,
    *,
    cell: str = "LSTMCell",
    forget_bias: float = 1.0,
    keep_forget_bias: bool = True,
    scope: str | None = None,
    **options,
):
    """An ``lstmkit.LSTM`` computing what the TF1 checkpoint's cells (built with ``forget_bias``)
    compute: :func:`from_tf1_weights`' state, with ``runtime_forget_bias=forget_bias`` when the
    constant is kept. ``options`` go to the constructor (``dtype``, ``batch_first``, ...)."""
    state = from_tf1_weights(
        arrays, spec, cell=cell, forget_bias=forget_bias, keep_forget_bias=keep_forget_bias, scope=scope
    )
    return spec.build(state, runtime_forget_bias=float(forget_bias) if keep_forget_bias else 0.0, **options)
