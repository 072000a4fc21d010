"""``lstmkit explain``'s note on h_n and output, checked on a real forward pass; ``parameter_shapes`` against torch;
the explain modules' public seams."""

import ast
import itertools
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import lstmkit
from lstmkit.cli import main
from lstmkit.explain import explain_layer, parameter_count, parameter_shapes

TORCH = {
    "LSTM": (torch.nn.LSTM, {}),
    "GRU": (torch.nn.GRU, {}),
    "RNN_TANH": (torch.nn.RNN, {}),
    "RNN_RELU": (torch.nn.RNN, {"nonlinearity": "relu"}),
}
CLAIM = re.compile(r"(h_n\[[^\]]+\]) equals (output\[[^\]]+\])")
DENIAL = re.compile(r", not (output\[[^\]]+\])")
NOTES = list(itertools.product(TORCH, [False, True], [False, True], [2, None], [1, 2]))


def torch_forward(mode, input_size, hidden_size, num_layers, seq_len, batch, batch_first, bidirectional, proj_size=0):
    """``output`` and ``h_n`` of a random torch layer on a random input, as float64 NumPy arrays."""
    torch.manual_seed(0)
    layer_class, extra = TORCH[mode]
    if proj_size:
        extra = {**extra, "proj_size": proj_size}
    layer = layer_class(
        input_size, hidden_size, num_layers, batch_first=batch_first, bidirectional=bidirectional, **extra
    ).double()
    if batch is None:
        shape = (seq_len, input_size)
    else:
        shape = (batch, seq_len, input_size) if batch_first else (seq_len, batch, input_size)
    output, state = layer(torch.randn(shape, dtype=torch.float64))
    h_n = state[0] if mode == "LSTM" else state
    return {"output": output.detach().numpy(), "h_n": h_n.detach().numpy()}


def check_note(note: str, arrays: dict, directions: int) -> None:
    """Every ``h_n[..] equals output[..]`` holds numerically; every ``not output[..]`` does not."""
    claims = CLAIM.findall(note)
    assert len(claims) == directions, note
    for left, right in claims:
        np.testing.assert_allclose(eval(left, {}, arrays), eval(right, {}, arrays), rtol=1e-12, atol=1e-12)
    for denied in DENIAL.findall(note):
        assert not np.allclose(eval(claims[-1][0], {}, arrays), eval(denied, {}, arrays)), note


@pytest.mark.parametrize("mode,bidirectional,batch_first,batch,num_layers", NOTES)
def test_the_note_holds_on_a_real_forward(mode, bidirectional, batch_first, batch, num_layers):
    text = explain_layer(3, 5, num_layers, 4, batch, mode=mode, batch_first=batch_first, bidirectional=bidirectional)
    note = next(line for line in text.splitlines() if line.strip().startswith("note:"))
    arrays = torch_forward(mode, 3, 5, num_layers, 4, batch, batch_first, bidirectional)
    check_note(note, arrays, 2 if bidirectional else 1)
    assert ("h_n[:-" in note) == (num_layers > 1)


@pytest.mark.parametrize("batch_first", [False, True])
def test_the_note_with_projection_indexes_by_proj_size(batch_first):
    text = explain_layer(3, 6, 2, 4, 2, batch_first=batch_first, bidirectional=True, proj_size=2)
    note = next(line for line in text.splitlines() if "note:" in line)
    assert ":2]" in note and "2:]" in note
    check_note(note, torch_forward("LSTM", 3, 6, 2, 4, 2, batch_first, True, proj_size=2), 2)


def test_the_cli_batch_first_note_of_the_issue(capsys):
    assert (
        main(
            [
                "explain",
                "--input-size",
                "4",
                "--hidden-size",
                "8",
                "--seq-len",
                "3",
                "--batch",
                "2",
                "--batch-first",
                "--bidirectional",
            ]
        )
        == 0
    )
    note = next(line for line in capsys.readouterr().out.splitlines() if "note:" in line)
    assert "h_n[-2] equals output[:, -1, :8]" in note and "h_n[-1] equals output[:, 0, 8:]" in note
    check_note(note, torch_forward("LSTM", 4, 8, 1, 3, 2, True, True), 2)


def test_a_single_step_claims_no_difference():
    text = explain_layer(3, 5, 1, 1, 2, bidirectional=True)
    assert ", not output" not in text  # with one step the reverse direction ends where the forward one does


SHAPES = [
    (mode, layers, bias, bidirectional, proj)
    for mode, layers, bias, bidirectional in itertools.product(TORCH, [1, 3], [True, False], [False, True])
    for proj in ([0, 2] if mode == "LSTM" else [0])
]


@pytest.mark.parametrize("mode,layers,bias,bidirectional,proj", SHAPES)
def test_parameter_shapes_are_torchs_names_shapes_and_order(mode, layers, bias, bidirectional, proj):
    layer_class, extra = TORCH[mode]
    if proj:
        extra = {**extra, "proj_size": proj}
    reference = layer_class(7, 5, layers, bias=bias, bidirectional=bidirectional, **extra)
    expected = [(name, tuple(parameter.shape)) for name, parameter in reference.named_parameters()]
    shapes = parameter_shapes(mode, 7, 5, layers, bias, bidirectional, proj)
    assert list(shapes.items()) == expected
    assert parameter_count(mode, 7, 5, layers, bias, bidirectional, proj) == sum(
        p.numel() for p in reference.parameters()
    )
    ours = {"LSTM": lstmkit.LSTM, "GRU": lstmkit.GRU}.get(mode, lstmkit.RNN)
    options = {"proj_size": proj} if proj else ({"nonlinearity": mode[4:].lower()} if mode.startswith("RNN") else {})
    built = ours(7, 5, layers, bias=bias, bidirectional=bidirectional, **options)
    assert [(name, parameter.shape) for name, parameter in built.named_parameters()] == expected


def test_parameter_shapes_refuses_a_projection_outside_lstm():
    with pytest.raises(ValueError, match="GRU: proj_size is an LSTM option"):
        parameter_shapes("GRU", 3, 4, proj_size=2)


@pytest.mark.parametrize("module", ["explain.py", "keras/explain.py"])
def test_explain_modules_import_no_private_names(module):
    source = Path(lstmkit.__file__).parent / module
    imported = [
        (node.module, alias.name)
        for node in ast.walk(ast.parse(source.read_text()))
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    ]
    private = [
        (origin, name)
        for origin, name in imported
        if name.startswith("_")
        or any(part.startswith("_") and part != "__future__" for part in (origin or "").split("."))
    ]
    assert private == []
