"""Name -> task; the one place that knows which procedural tasks exist."""

from __future__ import annotations

from fgrpo.tasks.arithmetic import Addition, Modular, Multiplication
from fgrpo.tasks.base import Task
from fgrpo.tasks.easy import EASY_TASKS
from fgrpo.tasks.geometry import Geometry
from fgrpo.tasks.math_datasets import CHECKERS
from fgrpo.tasks.puzzles import Countdown, Sorting

TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Addition(),
        Multiplication(),
        Sorting(),
        Countdown(),
        Modular(),
        *EASY_TASKS,
        Geometry(),
    )
}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(TASKS)}") from None


def checker_for(name: str, rows: list[dict] | None = None) -> Task:
    """The gold check evaluation uses for a test set: the procedural task of that name, or the
    checker a data source's test rows name (``checker`` column: "math" or "exact")."""

    if name in TASKS:
        return TASKS[name]
    checker = (rows or [{}])[0].get("checker")
    if checker in CHECKERS:
        return CHECKERS[checker]
    return get_task(name)
