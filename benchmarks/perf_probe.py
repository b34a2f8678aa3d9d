"""In-process measurements of benchmarks/perf.py, run in a fresh child process (one per part) so
each starts from a clean heap and benchmarks whichever fgrpo source is on PYTHONPATH.

    python benchmarks/perf_probe.py step|bytes|real|autocast CONFIG OUT_JSON [--steps N] [--set KEY=VALUE ...]

step:  (c) one client's GRPO step, exactly as a client runs it (train_locally on its partition, one
       torch thread), against plain ``model.generate`` of the same batch (the same prompts,
       num_generations completions each, max_completion_length new tokens, TRL's sampling
       settings); and a cProfile of the GRPO steps split into generation, reward, loss forward,
       backward, optimizer and the rest.
bytes: (b) what one client sends per round (fp32 adapter, bf16 update) against the full model.
real:  (benchmarks/perf_real.py) a GRPO step against plain generate + forward + backward of its
       batch, the arithmetic the step cannot avoid.
autocast: (benchmarks/perf_real.py) that forward and backward in float32 and under bf16 autocast.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import time
import warnings
from pathlib import Path

import torch

# (label, file suffix, function name) of the profile entries that make up a GRPO step
STEP_PARTS = [
    ("generation", "transformers/generation/utils.py", "generate"),
    ("reward", "trl/trainer/grpo_trainer.py", "_calculate_rewards"),
    ("loss forward", "trl/trainer/grpo_trainer.py", "compute_loss"),
    ("backward", "torch/_tensor.py", "backward"),
    ("optimizer step", "accelerate/optimizer.py", "step"),
]


def _client_setup(config: str, overrides: list[str]):
    from fgrpo.data.partitions import client_partition
    from fgrpo.models.lora import cached_adapter_model
    from fgrpo.runtime.configs import load_config
    from fgrpo.tasks.rewards import reward_functions

    cfg = load_config(config, overrides)
    model, tokenizer = cached_adapter_model(cfg.model)
    return cfg, client_partition(cfg, 0), model, tokenizer, reward_functions(cfg)


def _cumulative(stats: pstats.Stats, suffix: str, name: str) -> float:
    """Cumulative seconds of the outermost calls of one function (recursion counted once)."""
    return sum(
        entry[3]
        for (path, _, func), entry in stats.stats.items()  # type: ignore[attr-defined]
        if func == name and path.endswith(suffix)
    )


def _breakdown(stats: pstats.Stats, total: float, steps: int) -> dict[str, float]:
    """Seconds per GRPO step of each part; ``everything else`` is the remainder."""
    parts = {label: _cumulative(stats, suffix, name) / steps for label, suffix, name in STEP_PARTS}
    parts["everything else"] = max(0.0, total / steps - sum(parts.values()))
    return {k: round(v, 4) for k, v in parts.items()}


def _step_batch(tokenizer, dataset, cfg):
    """One GRPO step's prompts (each ``num_generations`` times, left-padded, through the chat
    template) and TRL's sampling settings for them."""
    from fgrpo.client.grpo import grpo_args, prompts_per_step

    settings = cfg.grpo_settings()
    args = grpo_args(cfg, "/tmp", cfg.seed, 1)
    rows = dataset.select(range(prompts_per_step(settings)))
    texts = [
        tokenizer.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True)
        for r in rows
    ]
    texts = [t for t in texts for _ in range(args.num_generations)]
    encoded = tokenizer(
        texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False
    )
    sampling = {
        "max_new_tokens": args.max_completion_length,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "do_sample": True,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "top_k": args.top_k,
        "min_p": args.min_p,
        "repetition_penalty": args.repetition_penalty,
    }
    return encoded, sampling


def _plain_generate(model, tokenizer, dataset, cfg, repeats: int) -> list[float]:
    """Seconds of ``model.generate`` for one GRPO step's batch, with TRL's sampling settings."""
    encoded, sampling = _step_batch(tokenizer, dataset, cfg)
    model.eval()
    seconds = []
    with torch.no_grad():
        for _ in range(repeats + 1):  # the first call warms up
            started = time.perf_counter()
            model.generate(**encoded, **sampling)
            seconds.append(time.perf_counter() - started)
    model.train()
    return seconds[1:]


