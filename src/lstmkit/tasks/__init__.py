"""Training tasks: each knows its data, its best recipe, its model, one training step and its metrics.

A task is what ``lstmkit train NAME`` runs; the :class:`~lstmkit.train.Trainer` drives any of them.
"""

from __future__ import annotations

from .base import Task
from .classification import DigitsTask, MnistTask
from .language import PtbTask, TextTask
from .regression import SunspotsTask
from .tagging import TagTask

TASKS: dict[str, type[Task]] = {
    task.name: task for task in (MnistTask, DigitsTask, SunspotsTask, PtbTask, TextTask, TagTask)
}


def get_task(name: str) -> type[Task]:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}: expected one of {', '.join(TASKS)}")
    return TASKS[name]


__all__ = ["TASKS", "Task", "get_task"]
