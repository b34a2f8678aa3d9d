"""Errors a user causes and can fix: the CLI prints each as one line and exits with 2.

Anything else that escapes a command is a bug in fgrpo and keeps its traceback.
``fgrpo --debug`` shows the traceback of user errors too.
"""

from __future__ import annotations


class UserInputError(Exception):
    """A mistake in what the user gave fgrpo (a path, a name, a value); the message names it."""

    kind = "error"  # the CLI's prefix: "fgrpo: <kind>: <message>"


class ConfigError(UserInputError, ValueError):
    """A user-caused configuration problem; ``key`` names the culprit."""

    kind = "config error"

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


class HubUnreachable(UserInputError):
    """A model or dataset needs the Hugging Face hub, which is unreachable here and it is not
    cached.

    A real run stops on it; ``fgrpo run --dry-run`` notes it and plans the rest."""
