"""Run-directory safety: a used directory is refused, --overwrite removes only what fgrpo wrote,
and --resume takes the directory's config and refuses what cannot be resumed."""

from __future__ import annotations

from pathlib import Path

from fgrpo.cli.main import main
from fgrpo.runtime.checkpoint import (
    Checkpoint,
    rng_state,
    save_checkpoint,
)
from fgrpo.runtime.configs import load_config
from fgrpo.runtime.run_dir import prepare
from fgrpo.runtime.run_setup import claim_fresh, clear, resume_config

# --- run directories: refuse, overwrite, resume's config ----------------------------------------


def old_run(tmp_path: Path, *overrides: str) -> Path:
    run = tmp_path / "run"
    prepare(run, load_config(None, ["federation.rounds=4", *overrides]))
    (run / "final").mkdir()
    (run / "final" / "adapter.bin").write_text("old")
    return run


def test_a_non_empty_run_directory_is_refused_with_one_line(tmp_path, capsys):
    run = old_run(tmp_path)
    assert main(["run", "--out", str(run), "--set", "federation.rounds=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "not empty" in err and "--resume" in err and "--overwrite" in err
    assert (run / "final" / "adapter.bin").read_text() == "old"
    claim_fresh(tmp_path / "new", overwrite=False)  # missing or empty is fine
    (tmp_path / "empty").mkdir()
    claim_fresh(tmp_path / "empty", overwrite=False)


def test_overwrite_keeps_the_old_run_when_the_new_config_is_bad_and_never_deletes_other_folders(
    tmp_path, capsys
):
    run = old_run(tmp_path)
    assert main(["run", "--out", str(run), "--overwrite", "--set", "federation.rounds=zero"]) == 2
    assert (run / "final" / "adapter.bin").read_text() == "old" and (run / "config.toml").is_file()
    assert (
        main(["run", "--out", str(run), "--overwrite", "--set", "data.train_size=1"]) == 2
    )  # fails in check_data
    assert (run / "final" / "adapter.bin").read_text() == "old"
    claim_fresh(run, overwrite=True)
    clear(run)
    assert run.is_dir() and not any(run.iterdir())
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "cat.jpg").write_text("meow")
    assert main(["run", "--out", str(photos), "--overwrite"]) == 2
    assert (
        "not an fgrpo run directory" in capsys.readouterr().err and (photos / "cat.jpg").is_file()
    )


def test_overwrite_removes_only_what_fgrpo_wrote(tmp_path):
    run = old_run(tmp_path)
    (run / "notes.txt").write_text("my notes")
    (run / "my_plots").mkdir()
    (run / "my_plots" / "a.png").write_bytes(b"png")
    (run / "plots").mkdir(exist_ok=True)
    (run / "plots" / "accuracy.png").write_bytes(b"old plot")
    claim_fresh(run, overwrite=True)
    clear(run)
    assert sorted(p.name for p in run.iterdir()) == ["my_plots", "notes.txt"]
    assert (run / "notes.txt").read_text() == "my notes" and (
        run / "my_plots" / "a.png"
    ).read_bytes() == b"png"


def test_resume_takes_the_run_directorys_config_and_only_lets_rounds_grow(tmp_path, capsys):
    run = old_run(tmp_path, "strategy.name=fedavg")
    assert resume_config(run, None, []).strategy.name == "fedavg"
    assert resume_config(run, None, ["federation.rounds=6"]).federation.rounds == 6
    assert resume_config(run, str(run / "config.toml"), []).federation.rounds == 4
    assert main(["run", "--resume", str(run), "--set", "strategy.name=fgrpo"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "strategy.name" in err and "only federation.rounds may change" in err
    assert main(["run", "--resume", str(run), "--out", str(tmp_path / "x")]) == 2
    assert main(["run", "--resume", str(tmp_path / "nothing")]) == 2
    assert "no config.toml" in capsys.readouterr().err
    central = tmp_path / "central"
    prepare(central, load_config(None, ["strategy.name=centralized"]))
    assert main(["run", "--resume", str(central)]) == 2
    assert "cannot be resumed" in capsys.readouterr().err


def test_resume_refuses_fewer_rounds_than_done_and_a_finished_run_without_more_rounds(
    tmp_path, capsys
):
    from fgrpo.models.lora import fresh_adapter_model
    from fgrpo.models.transport import adapter_state

    run = old_run(tmp_path, "model.name=tiny-random")
    model, _ = fresh_adapter_model(load_config(None, ["model.name=tiny-random"]).model, 0)
    save_checkpoint(
        run, Checkpoint(round=4, adapter=adapter_state(model), strategy={}, rng=rng_state()), model
    )
    assert main(["run", "--resume", str(run), "--set", "federation.rounds=3"]) == 2
    assert "below the 4 rounds" in capsys.readouterr().err
    resume_config(run, None, [])  # all rounds done but no summary: the resume only finishes the run
    (run / "summary.json").write_text("{}")
    assert main(["run", "--resume", str(run)]) == 2
    assert "completed all 4 rounds" in capsys.readouterr().err
    assert resume_config(run, None, ["federation.rounds=5"]).federation.rounds == 5
    save_checkpoint(
        run,
        Checkpoint(
            round=4, adapter=adapter_state(model), strategy={}, rng=rng_state(), metrics_bytes=10
        ),
        model,
    )  # metrics.jsonl (empty) lost its lines
    assert main(["run", "--resume", str(run), "--set", "federation.rounds=5"]) == 2
    assert "shorter than at round 4" in capsys.readouterr().err
