"""``lstmkit explain --html/--svg``: every label of the drawing equals a shape from a real forward
pass (run here, apart from the drawing's own), the final-state boxes' claims hold on real arrays,
the counts equal torch's and Keras', and the page (in headless Chromium, where installed) loads
nothing, logs no error and fits 1280 px."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ElementTree

import keras
import numpy as np
import pytest
import torch

import lstmkit
from lstmkit.cli import main
from lstmkit.diagram import explain_pictures
from lstmkit.explain import format_shape

SVG = "{http://www.w3.org/2000/svg}"

# (mode, input_size, hidden_size, num_layers, seq_len, batch, options)
CONFIGS = [
    ("LSTM", 20, 100, 2, 3, 1, {}),
    ("LSTM", 20, 100, 2, 50, 3, dict(bidirectional=True, proj_size=10)),
    ("LSTM", 8, 16, 4, 50, 2, dict(bidirectional=True)),
    ("LSTM", 8, 16, 6, 4, 2, dict(batch_first=True)),
    ("LSTM", 5, [6, 4], 2, 3, None, dict(bidirectional=True, merge_mode="sum")),
    ("LSTM", 5, 6, 1, 4, 2, dict(peepholes=True, layer_norm=True, bidirectional=True)),
    ("GRU", 8, 16, 2, 5, 2, dict(bidirectional=True, batch_first=True)),
    ("RNN_RELU", 3, 4, 1, 1, None, {}),
]
IDS = [f"{c[0]}-{c[2]}x{c[3]}-L{c[4]}-{c[6]}" for c in CONFIGS]


def build(mode, input_size, hidden, layers, options):
    options = dict(options)
    if mode.startswith("RNN"):
        return lstmkit.RNN(input_size, hidden, layers, nonlinearity=mode[4:].lower(), **options)
    return getattr(lstmkit, mode)(input_size, hidden, layers, **options)


def forward(layer, steps, batch):
    """A real forward pass on random input: (x, output, the state parts as lists of per-layer rows)."""
    shape = (steps, layer.input_size) if batch is None else (steps, batch, layer.input_size)
    if batch is not None and layer.batch_first:
        shape = (batch, steps, layer.input_size)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    output, state = layer.eval()(x)
    parts = state if isinstance(state, tuple) else (state,)
    return x, output, parts


def without_time(shape, layer, batch):
    axis = 1 if batch is not None and layer.batch_first else 0
    return tuple(size for index, size in enumerate(shape) if index != axis)


def expected_labels(layer, steps, batch):
    """role -> the set of shape labels the drawing must show, from this test's own forward pass."""
    x, output, parts = forward(layer, steps, batch)
    directions = layer.num_directions

    def row(part, k):  # layer k's first direction's final state, as one step's state
        array = part[k] if isinstance(part, list) else part[k * directions : (k + 1) * directions]
        return array.shape[1:]

    layers = range(layer.num_layers)
    drawn = layers if layer.num_layers <= 4 else [0, 1, layer.num_layers - 1]
    states = {
        "h " + format_shape(row(parts[0], k)) + ("; c " + format_shape(row(parts[1], k)) if len(parts) > 1 else "")
        for k in drawn
    }
    merged = layer.merge_mode != "concat"
    ups = {
        format_shape((*row(parts[0], k)[:-1], row(parts[0], k)[-1] * (1 if merged else directions)))
        for k in drawn
        if k < layer.num_layers - 1
    }
    return {
        "input": {format_shape(without_time(x.shape, layer, batch))},
        "output": {format_shape(without_time(output.shape, layer, batch))},
        "state": states if steps > 1 else set(),  # one step: no state passes between steps
        "up": ups,
    }


def drawn_labels(svg_text: str) -> dict[str, set[str]]:
    root = ElementTree.fromstring(svg_text)
    labels: dict[str, set[str]] = {}
    for group in root.iter(f"{SVG}g"):
        role, shape = group.get("data-role"), group.get("data-shape")
        if role and shape:
            labels.setdefault(role, set()).add(shape)
    return labels


