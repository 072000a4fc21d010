"""A torch reference of whole recurrent layers with the variants (tests/test_variant_layers.py):
layers and directions stacked by hand over variant_reference.torch_lstm (the LSTM equations with
peepholes, layer norm, forget_bias, zoneout) and options_reference.step (GRU, RNN), every
sequence reversed within its own length for the reverse direction, directions merged, dropout
between layers. It reads the layer's sizes and options, and takes the masks the layer drew (in
the caller's batch order, time-major), so that both compute one function; it calls no lstmkit op.
"""

from __future__ import annotations

import numpy as np
import torch
from options_reference import merge, step
from variant_reference import torch_lstm

BASES = (
    "weight_ih",
    "weight_hh",
    "bias_ih",
    "bias_hh",
    "weight_hr",
    "weight_peephole",
    "layer_norm_weight_ih",
    "layer_norm_weight_hh",
    "layer_norm_weight_c",
    "layer_norm_bias_c",
)


def reversal(lengths, steps: int) -> torch.Tensor:
    """(T, N) source step of each entry: each sequence reversed within its length, padding in place."""
    t = torch.arange(steps)[:, None]
    lengths = torch.as_tensor(lengths)[None, :]
    return torch.where(t < lengths, lengths - 1 - t, t)


def reverse(array: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """``array`` (T, N, ·) with each sequence reversed (``order`` from :func:`reversal`); its own inverse."""
    return torch.gather(array, 0, order[:, :, None].expand_as(array))


def _small_cell(mode, weights, x, h0, keep_h, recurrent_mask, running):
    """A GRU or RNN direction over (T, N, I), zoneout on h, rows that stop running carried."""
    h, outputs = h0, []
    for t in range(x.shape[0]):
        (new,) = step(mode, weights, x[t], (h,), recurrent_mask)
        if keep_h is not None:
            new = keep_h[t] * h + (1 - keep_h[t]) * new
        run = running[t][:, None]
        h = torch.where(run, new, h)
        outputs.append(torch.where(run, h, torch.zeros_like(h)))
    return torch.stack(outputs), h


def run_layer(layer, leaves: dict, x, hx: list, lengths, masks: dict):
    """``(output (T, N, F), finals [k] -> tuple of (D, N, ·), steps [k*D + d] -> tuple of (T, N, ·))``
    for ``x`` (T, N, I) time-major in the caller's order and ``hx`` [k] -> tuple of (D, N, ·).

    ``masks``: "zoneout" [k][d] (keep_h, keep_c) (T, N, ·) numpy or None, in each direction's own
    time; "recurrent" [k] (D, N, H_out_k) or None; "dropout" [k] (T, N, F) or None (after layer k).
    """
    steps, batch = x.shape[:2]
    lengths = [steps] * batch if lengths is None else list(lengths)
    order = reversal(lengths, steps)
    running = torch.arange(steps)[:, None] < torch.tensor(lengths)[None, :]
    D, lstm = layer.num_directions, layer.mode == "LSTM"
    finals, all_steps, sequence = [], [], x
    for k in range(layer.num_layers):
        outputs, layer_finals = [], []
        for d in range(D):
            suffix = f"_l{k}" + ("_reverse" if d else "")
            weights = {base: leaves.get(base + suffix) for base in BASES}
            zoneout = masks["zoneout"][k][d] if masks.get("zoneout") else (None, None)
            keep = [None if z is None else torch.from_numpy(np.asarray(z)) for z in zoneout]
            recurrent = masks.get("recurrent") and masks["recurrent"][k]
            recurrent_mask = None if recurrent is None else torch.from_numpy(recurrent[d])
            run_input = reverse(sequence, order) if d else sequence
            if lstm:
                output, h, c, c_steps = torch_lstm(
                    run_input, hx[k][0][d], hx[k][1][d], weights, layer.runtime_forget_bias, keep,
                    (None, recurrent_mask), running,
                )  # fmt: skip
                final, per_step = (h, c), (output, c_steps)
            else:
                output, h = _small_cell(layer.mode, weights, run_input, hx[k][0][d], keep[0], recurrent_mask, running)
                final, per_step = (h,), (output,)
            outputs.append(reverse(output, order) if d else output)
            all_steps.append(tuple(reverse(a, order) if d else a for a in per_step))
            layer_finals.append(final)
        finals.append(tuple(torch.stack(parts) for parts in zip(*layer_finals)))
        sequence = merge(layer.merge_mode, *outputs) if D == 2 else outputs[0]
        dropout = masks.get("dropout") and masks["dropout"][k]
        if dropout is not None:
            sequence = sequence * torch.from_numpy(dropout)
    return sequence, finals, all_steps


def caller_order(array, layout, steps: int):
    """A (T_run, N, ·) array of the run (sorted, trimmed to the longest) in the caller's order, (T, N, ·)."""
    array = np.asarray(array)
    unsorted = getattr(layout, "unsorted_indices", None)
    if unsorted is not None:
        array = array[:, unsorted]
    padded = np.zeros((steps, *array.shape[1:]), dtype=array.dtype)
    padded[: len(array)] = array
    return padded


def layer_masks(layer, steps: int, batch: int) -> dict:
    """The masks of the layer's latest forward (read before its backward), in the caller's order."""
    saved = layer._saved[-1].saved
    layout, sizes = saved.layout, [(layer.output_sizes[k], layer.hidden_sizes[k]) for k in range(layer.num_layers)]
    zoneout = []
    for k, caches in enumerate(saved.caches):
        per_direction = []
        for cache in caches:
            parts = getattr(cache, "zoneout", None) or (None, None)
            per_direction.append(
                tuple(
                    None
                    if part is None
                    else caller_order(np.broadcast_to(part, (len(part), batch, size)), layout, steps)
                    for part, size in zip(parts, sizes[k])
                )
            )
        zoneout.append(per_direction)
    dropout = [None if mask is None else caller_order(mask, layout, steps) for mask in saved.dropout_masks]
    return {"zoneout": zoneout, "recurrent": saved.recurrent_masks, "dropout": dropout}
