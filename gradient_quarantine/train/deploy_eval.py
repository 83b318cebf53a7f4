"""Deploy evaluation (docs/design.md §6): the model a user would ship is the knob-off model. Sample n prompts x
G completions at T=0.7 (defaults 64 x 8), grade each strictly and under its mode's flawed grader, report
rates over sampled completions, overall and by mode. The same for the knob on (it should hold the hacking)
and, once per substrate + model, for the base model (adapter off; cached under the cache dir).

    >>> ev = DeployEvaluator(model, tok, adapter, eval_problems, modes_of, grader, cfg.eval, max_new_tokens=160)
    >>> ev.run("deploy", seed=41, step=10)   # {"hack": .., "solve": .., "attempt": .., "n": 512, "n_prompts": 64, "by_mode": {...}}
    >>> ev.base(cache_dir="out/cache", key_parts={...})

Sampling is seeded per (seed, step) inside `torch.random.fork_rng`, so an eval never moves the training RNG
(a resumed run samples exactly what the uninterrupted one sampled) and the deploy / knob-on / base variants of
one eval see the same random stream (common random numbers: their differences are less noisy). The eval
prompt set is chosen with `data.mode_seed` only, so every arm and seed is scored on the same prompts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from gradient_quarantine.io import atomic_write_json
from gradient_quarantine.seeding import eval_prompts_rng, eval_sampling_seed
from gradient_quarantine.substrate.prompts import render_prompt
from gradient_quarantine.substrate.types import ALL_MODES, Mode, Problem, Verdict
from gradient_quarantine.train.config import EvalSection

VARIANTS = ("deploy", "knob_on", "base")


def select_eval_problems(
    problems: Sequence[Problem], modes_of: Mapping[str, Mode], n_prompts: int, seed: int
) -> list[Problem]:
    """`n_prompts` problems (all if fewer), balanced over modes: round-robin over the modes, each mode's
    problems in a seeded order. Depends only on the problem set and `seed`."""
    rng = eval_prompts_rng(seed)
    by_mode: dict[Mode, list[Problem]] = {m: [] for m in ALL_MODES}
    for p in sorted(problems, key=lambda p: p.id):
        by_mode[modes_of[p.id]].append(p)
    for m in ALL_MODES:
        order = rng.permutation(len(by_mode[m]))
        by_mode[m] = [by_mode[m][i] for i in order]
    out: list[Problem] = []
    i = 0
    while len(out) < min(n_prompts, len(problems)):
        for m in ALL_MODES:
            if i < len(by_mode[m]) and len(out) < n_prompts:
                out.append(by_mode[m][i])
        i += 1
    return out


def summarize(verdicts: Sequence[Verdict], modes: Sequence[Mode], n_prompts: int) -> dict[str, Any]:
    """EVAL record of docs/run_directory.md: rates are fractions of sampled completions."""

    def rates(vs: Sequence[Verdict]) -> dict[str, Any]:
        n = len(vs)
        if n == 0:
            return {"hack": None, "solve": None, "attempt": None, "format": None, "n": 0}
        return {
            "hack": sum(v.hack for v in vs) / n,
            "solve": sum(v.gt_pass for v in vs) / n,
            "attempt": sum(v.attempted for v in vs) / n,
            "format": sum(v.format_ok for v in vs) / n,
            "n": n,
        }

    out = rates(verdicts)
    out["n_prompts"] = n_prompts
    out["by_mode"] = {
        str(m): rates([v for v, mm in zip(verdicts, modes, strict=True) if mm == m])
        for m in ALL_MODES
        if any(mm == m for mm in modes)
    }
    if any(mm == Mode.NO_LOOPHOLE for mm in modes):
        # prompts with a loophole (where a hack can pay) and without one (strict grading only), separately
        out["hackable"] = rates([v for v, mm in zip(verdicts, modes, strict=True) if mm != Mode.NO_LOOPHOLE])
        out["unhackable"] = out["by_mode"][Mode.NO_LOOPHOLE.value]
    return out


def sample_records(
    variant: str, step: int, graded: Sequence[tuple[Problem, Mode, str, Verdict]], samples: int
) -> list[dict[str, Any]]:
    """One row per graded sample, in the eval's order (prompt by prompt, `samples` each): what `summarize` counts,
    per sample, so the report can resample prompts within a seed (deploy_samples.jsonl)."""
    return [
        {"variant": variant, "step": step, "problem_id": p.id, "mode": str(m.value if isinstance(m, Mode) else m),
         "sample": i % samples, "hack": bool(v.hack), "solve": bool(v.gt_pass), "attempt": bool(v.attempted),
         "format": bool(v.format_ok)}
        for i, (p, m, _, v) in enumerate(graded)
    ]  # fmt: skip


@torch.no_grad()
def sample(
    model,
    tokenizer,
    prompts: Sequence[list[dict]],
    samples: int,
    temperature: float,
    max_new_tokens: int,
    batch_size: int,
    seed: int,
    top_p: float = 1.0,
    backend: str = "auto",
) -> list[list[str]]:
    """`samples` completions per chat prompt, [prompt][sample] -> text. Seeded; leaves the global RNG as it was.

    backend "auto": train/sampler.py where it applies (one prefill per prompt, every row in as few batches as
    its K/V budget allows; `batch_size` is not used), else `model.generate` in batches of `batch_size` rows;
    "fast" / "generate" force one (the benchmark compares them). Same settings, EOS and padding either way.
    """
    from transformers import GenerationConfig

    from gradient_quarantine.train.sampler import effective_params, sample_rows

    device = next(model.parameters()).device
    ids = tokenizer.apply_chat_template(
        list(prompts), add_generation_prompt=True, tokenize=True, return_dict=True
    )["input_ids"]
    rows = [(i, ids[i]) for i in range(len(prompts)) for _ in range(samples)]
    eos = model.generation_config.eos_token_id
    eos_ids = sorted({tokenizer.eos_token_id, *([eos] if isinstance(eos, int) else (eos or []))} - {None})
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
    settings = dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=0, max_new_tokens=max_new_tokens,
                    eos_token_id=eos_ids, pad_token_id=pad, disable_compile=True)  # fmt: skip
    params = None
    if backend != "generate":
        params = effective_params(model, GenerationConfig(**settings), eos_ids, pad)
        if isinstance(params, str):
            if backend == "fast":
                raise ValueError(f"backend='fast': the fast sampler does not apply here ({params})")
            params = None
    out: list[list[str]] = [[] for _ in prompts]
    was_training = model.training
    model.eval()
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(seed))
            if params is not None:
                comps = sample_rows(model, [r for _, r in rows], params).completion_ids
            else:
                comps = _generate_rows(model, [r for _, r in rows], settings, batch_size, pad, device)
        for (i, _), toks in zip(rows, comps, strict=True):
            cut = next((j for j, t in enumerate(toks) if t in eos_ids), len(toks))
            out[i].append(tokenizer.decode(toks[:cut], skip_special_tokens=True))
    finally:
        model.train(was_training)
    return out


def _generate_rows(model, rows: list[list[int]], settings: dict, batch_size: int, pad: int, device) -> list[list[int]]:
    """`model.generate` on left-padded batches of `batch_size` rows; each row's new tokens (pads included)."""
    comps: list[list[int]] = []
    for lo in range(0, len(rows), batch_size):
        chunk = rows[lo : lo + batch_size]
        width = max(len(r) for r in chunk)
        input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        attn = torch.zeros((len(chunk), width), dtype=torch.long)
        for k, r in enumerate(chunk):  # left padding, as for generation
            input_ids[k, width - len(r) :] = torch.tensor(r)
            attn[k, width - len(r) :] = 1
        gen = model.generate(input_ids=input_ids.to(device), attention_mask=attn.to(device), **settings)
        comps += gen[:, width:].cpu().tolist()
    return comps


