"""The LSTM variants' compiled cell, steps and whole time loops: peepholes, zoneout, a recurrent
dropout mask (one for all gates) and layer norm's two per-step norms (of W_hh h_{t-1} and of
c_t), on PyTorch's gate blocks i, f, g, o.

The equations are :func:`lstmkit.ops.lstm.lstm_step`'s and :func:`lstmkit.ops.recurrence.scan`'s
zoneout, term for term in the reference's order. An option that is off is given as an empty
array (a peephole vector of 0 entries, a mask of 0 columns, keep fractions of 0 columns, gains
of 0 entries), so that one compiled loop serves every combination; the tests are loop-invariant.
Layer norm's row statistics (:mod:`lstmkit.ops.layer_norm`) are summed in float64.
"""

from __future__ import annotations

import numpy as np

from ...layer_norm import LAYER_NORM_EPS
from .activations import ONE, sigmoid, tanh
from .jit import jit, jit_reassociating
from .products import gradient_product, recurrent_product


@jit_reassociating
def row_norm(values, normalised):
    """Layer norm of one row ``values`` (F,): writes ``normalised`` (F,) = (values - μ) * rstd and
    returns rstd = 1 / sqrt(σ² + eps)."""
    width = values.shape[0]
    total = 0.0
    for j in range(width):
        total += values[j]
    mean = total / width
    square = 0.0
    for j in range(width):
        centred = values[j] - mean
        square += centred * centred
    rstd = 1.0 / np.sqrt(square / width + LAYER_NORM_EPS)
    for j in range(width):
        normalised[j] = (values[j] - mean) * rstd
    return rstd


@jit_reassociating
def row_means(dy, gain, normalised, means):
    """``means`` (2,) = mean(dâ), mean(dâ ⊙ â) of one row, with ``dâ = dy ⊙ gain`` (F,)."""
    width = dy.shape[0]
    total = projection = 0.0
    for j in range(width):
        d = dy[j] * gain[j]
        total += d
        projection += d * normalised[j]
    means[0], means[1] = total / width, projection / width


@jit_reassociating
def row_norm_backward(dy, gain, normalised, rstd, means, out):
    """The gradient of one row's values (F,) from that of ``normalised ⊙ gain (+ shift)``:
    ``out = rstd ⊙ (dâ - mean(dâ) - â ⊙ mean(dâ ⊙ â))`` with ``dâ = dy ⊙ gain``."""
    row_means(dy, gain, normalised, means)
    mean, mean_projection = means[0], means[1]
    for j in range(dy.shape[0]):
        out[j] = rstd * (dy[j] * gain[j] - mean - normalised[j] * mean_projection)


