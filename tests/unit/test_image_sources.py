"""Data sources with images (GeoQA-style): local files with image paths, parquet-embedded images,
hub datasets, and bad images named by file and row; image tasks refuse a text-only model."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from fgrpo.cli.main import main
from fgrpo.data import partitions as fdata
from fgrpo.runtime.configs import config_from_dict
from fgrpo.tasks.sources import DataError, load_source


def figure(i: int) -> Image.Image:
    img = Image.new("RGB", (40, 30), "white")
    ImageDraw.Draw(img).line((0, 0, i % 40, 29), fill="black")
    return img


def geoqa_rows(n: int, folder: Path) -> list[dict]:
    """R1-V's GeoQA layout: problem, solution in <answer> tags, an image (here a relative path)."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        figure(i).save(folder / "images" / f"{i}.png")
        # the same question text over different figures: still different problems
        rows.append(
            {
                "problem": "As shown in the figure, find the angle x.",
                "solution": f"<answer>{20 + i}°</answer>",
                "image": f"images/{i}.png",
            }
        )
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def geoqa_config(location: Path, model: str = "tiny-vl", **extra) -> dict:
    source = {
        "name": "geoqa",
        "path": str(location),
        "prompt_column": "problem",
        "answer_column": "solution",
        "image_column": "image",
        **extra,
    }
    return {
        "model": {"name": model},
        "federation": {"num_clients": 2},
        "data": {"tasks": [], "partition": "iid", "test_size": 3, "sources": [source]},
        "grpo": {"per_device_train_batch_size": 8},
    }


def test_jsonl_with_relative_image_paths(tmp_path: Path) -> None:
    data = tmp_path / "geoqa"
    path = write_jsonl(data / "train.jsonl", geoqa_rows(12, data))
    cfg = config_from_dict(geoqa_config(path))
    train, test = load_source(cfg.data.sources[0], 0, 3)
    assert len(train) == 9 and len(test) == 3  # one text, twelve figures: twelve problems
    row = train[0]
    assert isinstance(row["image"], Image.Image) and row["image"].size == (40, 30)
    assert row["gold"].isdigit()
    assert row["prompt"] == [
        {"role": "user", "content": "As shown in the figure, find the angle x."}
    ]
    held_out = fdata.test_sets(cfg)["geoqa"]
    assert all(isinstance(r["image"], Image.Image) for r in held_out) and len(held_out) == 3
    pool = fdata.training_pool(cfg)
    assert len(pool) == 9 and isinstance(pool[0]["image"], Image.Image)
    seen = {r["image"].tobytes() for r in held_out}
    assert not seen & {img.tobytes() for img in pool["image"]}


def test_gold_comes_from_the_answer_tag_without_the_degree_sign(tmp_path: Path) -> None:
    data = tmp_path / "geoqa"
    path = write_jsonl(data / "train.jsonl", geoqa_rows(6, data))
    train, test = load_source(config_from_dict(geoqa_config(path)).data.sources[0], 0, 0)
    by_image = {r["image"].tobytes(): r["gold"] for r in train}
    assert by_image == {figure(i).tobytes(): str(20 + i) for i in range(6)}


