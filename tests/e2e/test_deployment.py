"""Deployment: SuperNodes that train on their owners' own files, on a real loopback federation
(flower-superlink + flower-supernode + `flwr run`), with TLS, node authentication and a node
killed mid-round; plus the node-data layer's errors on their own (fast)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from flwr.app import ConfigRecord, Context, Message, RecordDict

from fgrpo.client.app import train
from fgrpo.core.errors import ConfigError
from fgrpo.core.protocol import CONFIG_KEY, LEARNING_RATE_KEY
from fgrpo.data.partitions import node_dataset
from fgrpo.runtime.configs import config_from_dict, load_config
from fgrpo.server.screening import screen_replies
from fgrpo.tasks import get_task
from fgrpo.tasks.sources import DataError

from ..deployment import FAST, make_node_key, make_tls, owner_source, rounds
from ..replies import _as_server_task


def owner_file(folder: Path, name: str, rows: int, seed: int) -> Path:
    """An owner's private prompts: addition problems as JSON lines (prompt, answer)."""
    path = folder / f"{name}.jsonl"
    problems = get_task("addition").generate(rows, seed, share="train", unique=True)
    path.write_text(
        "".join(
            json.dumps({"prompt": p["prompt"][-1]["content"], "answer": p["answer"]}) + "\n"
            for p in problems
        )
    )
    return path


def node(client_id: str, path: Path) -> dict[str, str]:
    return {"client-id": client_id, "data-path": str(path)}


# --- the node-data layer -------------------------------------------------------------------


def test_a_node_trains_on_exactly_the_rows_of_its_own_file(tmp_path):
    cfg = load_config(None, ["data.tasks=addition"])
    path = owner_file(tmp_path, "a", 5, seed=1)
    rows = node_dataset(cfg, node("a", path))
    assert sorted(r["prompt"][-1]["content"] for r in rows) == sorted(
        json.loads(line)["prompt"] for line in path.read_text().splitlines()
    )
    assert set(rows["task"]) == {"addition"}
    assert len(node_dataset(cfg, {"partition-id": 1})) > 0  # simulation: the partition, as before


def test_a_node_reads_its_file_as_the_data_source_it_names_wherever_the_servers_copy_is(tmp_path):
    server_rows = tmp_path / "server_qa.jsonl"  # the server's own rows (its test prompts)
    server_rows.write_text('{"question": "2+2?", "solution": "#### 4"}\n')
    tree = {
        "data": {
            "tasks": ["addition"],
            "sources": [
                {
                    "name": "qa",
                    "path": str(server_rows),
                    "prompt_column": "question",
                    "answer_column": "solution",
                    "checker": "exact",
                }
            ],
        }
    }
    owner = tmp_path / "owner.jsonl"
    owner.write_text(
        '{"question": "3+4?", "solution": "#### 7", "hint": "add"}\n'
        '{"question": "5+1?", "solution": "#### 6", "hint": "add"}\n'
    )
    cfg = config_from_dict(tree)
    rows = node_dataset(cfg, {"data-path": str(owner), "data-task": "qa"})
    assert (
        sorted(rows["gold"]) == ["6", "7"]
        and set(rows["task"]) == {"qa"}
        and rows["hint"] == ["add", "add"]
    )
    server_rows.unlink()  # a node's machine has no copy of the server's file
    with pytest.raises(ConfigError, match="file not found"):
        config_from_dict(tree)
    assert config_from_dict(tree, local_files=False).data.sources[0].path == str(server_rows)


def test_a_node_trains_its_data_config_files_source_with_its_own_reward_function(
    tmp_path, monkeypatch
):
    from fgrpo.data.partitions import node_training_config
    from fgrpo.tasks.rewards import reward_functions

    file = owner_source(tmp_path / "owner", ("question", "solution"), "Worked out: #### {}", 0.25)
    monkeypatch.chdir(
        tmp_path
    )  # neither the owner's folder nor the node's: the file's paths start at its own
    cfg = load_config(None, ["data.tasks=addition,sorting"])
    here = {"client-id": "a", "data-config": str(file)}
    rows = node_dataset(cfg, here)
    assert (
        len(rows) == 4
        and set(rows["task"]) == {"addition"}
        and all(g.isdigit() for g in rows["gold"])
    )
    mine = node_training_config(cfg, here)
    assert mine.data.tasks == [] and [s.name for s in mine.data.sources] == ["addition"]
    assert mine.data.sources[0].rewards == [
        f"{(tmp_path / 'owner' / 'scoring.py').resolve()}:score"
    ]
    [reward] = reward_functions(mine)
    assert reward(prompts=["p"], completions=["x"], task=["addition"], gold=["1"]) == [0.25]
    assert (
        node_training_config(cfg, node("a", tmp_path / "owner" / "rows.jsonl")) is cfg
    )  # data-path: as before
    sorting = node_dataset(cfg, {**here, "data-task": "sorting"})
    assert set(sorting["task"]) == {"sorting"}