@jit
def variant_cell_forward(z, recurrent, h_prev, c_prev, peephole, keep_h, keep_c, norms, c_cell, c_next, tanh_c, h_next):
    """One step: ``z`` (N, 4H) the input's pre-activations (biases and forget_bias included),
    ``recurrent`` (N, 4H) = (h_{t-1} ⊙ mask) W_hhᵀ; ``z`` becomes the activated gates; c_cell
    (c_t as the cell computes it), tanh(c_t) (with layer norm tanh(LN(c_t) ⊙ g_c + b_c)) and the
    zoned c_t, h_t are written. ``peephole`` (3H,) or empty; ``keep_h``, ``keep_c`` (N, H)
    zoneout's keep fractions, or (N, 0). ``norms``: :func:`step_norms`' tuple (layer norm's
    gains g_hh (4H,), g_c (H,) and shift b_c (H,) or empty, and where the step writes the
    normalised W_hh h_{t-1} (N, 4H), c_t (N, H) and their rstd (N,)); empty gains: no layer norm."""
    gain_hh, gain_c, shift_c, hidden_norm, hidden_rstd, cell_norm, cell_rstd = norms
    rows, hidden = c_prev.shape
    f, g, o = hidden, 2 * hidden, 3 * hidden
    peep, zoned_h, zoned_c = peephole.shape[0] > 0, keep_h.shape[1] > 0, keep_c.shape[1] > 0
    normed, shifted = gain_hh.shape[0] > 0, shift_c.shape[0] > 0
    for n in range(rows):
        if normed:  # z += LN(W_hh h_{t-1}) ⊙ g_hh
            hidden_rstd[n] = row_norm(recurrent[n], hidden_norm[n])
            for j in range(4 * hidden):
                z[n, j] += hidden_norm[n, j] * gain_hh[j]
        else:
            for j in range(4 * hidden):
                z[n, j] += recurrent[n, j]
        if peep:  # i and f see c_{t-1}
            for j in range(hidden):
                z[n, j] += peephole[j] * c_prev[n, j]
            for j in range(hidden):
                z[n, f + j] += peephole[hidden + j] * c_prev[n, j]
        for j in range(2 * hidden):  # i, f
            z[n, j] = sigmoid(z[n, j])
        for j in range(hidden):  # g
            z[n, g + j] = tanh(z[n, g + j])
        for j in range(hidden):  # c = f ⊙ c_prev + i ⊙ g
            c_cell[n, j] = z[n, f + j] * c_prev[n, j] + z[n, j] * z[n, g + j]
        if peep:  # o sees c_t
            for j in range(hidden):
                z[n, o + j] += peephole[2 * hidden + j] * c_cell[n, j]
        for j in range(hidden):  # o
            z[n, o + j] = sigmoid(z[n, o + j])
        if normed:  # tanh(LN(c_t) ⊙ g_c + b_c)
            cell_rstd[n] = row_norm(c_cell[n], cell_norm[n])
            for j in range(hidden):
                cell = cell_norm[n, j] * gain_c[j]
                if shifted:
                    cell += shift_c[j]
                tanh_c[n, j] = tanh(cell)
        else:
            for j in range(hidden):
                tanh_c[n, j] = tanh(c_cell[n, j])
        for j in range(hidden):  # h = o ⊙ tanh(c)
            h_next[n, j] = z[n, o + j] * tanh_c[n, j]
        if zoned_h:  # h_t = keep ⊙ h_{t-1} + (1 - keep) ⊙ h_t
            for j in range(hidden):
                k = keep_h[n, j]
                h_next[n, j] = k * h_prev[n, j] + (ONE - k) * h_next[n, j]
        if zoned_c:
            for j in range(hidden):
                k = keep_c[n, j]
                c_next[n, j] = k * c_prev[n, j] + (ONE - k) * c_cell[n, j]
        else:
            for j in range(hidden):
                c_next[n, j] = c_cell[n, j]


@jit
def variant_cell_backward(dh, dc, gates, c_prev, tanh_c, peephole, keep_h, keep_c, norms, dcell, drecurrent, dz):
    """Backward of one step: ``dh``, ``dc`` (N, H) reach the zoned h_t and c_t; writes dz (N, 4H),
    turns ``dc`` into c_{t-1}'s gradient and ``dh`` into the share of h_{t-1}'s that zoneout
    carries (zero without it); the share through W_hh is the caller's. With layer norm
    (``norms`` as :func:`variant_cell_forward`'s, its gains not empty) also writes ``dcell``
    (N, H), the gradient of LN(c_t) ⊙ g_c + b_c, and ``drecurrent`` (N, 4H), that of W_hh h_{t-1}
    through its norm; without it neither is touched."""
    gain_hh, gain_c, _, hidden_norm, hidden_rstd, cell_norm, cell_rstd = norms
    rows, hidden = c_prev.shape
    f, g, o = hidden, 2 * hidden, 3 * hidden
    peep, zoned_h, zoned_c = peephole.shape[0] > 0, keep_h.shape[1] > 0, keep_c.shape[1] > 0
    normed = gain_hh.shape[0] > 0
    means = np.zeros(2, dtype=dz.dtype)  # a row's mean(dâ), mean(dâ ⊙ â), in the arrays' dtype
    for n in range(rows):
        if normed:  # dcell first: its norm's backward needs the row's means
            for j in range(hidden):
                dh_new, t, og = dh[n, j], tanh_c[n, j], gates[n, o + j]
                if zoned_h:
                    dh_new = (ONE - keep_h[n, j]) * dh_new
                dcell[n, j] = dh_new * og * (ONE - t * t)
            row_means(dcell[n], gain_c, cell_norm[n], means)
        for j in range(hidden):
            dh_new, dc_new = dh[n, j], dc[n, j]
            if zoned_h:
                dh_new = (ONE - keep_h[n, j]) * dh_new
            if zoned_c:
                dc_new = (ONE - keep_c[n, j]) * dc_new
            t, og = tanh_c[n, j], gates[n, o + j]
            dz_o = dh_new * t * (og * (ONE - og))  # m = o ⊙ tanh(cell)
            if normed:  # cell = LN(c) ⊙ g_c + b_c
                dc_new = dc_new + cell_rstd[n] * (dcell[n, j] * gain_c[j] - means[0] - cell_norm[n, j] * means[1])
            else:
                dc_new = dc_new + dh_new * og * (ONE - t * t)
            if peep:  # o = σ(z_o + p_o ⊙ c)
                dc_new += dz_o * peephole[2 * hidden + j]
            ig, fg, gg = gates[n, j], gates[n, f + j], gates[n, g + j]
            dz_i = dc_new * gg * (ig * (ONE - ig))  # c = f ⊙ c_prev + i ⊙ g
            dz_f = dc_new * c_prev[n, j] * (fg * (ONE - fg))
            dz[n, g + j] = dc_new * ig * (ONE - gg * gg)
            dz[n, j], dz[n, f + j], dz[n, o + j] = dz_i, dz_f, dz_o
            dc_prev = dc_new * fg
            if peep:  # i, f = σ(z_i,f + p_i,f ⊙ c_prev)
                dc_prev += dz_i * peephole[j] + dz_f * peephole[hidden + j]
            if zoned_c:
                dc_prev = dc_prev + keep_c[n, j] * dc[n, j]
            dc[n, j] = dc_prev
            dh[n, j] = keep_h[n, j] * dh[n, j] if zoned_h else 0.0
        if normed:  # z = ... + LN(W_hh h_{t-1}) ⊙ g_hh
            row_norm_backward(dz[n], gain_hh, hidden_norm[n], hidden_rstd[n], means, drecurrent[n])


