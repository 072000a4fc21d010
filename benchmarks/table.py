"""Markdown tables from the JSON files of bench_recurrent.py (and bench_ptb.py).

    python benchmarks/table.py benchmarks/results-cpu-2core.json            # the full table, printed
    python benchmarks/table.py benchmarks/results-cpu-2core.json --summary  # the short table of the README
    python benchmarks/table.py --write benchmarks/README.md benchmarks/results-cpu-2core.json \\
        --ptb benchmarks/ptb-cpu-2core.json [--before OLD.json]
    python benchmarks/table.py --write README.md --summary benchmarks/results-cpu-2core.json

``--write FILE`` replaces what lies between the lines ``<!-- table:start -->`` and
``<!-- table:end -->`` in FILE (the markers stay) instead of printing. ``--before OLD.json`` adds a
before/after table: per row, the ratio against torch before and after, inference and training
step, and the geometric means by kind. ``--ptb`` adds the PTB epoch (bench_ptb.py's JSON).

Ratios are lstmkit's time over the peer's (below 1: lstmkit is faster). A geometric mean is taken
over the rows' ratios, each of which is already the median of that row's rounds' own ratios.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

START, END = "<!-- table:start -->", "<!-- table:end -->"
KINDS = ("LSTM", "GRU", "all")
RATIOS = {
    "inference_ratio": "inference vs torch",
    "training_ratio": "training step vs torch",
    "onnx_ratio": "inference vs onnxruntime",
}


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}"


def _row_name(row: dict) -> str:
    return row["kind"] + (f" ({row['layers']} layers, bidirectional)" if row["bidirectional"] else "")


def _row_key(row: dict) -> tuple:
    """What identifies a row across runs: the layer and its sizes."""
    return row["kind"], row["T"], row["N"], row["I"], row["H"], row["layers"], row["bidirectional"]


def _row_label(row: dict) -> str:
    return f"{_row_name(row)} T={row['T']} N={row['N']} I={row['I']} H={row['H']}"


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(cell) for cell in cells) + " |" for cells in rows]


def _machine(result: dict) -> str:
    return (
        f"{result.get('cpu', 'CPU not recorded')}, {result['cores']} cores, torch {result['torch']}, "
        f"numpy {result['numpy']}"
    )


def geometric_mean(values: list[float]) -> float:
    """exp(mean(log(values))) of positive numbers."""
    return math.exp(sum(math.log(value) for value in values) / len(values))


def ratio_summary(rows: list[dict], kind: str, name: str) -> tuple[float, dict] | None:
    """(geometric mean, worst row) of ratio ``name`` over the rows of ``kind`` ("all": every row);
    None when no row has that ratio."""
    chosen = [row for row in rows if name in row and kind in (row["kind"], "all")]
    if not chosen:
        return None
    return geometric_mean([row[name] for row in chosen]), max(chosen, key=lambda row: row[name])


def full_table(result: dict) -> str:
    """Every row of a bench_recurrent.py run: times, ratios, shares of the peak, memory, then the
    geometric means and worst ratios by kind."""
    lines = [
        f"Machine: {_machine(result)}. Times in ms; ratios are lstmkit's time over the peer's; % peak is "
        "lstmkit's GFLOP/s over the matrix-product peak (GFLOP/s of a float32 2048-square product with NumPy's "
        "BLAS, timed in turn with the frameworks for that row: the peak column); memory is a training step's "
        "peak above what it starts with, in MiB: resident (what the kernel sees) and allocated (bytes live in "
        "the framework's own allocations).",
        "",
    ]
    header = [
        "layer",
        "T",
        "N",
        "I",
        "H",
        "inference lstmkit",
        "torch",
        "ratio",
        "onnxruntime",
        "ratio",
        "% peak",
        "training lstmkit",
        "torch",
        "ratio",
        "% peak",
        "peak GFLOP/s",
        "resident lstmkit",
        "torch",
        "allocated lstmkit",
        "torch",
    ]
    cells = []
    for row in result["rows"]:
        onnx = [_ms(row["onnx_inference"]), f"{row['onnx_ratio']:.2f}"] if "onnx_inference" in row else ["", ""]
        memory = (
            [f"{row[f'{who}_training_{what}_mib']:.1f}" for what in ("peak", "allocated") for who in ("ours", "torch")]
            if "ours_training_allocated_mib" in row
            else ["", "", "", ""]
        )
        cells.append(
            [
                _row_name(row),
                row["T"],
                row["N"],
                row["I"],
                row["H"],
                _ms(row["ours_inference"]),
                _ms(row["torch_inference"]),
                f"{row['inference_ratio']:.2f}",
                *onnx,
                f"{100 * row['inference_peak_share']:.0f}%",
                _ms(row["ours_training"]),
                _ms(row["torch_training"]),
                f"{row['training_ratio']:.2f}",
                f"{100 * row['training_peak_share']:.0f}%",
                f"{row['matmul_peak_gflops']:.0f}",
                *memory,
            ]
        )
    lines += _table(header, cells)
    lines.append("")
    for kind in KINDS:
        parts = []
        for name, words in RATIOS.items():
            found = ratio_summary(result["rows"], kind, name)
            if found:
                parts.append(f"{words} **{found[0]:.2f}** (worst {found[1][name]:.2f})")
        if parts:
            lines.append(f"- Geometric means, {'all rows' if kind == 'all' else kind}: " + "; ".join(parts) + ".")
    return "\n".join(lines)


def summary_table(result: dict) -> str:
    """The short table: per kind and peer, the geometric mean of the ratios and the worst row."""
    cells = []
    for kind in KINDS:
        for name, words in RATIOS.items():
            found = ratio_summary(result["rows"], kind, name)
            if found:
                mean, worst = found
                cells.append(
                    [
                        kind if kind != "all" else "all rows",
                        words,
                        f"**{mean:.2f}**",
                        f"{worst[name]:.2f}",
                        _row_label(worst),
                    ]
                )
    lines = [f"Machine: {_machine(result)}. Ratio = lstmkit's time over the peer's (below 1: lstmkit is faster).", ""]
    return "\n".join(lines + _table(["layers", "compared", "geometric mean", "worst", "worst row"], cells))


def comparison_table(before: dict, after: dict) -> str:
    """Before and after, row by row (the ratio against torch) and the geometric means by kind.
    Rows are matched by layer and sizes; a row missing from one run shows a dash there."""
    old = {_row_key(row): row for row in before["rows"]}
    new = {_row_key(row): row for row in after["rows"]}
    keys = list(old) + [key for key in new if key not in old]

    def ratio(rows: dict, key: tuple, name: str) -> str:
        return f"{rows[key][name]:.2f}" if key in rows and name in rows[key] else "-"

    cells = [
        [
            _row_label(new.get(key) or old[key]),
            ratio(old, key, "inference_ratio"),
            ratio(new, key, "inference_ratio"),
            ratio(old, key, "training_ratio"),
            ratio(new, key, "training_ratio"),
        ]
        for key in keys
    ]
    for kind in KINDS:
        means = []
        for name in ("inference_ratio", "training_ratio"):
            for result in (before, after):
                found = ratio_summary(result["rows"], kind, name)
                means.append(f"**{found[0]:.2f}**" if found else "-")
        cells.append([f"geometric mean, {'all rows' if kind == 'all' else kind}", *means])
    machines = (
        f"Both runs: {_machine(after)}"
        if _machine(before) == _machine(after)
        else f"Before: {_machine(before)}. After: {_machine(after)}"
    )
    lines = [f"{machines}. Ratio = lstmkit's time over torch's.", ""]
    header = ["row", "inference before", "inference after", "training before", "training after"]
    return "\n".join(lines + _table(header, cells))


def ptb_table(ptb: dict) -> str:
    """bench_ptb.py's epoch: seconds for lstmkit and torch, their ratio and the first batch's losses."""
    seconds = ptb["seconds_per_epoch"]
    losses = ", ".join(f"{loss:.5f}" for loss in ptb["first_batch_loss"])
    cells = [
        [
            f"{seconds['lstmkit']:.1f}",
            f"{seconds['torch']:.1f}",
            f"{seconds['lstmkit'] / seconds['torch']:.2f}",
            f"{ptb['batches_timed']} of {ptb['batches_per_epoch']}",
            losses,
        ]
    ]
    header = ["lstmkit s/epoch", "torch s/epoch", "ratio", "batches timed", "first-batch loss (lstmkit, torch)"]
    title = "One training epoch of PTB's small model (bench_ptb.py), the same weights and batches in both:"
    return "\n".join([title, "", *_table(header, cells)])


def replace_block(text: str, block: str, where: str = "the file") -> str:
    """``text`` with the lines between the START and END markers replaced by ``block``."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(f"{where} must hold one line {START} and, after it, one line {END}")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{block}\n{END}{tail}"


