"""The README's speed table, written from a JSON file of bench_recurrent.py.

    python benchmarks/table.py benchmarks/results-cpu-2core.json
"""

from __future__ import annotations

import json
import sys


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}"


def markdown(result: dict) -> str:
    lines = [
        f"This run: {result.get('cpu', 'CPU not recorded')}, {result['cores']} cores, torch {result['torch']}, "
        f"numpy {result['numpy']}. Times in ms; ratios are "
        "lstmkit's time over the peer's; % peak is lstmkit's GFLOP/s over the matrix-product peak (GFLOP/s of a "
        "float32 2048-square product with NumPy's BLAS, timed in turn with the frameworks for that row: the "
        "peak column); memory is a "
        "training step's peak above what it starts with, in MiB: resident (what the kernel sees) and allocated "
        "(bytes live in the framework's own allocations; see benchmarks/memory_probe.py).",
        "",
        "| layer | T | N | I | H | inference lstmkit | torch | ratio | onnxruntime | ratio | % peak "
        "| training lstmkit | torch | ratio | % peak | peak | resident lstmkit | torch | allocated lstmkit | torch |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        name = row["kind"] + (" (2 layers, bidirectional)" if row["bidirectional"] else "")
        onnx = [_ms(row["onnx_inference"]), f"{row['onnx_ratio']:.2f}"] if "onnx_inference" in row else ["", ""]
        memory = ([f"{row[f'{who}_training_{what}_mib']:.1f}" for what in ("peak", "allocated") for who in ("ours", "torch")]
                  if "ours_training_allocated_mib" in row else ["", "", "", ""])
        cells = [name, row["T"], row["N"], row["I"], row["H"], _ms(row["ours_inference"]), _ms(row["torch_inference"]),
                 f"{row['inference_ratio']:.2f}", *onnx, f"{100 * row['inference_peak_share']:.0f}%",
                 _ms(row["ours_training"]), _ms(row["torch_training"]), f"{row['training_ratio']:.2f}",
                 f"{100 * row['training_peak_share']:.0f}%", f"{row['matmul_peak_gflops']:.0f}", *memory]
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    lines.append("")
    names = {"inference_ratio": "inference vs torch", "training_ratio": "training step vs torch",
             "onnx_ratio": "inference vs onnxruntime"}
    for kind in ("LSTM", "GRU", "all"):
        parts = [f"{names[name]} **{result['summary'][f'{kind} {name}']['geometric_mean']:.2f}** "
                 f"(worst {result['summary'][f'{kind} {name}']['worst']:.2f})"
                 for name in names if f"{kind} {name}" in result["summary"]]
        if parts:
            lines.append(f"- Geometric means of the ratios, {'all rows' if kind == 'all' else kind}: " + "; ".join(parts) + ".")
    return "\n".join(lines)


if __name__ == "__main__":
    with open(sys.argv[1]) as handle:
        print(markdown(json.load(handle)))
