"""One typed config: TOML + --set overrides, validated before anything starts."""

import dataclasses
import json
import subprocess
import sys
import tomllib
import typing
from pathlib import Path

import pytest

from fgrpo.core.config import Config
from fgrpo.core.config_values import parse_override
from fgrpo.core.errors import ConfigError
from fgrpo.core.rl import GRPO_DEFAULTS
from fgrpo.runtime.configs import config_from_dict, config_from_flat, load_config
from fgrpo.tasks.registry import TASKS

ROOT = Path(__file__).resolve().parents[2]


def test_public_keys_exist_with_their_names():
    flat = Config().flatten()
    for key in [
        "seed",
        "model.name",
        "federation.num_clients",
        "federation.rounds",
        "federation.local_steps",
        "federation.fraction_train",
        "strategy.name",
        "data.partition",
        "data.alpha",
        "eval.every",
    ]:
        assert key in flat


def test_demo_config_loads_and_overrides_apply():
    cfg = load_config(
        ROOT / "configs" / "demo.toml",
        [
            "federation.rounds=2",
            "federation.num_clients=3",
            "strategy.name=fedavg",
            "grpo.learning_rate=1e-4",
        ],
    )
    assert cfg.federation.rounds == 2 and cfg.federation.num_clients == 3
    assert cfg.strategy.name == "fedavg"
    assert cfg.grpo_settings()["learning_rate"] == 1e-4


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("federation.roundz=2", "federation.roundz"),
        ("federation.rounds=two", "federation.rounds"),
        ("federation.rounds=0", "federation.rounds"),
        ("data.alpha=-1", "data.alpha"),
        ("data.partition=zipf", "data.partition"),
        ("strategy.gain=log", "strategy.gain"),
        ("grpo.no_such_field=1", "grpo.no_such_field"),
        ("federation.fraction_train=1.5", "federation.fraction_train"),
    ],
)
def test_bad_keys_and_values_name_the_key(override, key):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert err.value.key == key


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_override_values_are_toml():
    assert parse_override("a.b=2") == ("a.b", 2)
    assert parse_override("a.b=0.5") == ("a.b", 0.5)
    assert parse_override("a.b=true") == ("a.b", True)
    assert parse_override("a.b=fedavg") == ("a.b", "fedavg")
    assert parse_override('a.b=["x", "y"]') == ("a.b", ["x", "y"])


def test_json_and_flat_forms_round_trip():
    cfg = load_config(
        None,
        [
            'data.tasks=["addition", "sorting"]',
            "data.reward_scale={sorting = 3.0}",
            "grpo.temperature=0.7",
            "data.format_reward=0.5",
            "grpo.reward_weights=[2.0, 0.5]",
        ],
    )
    assert config_from_dict(json.loads(cfg.to_json())) == cfg
    assert config_from_flat(cfg.flatten()) == cfg  # a list of numbers travels as JSON


def config_tables(cls: type = Config, prefix: str = "") -> list[str]:
    """Dotted names of every table-valued key of the config (``data.reward_scale``, ...)."""
    tables = []
    for name, hint in typing.get_type_hints(cls).items():
        if dataclasses.is_dataclass(hint):
            tables += config_tables(hint, f"{prefix}{name}.")
        elif typing.get_origin(hint) is dict:
            tables.append(f"{prefix}{name}")
    return tables


def test_flower_app_defaults_in_pyproject_mirror_the_config_defaults():
    """`flwr run . --run-config` only accepts keys the app declares, so declare them all, and every
    table's entries too (an empty table flattens to nothing, so it would declare nothing)."""
    flat = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    tables = config_tables()
    assert {"data.reward_scale", "federation.client_lr_scale", "grpo"} <= set(tables)
    entries = {
        t: {k[len(t) + 1 :]: v for k, v in flat.items() if k.startswith(t + ".")} for t in tables
    }
    for table, declared in entries.items():
        assert declared, (
            f"pyproject.toml declares no key of {table}: `--run-config {table}.<key>=...` is refused"
        )
    assert entries["grpo"] == GRPO_DEFAULTS
    assert entries["data.reward_scale"] == {task: 1.0 for task in TASKS}
    assert entries["federation.client_lr_scale"] == {
        str(p): 1.0 for p in range(Config().federation.num_clients)
    }
    scalars = {k: v for k, v in flat.items() if not any(k.startswith(t + ".") for t in tables)}
    assert scalars == Config().flatten()
    assert config_from_flat(flat) == Config(
        grpo=dict(GRPO_DEFAULTS)
    )  # declared entries change nothing


def test_a_multiplier_of_one_is_no_entry_and_others_stay():
    cfg = config_from_flat(
        {
            "data.reward_scale.sorting": 1000.0,
            "data.reward_scale.addition": 1.0,
            "federation.client_lr_scale.0": 0.0,
            "federation.client_lr_scale.1": 1.0,
        }
    )
    assert cfg.data.reward_scale == {"sorting": 1000.0}
    assert cfg.federation.client_lr_scale == {"0": 0.0}


def test_cli_reports_a_bad_key_in_one_line_with_exit_2():
    proc = subprocess.run(
        [sys.executable, "-m", "fgrpo", "run", "--set", "federation.roundz=2"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "federation.roundz" in lines[0]
