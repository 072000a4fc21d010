"""The training curves: the data behind the pictures (best epoch, axes, titles, files), not their pixels."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest

from lstmkit.cli import main
from lstmkit.training_curves import (
    CURVE,
    METRIC_CURVE,
    best_epoch,
    curve_figures,
    curve_title,
    epoch_limits,
    write_curves,
)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def history(values: list[float], metric: str = "accuracy") -> list[dict]:
    return [
        {"epoch": e + 1, "train_loss": 2.0 / (e + 1), "valid_loss": 1.0 + abs(v - 0.5), f"valid_{metric}": v}
        for e, v in enumerate(values)
    ]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_best_epoch_follows_the_metrics_direction_and_keeps_the_first_of_a_tie():
    records = history([0.5, 0.9, 0.7, 0.9, 0.2])
    assert best_epoch(records, "accuracy", higher_is_better=True) == 2  # the tie at epoch 4 does not replace it
    assert best_epoch(records, "accuracy", higher_is_better=False) == 5
    assert best_epoch(history([3.0]), "accuracy", True) == 1
    with pytest.raises(ValueError, match="history is empty"):
        best_epoch([], "rmse", False)


@pytest.mark.parametrize("epochs", [1, 2, 50])
def test_the_epoch_axis_has_whole_epochs_and_room_at_both_ends(epochs):
    rng = np.random.default_rng(epochs)
    figures = curve_figures(history(list(rng.random(epochs))), "accuracy", True, "lstmkit train digits")
    assert list(figures) == [CURVE, METRIC_CURVE]
    for figure in figures.values():
        (axes,) = figure.axes
        low, high = axes.get_xlim()
        assert (low, high) == epoch_limits(range(1, epochs + 1))
        assert low < 1 and high > epochs
        ticks = [tick for tick in axes.get_xticks() if low <= tick <= high]
        assert ticks and all(float(tick).is_integer() for tick in ticks)
        assert 1 <= len(ticks) <= 11
        assert axes.get_xlabel() == "epoch"
    assert epoch_limits([1]) == (0.5, 1.5)
    assert epoch_limits(range(1, 51)) == pytest.approx((1 - 0.98, 50 + 0.98))


def test_a_single_epoch_is_drawn_as_a_visible_point_at_one():
    figure = curve_figures(history([0.4]), "accuracy", True)[METRIC_CURVE]
    (axes,) = figure.axes
    curve = next(line for line in axes.get_lines() if line.get_label() == "valid accuracy")
    assert list(curve.get_xdata()) == [1]
    assert curve.get_marker() == "o" and curve.get_markersize() >= 4
    assert [tick for tick in axes.get_xticks() if 0.5 <= tick <= 1.5] == [1]


def best_marker(axes):
    return next(line for line in axes.get_lines() if line.get_label().startswith("best epoch"))


def test_the_best_epoch_is_marked_on_every_figure():
    records = history([0.3, 0.8, 0.6])
    figures = curve_figures(records, "accuracy", True)
    metric_axes, loss_axes = figures[METRIC_CURVE].axes[0], figures[CURVE].axes[0]
    assert list(best_marker(metric_axes).get_xdata()) == [2]
    assert list(best_marker(metric_axes).get_ydata()) == [0.8]
    assert list(best_marker(loss_axes).get_xdata()) == [2]
    assert list(best_marker(loss_axes).get_ydata()) == [records[1]["valid_loss"]]
    assert best_marker(loss_axes).get_label() == "best epoch 2 (best.npz)"
    lower_is_better = curve_figures(history([9.0, 4.0, 5.0], "rmse"), "rmse", False)
    assert list(best_marker(lower_is_better[METRIC_CURVE].axes[0]).get_xdata()) == [2]
    assert lower_is_better[METRIC_CURVE].axes[0].get_ylabel() == "valid rmse"


def test_the_title_has_the_test_result_once_known():
    assert curve_title("lstmkit train mnist", "accuracy") == "lstmkit train mnist"
    assert curve_title("t", "accuracy", best=3) == "t: best epoch 3"
    titled = curve_title("lstmkit train mnist", "accuracy", {"loss": 0.06131, "accuracy": 0.98125}, best=7)
    assert titled == "lstmkit train mnist: best epoch 7; test accuracy 0.9812, loss 0.06131"
    figures = curve_figures(history([0.5, 0.6]), "accuracy", True, "run", {"loss": 1.5, "accuracy": 0.625})
    assert {figure.axes[0].get_title() for figure in figures.values()} == {
        "run: best epoch 2; test accuracy 0.625, loss 1.5"
    }


def test_a_task_whose_metric_is_the_loss_gets_one_figure():
    records = [{"epoch": 1, "train_loss": 1.0, "valid_loss": 2.0}]
    assert list(curve_figures(records, "loss", False)) == [CURVE]


def test_write_curves_writes_png_files(tmp_path):
    written = write_curves(history([0.1, 0.2]), "accuracy", True, tmp_path / "run", "t")
    assert written == [tmp_path / "run" / CURVE, tmp_path / "run" / METRIC_CURVE]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == sorted([CURVE, METRIC_CURVE])  # no temporaries
    assert plt.get_fignums() == []  # closed after writing


def test_a_training_run_titles_its_final_curves_with_the_test_result(tmp_path, monkeypatch):
    titles = {}

    def spy(history, metric, higher_is_better, out_dir, title="", test=None):
        titles["test"], titles["metric"], titles["best"] = test, metric, best_epoch(history, metric, higher_is_better)
        return real(history, metric, higher_is_better, out_dir, title, test)

    import lstmkit.train

    real = lstmkit.train.write_curves
    monkeypatch.setattr(lstmkit.train, "write_curves", spy)
    out = tmp_path / "digits"
    options = ["--epochs", "2", "--max-batches", "2", "--hidden-size", "8", "--no-progress", "--out", str(out)]
    assert main(["train", "digits", *options]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert titles == {"test": summary["test"], "metric": "accuracy", "best": summary["best_epoch"]}
    assert (out / CURVE).is_file() and (out / METRIC_CURVE).is_file()
