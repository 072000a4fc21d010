"""The time loop every cell shares: hoisted input projection, variable lengths, weight gradients.

A cell's equations live in its own module (:mod:`.lstm`, :mod:`.gru`, :mod:`.rnn`) as a
``step`` and a ``step_backward``; this module walks them over a sequence, once for all cells.

Variable lengths follow PyTorch's packed layout: the N sequences are sorted by decreasing
length and ``batch_sizes[t]`` (non-increasing) says how many are still running at step t, so
the active rows of step t are always the first ``batch_sizes[t]``. Past its end a sequence's
state is carried unchanged (``h_t = h_{t-1}``), its output is zero, and the gradient reaching
its state passes through untouched; its final state is therefore the state at its own last
step. Without ``batch_sizes`` every row is active at every step and nothing is masked.

``batch_sizes`` may instead be a (T, N) boolean array (Keras' masks): any pattern of running
rows, the same rules row by row. Every row is then computed at every step and the state of
a row that does not run is carried (``h_t = h_{t-1}``), its output is zero and its step gets
no gradient; ``padding_mask(batch_sizes)`` as such an array gives what ``batch_sizes`` gives.

Zoneout (Krueger et al. 2017) is the loop's too: with a :class:`Zoneout`, each state part
keeps a fraction of its previous value, ``state_t = keep_t ⊙ state_{t-1} + (1 - keep_t) ⊙
new_t``, where ``new_t`` is what the step computed from ``state_{t-1}``. Training passes 0/1
masks (Bernoulli with the zoneout rate), evaluation the rate itself (the masks' expectation).
The zoned state is what the history, the output and the next step see. Rows that do not run
are carried as above, whatever their mask says.

Shapes (T steps, N batch, G = gates x hidden units):

    ==============  ===========  ==============================================
    pre_input       (T, N, G)    the input's share of the pre-activations
    state parts     (N, ·)       h (and c for an LSTM) before the first step
    history         (T+1, N, ·)  every state part at every step, [0] = initial
    saved           (T, N, ·)    what each step keeps for its backward (zeros
                                 in rows that were not active; a field the step
                                 leaves None stays None)
    zoneout parts   (T, N, ·)    or anything that broadcasts to it, or None:
                                 the fraction of the previous state kept
    dstate_steps    (T, N, ·)    or None: gradients of each step's state, as
                                 ``doutput`` is h's (scan_backward)
    ==============  ===========  ==============================================
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class GateDropout(NamedTuple):
    """Dropout masks fixed for a whole sequence, one per block of gate rows (Keras' dropout and
    recurrent_dropout). Entries are 0 or 1/(1 - rate). K masks split a weight's rows into K
    equal blocks, and block k sees its input multiplied by mask k (K = 1: one mask for all):

        =========  ==========  =================================================
        input      (K, N, I)   on x_t, the same at every step; or None
        recurrent  (K, N, R)   on h_{t-1} wherever W_hh meets it; or None
        =========  ==========  =================================================

    Only W_ih and W_hh see the masked inputs: the rest of a cell's equations (``z ⊙ h_{t-1}``
    in a GRU) uses the state as it is, as Keras does.
    """

    input: np.ndarray | None = None
    recurrent: np.ndarray | None = None


def check_gate_dropout(owner: str, dropout, gate_count: int, batch: int, features: int, state_size: int) -> GateDropout:
    """``dropout`` (None: no masks) as a :class:`GateDropout` whose masks fit the call, or a
    ValueError naming the shape expected and the shape given."""
    if dropout is None:
        return GateDropout()
    if not isinstance(dropout, GateDropout):
        raise TypeError(f"{owner}: dropout must be a GateDropout or None, got {type(dropout).__name__}")
    counts = sorted({1, gate_count})
    for name, masks, size in (("input", dropout.input, features), ("recurrent", dropout.recurrent, state_size)):
        shape = np.shape(masks)
        if masks is not None and (len(shape) != 3 or shape[0] not in counts or shape[1:] != (batch, size)):
            raise ValueError(
                f"{owner}: dropout.{name} must have shape (K, {batch}, {size}) with K in {counts} "
                f"(one mask, or one per gate), got shape {shape}"
            )
    return dropout


class Zoneout(NamedTuple):
    """Zoneout's keep fractions (Krueger et al. 2017), one per state part: each None (no zoneout
    on that part) or an array that broadcasts to (T, N, size) holding the fraction of the
    previous state kept at each step: 0/1 masks in training, the zoneout rate in evaluation.

        ====  ===========  =============================================
        h     (T, N, R)    on the hidden state (the output); or None
        c     (T, N, H)    on an LSTM's cell state; None for a GRU or RNN
        ====  ===========  =============================================
    """

    h: np.ndarray | None = None
    c: np.ndarray | None = None


def check_zoneout(owner: str, zoneout, steps: int, batch: int, sizes: tuple[int, ...], dtype) -> Zoneout | None:
    """``zoneout`` with each part an array of ``dtype`` broadcast (a view) to (T, N, size), one
    size per state part; None when there is none. A TypeError or ValueError names what is wrong."""
    if zoneout is None:
        return None
    if not isinstance(zoneout, Zoneout):
        raise TypeError(f"{owner}: zoneout must be a Zoneout or None, got {type(zoneout).__name__}")
    parts = {}
    for index, (name, keep) in enumerate(zip(Zoneout._fields, zoneout)):
        if keep is None:
            continue
        if index >= len(sizes):
            raise ValueError(f"{owner}: zoneout.{name} must be None (the state has no {name}), got an array")
        shape = (steps, batch, sizes[index])
        try:
            parts[name] = np.broadcast_to(np.asarray(keep, dtype=dtype), shape)
        except ValueError:
            raise ValueError(
                f"{owner}: zoneout.{name} must broadcast to (T, N, size) = {shape}, got shape {np.shape(keep)}"
            ) from None
        if not np.all((parts[name] >= 0) & (parts[name] <= 1)):
            raise ValueError(f"{owner}: zoneout.{name} must hold fractions in [0, 1], got values outside")
    return Zoneout(**parts) if parts else None


def _keep_at(zoneout: Zoneout, t: int, active: int) -> list:
    """Each state part's keep fractions at step t, its active rows (None where it has none)."""
    return [None if keep is None else keep[t, :active] for keep in zoneout]


