"""The LSTM variants' equations written again in torch, one Python step at a time, for autograd to
differentiate: an independent reference for :mod:`lstmkit.ops.lstm` (it does not call lstmkit).

Peepholes (i, f see c_{t-1}, o sees c_t), layer norm (haste's LayerNormLSTM: the two products and
the cell output normalised), TF1's forget_bias, zoneout, Keras-style dropout masks (K = 1) and
rows that stop running (a (T, N) boolean mask: state carried, output and per-step c zero).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _layer_norm(a, weight, bias=None):
    return F.layer_norm(a, (a.shape[-1],), weight, bias, eps=1e-5)


def torch_lstm(x, h0, c0, weights: dict, forget_bias=0.0, keep=(None, None), masks=(None, None), running=None):
    """``(output (T, N, R), h_T, c_T, c_steps (T, N, H))`` for tensors ``x`` (T, N, I), ``h0``,
    ``c0`` and ``weights`` (PyTorch's names, the variants' included; None where absent).
    ``keep``: zoneout's kept fractions of h and c, each None or (T, N, ·); ``masks``: dropout
    masks on x (N, I) and h (N, R), each None or an array; ``running`` (T, N) booleans or None."""
    (keep_h, keep_c), (input_mask, recurrent_mask) = keep, masks
    w = weights
    hidden = c0.shape[-1]
    h, c = h0, c0
    outputs, cells = [], []
    for t in range(x.shape[0]):
        x_t = x[t] if input_mask is None else x[t] * input_mask
        h_in = h if recurrent_mask is None else h * recurrent_mask
        from_x, from_h = x_t @ w["weight_ih"].T, h_in @ w["weight_hh"].T
        if w.get("layer_norm_weight_ih") is not None:
            from_x = _layer_norm(from_x, w["layer_norm_weight_ih"])
            from_h = _layer_norm(from_h, w["layer_norm_weight_hh"])
        z = from_x + from_h
        if w.get("bias_ih") is not None:
            z = z + w["bias_ih"] + w["bias_hh"]
        z_i, z_f, z_g, z_o = z.split(hidden, dim=1)
        if w.get("weight_peephole") is not None:
            p_i, p_f, p_o = w["weight_peephole"].split(hidden)
            z_i, z_f = z_i + p_i * c, z_f + p_f * c
        i, f, g = torch.sigmoid(z_i), torch.sigmoid(z_f + forget_bias), torch.tanh(z_g)
        c_new = f * c + i * g
        if w.get("weight_peephole") is not None:
            z_o = z_o + p_o * c_new
        o = torch.sigmoid(z_o)
        cell = c_new
        if w.get("layer_norm_weight_c") is not None:
            cell = _layer_norm(c_new, w["layer_norm_weight_c"], w.get("layer_norm_bias_c"))
        h_new = o * torch.tanh(cell)
        if w.get("weight_hr") is not None:
            h_new = h_new @ w["weight_hr"].T
        if keep_h is not None:  # zoneout
            h_new = keep_h[t] * h + (1 - keep_h[t]) * h_new
        if keep_c is not None:
            c_new = keep_c[t] * c + (1 - keep_c[t]) * c_new
        if running is not None:
            run = running[t][:, None]
            h_new, c_new = torch.where(run, h_new, h), torch.where(run, c_new, c)
            outputs.append(torch.where(run, h_new, torch.zeros_like(h_new)))
            cells.append(torch.where(run, c_new, torch.zeros_like(c_new)))
        else:
            outputs.append(h_new)
            cells.append(c_new)
        h, c = h_new, c_new
    return torch.stack(outputs), h, c, torch.stack(cells)
