"""Verifiable tasks: generators, answer extraction, rewards and gold checks."""

from .base import Task, completion_text
from .registry import TASKS, get_task

__all__ = ["TASKS", "Task", "completion_text", "get_task"]
