"""The names and shapes of a recurrent layer's parameters, computed in one place: the layers and
cells register them, ``explain`` prints them."""

from __future__ import annotations

from collections.abc import Sequence


def weight_suffix(layer: int, direction: int) -> str:
    """``_l{layer}``, with ``_reverse`` for the second direction: PyTorch's parameter names."""
    return f"_l{layer}" + ("_reverse" if direction else "")


def layer_weight_shapes(
    gate_count: int,
    input_size: int,
    hidden_sizes: Sequence[int],
    bias: bool = True,
    proj_size: int = 0,
    num_directions: int = 1,
    merge_mode: str = "concat",
    *,
    layer_norm: bool = False,
    peepholes: bool = False,
) -> list[dict[str, tuple[int, ...]]]:
    """Per layer k, base name -> shape of each direction's parameters, in PyTorch's order (then
    the LSTM variants', in :class:`~lstmkit.ops.lstm.LSTMWeights`' order).

    ====================  ================  ==================================================
    weight_ih             (G*H_k, I_k)      I_0 = input_size; I_k = D*H_out_{k-1} ("concat"),
                                            else H_out_{k-1} (the merged directions)
    weight_hh             (G*H_k, H_out_k)  H_out_k = proj_size or H_k
    bias_ih/_hh           (G*H_k,)          when ``bias``
    weight_hr             (proj_size, H_k)  when ``proj_size`` > 0 (LSTM)
    weight_peephole       (3*H_k,)          when ``peepholes`` (LSTM): p_i, p_f, p_o
    layer_norm_weight_ih  (G*H_k,)          when ``layer_norm`` (LSTM): the gains g_ih,
    layer_norm_weight_hh  (G*H_k,)          g_hh
    layer_norm_weight_c   (H_k,)            and g_c
    layer_norm_bias_c     (H_k,)            when ``layer_norm`` and ``bias``: b_c
    ====================  ================  ==================================================

    The one place these shapes are computed: the layers and cells register them, ``explain``
    prints them.
    """
    shapes, features = [], input_size
    for hidden in hidden_sizes:
        rows, output = gate_count * hidden, proj_size or hidden
        layer = {"weight_ih": (rows, features), "weight_hh": (rows, output)}
        if bias:
            layer.update(bias_ih=(rows,), bias_hh=(rows,))
        if proj_size:
            layer["weight_hr"] = (proj_size, hidden)
        if peepholes:
            layer["weight_peephole"] = (3 * hidden,)
        if layer_norm:
            layer.update(layer_norm_weight_ih=(rows,), layer_norm_weight_hh=(rows,), layer_norm_weight_c=(hidden,))
            if bias:
                layer["layer_norm_bias_c"] = (hidden,)
        shapes.append(layer)
        features = output * (num_directions if merge_mode == "concat" else 1)
    return shapes


def named_weight_shapes(layer_shapes: list[dict], num_directions: int) -> dict[str, tuple[int, ...]]:
    """:func:`layer_weight_shapes` as PyTorch's parameter names and order: name -> shape."""
    return {
        base + weight_suffix(layer, direction): shape
        for layer, shapes in enumerate(layer_shapes)
        for direction in range(num_directions)
        for base, shape in shapes.items()
    }
