"""``lstmkit inspect``'s pictures: one figure per LSTM layer and direction, and a page holding them.

Each figure (``layer{k}_{forward|reverse}.png``) has, top to bottom, sharing the time axis:

==============  ===================================================================
panel           what
==============  ===================================================================
input           the input along time: an image's rows (pixel column vs row), a
                series' values, or a language model's top next token after each
                step (bar = its probability, green where it is the next token)
i, f, g, o      the gates' activations, a heatmap of units x steps (σ: 0 to 1,
                g: -1 to 1), each with its colour bar
c, h            the cell and hidden states likewise (c's colour range symmetric
                around 0)
==============  ===================================================================

and on the right a panel with the prediction: the digit itself with the predicted class and
its probability, the window and the predicted next value against the true one, or the five most
likely tokens after the last step. The x tick labels are what each step was (pixel rows, years,
words, characters). :func:`inspection_figures` returns the matplotlib Figures; :func:`html_page`
puts PNGs on one self-contained page (base64 data URIs, nothing fetched).
"""

from __future__ import annotations

import base64
import html

import numpy as np

from .gates_over_time import DIRECTIONS, NAMES
from .inspect_sample import Inspection

TITLES = {
    "i": "i input gate",
    "f": "f forget gate",
    "g": "g candidate",
    "o": "o output gate",
    "c": "c cell state",
    "h": "h hidden state",
}
MAX_TICK_LABELS = 40  # more steps than this get every k-th label (twice as many single characters)


def figure_name(layer: int, direction: int) -> str:
    """The file of one layer-direction's figure, e.g. ``layer0_forward.png``."""
    return f"layer{layer}_{DIRECTIONS[direction]}.png"


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def color_range(name: str, values: np.ndarray) -> tuple[str, float, float]:
    """``(colormap, vmin, vmax)`` of a panel: the gates' own ranges, c's symmetric around 0."""
    if name in ("i", "f", "o"):
        return "viridis", 0.0, 1.0
    if name in ("g", "h"):
        return "RdBu_r", -1.0, 1.0
    bound = float(np.max(np.abs(values))) or 1.0
    return "RdBu_r", -bound, bound


def inspection_figures(inspection: Inspection, title: str = "") -> dict[str, object]:
    """File name -> matplotlib Figure, one per layer-direction of ``inspection.states``; the caller closes them."""
    pairs = sorted({(layer, direction) for layer, direction, _ in inspection.states})
    return {
        figure_name(layer, direction): _layer_figure(inspection, layer, direction, title) for layer, direction in pairs
    }


def _layer_figure(inspection: Inspection, layer: int, direction: int, title: str):
    plt = pyplot()
    steps = len(inspection.steps)
    width = min(max(9.0, 0.28 * steps + 5.0), 24.0)
    figure = plt.figure(figsize=(width, 11))
    grid = figure.add_gridspec(
        len(NAMES) + 1, 4, width_ratios=[1, 0.02, 0.1, 0.3], height_ratios=[1.3] + [1] * len(NAMES), wspace=0.06
    )  # columns: the panels, their colour bars, a gap, the prediction
    input_axes = figure.add_subplot(grid[0, 0])
    _draw_input(input_axes, inspection)
    axes_above = input_axes
    for row, name in enumerate(NAMES, start=1):
        axes = figure.add_subplot(grid[row, 0], sharex=axes_above)
        values = inspection.states[layer, direction, name]
        colormap, vmin, vmax = color_range(name, values)
        image = axes.imshow(values.T, aspect="auto", cmap=colormap, vmin=vmin, vmax=vmax, interpolation="nearest")
        axes.set_ylabel(TITLES[name], rotation=0, ha="right", va="center", fontsize=9)
        axes.set_yticks([0, values.shape[1] - 1])
        axes.tick_params(labelbottom=False, labelsize=7)
        figure.colorbar(image, cax=figure.add_subplot(grid[row, 1])).ax.tick_params(labelsize=7)
        axes_above = axes
    _label_steps(axes_above, inspection)
    _draw_prediction(figure.add_subplot(grid[1:, 3]), inspection)
    heading = f"{title}: " if title else ""
    figure.suptitle(f"{heading}layer {layer}, {DIRECTIONS[direction]}. {inspection.prediction}", fontsize=11)
    figure.subplots_adjust(left=0.12, right=0.97, top=0.94, bottom=0.1)
    return figure


