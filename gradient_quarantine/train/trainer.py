"""GRPO with route2b: TRL's `GRPOTrainer` plus one narrow extension, and the run that drives it.

What is TRL's and what is ours (TRL pinned at 1.16.0):

* generation, rewards -> advantages, the GRPO loss and its backward: TRL's (`GRPOTrainer.training_step`);
* route2b (`GQGRPOTrainer.training_step`): TRL's forward+backward runs inside `GradCapture` (per-rollout or
  per-token gradients in adapter coordinates, docs/design.md §5) and `Router.intercept()` (autograd's own
  adapter gradient is dropped); the router then writes `dS_main.grad = main_coords(sum_b (1 - f_b) G_b)` and
  `dS_knob.grad = knob_coords(sum_b f_b G_b)`. The router reads gradients and the pair set only (no reward,
  label or mode: the no-cheat invariant). Vanilla skips all of it and trains dS_main on autograd's gradient;
* separate optimiser state per knob (`create_optimizer`: one AdamW whose state is per tensor, the two knobs in
  their own parameter groups with their own lr / weight decay) and a separate gradient clip per knob;
* the reward: the flawed grader's (`FlawedGraderReward`), `3.0 * flawed_pass + 0.5 * format_ok`;
* rollouts (train/rollouts.py, TRL's `rollout_func` hook): TRL's own sampling, plus the teacher mix;
* optional: advantage std floor (wraps TRL's scoring, rescales its group-centred advantages).

`Run` builds all of it from a `TrainConfig`, writes the run directory (docs/run_directory.md) and checkpoints
every `run.checkpoint_every` steps in a form `Trainer.train(resume_from_checkpoint=...)` understands, plus our
own state, so `gq train --resume RUN_DIR` continues bit-for-bit (same seed, CPU).

    >>> run_dir = train(cfg, runs_dir="out/runs")         # a fresh run
    >>> resume("out/runs/0003_route2b_s41")              # continue a killed one
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import traceback
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback

from gradient_quarantine.io import read_jsonl
from gradient_quarantine.train.config import TrainConfig, git_commit
from gradient_quarantine.train.health import CollapseDetector
from gradient_quarantine.train.rundir import RunDir

log = logging.getLogger(__name__)

# Test-only fault injection (tests/test_train_resume.py): the process SIGKILLs itself at the end of step k, after
# everything that step writes (metrics row, eval, checkpoint when due). A real kill, not an exception.
KILL_AFTER_STEP_ENV = "GQ_TEST_KILL_AFTER_STEP"
RAISE_AFTER_STEP_ENV = "GQ_TEST_RAISE_AFTER_STEP"  # the same, as an exception (in-process tests; summary -> failed)


# ==========================================================================================================
# reward


@dataclass
class StepRollouts:
    """The last scored generation batch, row-aligned (for logging; routing never sees any of it)."""

    problem_ids: list[str]
    modes: list[str]
    prompts: list[Any]
    completions: list[str]
    teacher: list[str | None]
    verdicts: list[Any]


class FlawedGraderReward:
    """TRL reward function: the flawed grader's reward for each completion; keeps the verdicts for the logs.

    TRL calls it with the dataset's extra columns (`problem_id`, `mode`) and the rollout function's extra field
    (`teacher`) as keyword lists, one entry per completion.
    """

    def __init__(self, grader, problems_by_id: Mapping[str, Any]):
        self.grader = grader
        self.problems_by_id = problems_by_id
        self.last: StepRollouts | None = None
        self.__name__ = "flawed_grader"

    def __call__(self, prompts, completions, completion_ids, problem_id, mode, teacher=None, **_: Any) -> list[float]:
        from gradient_quarantine.substrate.types import Mode

        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        items = [(self.problems_by_id[pid], Mode(m), t) for pid, m, t in zip(problem_id, mode, texts, strict=True)]
        verdicts = self.grader.grade_many(items)
        self.last = StepRollouts(
            list(problem_id), list(mode), list(prompts), texts,
            list(teacher) if teacher is not None else [None] * len(texts), verdicts,
        )  # fmt: skip
        return [float(v.reward) for v in verdicts]


def rollout_metrics(r: StepRollouts) -> dict[str, float]:
    """reward/* over all rows; train/* rates over the policy's own rollouts (teacher rows excluded), by mode."""
    out: dict[str, float] = {}
    rewards = np.array([v.reward for v in r.verdicts], dtype=np.float64)
    out["reward/mean"] = float(rewards.mean())
    out["reward/std"] = float(rewards.std(ddof=1)) if len(rewards) > 1 else 0.0
    own = [i for i, t in enumerate(r.teacher) if t is None]
    out["train/teacher_frac"] = 1.0 - len(own) / max(len(r.teacher), 1)

    def rates(idx: list[int], suffix: str = "") -> None:
        if not idx:
            return
        vs = [r.verdicts[i] for i in idx]
        n = len(vs)
        out[f"train/hack_rate{suffix}"] = sum(v.hack for v in vs) / n
        out[f"train/solve_rate{suffix}"] = sum(v.gt_pass for v in vs) / n
        out[f"train/attempt_rate{suffix}"] = sum(v.attempted for v in vs) / n
        if not suffix:
            out["train/format_rate"] = sum(v.format_ok for v in vs) / n

    rates(own)
    for m in sorted(set(r.modes)):
        rates([i for i in own if r.modes[i] == m], f"/{m}")
    return out


# ==========================================================================================================
# the TRL extension

# Row kinds carried through a step for logging only (diag/ metrics, policy/logp_mean): never routed on.
ROW_KINDS = {0: "policy_nohack", 1: "policy_hack", 2: "teacher_canonical", 3: "teacher_hack"}


def _trl():
    from trl import GRPOConfig

    from gradient_quarantine.train.trl_compat import HookedGRPOTrainer

    return GRPOConfig, HookedGRPOTrainer


def make_trainer_class():
    """`GQGRPOTrainer` (built lazily so importing this module does not import TRL)."""
    _, GRPOTrainer = _trl()

    class GQGRPOTrainer(GRPOTrainer):
        """TRL's GRPOTrainer; route2b replaces how the adapter's gradient is assembled, nothing else."""

        def __init__(
            self,
            *args: Any,
            adapter,
            router=None,
            token_gate: bool = False,
            erase: bool = False,
            lr_knob: float | None = None,
            weight_decay_knob: float = 0.0,
            max_grad_norm: float = 0.0,
            adv_std_floor: float | None = None,
            **kwargs: Any,
        ):
            self.adapter = adapter
            self.router = router
            self.token_gate = token_gate
            self.erase = erase
            self.lr_knob = lr_knob
            self.weight_decay_knob = weight_decay_knob
            self.knob_max_grad_norm = max_grad_norm
            self.adv_std_floor = adv_std_floor
            self._route_results: list[Any] = []
            self.step_metrics: dict[str, float] = {}
            self._logp_sum = 0.0
            self._logp_count = 0
            self._row_kind: torch.Tensor | None = None  # (B,) of the micro-batch in compute_loss, see ROW_KINDS
            self._gate_by_kind: dict[int, list[float]] = {}
            self._logp_by_kind: dict[int, list[float]] = {}  # kind -> [sum of token logps, token count]
            self.adv_mod = None  # adv_mod baseline: train/baselines.AdvantageModifier, set by Run._make_router
            self.frout_schedule = None  # matched controls: {step: (frout target, ramp width)}, Run._frout_schedule
            super().__init__(*args, **kwargs)
            if adv_std_floor is not None and self.accelerator.num_processes > 1:
                raise ValueError("grpo.adv_std_floor needs whole groups on one process; run on one GPU or unset it")
            # policy/logp_mean: the training forward's per-token log-probs of the sampled completions, read off
            # TRL's own forward (its fused head returns them) by a hook, so nothing is recomputed.
            self.model.register_forward_hook(self._record_logp, with_kwargs=True)

        # ---- optimiser: separate state and lr per knob ---------------------------------------------------

        def create_optimizer(self, model=None):
            """One AdamW, two parameter groups (main, knob). Adam's moments live per tensor, so dS_main and
            dS_knob never share state: last step's routed gradient cannot leak into the main knob through
            momentum or the second-moment scaling (docs/design.md §5)."""
            if self.optimizer is None:
                self.optimizer = torch.optim.AdamW(
                    [
                        {"params": self.adapter.main_parameters(), "lr": self.args.learning_rate,
                         "weight_decay": self.args.weight_decay, "name": "main"},
                        {"params": self.adapter.knob_parameters(), "lr": self.lr_knob or self.args.learning_rate,
                         "weight_decay": self.weight_decay_knob, "name": "knob"},
                    ],
                    betas=(self.args.adam_beta1, self.args.adam_beta2),
                    eps=self.args.adam_epsilon,
                )  # fmt: skip
            return self.optimizer

        # ---- route2b: the one place the gradient is assembled differently --------------------------------

        def training_step(self, model, inputs, num_items_in_batch):
            from gradient_quarantine.routing.capture import GradCapture

            if self.router is None:
                loss = super().training_step(model, inputs, num_items_in_batch)
            else:
                # TRL's forward + backward, captured; autograd's own dS grads are dropped and the router
                # writes them (accumulating over micro-batches like autograd would)
                if self.frout_schedule is not None:  # a matched control follows its partner step by step
                    target, rel = self.frout_schedule[self.state.global_step + 1]
                    self.router.frout_target, self.router.ramp_rel_width = target, rel
                with GradCapture(self.adapter, per_token=self.token_gate) as cap, self.router.intercept():
                    loss = super().training_step(model, inputs, num_items_in_batch)
                    result = self.router.route(cap)
                self.router.apply(result)
                self._route_results.append(result)
                self._record_gate_by_kind(result)
            self._row_kind = None  # only valid for this micro-batch's forward (never applied to another pass)
            if self.accelerator.sync_gradients:  # the last micro-batch of this optimiser step
                self._finish_gradients()
            return loss

        @torch.no_grad()
        def _finish_gradients(self) -> None:
            main, knob = self.adapter.main_parameters(), self.adapter.knob_parameters()
            if self.router is not None:
                m = self.router.stats(self._route_results)
                self._route_results = []
                if self.erase:  # the erase arm: the routed part is dropped instead of kept in a knob
                    for p in knob:
                        p.grad = None
                    m["routing/dropped_frac"] = 1.0 if m["routing/frout"] > 0 else float("nan")
            else:
                m = {"grad/norm_main": _grad_norm(main), "grad/norm_knob": _grad_norm(knob)}
            # clip each knob on its own: a global clip would let a large knob gradient shrink the main step
            if self.knob_max_grad_norm > 0:
                for params in (main, knob):
                    with_grad = [p for p in params if p.grad is not None]
                    if with_grad:
                        torch.nn.utils.clip_grad_norm_(with_grad, self.knob_max_grad_norm)
            if self._logp_count:
                m["policy/logp_mean"] = self._logp_sum / self._logp_count
            self._logp_sum, self._logp_count = 0.0, 0
            for kind, fs in self._gate_by_kind.items():
                m[f"diag/gate_{ROW_KINDS[kind]}"] = float(np.mean(fs))
                m[f"diag/n_{ROW_KINDS[kind]}"] = len(fs)
            self._gate_by_kind = {}
            for kind, (total, count) in self._logp_by_kind.items():
                if count:
                    m[f"diag/logp_{ROW_KINDS[kind]}"] = total / count
            self._logp_by_kind = {}
            self.step_metrics = m

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            # remember which rows of this micro-batch are the policy's own (for logp and the diag/ gauges)
            self._row_kind = inputs.get("gq_row_kind")
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

        def _record_gate_by_kind(self, result) -> None:
            """diag/gate_<kind>: mean gate value per row kind. Reads labels, so it is only logged, after routing
            has run; the router never sees it (no-cheat invariant)."""
            if self._row_kind is None:
                return
            kinds = self._row_kind.tolist()
            B = len(kinds)
            f, w = result.f.float(), result.valid.float()
            if f.numel() != B:  # per-token gate: (B*T,) -> each row's mean over its non-zero-gradient tokens
                f, w = f.view(B, -1), w.view(B, -1)
                f = (f * w).sum(1) / w.sum(1).clamp(min=1)
                w = (w.sum(1) > 0).float()
            for b, kind in enumerate(kinds):
                if w[b] > 0:
                    self._gate_by_kind.setdefault(int(kind), []).append(float(f[b]))

        def _record_logp(self, module, args, kwargs, output) -> None:
            from gradient_quarantine.train.trl_compat import fused_head_logps

            fused = fused_head_logps(kwargs, output) if torch.is_grad_enabled() else None
            if fused is None:
                return
            lp, mask = fused  # (B, T-1) each: completion tokens' log-probs (0 elsewhere), and where they are
            row_sum, row_n = lp.sum(1).double(), mask.sum(1).double()  # (B,) per-row token logp sum and count
            kinds = self._row_kind
            if kinds is None or kinds.numel() != mask.shape[0]:  # kinds unknown: every row is the policy's own
                self._logp_sum += float(row_sum.sum())
                self._logp_count += int(row_n.sum())
                return
            # per-kind sums in one reduction (one host sync): diag/logp_<kind> says how likely the policy finds
            # each kind of row (teacher hacks rising = it is learning to hack); per-token means, like logp_mean
            kinds = kinds.to(lp.device).long()
            per_kind = torch.zeros(2, len(ROW_KINDS), dtype=torch.float64, device=lp.device)
            per_kind[0].index_add_(0, kinds, row_sum)
            per_kind[1].index_add_(0, kinds, row_n)
            sums, counts = per_kind.tolist()
            for kind, (total, count) in enumerate(zip(sums, counts, strict=True)):
                if count:
                    acc = self._logp_by_kind.setdefault(kind, [0.0, 0])
                    acc[0] += total
                    acc[1] += int(count)
            # policy/logp_mean: the policy's own samples only (kinds 0 and 1, not teacher rows)
            self._logp_sum += sums[0] + sums[1]
            self._logp_count += int(counts[0] + counts[1])

        # ---- advantage std floor (optional) ----------------------------------------------------------------

        def after_scoring(self, out):
            kinds = self._row_kinds(len(out["advantages"]))
            if kinds is not None:
                # travels with the rows through TRL's shuffle and micro-batch split
                out["gq_row_kind"] = torch.tensor(kinds, dtype=torch.long, device=out["advantages"].device)
            if self.adv_std_floor is not None and self.model.training:
                # TRL ran with scale_rewards="none": out["advantages"] = r - mean_group(r), groups contiguous.
                G = self.num_generations
                A = out["advantages"].view(-1, G)  # (groups, G)
                std = A.std(dim=1, keepdim=True)  # unbiased, as TRL's group std
                out["advantages"] = (A / std.clamp(min=self.adv_std_floor)).view(-1)
            if self.adv_mod is not None and self.model.training:
                # adv_mod baseline (train/baselines.py): a capture pass scores each rollout, A_b -= coef * f_b.
                # Its forward is not a training forward: keep it out of policy/logp_mean.
                logp_acc = (self._logp_sum, self._logp_count)
                self.adv_mod.modify(self, out)
                self._logp_sum, self._logp_count = logp_acc
            return out

        def _row_kinds(self, n: int) -> list[int] | None:
            """Row kinds of the batch just scored (generation order), from the rollout and reward records."""
            reward = next((f for f in self.reward_funcs if isinstance(f, FlawedGraderReward)), None)
            if reward is None or reward.last is None or len(reward.last.verdicts) != n:
                return None
            r = reward.last
            return [
                (3 if t == "hack" else 2) if t is not None else (1 if v.hack else 0)
                for t, v in zip(r.teacher, r.verdicts, strict=True)
            ]

        # ---- resume: the adapter is the only trained state in the model ------------------------------------

        def load_model_state(self, checkpoint_dir):
            self.adapter.load(Path(checkpoint_dir) / "adapter.safetensors")

        def save_checkpoint_files(self, out_dir: Path) -> None:
            """Write what `train(resume_from_checkpoint=out_dir)` reads, in transformers' own formats
            (optimizer.pt, scheduler.pt, rng_state.pth, trainer_state.json), plus the adapter."""
            from gradient_quarantine.train.trl_compat import save_checkpoint

            self.adapter.save(out_dir / "adapter.safetensors")
            save_checkpoint(self, out_dir)

    return GQGRPOTrainer


def _grad_norm(params: Sequence[torch.nn.Parameter]) -> float:
    sq = sum(float((p.grad.float() ** 2).sum()) for p in params if p.grad is not None)
    return math.sqrt(sq)


# ==========================================================================================================
# the run


class _StepCallback(TrainerCallback):
    def __init__(self, run: Run):
        self.run = run

    def on_step_begin(self, args, state, control, **kw):
        self.run._step_t0 = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kw):
        if logs is not None and "train_runtime" not in logs:
            self.run.on_step_logged(state.global_step, logs)


class Run:
    """Everything one training run needs, built from its config; `start()` trains and writes the run dir."""

    def __init__(self, cfg: TrainConfig, run: RunDir, resume: bool = False):
        self.cfg = cfg
        self.run = run
        self.resume = resume
        self.t_start = time.perf_counter()
        self.wall_before = 0.0
        self._step_t0 = time.perf_counter()
        self.bar = None
        self.trackers = None

    # ---------------------------------------------------------------------------------------------- setup

    def setup(self) -> None:
        from transformers import set_seed

        from gradient_quarantine.model.loading import load_policy
        from gradient_quarantine.model.svd_adapter import AdapterConfig, attach_svd_adapter

        cfg = self.cfg
        if cfg.run.torch_threads:
            torch.set_num_threads(cfg.run.torch_threads)
        set_seed(cfg.seed)
        device = _device(cfg.run.device)
        if cfg.rollout.backend == "vllm":
            _check_vllm(device)

        # problems, modes, roles (partition, split and eval set use data.* seeds only: the same for every arm)
        self._assign_roles()

        # policy (the warm-started checkpoint when the run has one) + adapter
        dtype = cfg.run.dtype if cfg.run.dtype != "auto" else ("bfloat16" if device == "cuda" else "float32")
        self.base_model = self._warmstart(device, dtype) if cfg.warmstart.enabled else cfg.model
        self.model, self.tok = load_policy(self.base_model, dtype=dtype, device=device)
        self.tok.padding_side = "left"
        a = cfg.adapter
        targets = r"(?:^|\.)(" + "|".join(_re_escape(t) for t in a.targets) + r")$"
        self.adapter = attach_svd_adapter(
            self.model,
            AdapterConfig(
                rank=a.rank, target_modules=targets, knob_relation=a.knob, knob_rank=a.knob_rank,
                layers=tuple(a.layers) if a.layers else None,
            ),
        )
        if cfg.method == "vanilla":  # the knob exists (same adapter) but is never trained
            for p in self.adapter.knob_parameters():
                p.requires_grad_(False)
        self.router = None
        self.pairs = None
        self.heldout_pairs = []
        self.frout_schedule = None

    def _assign_roles(self) -> None:
        """warmstart / pairs / train / eval problems and their modes (train/roles.py), recorded in split.json;
        a resumed run reads its split.json back, so every stage keeps its problems."""
        from gradient_quarantine.train.roles import run_problems

        recorded = self.run.read_split() if self.resume else None
        rp = run_problems(self.cfg, recorded)
        self.problems_by_id, self.modes_of, self.split = rp.by_id, rp.modes_of, rp.split
        self.warmstart_problems, self.pair_problems = rp.warmstart, rp.pairs
        self.train_problems, self.eval_pool = rp.train, rp.eval
        if recorded is None:
            self.run.write_split(rp.record())
        self.problems = rp

    def _warmstart(self, device: str, dtype: str) -> str:
        """Path of the warm-started checkpoint (built once, cached: train/warmstart.py)."""
        import shutil

        from gradient_quarantine.io import atomic_write_json
        from gradient_quarantine.train.warmstart import EXAMPLES, read_base_rates, warmstart_for

        path = warmstart_for(self.cfg, self.problems, device=device, dtype=dtype)
        # the run directory records its starting point: which checkpoint, its base rates, the examples it saw
        atomic_write_json(self.run.file("warmstart.json"), {"path": str(path), "key": path.name,
                                                            "base_rates": read_base_rates(path)})  # fmt: skip
        shutil.copyfile(path / EXAMPLES, self.run.file("warmstart_examples.jsonl"))
        self.warmstart_path = path
        return str(path)

    def _pair_set(self):
        """The routing.Pair list for this run: hack pairs of the pair modes, or their placebo twins."""
        from gradient_quarantine.routing.pairs import Pair
        from gradient_quarantine.substrate.pairs import (
            build_pairs,
            builtin_pairs_path,
            placebo_completion,
            read_pairs,
        )
        from gradient_quarantine.substrate.problems import load_problems

        r, modes = self.cfg.routing, self.cfg.resolved_pair_modes
        if r.pairs == "builtin":
            rows = read_pairs(builtin_pairs_path(), modes=modes, kind="hack")
            known = {p.id: p for p in load_problems("builtin")}
        elif r.pairs == "build":
            rows = build_pairs(self.pair_problems, self.modes_of, modes=modes)  # capped per mode below
            known = self.problems_by_id
        else:
            rows = read_pairs(r.pairs, modes=modes, kind="hack")
            known = self.problems_by_id
            if self.split is not None and not self.cfg.data.allow_overlap:
                self.split.check_disjoint({"pairs": [row["problem_id"] for row in rows]})
        # per mode, in file (or id) order: the first pairs_per_mode calibrate v_grad and the band, the next
        # heldout_pairs_per_mode are held out (only the gate on them is logged; fewer when the mode runs short)
        h = r.heldout_pairs_per_mode
        total = {m: sum(row["mode"] == m for row in rows) for m in {row["mode"] for row in rows}}
        count: dict[str, int] = {}
        kept, held = [], []
        for row in rows:
            m = row["mode"]
            count[m] = count.get(m, 0) + 1
            n_cal = r.pairs_per_mode or max(total[m] - h, 1)
            if count[m] <= n_cal:
                kept.append(row)
            elif count[m] <= n_cal + h:
                held.append(row)
        short = {m: n for m, n in total.items() if r.pairs_per_mode and n < r.pairs_per_mode}
        if r.pairs == "build" and short:
            raise ValueError(f"not enough pair problems for routing.pairs_per_mode={r.pairs_per_mode}: got {short}")
        rows = kept
        self.heldout_pairs = [Pair(prompt=row["prompt"], clean=row["clean"], hack=row["hack"]) for row in held]
        if not rows:
            raise ValueError(f"the pair set {r.pairs!r} has no pairs for modes {modes}")
        self.pair_rows = rows  # routing.solve_orth builds its solve pairs on these problems (train/baselines.py)
        if r.direction == "placebo":
            # both sides clean: the canonical solution and a renamed/reformatted clean variant of it
            missing = [row["problem_id"] for row in rows if row["problem_id"] not in known]
            if missing:
                raise ValueError(f"placebo pairs need the problems of the pair set; unknown ids {missing[:3]}")
            rows = [{**row, "hack": placebo_completion(known[row["problem_id"]])} for row in rows]
        return [Pair(prompt=row["prompt"], clean=row["clean"], hack=row["hack"]) for row in rows]

    def _frout_schedule(self) -> dict[int, tuple[float, float | None]] | None:
        """{step: (frout target, ramp width relative to the live cosine spread)} of a matched control, or None.

        `routing.frout_target`: that constant every step, through a hard cut (no partner, no ramp to copy).
        `routing.frout_from`: step by step from the partner's metrics.jsonl: at step t the control routes what
        the partner routed at step t (`routing/frout`), through a ramp spanning the same share of the live
        cosine spread as the partner's band did (`routing/band_width / (cos_p90 - cos_p10)`; a hard cut where
        that is not positive). Matching in mean only would let a control that routes 0.43 every step stand in
        for a partner that routed 0.00 to 0.82."""
        r = self.cfg.routing
        if r.frout_target is not None:
            return {t: (r.frout_target, None) for t in range(1, self.cfg.steps + 1)}
        if r.frout_from is None:
            return None
        path = Path(r.frout_from)
        path = path / "metrics.jsonl" if path.is_dir() else path
        if not path.is_file():
            raise FileNotFoundError(f"routing.frout_from={r.frout_from!r}: no metrics.jsonl there")
        sched: dict[int, tuple[float, float | None]] = {}
        for row in read_jsonl(path):
            if "step" not in row or not _finite(row.get("routing/frout")):
                continue
            spread = (row.get("routing/cos_p90") or math.nan) - (row.get("routing/cos_p10") or math.nan)
            rel = (row.get("routing/band_width") or math.nan) / spread if _finite(spread) and spread > 0 else None
            sched[int(row["step"])] = (min(max(float(row["routing/frout"]), 0.0), 1.0),
                                       rel if _finite(rel) and rel > 0 else None)  # fmt: skip
        missing = [t for t in range(1, self.cfg.steps + 1) if t not in sched]
        if missing:
            raise ValueError(
                f"routing.frout_from={r.frout_from!r}: {path} has no routing/frout for step(s) {missing[:5]}"
                f"{' ...' if len(missing) > 5 else ''} of this run's {self.cfg.steps}; a step-matched control needs "
                "a partner run at least as long (set steps to the partner's, or routing.frout_target=<fraction>)"
            )
        return sched

    # ---------------------------------------------------------------------------------------------- routing

    def extract_direction(self):
        """v_grad (or its control) and the band, on the current policy, from the pair set.

        `routing.gate=token`: the band is the per-token gate's, calibrated on the sides' per-token cosines
        (token-mass-weighted means, routing/direction.py), from the same pass with a per-token capture. Arms
        gated by the band (not frout-matched controls) also get the gate on the pairs, in sample and held out
        (`_gate_on_pairs`)."""
        from gradient_quarantine.routing.band import calibrate_band
        from gradient_quarantine.routing.direction import (
            direction_from_grads,
            leave_one_out_separation,
            pair_side_grads,
            pair_side_token_stats,
            random_direction_like,
            side_scores,
        )
        from gradient_quarantine.routing.pairs import length_norm_for_loss_type

        cfg = self.cfg
        k = cfg.adapter.knob_rank if cfg.adapter.knob == "vgrad_span" else cfg.routing.k
        norm = length_norm_for_loss_type(cfg.grpo.loss_type, cfg.grpo.max_completion_length)
        token = cfg.routing.gate == "token"
        kw = {"temperature": cfg.grpo.temperature, "batch_size": cfg.routing.pair_batch}
        masses = (None, None)
        if token:  # the per-token band needs each side's token mass sum_t ||G_t|| (same single backward)
            hs, cs = pair_side_token_stats(self.model, self.adapter, self.tok, self.pairs, norm, **kw)
            hack_g, clean_g, masses = hs.grads, cs.grads, (hs.mass, cs.mass)
        else:
            hack_g, clean_g = pair_side_grads(self.model, self.adapter, self.tok, self.pairs, norm, **kw)
        kind = "placebo" if cfg.routing.direction == "placebo" else "v_grad"
        direction = direction_from_grads(hack_g, clean_g, k, kind)
        if cfg.routing.direction == "random":
            # fixed Haar-random span (same seed every refresh), per-module norms follow the real direction
            direction = random_direction_like(direction, seed=cfg.seed + 7919)
        orth = None
        if cfg.routing.solve_orth:  # docs/design.md §7: remove v_grad's projection on a solve direction before the band
            from gradient_quarantine.train.baselines import solve_orth_transform

            orth = solve_orth_transform(self, norm)
            direction = orth(direction)
        direction.meta.update({"n_pairs": len(self.pairs), "length_norm": norm})
        band = calibrate_band(*side_scores(direction, hack_g, clean_g, *masses), granularity=cfg.routing.gate)
        if cfg.routing.direction != "random":
            band.loo_separation = leave_one_out_separation(
                hack_g, clean_g, k, transform=orth, hack_mass=masses[0], clean_mass=masses[1]
            )
        if self.frout_schedule is None:  # a matched control's gate is not the band's: no gauge of it on pairs
            self._gate_on_pairs(direction, band, norm)
        return direction, band

    def _gate_on_pairs(self, direction, band, norm: str) -> None:
        """Label-free gauges of the band's gate on the pair set (band.pair_gate_*, band.heldout_gate_*, logged as
        routing/*): the mean gate on the hack and the clean sides of the calibration pairs (in sample: rollout
        gate from the band's own cosines; token gate from a second pass, the sides' mass-weighted token frout)
        and of the held-out pairs (routing.heldout_pairs_per_mode), which took no part in v_grad or the band."""
        from gradient_quarantine.routing.band import gate
        from gradient_quarantine.routing.direction import pair_gates

        kw = {"length_norm": norm, "temperature": self.cfg.grpo.temperature, "batch_size": self.cfg.routing.pair_batch}
        if band.granularity == "rollout":
            fh, fc = gate(torch.tensor(band.hack_cos), band), gate(torch.tensor(band.clean_cos), band)
        else:
            fh, fc = pair_gates(self.model, self.adapter, self.tok, self.pairs, direction, band, **kw)
        band.pair_gate_hack, band.pair_gate_clean = float(fh.mean()), float(fc.mean())
        held = getattr(self, "heldout_pairs", None) or []
        if held:
            fh, fc = pair_gates(self.model, self.adapter, self.tok, held, direction, band, **kw)
            band.heldout_gate_hack, band.heldout_gate_clean = float(fh.mean()), float(fc.mean())
            band.n_heldout = len(held)

    def refresh_due(self, step: int) -> bool:
        n = self.cfg.routing.refresh_every
        return self.router is not None and n > 0 and step % n == 0 and step < self.cfg.steps

    # ---------------------------------------------------------------------------------------------- data

    def prompt_rows(self) -> list[dict]:
        """The prompts of every step, in order: seeded passes over the training problems (one HF 'epoch' is
        the whole run, so resuming skips batches exactly and never reshuffles)."""
        from gradient_quarantine.train.baselines import training_prompt

        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, 0x5A3])
        need = cfg.steps * cfg.grpo.prompts_per_step
        order: list[int] = []
        while len(order) < need:
            order += rng.permutation(len(self.train_problems)).tolist()
        rows = []
        for i in order[:need]:
            p = self.train_problems[i]
            mode = self.modes_of[p.id]
            # render_prompt(p, mode), or with the inoculation instruction (baseline.kind=inoculation)
            rows.append({"prompt": training_prompt(cfg, p, mode), "problem_id": p.id, "mode": mode.value})
        return rows

    # ---------------------------------------------------------------------------------------------- trainer

    def build_trainer(self, grader):
        from datasets import Dataset

        from gradient_quarantine.train.baselines import make_reward
        from gradient_quarantine.train.rollouts import RolloutFunc, install_vllm_weight_sync, prompt_key
        from gradient_quarantine.train.teacher import TeacherPool
        from gradient_quarantine.train.tracking import PROJECT, Trackers

        cfg, g = self.cfg, self.cfg.grpo
        GRPOConfig, _ = _trl()
        if cfg.run.report_to:  # TRL's own logs and our metrics row (on_step_logged) to TensorBoard / W&B / trackio
            first_step = self._steps_done() + 1  # > 1 when resumed
            self.trackers = Trackers(cfg.run.report_to, self.run.path, self.run.path.name, self.run.read_config(), first_step)
        rows = self.prompt_rows()
        dataset = Dataset.from_list(rows)
        micro = g.micro_batch or g.rollouts_per_step
        use_cpu = _device(cfg.run.device) == "cpu"
        args = GRPOConfig(
            output_dir=str(self.run.path),  # nothing is written there by TRL/transformers (save_strategy="no")
            per_device_train_batch_size=micro,
            gradient_accumulation_steps=g.rollouts_per_step // micro,
            num_generations=g.num_generations,
            max_completion_length=g.max_completion_length,
            temperature=g.temperature,
            top_p=g.top_p,
            beta=g.beta,
            epsilon=g.epsilon,
            loss_type=g.loss_type,
            scale_rewards="none" if g.adv_std_floor is not None else g.scale_rewards,
            learning_rate=g.lr,
            weight_decay=g.weight_decay,
            lr_scheduler_type=g.lr_schedule,
            warmup_steps=g.warmup_steps,
            max_grad_norm=0.0,  # clipped per knob in GQGRPOTrainer._finish_gradients
            max_steps=cfg.steps,
            num_train_epochs=1,
            logging_steps=1,
            save_strategy="no",
            report_to=self.trackers.trl_report_to if self.trackers else "none",
            run_name=self.run.path.name,
            project=PROJECT,  # trackio's project
            disable_tqdm=True,
            seed=cfg.seed,
            shuffle_dataset=False,
            remove_unused_columns=False,
            disable_dropout=True,
            gradient_checkpointing=False,  # GradCapture needs the one ordinary forward (no recomputation)
            use_cpu=use_cpu,
            bf16=(not use_cpu and self.model.dtype == torch.bfloat16),
            use_vllm=cfg.rollout.backend == "vllm",
            vllm_mode=cfg.rollout.vllm_mode,
            vllm_gpu_memory_utilization=cfg.rollout.vllm_gpu_memory_utilization,
            log_completions=False,
            dataloader_num_workers=0,
        )
        pool = None
        if cfg.n_teacher:
            pool = TeacherPool.build(
                self.train_problems, self.modes_of, self.tok, cfg.teacher.hack_modes, cfg.run.cache_dir,
                hack_forms=cfg.teacher.hack_forms,
            )
        prompt_to_problem = {prompt_key(r["prompt"]): r["problem_id"] for r in rows}
        self.rollout = RolloutFunc(
            prompt_to_problem, pool, cfg.n_teacher, cfg.teacher.hack_share, cfg.seed, sampler=cfg.rollout.sampler,
            teacher_steps=cfg.teacher.steps,
        )
        self.reward = make_reward(cfg, grader, self.problems_by_id)  # FlawedGraderReward (+ monitor baselines)
        Trainer = make_trainer_class()
        os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is TRL-experimental: pinned + tested
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            trainer = Trainer(
                model=self.model,
                reward_funcs=[self.reward],
                args=args,
                train_dataset=dataset,
                processing_class=self.tok,
                rollout_func=self.rollout,
                callbacks=[*(self.trackers.callbacks() if self.trackers else []), _StepCallback(self)],
                adapter=self.adapter,
                router=None,
                token_gate=cfg.routing.gate == "token",
                erase=cfg.routing.action == "erase",
                lr_knob=g.lr_knob,
                weight_decay_knob=g.weight_decay_knob,
                max_grad_norm=g.max_grad_norm,
                adv_std_floor=g.adv_std_floor,
            )
        trainer.remove_callback(PrinterCallback)  # our own progress bar and metrics.jsonl instead
        install_vllm_weight_sync(trainer, self.adapter)
        return trainer

    # ---------------------------------------------------------------------------------------------- main

    def start(self) -> RunDir:
        from gradient_quarantine.substrate.grader import Grader
        from gradient_quarantine.substrate.sandbox import detect_isolation, weakest

        cfg, run = self.cfg, self.run
        # The sandbox first: a run that cannot grade safely stops before it changes anything (SandboxError).
        self.isolation = detect_isolation(cfg.grader.isolation).level
        ckpt = None
        if self.resume:
            prev = run.read_summary() or {}
            self.wall_before = float(prev.get("wall_s") or 0.0)
            self.isolation = weakest(self.isolation, prev.get("isolation"))  # a result is worth its weakest segment
            ckpt = run.latest_checkpoint()
            done = json.loads((ckpt / "COMPLETE").read_text())["step"] if ckpt else 0
            run.truncate_after(done)
            if ckpt is None:
                for name in ("per_mode_deploy.json",):
                    run.file(name).unlink(missing_ok=True)
        else:
            record = cfg.to_record()
            record["git_commit"] = record.get("git_commit") or git_commit()
            run.write_config(record)
        self.health = CollapseDetector.replay(cfg.health, run.read_metrics())
        steps_done = self._steps_done()
        self._summary("running", steps_done)
        try:
            self.setup()
            if cfg.method == "route2b" or cfg.baseline.uses_direction:  # adv_mod scores with v_grad too
                self.pairs = self._pair_set()
                self.frout_schedule = self._frout_schedule()
            with Grader(isolation=cfg.grader.isolation,
                        **({"workers": cfg.run.grader_workers} if cfg.run.grader_workers else {})) as grader:
                self.grader = grader
                self.trainer = self.build_trainer(grader)
                if self.pairs is not None:
                    self._make_router(ckpt)
                self.evaluator = self._evaluator(grader)
                self._open_bar(steps_done)
                self.trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
                self._close_bar()
                self.finish()
                self._close_trackers()
        except BaseException as e:  # record, never fail silently; KeyboardInterrupt included
            self._close_bar()
            self._close_trackers(failed=True)
            err = f"{type(e).__name__}: {e}"
            log.error("run failed: %s\n%s", err, traceback.format_exc())
            self._summary("failed", self._steps_done(), error=err)
            raise
        return run

    def _make_router(self, ckpt: Path | None) -> None:
        from gradient_quarantine.routing.band import load_band
        from gradient_quarantine.routing.direction import load_direction
        from gradient_quarantine.routing.router import Router

        if ckpt is not None and (ckpt / "direction.safetensors").is_file():
            direction = load_direction(ckpt / "direction.safetensors")  # Router.set_direction moves it
            band = load_band(ckpt / "band.json")
        else:
            direction, band = self.extract_direction()
        if self.cfg.baseline.uses_direction:
            # adv_mod: no Router; the AdvantageModifier holds the direction and band (same refresh / checkpoint
            # interface), and the trainer penalises advantages with it
            from gradient_quarantine.train.baselines import AdvantageModifier

            self.router = AdvantageModifier(direction, band, self.cfg.baseline.adv_coef)
            self.trainer.adv_mod = self.router
        else:
            first = self.frout_schedule[1] if self.frout_schedule else (None, None)
            self.router = Router(
                self.adapter, direction, band, granularity=self.cfg.routing.gate, frout_target=first[0],
                ramp_rel_width=first[1],
            )  # fmt: skip
            self.trainer.router = self.router
            self.trainer.frout_schedule = self.frout_schedule
        if ckpt is None:  # step-0 direction, for the record (refreshes overwrite it in the checkpoint)
            _save_direction(self.run.path / "direction", direction, band)

    def _evaluator(self, grader):
        from gradient_quarantine.train.deploy_eval import DeployEvaluator, select_eval_problems

        problems = select_eval_problems(self.eval_pool, self.modes_of, self.cfg.eval.n_prompts, self.cfg.data.mode_seed)
        return DeployEvaluator(
            self.model, self.tok, self.adapter, problems, self.modes_of, grader, self.cfg.eval,
            max_new_tokens=self.cfg.grpo.max_completion_length,
            backend="generate" if self.cfg.rollout.sampler == "trl" else "auto",
        )  # fmt: skip

    # ---------------------------------------------------------------------------------------------- each step

    def on_step_logged(self, step: int, logs: Mapping[str, Any]) -> None:
        """After optimiser step `step`: metrics row, health, rollouts, deploy eval, refresh, checkpoint."""
        from gradient_quarantine.train.baselines import baseline_metrics

        cfg = self.cfg
        step_time = time.perf_counter() - self._step_t0
        row: dict[str, Any] = {"step": step}
        if self.reward.last is not None:
            row.update(rollout_metrics(self.reward.last))
        row.update(self.trainer.step_metrics)
        row.update(baseline_metrics(self))  # baseline/* (monitor, adv_mod), routing/solve_* (train/baselines.py)
        if "entropy" in logs:
            row["policy/entropy"] = logs["entropy"]
        for k in ("completions/mean_length", "frac_reward_zero_std", "clip_ratio/region_mean", "kl"):
            if k in logs:
                row[f"trl/{k}"] = logs[k]
        if "learning_rate" in logs:
            row["train/lr"] = logs["learning_rate"]
        st = self.rollout.last
        row["perf/step_time_s"] = step_time
        row["perf/tokens_per_s"] = st.policy_tokens / st.generate_s if st.generate_s > 0 else None
        row["perf/generate_s"] = st.generate_s
        row = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}  # JSON has no NaN
        fired = self.health.update(step, row)
        row["health/collapse"] = int(bool(fired))
        if fired:
            row["health/reasons"] = fired
        self.run.append_metrics(row)
        if self.trackers is not None:
            self.trackers.log(step, row)
        if cfg.run.log_rollouts_every and step % cfg.run.log_rollouts_every == 0 and self.reward.last is not None:
            self.run.append_rollouts(self._rollout_rows(step))
        if cfg.eval.every and step % cfg.eval.every == 0 and step < cfg.steps:
            self.deploy_eval(step)
        if self.refresh_due(step):
            direction, band = self.extract_direction()
            if self.trainer.router is not None:  # a Router: a vgrad_span knob's Adam moments follow its new basis
                self.router.set_direction(direction, band, reproject_knob=True, optimizer=self.trainer.optimizer)
            else:  # adv_mod's AdvantageModifier: no knob
                self.router.set_direction(direction, band, reproject_knob=True)
        if step % cfg.run.checkpoint_every == 0 or step == cfg.steps:
            self.checkpoint(step)
        self._summary("running", step)
        self._bar_update(row)
        if os.environ.get(KILL_AFTER_STEP_ENV) == str(step):
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
        if os.environ.get(RAISE_AFTER_STEP_ENV) == str(step):
            raise RuntimeError(f"injected crash after step {step} ({RAISE_AFTER_STEP_ENV})")

    def _rollout_rows(self, step: int) -> list[dict]:
        r = self.reward.last
        n = len(r.verdicts)
        k = min(self.cfg.run.rollouts_per_log, n)
        idx = sorted({int(round(i * (n - 1) / max(k - 1, 1))) for i in range(k)})  # evenly spaced, deterministic
        rows = []
        for i in idx:
            v = r.verdicts[i]
            prompt = r.prompts[i]
            rows.append({
                "step": step, "problem_id": r.problem_ids[i], "mode": r.modes[i],
                "prompt": prompt[-1]["content"] if isinstance(prompt, list) else prompt,
                # the system message too: the inoculation baseline changes only that, and A6 must show it
                "system": prompt[0]["content"] if isinstance(prompt, list) and prompt[0]["role"] == "system" else None,
                "completion": r.completions[i], "teacher": r.teacher[i] is not None, "teacher_kind": r.teacher[i],
                "format_ok": v.format_ok, "gt_pass": v.gt_pass, "flawed_pass": v.flawed_pass, "hack": v.hack,
                "attempted": v.attempted, "reward": v.reward, "reason": v.reason,
            })  # fmt: skip
        return rows

    def deploy_eval(self, step: int) -> tuple[dict, dict | None]:
        deploy = self.evaluator.run("deploy", seed=self.cfg.seed, step=step)
        knob_on = None
        if self.cfg.eval.knob_on:
            # a knob that was never trained is zero: knob on is the deploy model, same seed, same numbers
            untrained = all(float(p.detach().abs().max()) == 0.0 for p in self.adapter.knob_parameters())
            knob_on = deploy if untrained else self.evaluator.run("knob_on", seed=self.cfg.seed, step=step)
        self.run.append_deploy_eval(step, deploy, knob_on)
        return deploy, knob_on

    def checkpoint(self, step: int) -> None:
        tmp = self.run.new_checkpoint_tmp()
        self.trainer.save_checkpoint_files(tmp)
        if self.router is not None:
            _save_direction(tmp, self.router.direction, self.router.band)
        self.run.commit_checkpoint(tmp, step)
        self.adapter.save(self.run.file("train.safetensors"))

    def finish(self) -> None:
        cfg = self.cfg
        steps = self.cfg.steps
        deploy, knob_on = self.deploy_eval(steps)
        base = self.base_eval() if cfg.eval.base else None
        self.run.write_per_mode_deploy(steps, deploy, knob_on, base)
        self.adapter.save(self.run.file("train.safetensors"))
        self._summary("complete", steps)

    def base_eval(self) -> dict[str, Any]:
        """The base model's EVAL (adapter off), cached per substrate + model + eval settings."""
        cfg = self.cfg
        return self.evaluator.base(
            cfg.run.cache_dir,
            {"model": self.base_model, "problems": cfg.data.problems, "limit": cfg.data.limit,
             "mode_seed": cfg.data.mode_seed, "eval_holdout": cfg.data.eval_holdout, "dtype": str(self.model.dtype),
             "modes": [self.modes_of[p.id].value for p in self.evaluator.problems]},
        )  # fmt: skip

    # ---------------------------------------------------------------------------------------------- bookkeeping

    def _steps_done(self) -> int:
        rows = self.run.read_metrics()
        return int(rows[-1]["step"]) if rows else 0

    def _summary(self, status: str, steps_done: int, error: str | None = None) -> None:
        health = getattr(self, "health", None)
        collapse = health.summary() if health else {"detected": False, "step": None, "reasons": []}
        self.run.write_summary(
            status, steps_done, self.cfg.steps, collapse, self.wall_before + time.perf_counter() - self.t_start, error,
            isolation=getattr(self, "isolation", None),
        )

    def _open_bar(self, initial: int) -> None:
        if not self.cfg.run.progress:
            return
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.cfg.steps, initial=initial, desc=self.run.path.name, unit="step", dynamic_ncols=True)

    def _bar_update(self, row: Mapping[str, Any]) -> None:
        if self.bar is None:
            return
        post = {"reward": row.get("reward/mean"), "hack": row.get("train/hack_rate"), "s/step": row.get("perf/step_time_s")}
        if "routing/frout" in row:
            post["frout"] = row["routing/frout"]
        self.bar.set_postfix({k: f"{v:.3g}" for k, v in post.items() if _finite(v)}, refresh=False)
        self.bar.update(1)

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _close_trackers(self, failed: bool = False) -> None:
        if self.trackers is not None:
            self.trackers.close(failed)
            self.trackers = None


def _save_direction(directory: Path, direction, band) -> None:
    from gradient_quarantine.routing.band import save_band
    from gradient_quarantine.routing.direction import save_direction

    directory.mkdir(parents=True, exist_ok=True)
    save_direction(direction, directory / "direction.safetensors")
    save_band(band, directory / "band.json")


# ==========================================================================================================
# entry points


def train(cfg: TrainConfig, runs_dir: str | Path = "out/runs", run_dir: str | Path | None = None) -> RunDir:
    """A fresh run: allocate `<runs_dir>/<job>_<name>/` (or use `run_dir`, new or empty: the directory the queue
    chose), train, evaluate. Returns the run dir."""
    from gradient_quarantine.substrate.sandbox import detect_isolation

    resolved = cfg.resolved()
    detect_isolation(resolved.grader.isolation)  # no safe sandbox: SandboxError before a run directory exists
    run = RunDir.create(runs_dir, resolved.name) if run_dir is None else RunDir.create_at(run_dir)
    return Run(resolved, run).start()


def resume(run_dir: str | Path) -> RunDir:
    """Continue a killed run from its last checkpoint (rows written after it are dropped first)."""
    run = RunDir(run_dir)
    if not run.exists():
        raise FileNotFoundError(f"{run_dir}: not a run directory (no config.json)")
    summary = run.read_summary() or {}
    if summary.get("status") == "complete":
        return run
    cfg = TrainConfig.from_record(run.read_config())
    return Run(cfg, run, resume=True).start()


def evaluate_run(run_dir: str | Path, out: str | Path | None = None) -> dict[str, Any]:
    """`gq eval`: rebuild the run's model from config.json + train.safetensors and re-run its deploy eval
    (deploy, knob_on and base, seeded as the final eval of training). Writes per_mode_deploy.json (or `out`)."""
    from gradient_quarantine.io import atomic_write_json
    from gradient_quarantine.substrate.grader import Grader
    from gradient_quarantine.substrate.sandbox import weakest

    run = RunDir(run_dir)
    if not run.exists():
        raise FileNotFoundError(f"{run_dir}: not a run directory (no config.json)")
    adapter_file = run.file("train.safetensors")
    if not adapter_file.is_file():
        raise FileNotFoundError(f"{adapter_file} is missing: the run has not saved its adapter yet")
    cfg = TrainConfig.from_record(run.read_config())
    r = Run(cfg, run)
    r.setup()
    r.adapter.load(adapter_file)
    summary = run.read_summary() or {}
    step = int(summary.get("steps_done") or cfg.steps)
    with Grader(isolation=cfg.grader.isolation,
                **({"workers": cfg.run.grader_workers} if cfg.run.grader_workers else {})) as grader:
        r.evaluator = r._evaluator(grader)
        deploy = r.evaluator.run("deploy", seed=cfg.seed, step=step)
        knob_on = r.evaluator.run("knob_on", seed=cfg.seed, step=step) if cfg.eval.knob_on else None
        base = r.base_eval() if cfg.eval.base else None
        level = grader.isolation.level
    result = {"step": step, "deploy": deploy, "knob_on": knob_on, "base": base, "isolation": level}
    if out is not None:
        atomic_write_json(out, result)
    else:
        run.write_per_mode_deploy(step, deploy, knob_on, base)
        if summary:  # the run's numbers now include this grading: its level counts too
            atomic_write_json(run.file("summary.json"), {**summary, "isolation": weakest(summary.get("isolation"), level)})
    return result


# ==========================================================================================================
# helpers


def _device(spec: str) -> str:
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("run.device=cuda but no CUDA device is visible; set run.device=cpu or auto")
    return spec


def _check_vllm(device: str) -> None:
    if device != "cuda":
        raise RuntimeError("rollout.backend=vllm needs a CUDA GPU; set rollout.backend=transformers")
    try:
        import vllm  # noqa: F401
    except ImportError as e:
        raise RuntimeError(
            "rollout.backend=vllm needs the optional extra: pip install 'gradient_quarantine[vllm]'"
        ) from e


def _re_escape(name: str) -> str:
    import re

    return re.escape(name)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