@jit
def masked_rows(h_prev, mask, out):
    """``out = h_prev ⊙ mask`` (N, H): what W_hh meets under recurrent dropout."""
    rows, hidden = h_prev.shape
    for n in range(rows):
        for j in range(hidden):
            out[n, j] = h_prev[n, j] * mask[n, j]


@jit
def add_masked_product(dh, product, mask):
    """``dh += product ⊙ mask`` (or ``+= product`` where ``mask`` has no columns): the gradient
    reaching h_{t-1} through W_hh."""
    rows, hidden = dh.shape
    masked = mask.shape[1] > 0
    for n in range(rows):
        if masked:
            for j in range(hidden):
                dh[n, j] += product[n, j] * mask[n, j]
        else:
            for j in range(hidden):
                dh[n, j] += product[n, j]


@jit
def step_norms(norms, s):
    """Step s's share of layer norm's arrays: ``norms`` = (g_hh (4H,), g_c (H,), b_c (H,), the
    normalised W_hh h (T, N, 4H), its rstd (T, N), the normalised c (T, N, H), its rstd (T, N)),
    each empty (0 entries in its last axis) where layer norm, or b_c, is off."""
    gain_hh, gain_c, shift_c, hidden_norm, hidden_rstd, cell_norm, cell_rstd = norms
    return gain_hh, gain_c, shift_c, hidden_norm[s], hidden_rstd[s], cell_norm[s], cell_rstd[s]


@jit
def variant_step_forward(t, gates, recurrent, h, c, c_cell, tanh_c, peephole, keep_h, keep_c, *norms):
    """Step t of the time loop (arrays as in :func:`variant_loop_forward`, ``norms``' seven arrays
    given one by one: a tuple costs Numba's dispatcher more than the step), given ``recurrent`` (N, 4H)."""
    depth, s = c.shape[0], t if tanh_c.shape[0] == gates.shape[0] else 0
    variant_cell_forward(
        gates[t], recurrent, h[t], c[t % depth], peephole, keep_h[t], keep_c[t], step_norms(norms, s),
        c_cell[s], c[(t + 1) % depth], tanh_c[s], h[t + 1],
    )  # fmt: skip


