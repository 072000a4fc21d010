"""Yearly sunspot numbers 1700-2008 (statsmodels), as sliding windows for one-step-ahead prediction.

The last 50 years are the test part; validation is carved from the end of the training years.
Values are scaled by the training years' mean and standard deviation; RMSE is reported in the
original units.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import require

TEST_YEARS = 50


class Series(NamedTuple):
    years: np.ndarray  # (n,) int
    values: np.ndarray  # (n,) float64, original units


def load_sunspots() -> Series:
    statsmodels_api = require("statsmodels.api", "statsmodels", "sunspots")
    frame = statsmodels_api.datasets.sunspots.load_pandas().data
    return Series(frame["YEAR"].to_numpy().astype(int), frame["SUNACTIVITY"].to_numpy(dtype=np.float64))


def windows(values: np.ndarray, window: int, targets: range) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (n, window, 1) = the ``window`` values before each target index, and the targets (n, 1)."""
    index = np.asarray(targets)
    if index.min() < window:
        raise ValueError(f"windows: a target index must be >= window={window}, got {index.min()}")
    x = np.stack([values[t - window : t] for t in index])[:, :, None]
    return x, values[index][:, None]


def baselines(series: Series, test_years: int = TEST_YEARS) -> dict[str, float]:
    """One-step-ahead RMSE over the test years of persistence and of ARIMA(9,0,0) fitted on the training years."""
    arima = require("statsmodels.tsa.arima.model", "statsmodels", "sunspots")
    values = series.values
    train, test = values[:-test_years], values[-test_years:]
    fitted = arima.ARIMA(train, order=(9, 0, 0)).fit()
    predictions = fitted.apply(values).predict(start=len(train), end=len(values) - 1)
    return {
        "arima_9_0_0_rmse": float(np.sqrt(np.mean((predictions - test) ** 2))),
        "persistence_rmse": float(np.sqrt(np.mean((values[-test_years - 1 : -1] - test) ** 2))),
    }
