"""``import lstmkit`` stays light: Numba (the fast paths' compiler) loads on the first fast-path call only."""

import subprocess
import sys

PROBE = """
import sys
import lstmkit
assert "numba" not in sys.modules, "import lstmkit loaded numba"
import numpy as np
with lstmkit.no_grad():
    lstmkit.LSTM(3, 4, seed=0)(np.zeros((2, 1, 3), np.float32))
assert "numba" in sys.modules, "the fast path did not load numba"
"""


def test_numba_loads_on_the_first_fast_path_call_not_at_import():
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
