"""``lstmkit export CHECKPOINT --onnx FILE [--safetensors FILE]``: a trained model for other frameworks.

The ONNX file runs in onnxruntime (the model in evaluation, float32; see :mod:`lstmkit.export`
for its inputs and outputs); the safetensors file holds the weights under PyTorch's names
(:func:`lstmkit.io.save_weights`). An existing file is replaced only with ``--force``, so an
export never overwrites a checkpoint or another file by a slip of the path.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

from .cli_options import HelpFormatter


def add_export_parser(commands) -> None:
    """The ``export`` subcommand."""
    export = commands.add_parser(
        "export",
        help="write a trained checkpoint as an ONNX model (and/or safetensors weights)",
        formatter_class=HelpFormatter,
        allow_abbrev=False,
    )
    export.add_argument("checkpoint", type=Path, help="a checkpoint written by lstmkit train, e.g. runs/mnist/best.npz")
    export.add_argument(
        "--onnx", type=Path, default=None, help="write the model as ONNX (opset 17) to this file (default: none)"
    )
    export.add_argument(
        "--safetensors",
        type=Path,
        default=None,
        help="write the weights (PyTorch's names) to this .safetensors file (default: none)",
    )
    export.add_argument("--force", action="store_true", help="replace files that already exist")


def run_export(args: argparse.Namespace) -> dict:
    from .cli_train import trained_model

    targets = {kind: path for kind, path in (("onnx", args.onnx), ("safetensors", args.safetensors)) if path}
    if not targets:
        raise ValueError("nothing to write: give --onnx FILE and/or --safetensors FILE")
    if len({path.resolve() for path in targets.values()}) < len(targets):
        raise ValueError(f"--onnx and --safetensors name the same file {args.onnx}; give each its own")
    for path in targets.values():
        if path.resolve() == args.checkpoint.resolve():
            raise ValueError(f"{path} is the checkpoint itself; choose another file to export to")
        if path.is_dir():
            raise ValueError(f"{path} is a folder; expected a file name, e.g. {path / 'model.onnx'}")
        if path.exists() and not args.force:
            raise ValueError(f"{path} exists; give --force to replace it, or another file name")
    for module in targets:  # each option is named after the package it needs
        if importlib.util.find_spec(module) is None:
            raise ValueError(f"--{module} needs the {module} package: pip install 'lstmkit[{module}]'")
    model, _, meta = trained_model(args.checkpoint)
    written = {"checkpoint": str(args.checkpoint), "task": meta["config"]["task"], "epoch": meta["epoch"]}
    if "onnx" in targets:
        from .export import to_onnx

        graph = to_onnx(model, targets["onnx"]).graph
        written["onnx"] = str(targets["onnx"])
        written["inputs"] = [value.name for value in graph.input]
        written["outputs"] = [value.name for value in graph.output]
    if "safetensors" in targets:
        from .io import save_weights

        save_weights(model, targets["safetensors"])
        written["safetensors"] = str(targets["safetensors"])
    print(json.dumps(written))
    return written