def pictures(config):
    mode, input_size, hidden, layers, steps, batch, options = config
    return explain_pictures(input_size, hidden, layers, steps, batch, mode=mode, **options)


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_every_label_is_a_shape_of_a_real_forward_pass(config):
    mode, input_size, hidden, layers, steps, batch, options = config
    _, svg = pictures(config)
    drawn = drawn_labels(svg)
    expected = expected_labels(build(mode, input_size, hidden, layers, options), steps, batch)
    for role, shapes in expected.items():
        assert drawn.get(role, set()) == shapes, role
    assert set(drawn) <= set(expected)


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_the_final_state_boxes_claims_hold(config):
    """Each final box says which row of h_n it is and what slice of output it equals: both hold."""
    mode, input_size, hidden, layers, steps, batch, options = config
    layer = build(mode, input_size, hidden, layers, options)
    _, output, parts = forward(layer, steps, batch)
    root = ElementTree.fromstring(pictures(config)[1])
    boxes = [g for g in root.iter(f"{SVG}g") if g.get("class") == "box final"]
    assert (
        len(boxes) == len([k for k in range(layers) if layers <= 4 or k in (0, 1, layers - 1)]) * layer.num_directions
    )
    arrays = {"h_n": parts[0], "output": output}
    for box in boxes:
        name, claim = ["".join(span.itertext()) for span in box.iter(f"{SVG}tspan")]
        row = name.split(",")[0]  # "h_n[3]" or "h_n[1][0]"
        if claim.startswith("= "):
            np.testing.assert_array_equal(eval(row, {}, arrays), eval(claim[2:], {}, arrays))
        else:
            assert claim.startswith("not in output")


def test_steps_and_layers_past_the_limits_are_elided_and_said():
    html, svg = pictures(CONFIGS[2])  # 50 steps, 4 layers
    assert "45 steps are not drawn (t = 3 … 47)" in html
    assert svg.count("LSTM layer 3 ←") == 5  # all 4 layers, 5 of the 50 steps
    html, svg = pictures(CONFIGS[3])  # 6 layers
    assert "layers 2 … 4 are not drawn" in html
    assert "LSTM layer 5" in svg and "LSTM layer 3" not in svg


def keras_count(input_size, units, layers, bidirectional):
    model = [keras.Input((3, input_size))]
    for _ in range(layers):
        lstm = keras.layers.LSTM(units, return_sequences=True)
        model.append(keras.layers.Bidirectional(lstm) if bidirectional else lstm)
    return keras.Sequential(model).count_params()


@pytest.mark.parametrize("bidirectional", [False, True])
def test_the_counts_equal_torch_and_keras(bidirectional):
    html, _ = explain_pictures(7, 5, 2, 3, 2, bidirectional=bidirectional)
    torch_count = sum(p.numel() for p in torch.nn.LSTM(7, 5, 2, bidirectional=bidirectional).parameters())
    counts = [cell.split("<")[0] for cell in html.split('<td class="count">')[1:]]
    assert counts[:2] == [f"{torch_count:,}", f"{keras_count(7, 5, 2, bidirectional):,}"]


def test_the_cli_writes_both_files_and_refuses_what_it_cannot_draw(tmp_path, capsys):
    page, svg = tmp_path / "lstm.html", tmp_path / "lstm.svg"
    command = ["explain", "--input-size", "4", "--hidden-size", "3", "--seq-len", "2", "--html", str(page)]
    assert main([*command, "--svg", str(svg)]) == 0
    assert page.read_text().startswith("<!DOCTYPE html>") and svg.read_text().startswith("<svg")
    assert main([*command, "--style", "keras"]) == 2
    assert "leave out --style keras" in capsys.readouterr().err
    assert main([*command[:-1], str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


# ---- in a real browser -----------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser extra (playwright) is not installed")
    if CHROMIUM is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium; .ci/run installs it)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_the_page_in_chromium(browser, config, tmp_path):
    mode, input_size, hidden, layers, steps, batch, options = config
    path = tmp_path / "page.html"
    path.write_text(pictures(config)[0])
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, requests = [], []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))
    page.goto(path.as_uri())
    assert errors == [] and requests == [path.as_uri()]  # nothing but the page itself is loaded
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    shapes = page.evaluate(
        "[...document.querySelectorAll('#unrolled [data-role]')].filter(g => g.dataset.shape)"
        ".map(g => [g.dataset.role, g.dataset.shape])"
    )
    drawn: dict[str, set[str]] = {}
    for role, shape in shapes:
        drawn.setdefault(role, set()).add(shape)
    expected = expected_labels(build(mode, input_size, hidden, layers, options), steps, batch)
    assert drawn == {role: labels for role, labels in expected.items() if labels}
    torch_count = lstmkit.count_parameters(build(mode, input_size, hidden, layers, options))
    assert page.inner_text("td.count >> nth=0") == f"{torch_count:,}"
    assert "h_n" in page.inner_text("pre.sheet")  # the text sheet, as text
    page.close()
