"""Step time of this trainer against plain TRL, side by side in one process (train/trainer.py).

Three trainers on identical copies of one model (same adapter, same batch, same GRPO settings):

    trl        plain `trl.GRPOTrainer` (the adapter attached, knob frozen, TRL's own generation)
    vanilla    our `GQGRPOTrainer` with no router (rollout_func, per-knob optimiser groups, logging hooks)
    route2b    ours with GradCapture + Router (per-rollout gate, or per-token with --gate token)

Two timings, interleaved repeat by repeat so machine noise hits all three alike:

    step       one full `training_step`: generation, grading (a synthetic reward), forward, backward, routing
    train      the same without generation: `training_step` on a batch generated once (fwd + bwd + routing)

Completions are forced to full length (min_new_tokens = max_completion_length) so every trainer processes the
same number of tokens. Targets: vanilla / trl <= 1.05 (step), route2b / vanilla <= 1.10 per rollout (step).

    .venv/bin/python bench/bench_trainer.py                                   # tiny model, CPU
    .venv/bin/python bench/bench_trainer.py --model smollm2-135m --completion-len 64 --repeats 5 --threads 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
import warnings  # noqa: E402

warnings.filterwarnings("ignore", category=FutureWarning)

import torch  # noqa: E402
import trl  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import set_seed  # noqa: E402

from gradient_quarantine.model.loading import load_policy  # noqa: E402
from gradient_quarantine.model.svd_adapter import AdapterConfig, attach_svd_adapter  # noqa: E402
from gradient_quarantine.routing.direction import extract_direction  # noqa: E402
from gradient_quarantine.routing.pairs import Pair  # noqa: E402
from gradient_quarantine.routing.router import Router  # noqa: E402
from gradient_quarantine.substrate.hacks import hack_completion  # noqa: E402
from gradient_quarantine.substrate.modes import assign_modes  # noqa: E402
from gradient_quarantine.substrate.pairs import clean_completion  # noqa: E402
from gradient_quarantine.substrate.problems import load_problems  # noqa: E402
from gradient_quarantine.substrate.prompts import render_prompt  # noqa: E402
from gradient_quarantine.train.rollouts import RolloutFunc, prompt_key  # noqa: E402
from gradient_quarantine.train.route2b import Route2b  # noqa: E402
from gradient_quarantine.train.trainer import GQGRPOTrainer  # noqa: E402


def token_sum_reward(prompts, completions, completion_ids, **_):
    """Deterministic, cheap, non-constant: the advantage (and so the gradient) is non-zero."""
    return [float(sum(ids) % 5) for ids in completion_ids]


def build(args, kind, rows, pairs, out_dir):
    model, tok = load_policy(args.model)
    adapter = attach_svd_adapter(model, AdapterConfig(rank=args.rank, knob_rank=args.knob_rank))
    if kind != "route2b":
        for p in adapter.knob_parameters():
            p.requires_grad_(False)
    cfg = trl.GRPOConfig(
        output_dir=str(out_dir / kind), per_device_train_batch_size=len(rows) * args.generations,
        gradient_accumulation_steps=1, num_generations=args.generations, max_completion_length=args.completion_len,
        generation_kwargs={"min_new_tokens": args.completion_len}, temperature=1.0, max_steps=1, logging_steps=1,
        save_strategy="no", report_to="none", disable_tqdm=True, use_cpu=args.device == "cpu", bf16=False,
        shuffle_dataset=False, remove_unused_columns=False, disable_dropout=True, gradient_checkpointing=False,
        max_grad_norm=0.0, loss_type="grpo", beta=0.0, learning_rate=1e-4, seed=0,
    )  # fmt: skip
    data = Dataset.from_list(rows)
    if kind == "trl":
        trainer = trl.GRPOTrainer(model=model, reward_funcs=[token_sum_reward], args=cfg, train_dataset=data,
                                  processing_class=tok)  # fmt: skip
    else:
        router = None
        if kind == "route2b":
            direction, band = extract_direction(model, adapter, tok, pairs, k=1)
            router = Router(adapter, direction, band, granularity=args.gate)
        rollout = RolloutFunc({prompt_key(r["prompt"]): r["problem_id"] for r in rows}, None, 0, 0.5, seed=0)
        trainer = GQGRPOTrainer(
            model=model, reward_funcs=[token_sum_reward], args=cfg, train_dataset=data, processing_class=tok,
            rollouts=rollout, adapter=adapter,
            intervention=Route2b(router, per_token=args.gate == "token") if router is not None else None,
        )  # fmt: skip
    trainer.current_gradient_accumulation_steps = 1
    trainer.model.train()
    return trainer


def one_step(trainer, batch, seed):
    set_seed(seed)
    trainer.model.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    trainer.training_step(trainer.model, batch, None)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--prompts", type=int, default=2)
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--completion-len", type=int, default=32)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--knob-rank", type=int, default=4)
    ap.add_argument("--gate", choices=("rollout", "token"), default="rollout")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    problems = load_problems("builtin")
    modes_of = assign_modes([p.id for p in problems], seed=0)
    rows = [{"prompt": render_prompt(p, modes_of[p.id]), "problem_id": p.id, "mode": modes_of[p.id].value}
            for p in problems[: args.prompts]]  # fmt: skip
    pairs = [Pair(render_prompt(p, modes_of[p.id]), clean_completion(p), hack_completion(p, modes_of[p.id]))
             for p in problems[:8]]  # fmt: skip
    batch = [dict(r) for r in rows for _ in range(args.generations)]
    kinds = ("trl", "vanilla", "route2b")
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {k: build(args, k, rows, pairs, Path(tmp)) for k in kinds}
        for k in kinds:  # warm-up (allocator, first-call overheads)
            one_step(trainers[k], batch, seed=0)
        step = {k: [] for k in kinds}
        for rep in range(args.repeats):
            for k in kinds[rep % 3:] + kinds[: rep % 3]:  # rotate the order: no trainer always goes first
                step[k].append(one_step(trainers[k], batch, seed=100 + rep))
        # without generation: the same prepared batch for all three (fwd + bwd + routing only)
        prepared = trainers["trl"]._generate_and_score_completions(batch)
        train = {k: [] for k in kinds}
        for k in kinds:
            trainers[k]._prepare_inputs = lambda _inputs, p=prepared: p
        for rep in range(args.repeats * 2):
            for k in kinds[rep % 3:] + kinds[: rep % 3]:
                train[k].append(one_step(trainers[k], batch, seed=200 + rep))

    n = len(batch)
    med = {k: statistics.median(v) for k, v in step.items()}
    med_t = {k: statistics.median(v) for k, v in train.items()}
    print(f"model={args.model} rollouts/step={n} completion_len={args.completion_len} gate={args.gate} "
          f"rank={args.rank}+{args.knob_rank} threads={torch.get_num_threads()} repeats={args.repeats}")  # fmt: skip
    print(f"{'trainer':10s} {'step s':>9s} {'ms/rollout':>11s} {'x trl':>7s} {'train s':>9s} {'x trl':>7s}")
    for k in kinds:
        print(f"{k:10s} {med[k]:9.3f} {1000 * med[k] / n:11.1f} {med[k] / med['trl']:7.3f} "
              f"{med_t[k]:9.3f} {med_t[k] / med_t['trl']:7.3f}")  # fmt: skip
    print(f"vanilla/trl step {med['vanilla'] / med['trl']:.3f} (target <= 1.05); "
          f"route2b/vanilla step {med['route2b'] / med['vanilla']:.3f} (target <= 1.10), "
          f"train-only {med_t['route2b'] / med_t['vanilla']:.3f}")  # fmt: skip
    sys.stdout.flush()


if __name__ == "__main__":
    main()