@jit
def variant_loop_forward(gates, weight_hh, h, c, c_cell, tanh_c, peephole, mask, keep_h, keep_c, norms):
    """The whole time loop of a small layer: gates (T, N, 4H) hold the input's pre-activations and
    become the activated gates; h (T+1, N, H) and c (T+1 or 2, N, H) start from h[0], c[0];
    c_cell and tanh_c are (T, N, H), or (1, N, H) when nothing is kept (and so are ``norms``'
    per-step arrays, :func:`step_norms`). ``mask`` (N, H) or (N, 0); ``keep_h``, ``keep_c``
    (T, N, H) or (T, N, 0). W_hh as :func:`recurrent_product` takes it."""
    recurrent = np.empty_like(gates[0])
    masked = np.empty_like(h[0])
    for t in range(gates.shape[0]):
        if mask.shape[1] > 0:
            masked_rows(h[t], mask, masked)
            recurrent_product(masked, weight_hh, recurrent)
        else:
            recurrent_product(h[t], weight_hh, recurrent)
        variant_step_forward(t, gates, recurrent, h, c, c_cell, tanh_c, peephole, keep_h, keep_c, *norms)


@jit
def variant_step_backward(
    t, doutput, dc_steps, dh, dc, gates, c, tanh_c, peephole, keep_h, keep_c, dcell, drecurrent, dz, *norms
):
    """Step t of BPTT: adds doutput[t] (and dc_steps[t], unless it has no steps) into dh and dc,
    then :func:`variant_cell_backward` into dz[t] (and, with layer norm, dcell[t] (T, N, H) and
    drecurrent[t] (T, N, 4H); without it ``dcell`` has no columns and ``drecurrent`` is ``dz``);
    the product through W_hh (of drecurrent[t]) is the caller's. ``norms``' seven arrays one by one."""
    dh += doutput[t]
    if dc_steps.shape[0] > 0:
        dc += dc_steps[t]
    variant_cell_backward(
        dh, dc, gates[t], c[t], tanh_c[t], peephole, keep_h[t], keep_c[t], step_norms(norms, t),
        dcell[t], drecurrent[t], dz[t],
    )  # fmt: skip


@jit
def variant_loop_backward(
    doutput, dc_steps, dh, dc, gates, c, tanh_c, peephole, mask, keep_h, keep_c, norms, weight_hh, dcell, drecurrent, dz
):
    """BPTT of :func:`variant_loop_forward`: dz (T, N, 4H) written (and dcell, drecurrent as
    :func:`variant_step_backward` says), dh and dc (N, H) turned from the final state's gradients
    into the initial state's. W_hh as :func:`gradient_product` takes it."""
    product = np.empty_like(dh)
    for t in range(gates.shape[0] - 1, -1, -1):
        variant_step_backward(
            t, doutput, dc_steps, dh, dc, gates, c, tanh_c, peephole, keep_h, keep_c, dcell, drecurrent, dz, *norms
        )
        gradient_product(drecurrent[t], weight_hh, product)
        add_masked_product(dh, product, mask)


@jit
def rows_norm_forward(a, gain, bias, y, normalised, rstd):
    """Layer norm of every row of ``a`` (R, F): ``y = â ⊙ gain (+ bias)`` (R, F), with ``â``
    (R, F) and ``rstd`` (R,) kept; ``bias`` (F,) or (0,). W_ih x's norm over all steps at once."""
    shifted = bias.shape[0] > 0
    for r in range(a.shape[0]):
        rstd[r] = row_norm(a[r], normalised[r])
        for j in range(a.shape[1]):
            y[r, j] = normalised[r, j] * gain[j]
        if shifted:
            for j in range(a.shape[1]):
                y[r, j] += bias[j]


@jit
def rows_norm_backward(dy, gain, normalised, rstd, out):
    """Backward of :func:`rows_norm_forward`: ``out`` (R, F) the gradient of ``a`` from ``dy`` (R, F)."""
    means = np.zeros(2, dtype=dy.dtype)
    for r in range(dy.shape[0]):
        row_norm_backward(dy[r], gain, normalised[r], rstd[r], means, out[r])


@jit
def weighted_column_sums(a, b, out):
    """``out += Σ_r a[r] ⊙ b[r]`` (F,) over the rows of ``a``, ``b`` (R, F); ``b`` with no columns:
    ``out += Σ_r a[r]``. ``out`` float64: a gain's or shift's gradient over all steps."""
    weighted = b.shape[1] > 0
    for r in range(a.shape[0]):
        if weighted:
            for j in range(a.shape[1]):
                out[j] += a[r, j] * b[r, j]
        else:
            for j in range(a.shape[1]):
                out[j] += a[r, j]
