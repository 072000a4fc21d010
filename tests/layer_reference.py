"""Run an lstmkit recurrent layer and its torch twin on the same input, forward and backward.

One comparison for every kind (LSTM, GRU, RNN) and every way of giving the input: a padded
array, a PackedSequence, or a padded array with ``lengths=``.
"""

from __future__ import annotations

import numpy as np
import torch
from conftest import assert_close, to_torch_module
from torch.nn.utils.rnn import pack_padded_sequence as torch_pack
from torch.nn.utils.rnn import pad_packed_sequence as torch_pad

import lstmkit

TORCH_LAYERS = {lstmkit.LSTM: torch.nn.LSTM, lstmkit.GRU: torch.nn.GRU, lstmkit.RNN: torch.nn.RNN}


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def like_state(parts, template):
    """``parts`` given back in the shape of ``template``: a tuple for an LSTM, one array otherwise."""
    return tuple(parts) if isinstance(template, tuple) else parts[0]


def make_layer(layer_class, config, dtype, seed):
    """An lstmkit layer and a torch layer holding the same weights; parameter names checked equal."""
    ours = layer_class(**config, dtype=dtype, seed=seed)
    reference = to_torch_module(ours, TORCH_LAYERS[layer_class], dtype, **config)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in reference.named_parameters()]
    return ours, reference


def compare_layer(ours, reference, x, hx, dtype, rng, lengths=None, enforce_sorted=True, lengths_keyword=False):
    """Assert output, final state and every gradient agree (float64: 1e-10, float32: 2e-5 relative).

    ``lengths``: compare on packed input (``pack_padded_sequence(x, lengths, ...)`` on both
    sides), or with ``lengths_keyword`` give lstmkit the padded ``x`` and ``lengths=`` while
    torch packs and pads around its layer. Returns the largest difference seen, for reports.
    """
    batch_first = ours.batch_first
    x_t = torch.tensor(x, requires_grad=True)
    hx_t = None if hx is None else like_state([torch.tensor(s, requires_grad=True) for s in as_tuple(hx)], hx)
    worst = [0.0]

    def check(actual, expected, what):
        expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else expected
        assert_close(actual, expected, dtype, what)
        worst[0] = max(worst[0], float(np.max(np.abs(np.asarray(actual) - expected), initial=0.0)))

    if lengths is None:
        output, state = ours(x, hx)
        output_t, state_t = reference(x_t, hx_t)
    else:
        packed_t = torch_pack(x_t, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=enforce_sorted)
        output_t, state_t = reference(packed_t, hx_t)
        if lengths_keyword:
            output, state = ours(x, hx, lengths=lengths)
            output_t, _ = torch_pad(output_t, batch_first=batch_first, total_length=x.shape[1 if batch_first else 0])
        else:
            packed = lstmkit.pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=enforce_sorted)
            output, state = ours(packed, hx)
            for ours_part, torch_part in zip(output[1:], output_t[1:]):
                assert (ours_part is None) == (torch_part is None)
                if ours_part is not None:
                    np.testing.assert_array_equal(ours_part, torch_part.numpy())
    output_array = output.data if isinstance(output, lstmkit.PackedSequence) else output
    output_array_t = output_t.data if isinstance(output, lstmkit.PackedSequence) else output_t
    check(output_array, output_array_t, "output")
    for index, (part, part_t) in enumerate(zip(as_tuple(state), as_tuple(state_t))):
        check(part, part_t, f"final state {index}")

    g_output = rng.standard_normal(output_array.shape).astype(dtype)
    g_state = [rng.standard_normal(part.shape).astype(dtype) for part in as_tuple(state)]
    doutput = output._replace(data=g_output) if isinstance(output, lstmkit.PackedSequence) else g_output
    dinput, dhx = ours.backward(doutput, like_state(g_state, state))
    if isinstance(dinput, lstmkit.PackedSequence):
        dinput, _ = lstmkit.pad_packed_sequence(
            dinput, batch_first=batch_first, total_length=x.shape[1 if batch_first else 0]
        )
    loss = (output_array_t * torch.from_numpy(g_output)).sum()
    loss = loss + sum((part * torch.from_numpy(g)).sum() for part, g in zip(as_tuple(state_t), g_state))
    loss.backward()
    check(dinput, x_t.grad, "dinput")
    if hx is not None:
        for index, (part, part_t) in enumerate(zip(as_tuple(dhx), as_tuple(hx_t))):
            check(part, part_t.grad, f"initial state gradient {index}")
    torch_parameters = dict(reference.named_parameters())
    for name, parameter in ours.named_parameters():
        check(parameter.grad, torch_parameters[name].grad, f"grad of {name}")
    return worst[0]


def random_state(layer, batch, rng, dtype, batched=True):
    """A random initial state for ``layer``: (h_0, c_0) for an LSTM, h_0 otherwise."""
    count = layer.num_directions * layer.num_layers
    sizes = layer._state_sizes()
    parts = [rng.standard_normal((count, *((batch,) if batched else ()), size)).astype(dtype) for size in sizes]
    return tuple(parts) if len(parts) > 1 else parts[0]