def _label_steps(axes, inspection: Inspection) -> None:
    """The x axis of the bottom panel: what each step was (every k-th when there are many)."""
    steps = len(inspection.steps)
    narrow = all(len(label) <= 1 for label in inspection.steps)  # characters: every one fits
    every = max(1, -(-steps // (2 * MAX_TICK_LABELS if narrow else MAX_TICK_LABELS)))
    ticks = list(range(0, steps, every))
    axes.set_xticks(ticks)
    rotation = 0 if inspection.kind == "image" or narrow else 90
    axes.set_xticklabels([inspection.steps[t] for t in ticks], rotation=rotation, fontsize=8)
    axes.tick_params(labelbottom=True)
    axes.set_xlabel(inspection.step_axis)
    axes.set_xlim(-0.5, steps - 0.5)


def _draw_input(axes, inspection: Inspection) -> None:
    """The top panel: the input along time (or a language model's next-token guesses)."""
    axes.tick_params(labelbottom=False, labelsize=7)
    if inspection.kind == "image":
        axes.imshow(inspection.input.T, aspect="auto", cmap="gray_r", interpolation="nearest")
        axes.set_ylabel("input\n(pixel column)", rotation=0, ha="right", va="center", fontsize=9)
    elif inspection.kind == "series":
        axes.plot(np.arange(len(inspection.input)), inspection.input, marker="o", markersize=3, color="tab:orange")
        axes.set_ylabel("input\n(sunspots)", rotation=0, ha="right", va="center", fontsize=9)
    else:
        colors = ["0.7" if ok is None else "tab:green" if ok else "tab:red" for ok in inspection.next_correct]
        positions = np.arange(len(inspection.next_tokens))
        axes.bar(positions, inspection.next_probabilities, width=0.9, color=colors)
        for position, token in zip(positions, inspection.next_tokens):
            axes.text(position, 0.03, token, rotation=90, ha="center", va="bottom", fontsize=7)
        axes.set_ylim(0, 1)
        axes.set_ylabel("top next\ntoken (p)", rotation=0, ha="right", va="center", fontsize=9)


def _draw_prediction(axes, inspection: Inspection) -> None:
    """The right panel: the input as a whole and the prediction."""
    axes.tick_params(labelsize=7)
    if inspection.kind == "image":
        predicted, probability, label = inspection.target
        axes.imshow(inspection.input, cmap="gray_r", interpolation="nearest")
        axes.set_ylabel("pixel row", fontsize=8)
        axes.set_title(f"true {label}\npredicted {predicted}, p = {probability:.2f}", fontsize=10)
    elif inspection.kind == "series":
        year, predicted, true = inspection.target
        years = [int(step) for step in inspection.steps]
        axes.plot(years, inspection.input, marker="o", markersize=3, color="tab:orange", label="input")
        axes.plot([year], [true], marker="o", linestyle="none", color="black", label=f"true {true:.1f}")
        axes.plot(
            [year], [predicted], marker="X", linestyle="none", color="tab:red", label=f"predicted {predicted:.1f}"
        )
        axes.set_xlabel("year", fontsize=8)
        axes.legend(fontsize=7)
        axes.set_title(f"next year {year}", fontsize=10)
    else:
        axes.axis("off")
        listed = "\n".join(f"{token!s:>12}  {probability:.3f}" for token, probability in inspection.target)
        axes.set_title(f"after the last step ({inspection.steps[-1]})", fontsize=10)
        axes.text(0, 1, f"{'top next':>12}  p\n{listed}", va="top", family="monospace", fontsize=9)


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` of PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def html_page(title: str, summary: str, pngs: dict[str, bytes]) -> str:
    """One self-contained page: ``title``, ``summary`` and every PNG (name -> bytes) embedded."""
    sections = "\n".join(
        f'<section><h2>{html.escape(name)}</h2><img alt="{html.escape(name)}" src="{png_data_uri(data)}"></section>'
        for name, data in pngs.items()
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
img {{ max-width: 100%; height: auto; border: 1px solid #ddd; }}
section {{ margin-bottom: 2em; }}
</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(summary)}</p>
{sections}
</body>
</html>
"""