def _plain_step(model, tokenizer, dataset, cfg) -> dict[str, float]:
    """The arithmetic one GRPO step cannot avoid, on its batch: ``model.generate``, one forward
    pass over prompt + completion scoring the completion's tokens, and its backward."""
    encoded, sampling = _step_batch(tokenizer, dataset, cfg)
    model.eval()
    started = time.perf_counter()
    with torch.no_grad():
        sequences = model.generate(**encoded, **sampling)
    generate = time.perf_counter() - started
    model.train()
    width = encoded["input_ids"].shape[1]
    completion = sequences[:, width:]
    mask = torch.cat([encoded["attention_mask"], torch.ones_like(completion)], dim=1)
    started = time.perf_counter()
    logits = model(input_ids=sequences, attention_mask=mask, logits_to_keep=completion.shape[1] + 1)
    scored = logits.logits[:, :-1].log_softmax(-1).gather(-1, completion.unsqueeze(-1)).sum()
    forward = time.perf_counter() - started
    started = time.perf_counter()
    (-scored).backward()
    backward = time.perf_counter() - started
    model.zero_grad(set_to_none=True)
    return {
        "generate": generate,
        "forward": forward,
        "backward": backward,
        "prompt_tokens": int(encoded["attention_mask"].sum(1).float().mean()),
        "completion_tokens": completion.shape[1],
    }


def _profiled_round(
    model, tokenizer, dataset, rewards, cfg, steps: int
) -> tuple[pstats.Stats, float]:
    """A cProfile of one round of ``steps`` GRPO steps, and its wall seconds."""
    from fgrpo.client.grpo import train_locally

    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    train_locally(model, tokenizer, dataset, rewards, cfg, seed=99, steps=steps)
    profiler.disable()
    return pstats.Stats(profiler), time.perf_counter() - started


def probe_step(config: str, overrides: list[str], steps: int) -> dict:
    from fgrpo.client.grpo import train_locally

    torch.set_num_threads(1)  # as a simulated client with federation.client_cpus = 1
    cfg, dataset, model, tokenizer, rewards = _client_setup(config, overrides)
    train_locally(model, tokenizer, dataset, rewards, cfg, seed=0, steps=1)  # warm-up
    rounds, generate = [], []
    for repeat in range(
        3
    ):  # interleaved: a GRPO round of `steps` steps, then as many plain generates
        rounds.append(
            train_locally(
                model, tokenizer, dataset, rewards, cfg, seed=1 + repeat, steps=steps
            ).seconds
            / steps
        )
        generate += _plain_generate(model, tokenizer, dataset, cfg, steps)
    stats, profiled = _profiled_round(model, tokenizer, dataset, rewards, cfg, steps)
    step, plain = statistics.median(rounds), statistics.median(generate)
    breakdown = _breakdown(stats, profiled, steps)
    top = sorted(
        ((e[2], f"{Path(p).name}:{n}") for (p, _, n), e in stats.stats.items()), reverse=True
    )[:12]  # type: ignore[attr-defined]
    settings = cfg.grpo_settings()
    return {
        "batch": f"{settings['per_device_train_batch_size']} completions ({settings['num_generations']} per prompt) "
        f"x {settings['max_completion_length']} tokens max",
        "grpo_step_seconds": round(step, 4),
        "generate_seconds": round(plain, 4),
        "ratio": round(step / plain, 3),
        "round_step_seconds": [round(x, 4) for x in rounds],
        "profiled_step_seconds": round(profiled / steps, 4),
        "breakdown_profiled": breakdown,
        "top_self_time": [
            {"function": name, "seconds_per_step": round(t / steps, 4)} for t, name in top
        ],
    }