def _flat(array):
    return array.reshape(-1, array.shape[-1])


def _blocks(weight, masks, axis=0):
    return np.split(weight, len(masks), axis=axis)


def gate_product(a, weight, masks=None):
    """``a Wᵀ`` (..., N, F) x (G, F) -> (..., N, G), with block k of W's rows applied to
    ``a ⊙ masks[k]``. ``masks`` (K, M, F), M >= N: its first N rows count (the active ones)."""
    if masks is None:
        return (_flat(a) @ weight.T).reshape(*a.shape[:-1], -1)
    rows = a.shape[-2]
    parts = [_flat(a * mask[:rows]) @ block.T for mask, block in zip(masks, _blocks(weight, masks))]
    return np.concatenate(parts, axis=-1).reshape(*a.shape[:-1], -1)


def gate_product_input_grad(dz, weight, masks=None):
    """The gradient of ``a`` in :func:`gate_product` from that of its result ``dz`` (..., N, G)."""
    if masks is None:
        return (_flat(dz) @ weight).reshape(*dz.shape[:-1], -1)
    rows, shape = dz.shape[-2], (*dz.shape[:-1], weight.shape[1])
    parts = zip(_blocks(dz, masks, axis=-1), _blocks(weight, masks), masks)
    return sum((_flat(dz_k) @ block).reshape(shape) * mask[:rows] for dz_k, block, mask in parts)


def gate_product_weight_grad(dz, a, masks=None):
    """The gradient of W in :func:`gate_product`, summed over every leading axis: (G, F)."""
    if masks is None:
        return _flat(dz).T @ _flat(a)
    rows = a.shape[-2]
    parts = [_flat(dz_k).T @ _flat(a * mask[:rows]) for dz_k, mask in zip(_blocks(dz, masks, axis=-1), masks)]
    return np.concatenate(parts, axis=0)


def input_projection(x, weight_ih, bias=None, masks=None):
    """``x W_ihᵀ + bias`` for all T steps as one matrix product (T*N, I) x (I, G): the part
    of the pre-activations that does not depend on the previous state (cuDNN's trick).
    ``masks``: :attr:`GateDropout.input`, or None."""
    pre_input = gate_product(x, weight_ih, masks)
    if bias is not None:
        pre_input += bias
    return pre_input


def _schedule(batch_sizes, steps: int, batch: int):
    """``(counts, running)``: how many leading rows each step computes, and for a (T, N) boolean
    ``batch_sizes`` that array (which computed rows keep their result), else None."""
    if batch_sizes is None:
        return [batch] * steps, None
    if np.ndim(batch_sizes) == 2:
        return [batch] * steps, np.asarray(batch_sizes, dtype=bool)
    return [int(size) for size in batch_sizes], None


