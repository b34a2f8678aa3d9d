"""Bad configuration, model names and config files: exit 2 and one stderr line naming the culprit."""

from __future__ import annotations

import pytest

from fgrpo.core.errors import UserInputError

from ..bad_input_helpers import (
    fails,
    jsonl,
    nothing_starts,  # noqa: F401 (the autouse safety net)
    sets,
    source_run,
)

# --- config: values checked before start ---------------------------------------------------------

CONFIG_CASES = {
    "unknown-key": ({"federation__roundz": 2}, "federation.roundz"),
    "grpo-generations-not-dividing-batch": ({"grpo__num_generations": 3}, "grpo.num_generations"),
    "grpo-learning-rate-text": ({"grpo__learning_rate": "fast"}, "grpo.learning_rate"),
    "grpo-unknown-field": ({"grpo__learning_rat": 0.1}, "grpo.learning_rat"),
    "grpo-temperature-zero": ({"grpo__temperature": 0}, "grpo.temperature"),
    "grpo-one-generation": ({"grpo__num_generations": 1}, "grpo.num_generations"),
    "grpo-negative-beta": ({"grpo__beta": -0.1}, "grpo.beta"),
    "grpo-float-completion-length": (
        {"grpo__max_completion_length": 1.5},
        "grpo.max_completion_length",
    ),
    "grpo-unknown-scheduler": ({"grpo__lr_scheduler_type": "bogus"}, "grpo.lr_scheduler_type"),
    "grpo-field-fgrpo-sets": ({"grpo__max_steps": 5}, "grpo.max_steps"),
    "grpo-bool-as-text": (
        {"grpo__activation_checkpointing": "yes"},
        "grpo.activation_checkpointing",
    ),
    "train-size-below-clients": ({"data__train_size": 1}, "data.train_size"),
    "client-share-below-one-step": ({"grpo__per_device_train_batch_size": 64}, "data.train_size"),
    "unknown-strategy": ({"strategy__name": "fedbest"}, "strategy.name"),
    "min-clients-above-clients": ({"federation__min_clients": 3}, "federation.min_clients"),
    "unknown-task": ({"data__tasks": ["addition", "calculus"]}, "data.tasks"),
    "rounds-zero": ({"federation__rounds": 0}, "federation.rounds"),
    "model-name-typo": ({"model__name": "tiny-randon"}, "tiny-randon"),
    "model-name-unknown-hub-id": (
        {"model__name": "no-such-org/no-such-model"},
        "no-such-org/no-such-model",
    ),
    "model-name-missing-path": ({"model__name": "./models/nope"}, "./models/nope"),
}


@pytest.mark.parametrize(
    ("overrides", "culprit"), list(CONFIG_CASES.values()), ids=list(CONFIG_CASES)
)
def test_bad_config_value(capsys, tmp_path, overrides, culprit):
    fails(capsys, ["run", *sets(**overrides), "--out", str(tmp_path / "run")], culprit)
    assert not (tmp_path / "run").exists()


def test_model_directory_without_config_json(capsys, tmp_path):
    (tmp_path / "model").mkdir()
    fails(
        capsys,
        ["run", *sets(model__name=str(tmp_path / "model")), "--out", str(tmp_path / "run")],
        str(tmp_path / "model"),
        "config.json",
    )


def test_uncached_hub_id_offline_says_so_at_once(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    line = fails(
        capsys,
        ["run", *sets(model__name="someorg/some-model"), "--out", str(tmp_path / "run")],
        "someorg/some-model",
    )
    assert "HF_HUB_OFFLINE" in line


def test_hub_id_in_the_local_cache_is_accepted(tmp_path, monkeypatch):
    """The real path for hub users still works: a cached id passes without any network."""
    from fgrpo.models.availability import check_model

    snapshot = tmp_path / "hub" / "models--someorg--cached-model" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "hub" / "models--someorg--cached-model" / "refs").mkdir()
    (tmp_path / "hub" / "models--someorg--cached-model" / "refs" / "main").write_text("abc123")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    check_model("someorg/cached-model")
    with pytest.raises(UserInputError, match="someorg/other-model"):
        check_model("someorg/other-model")


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("tiny-randon", "tiny-random"), ("smollm2-135", "smollm2-135m"), ("Tiny", "tiny")],
)
def test_mistyped_model_name_suggests_the_registry_name(capsys, tmp_path, typo, meant):
    """Not the hub's fault: a near-miss of a registry name is named as one at once, with the
    names."""
    line = fails(
        capsys,
        ["run", *sets(model__name=typo), "--out", str(tmp_path / "run")],
        repr(typo),
        f"did you mean {meant!r}",
    )
    assert "unreachable" not in line and "tiny-vl" in line


EMPTY_CONFIGS = {
    "empty": "",
    "only-comments": "# my run\n# rounds = 3\n",
    "only-blank-lines": "\n\n  \n",
}


@pytest.mark.parametrize("text", list(EMPTY_CONFIGS.values()), ids=list(EMPTY_CONFIGS))
def test_config_file_without_settings(capsys, tmp_path, text):
    """An empty file is a wrong or unsaved file: running 400 prompts on the defaults would hide
    that."""
    (tmp_path / "c.toml").write_text(text)
    fails(
        capsys,
        ["run", "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "run")],
        "c.toml",
        "empty",
        "leave out --config",
    )


def test_config_file_not_utf8(capsys, tmp_path):
    (tmp_path / "c.toml").write_bytes(
        "[federation]\n# r\xe9sum\xe9\nrounds = 2\n".encode("latin-1")
    )
    fails(capsys, ["run", "--config", str(tmp_path / "c.toml")], "c.toml", "UTF-8")


def test_more_clients_than_rows(capsys, tmp_path):
    rows = [
        {"question": f"What is {a} + {a}?", "answer": f"#### {2 * a}"} for a in range(1, 51)
    ]  # 2 go to tests
    argv = source_run(tmp_path, {"path": jsonl(tmp_path, rows)}, federation__num_clients=100)
    fails(
        capsys, argv, "federation.num_clients", "48 training rows cannot be split among 100 clients"
    )


def test_config_file_missing(capsys, tmp_path):
    fails(capsys, ["run", "--config", str(tmp_path / "nope.toml")], "--config", "nope.toml")


def test_config_file_not_toml(capsys, tmp_path):
    (tmp_path / "c.toml").write_text("[federation\nrounds = 2\n")
    fails(capsys, ["run", "--config", str(tmp_path / "c.toml")], "c.toml", "invalid TOML")