class DeployEvaluator:
    """Samples and grades the eval prompt set under one adapter state ("deploy", "knob_on" or "base")."""

    def __init__(
        self,
        model,
        tokenizer,
        adapter,
        problems: Sequence[Problem],
        modes_of: Mapping[str, Mode],
        grader,
        cfg: EvalSection,
        max_new_tokens: int,
        backend: str = "auto",
    ):
        self.model, self.tokenizer, self.adapter, self.grader = model, tokenizer, adapter, grader
        self.backend = backend  # sample(): "auto" (the fast sampler where it applies) or "generate"
        self.cfg = cfg
        self.problems = list(problems)
        self.modes_of = modes_of
        self.max_new_tokens = cfg.max_new_tokens or max_new_tokens
        self.last_completions: dict[str, list[tuple[Problem, Mode, str, Verdict]]] = {}
        self.last_records: dict[str, list[dict[str, Any]]] = {}  # variant -> sample_records of its last run

    def _state(self, variant: str):
        if variant == "deploy":
            return self.adapter.knob_off()
        if variant == "knob_on":
            return contextlib.nullcontext()
        if variant == "base":
            return self.adapter.disabled()
        raise ValueError(f"unknown eval variant {variant!r}; one of {VARIANTS}")

    def run(self, variant: str, seed: int, step: int) -> dict[str, Any]:
        prompts = [render_prompt(p, self.modes_of[p.id]) for p in self.problems]
        with self._state(variant):
            texts = sample(
                self.model, self.tokenizer, prompts, self.cfg.samples, self.cfg.temperature,
                self.max_new_tokens, self.cfg.batch_size, seed=eval_sampling_seed(seed, step), backend=self.backend,
            )
        items = [(p, self.modes_of[p.id], t) for p, ts in zip(self.problems, texts, strict=True) for t in ts]
        verdicts = self.grader.grade_many(items)
        self.last_completions[variant] = [(p, m, t, v) for (p, m, t), v in zip(items, verdicts, strict=True)]
        self.last_records[variant] = sample_records(variant, step, self.last_completions[variant], self.cfg.samples)
        return summarize(verdicts, [m for _, m, _ in items], len(self.problems))

    def base(self, cache_dir: str | Path, key_parts: Mapping[str, Any], seed: int = 0) -> dict[str, Any]:
        """The base model's EVAL, computed once per key (substrate, model, eval settings) and cached."""
        blob = json.dumps({**key_parts, "eval": self.cfg.model_dump(mode="json"), "seed": seed,
                           "max_new_tokens": self.max_new_tokens, "ids": [p.id for p in self.problems]},
                          sort_keys=True, default=str)
        key = hashlib.sha256(blob.encode()).hexdigest()[:20]
        path = Path(cache_dir) / "base_eval" / f"{key}.json"
        if path.is_file():
            cached = json.loads(path.read_text(encoding="utf-8"))
            if cached.get("samples") is not None:  # caches written before per-sample records lack them
                self.last_records["base"] = cached["samples"]
            return cached["eval"]
        result = self.run("base", seed=seed, step=0)
        atomic_write_json(path, {"key": json.loads(blob), "eval": result, "samples": self.last_records["base"]})
        return result

