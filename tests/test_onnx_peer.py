"""The benchmark's onnxruntime peer computes what lstmkit computes: ONNX's gate layouts (LSTM i, o, f, c;
GRU z, r, h with linear_before_reset=1; biases [W_b, R_b]; Y as (T, D, N, H)) are what the README says."""

import sys
from pathlib import Path

import numpy as np
import pytest

import lstmkit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from onnx_peer import onnx_session  # noqa: E402


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (1, True), (2, True)])
def test_onnxruntime_output_equals_lstmkit(kind, layers, bidirectional):
    layer = getattr(lstmkit, kind)(5, 7, layers, bidirectional=bidirectional, seed=3)
    x = np.random.default_rng(0).standard_normal((9, 4, 5)).astype(np.float32)
    with lstmkit.no_grad():
        expected = layer(x)[0]
    actual = onnx_session(kind, layer, threads=1).run(None, {"X": x})[0]
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5)
