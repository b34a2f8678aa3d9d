"""One typed config: TOML + --set overrides, validated before anything starts."""

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from fgrpo.config import GRPO_DEFAULTS, Config, ConfigError, config_from_dict, config_from_flat, load_config, parse_override

ROOT = Path(__file__).resolve().parents[1]


def test_public_keys_exist_with_their_names():
    flat = Config().flatten()
    for key in ["seed", "model.name", "federation.num_clients", "federation.rounds", "federation.local_steps",
                "federation.fraction_train", "strategy.name", "data.partition", "data.alpha", "eval.every"]:
        assert key in flat


def test_demo_config_loads_and_overrides_apply():
    cfg = load_config(ROOT / "configs" / "demo.toml", ["federation.rounds=2", "federation.num_clients=3",
                                                     "strategy.name=fedavg", "grpo.learning_rate=1e-4"])
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
    cfg = load_config(None, ["data.tasks=[\"addition\", \"sorting\"]", "data.reward_scale={sorting = 3.0}",
                             "grpo.temperature=0.7"])
    assert config_from_dict(json.loads(cfg.to_json())) == cfg
    assert config_from_flat(cfg.flatten()) == cfg


def test_flower_app_defaults_in_pyproject_mirror_the_config_defaults():
    """`flwr run . --run-config` only accepts keys the app declares, so declare them all."""
    flat = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    expected = {**Config().flatten(), **{f"grpo.{k}": v for k, v in GRPO_DEFAULTS.items()}}
    assert flat == expected
    assert config_from_flat(flat).grpo == GRPO_DEFAULTS


def test_cli_reports_a_bad_key_in_one_line_with_exit_2():
    proc = subprocess.run(
        [sys.executable, "-m", "fgrpo", "run", "--set", "federation.roundz=2"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "federation.roundz" in lines[0]