def test_parquet_with_embedded_images(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def png(i: int) -> bytes:
        buffer = io.BytesIO()
        figure(i).save(buffer, format="PNG")
        return buffer.getvalue()

    table = pa.table(
        {
            "problem": [f"Find x ({i})." for i in range(8)],
            "solution": [str(i) for i in range(8)],
            "image": [{"bytes": png(i), "path": f"{i}.png"} for i in range(8)],
        }
    )
    pq.write_table(table, tmp_path / "geo.parquet")
    train, test = load_source(
        config_from_dict(geoqa_config(tmp_path / "geo.parquet")).data.sources[0], 0, 2
    )
    assert len(train) == 6 and all(
        r["image"].tobytes() == figure(int(r["gold"])).tobytes() for r in train + test
    )


def test_hub_dataset_images_pass_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    rows = [
        {"problem": f"Find x ({i}).", "solution": f"<answer>{i}</answer>", "image": figure(i)}
        for i in range(8)
    ]
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: datasets.Dataset.from_list(rows))
    tree = geoqa_config(tmp_path)
    tree["data"]["sources"][0] = {
        **tree["data"]["sources"][0],
        "path": "",
        "hub": "someone/geoqa-like",
    }
    train, _ = load_source(config_from_dict(tree).data.sources[0], 0, 2)
    assert len(train) == 6 and all(isinstance(r["image"], Image.Image) for r in train)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda folder: (folder / "images" / "2.png").unlink(),
            "image file not found: {folder}/images/2.png",
        ),
        (
            lambda folder: (folder / "images" / "2.png").write_text("not a png"),
            "cannot read image {folder}/images/2.png",
        ),
    ],
)
def test_bad_images_name_the_file_and_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage, message
) -> None:
    folder = tmp_path / "geoqa"
    path = write_jsonl(folder / "train.jsonl", geoqa_rows(8, folder))
    damage(folder)
    config = tmp_path / "run.toml"
    source = geoqa_config(path)["data"]["sources"][0]
    config.write_text(
        'model.name = "tiny-vl"\n[federation]\nnum_clients = 2\n[grpo]\nper_device_train_batch_size = 8\n'
        '[data]\ntasks = []\npartition = "iid"\ntest_size = 2\n[[data.sources]]\n'
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in source.items())
    )
    code = main(["run", "--config", str(config), "--out", str(tmp_path / "out"), "--dry-run"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"{path}, line 3" in err and message.format(folder=folder) in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_missing_image_cell_and_skipping(tmp_path: Path) -> None:
    folder = tmp_path / "geoqa"
    rows = geoqa_rows(8, folder)
    rows[5]["image"] = ""
    path = write_jsonl(folder / "train.jsonl", rows)
    with pytest.raises(DataError, match=r"line 6: no image in column 'image'"):
        load_source(config_from_dict(geoqa_config(path)).data.sources[0], 0, 2)
    train, test = load_source(
        config_from_dict(geoqa_config(path, on_bad_rows="skip")).data.sources[0], 0, 2
    )
    assert len(train) + len(test) == 7


def test_image_tasks_need_a_model_that_reads_images(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "run",
            "--set",
            "model.name=tiny-random",
            "--set",
            'data.tasks=["geometry"]',
            "--out",
            str(tmp_path / "out"),
            "--dry-run",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "model.name" in err and "'geometry' asks about images" in err


def test_shipped_geoqa_config_validates_in_a_dry_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """configs/gpu/geoqa_qwen25vl.toml passes every pre-flight check; the two hub look-ups (the
    model id and the dataset) are answered locally, as a machine with the hub cache would answer
    them."""
    import datasets

    from fgrpo.models import availability

    asked: list[str] = []
    monkeypatch.setattr(availability, "_check_hub_id", lambda name, where: asked.append(name))
    rows = [
        {
            "problem": f"In the figure, angle {i}: find x.",
            "solution": f"<answer>{i % 90 + 1}°</answer>",
            "image": figure(i),
        }
        for i in range(300)
    ]
    loads: list[tuple] = []
    monkeypatch.setattr(
        datasets,
        "load_dataset",
        lambda *a, **k: loads.append((a, k)) or datasets.Dataset.from_list(rows),
    )
    config = Path(__file__).resolve().parents[2] / "configs" / "gpu" / "geoqa_qwen25vl.toml"
    out = tmp_path / "out"
    assert main(["run", "--config", str(config), "--out", str(out), "--dry-run"]) == 0
    assert (
        "fgrpo (grpo), model Qwen/Qwen2.5-VL-3B-Instruct, 4 clients, 20 rounds x 8 local steps"
        in capsys.readouterr().out
    )
    assert (
        asked == ["Qwen/Qwen2.5-VL-3B-Instruct"]
        and loads[0][0][0] == "leonardPKU/GEOQA_R1V_Train_8K"
    )
    assert not out.exists()
