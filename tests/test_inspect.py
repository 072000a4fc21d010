"""``lstmkit inspect``: the arrays behind the pictures are the LSTM's gates and states (recomputed here
by hand and by the reference op), the pictures have the expected panels and labels, bad input is refused."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest

from lstmkit.cli import main
from lstmkit.cli_train import trained_model
from lstmkit.gates_over_time import lstm_gates_over_time, recurrent_input
from lstmkit.inspect_figures import inspection_figures
from lstmkit.inspect_sample import inspect_sample, softmax
from lstmkit.nn.layers import Linear, Sequential
from lstmkit.nn.recurrent import LSTM
from lstmkit.ops.lstm import LSTMWeights, lstm_forward

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TINY = ["--epochs", "1", "--max-batches", "3", "--hidden-size", "8", "--no-progress"]
PANELS = ["i input gate", "f forget gate", "g candidate", "o output gate", "c cell state", "h hidden state"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    options = {"mnist": ["--num-layers", "2", "--bidirectional"], "sunspots": ["--repeats", "1"], "ptb": []}
    for task, more in options.items():
        assert main(["train", task, *TINY, *more, "--out", str(root / task)]) == 0
    return {task: root / task / "best.npz" for task in options}


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_gates_equal_the_equations_by_hand_and_states_equal_the_layers_own():
    lstm = LSTM(3, 4, dtype=np.float64, seed=1)
    x = np.random.default_rng(2).normal(size=(6, 3))
    result = lstm_gates_over_time(lstm, x)
    W, U = lstm.weight_ih_l0.data, lstm.weight_hh_l0.data
    b = lstm.bias_ih_l0.data + lstm.bias_hh_l0.data
    h, c = np.zeros(4), np.zeros(4)
    for t in range(6):
        z = W @ x[t] + U @ h + b
        i, f, g, o = sigmoid(z[:4]), sigmoid(z[4:8]), np.tanh(z[8:12]), sigmoid(z[12:])
        c = f * c + i * g
        h = o * np.tanh(c)
        for name, value in zip("ifgoch", (i, f, g, o, c, h)):
            np.testing.assert_allclose(result[0, 0, name][t], value, rtol=0, atol=1e-12)
    lstm.return_states = "all"
    output, _, (h_all, c_all) = lstm(x)
    np.testing.assert_array_equal(result[0, 0, "h"], h_all[0])
    np.testing.assert_array_equal(result[0, 0, "c"], c_all[0])
    assert lstm.training and lstm.return_states == "all"  # restored as they were


@pytest.mark.parametrize(
    "options", [{}, {"merge_mode": "sum", "proj_size": 3}, {"peepholes": True, "zoneout": 0.3, "layer_norm": True}]
)
def test_a_stacked_bidirectional_layers_gates_are_the_reference_ops_on_each_layers_input(options):
    lstm = LSTM(3, 5, num_layers=2, bidirectional=True, dtype=np.float64, seed=4, **options)
    x = np.random.default_rng(5).normal(size=(7, 3))
    result = lstm_gates_over_time(lstm, x)
    lstm.eval()
    lstm.return_states = "all"
    output, _, (h_all, c_all) = lstm(x)
    for index, (layer, direction) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        np.testing.assert_array_equal(result[layer, direction, "h"], h_all[index])
        np.testing.assert_array_equal(result[layer, direction, "c"], c_all[index])
    # the top layer's reverse direction by hand from the ops: its input is layer 0's merged h, read backwards
    merged = h_all[0] + h_all[1] if options.get("merge_mode") == "sum" else np.concatenate(h_all[:2], axis=-1)
    suffix = "_l1_reverse"
    weights = LSTMWeights(
        **{f: getattr(lstm, f + suffix).data for f in LSTMWeights._fields if f + suffix in dict(lstm._parameters)}
    )
    zoneout = None
    if options.get("zoneout"):
        from lstmkit.ops.recurrence import Zoneout

        zoneout = Zoneout(np.float64(0.3), np.float64(0.3))
    h0, c0 = np.zeros((1, h_all.shape[-1])), np.zeros((1, 5))
    _, _, _, cache = lstm_forward(merged[::-1, None].copy(), h0, c0, weights, zoneout=zoneout)
    gates = cache.steps.gates[::-1, 0]
    np.testing.assert_allclose(np.concatenate([result[1, 1, n] for n in "ifgo"], axis=-1), gates, rtol=0, atol=1e-12)
    last = output[:, : h_all.shape[-1]] if options.get("merge_mode") != "sum" else output
    assert last.shape[0] == 7


def test_recurrent_input_refuses_a_model_without_an_lstm():
    with pytest.raises(ValueError, match="expected a recurrent model"):
        recurrent_input(Sequential(Linear(3, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="expected an lstmkit LSTM"):
        lstm_gates_over_time(Linear(3, 2), np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"expected one sequence of shape \(T >= 1, 3\)"):
        lstm_gates_over_time(LSTM(3, 2), np.zeros((4, 2)))


def heatmap_axes(figure):
    return {axes.get_ylabel(): axes for axes in figure.axes if axes.get_ylabel() in PANELS}


def test_mnist_pictures_have_every_panel_labelled_by_pixel_row(checkpoints, capsys):
    model, task, _ = trained_model(checkpoints["mnist"])
    inspection = inspect_sample(model, task, 3)
    image = task.parts["test"].x[3]
    expected = lstm_gates_over_time(model[0], image)
    assert inspection.states.keys() == expected.keys() and len(expected) == 4 * 6  # 2 layers x 2 directions
    for key, value in expected.items():
        np.testing.assert_array_equal(inspection.states[key], value)
    probabilities = softmax(model(image[None]))[0]
    assert inspection.target == (
        int(probabilities.argmax()),
        pytest.approx(probabilities.max()),
        int(task.parts["test"].y[3]),
    )
    figures = inspection_figures(inspection)
    assert list(figures) == ["layer0_forward.png", "layer0_reverse.png", "layer1_forward.png", "layer1_reverse.png"]
    figure = figures["layer1_reverse.png"]
    assert len(figure.axes) == 1 + 6 + 6 + 1  # input, six heatmaps and their colour bars, the prediction
    panels = heatmap_axes(figure)
    assert list(panels) == PANELS
    bottom = panels["h hidden state"]
    assert [label.get_text() for label in bottom.get_xticklabels()] == [str(row) for row in range(28)]
    assert bottom.get_xlabel() == "pixel row"
    np.testing.assert_array_equal(panels["f forget gate"].get_images()[0].get_array(), expected[1, 1, "f"].T)
    digit = figure.axes[-1]
    np.testing.assert_array_equal(digit.get_images()[0].get_array(), image)  # the digit itself, upright
    assert f"predicted {inspection.target[0]}" in digit.get_title()

    out = checkpoints["mnist"].parent / "inspect"
    assert main(["inspect", str(checkpoints["mnist"]), "--sample", "3", "--html"]) == 0  # default folder
    written = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert sorted(path.name for path in out.iterdir()) == ["index.html", *sorted(figures)]
    assert written["pictures"] == [str(out / name) for name in figures]
    for name in figures:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "index.html").read_text()
    assert page.count('src="data:image/png;base64,') == 4
    assert "http" not in page and "<script" not in page
    # the folder now holds pictures: a second run needs --force
    assert main(["inspect", str(checkpoints["mnist"]), "--sample", "3"]) == 2
    assert f"{out} is not empty; give --force" in capsys.readouterr().err


def test_sunspots_steps_are_the_windows_years_and_the_prediction_is_the_models(checkpoints, tmp_path):
    model, task, _ = trained_model(checkpoints["sunspots"])
    inspection = inspect_sample(model, task, 5)
    years, target_year = task.window_years("test", 5)
    assert inspection.steps == [str(year) for year in years] and inspection.step_axis == "year"
    year, predicted, true = inspection.target
    assert year == target_year == years[-1] + 1
    assert predicted == pytest.approx(task.predictions(model, "test")[5], rel=1e-5)
    assert true == pytest.approx(float(task.series.values[list(task.series.years).index(year)]), rel=1e-5)
    (figure,) = inspection_figures(inspection).values()
    bottom = heatmap_axes(figure)["h hidden state"]
    assert [label.get_text() for label in bottom.get_xticklabels()] == [str(year) for year in years]
    np.testing.assert_array_equal(
        inspection.states[0, 0, "i"], lstm_gates_over_time(model[0], task.parts["test"][0][5])[0, 0, "i"]
    )
    assert main(["inspect", str(checkpoints["sunspots"]), "--sample", "49", "--out", str(tmp_path / "s")]) == 0
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["layer0_forward.png"]
    assert main(["inspect", str(checkpoints["sunspots"]), "--out", str(tmp_path / "s"), "--force", "--html"]) == 0
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["index.html", "layer0_forward.png"]


def test_ptb_steps_are_the_words_and_the_top_next_word_is_the_models(checkpoints, tmp_path, capsys):
    model, task, _ = trained_model(checkpoints["ptb"])
    inspection = inspect_sample(model, task, text="the stock market fell")
    assert inspection.steps == ["the", "stock", "market", "fell"] and inspection.step_axis == "word"
    ids = np.array([task.vocabulary.index(word) for word in inspection.steps])
    logits, _ = model(ids[:, None])
    assert inspection.next_tokens == [task.vocabulary[i] for i in logits[:, 0].argmax(axis=-1)]
    lstm, embedded = recurrent_input(model, ids)
    assert lstm is model.lstm
    np.testing.assert_array_equal(embedded, model.embedding.weight.data[ids])
    for key, value in lstm_gates_over_time(model.lstm, embedded).items():
        np.testing.assert_array_equal(inspection.states[key], value)
    figures = inspection_figures(inspection)
    assert list(figures) == ["layer0_forward.png", "layer1_forward.png"]  # ptb's two layers
    bottom = heatmap_axes(figures["layer1_forward.png"])["h hidden state"]
    assert [label.get_text() for label in bottom.get_xticklabels()] == ["the", "stock", "market", "fell"]
    window = inspect_sample(model, task, 2)
    bptt = task.config["bptt"]
    assert window.steps == [task.vocabulary[i] for i in task.corpus.parts["test"][2 * bptt : 3 * bptt]]
    assert all(ok is not None for ok in window.next_correct)  # every step's next word is known in the stream
    out = tmp_path / "ptb"
    assert main(["inspect", str(checkpoints["ptb"]), "--text", "the stock market fell", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["layer0_forward.png", "layer1_forward.png"]


@pytest.mark.parametrize(
    "task, options, message",
    [
        ("mnist", ["--sample", "1000"], "--sample 1000 is out of range: mnist's test part has 1000 digits (0 to 999)"),
        ("sunspots", ["--sample", "50"], "--sample 50 is out of range: sunspots's test part has 50 windows (0 to 49)"),
        ("mnist", ["--text", "a b"], "--text applies to language models (ptb, text); mnist reads numbers"),
        ("ptb", ["--text", "  "], "--text is empty: give the words to read"),
        ("ptb", ["--text", "the zzzqx"], "--text: the prompt holds words this model never saw: ['zzzqx']"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(checkpoints, tmp_path, capsys, task, options, message):
    out = tmp_path / "out"
    assert main(["inspect", str(checkpoints[task]), *options, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lstmkit inspect: ") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path, capsys):
    foreign = tmp_path / "weights.npz"
    np.savez(foreign, weights=np.zeros(3))
    assert main(["inspect", str(foreign), "--out", str(tmp_path / "out")]) == 2
    assert "not an lstmkit checkpoint" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path / "missing.npz")]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["inspect", str(foreign), "--sample", "1", "--text", "x"])  # one input or the other
