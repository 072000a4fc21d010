"""The ``lstmkit`` command: explain, train, evaluate, generate, export, inspect, tag (or ``python -m lstmkit``)."""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from pathlib import Path

from .cli_export import add_export_parser, run_export
from .cli_inspect import add_inspect_parser, run_inspect
from .cli_options import NON_NEGATIVE_INT, POSITIVE_INT, HelpFormatter
from .cli_tag import add_tag_parser, run_tag
from .cli_train import add_train_parser, dispatch
from .explain import MODES, explain_layer


def package_version() -> str:
    """The installed distribution's version (``lstmkit.__version__`` when run from a source tree)."""
    try:
        return metadata.version("lstmkit")
    except metadata.PackageNotFoundError:
        from . import __version__

        return __version__


def hidden_sizes(text: str) -> int | list[int]:
    """An argparse ``type=``: one hidden size (``100``) or one per layer (``256,128,64``)."""
    sizes = [POSITIVE_INT(part) for part in text.split(",")]
    return sizes[0] if len(sizes) == 1 else sizes


def add_explain_parser(commands) -> None:
    """The ``explain`` subcommand."""
    explain = commands.add_parser(
        "explain",
        help="print every tensor's shape and parameter count of an LSTM, GRU or RNN",
        formatter_class=HelpFormatter,
        allow_abbrev=False,
    )
    explain.add_argument("--mode", choices=MODES, default="LSTM", help="the layer, by PyTorch's mode name")
    explain.add_argument("--input-size", type=POSITIVE_INT, required=True, help="H_in: features per step (required)")
    explain.add_argument(
        "--hidden-size",
        type=hidden_sizes,
        required=True,
        help="H: units of h and c (required); one per layer as 256,128,64",
    )
    explain.add_argument("--num-layers", type=POSITIVE_INT, default=1, help="stacked layers")
    explain.add_argument("--seq-len", type=POSITIVE_INT, default=1, help="L: time steps")
    explain.add_argument("--batch", type=POSITIVE_INT, default=None, help="N: sequences per batch (default: 1)")
    explain.add_argument("--unbatched", action="store_true", help="explain an unbatched (L, H_in) input (no --batch)")
    explain.add_argument("--bidirectional", action="store_true", help="two directions, outputs concatenated (D=2)")
    explain.add_argument(
        "--proj-size", type=NON_NEGATIVE_INT, default=0, help="P: LSTM only, project h to P units (0: no projection)"
    )
    explain.add_argument(
        "--merge-mode",
        choices=("concat", "sum", "mul", "ave"),
        default="concat",
        help="with --bidirectional: how the two directions' outputs merge at every layer (Keras' names)",
    )
    explain.add_argument("--batch-first", action="store_true", help="input and output as (N, L, features)")
    explain.add_argument("--no-bias", action="store_true", help="no bias_ih and bias_hh")
    explain.add_argument("--layer-norm", action="store_true", help="LSTM only: layer-normalised LSTM (layer_norm=True)")
    explain.add_argument("--peepholes", action="store_true", help="LSTM only: peephole connections (peepholes=True)")
    explain.add_argument(
        "--html",
        type=Path,
        default=None,
        help="also write the page that draws it all (self-contained HTML) to FILE (default: none)",
    )
    explain.add_argument(
        "--svg", type=Path, default=None, help="also write the unrolled network alone as SVG to FILE (default: none)"
    )
    explain.add_argument(
        "--style",
        choices=("torch", "keras"),
        default="torch",
        help="torch: PyTorch's tensors beside Keras'; keras: the Keras layers, summary() and weights",
    )


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="lstmkit",
        description="LSTMs in NumPy, exactly like PyTorch's.",
        formatter_class=HelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument(
        "--version", action="version", version=f"lstmkit {package_version()}", help="print lstmkit's version and exit"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_explain_parser(commands)
    add_train_parser(commands)
    add_export_parser(commands)
    add_inspect_parser(commands)
    add_tag_parser(commands)
    return parser


def explain_text(args: argparse.Namespace) -> str:
    """What ``lstmkit explain`` prints; options that would be ignored are refused with a ValueError."""
    if args.unbatched and args.batch is not None:
        raise ValueError(f"--unbatched explains an input without a batch axis; leave out --batch {args.batch}")
    if args.style == "keras":
        if args.html or args.svg:
            raise ValueError(
                "--html and --svg draw the PyTorch-style layer (its page shows the Keras weights too); "
                "leave out --style keras"
            )
        variants = [
            flag for flag, given in (("--layer-norm", args.layer_norm), ("--peepholes", args.peepholes)) if given
        ]
        if variants:
            raise ValueError(
                f"--style keras: Keras' layers have no layer norm and no peepholes; leave out {' and '.join(variants)} "
                "(or use --style torch)"
            )
        ignored = [
            flag for flag, given in (("--batch-first", args.batch_first), ("--unbatched", args.unbatched)) if given
        ]
        if ignored:
            raise ValueError(
                f"--style keras: Keras layers are always batch-major with a batch axis; "
                f"leave out {' and '.join(ignored)}"
            )
        if isinstance(args.hidden_size, list) or args.merge_mode != "concat":
            raise ValueError(
                "--style keras explains one --hidden-size for every layer, concatenated directions; "
                f"got --hidden-size {args.hidden_size} --merge-mode {args.merge_mode} (use --style torch, "
                "which shows the Keras layers too)"
            )
        from .keras.explain import explain_keras

        return explain_keras(
            args.input_size,
            args.hidden_size,
            args.num_layers,
            args.seq_len,
            args.batch or 1,
            mode=args.mode,
            bias=not args.no_bias,
            bidirectional=args.bidirectional,
            proj_size=args.proj_size,
        )
    if args.html or args.svg:
        write_pictures(args)
    return explain_layer(
        args.input_size,
        args.hidden_size,
        args.num_layers,
        args.seq_len,
        None if args.unbatched else args.batch or 1,
        mode=args.mode,
        bias=not args.no_bias,
        batch_first=args.batch_first,
        bidirectional=args.bidirectional,
        proj_size=args.proj_size,
        merge_mode=args.merge_mode,
        layer_norm=args.layer_norm,
        peepholes=args.peepholes,
    )


def write_pictures(args: argparse.Namespace) -> None:
    """``--html FILE`` and ``--svg FILE`` of ``lstmkit explain`` (torch style), written atomically."""
    from .diagram import explain_pictures
    from .io import write_text

    for path in (args.html, args.svg):
        if path is not None and path.is_dir():
            raise ValueError(f"{path} is a folder; expected a file name, e.g. {path / 'lstm.html'}")
    html, svg = explain_pictures(
        args.input_size, args.hidden_size, args.num_layers, args.seq_len, None if args.unbatched else args.batch or 1,
        mode=args.mode, bias=not args.no_bias, batch_first=args.batch_first, bidirectional=args.bidirectional,
        proj_size=args.proj_size, merge_mode=args.merge_mode, layer_norm=args.layer_norm, peepholes=args.peepholes,
    )  # fmt: skip
    for path, text in ((args.html, html), (args.svg, svg)):
        if path is not None:
            write_text(path, text)


def main(argv: list[str] | None = None) -> int:
    """Run ``lstmkit`` with ``argv`` (default: the command line); returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # a stopped run prints the command that resumes it
    if args.command == "explain":
        try:
            text = explain_text(args)
        except (ValueError, TypeError) as error:
            print(f"lstmkit explain: {error}", file=sys.stderr)
            return 2
        print(text)
        return 0
    return dispatch(args, {"export": run_export, "inspect": run_inspect, "tag": run_tag})


if __name__ == "__main__":
    sys.exit(main())
