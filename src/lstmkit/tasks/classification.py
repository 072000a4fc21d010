"""Digit classification, one image row per time step: LSTM -> last step -> Linear."""

from __future__ import annotations

import numpy as np

from ..data.images import load_digits, load_mnist
from ..grad_mode import no_grad
from ..nn.losses import CrossEntropyLoss
from .base import Task, capped_count, last_step_model, predict_in_chunks, shuffled_batches


def shift_images(images: np.ndarray, rng: np.random.Generator, max_shift: int) -> np.ndarray:
    """Each image moved by a random whole number of pixels (up to ``max_shift``) in each direction, zero-filled."""
    if max_shift == 0:
        return images
    count, rows, cols = images.shape
    padded = np.zeros((count, rows + 2 * max_shift, cols + 2 * max_shift), dtype=images.dtype)
    padded[:, max_shift : max_shift + rows, max_shift : max_shift + cols] = images
    dy, dx = rng.integers(0, 2 * max_shift + 1, size=(2, count))
    row_index = dy[:, None] + np.arange(rows)[None, :]
    col_index = dx[:, None] + np.arange(cols)[None, :]
    return padded[np.arange(count)[:, None, None], row_index[:, :, None], col_index[:, None, :]]


class ImageRowsTask(Task):
    metric = "accuracy"
    higher_is_better = True
    classes = 10

    def __init__(self, config: dict):
        super().__init__(config)
        self.parts = self.load()
        self.loss = CrossEntropyLoss()

    def load(self):
        raise NotImplementedError

    def build_model(self):
        _, rows, cols = self.parts["train"].x.shape
        return last_step_model(self.config, cols, self.classes)

    def epoch_size(self) -> int:
        return capped_count(len(self.parts["train"].y), self.config["batch_size"], self.config["max_batches"])

    def batches(self, rng):
        train = self.parts["train"]
        for index in shuffled_batches(rng, len(train.y), self.config["batch_size"]):
            yield shift_images(train.x[index], rng, self.config.get("max_shift", 0)), train.y[index]

    def train_step(self, model, batch):
        images, labels = batch
        loss = self.loss(model(images), labels)
        model.backward(self.loss.backward())
        return float(loss) * len(labels), len(labels)

    def evaluate(self, model, part):
        split = self.parts[part]
        logits = predict_in_chunks(model, split.x)
        with no_grad():
            loss = self.loss(logits, split.y)
        return {"loss": float(loss), "accuracy": float(np.mean(logits.argmax(axis=1) == split.y))}

    def describe(self):
        sizes = ", ".join(f"{name} {len(split.y)}" for name, split in self.parts.items())
        _, rows, cols = self.parts["train"].x.shape
        return f"{self.name}: {rows} steps of {cols} pixels; {sizes}"


class MnistTask(ImageRowsTask):
    """The seeds' recipe: LSTM(28, 128), the last step into Linear(128, 10); trained with Adam."""

    name = "mnist"
    defaults = dict(
        hidden_size=128, epochs=40, batch_size=128, lr=3e-3, optimizer="adam", schedule="cosine", clip=1.0, max_shift=2
    )

    def load(self):
        return load_mnist()


class DigitsTask(ImageRowsTask):
    name = "digits"
    defaults = dict(hidden_size=64, epochs=30, batch_size=32, lr=3e-3, optimizer="adam", schedule="cosine", clip=1.0)

    def load(self):
        return load_digits()
