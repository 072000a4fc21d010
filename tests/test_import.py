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


IO_PROBE = """
import lstmkit
state = lstmkit.io.torch_state_dict(lstmkit.LSTM(2, 3, seed=0))
print(sorted(state), tuple(state["weight_ih_l0"].shape))
"""


def test_import_lstmkit_makes_lstmkit_io_available():
    result = subprocess.run([sys.executable, "-c", IO_PROBE], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "['bias_hh_l0', 'bias_ih_l0', 'weight_hh_l0', 'weight_ih_l0'] (12, 2)\n"