def test_a_bad_data_config_is_one_line_naming_the_file_and_key(tmp_path):
    cfg = load_config(None, ["data.tasks=addition"])
    file = owner_source(tmp_path / "owner", ("prompt", "answer"), "{}", 1.0)
    text = file.read_text()
    cases = {
        "file not found": None,
        "expected one [source] table": "name = 'addition'\n",
        "source.colums: unknown key": text + "colums = {a = 'b'}\n",
        "one of addition; got 'qa'": text.replace('name = "addition"', 'name = "qa"'),
        "source.rewards[0]: cannot import reward": text.replace("scoring.py", "nowhere.py"),
        "source.path: file not found": text.replace("rows.jsonl", "gone.jsonl"),
    }
    for message, content in cases.items():
        target = tmp_path / "missing.toml" if content is None else file
        if content is not None:
            file.write_text(content)
        with pytest.raises(ConfigError, match=re.escape(message)) as err:
            node_dataset(cfg, {"data-config": str(target)})
        assert "\n" not in str(err.value) and target.name in str(err.value)


def test_a_node_with_neither_a_data_path_nor_a_partition_id_is_refused():
    cfg = load_config(None, ["data.tasks=addition"])
    with pytest.raises(ConfigError, match="neither data-path .* nor partition-id") as err:
        node_dataset(cfg, {"client-id": "a"})
    assert err.value.key == "node config data-path" and "\n" not in str(err.value)


