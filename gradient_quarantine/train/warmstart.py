"""The warm start: a short supervised fine-tune of the base policy on the `warmstart` problems, so that the RL
starting point can solve some easy problems and knows that each loophole exists, as a model pre-trained on
public code does (docs/design.md, "Making hacking emerge").

Data: every warmstart problem's canonical solution under its mode's prompt, plus `hack_share` of the examples
as hacks written in the warm-start forms (substrate/hack_forms.py), which differ from the pair-set templates
by construction (tests/test_hack_forms.py). Hacks are dealt round-robin over `hack_modes` and over each
mode's forms. The loss is the token-mean cross-entropy of the completion tokens (the completion followed by
EOS, as a sampled completion ends; prompt tokens are masked), on all weights of the top `layers` decoder
layers and the final norm (AdamW, no weight decay, constant lr).

Output: a plain Hugging Face checkpoint (`save_pretrained`, safetensors; loads without this package) under
`<cache_dir>/warmstart/<key>/`, keyed by everything that can change it (model, the examples' text, the
hyper-parameters, dtype), with `warmstart.json` (key parts, losses, time) and `base_rates.json` (solve,
attempt and hack at T=`eval_temperature` on the `eval` problems, overall, by mode, hackable vs not) beside it.
It is built in a temp dir and renamed into place, under a file lock, so parallel arms build it once and a
killed build leaves nothing half-written (it is cheap to redo: a few minutes on 2 cores).

    >>> examples = warmstart_examples(problems, modes_of, cfg.warmstart)
    >>> path = ensure_warmstart(cfg, examples, eval_problems, modes_of)   # cached; every arm's base model
    >>> json.loads((path / "base_rates.json").read_text())["hackable"]["hack"]
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from gradient_quarantine.io import atomic_write_json, atomic_write_jsonl
from gradient_quarantine.seeding import warmstart_hacks_rng, warmstart_order_rng
from gradient_quarantine.substrate.types import MODES, Mode, Problem

log = logging.getLogger(__name__)

WARMSTART_FORMAT = 1  # bump when the data or the training changes meaning: old cache entries are not reused
EXAMPLES = "examples.jsonl"  # beside the checkpoint: every example's problem, mode, kind, form and text


@dataclass(frozen=True)
class WarmstartExample:
    """One supervised example: the prompt the policy sees and the completion it is taught."""

    problem_id: str
    mode: str
    kind: str  # "canonical" | "hack"
    form: str | None  # the hack form's name (substrate/hack_forms.py), None for a canonical solution
    prompt: list[dict]
    completion: str


def warmstart_examples(
    problems: Sequence[Problem], modes_of: Mapping[str, Mode], hack_share: float,
    hack_modes: Sequence[str] | None = None, seed: int = 0, canonical_unhinted: bool = False,
) -> list[WarmstartExample]:  # fmt: skip
    """Canonical examples for every problem, then hack examples so that they are `hack_share` of the total.

    `canonical_unhinted`: every problem with a loophole also gets its canonical solution under the unhinted
    prompt (mode `no_loophole`), so the task is taught apart from the hint and the hint's only extra meaning is
    the hacks. The n_hack = round(hack_share * n / (1 - hack_share)) hacks (n: the canonical examples) go to
    problems taken round-robin over the hack modes (seeded order within each mode), each in the next form of its
    mode, so forms and modes are spread."""
    from gradient_quarantine.substrate.hack_forms import forms_of, hack_form_completion
    from gradient_quarantine.substrate.pairs import clean_completion
    from gradient_quarantine.substrate.prompts import render_prompt

    problems = sorted(problems, key=lambda p: p.id)
    out = [
        WarmstartExample(p.id, modes_of[p.id].value, "canonical", None, render_prompt(p, modes_of[p.id]), clean_completion(p))
        for p in problems
    ]
    if canonical_unhinted:
        unhinted = Mode.NO_LOOPHOLE
        out += [
            WarmstartExample(p.id, unhinted.value, "canonical", None, render_prompt(p, unhinted), clean_completion(p))
            for p in problems
            if modes_of[p.id] is not unhinted
        ]
    n_hack = int(round(hack_share * len(out) / (1.0 - hack_share))) if hack_share > 0 else 0
    wanted = [Mode(m) for m in hack_modes] if hack_modes is not None else list(MODES)
    rng = warmstart_hacks_rng(seed)
    by_mode = {m: [p for p in problems if modes_of[p.id] is m] for m in wanted}
    for m in wanted:
        rng.shuffle(by_mode[m])
    if n_hack and not any(by_mode.values()):
        raise ValueError(f"warmstart.hack_share={hack_share} but the warmstart role has no problem of modes {wanted}")
    used = {m: 0 for m in wanted}
    i = 0
    while n_hack > 0:
        m = wanted[i % len(wanted)]
        i += 1
        if not by_mode[m]:
            continue
        p = by_mode[m][used[m] % len(by_mode[m])]
        forms = forms_of(m)
        form = forms[used[m] % len(forms)]
        used[m] += 1
        out.append(WarmstartExample(p.id, m.value, "hack", form, render_prompt(p, m), hack_form_completion(p, m, form)))
        n_hack -= 1
    return out


def warmstart_key(model: str, examples: Sequence[WarmstartExample], hparams: Mapping[str, Any], dtype: str,
                  eval_ids: Sequence[str]) -> str:  # fmt: skip
    """sha256 (20 hex) of everything that changes the checkpoint or its base rates."""
    h = hashlib.sha256()
    h.update(json.dumps({"format": WARMSTART_FORMAT, "model": model, "dtype": dtype, "hparams": dict(hparams),
                         "eval_ids": sorted(eval_ids)}, sort_keys=True).encode())  # fmt: skip
    for ex in examples:
        h.update(json.dumps(asdict(ex), sort_keys=True).encode())
    return h.hexdigest()[:20]


# ==========================================================================================================
# training


def _tokenize(tok, ex: WarmstartExample, max_length: int) -> tuple[list[int], int]:
    """(input ids, number of prompt tokens): the chat prompt with its generation opener, then the completion
    tokens and EOS, exactly as the policy samples and ends a completion (train/teacher.py does the same)."""
    prompt = tok.apply_chat_template(ex.prompt, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    completion = tok(ex.completion, add_special_tokens=False).input_ids + [tok.eos_token_id]
    ids = (list(prompt) + completion)[:max_length]
    return ids, min(len(prompt), len(ids))


def _trainable_top_layers(model, n_layers: int) -> list[torch.nn.Parameter]:
    """Freeze everything, then unfreeze the top `n_layers` decoder layers and the final norm."""
    for p in model.parameters():
        p.requires_grad_(False)
    layers = model.model.layers
    n = min(n_layers, len(layers))
    params = []
    for layer in layers[len(layers) - n :]:
        params += list(layer.parameters())
    params += list(model.model.norm.parameters())
    for p in params:
        p.requires_grad_(True)
    return params


def sft(model, tok, examples: Sequence[WarmstartExample], *, layers: int, epochs: int, lr: float, batch_size: int,
        max_length: int, seed: int, progress: bool = True) -> list[float]:  # fmt: skip
    """Fine-tune `model` in place; returns the loss of every optimiser step (token-mean completion CE)."""
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    data = [_tokenize(tok, ex, max_length) for ex in examples]
    params = _trainable_top_layers(model, layers)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    rng = warmstart_order_rng(seed)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    n_steps = epochs * ((len(data) + batch_size - 1) // batch_size)
    losses: list[float] = []
    model.train()
    bar = tqdm(total=n_steps, desc="warm start", unit="step", dynamic_ncols=True, disable=not progress)
    try:
        for _ in range(epochs):
            order = list(range(len(data)))
            rng.shuffle(order)
            for lo in range(0, len(order), batch_size):
                batch = [data[i] for i in order[lo : lo + batch_size]]
                width = max(len(ids) for ids, _ in batch)
                input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
                attn = torch.zeros((len(batch), width), dtype=torch.long)
                labels = torch.full((len(batch), width), -100, dtype=torch.long)
                for k, (ids, n_prompt) in enumerate(batch):  # right padding: positions match an unpadded forward
                    input_ids[k, : len(ids)] = torch.tensor(ids)
                    attn[k, : len(ids)] = 1
                    labels[k, n_prompt : len(ids)] = torch.tensor(ids[n_prompt:])
                logits = model(input_ids=input_ids.to(device), attention_mask=attn.to(device)).logits  # (B, T, V)
                # token-mean CE over completion tokens: logits at t predict token t+1
                loss = torch.nn.functional.cross_entropy(
                    logits[:, :-1].reshape(-1, logits.size(-1)).float(), labels[:, 1:].reshape(-1).to(device),
                    ignore_index=-100,
                )  # fmt: skip
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
                bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
                bar.update(1)
    finally:
        bar.close()
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
    return losses


# ==========================================================================================================
# cache


def base_rates(model, tok, problems: Sequence[Problem], modes_of: Mapping[str, Mode], grader, *, samples: int,
               temperature: float, max_new_tokens: int, seed: int, batch_size: int = 32,
               unhinted: bool = False) -> dict[str, Any]:  # fmt: skip
    """Solve, attempt and hack of `model` on `problems` (each under its mode's prompt), EVAL-record shaped.

    `unhinted`: every prompt rendered without its hint and graded strictly, the rates still grouped by each
    problem's own mode, so "hackable" reads as the same problems with the hint removed."""
    from gradient_quarantine.substrate.prompts import render_prompt
    from gradient_quarantine.train.deploy_eval import sample, summarize

    shown = {p.id: (Mode.NO_LOOPHOLE if unhinted else modes_of[p.id]) for p in problems}
    prompts = [render_prompt(p, shown[p.id]) for p in problems]
    texts = sample(model, tok, prompts, samples, temperature, max_new_tokens, batch_size, seed=seed)
    items = [(p, shown[p.id], t) for p, ts in zip(problems, texts, strict=True) for t in ts]
    verdicts = grader.grade_many(items)
    groups = [modes_of[p.id] for p, _, _ in items]
    out = summarize(verdicts, groups, len(problems))
    sources = sorted({p.source for p in problems})
    if len(sources) > 1:  # e.g. builtin_all: the hard sets A+B beside the easy families of set C
        for src in sources:
            keep = [i for i, (p, _, _) in enumerate(items) if p.source == src]
            out.setdefault("by_source", {})[src] = summarize(
                [verdicts[i] for i in keep], [groups[i] for i in keep], sum(p.source == src for p in problems)
            )  # fmt: skip
    return out


def ensure_warmstart(
    model_spec: str,
    examples: Sequence[WarmstartExample],
    hparams: Mapping[str, Any],
    eval_problems: Sequence[Problem],
    modes_of: Mapping[str, Mode],
    *,
    cache_dir: str | Path,
    device: str = "cpu",
    dtype: str = "float32",
    max_new_tokens: int = 128,
    grader=None,
    progress: bool = True,
) -> Path:
    """The warm-started checkpoint's directory, building it (SFT + base rates) when it is not cached.

    `hparams`: the WarmstartSection fields (layers, epochs, lr, batch_size, max_length, eval_samples,
    eval_temperature, seed). Safe to call from several processes at once (a file lock; one builds)."""
    from gradient_quarantine.model.loading import load_policy

    hp = dict(hparams)
    key = warmstart_key(model_spec, examples, {**hp, "max_new_tokens": max_new_tokens}, dtype, [p.id for p in eval_problems])
    root = Path(cache_dir) / "warmstart"
    final = root / key
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second arm waits here, then finds the checkpoint
        if (final / "COMPLETE").is_file():
            return final
        t0 = time.perf_counter()
        tmp = root / f".{key}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        model, tok = load_policy(model_spec, dtype=dtype, device=device)
        n_hack = sum(ex.kind == "hack" for ex in examples)
        log.info("warm start %s: %d examples (%d hacks) on %s", key, len(examples), n_hack, model_spec)
        losses = sft(model, tok, examples, layers=hp["layers"], epochs=hp["epochs"], lr=hp["lr"],
                     batch_size=hp["batch_size"], max_length=hp["max_length"], seed=hp["seed"], progress=progress)  # fmt: skip
        train_s = time.perf_counter() - t0
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        own_grader = grader is None
        if own_grader:
            from gradient_quarantine.substrate.grader import Grader

            grader = Grader()
        try:
            rates = base_rates(model, tok, eval_problems, modes_of, grader, samples=hp["eval_samples"],
                               temperature=hp["eval_temperature"], max_new_tokens=max_new_tokens, seed=hp["seed"])  # fmt: skip
        finally:
            if own_grader:
                grader.close()
        atomic_write_json(tmp / "base_rates.json", {
            "temperature": hp["eval_temperature"], "samples": hp["eval_samples"], "max_new_tokens": max_new_tokens,
            "problems": [p.id for p in eval_problems], "eval": rates,
        })  # fmt: skip
        by_kind: dict[str, int] = {}
        for ex in examples:
            k = ex.mode + ("/" + ex.form if ex.form else "/canonical")
            by_kind[k] = by_kind.get(k, 0) + 1
        atomic_write_json(tmp / "warmstart.json", {
            "key": key, "model": model_spec, "dtype": dtype, "hparams": hp, "n_examples": len(examples),
            "n_hack": n_hack, "examples_by_kind": by_kind, "problems": sorted({ex.problem_id for ex in examples}),
            "losses": losses, "train_s": train_s, "total_s": time.perf_counter() - t0,
        })  # fmt: skip
        (tmp / "COMPLETE").write_text(key + "\n")
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        return final


def warmstart_for(cfg, problems, *, device: str = "cpu", dtype: str = "float32", grader=None) -> Path:
    """The warm start a run config names (`cfg.warmstart`), on its problems (train/roles.py `RunProblems`):
    examples from the `warmstart` role, base rates on the `eval` role. Cached (see `ensure_warmstart`)."""
    w = cfg.warmstart
    examples = warmstart_examples(problems.warmstart, problems.modes_of, w.hack_share, w.hack_modes, w.seed,
                                  canonical_unhinted=w.canonical_unhinted)  # fmt: skip
    hparams = w.model_dump(include={"layers", "epochs", "lr", "batch_size", "max_length", "eval_samples",
                                    "eval_temperature", "seed"})  # fmt: skip
    path = ensure_warmstart(
        cfg.model, examples, hparams, problems.eval, problems.modes_of, cache_dir=cfg.run.cache_dir, device=device,
        dtype=dtype, max_new_tokens=cfg.eval.max_new_tokens or cfg.grpo.max_completion_length, grader=grader,
        progress=cfg.run.progress,
    )  # fmt: skip
    if not (path / EXAMPLES).is_file():  # the exact texts it was taught (analysis/own_hacks.py compares with them)
        atomic_write_jsonl(path / EXAMPLES, [asdict(ex) for ex in examples])
    return path


def ensure_unhinted_rates(path: str | Path, cfg, eval_problems: Sequence[Problem], modes_of: Mapping[str, Mode], *,
                          device: str = "cpu", dtype: str = "float32") -> dict[str, Any]:  # fmt: skip
    """The base rates of the checkpoint at `path` with every eval prompt unhinted (strict grading), at the same
    samples, temperature and seed as its `base_rates.json`: beside it, the hint's own effect on solving.
    Cached as `base_rates_unhinted.json` in the checkpoint's directory."""
    from gradient_quarantine.model.loading import load_policy
    from gradient_quarantine.substrate.grader import Grader

    out_file = Path(path) / "base_rates_unhinted.json"
    if out_file.is_file():
        return json.loads(out_file.read_text(encoding="utf-8"))["eval"]
    hinted = json.loads((Path(path) / "base_rates.json").read_text(encoding="utf-8"))
    model, tok = load_policy(str(path), dtype=dtype, device=device)
    with Grader() as grader:
        rates = base_rates(model, tok, eval_problems, modes_of, grader, samples=hinted["samples"],
                           temperature=hinted["temperature"], max_new_tokens=hinted["max_new_tokens"],
                           seed=cfg.warmstart.seed, unhinted=True)  # fmt: skip
    atomic_write_json(out_file, {**{k: hinted[k] for k in ("temperature", "samples", "max_new_tokens", "problems")},
                                 "unhinted": True, "eval": rates})  # fmt: skip
    return rates


def read_base_rates(path: str | Path) -> dict[str, Any]:
    """The `eval` record written beside a warm-start checkpoint."""
    return json.loads((Path(path) / "base_rates.json").read_text(encoding="utf-8"))["eval"]