def _carry(running_t, new, old):
    """``new`` in the rows that run at this step, ``old`` in the others: (N,) mask, (N, ·) arrays."""
    return [np.where(running_t[:, None], n, o) for n, o in zip(new, old)]


def _rows(arrays, active: int, batch: int):
    """The first ``active`` rows of each (N, ·) array: the arrays themselves when all are active."""
    return arrays if active == batch else [array[:active] for array in arrays]


def padding_mask(batch_sizes, batch: int) -> np.ndarray:
    """(T, N) booleans: True where sequence n is still running at step t (sequences sorted);
    a (T, N) boolean ``batch_sizes`` is returned as it is."""
    if np.ndim(batch_sizes) == 2:
        return np.asarray(batch_sizes, dtype=bool)
    return np.arange(batch)[None, :] < np.asarray(batch_sizes)[:, None]


def reverse_in_time(array, batch_sizes=None):
    """Each sequence of ``array`` (T, N, ·) reversed within its own length; padding stays put.

    What the reverse direction of a bidirectional layer runs on: a sequence of length L starts
    at its own step L-1, not at T-1. The permutation is its own inverse and its own transpose,
    so the same call maps outputs back and gradients both ways.
    """
    if batch_sizes is None:
        return array[::-1]
    steps, batch = array.shape[:2]
    lengths = padding_mask(batch_sizes, batch).sum(axis=0)
    t = np.arange(steps)[:, None]
    source = np.where(t < lengths, lengths - 1 - t, t)  # (T, N): the step each entry comes from
    return np.take_along_axis(array, source[:, :, None], axis=0)


def scan(step, pre_input, state0, batch_sizes=None, keep_cache=True, zoneout=None):
    """Run ``step`` over the T steps of ``pre_input`` (T, N, G).

    ``step(z_t, *state_prev)`` returns ``(*state_t, saved_t)`` for the active rows: the new
    state parts and a NamedTuple of arrays its backward needs (one without fields for nothing;
    a field may be None). ``zoneout``, optional: the keep fractions of each state part, aligned
    with ``state0`` (a :class:`Zoneout` from :func:`check_zoneout`).
    Returns ``(output, final_state, history, saved)``: output (T, N, ·) is h at every step
    (zero past each sequence's end), final_state a tuple of (N, ·) arrays, and history and
    saved (see the module docstring) are None unless ``keep_cache``. Without ``keep_cache``
    only h is kept for every step (it is the output); other parts use two alternating rows.
    """
    steps, batch = pre_input.shape[:2]
    depths = [steps + 1 if keep_cache or part == 0 else 2 for part in range(len(state0))]
    history = [np.empty((depth, batch, s.shape[-1]), dtype=pre_input.dtype) for depth, s in zip(depths, state0)]
    for buffer, initial in zip(history, state0):
        buffer[0] = initial
    saved = None
    counts, running = _schedule(batch_sizes, steps, batch)
    for t, active in enumerate(counts):
        previous = [buffer[t % depth] for buffer, depth in zip(history, depths)]
        state_prev = _rows(previous, active, batch)
        *state, step_saved = step(pre_input[t, :active], *state_prev)
        if zoneout is not None:  # state_t = keep ⊙ state_prev + (1 - keep) ⊙ new_t
            keep = _keep_at(zoneout, t, active)
            state = [n if k is None else k * p + (1 - k) * n for k, p, n in zip(keep, state_prev, state)]
        if running is not None:
            state = _carry(running[t], state, previous)
        for buffer, depth, before, after in zip(history, depths, previous, state):
            row = buffer[(t + 1) % depth]
            row[:active] = after
            if active < batch:
                row[active:] = before[active:]
        if keep_cache:
            if saved is None:
                saved = type(step_saved)._make(
                    None if a is None else np.zeros((steps, batch, a.shape[-1]), dtype=a.dtype) for a in step_saved
                )
            for buffer, value in zip(saved, step_saved):
                if value is not None:
                    buffer[t, :active] = value
    final_state = tuple(buffer[steps % depth].copy() for buffer, depth in zip(history, depths))
    output = history[0][1:]
    if batch_sizes is not None:
        output = np.where(padding_mask(batch_sizes, batch)[:, :, None], output, 0).astype(output.dtype, copy=False)
    if not keep_cache:
        return output, final_state, None, None
    return output, final_state, tuple(history), saved


