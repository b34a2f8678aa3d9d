"""``grpo.*`` values checked before a run starts, against TRL's own ``GRPOConfig``.

The config loader only checks that every ``grpo.*`` name is a GRPOConfig field
(cheap, and enough for ``fgrpo data describe``). Before ``fgrpo run`` starts
anything, this module checks the values: each against the field's declared type
(TRL does not check types: ``learning_rate = "fast"`` would only fail inside every
client's optimizer), a few ranges TRL leaves to the trainer, and then builds the
exact GRPOConfig every client builds, so TRL's own cross-field checks (batch size
divisible by ``num_generations``, ...) fail here, once, naming the key.
"""

from __future__ import annotations

import enum
import re
import tempfile
import types
import typing
import warnings
from typing import Any

from fgrpo.core.config import Config
from fgrpo.core.errors import ConfigError

# Ranges that TRL's GRPOConfig accepts (or rejects without naming the key) but training cannot use.
AT_LEAST = {
    "num_generations": 2,
    "per_device_train_batch_size": 1,
    "max_completion_length": 1,
    "gradient_accumulation_steps": 1,
    "learning_rate": 0,
    "beta": 0,
    "epsilon": 0,
    "weight_decay": 0,
    "max_grad_norm": 0,
}
POSITIVE = ("temperature",)


def _type_words(annotation: Any) -> str:
    """``float | None`` -> "a number or none" (for the error message)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(_type_words(a) for a in typing.get_args(annotation)))
    if typing.get_origin(annotation) is typing.Literal:
        return " or ".join(repr(a) for a in typing.get_args(annotation))
    words = {
        bool: "true or false",
        int: "an integer",
        float: "a number",
        str: "a string",
        type(None): "none",
        list: "a list",
        dict: "a table",
    }
    base = typing.get_origin(annotation) or annotation
    if isinstance(base, type) and issubclass(base, enum.Enum):
        return "one of " + ", ".join(str(m.value) for m in base)
    return words.get(base, getattr(base, "__name__", str(base)))


def matches(value: Any, annotation: Any) -> bool:
    """Whether a TOML value fits a dataclass field's annotation."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin is list:
        (item,) = typing.get_args(annotation) or (Any,)
        return isinstance(value, list) and all(matches(v, item) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True  # an annotation we cannot check here: TRL's constructor decides


def _check_values(settings: dict[str, Any]) -> None:
    # deferred: TRL takes seconds to import; only a run's pre-flight needs it
    from trl import GRPOConfig

    from fgrpo.client.grpo import fixed_grpo_args

    hints = typing.get_type_hints(GRPOConfig)
    fixed = fixed_grpo_args("", 0, 1)
    for key, value in settings.items():
        if key in fixed:
            raise ConfigError(
                f"grpo.{key}", "fgrpo sets this GRPOConfig field itself; remove the key"
            )
        if key in hints and not matches(value, hints[key]):
            raise ConfigError(f"grpo.{key}", f"expected {_type_words(hints[key])}, got {value!r}")
        if value is None:
            continue
        if key in AT_LEAST and value < AT_LEAST[key]:
            raise ConfigError(f"grpo.{key}", f"must be >= {AT_LEAST[key]}, got {value!r}")
        if key in POSITIVE and not value > 0:
            raise ConfigError(f"grpo.{key}", f"must be > 0, got {value!r}")


def _culprit(message: str, settings: dict[str, Any], user_keys: dict[str, Any]) -> str:
    """The grpo.* key TRL's message names (the user's own keys first), else "grpo"."""
    for key in sorted(settings, key=lambda k: k not in user_keys):
        if re.search(rf"\b{re.escape(key)}\b", message):
            return f"grpo.{key}"
    for key, value in user_keys.items():  # e.g. "bogus is not a valid SchedulerType"
        if isinstance(value, str) and re.search(rf"\b{re.escape(value)}\b", message):
            return f"grpo.{key}"
    return "grpo"


def check_grpo_settings(cfg: Config) -> None:
    """Raise ConfigError naming the ``grpo.*`` key whose value TRL (or training) cannot use."""
    # deferred: TRL takes seconds to import; only a run's pre-flight needs it
    from fgrpo.client.grpo import grpo_args

    settings = cfg.grpo_settings()
    _check_values(settings)
    with tempfile.TemporaryDirectory(prefix="fgrpo-check-") as scratch, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            grpo_args(cfg, scratch, cfg.seed, cfg.federation.local_steps)
        except (ValueError, TypeError) as err:
            message = " ".join(str(err).split())
            raise ConfigError(
                _culprit(message, settings, cfg.grpo), f"TRL's GRPOConfig rejects it: {message}"
            ) from err
