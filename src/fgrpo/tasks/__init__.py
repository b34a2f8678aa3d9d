"""Verifiable tasks: generators, answer extraction, rewards and gold checks."""

from fgrpo.tasks.base import Task, completion_text
from fgrpo.tasks.registry import TASKS, checker_for, get_task

__all__ = ["TASKS", "Task", "checker_for", "completion_text", "get_task"]