def scan_backward(step_backward, doutput, dstate_last, batch_sizes=None, zoneout=None, dstate_steps=None):
    """Backpropagation through time for :func:`scan`: its steps walked last to first.

    ``step_backward(t, active, *dstate)`` gets the gradients reaching step t's new state (its
    active rows, output gradient included, past zoneout's share) and returns ``(grads_t,
    dstate_prev)``: a tuple of per-step gradients to collect and the gradients of the previous
    state, as new arrays (the loop adds into them in place). ``zoneout``: the forward's.
    ``dstate_steps``, optional: a tuple aligned with the state parts, each None or a (T, N, ·)
    array added to the gradient reaching step t's state, as ``doutput`` is to h's.
    Returns ``(collected, dstate0)``: each collected gradient as a (T, N, ·) array (zero where
    a sequence had ended) and the initial state's gradients. Only the active rows of
    ``doutput`` and ``dstate_steps`` count: past a sequence's end, the output (and any state
    returned at every step) is a constant zero.
    """
    steps, batch = doutput.shape[:2]
    dstate = [np.array(d, dtype=doutput.dtype, copy=True) for d in dstate_last]
    incoming = _step_gradients(doutput, dstate_steps, len(dstate))
    collected = None
    allocate = np.empty if batch_sizes is None else np.zeros  # rows never active stay zero
    counts, running = _schedule(batch_sizes, steps, batch)
    for t in reversed(range(steps)):
        active = counts[t]
        for d, gradient in zip(dstate, incoming):
            if gradient is not None:
                d[:active] += gradient[t, :active] if running is None else gradient[t] * running[t, :, None]
        reaching = _rows(dstate, active, batch)  # the gradient of step t's (zoned) state
        if zoneout is None:
            grads, dprevious = step_backward(t, active, *reaching)
        else:  # state_t = keep ⊙ state_prev + (1 - keep) ⊙ new_t
            keep = _keep_at(zoneout, t, active)
            dnew = [d if k is None else (1 - k) * d for d, k in zip(reaching, keep)]
            grads, dprevious = step_backward(t, active, *dnew)
            dprevious = [dp if k is None else dp + k * d for dp, d, k in zip(dprevious, reaching, keep)]
        if running is not None:  # rows that did not run: no step gradient, the state's passes through
            grads = tuple(gradient * running[t, :, None] for gradient in grads)
            dprevious = _carry(running[t], dprevious, dstate)
        if collected is None:
            collected = tuple(allocate((steps, batch, g.shape[-1]), dtype=g.dtype) for g in grads)
        for buffer, gradient in zip(collected, grads):
            buffer[t, :active] = gradient
        if active == batch:  # the step returned new arrays: take them, no copy
            dstate = list(dprevious)
        else:
            for d, gradient in zip(dstate, dprevious):
                d[:active] = gradient
    return collected, tuple(dstate)


def _step_gradients(doutput, dstate_steps, parts: int) -> list:
    """The gradient reaching each state part at every step from outside the loop: ``doutput``
    for h, plus ``dstate_steps``' parts; None where a part gets none."""
    incoming = [doutput] + [None] * (parts - 1)
    if dstate_steps is None:
        return incoming
    if len(dstate_steps) != parts:
        raise ValueError(
            f"scan_backward: dstate_steps must have {parts} parts (one per state part), got {len(dstate_steps)}"
        )
    return [a if b is None else b if a is None else a + b for a, b in zip(incoming, dstate_steps)]


def projection_backward(x, h_previous, dpre_input, dpre_hidden, weights, dropout: GateDropout | None = None):
    """Gradients of the two affine maps of a cell, each one product over all steps at the end.

    The pre-activations are ``W_ih x_t + b_ih`` (gradient ``dpre_input``) and ``W_hh h_{t-1} +
    b_hh`` (gradient ``dpre_hidden``; the same array as ``dpre_input`` for LSTM and RNN), with
    ``dropout``'s masks on x and h where given. Returns ``(dx, dweight_ih, dweight_hh,
    dbias_ih, dbias_hh)``, the biases None when ``weights`` has none.
    """
    dropout = dropout or GateDropout()
    dx = gate_product_input_grad(dpre_input, weights.weight_ih, dropout.input)
    dweight_ih = gate_product_weight_grad(dpre_input, x, dropout.input)
    dweight_hh = gate_product_weight_grad(dpre_hidden, h_previous, dropout.recurrent)
    if weights.bias_ih is None:
        return dx, dweight_ih, dweight_hh, None, None
    dbias_ih = _flat(dpre_input).sum(axis=0)
    dbias_hh = dbias_ih.copy() if dpre_hidden is dpre_input else _flat(dpre_hidden).sum(axis=0)
    return dx, dweight_ih, dweight_hh, dbias_ih, dbias_hh
