"""SVG text of a :class:`~.layout.Layout`: one group per box and per arrow, styled by role.

Each arrow's group carries ``data-role`` and ``data-shape`` (the tensor's shape as printed; a
state arrow's two, h's and c's, joined by "; "),
so a page's reader (or a test in a browser) can find what each arrow stands for. The SVG is
self-contained: its style is inside it, and it loads nothing.
"""

from __future__ import annotations

from html import escape

from .layout import Box, Layout

STYLE = """
.lstmkit-diagram { font: 12px system-ui, sans-serif; }
.lstmkit-diagram rect { stroke: #445; stroke-width: 1; rx: 6; }
.lstmkit-diagram .cell rect { fill: #e8f0fe; }
.lstmkit-diagram .input rect { fill: #f1f3f4; }
.lstmkit-diagram .output rect { fill: #e6f4ea; stroke: #1e8e3e; }
.lstmkit-diagram .final rect { fill: #fef7e0; stroke: #b06000; }
.lstmkit-diagram .gate rect { fill: #fce8e6; }
.lstmkit-diagram .merge rect { fill: #fff; stroke: #777; rx: 9; }
.lstmkit-diagram .merge text { font-size: 10px; }
.lstmkit-diagram .elided rect { fill: none; stroke: none; }
.lstmkit-diagram .elided text { font-size: 20px; fill: #666; }
.lstmkit-diagram .arrow polyline { fill: none; stroke: #555; stroke-width: 1.4; }
.lstmkit-diagram .arrow.output polyline { stroke: #1e8e3e; stroke-width: 2; }
.lstmkit-diagram .arrow.final polyline { stroke: #b06000; stroke-width: 2; }
.lstmkit-diagram .arrow.dashed polyline { stroke-dasharray: 5 4; }
.lstmkit-diagram .label { font-size: 11px; fill: #1a237e; }
"""


def _box(box: Box) -> str:
    line_height = 14
    first = box.y + box.height / 2 - line_height * (len(box.lines) - 1) / 2 + 4
    spans = "".join(
        f'<tspan x="{box.x + box.width / 2:.1f}" y="{first + line_height * i:.1f}">{escape(line)}</tspan>'
        for i, line in enumerate(box.lines)
    )
    return (
        f'<g class="box {box.role}"><rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.width:.1f}" '
        f'height="{box.height:.1f}"/><text text-anchor="middle">{spans}</text></g>'
    )


def _arrow(arrow, marker: str) -> str:
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in arrow.points)
    (x0, y0), (x1, y1) = arrow.points[0], arrow.points[-1]
    label = ""
    if not arrow.drawn_label:
        pass
    elif arrow.label and abs(y1 - y0) > 1:  # vertical: beside the arrow
        label = (
            f'<text class="label" x="{(x0 + x1) / 2 + 6:.1f}" y="{(y0 + y1) / 2 + 4:.1f}">{escape(arrow.label)}</text>'
        )
    elif arrow.label:  # horizontal: the first line above, the second below
        above, _, below = arrow.label.partition("\n")
        middle = (x0 + x1) / 2
        label = f'<text class="label" x="{middle:.1f}" y="{y0 - 6:.1f}" text-anchor="middle">{escape(above)}</text>'
        if below:
            label += (
                f'<text class="label" x="{middle:.1f}" y="{y0 + 14:.1f}" text-anchor="middle">{escape(below)}</text>'
            )
    dashed = " dashed" if arrow.dashed else ""
    shape = escape(arrow.label.replace("\n", "; "))
    return (
        f'<g class="arrow {arrow.role}{dashed}" data-role="{arrow.role}" data-shape="{shape}">'
        f'<polyline points="{points}" marker-end="url(#{marker})"/>{label}</g>'
    )


def render_svg(layout: Layout, title: str, ident: str = "unrolled") -> str:
    """The SVG document of ``layout``; ``ident`` keeps its marker's id unique on a page of several."""
    marker = f"{ident}-arrowhead"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lstmkit-diagram" id="{ident}" role="img" '
        f'viewBox="0 0 {layout.width:.0f} {layout.height:.0f}" width="{layout.width:.0f}" '
        f'height="{layout.height:.0f}" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f"<style>{STYLE}</style>",
        f'<defs><marker id="{marker}" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L8,4 L0,8 z" fill="#555"/></marker></defs>',
    ]
    parts += [_arrow(arrow, marker) for arrow in layout.arrows]
    parts += [_box(box) for box in layout.boxes]
    parts.append("</svg>")
    return "\n".join(parts)