def render(result: dict, *, summary: bool = False, before: dict | None = None, ptb: dict | None = None) -> str:
    """The markdown block: the short or the full table, then the comparison and PTB tables if given."""
    parts = [summary_table(result) if summary else full_table(result)]
    if before is not None:
        parts.append(comparison_table(before, result))
    if ptb is not None:
        parts.append(ptb_table(ptb))
    return "\n\n".join(parts)


def _load(path: str | None) -> dict | None:
    return None if path is None else json.loads(Path(path).read_text())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("results", help="a JSON file written by bench_recurrent.py --json")
    parser.add_argument("--summary", action="store_true", help="the short table (geometric means, worst rows)")
    parser.add_argument("--before", default=None, help="an earlier run's JSON: add a before/after table")
    parser.add_argument("--ptb", default=None, help="a JSON file written by bench_ptb.py --json: add its table")
    parser.add_argument("--write", default=None, help="replace the block between the markers in this file")
    args = parser.parse_args(argv)
    block = render(_load(args.results), summary=args.summary, before=_load(args.before), ptb=_load(args.ptb))
    if args.write is None:
        print(block)
        return
    target = Path(args.write)
    target.write_text(replace_block(target.read_text(), block, str(target)))


if __name__ == "__main__":
    sys.exit(main())
