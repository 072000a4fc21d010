"""lstmkit._openblas: imported before NumPy, lstmkit shortens how long OpenBLAS's worker spins after
a product, leaves a user's own setting alone, and runs its training step on batch halves only where
the worker sleeps soon. Each case runs in a fresh interpreter (OpenBLAS reads its environment once)."""

import json
import os
import subprocess
import sys

import pytest

REPORT = """
import json, os, sys
{imports}
from lstmkit import _openblas
from lstmkit.ops.fused.plan import choose_plan
plan = choose_plan(20, 16, 8, 64, 4, True, True)  # a training step that runs on batch halves where it may
print(json.dumps([os.environ.get("OPENBLAS_THREAD_TIMEOUT"), _openblas.WORKERS_SLEEP_SOON, plan.forward == "halves"]))
"""


def _run(code, **variables):
    environment = {name: value for name, value in os.environ.items() if not name.endswith("THREAD_TIMEOUT")}
    environment.update(variables)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize(
    "imports, variables, expected",
    [
        ("import lstmkit", {}, ["20", True, True]),
        ("import numpy; import lstmkit", {}, [None, False, False]),  # too late to set: NumPy loaded OpenBLAS
        ("import lstmkit", {"OPENBLAS_THREAD_TIMEOUT": "28"}, ["28", False, False]),  # the user's, kept
        ("import numpy; import lstmkit", {"OPENBLAS_THREAD_TIMEOUT": "16"}, ["16", True, True]),
        ("import lstmkit", {"GOTO_THREAD_TIMEOUT": "30"}, [None, False, False]),  # OpenBLAS's older name
        ("import lstmkit", {"OPENBLAS_THREAD_TIMEOUT": "soon"}, ["soon", False, False]),
    ],
)
def test_timeout_is_set_before_numpy_and_the_users_is_kept(imports, variables, expected):
    assert _run(REPORT.format(imports=imports), **variables) == expected


WORKER_TICKS = """
import json, os, time
{imports}
import numpy as np

def ticks():  # CPU time (clock ticks) of every thread of this process
    times = {{}}
    for task in os.listdir("/proc/self/task"):
        fields = open(f"/proc/self/task/{{task}}/stat").read().rsplit(")", 1)[1].split()
        times[task] = int(fields[11]) + int(fields[12])
    return times

a = np.ones((512, 512), np.float32)
for _ in range(5):
    a @ a
time.sleep(0.5)
before = ticks()
a @ a
time.sleep(0.5)
after = ticks()
main = str(os.getpid())
print(json.dumps(sum(after[t] - before.get(t, 0) for t in after if t != main)))
"""


@pytest.mark.skipif(
    not os.path.isdir("/proc/self/task") or os.cpu_count() < 2,
    reason="needs Linux's per-thread CPU times and a second core for OpenBLAS's worker",
)
def test_the_worker_sleeps_soon_after_a_product_when_lstmkit_came_first():
    """Half a second after one two-thread product: OpenBLAS's default (2**28 ticks) keeps its worker
    busy for about 0.1 s (10 clock ticks); lstmkit's 2**20, well under one."""
    lstmkit_first = _run(WORKER_TICKS.format(imports="import lstmkit"))
    numpy_first = _run(WORKER_TICKS.format(imports="import numpy"))
    assert lstmkit_first <= 2 and numpy_first >= 4, (lstmkit_first, numpy_first)


@pytest.mark.parametrize(
    "script",
    [
        "tests/conftest.py",
        "benchmarks/bench_recurrent.py",
        "benchmarks/bench_ptb.py",
        "benchmarks/ab.py",
        "benchmarks/bench_variants.py",
    ],
)
def test_the_benchmarks_and_the_tests_import_lstmkit_before_numpy(script):
    """Else OpenBLAS keeps its 0.1 s spin and training on batch halves is off: a benchmark would time
    another plan than a user's script gets (an import sorter once moved these lines)."""
    import ast
    from pathlib import Path

    tree = ast.parse((Path(__file__).resolve().parents[1] / script).read_text())
    order = [
        alias.name.split(".")[0]
        for node in tree.body
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
    ]
    assert "lstmkit" in order and "numpy" in order
    assert order.index("lstmkit") < order.index("numpy"), order
