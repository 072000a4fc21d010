"""Where everything of the unrolled picture goes: a layout model of boxes and labelled arrows.

The picture is a grid. Columns are time steps (left to right), with one column of "…" standing
for the steps not drawn when there are more than :data:`MAX_STEPS`; rows are, bottom to top, the
input, then every layer's directions (forward below reverse), then the output. The final states
sit beside the rows: a forward direction ends at the last step (right), a reverse one at t = 0
(left). Every arrow carries the shape of the tensor it stands for, from
:class:`~.facts.LayerFacts`, and a ``role`` the page styles and the tests read:

    ========  =================================================
    role      the arrow carries
    ========  =================================================
    input     x_t into the first layer
    state     h (and c) from one step to the next
    up        a layer's output at step t into the next layer
    output    the last layer's output at step t: ``output[t]``
    final     a direction's last state into h_n (and c_n)
    ========  =================================================

Coordinates are SVG user units; :mod:`.svg` draws the model as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..explain import format_shape, output_at
from .facts import LayerFacts

MAX_STEPS = 6  # steps drawn in full; more are drawn as the first 3, "…", the last 2
MAX_LAYERS = 4  # layers drawn in full; more are drawn as the first 2, "…", the last 1
COLUMN, ROW = 210, 96  # grid pitch
CELL_WIDTH, CELL_HEIGHT = 100, 44
STAGGER, LANE = 30, 50  # two directions: cells at x ∓ STAGGER, their vertical arrows at x ∓ LANE
SIDE = 200  # room beside the rows for the final states


@dataclass
class Box:
    x: float
    y: float
    width: float
    height: float
    lines: list[str]
    role: str  # "cell", "input", "output", "final", "merge", "elided"


@dataclass
class Arrow:
    points: list[tuple[float, float]]
    label: str  # one line, or two joined by "\n": above and below a horizontal arrow
    role: str  # see the module docstring
    dashed: bool = False
    drawn_label: bool = True  # False: the label is the arrow's data (its shape), written elsewhere on the picture


@dataclass
class Layout:
    width: float
    height: float
    boxes: list[Box] = field(default_factory=list)
    arrows: list[Arrow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was elided, in words


def shown(count: int, limit: int, head: int, tail: int) -> list[int | None]:
    """The indices drawn out of ``count``: all of them up to ``limit``, else the first ``head``,
    None (one "…" place), the last ``tail``."""
    if count <= limit:
        return list(range(count))
    return list(range(head)) + [None] + list(range(count - tail, count))


def _elided(indices: list[int | None]) -> tuple[int, int]:
    """The first and last index that :func:`shown`'s None stands for."""
    place = indices.index(None)
    return indices[place - 1] + 1, indices[place + 1] - 1


def _shape(shape) -> str:
    return format_shape(tuple(shape))


def unrolled_layout(facts: LayerFacts) -> Layout:
    """The layout of the layer of ``facts`` unrolled over time (see the module docstring)."""
    steps = shown(facts.steps, MAX_STEPS, 3, 2)
    layers = shown(facts.num_layers, MAX_LAYERS, 2, 1)
    directions = facts.num_directions
    rows = [(k, d) for k in layers for d in (range(directions) if k is not None else [0])]
    height = ROW * (len(rows) + 2)
    left = SIDE if directions == 2 else 20  # a reverse direction's final states sit on the left
    layout = Layout(width=left + COLUMN * len(steps) + SIDE, height=height)
    column_x = {t: left + COLUMN * i + COLUMN / 2 for i, t in enumerate(steps)}
    row_y = {row: height - ROW * (i + 1.5) for i, row in enumerate(rows)}
    input_y, output_y = height - ROW / 2, ROW / 2
    if None in steps:
        first, last = _elided(steps)
        layout.notes.append(
            f"{last - first + 1} steps are not drawn (t = {first} … {last}): they repeat the ones beside them"
        )
    if None in layers:
        first, last = _elided(layers)
        layout.notes.append(f"layers {first} … {last} are not drawn: they repeat the ones below them")
    for t, x in column_x.items():
        _step_column(layout, facts, t, x, rows, row_y, input_y, output_y)
    for (k, d), y in row_y.items():
        if k is not None:
            _recurrence(layout, facts, k, d, y, steps, column_x)
    return layout


