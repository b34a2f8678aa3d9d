"""benchmarks/point_breakdown.py: a sweep point's wall time split, checked by hand on a made-up
run."""

import json

from fgrpo.analysis import point_breakdown


def test_a_point_splits_into_start_up_grpo_evaluation_and_rest(tmp_path, monkeypatch):
    run = tmp_path / "seed=0"
    run.mkdir()
    (run / "config.toml").write_text(
        '[strategy]\nname = "fedavg"\n[federation]\nnum_clients = 4\nclient_cpus = 1.0\n'
    )
    (run / "summary.json").write_text(json.dumps({"seconds": 26.0}))  # 2 s outside its rounds
    (run / "resources.json").write_text(json.dumps({"attempt": "new"}))
    rounds = [(1, 10.0, None), (2, 9.0, {"macro": 0.5}), (3, 5.0, None)]  # (round, seconds, eval)
    (run / "metrics.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "round": r,
                    "seconds": s,
                    "eval": e,
                    "clients": [{}] * 4,
                    "train": {"train-seconds": 2.0, "generate-seconds": 0.5},
                }
            )
            + "\n"
            for r, s, e in rounds
        )
    )
    # 4 clients on a 2-core machine's 2 workers: 2 each
    (tmp_path / "sweep.json").write_text(
        json.dumps({"machine": {"cpus": 2}, "points": [{"name": "seed=0", "seconds": 30.0}]})
    )
    [got] = point_breakdown.sweep_points(tmp_path)
    # training 2 x 2 s per round; overheads 6, 5, 1 s: round 3's 1 s is the plain round's
    assert got == {
        "wall": 30.0,
        "outside the run": 4.0,
        "round 0 and saving": 2.0,
        "GRPO": 12.0,
        "of which generate": 3.0,
        "evaluation": 4.0,
        "worker start-up": 5.0,
        "rest": 3.0,
    }
    (run / "resources.json").write_text(json.dumps({"attempt": "resume"}))
    assert point_breakdown.sweep_points(tmp_path) == []
