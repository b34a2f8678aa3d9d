"""Local RL algorithms (rl.algorithm): presets over TRL's GRPOConfig, overridable by grpo.*."""

from __future__ import annotations

import dataclasses
import json

import pytest
from trl import GRPOConfig

from fgrpo.client.grpo import grpo_args
from fgrpo.core.errors import ConfigError
from fgrpo.core.rl import GRPO_DEFAULTS, PRESET_KEYS, RL_DESCRIPTIONS, RL_PRESETS
from fgrpo.runtime import run_dir
from fgrpo.runtime.configs import load_config

# What each preset must make TRL do, written out from the papers / TRL's docs (not from fgrpo.core.rl).
EXPECTED = {
    "grpo": {
        "loss_type": "grpo",
        "importance_sampling_level": "token",
        "epsilon": 0.2,
        "epsilon_high": None,
        "scale_rewards": "group",
    },
    "dapo": {
        "loss_type": "dapo",
        "epsilon": 0.2,
        "epsilon_high": 0.28,
        "mask_truncated_completions": True,
    },
    "dr_grpo": {"loss_type": "dr_grpo", "scale_rewards": "none"},
    "bnpo": {"loss_type": "bnpo"},
    "gspo": {
        "importance_sampling_level": "sequence",
        "loss_type": "grpo",
        "epsilon": 3e-4,
        "epsilon_high": 4e-4,
    },
    "cispo": {"loss_type": "cispo", "epsilon_high": 5.0},
}


def test_the_issue_presets_exist_with_descriptions_and_only_grpoconfig_fields():
    assert set(RL_PRESETS) == set(EXPECTED) == set(RL_DESCRIPTIONS)
    fields = {f.name for f in dataclasses.fields(GRPOConfig)}
    for name, settings in RL_PRESETS.items():
        assert set(settings) == set(PRESET_KEYS), name  # same keys: no residue when switching
        assert set(settings) <= fields, name


@pytest.mark.parametrize("algorithm", sorted(EXPECTED))
def test_preset_reaches_trls_grpoconfig(algorithm, tmp_path):
    cfg = load_config(None, [f"rl.algorithm={algorithm}"])
    args = grpo_args(cfg, str(tmp_path), seed=0, steps=1)
    assert isinstance(args, GRPOConfig)
    for key, value in EXPECTED[algorithm].items():
        assert getattr(args, key) == value, key
    for key, value in GRPO_DEFAULTS.items():  # the laptop defaults survive every preset
        assert getattr(args, key) == value, key


def test_default_algorithm_is_grpo():
    assert load_config(None, []).rl.algorithm == "grpo"


def test_grpo_keys_override_the_preset(tmp_path):
    cfg = load_config(None, ["rl.algorithm=dapo", "grpo.epsilon_high=0.35", "grpo.loss_type=bnpo"])
    args = grpo_args(cfg, str(tmp_path), seed=0, steps=1)
    assert (args.epsilon_high, args.loss_type) == (0.35, "bnpo")
    assert args.mask_truncated_completions is True  # the rest of the preset stays


def test_unknown_preset_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["rl.algorithm=ppo"])
    assert err.value.key == "rl.algorithm"


def test_rl_section_round_trips_through_flowers_flat_run_config():
    from fgrpo.runtime.configs import config_from_flat

    cfg = load_config(None, ["rl.algorithm=gspo"])
    assert config_from_flat(cfg.flatten()).rl.algorithm == "gspo"


def test_run_directory_records_the_trl_settings(tmp_path):
    cfg = load_config(None, ["rl.algorithm=cispo", "grpo.epsilon_high=4.0"])
    run_dir.prepare(tmp_path, cfg)
    record = json.loads((tmp_path / "grpo_settings.json").read_text())
    assert record["algorithm"] == "cispo"
    assert record["preset"]["loss_type"] == "cispo" and record["preset"]["epsilon_high"] == 5.0
    assert record["overrides"] == {"epsilon_high": 4.0}
    assert record["settings"]["epsilon_high"] == 4.0 and record["settings"]["loss_type"] == "cispo"
    assert record["settings"]["learning_rate"] == GRPO_DEFAULTS["learning_rate"]


def test_cli_lists_strategies_and_presets(capsys):
    from fgrpo.cli.main import main
    from fgrpo.server.strategies import STRATEGIES

    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for name, entry in STRATEGIES.items():
        assert any(
            line.split() and line.split()[0] == name and entry.description in line for line in lines
        ), name
    for name in RL_PRESETS:
        assert any(
            line.split() and line.split()[0] == name and RL_DESCRIPTIONS[name] in line
            for line in lines
        ), name