def _step_column(layout, facts, t, x, rows, row_y, input_y, output_y):
    """The input, the cells, the arrows up and the output of step ``t`` (None: the "…" column).

    With two directions a layer's cells are staggered (forward left, reverse right, one row
    higher), so each direction's vertical arrows run straight in its own lane past the other
    cell; the two outputs meet in a "merge" node (concat, or the merge_mode) between layers.
    """
    if t is None:
        layout.boxes.append(Box(x - 40, output_y - 14, 80, 28 + (input_y - output_y), ["…"], "elided"))
        return
    half, directions = CELL_HEIGHT / 2, facts.num_directions
    offset = {0: -STAGGER, 1: STAGGER} if directions == 2 else {0: 0}
    lane = {0: -LANE, 1: LANE} if directions == 2 else {0: 0}
    step_name = f"t = {t} (L-1)" if t == facts.steps - 1 and t else f"t = {t}"
    layout.boxes.append(Box(x - CELL_WIDTH / 2 - 10, input_y - 16, CELL_WIDTH + 20, 32, [f"x_{t}", step_name], "input"))
    output_name = output_at(t, "", facts.batch is not None, facts.layer.batch_first)
    layout.boxes.append(Box(x - CELL_WIDTH / 2 - 10, output_y - 16, CELL_WIDTH + 20, 32, [output_name], "output"))
    feed = ((x, input_y - 16), _shape(facts.step_input), "input")  # where the next layer's input comes from
    for k, d in rows:
        y = row_y[k, d]
        if k is None:
            layout.boxes.append(Box(x - CELL_WIDTH / 2, y - half, CELL_WIDTH, CELL_HEIGHT, ["⋮"], "elided"))
            feed = ((x, y - half), "", "up")
            continue
        arrow_name = (" →", " ←")[d] if directions == 2 else ""
        name = f"{facts.mode.split('_')[0]} layer {k}{arrow_name}"
        cell_x = x + offset[d]
        layout.boxes.append(
            Box(cell_x - CELL_WIDTH / 2, y - half, CELL_WIDTH, CELL_HEIGHT, [name, f"step {t}"], "cell")
        )
        (source_x, source_y), label, role = feed
        if role == "merged":  # from the merge node: up, across to this direction's lane, up into the cell
            points = [(source_x, source_y), (source_x, source_y - 8), (x + lane[d], source_y - 8)]
            layout.arrows.append(Arrow([*points, (x + lane[d], y + half)], label, "up", drawn_label=False))
        else:
            start = (x + lane[d], source_y) if role == "input" else (source_x, source_y)
            layout.arrows.append(Arrow([start, (x + lane[d], y + half)], label if d == 0 else "", role))
        if d < directions - 1:
            continue
        if directions == 1:
            feed = ((x, y - half), _shape(facts.layer_output[k]), "up")
            continue
        merge_y = row_y[k, 1] - half - (ROW - CELL_HEIGHT) / 2  # between this layer and the next
        for lane_d, side in ((0, -1), (1, 1)):  # each direction's h_t up its lane, then into the merge node
            points = [(x + lane[lane_d], row_y[k, lane_d] - half), (x + lane[lane_d], merge_y)]
            layout.arrows.append(Arrow([*points, (x + side * 55, merge_y)], "", "up"))
        shape = _shape(facts.layer_output[k])
        layout.boxes.append(Box(x - 55, merge_y - 9, 110, 18, [f"{facts.layer.merge_mode} {shape}"], "merge"))
        feed = ((x, merge_y - 9), shape, "merged")
    (source_x, source_y), _, role = feed
    drawn = role != "merged"  # a merge node already shows the shape
    output = Arrow([(source_x, source_y), (source_x, output_y + 16)], _shape(facts.step_output), "output", False, drawn)
    layout.arrows.append(output)


def _recurrence(layout, facts, k, d, y, steps, column_x):
    """The state arrows of layer ``k``, direction ``d``, and its final state beside the row."""
    state = f"h {_shape(facts.hidden[k])}" + (f"\nc {_shape(facts.cell[k])}" if facts.cell else "")
    shift = (-STAGGER, STAGGER)[d] if facts.num_directions == 2 else 0
    order = steps if d == 0 else steps[::-1]
    edge = CELL_WIDTH / 2 if d == 0 else -CELL_WIDTH / 2  # the side of a cell its state leaves by
    for a, b in zip(order, order[1:]):
        start = (column_x[a] + shift + edge, y) if a is not None else (column_x[a] + 45 * (1 if d == 0 else -1), y)
        end = (column_x[b] + shift - edge, y) if b is not None else (column_x[b] - 45 * (1 if d == 0 else -1), y)
        layout.arrows.append(Arrow([start, end], state, "state", dashed=None in (a, b)))
    last_x = column_x[order[-1]] + shift + edge
    box_x = layout.width - SIDE + 20 if d == 0 else 10
    layout.arrows.append(Arrow([(last_x, y), (box_x if d == 0 else box_x + SIDE - 30, y)], "", "final"))
    rows = facts.final_rows(k, d)
    lines = [f"h_n{rows}" + (f", c_n{rows}" if facts.cell else ""), _final_equals(facts, k, d)]
    layout.boxes.append(Box(box_x, y - 22, SIDE - 30, 44, lines, "final"))


def _final_equals(facts: LayerFacts, k: int, d: int) -> str:
    """What slice of ``output`` this final h equals, or that output does not hold it."""
    if k != facts.num_layers - 1:
        return "not in output (lower layer)"
    if facts.layer.merge_mode != "concat" and facts.num_directions == 2:
        return f"not in output ({facts.layer.merge_mode!r} merge)"
    width = facts.hidden[k][-1]
    batched, batch_first = facts.batch is not None, facts.layer.batch_first
    if facts.num_directions == 1:
        return "= " + output_at(-1, "", batched, batch_first)
    return "= " + (
        output_at(-1, f":{width}", batched, batch_first) if d == 0 else output_at(0, f"{width}:", batched, batch_first)
    )
