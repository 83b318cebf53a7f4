"""The trainer's real step at paper-like shapes, vanilla against route2b, in one run (GPU; tiny shape on CPU).

For each model shape: a random-init Qwen3 built from the published config (no download), bf16 on CUDA, the SVD
adapter of the `paper` preset (rank 64 + a disjoint knob of 8, every attention and MLP projection of every
layer), an offline tokenizer of the model's vocabulary size, and the trainer exactly as `gq train` builds it
(`GQGRPOTrainer`, TRL's GRPO settings of the paper preset, the rollout function and sampler the trainer uses),
driven by its own `Trainer.train()` loop. A callback switches the variant at the start of each optimiser step:

    vanilla    no router; the knob frozen (the vanilla arm)
    rollout    route2b: GradCapture + Router(granularity="rollout"), one gate per rollout (the route2b arm)
    token      route2b with the per-token gate (GradCapture(per_token=True) + Router(granularity="token"))

Two kinds of step:

    fresh      the whole step: sampling (completions forced to full length: min_new_tokens = max), a synthetic
               reward, the GRPO forward + backward over every micro-batch, routing, the optimiser step, TRL's log
    cached     the same step on the batch of the last fresh step (`_generate_and_score_completions` returns it
               again): forward + backward + routing only, so the variants are compared without sampling noise

Per shape it reports: the fresh step time of vanilla and route2b, sampling tokens/s (the rollout function's own
`policy_tokens / generate_s`), the cached step time of each variant and its ratio to vanilla, the routing
overhead per rollout and per token, the time inside `Router.route` + `apply` + `stats`, and the peak GPU memory of each
kind of step. Target (issue 14): route2b per-rollout step <= 1.05x vanilla at the 4B shape.

The SVD basis: `attach_svd_adapter` takes a full fp32 SVD of every weight (252 of them, up to 9728 x 2560, for
the 4B shape: not timed here, expected to take minutes); for these random weights the step cost does not depend
on the basis's values, only on its shape, so by default (`--basis lowrank`) the top-R axes come from a
randomised SVD (16 extra columns, 2 power iterations, the adapter's sign convention) and the attach time is
reported. `--basis exact` keeps the adapter's own SVD.

Sampling on CUDA: TRL's `generate` path (`--sampler trl`, the trainer's `rollout.sampler=trl`) by default. The
trainer's default fast sampler (train/sampler.py, tuned on a CPU) sampled 3.4x (0.6B) to 5.5x (4B) slower than
TRL's on an H200 (bench/README.md; a 4B fresh step with it took 149 s at 256 new tokens), which the 8-minute
budget of this command cannot hold for three shapes; `--sampler default` (or `fast`) measures it.

Budget: a global deadline (`--budget-s`, default 420 s of measuring), shared between the shapes by their size;
a shape that runs out stops after its current step and reports what it measured (`complete: false`). The JSON
and the markdown table are rewritten after every shape.

    python bench/bench_gpu.py --out out/bench_gpu                      # CUDA: qwen3-4b, qwen3-1.7b, qwen3-0.6b
    python bench/bench_gpu.py --device cpu --shapes tiny --prompts 2 --generations 2 --prompt-len 24 \\
        --completion-len 8 --micro-batch 2 --repeats 1 --out /tmp/bench_gpu     # what the CPU test runs
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=UserWarning)

import numpy as np  # noqa: E402
import torch  # noqa: E402

# Published config.json values of Qwen/Qwen3-{0.6B,1.7B,4B} (the shapes; weights are random).
QWEN3_COMMON = dict(
    vocab_size=151936, head_dim=128, max_position_embeddings=40960, rope_theta=1000000.0, rms_norm_eps=1e-6,
    hidden_act="silu", attention_bias=False, attention_dropout=0.0, bos_token_id=151643, eos_token_id=151645,
    use_sliding_window=False,
)  # fmt: skip
SHAPES: dict[str, dict[str, Any] | None] = {
    "tiny": None,  # the test model (hidden 64, 2 layers), vocab 512
    "qwen3-0.6b": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                       num_key_value_heads=8, tie_word_embeddings=True),
    "qwen3-1.7b": dict(hidden_size=2048, intermediate_size=6144, num_hidden_layers=28, num_attention_heads=16,
                       num_key_value_heads=8, tie_word_embeddings=True),
    "qwen3-4b": dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
                     num_key_value_heads=8, tie_word_embeddings=True),
}  # fmt: skip
# Qwen's special tokens sit at these ids; the offline tokenizer puts them there for the Qwen3 vocabulary.
QWEN3_SPECIALS = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}
VARIANTS = ("vanilla", "rollout", "token")
TARGET_4B = 1.05


# ----------------------------------------------------------------------------------------------------------
# model, tokenizer, adapter


def offline_tokenizer(vocab_size: int):
    """A word-level tokenizer whose ids cover the whole vocabulary: token `w<i>` is id i, Qwen's three chat
    specials at their ids (or the last three ids for another vocabulary), ChatML template. Any text encodes
    (unknown words -> id 0) and any sampled id decodes. No file, no network."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from gradient_quarantine.model.loading import CHATML_TEMPLATE

    specials = QWEN3_SPECIALS if vocab_size == 151936 else {
        n: vocab_size - 3 + i for i, n in enumerate(QWEN3_SPECIALS)
    }  # fmt: skip
    by_id = {i: n for n, i in specials.items()}
    vocab = {by_id.get(i, f"w{i}"): i for i in range(vocab_size)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    out = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token="w0",
        additional_special_tokens=["<|im_start|>"], chat_template=CHATML_TEMPLATE, model_max_length=1 << 20,
    )  # fmt: skip
    out.padding_side = "left"
    return out