def test_bad_node_data_is_one_error_naming_the_file_row_or_key(tmp_path):
    cfg = load_config(None, ["data.tasks=addition"])
    with pytest.raises(DataError, match="missing.jsonl: file not found"):
        node_dataset(cfg, node("a", tmp_path / "missing.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "1+1?", "answer": "2"}\n{"prompt": "", "answer": "3"}\n')
    with pytest.raises(DataError, match="bad.jsonl, line 2: empty prompt"):
        node_dataset(cfg, node("a", bad))
    two = load_config(None, ["data.tasks=addition,sorting"])
    with pytest.raises(DataError, match="data-task: name the task"):
        node_dataset(two, node("a", owner_file(tmp_path, "a", 2, seed=1)))


def test_a_client_whose_data_fails_replies_with_an_error_the_server_logs_under_its_ids(tmp_path):
    cfg = load_config(None, ["data.tasks=addition"])
    _as_server_task()
    msg = Message(
        RecordDict(
            {
                "config": ConfigRecord(
                    {CONFIG_KEY: cfg.to_json(), "server-round": 1, LEARNING_RATE_KEY: 1e-3}
                )
            }
        ),
        dst_node_id=5,
        message_type="train",
    )
    context = Context(
        run_id=1,
        node_id=5,
        node_config=node("owner-x", tmp_path / "nope.jsonl"),
        state=RecordDict(),
        run_config={},
    )
    answer = train(msg, context)  # the failure is the reply, naming this client and the cause
    _, failures = screen_replies([answer], {})
    assert failures[0]["client-id"] == "owner-x" and failures[0]["kind"] == "error"
    assert "nope.jsonl: file not found" in failures[0]["reason"]


# --- real deployments on loopback --------------------------------------------------------


def test_two_supernodes_with_their_own_data_configs_and_reward_functions_train_two_rounds(
    deploy, tmp_path
):
    deployment = deploy()
    deployment.start_superlink()
    for owner, columns, gold, reward, rows in (
        ("a", ("question", "solution"), "Worked out: #### {}", 0.25, 4),
        ("b", ("prompt", "answer"), "{}", 0.75, 6),
    ):
        config = owner_source(
            tmp_path / owner, columns, gold, reward, rows
        )  # as the README's step 5 shows
        deployment.start_supernode(
            f"node-{owner}", {"client-id": f"owner-{owner}", "data-config": str(config)}
        )
    deployment.wait_for_nodes(2)
    out = tmp_path / "run"
    # no probe rows held out (fedavg asks for no signal): every row of each file trains
    result = deployment.run({**FAST, "data.probe_size": 0, "output.dir": str(out)}, timeout=400)
    assert result.returncode == 0, result.stdout[-4000:]
    records = rounds(out)
    assert [r["round"] for r in records] == [1, 2]
    for record in records:  # each node trained on its own file, scored by its own reward function
        assert {c["client-id"]: c["num-examples"] for c in record["clients"]} == {
            "owner-a": 4,
            "owner-b": 6,
        }
        assert {c["client-id"]: c["reward"] for c in record["clients"]} == {
            "owner-a": 0.25,
            "owner-b": 0.75,
        }
        assert record["failures"] == []
    assert (out / "final" / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_tls_with_node_authentication_admits_the_registered_node_and_refuses_an_unknown_one(
    deploy, tmp_path
):
    deployment = deploy(tls=make_tls(tmp_path))
    deployment.start_superlink("--enable-supernode-auth")
    known_key, known_pub = make_node_key(tmp_path, "known")
    stranger_key, _ = make_node_key(tmp_path, "stranger")
    registered = deployment.flwr("supernode", "register", str(known_pub), "loopback")
    assert registered.returncode == 0 and "registered successfully" in registered.stdout, (
        registered.stdout
    )
    deployment.start_supernode(
        "node-known",
        node("owner-known", owner_file(tmp_path, "k", 4, seed=1)),
        "--auth-supernode-private-key",
        str(known_key),
    )
    stranger = deployment.start_supernode(
        "node-stranger",
        node("owner-stranger", owner_file(tmp_path, "s", 4, seed=2)),
        "--auth-supernode-private-key",
        str(stranger_key),
    )
    deployment.wait_for_nodes(1)
    out = tmp_path / "run"
    result = deployment.run(
        {
            **FAST,
            "federation.num_clients": 1,
            "federation.min_clients": 1,
            "federation.rounds": 1,
            "output.dir": str(out),
        },
        timeout=400,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    assert [[c["client-id"] for c in r["clients"]] for r in rounds(out)] == [["owner-known"]]
    assert deployment.log("superlink").count("Activated node_id=") == 1
    assert stranger.poll() is not None, "the unknown SuperNode must be refused and give up"
    assert "Failed to activate SuperNode" in deployment.log("node-stranger")
    assert "No SuperNode found with the given public key" in deployment.log("superlink")
    assert "insecure" not in deployment.log("superlink").lower()  # TLS was on
    assert "owner-stranger" not in (out / "metrics.jsonl").read_text()


@pytest.mark.slow
def test_a_node_killed_mid_round_is_logged_under_its_ids_and_the_run_finishes(deploy, tmp_path):
    deployment = deploy()
    deployment.start_superlink()
    deployment.start_supernode("node-a", node("owner-a", owner_file(tmp_path, "a", 4, seed=1)))
    victim = deployment.start_supernode(
        "node-b", node("owner-b", owner_file(tmp_path, "b", 6, seed=2))
    )
    deployment.wait_for_nodes(2)
    out = tmp_path / "run"
    overrides = {
        **FAST,
        "federation.min_clients": 1,
        "federation.rounds": 3,
        "output.dir": str(out),
    }
    run = deployment.start_flwr("run", *deployment.run_args(overrides))
    deadline = time.monotonic() + 300
    while (
        deployment.log("node-b").count("Start `flwr-clientapp` process") < 2
    ):  # round 2 is training
        assert time.monotonic() < deadline and run.poll() is None, deployment.log("run")[-3000:]
        time.sleep(0.2)
    deployment.kill(victim)
    run.wait(timeout=600)
    assert run.returncode == 0, deployment.log("run")[-4000:]
    records = rounds(out)
    assert [r["round"] for r in records] == [1, 2, 3]
    assert {c["client-id"] for c in records[0]["clients"]} == {"owner-a", "owner-b"}
    lost = [f for r in records[1:] for f in r["failures"]]
    assert lost and all(f["client-id"] == "owner-b" for f in lost)
    node_b = {f["node"] for f in lost}
    assert len(node_b) == 1 and str(node_b.pop()) in deployment.log(
        "node-b"
    )  # the SuperNode ID it announced
    assert all([c["client-id"] for c in r["clients"]] == ["owner-a"] for r in records[2:])
