"""``lstmkit explain --html``: one self-contained page that draws what the text sheet says.

The page holds, from a real forward pass of the configuration: the network unrolled (layers ×
steps × directions, every arrow labelled with its tensor's shape, the arrows that make
``output`` and ``h_n``/``c_n`` marked, and which rows of h_n are slices of output); one cell
with its equations and the weight shapes on its edges; the parameters in PyTorch's, Keras',
TF1's and ONNX's layouts side by side, with each framework's count and PyTorch's formula; and
the text sheet itself, as selectable text. It loads nothing: no script, no font, no image
from anywhere, so it opens offline in any browser.
"""

from __future__ import annotations

import math
from html import escape

from ..convert.keras_layout import keras_shapes, to_keras_weights
from ..convert.onnx_layout import to_onnx_weights
from ..convert.spec import state_of
from ..convert.tf1_layout import to_tf1_weights
from ..explain import format_shape, parameter_formula
from .cell import cell_layout, equations
from .facts import LayerFacts
from .layout import unrolled_layout
from .svg import render_svg

PAGE_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1240px; padding: 0 12px; color: #202124; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 28px; }
svg { max-width: 100%; height: auto; display: block; }
pre { background: #f8f9fa; padding: 10px; overflow-x: auto; white-space: pre-wrap; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; table-layout: fixed; }
th, td { border: 1px solid #dadce0; padding: 4px 6px; vertical-align: top; text-align: left;
  overflow-wrap: anywhere; font-size: 13px; }
td code { white-space: normal; }
.note { color: #5f6368; }
.legend span { display: inline-block; margin-right: 18px; }
"""


def _weights_table(layer) -> str:
    """The parameters in four layouts, side by side: names and shapes, counts, or why a layout lacks them."""
    spec, state = state_of(layer)
    columns = {"PyTorch (state_dict)": lambda: {name: value.shape for name, value in state.items()}}

    def keras():
        return dict(zip(keras_shapes(spec), (w.shape for w in to_keras_weights(state, spec))))

    def tf1():
        return {name: value.shape for name, value in to_tf1_weights(state, spec).items()}

    def onnx():
        return {
            f"layer {k}: {name}": value.shape
            for k, weights in enumerate(to_onnx_weights(state, spec))
            for name, value in weights.items()
        }

    columns.update({"Keras 3 (get_weights)": keras, "TF1 (checkpoint)": tf1, "ONNX (W, R, B, P)": onnx})
    cells, counts = [], []
    for read in columns.values():
        try:
            shapes = read()
        except ValueError as error:  # the layout cannot express this layer: say why
            cells.append(f'<td class="note">{escape(str(error).split(": ", 1)[-1])}</td>')
            counts.append("<td>—</td>")
            continue
        rows = "<br>".join(f"<code>{escape(name)}</code> {format_shape(shape)}" for name, shape in shapes.items())
        cells.append(f"<td>{rows}</td>")
        counts.append(f'<td class="count">{sum(math.prod(shape) for shape in shapes.values()):,}</td>')
    header = "".join(f"<th>{escape(name)}</th>" for name in columns)
    formulas = "<br>".join(
        escape(f"layer {k}: {formula} = {count:,} per direction")
        for k, (formula, count) in enumerate(parameter_formula(layer, k) for k in range(layer.num_layers))
    )
    return (
        f"<table><tr>{header}</tr><tr>{''.join(cells)}</tr><tr>{''.join(counts)}</tr></table>"
        f'<p class="note">PyTorch&#39;s count, layer by layer:<br>{formulas}'
        + (" (times 2 for the two directions)" if layer.bidirectional else "")
        + ". Keras, TF1 and haste keep one bias where PyTorch keeps two (b_ih + b_hh).</p>"
    )


def _shapes_text(shape) -> str:
    """``(4, 2, 10)``, or ``[(2, 4), (2, 5)]`` for per-layer states."""
    return format_shape(shape) if isinstance(shape, tuple) else "[" + ", ".join(map(format_shape, shape)) + "]"


def explain_page(facts: LayerFacts, text_sheet: str, final_note: str) -> str:
    """The HTML of the page (see the module docstring) for ``facts``; ``text_sheet`` is
    ``lstmkit explain``'s text and ``final_note`` its sentence on h_n and output."""
    layer = facts.layer
    title = f"lstmkit.{layer!r}"
    unrolled = unrolled_layout(facts)
    notes = "".join(f"<p class='note'>{escape(note)}</p>" for note in unrolled.notes)
    sizes = (
        f"L = {facts.steps} steps, N = {facts.batch if facts.batch is not None else 'none (unbatched)'}, "
        f"input {format_shape(facts.input)}, output {format_shape(facts.output)}"
    )
    finals = ", ".join(f"{name} {_shapes_text(shape)}" for name, shape in facts.final.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{PAGE_STYLE}</style></head>
<body>
<h1>{escape(title)}</h1>
<p>{escape(sizes)}; final states {escape(finals)}.</p>
<h2>The network unrolled</h2>
<p class="legend"><span>green: what makes <code>output</code></span>
<span>orange: what makes <code>h_n</code>{" and <code>c_n</code>" if facts.cell else ""}</span>
<span>every arrow: its tensor's shape, from a real forward pass</span></p>
{render_svg(unrolled, title + " unrolled", "unrolled")}
{notes}
<p>{escape(final_note)}</p>
<h2>One cell (layer 0{", forward" if facts.num_directions == 2 else ""})</h2>
<pre class="equations">{escape(chr(10).join(equations(facts)))}</pre>
{render_svg(cell_layout(facts), title + " cell", "cell")}
<h2>Parameters in four layouts</h2>
{_weights_table(layer)}
<h2>The text sheet (<code>lstmkit explain</code>)</h2>
<pre class="sheet">{escape(text_sheet)}</pre>
</body></html>
"""