def build_model(shape: str, tok, device: str, dtype: torch.dtype, max_layers: int | None, seed: int):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from gradient_quarantine.model.loading import build_tiny_model

    if shape == "tiny":
        overrides = {"num_hidden_layers": max_layers} if max_layers else {}
        model = build_tiny_model(tok, seed=seed, **overrides)
    else:
        cfg = {**QWEN3_COMMON, **SHAPES[shape]}
        if max_layers:
            cfg["num_hidden_layers"] = min(cfg["num_hidden_layers"], max_layers)
        cfg.update(pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        config = Qwen3Config(**cfg)
        torch.manual_seed(seed)
        with torch.device(device):  # random init where it runs (a 4B init on a CPU takes minutes)
            model = Qwen3ForCausalLM._from_config(config, dtype=dtype)
        model.generation_config.pad_token_id = tok.pad_token_id
        model.generation_config.eos_token_id = tok.eos_token_id
    model = model.to(device=device, dtype=dtype)
    model.eval()
    return model


def _lowrank_top_svd(weight: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`svd_adapter._top_svd`'s contract (U (out, n), S (n,), V (in, n), fp32, sign: largest |v| entry > 0) from a
    randomised SVD (oversampled by 16, 2 power iterations): the same shapes at a fraction of a full SVD's cost."""
    g = torch.Generator(device=weight.device).manual_seed(0)
    W = weight.detach().float()
    Q = torch.linalg.qr(W @ torch.randn(W.shape[1], n + 16, device=W.device, generator=g)).Q  # (out, n+16)
    for _ in range(2):
        Q = torch.linalg.qr(W @ (W.T @ Q)).Q
    Ub, S, Vh = torch.linalg.svd(Q.T @ W, full_matrices=False)  # (n+16, in): small
    U, S, V = (Q @ Ub)[:, :n], S[:n], Vh[:n].T
    idx = V.abs().argmax(dim=0)
    sign = torch.sign(V[idx, torch.arange(n, device=V.device)])
    sign[sign == 0] = 1.0
    return (U * sign).contiguous(), S.contiguous(), (V * sign).contiguous()


@contextmanager
def _basis(kind: str):
    from gradient_quarantine.model import svd_adapter

    if kind == "exact":
        yield
        return
    saved = svd_adapter._top_svd
    svd_adapter._top_svd = _lowrank_top_svd
    try:
        yield
    finally:
        svd_adapter._top_svd = saved


def make_routers(adapter, device: str, seed: int):
    """A unit direction spread over every module and a band narrow enough that the gate takes values between 0
    and 1 (the router does its full work; the step's cost does not depend on which direction it is)."""
    from gradient_quarantine.routing.band import Band
    from gradient_quarantine.routing.direction import Direction
    from gradient_quarantine.routing.router import Router

    g = torch.Generator().manual_seed(seed)
    raw = {n: torch.randn(m.R, generator=g) for n, m in adapter.modules.items()}
    norm = torch.sqrt(sum((v**2).sum() for v in raw.values()))
    direction = Direction(
        {n: (v / v.norm())[None].to(device) for n, v in raw.items()}, {n: (v / norm).to(device) for n, v in raw.items()},
        "random",
    )  # fmt: skip
    band = Band(lower=-0.02, upper=0.02)
    return {v: Router(adapter, direction, band, granularity=v) for v in ("rollout", "token")}


def token_sum_reward(prompts, completions, completion_ids, **_):
    """Deterministic, cheap, not constant within a group: non-zero advantages, so every gradient is non-zero."""
    return [float(sum(ids) % 5) for ids in completion_ids]


def prompt_rows(tok, n_rows: int, prompt_len: int, seed: int) -> list[dict]:
    """Chat prompts of about `prompt_len` tokens (+-10 %), random in-vocabulary words."""
    rng = np.random.default_rng(seed)
    vocab = len(tok)
    rows = []
    for i in range(n_rows):
        n = max(1, int(round(prompt_len * rng.uniform(0.9, 1.1))) - 5)  # ChatML adds 5 tokens around the text
        text = " ".join(f"w{j}" for j in rng.integers(1, vocab - 300, size=n))
        rows.append({"prompt": [{"role": "user", "content": text}], "problem_id": f"p{i}"})
    return rows


# ----------------------------------------------------------------------------------------------------------
# the trainer, built as train/run_trainer.py's build_trainer builds it


def build_trainer(args, model, tok, adapter, rows, out_dir: Path, max_steps: int):
    import trl
    from datasets import Dataset

    from gradient_quarantine.train.rollouts import RolloutFunc, prompt_key
    from gradient_quarantine.train.trainer import GQGRPOTrainer

    use_cpu = args.device == "cpu"
    n_rollouts = args.prompts * args.generations
    micro = args.micro_batch or n_rollouts
    cfg = trl.GRPOConfig(
        output_dir=str(out_dir), per_device_train_batch_size=micro, gradient_accumulation_steps=n_rollouts // micro,
        num_generations=args.generations, max_completion_length=args.completion_len,
        generation_kwargs={"min_new_tokens": args.completion_len},  # forced full length: every step the same work
        temperature=0.7, top_p=1.0, beta=0.0, epsilon=0.2, loss_type="grpo", scale_rewards="group",
        learning_rate=1e-4, weight_decay=0.0, lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=0.0,
        max_steps=max_steps, num_train_epochs=1, logging_steps=1, save_strategy="no", report_to="none",
        disable_tqdm=True, seed=args.seed, shuffle_dataset=False, remove_unused_columns=False, disable_dropout=True,
        gradient_checkpointing=False, use_cpu=use_cpu, bf16=(not use_cpu and model.dtype == torch.bfloat16),
        log_completions=False, dataloader_num_workers=0,
    )  # fmt: skip
    kw = {}
    if args.sampler != "default":  # default: whatever the trainer's rollout function samples with
        if "sampler" not in inspect.signature(RolloutFunc).parameters:
            raise ValueError("--sampler: this RolloutFunc has no sampler choice")
        kw["sampler"] = args.sampler
    rollout = RolloutFunc({prompt_key(r["prompt"]): r["problem_id"] for r in rows}, None, 0, 0.5, args.seed, **kw)
    from transformers.trainer_callback import PrinterCallback

    trainer = GQGRPOTrainer(
        model=model, reward_funcs=[token_sum_reward], args=cfg, train_dataset=Dataset.from_list(rows),
        processing_class=tok, rollouts=rollout, adapter=adapter,
        max_grad_norm=1.0,  # the per-knob clip of the presets
    )  # fmt: skip
    trainer.remove_callback(PrinterCallback)
    return trainer


# ----------------------------------------------------------------------------------------------------------
# the schedule: which variant each optimiser step runs, fresh or cached, timed by a callback


def schedule(repeats: int) -> list[tuple[str, str, bool]]:
    """(variant, kind, timed) per optimiser step, in order of need, so that a shape cut short by the budget still
    has what matters most: a fresh vanilla step as warm-up (not timed: first-call costs; its sampling rate is
    reported), the per-token path's warm-up, the cached repeats (the routing overhead; order rotated each time),
    then a timed fresh route2b step and a timed fresh vanilla step (the whole step, measured)."""
    plan = [("vanilla", "fresh", False), ("token", "cached", False)]
    for r in range(repeats):
        k = r % 3
        plan += [(v, "cached", True) for v in VARIANTS[k:] + VARIANTS[:k]]
    return plan + [("rollout", "fresh", True), ("vanilla", "fresh", True)]


@dataclass
class StepRecord:
    variant: str
    kind: str
    timed: bool
    seconds: float
    train_seconds: float | None  # seconds minus sampling (fresh) or the whole step (cached)
    peak_mib: float | None
    route_ms: float
    generate_s: float | None = None
    policy_tokens: int | None = None


@dataclass
class Bench:
    trainer: Any
    adapter: Any
    routers: dict
    device: str
    plan: list
    deadline: float
    records: list[StepRecord] = field(default_factory=list)
    cache: dict | None = None
    kind: str = "fresh"
    route_s: float = 0.0
    t0: float = 0.0
    sampler: str = ""  # who sampled the last fresh step's rows

    def sync(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()

    def set_variant(self, variant: str) -> None:
        from gradient_quarantine.train.intervention import Vanilla
        from gradient_quarantine.train.route2b import Route2b

        tr = self.trainer
        tr.intervention = Vanilla() if variant == "vanilla" else Route2b(self.routers[variant], per_token=variant == "token")
        for p in self.adapter.knob_parameters():  # vanilla: the knob exists but is never trained
            p.requires_grad_(variant != "vanilla")

    def generate_and_score(self, real, inputs):
        if self.kind == "fresh" or self.cache is None:
            self.cache = real(inputs)
            return self.cache
        return dict(self.cache)  # TRL shuffles and splits a copy; the cached tensors are not modified

    def timed_route(self, route):
        def wrapped(*a, **k):
            self.sync()
            t = time.perf_counter()
            out = route(*a, **k)
            self.sync()
            self.route_s += time.perf_counter() - t
            return out

        return wrapped


def make_callback(bench: Bench):
    from transformers import TrainerCallback

    class Schedule(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            variant, kind, _ = bench.plan[state.global_step]
            bench.set_variant(variant)
            bench.kind = kind
            bench.route_s = 0.0
            bench.sync()
            if bench.device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            bench.t0 = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kw):
            # the Run's perf/step_time_s also runs from on_step_begin to this step's log
            if logs is None or "train_runtime" in logs or not bench.t0:
                return
            bench.sync()
            dt = time.perf_counter() - bench.t0
            bench.t0 = 0.0
            variant, kind, timed = bench.plan[state.global_step - 1]
            peak = torch.cuda.max_memory_allocated() / 2**20 if bench.device.startswith("cuda") else None
            rec = StepRecord(variant, kind, timed, dt, dt, peak, 1000 * bench.route_s)
            if kind == "fresh":
                last = bench.trainer.record.generation  # what this step's sampling cost (train/step.py)
                if last is not None and last.generate_s > 0:
                    rec.generate_s, rec.policy_tokens = last.generate_s, last.policy_tokens
                    rec.train_seconds = dt - last.generate_s
                    bench.sampler = last.sampler
            bench.records.append(rec)
            print(f"    step {state.global_step:2d} {variant:8s} {kind:6s} {dt:8.3f} s"
                  + (f"  peak {peak:9.0f} MiB" if peak else "")
                  + (f"  sampling {rec.policy_tokens / rec.generate_s:8.0f} tok/s" if rec.generate_s else ""),
                  flush=True)  # fmt: skip
            if time.perf_counter() > bench.deadline and state.global_step < len(bench.plan):
                print("    (budget for this shape used up: stopping after this step)", flush=True)
                control.should_training_stop = True

    return Schedule()


# ----------------------------------------------------------------------------------------------------------
# one shape


def run_shape(args, shape: str, deadline: float) -> dict[str, Any]:
    from transformers import set_seed

    from gradient_quarantine.model.svd_adapter import AdapterConfig, attach_svd_adapter

    set_seed(args.seed)
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    if args.dtype:
        dtype = getattr(torch, args.dtype)
    t = time.perf_counter()
    vocab = 512 if shape == "tiny" else QWEN3_COMMON["vocab_size"]
    tok = offline_tokenizer(vocab)
    model = build_model(shape, tok, args.device, dtype, args.max_layers, args.seed)
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    rank = args.rank or (16 if shape == "tiny" else 64)  # the tiny model is 64 wide: rank + knob must fit
    knob_rank = args.knob_rank or (4 if shape == "tiny" else 8)
    with _basis(args.basis):
        adapter = attach_svd_adapter(model, AdapterConfig(rank=rank, knob_rank=knob_rank))
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    attach_s = time.perf_counter() - t
    routers = make_routers(adapter, args.device, args.seed)
    plan = schedule(args.repeats)
    n_prompt_rows = len(plan) * args.prompts
    rows = prompt_rows(tok, n_prompt_rows, args.prompt_len, args.seed)
    n_params = sum(p.numel() for p in model.parameters())
    info: dict[str, Any] = {
        "shape": shape, "params": n_params, "layers": model.config.num_hidden_layers,
        "hidden": model.config.hidden_size, "dtype": str(dtype).removeprefix("torch."), "modules": len(adapter.modules),
        "rank": rank, "knob_rank": knob_rank, "capture_coords": sum(m.R for m in adapter.modules.values()),
        "rollouts": args.prompts * args.generations,
        "prompts": args.prompts, "generations": args.generations, "micro_batch": args.micro_batch,
        "prompt_len": args.prompt_len, "completion_len": args.completion_len, "build_s": build_s,
        "attach_s": attach_s, "basis": args.basis, "complete": False,
    }  # fmt: skip
    print(f"  {shape}: {n_params / 1e9:.2f} B params, {len(adapter.modules)} adapter modules, build {build_s:.1f} s, "
          f"attach ({args.basis} basis) {attach_s:.1f} s", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(args, model, tok, adapter, rows, Path(tmp), max_steps=len(plan))
        info["sampler"] = _sampler_name(trainer)
        bench = Bench(trainer, adapter, routers, args.device, plan, deadline)
        real = trainer._generate_and_score_completions
        trainer._generate_and_score_completions = lambda inputs: bench.generate_and_score(real, inputs)
        for r in routers.values():  # route + apply (per micro-batch) + stats (per step), synchronised
            r.route, r.apply, r.stats = (bench.timed_route(f) for f in (r.route, r.apply, r.stats))
        trainer.add_callback(make_callback(bench))
        trainer.train()
        info["steps_run"] = len(bench.records)
        if bench.sampler:  # who actually sampled (a sampler may hand a case back to TRL)
            info["sampler"] = bench.sampler
        info["complete"] = len(bench.records) == len(plan)
        info.update(summarize(bench.records, args))
        info["steps"] = [vars(r) for r in bench.records]
        trainer.model = None  # the trainer, the bench and the wrappers refer to each other: let gc free the model
    del trainer, model, adapter, routers
    gc.collect()
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return info


def _sampler_name(trainer) -> str:
    """Which sampling path the trainer's rollout function takes (the trainer's default, whatever it is now)."""
    name = getattr(trainer.rollouts, "sampler", None)
    return str(name) if name is not None else "trl"


def _med(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def summarize(records: list[StepRecord], args) -> dict[str, Any]:
    n_rollouts = args.prompts * args.generations
    timed = [r for r in records if r.timed]
    cached = {v: [r.seconds for r in timed if r.kind == "cached" and r.variant == v] for v in VARIANTS}
    fresh = {v: [r for r in timed if r.kind == "fresh" and r.variant == v] for v in ("vanilla", "rollout")}
    gens = [r for r in records if r.generate_s]
    out: dict[str, Any] = {
        "cached_s": {v: _med(xs) for v, xs in cached.items()},
        "cached_all_s": cached,
        "fresh_s": {v: _med([r.seconds for r in rs]) for v, rs in fresh.items()},
        "sampling_tok_s": _med([r.policy_tokens / r.generate_s for r in gens]),
        "generate_s": _med([r.generate_s for r in gens]),
        "route_ms": {v: _med([r.route_ms for r in timed if r.kind == "cached" and r.variant == v]) for v in VARIANTS[1:]},
        "peak_mib": {
            "fresh": max([r.peak_mib for r in records if r.kind == "fresh" and r.peak_mib] or [0]) or None,
            **{v: max([r.peak_mib for r in records if r.kind == "cached" and r.variant == v and r.peak_mib] or [0])
               or None for v in VARIANTS},
        },
    }  # fmt: skip
    van = out["cached_s"]["vanilla"]
    tokens = n_rollouts * (args.prompt_len + args.completion_len)
    fresh_van = out["fresh_s"]["vanilla"]
    if fresh_van is None and van and out["cached_s"]["rollout"] and out["fresh_s"]["rollout"]:
        # no timed fresh vanilla step (budget): the fresh route2b step less its overhead measured cached
        fresh_van = out["fresh_s"]["rollout"] - (out["cached_s"]["rollout"] - van)
        out["fresh_vanilla_from"] = "route2b fresh step - cached overhead"
    warm = [r.seconds for r in records if r.kind == "fresh" and r.variant == "vanilla" and not r.timed]
    if fresh_van is None and warm:
        fresh_van = warm[0]  # an upper bound (first-call costs included), so the ratio below is a lower bound
        out["fresh_vanilla_from"] = "the warm-up step (first-call costs included)"
    for v in ("rollout", "token"):
        c = out["cached_s"][v]
        if van and c:
            over = c - van
            out[f"{v}_x_vanilla_cached"] = c / van
            out[f"{v}_overhead_ms_per_step"] = 1000 * over
            out[f"{v}_overhead_ms_per_rollout"] = 1000 * over / n_rollouts
            out[f"{v}_overhead_us_per_token"] = 1e6 * over / tokens
            # the whole step with sampling: vanilla's fresh step plus the routing overhead measured without
            # sampling noise (sampling does the same work in both arms)
            if fresh_van:
                out[f"{v}_x_vanilla_step_est"] = (fresh_van + over) / fresh_van
    if out["fresh_s"]["vanilla"] and out["fresh_s"]["rollout"]:
        out["rollout_x_vanilla_step_measured"] = out["fresh_s"]["rollout"] / out["fresh_s"]["vanilla"]
    return out


# ----------------------------------------------------------------------------------------------------------
# report


def _f(x, fmt: str) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    lines = [
        f"Device: {meta['device_name']}; torch {meta['torch']}, transformers {meta['transformers']}, trl {meta['trl']}, "
        f"Python {meta['python']}; commit {meta['git_commit']}.",
        "",
        "| shape | params | rollouts x (prompt + new) | micro | sampler | sampling tok/s | fresh step s: vanilla / route2b (x) "
        "| cached step s: vanilla | rollout gate s (x) | token gate s (x) | overhead ms/rollout: rollout / token "
        "| route2b step x vanilla (est.) | router ms/step: rollout / token | peak GiB: fresh / vanilla / rollout / token |",
        "|---|---:|---|---:|---|---:|---|---:|---:|---:|---|---:|---:|---|",
    ]  # fmt: skip
    for s in result["shapes"]:
        if "error" in s:
            lines.append(f"| {s['shape']} | error: {s['error']} |" + " |" * 12)
            continue
        c, fr, pk = s["cached_s"], s["fresh_s"], s["peak_mib"]
        gib = " / ".join(_f(pk.get(k) and pk[k] / 1024, ".1f") for k in ("fresh", *VARIANTS))
        lines.append(
            f"| {s['shape']}{'' if s['complete'] else ' (partial)'} | {s['params'] / 1e9:.2f} B "
            f"| {s['rollouts']} x ({s['prompt_len']} + {s['completion_len']}) | {s['micro_batch'] or s['rollouts']} "
            f"| {s['sampler']} | {_f(s['sampling_tok_s'], '.0f')} "
            f"| {_f(fr['vanilla'], '.2f')} / {_f(fr['rollout'], '.2f')} ({_f(s.get('rollout_x_vanilla_step_measured'), '.3f')}) "
            f"| {_f(c['vanilla'], '.3f')} | {_f(c['rollout'], '.3f')} ({_f(s.get('rollout_x_vanilla_cached'), '.3f')}) "
            f"| {_f(c['token'], '.3f')} ({_f(s.get('token_x_vanilla_cached'), '.3f')}) "
            f"| {_f(s.get('rollout_overhead_ms_per_rollout'), '.2f')} / {_f(s.get('token_overhead_ms_per_rollout'), '.2f')} "
            f"| **{_f(s.get('rollout_x_vanilla_step_est'), '.3f')}** "
            f"| {_f(s['route_ms'].get('rollout'), '.1f')} / {_f(s['route_ms'].get('token'), '.1f')} | {gib} |"
        )  # fmt: skip
    lines += [
        "",
        "fresh = the whole optimiser step (sampling with completions forced to full length, reward, every micro-batch's "
        "forward + backward + routing, optimiser, TRL's log); cached = the same step on the last fresh batch (no "
        "sampling). (x) = ratio to vanilla. est. = (vanilla fresh step + rollout-gate overhead measured cached) / "
        f"vanilla fresh step; target <= {TARGET_4B} at qwen3-4b. router: time inside Router.route + apply + stats per step, "
        "synchronised. Medians over the timed repeats.",
    ]
    return "\n".join(lines) + "\n"


def _git_commit() -> str:
    if os.environ.get("GQ_GIT_COMMIT"):  # a copy of the tree without .git (e.g. shipped to a GPU node)
        return os.environ["GQ_GIT_COMMIT"]
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def meta(args) -> dict[str, Any]:
    import transformers
    import trl

    dev = args.device
    name = torch.cuda.get_device_name(0) if dev.startswith("cuda") else f"CPU ({os.cpu_count()} cores, {platform.machine()})"
    return {
        "device": dev, "device_name": name, "torch": torch.__version__, "transformers": transformers.__version__,
        "trl": trl.__version__, "python": platform.python_version(), "git_commit": _git_commit(),
        "args": vars(args), "threads": torch.get_num_threads(),
    }  # fmt: skip


def write(result: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_gpu.json").write_text(json.dumps(result, indent=1, default=str))
    (out / "bench_gpu.md").write_text(markdown(result))


def _rollout_params() -> set[str]:
    from gradient_quarantine.train.rollouts import RolloutFunc

    return set(inspect.signature(RolloutFunc).parameters)


def _try_shape(args, shape: str, deadline: float) -> dict[str, Any]:
    try:
        return run_shape(args, shape, deadline)
    except Exception as e:  # a failed shape is reported, the others still run
        import traceback

        traceback.print_exc()
        gc.collect()
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
        return {"shape": shape, "error": f"{type(e).__name__}: {e}"[:300]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default=None, help="comma list of " + ", ".join(SHAPES) + " (default: the three "
                    "Qwen3 shapes on CUDA, tiny on CPU)")  # fmt: skip
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default=None, help="default: bfloat16 on CUDA, float32 on CPU")
    ap.add_argument("--prompts", type=int, default=8, help="prompts per step")
    ap.add_argument("--generations", type=int, default=8, help="rollouts per prompt")
    ap.add_argument("--prompt-len", type=int, default=300, help="mean prompt tokens (+-10 %%)")
    ap.add_argument("--completion-len", type=int, default=512, help="new tokens per rollout (forced)")
    ap.add_argument("--micro-batch", type=int, default=16, help="rollouts per forward/backward (the paper preset's)")
    ap.add_argument("--rank", type=int, default=None, help="adapter rank (default: the paper preset's 64; 16 for tiny)")
    ap.add_argument("--knob-rank", type=int, default=None, help="disjoint knob axes (default: 8, the paper's; 4 for tiny)")
    ap.add_argument("--repeats", type=int, default=3, help="timed cached steps per variant")
    ap.add_argument("--basis", choices=("lowrank", "exact"), default="lowrank")
    ap.add_argument("--sampler", choices=("default", "fast", "trl"), default=None,
                    help="the rollout function's sampler (rollout.sampler): 'default' is the trainer's default; the "
                    "bench's default is 'trl' on CUDA (see the module doc) and 'default' on a CPU; a shape that fails "
                    "with 'default' is retried once with 'trl'")  # fmt: skip
    ap.add_argument("--max-layers", type=int, default=None, help="cap decoder layers (shape checks on a CPU)")
    ap.add_argument("--budget-s", type=float, default=420.0, help="seconds of measuring for all shapes together")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("out/bench_gpu"))
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.micro_batch and (args.prompts * args.generations) % args.micro_batch:
        ap.error(f"--micro-batch {args.micro_batch} must divide prompts x generations = {args.prompts * args.generations}")
    if args.sampler is None:
        args.sampler = "trl" if args.device.startswith("cuda") else "default"
    if args.shapes is None:
        args.shapes = "qwen3-4b,qwen3-1.7b,qwen3-0.6b" if args.device.startswith("cuda") else "tiny"
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown:
        ap.error(f"unknown shapes {unknown}: choose from {', '.join(SHAPES)}")

    start = time.perf_counter()
    end = start + args.budget_s
    result: dict[str, Any] = {"meta": meta(args), "shapes": []}
    print(f"bench_gpu: {result['meta']['device_name']}, torch {torch.__version__}, shapes {shapes}, "
          f"budget {args.budget_s:.0f} s", flush=True)  # fmt: skip
    # the budget's share of each shape: about its step time (sampling is launch-bound: ~layers; training ~size)
    weight = {"tiny": 1.0, "qwen3-0.6b": 2.2, "qwen3-1.7b": 2.8, "qwen3-4b": 5.0}
    for i, shape in enumerate(shapes):
        now = time.perf_counter()
        left = sum(weight[s] for s in shapes[i:])
        deadline = now + (end - now) * weight[shape] / left
        info = _try_shape(args, shape, deadline)
        if "error" in info and args.sampler == "default" and "sampler" in _rollout_params():
            print(f"  {shape} failed with the trainer's default sampler; once more with TRL's", flush=True)
            first = info["error"]
            info = _try_shape(argparse.Namespace(**{**vars(args), "sampler": "trl"}), shape, deadline)
            info["default_sampler_error"] = first
        result["shapes"].append(info)
        result["meta"]["wall_s"] = time.perf_counter() - start
        write(result, args.out)
    print(markdown(result), flush=True)
    print(f"wrote {args.out / 'bench_gpu.json'} and {args.out / 'bench_gpu.md'} ({time.perf_counter() - start:.0f} s)")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