def probe_real(config: str, overrides: list[str], steps: int, repeats: int) -> dict:
    """(benchmarks/perf_real.py) One GRPO step of ``config`` as a client runs it, against the plain
    generate + forward + backward of the same batch, interleaved; then one profiled round."""
    from fgrpo.client.grpo import train_locally

    torch.set_num_threads(1)  # federation.client_cpus = 1
    cfg, dataset, model, tokenizer, rewards = _client_setup(config, overrides)
    train_locally(model, tokenizer, dataset, rewards, cfg, seed=0, steps=1)  # warm-up
    _plain_step(model, tokenizer, dataset, cfg)
    rounds, plains = [], []
    for repeat in range(repeats):
        stats = train_locally(model, tokenizer, dataset, rewards, cfg, seed=1 + repeat, steps=steps)
        rounds.append({"step": stats.seconds / steps, "generate": stats.generate_seconds / steps})
        plains += [_plain_step(model, tokenizer, dataset, cfg) for _ in range(steps)]
    stats, profiled = _profiled_round(model, tokenizer, dataset, rewards, cfg, steps)

    def median(rows: list[dict], key: str) -> float:
        return round(statistics.median(r[key] for r in rows), 3)

    plain = {k: median(plains, k) for k in ("generate", "forward", "backward")}
    plain["total"] = round(sum(plain.values()), 3)
    return {
        "step_seconds": median(rounds, "step"),
        "step_generate_seconds": median(rounds, "generate"),
        "plain": plain,
        "ratio": round(median(rounds, "step") / plain["total"], 3),
        "prompt_tokens": plains[0]["prompt_tokens"],
        "completion_tokens": median(plains, "completion_tokens"),
        "step_seconds_each": [round(r["step"], 3) for r in rounds],
        "profile": _breakdown(stats, profiled, steps),
    }


def probe_autocast(config: str, overrides: list[str]) -> dict:
    """(benchmarks/perf_real.py) The forward and backward of one step's batch in float32 and under
    bfloat16 autocast (what ``grpo.bf16 = true`` turns on), after a warm-up of each."""
    torch.set_num_threads(1)
    cfg, dataset, model, tokenizer, _ = _client_setup(config, overrides)
    encoded, sampling = _step_batch(tokenizer, dataset, cfg)
    with torch.no_grad():
        sequences = model.generate(**encoded, **sampling)
    keep = sequences.shape[1] - encoded["input_ids"].shape[1] + 1
    seconds: dict[str, dict[str, float]] = {}
    for label, enabled in (("float32", False), ("bf16 autocast", True)):
        for _ in range(2):  # the second of each is kept
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
                started = time.perf_counter()
                logits = model(input_ids=sequences, logits_to_keep=keep).logits
                forward = time.perf_counter() - started
                loss = logits.float().log_softmax(-1).mean()
            started = time.perf_counter()
            loss.backward()
            backward = time.perf_counter() - started
            model.zero_grad(set_to_none=True)
        seconds[label] = {"forward": round(forward, 3), "backward": round(backward, 3)}
    return {
        "native_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "batch": list(sequences.shape),
        "seconds": seconds,
    }


def probe_bytes(config: str, overrides: list[str]) -> dict:
    import numpy as np

    from fgrpo.models.transport import adapter_state, reply_record, to_arrayrecord

    cfg, _, model, _, _ = _client_setup(config, overrides)
    sent = adapter_state(model)
    new = {
        k: v + np.float32(1e-3) for k, v in sent.items()
    }  # any update: sizes do not depend on values
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())

    def size(record) -> int:
        return sum(len(array.data) for array in record.values())

    down = size(to_arrayrecord(sent))
    fp32, bf16 = size(reply_record(new, sent, "fp32")), size(reply_record(new, sent, "bf16"))
    return {
        "model": cfg.model.name,
        "model_parameters": sum(p.numel() for p in model.parameters()),
        "adapter_parameters": int(sum(v.size for v in sent.values())),
        "model_bytes_fp32": model_bytes,
        "down_bytes_per_client_round": down,
        "up_bytes_fp32": fp32,
        "up_bytes_bf16_delta": bf16,
        "up_fp32_over_model": round(fp32 / model_bytes, 4),
        "up_bf16_over_model": round(bf16 / model_bytes, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["step", "bytes", "real", "autocast"])
    parser.add_argument("config")
    parser.add_argument("out")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.what == "real":
        result = probe_real(args.config, args.overrides, args.steps, args.repeats)
    elif args.what == "autocast":
        result = probe_autocast(args.config, args.overrides)
    elif args.what == "step":
        result = probe_step(args.config, args.overrides, args.steps)
    else:
        result = probe_bytes(args.config, args.overrides)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
