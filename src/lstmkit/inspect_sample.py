"""One input of a trained model, what each of its steps was, what the model predicted, and its LSTM's
gates and states over it: the data behind ``lstmkit inspect``'s pictures (:mod:`.inspect_figures`).

=============  =======================================================================
task           input, its steps (the x axis) and the prediction shown
=============  =======================================================================
mnist, digits  the N-th test digit; step t = pixel row t; the predicted class and its
               probability beside the true label
sunspots       the N-th test window; step t = the year it holds; the predicted next
               year's value beside the true one (in sunspot numbers)
ptb, text      the N-th window of ``bptt`` tokens of the test stream, or ``text`` (words
               for ptb, characters for text); step t = the token read; the most likely
               next token after every step (and whether it is the one that follows)
=============  =======================================================================
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .cli_train import prompt_tokens
from .gates_over_time import lstm_gates_over_time, recurrent_input
from .grad_mode import no_grad
from .nn.module import Module
from .tasks import Task

SHOWN_CHARACTERS = {" ": "␣", "\n": "↵", "\t": "⇥"}  # characters that would be invisible as tick labels


class Inspection(NamedTuple):
    """Everything one ``lstmkit inspect`` picture shows.

    ==================  =================================================================
    task                the task's name ("mnist", "sunspots", "ptb", ...)
    kind                "image", "series" or "tokens": how the input is drawn
    states              ``(layer, direction, name) -> (T, units)``, see
                        :func:`~lstmkit.gates_over_time.lstm_gates_over_time`
    steps               (T,) what each step was, as the x axis' labels
    step_axis           the x axis' name: "pixel row", "year", "word" or "character"
    input               image: (rows, cols) pixels; series: (T,) values; tokens: None
    prediction          one line: the model's answer (and the truth where known)
    next_tokens         tokens: the most likely next token after each step; else None
    next_probabilities  tokens: its probability, (T,); else None
    next_correct        tokens: (T,) True/False where the next token is known, else None
    target              image: (predicted, p, label); series: (year, predicted, true);
                        tokens: the five likeliest next tokens after the last step, (token, p)
    ==================  =================================================================
    """

    task: str
    kind: str
    states: dict
    steps: list[str]
    step_axis: str
    input: np.ndarray | None
    prediction: str
    next_tokens: list[str] | None = None
    next_probabilities: np.ndarray | None = None
    next_correct: list[bool | None] | None = None
    target: tuple | None = None


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities over the last axis (in float64)."""
    shifted = np.asarray(logits, dtype=np.float64)
    shifted = shifted - shifted.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def _checked_index(sample: int, count: int, task: str, what: str) -> int:
    if not 0 <= sample < count:
        raise ValueError(f"--sample {sample} is out of range: {task}'s test part has {count} {what} (0 to {count - 1})")
    return sample


def inspect_sample(model: Module, task: Task, sample: int | None = None, text: str | None = None) -> Inspection:
    """The :class:`Inspection` of ``task``'s test sample ``sample`` (default 0), or of ``text`` (ptb
    and text only). A ValueError names a sample out of range, an empty text, unknown tokens, or
    ``text`` given for a task that does not read text."""
    name = task.name
    vocabulary = getattr(task, "vocabulary", None)
    if vocabulary is None:
        if text is not None:
            raise ValueError(f"--text applies to language models (ptb, text); {name} reads numbers: use --sample N")
        if name == "sunspots":
            return _series(model, task, sample or 0)
        return _image(model, task, sample or 0)
    return _tokens(model, task, vocabulary, sample, text)


def _image(model: Module, task: Task, sample: int) -> Inspection:
    test = task.parts["test"]
    index = _checked_index(sample, len(test.y), task.name, "digits")
    image, label = test.x[index], int(test.y[index])
    with no_grad():
        probabilities = softmax(model(image[None]))[0]
    predicted = int(probabilities.argmax())
    lstm, sequence = recurrent_input(model, image)
    return Inspection(
        task.name,
        "image",
        lstm_gates_over_time(lstm, sequence),
        [str(row) for row in range(len(image))],
        "pixel row",
        image,
        f"test digit {index}: predicted {predicted} (p = {probabilities[predicted]:.2f}), true {label}",
        target=(predicted, float(probabilities[predicted]), label),
    )


def _series(model: Module, task: Task, sample: int) -> Inspection:
    x, y = task.parts["test"]
    index = _checked_index(sample, len(y), task.name, "windows")
    years, target_year = task.window_years("test", index)
    with no_grad():
        predicted = float(model(x[index][None])[0, 0]) * task.std + task.mean
    true = float(y[index, 0]) * task.std + task.mean
    lstm, sequence = recurrent_input(model, x[index])
    return Inspection(
        task.name,
        "series",
        lstm_gates_over_time(lstm, sequence),
        [str(year) for year in years],
        "year",
        x[index, :, 0] * task.std + task.mean,
        f"{years[0]}-{years[-1]} -> {target_year}: predicted {predicted:.1f}, true {true:.1f} sunspots",
        target=(target_year, predicted, true),
    )


def _tokens(model: Module, task: Task, vocabulary: list[str], sample: int | None, text: str | None) -> Inspection:
    words = task.name == "ptb"
    if text is not None:
        if not text.strip():
            raise ValueError(f"--text is empty: give the {'words' if words else 'characters'} to read")
        try:
            ids = np.array(prompt_tokens(text, vocabulary, words))
        except ValueError as error:
            raise ValueError(f"--text: {error}") from None
        following = [*ids[1:], None]
        described = f"--text ({len(ids)} {'words' if words else 'characters'})"
    else:
        stream, length = task.corpus.parts["test"], task.config["bptt"]
        count = (len(stream) - 1) // length
        start = _checked_index(sample or 0, count, task.name, f"windows of {length} tokens") * length
        ids, following = stream[start : start + length], list(stream[start + 1 : start + length + 1])
        described = f"test window {sample or 0} (tokens {start} to {start + length - 1})"
    with no_grad():
        logits, _ = model(ids[:, None])
    probabilities = softmax(logits[:, 0])
    top = probabilities.argmax(axis=-1)
    correct = [None if nxt is None else bool(t == nxt) for t, nxt in zip(top, following)]
    known = [c for c in correct if c is not None]
    lstm, sequence = recurrent_input(model, ids)
    return Inspection(
        task.name,
        "tokens",
        lstm_gates_over_time(lstm, sequence),
        [shown_token(vocabulary[i]) for i in ids],
        "word" if words else "character",
        None,
        f"{described}: the top next token is right at {sum(known)} of {len(known)} steps" if known else described,
        [shown_token(vocabulary[i]) for i in top],
        probabilities[np.arange(len(top)), top],
        correct,
        tuple((shown_token(vocabulary[i]), float(probabilities[-1, i])) for i in np.argsort(-probabilities[-1])[:5]),
    )


def shown_token(token: str) -> str:
    """A token as a tick label: spaces, newlines and tabs made visible."""
    return SHOWN_CHARACTERS.get(token, token)
