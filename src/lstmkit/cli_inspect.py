"""``lstmkit inspect CHECKPOINT [--sample N | --text "..."] [--out DIR] [--html] [--force]``: what a trained
model's LSTM gates do on one input.

Writes one PNG per LSTM layer and direction (``layer0_forward.png``, ``layer0_reverse.png``, ...;
see :mod:`lstmkit.inspect_figures`): the input, the i, f, g, o gates, c and h over time as
heatmaps, and the prediction, and with ``--html`` an ``index.html`` holding them all (no network
needed). The folder (default: ``inspect/`` next to the checkpoint, e.g. ``runs/mnist/inspect/``)
must be empty or new, unless ``--force``. The input is the N-th test sample (``--sample``,
default 0; for ptb and text the N-th window of ``bptt`` tokens of the test stream) or, for ptb and
text, ``--text``: words for ptb, characters for text.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .cli_options import NON_NEGATIVE_INT, HelpFormatter

HTML = "index.html"


def add_inspect_parser(commands) -> None:
    """The ``inspect`` subcommand."""
    inspect = commands.add_parser(
        "inspect",
        help="draw a trained LSTM's gates, cell and hidden states over one input (PNG heatmaps)",
        formatter_class=HelpFormatter,
        allow_abbrev=False,
    )
    inspect.add_argument(
        "checkpoint", type=Path, help="a checkpoint written by lstmkit train, e.g. runs/mnist/best.npz"
    )
    source = inspect.add_mutually_exclusive_group()
    source.add_argument(
        "--sample",
        type=NON_NEGATIVE_INT,
        default=None,
        help="the N-th test sample (mnist, digits, sunspots) or test window of bptt tokens (ptb, text) (default: 0)",
    )
    source.add_argument(
        "--text",
        default=None,
        help="ptb and text only: the input, words for ptb, characters for text (default: none, use --sample)",
    )
    inspect.add_argument(
        "--out", type=Path, default=None, help="folder for the pictures (default: inspect/ next to the checkpoint)"
    )
    inspect.add_argument("--html", action="store_true", help=f"also write {HTML}, one page with every picture")
    inspect.add_argument("--force", action="store_true", help="write into a folder that is not empty")


def output_folder(checkpoint: Path, out: Path | None, force: bool) -> Path:
    """The folder to write into: ``out`` or ``inspect/`` beside the checkpoint, refused when it is a
    file, or a folder with anything in it and not ``force``."""
    folder = out if out is not None else checkpoint.parent / "inspect"
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--out {folder} is a file; expected a folder for the pictures (created if missing)")
    if folder.is_dir() and any(folder.iterdir()) and not force:
        raise ValueError(f"{folder} is not empty; give --force to write into it, or another --out")
    return folder


def run_inspect(args: argparse.Namespace) -> dict:
    from . import io
    from .cli_train import trained_model
    from .inspect_figures import html_page, inspection_figures, pyplot
    from .inspect_sample import inspect_sample
    from .training_curves import png_bytes

    if not args.checkpoint.is_file() and not args.checkpoint.is_dir():
        raise FileNotFoundError(f"no checkpoint at {args.checkpoint}")
    folder = output_folder(args.checkpoint, args.out, args.force)
    model, task, meta = trained_model(args.checkpoint)
    inspection = inspect_sample(model, task, args.sample, args.text)
    title = f"lstmkit inspect {task.name} (epoch {meta['epoch']})"
    pngs = {}
    for name, figure in inspection_figures(inspection, title).items():
        try:
            pngs[name] = png_bytes(figure, dpi=72)
        finally:
            pyplot().close(figure)
    for name, data in pngs.items():
        io.atomic_write(folder / name, lambda handle, data=data: handle.write(data))
    written = {"checkpoint": str(args.checkpoint), "task": task.name, "input": inspection.prediction}
    written["pictures"] = [str(folder / name) for name in pngs]
    if args.html:
        io.write_text(folder / HTML, html_page(title, inspection.prediction, pngs))
        written["html"] = str(folder / HTML)
    print(json.dumps(written))
    return written
