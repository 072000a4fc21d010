"""The training curves a run writes: one figure per number, the best epoch marked, the test result in the title.

================================  ==============================================================
file                              what it shows, per epoch
================================  ==============================================================
``training_curve.png``            train and valid loss
``metric_curve.png``              the valid metric that picks the best epoch (accuracy, rmse,
                                  perplexity); not written for a task whose metric is the loss
================================  ==============================================================

Both mark the epoch kept as ``best.npz`` (:func:`best_epoch`: the first epoch with the best valid
metric, as the Trainer keeps it) and, once the run is finished, carry the best model's test
result in their title. The x axis has whole epochs only, with half an epoch of room at each end,
so a one-epoch run shows a single visible point at 1 rather than ticks 0.96 ... 1.04.

:func:`curve_figures` returns the matplotlib Figures (inspect them: ``figure.axes[0]``), and
:func:`write_curves` writes them as PNGs, atomically.
"""

from __future__ import annotations

import io as _bytes_io
from collections.abc import Sequence
from pathlib import Path

from . import io

CURVE = "training_curve.png"
METRIC_CURVE = "metric_curve.png"
CURVE_FILES = (CURVE, METRIC_CURVE)


def is_better(value: float, than: float, higher_is_better: bool) -> bool:
    """Whether ``value`` strictly beats ``than`` (a tie keeps the earlier epoch)."""
    return value > than if higher_is_better else value < than


def best_epoch(history: Sequence[dict], metric: str, higher_is_better: bool) -> int:
    """The epoch kept as ``best.npz``: the first one whose ``valid_<metric>`` no later epoch beats.

    ``history`` is the Trainer's (one record per epoch, each with ``epoch`` and ``valid_<metric>``).
    """
    if not history:
        raise ValueError("best_epoch: the history is empty; no epoch has been run")
    key = f"valid_{metric}"
    best = history[0]
    for record in history[1:]:
        if is_better(record[key], best[key], higher_is_better):
            best = record
    return best["epoch"]


def epoch_limits(epochs: Sequence[int]) -> tuple[float, float]:
    """The x range of a curve over ``epochs``: half an epoch beyond the first and the last
    (2% of the span when that is more), so that the end points are never on the frame."""
    first, last = min(epochs), max(epochs)
    pad = max(0.5, 0.02 * (last - first))
    return first - pad, last + pad


def curve_title(title: str, metric: str, test: dict | None = None, best: int | None = None) -> str:
    """``title``, then the best epoch and (when known) the best model's test loss and metric, e.g.
    ``lstmkit train mnist: best epoch 7; test accuracy 0.9812, loss 0.0613``."""
    parts = []
    if best is not None:
        parts.append(f"best epoch {best}")
    if test:
        shown = [f"{metric} {test[metric]:.4g}"] if metric in test else []
        shown += [f"{key} {value:.4g}" for key, value in test.items() if key != metric]
        parts.append("test " + ", ".join(shown))
    if not parts:
        return title
    return f"{title}: {'; '.join(parts)}" if title else "; ".join(parts)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _curve_figure(epochs, series: dict[str, list[float]], ylabel: str, best: int, best_key: str, title: str):
    """One figure: each of ``series`` over ``epochs``, the best epoch marked on ``series[best_key]``."""
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 4))
    markersize = 5 if len(epochs) <= 30 else 2.5
    for label, values in series.items():
        axes.plot(epochs, values, marker="o", markersize=markersize, label=label)
    best_value = series[best_key][epochs.index(best)]
    axes.axvline(best, color="0.6", linestyle="--", linewidth=1, zorder=0)
    axes.plot(
        [best],
        [best_value],
        linestyle="none",
        marker="*",
        markersize=14,
        color="tab:red",
        label=f"best epoch {best} (best.npz)",
        zorder=3,
    )
    axes.set_xlim(*epoch_limits(epochs))
    axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    axes.set_xlabel("epoch")
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    axes.legend()
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    return figure


def curve_figures(
    history: Sequence[dict],
    metric: str,
    higher_is_better: bool,
    title: str = "",
    test: dict | None = None,
) -> dict[str, object]:
    """File name -> matplotlib Figure of every curve (see the module docstring); the caller closes them.

    ``test``: the best model's test metrics (the summary's ``test``), shown in every title; None
    while the run goes on.
    """
    epochs = [record["epoch"] for record in history]
    best = best_epoch(history, metric, higher_is_better)
    heading = curve_title(title, metric, test, best)
    figures = {
        CURVE: _curve_figure(
            epochs,
            {"train loss": [r["train_loss"] for r in history], "valid loss": [r["valid_loss"] for r in history]},
            "loss",
            best,
            "valid loss",
            heading,
        )
    }
    if metric != "loss":
        key = f"valid {metric}"
        series = {key: [r[f"valid_{metric}"] for r in history]}
        figures[METRIC_CURVE] = _curve_figure(epochs, series, key, best, key, heading)
    return figures


def png_bytes(figure, dpi: int = 90) -> bytes:
    """``figure`` as PNG bytes (saved to memory, so that the file can be written atomically)."""
    buffer = _bytes_io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def write_curves(
    history: Sequence[dict],
    metric: str,
    higher_is_better: bool,
    out_dir: str | Path,
    title: str = "",
    test: dict | None = None,
) -> list[Path]:
    """Write :func:`curve_figures` into ``out_dir``, each atomically; returns the paths written."""
    plt = _pyplot()
    written = []
    for name, figure in curve_figures(history, metric, higher_is_better, title, test).items():
        try:
            data = png_bytes(figure)
        finally:
            plt.close(figure)
        path = Path(out_dir) / name
        io.atomic_write(path, lambda handle, data=data: handle.write(data))
        written.append(path)
    return written
