"""Training pool, held-out tests and non-IID partitions (flwr-datasets): determinism and shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from fgrpo.cli.data import describe_partitions
from fgrpo.cli.main import main
from fgrpo.core.config import Config
from fgrpo.core.errors import ConfigError
from fgrpo.data import partitions as fdata
from fgrpo.data.partitions import (
    _partitioner_for,
    client_partition,
    prompt_key,
    task_counts,
    training_pool,
)
from fgrpo.runtime.configs import load_config


def cfg_with(*overrides: str):
    return load_config(
        None, ["federation.num_clients=4", "data.train_size=200", "data.test_size=10", *overrides]
    )


def test_pool_is_deterministic_and_excludes_test_prompts() -> None:
    cfg = cfg_with()
    pool = training_pool(cfg)
    assert pool.to_list() == training_pool(cfg).to_list()
    held_out = {prompt_key(r) for rows in fdata.test_sets(cfg).values() for r in rows}
    assert held_out and not held_out & {prompt_key(r) for r in pool}
    assert set(pool["task"]) == set(cfg.data.tasks)
    other = training_pool(cfg_with("seed=1"))
    assert other.to_list() != pool.to_list()


@pytest.mark.parametrize("partition", ["iid", "dirichlet", "pathological", "size-skew"])
def test_partitions_are_disjoint_cover_and_repeat(partition: str) -> None:
    cfg = cfg_with(f'data.partition="{partition}"')
    parts = [client_partition(cfg, pid) for pid in range(4)]
    keys = [prompt_key(r) + r["task"] for p in parts for r in p]
    assert len(keys) == len(set(keys))  # no prompt goes to two clients
    if partition != "pathological":
        assert len(keys) == len(_partitioner_for(cfg.to_json()).dataset)
    _partitioner_for.cache_clear()  # a fresh process rebuilds exactly the same partitions
    assert [client_partition(cfg, pid).to_list() for pid in range(4)] == [
        p.to_list() for p in parts
    ]


def test_dirichlet_depends_on_seed_and_alpha() -> None:
    base = task_counts(cfg_with("data.alpha=0.1"))
    assert task_counts(cfg_with("data.alpha=0.1", "seed=5")) != base
    assert task_counts(cfg_with("data.alpha=100.0")) != base


def test_iid_mixes_every_task_and_small_alpha_concentrates() -> None:
    def tasks_per_client(counts):
        return [sum(1 for v in c.values() if v) for c in counts]

    def top_share(counts):  # mean share of a client's largest task
        return sum(max(c.values()) / sum(c.values()) for c in counts) / len(counts)

    iid, skewed = (
        task_counts(cfg_with('data.partition="iid"')),
        task_counts(cfg_with("data.alpha=0.1")),
    )
    assert all(n == len(Config().data.tasks) for n in tasks_per_client(iid))
    assert top_share(skewed) > top_share(iid) + 0.15


def test_pathological_gives_k_tasks_per_client() -> None:
    for k in (1, 2):
        counts = task_counts(
            cfg_with('data.partition="pathological"', f"data.tasks_per_client={k}")
        )
        assert all(sum(1 for v in c.values() if v) == k for c in counts)


def test_size_skew_gives_growing_partitions() -> None:
    sizes = [sum(c.values()) for c in task_counts(cfg_with('data.partition="size-skew"'))]
    assert sizes == sorted(sizes) and sizes[-1] > 3 * sizes[0]


def test_empty_partition_is_a_clear_error() -> None:
    cfg = load_config(
        None, ["federation.num_clients=12", 'data.partition="size-skew"', "data.train_size=20"]
    )
    with pytest.raises(ConfigError, match="size-skew partitioning failed"):
        client_partition(cfg, 0)


def test_describe_dirichlet_vs_iid_visibly_differs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    outputs = {}
    for name, setting in (("iid", 'data.partition="iid"'), ("dirichlet", "data.alpha=0.1")):
        png = tmp_path / f"{name}.png"
        assert (
            main(
                [
                    "data",
                    "describe",
                    "--set",
                    "federation.num_clients=4",
                    "--set",
                    'data.partition="dirichlet"',
                    "--set",
                    setting,
                    "--heatmap",
                    str(png),
                ]
            )
            == 0
        )
        outputs[name] = capsys.readouterr().out
        assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
    iid, dirichlet = outputs["iid"], outputs["dirichlet"]
    assert "partition: iid" in iid and "partition: dirichlet alpha=0.1" in dirichlet

    def client_rows(text: str) -> list[list[int]]:
        lines = text.splitlines()
        start = next(i for i, line in enumerate(lines) if line.strip().startswith("client"))
        return [[int(x) for x in line.split()[1:]] for line in lines[start + 1 : start + 5]]

    iid_rows, dir_rows = client_rows(iid), client_rows(dirichlet)
    assert iid_rows != dir_rows
    # IID: every client holds every default task; Dirichlet(0.1): some clients miss tasks entirely.
    n = len(Config().data.tasks)
    assert all(row[-1] == n for row in iid_rows)
    assert any(row[-1] < n for row in dir_rows) and any(0 in row[:n] for row in dir_rows)
    text, names, counts = describe_partitions(cfg_with("data.alpha=0.1"))
    assert names == cfg_with().data.tasks and len(counts) == 4


def test_describe_reports_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "describe", "--set", 'data.partition="zipf"']) == 2
    assert "data.partition" in capsys.readouterr().err
