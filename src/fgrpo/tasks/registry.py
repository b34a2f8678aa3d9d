"""Name -> task; the one place that knows which procedural tasks exist."""

from __future__ import annotations

from .arithmetic import Addition, Modular, Multiplication
from .base import Task
from .puzzles import Countdown, Sorting

TASKS: dict[str, Task] = {t.name: t for t in (Addition(), Multiplication(), Sorting(), Countdown(), Modular())}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(TASKS)}") from None
