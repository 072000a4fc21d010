"""Sunspots: one-step-ahead regression from a window of past years: LSTM -> last step -> Linear(1)."""

from __future__ import annotations

import numpy as np

from ..data.sunspots import TEST_YEARS, load_sunspots, windows
from ..grad_mode import no_grad
from ..nn.losses import MSELoss
from .base import Task, capped_count, last_step_model, predict_in_chunks, shuffled_batches


class SunspotsTask(Task):
    """Yearly sunspots 1700-2008; test = the last 50 years, valid = the 30 training years before them.

    Inputs are scaled by the mean and standard deviation of the training years; the reported
    RMSE is in sunspot numbers. ``window`` past years predict the next one.
    """

    name = "sunspots"
    metric = "rmse"
    higher_is_better = False
    defaults = dict(
        hidden_size=64,
        epochs=100,
        batch_size=16,
        lr=3e-3,
        optimizer="adam",
        schedule="cosine",
        clip=1.0,
        window=20,
        valid_years=30,
    )

    def __init__(self, config: dict):
        super().__init__(config)
        series = load_sunspots()
        self.series = series
        values = series.values
        window, valid_years = config["window"], config["valid_years"]
        n_test_start = len(values) - TEST_YEARS
        n_valid_start = n_test_start - valid_years
        self.mean = float(values[:n_valid_start].mean())
        self.std = float(values[:n_valid_start].std())
        scaled = (values - self.mean) / self.std
        ranges = {
            "train": range(window, n_valid_start),
            "valid": range(n_valid_start, n_test_start),
            "test": range(n_test_start, len(values)),
        }
        self.targets = ranges  # part -> the index in ``series`` of each window's target year
        self.parts = {}
        for part, targets in ranges.items():
            x, y = windows(scaled, window, targets)
            self.parts[part] = (x.astype(np.float32), y.astype(np.float32))
        self.loss = MSELoss()

    def build_model(self):
        return last_step_model(self.config, 1, 1)

    def epoch_size(self) -> int:
        return capped_count(len(self.parts["train"][1]), self.config["batch_size"], self.config["max_batches"])

    def batches(self, rng):
        x, y = self.parts["train"]
        for index in shuffled_batches(rng, len(y), self.config["batch_size"]):
            yield x[index], y[index]

    def train_step(self, model, batch):
        x, y = batch
        loss = self.loss(model(x), y)
        model.backward(self.loss.backward())
        return float(loss) * len(y), len(y)

    def predictions(self, model, part: str) -> np.ndarray:
        """One-step-ahead predictions for ``part`` in sunspot numbers."""
        return predict_in_chunks(model, self.parts[part][0])[:, 0] * self.std + self.mean

    def window_years(self, part: str, index: int) -> tuple[np.ndarray, int]:
        """The years of ``part``'s window ``index`` (``window``,) and the year it predicts."""
        target = self.targets[part][index]
        return self.series.years[target - self.config["window"] : target], int(self.series.years[target])

    def evaluate(self, model, part):
        x, y = self.parts[part]
        prediction = predict_in_chunks(model, x)
        with no_grad():
            loss = float(self.loss(prediction, y))
        rmse = float(np.sqrt(np.mean(((prediction - y) * self.std) ** 2)))
        return {"loss": loss, "rmse": rmse}

    def describe(self):
        years = self.series.years
        sizes = ", ".join(f"{part} {len(y)}" for part, (_, y) in self.parts.items())
        return (
            f"sunspots {years[0]}-{years[-1]}: windows of {self.config['window']} years; {sizes} "
            f"(test = {years[-TEST_YEARS]}-{years[-1]})"
        )
