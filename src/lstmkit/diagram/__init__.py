"""Pictures of a recurrent layer read off a real forward pass: the page and the SVG of
``lstmkit explain --html / --svg``.

    ==========  ==============================================================
    module      what it holds
    ==========  ==============================================================
    facts       the shapes of one forward pass (:class:`~.facts.LayerFacts`)
    layout      where the unrolled picture's boxes and arrows go
    cell        one cell: its layout and its equations
    svg         a layout as SVG text
    page        the HTML page
    ==========  ==============================================================
"""

from __future__ import annotations

from ..explain import build_layer, explain_layer, final_state_note
from .facts import LayerFacts, unrolled_facts
from .layout import unrolled_layout
from .page import explain_page
from .svg import render_svg

__all__ = ["LayerFacts", "explain_pictures", "unrolled_facts"]


def explain_pictures(
    input_size: int,
    hidden_size: int | list[int],
    num_layers: int = 1,
    seq_len: int = 1,
    batch: int | None = 1,
    **options,
) -> tuple[str, str]:
    """``(html, svg)`` of a configuration, given as :func:`~lstmkit.explain.explain_layer`'s
    arguments (``mode``, ``bidirectional``, ``proj_size``, ...): the page (:mod:`.page`) and the
    unrolled diagram alone."""
    layer = build_layer(input_size, hidden_size, num_layers, **options)
    facts = unrolled_facts(layer, seq_len, batch)
    sheet = explain_layer(input_size, hidden_size, num_layers, seq_len, batch, **options)
    note = final_state_note(
        num_layers, layer.output_size, seq_len, layer.bidirectional, layer.batch_first, batch is not None,
        per_layer=layer._state_lists, merge_mode=layer.merge_mode,
    )  # fmt: skip
    title = f"lstmkit.{layer!r}"
    return explain_page(facts, sheet, note), render_svg(unrolled_layout(facts), title + " unrolled")
