"""Verifiable tasks: generators, answer extraction, rewards and gold checks."""

from .base import Task, completion_text
from .registry import TASKS, checker_for, get_task

__all__ = ["TASKS", "Task", "checker_for", "completion_text", "get_task"]
