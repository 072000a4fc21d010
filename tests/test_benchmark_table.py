"""benchmarks/table.py: the tables it writes from bench_recurrent.py's JSON, on a small synthetic run."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

TABLE_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "table.py"


def _load_table_module():
    spec = importlib.util.spec_from_file_location("benchmark_table", TABLE_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


table = _load_table_module()


def _row(kind, steps, batch, inference_ratio, training_ratio, onnx_ratio=None, bidirectional=False):
    """One row as bench_recurrent.py writes it (only the fields table.py reads)."""
    row = {
        "kind": kind,
        "T": steps,
        "N": batch,
        "I": 8,
        "H": 16,
        "layers": 2 if bidirectional else 1,
        "bidirectional": bidirectional,
        "ours_inference": 0.002,
        "torch_inference": 0.002 / inference_ratio,
        "ours_training": 0.006,
        "torch_training": 0.006 / training_ratio,
        "inference_ratio": inference_ratio,
        "training_ratio": training_ratio,
        "inference_peak_share": 0.5,
        "training_peak_share": 0.25,
        "matmul_peak_gflops": 200.0,
    }
    if onnx_ratio is not None:
        row.update(onnx_inference=0.002 / onnx_ratio, onnx_ratio=onnx_ratio)
    return row


def _result(rows):
    return {"cpu": "Test CPU (AVX-512)", "cores": 2, "torch": "2.13.0+cpu", "numpy": "2.4.6", "rows": rows}


AFTER = _result(
    [
        _row("LSTM", 10, 4, 0.5, 2.0, onnx_ratio=1.0),
        _row("LSTM", 20, 1, 2.0, 0.5, onnx_ratio=4.0, bidirectional=True),
        _row("GRU", 10, 4, 0.25, 1.0),
    ]
)
BEFORE = _result([_row("LSTM", 10, 4, 1.0, 1.0), _row("GRU", 10, 4, 0.5, 0.5), _row("GRU", 30, 2, 0.9, 0.9)])


def test_geometric_mean_and_worst_row_by_kind():
    mean, worst = table.ratio_summary(AFTER["rows"], "LSTM", "inference_ratio")
    assert mean == pytest.approx(1.0) and worst["T"] == 20  # sqrt(0.5 * 2.0); the bidirectional row
    mean, worst = table.ratio_summary(AFTER["rows"], "all", "training_ratio")
    assert mean == pytest.approx(1.0) and worst["kind"] == "LSTM" and worst["T"] == 10  # cbrt(2 * 0.5 * 1)
    assert table.ratio_summary(AFTER["rows"], "GRU", "onnx_ratio") is None  # no GRU row has onnxruntime


def test_summary_table_lines():
    lines = table.summary_table(AFTER).splitlines()
    assert lines[0].startswith("Machine: Test CPU (AVX-512), 2 cores, torch 2.13.0+cpu, numpy 2.4.6.")
    assert lines[2] == "| layers | compared | geometric mean | worst | worst row |"
    assert lines[3] == "|---|---|---|---|---|"
    assert (
        lines[4] == "| LSTM | inference vs torch | **1.00** | 2.00 | LSTM (2 layers, bidirectional) T=20 N=1 I=8 H=16 |"
    )
    assert (
        lines[6]
        == "| LSTM | inference vs onnxruntime | **2.00** | 4.00 | LSTM (2 layers, bidirectional) T=20 N=1 I=8 H=16 |"
    )
    assert lines[7] == "| GRU | inference vs torch | **0.25** | 0.25 | GRU T=10 N=4 I=8 H=16 |"
    # LSTM 3 ratios, GRU 2 (no onnxruntime), all rows 3
    assert len(lines) == 4 + 3 + 2 + 3
    assert lines[-1].startswith(f"| all rows | inference vs onnxruntime | **{math.sqrt(4.0):.2f}** | 4.00 |")


def test_full_table_has_a_line_per_row_and_the_means():
    lines = table.full_table(AFTER).splitlines()
    table_lines = [line for line in lines if line.startswith("|")]
    assert len(table_lines) == 2 + len(AFTER["rows"])
    assert all(line.count("|") == 21 for line in table_lines)  # 20 columns
    assert table_lines[2].startswith(
        "| LSTM | 10 | 4 | 8 | 16 | 2.00 | 4.00 | 0.50 | 2.00 | 1.00 | 50% | 6.00 | 3.00 |"
    )
    assert table_lines[4].startswith("| GRU | 10 | 4 | 8 | 16 | 2.00 | 8.00 | 0.25 |  |  | 50% |")
    assert "| LSTM (2 layers, bidirectional) | 20 | 1 |" in table_lines[3]
    assert lines[-3] == (
        "- Geometric means, LSTM: inference vs torch **1.00** (worst 2.00); training step vs torch "
        "**1.00** (worst 2.00); inference vs onnxruntime **2.00** (worst 4.00)."
    )
    assert (
        lines[-2] == "- Geometric means, GRU: inference vs torch **0.25** (worst 0.25); "
        "training step vs torch **1.00** (worst 1.00)."
    )


def test_comparison_table_matches_rows_by_layer_and_sizes():
    lines = table.comparison_table(BEFORE, AFTER).splitlines()
    assert (
        lines[0]
        == "Both runs: Test CPU (AVX-512), 2 cores, torch 2.13.0+cpu, numpy 2.4.6. Ratio = lstmkit's time over torch's."
    )
    assert lines[2] == "| row | inference before | inference after | training before | training after |"
    body = lines[4:]
    assert body[0] == "| LSTM T=10 N=4 I=8 H=16 | 1.00 | 0.50 | 1.00 | 2.00 |"
    assert body[1] == "| GRU T=10 N=4 I=8 H=16 | 0.50 | 0.25 | 0.50 | 1.00 |"
    assert body[2] == "| GRU T=30 N=2 I=8 H=16 | 0.90 | - | 0.90 | - |"  # only in the run before
    assert body[3] == "| LSTM (2 layers, bidirectional) T=20 N=1 I=8 H=16 | - | 2.00 | - | 0.50 |"  # only after
    assert body[4] == "| geometric mean, LSTM | **1.00** | **1.00** | **1.00** | **1.00** |"
    gru_before = math.sqrt(0.5 * 0.9)
    assert body[5] == f"| geometric mean, GRU | **{gru_before:.2f}** | **0.25** | **{gru_before:.2f}** | **1.00** |"
    assert body[6].startswith("| geometric mean, all rows |") and len(body) == 7


def test_ptb_table():
    ptb = {
        "batches_timed": 9,
        "batches_per_epoch": 10,
        "seconds_per_epoch": {"lstmkit": 90.0, "torch": 100.0},
        "first_batch_loss": [9.2278051, 9.2278049],
    }
    assert table.ptb_table(ptb).splitlines()[4] == "| 90.0 | 100.0 | 0.90 | 9 of 10 | 9.22781, 9.22780 |"


def test_write_replaces_only_the_block_between_the_markers(tmp_path):
    results, before, readme = tmp_path / "after.json", tmp_path / "before.json", tmp_path / "README.md"
    results.write_text(json.dumps(AFTER))
    before.write_text(json.dumps(BEFORE))
    readme.write_text(f"# Title\n\ntext before\n{table.START}\nold table\n{table.END}\ntext after\n")
    table.main(["--write", str(readme), str(results), "--summary", "--before", str(before)])
    expected_block = table.render(AFTER, summary=True, before=BEFORE)
    assert readme.read_text() == f"# Title\n\ntext before\n{table.START}\n{expected_block}\n{table.END}\ntext after\n"
    table.main(["--write", str(readme), str(results), "--summary", "--before", str(before)])  # idempotent
    assert readme.read_text().count(expected_block) == 1


def test_write_without_markers_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="must hold one line <!-- table:start -->"):
        table.replace_block("no markers here\n", "block", "README.md")
    with pytest.raises(ValueError, match="README.md"):
        table.replace_block(f"{table.END}\n{table.START}\n", "block", "README.md")
