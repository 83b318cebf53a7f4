"""One GRPO step as data: the typed record the trainer fills while TRL runs the step, and the metrics row the run
makes of it (docs/run_directory.md names every key).

The trainer (train/trainer.py) starts a `StepRecord` when the step's rollouts are generated and fills it as TRL
calls back into it: the sampling cost, the graded rollouts and the rewards TRL trained on, the row kinds, each
micro-batch's routing, the log-probs of the training forward, and at the step's end the gradient gauges. The run
(train/run_callbacks.py) reads it once, when TRL logs the step, and writes `metrics_row(...)` to metrics.jsonl.
Nothing of a step is kept anywhere else.

    >>> record = trainer.record                          # after TRL logged step t
    >>> row = metrics_row(t, record, logs, intervention.metrics(), step_time_s=12.3)
    >>> rollout_rows(t, record.rollouts, k=4)            # rollouts.jsonl: k evenly spaced rows
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from gradient_quarantine.routing.router import RouteResult

Metrics = dict[str, Any]

# Row kinds carried through a step for logging only (diag/ metrics, policy/logp_mean): never routed on.
ROW_KINDS = {0: "policy_nohack", 1: "policy_hack", 2: "teacher_canonical", 3: "teacher_hack"}
POLICY_KINDS = (0, 1)


@dataclass
class StepRollouts:
    """The step's scored generation batch, row-aligned, as the grader saw it (routing never sees any of it)."""

    problem_ids: list[str]
    modes: list[str]
    prompts: list[Any]
    completions: list[str]
    teacher: list[str | None]  # the teacher kind of a teacher row ("canonical" / "hack"), None for the policy's own
    verdicts: list[Any]  # substrate.types.Verdict, one per row

    def row_kinds(self) -> list[int]:
        """Each row's kind (ROW_KINDS): the policy's own (hack or not, by the strict label) or a teacher row."""
        return [
            (3 if t == "hack" else 2) if t is not None else (1 if v.hack else 0)
            for t, v in zip(self.teacher, self.verdicts, strict=True)
        ]


@dataclass
class RolloutStats:
    """What generating the step's rows cost (`perf/tokens_per_s`, `perf/generate_s`), and who sampled them."""

    policy_tokens: int = 0
    generate_s: float = 0.0
    n_policy: int = 0
    n_teacher: int = 0
    teacher_kinds: list[str | None] = field(default_factory=list)
    sampler: str = ""  # who sampled the policy rows: "fast" (train/sampler.py) or "trl"


@dataclass
class LogpTally:
    """Log-probs of the sampled completions under the training forward (the loss's own, read by a hook), summed
    per row kind: `policy/logp_mean` (the policy's own rows) and `diag/logp_<kind>` are per-token means."""

    policy_sum: float = 0.0
    policy_count: int = 0
    by_kind: dict[int, list] = field(default_factory=dict)  # kind -> [sum of token log-probs, token count]

    def add(self, lp: torch.Tensor, mask: torch.Tensor, kinds: torch.Tensor | None) -> None:
        """One forward: `lp`, `mask` (B, T-1) (log-probs, 0 off the completion; which tokens are scored), `kinds` (B,)."""
        row_sum, row_n = lp.sum(1).double(), mask.sum(1).double()  # (B,) per-row token logp sum and count
        if kinds is None or kinds.numel() != mask.shape[0]:  # kinds unknown: every row is the policy's own
            self.policy_sum += float(row_sum.sum())
            self.policy_count += int(row_n.sum())
            return
        # per-kind sums in one reduction (one host sync): diag/logp_<kind> says how likely the policy finds each
        # kind of row (teacher hacks rising = it is learning to hack)
        kinds = kinds.to(lp.device).long()
        per_kind = torch.zeros(2, len(ROW_KINDS), dtype=torch.float64, device=lp.device)
        per_kind[0].index_add_(0, kinds, row_sum)
        per_kind[1].index_add_(0, kinds, row_n)
        sums, counts = per_kind.tolist()
        for kind, (total, count) in enumerate(zip(sums, counts, strict=True)):
            if count:
                acc = self.by_kind.setdefault(kind, [0.0, 0])
                acc[0] += total
                acc[1] += int(count)
        self.policy_sum += sum(sums[k] for k in POLICY_KINDS)  # the policy's own samples, not teacher rows
        self.policy_count += int(sum(counts[k] for k in POLICY_KINDS))


@dataclass
class MicroBatch:
    """One micro-batch's forward + backward: its rows' kinds (they travel with the rows through TRL's shuffle) and,
    when the intervention routed its gradient, the routing."""

    row_kind: torch.Tensor | None  # (B,) ROW_KINDS, or None when the rows carry no kinds
    route: RouteResult | None = None


@dataclass
class StepRecord:
    """Everything one optimiser step produced, filled in order by the trainer's hooks."""

    step: int = 0  # the optimiser step this record is for (TRL's global_step + 1 while it runs)
    generation: RolloutStats | None = None  # what sampling the step's rows cost (rollout function)
    rollouts: StepRollouts | None = None  # the graded rows (reward function)
    rewards: list[float | None] | None = None  # what TRL trained on: the grader's reward after the intervention's change
    reward_metrics: Metrics = field(default_factory=dict)  # the intervention's reward change (baseline/* of a monitor)
    advantage_metrics: Metrics = field(default_factory=dict)  # the intervention's advantage change (adv_mod)
    micro_batches: list[MicroBatch] = field(default_factory=list)  # forward + backward, in order
    logp: LogpTally = field(default_factory=LogpTally)
    gradient: Metrics = field(default_factory=dict)  # at the step's end: grad/*, routing/*, policy/logp_mean, diag/*
    grade_s: float = 0.0  # wall time of grading the rows in the sandbox (both graders)
    backward_s: float = 0.0  # wall time of the micro-batches' forward + backward, routing included

    def rows_s(self) -> float:
        """Wall time spent so far on the step's rows: sampling and grading."""
        return (self.generation.generate_s if self.generation is not None else 0.0) + self.grade_s

    def gate_by_kind(self) -> dict[int, list[float]]:
        """Each row's gate value (a per-token gate: the mean over its non-zero-gradient tokens), by row kind. Reads
        labels, so it is only logged; the router never sees it (the no-cheat invariant)."""
        out: dict[int, list[float]] = {}
        for mb in self.micro_batches:
            if mb.route is None or mb.row_kind is None:
                continue
            kinds = mb.row_kind.tolist()
            B = len(kinds)
            f, w = mb.route.f.float(), mb.route.valid.float()
            if f.numel() != B:  # per-token gate: (B*T,) -> each row's mean over its non-zero-gradient tokens
                f, w = f.view(B, -1), w.view(B, -1)
                f = (f * w).sum(1) / w.sum(1).clamp(min=1)
                w = (w.sum(1) > 0).float()
            for b, kind in enumerate(kinds):
                if w[b] > 0:
                    out.setdefault(int(kind), []).append(float(f[b]))
        return out

    def logp_metrics(self) -> Metrics:
        """`policy/logp_mean`, `diag/gate_<kind>` / `diag/n_<kind>` (routed runs), `diag/logp_<kind>`."""
        m: Metrics = {}
        if self.logp.policy_count:
            m["policy/logp_mean"] = self.logp.policy_sum / self.logp.policy_count
        for kind, fs in self.gate_by_kind().items():
            m[f"diag/gate_{ROW_KINDS[kind]}"] = float(np.mean(fs))
            m[f"diag/n_{ROW_KINDS[kind]}"] = len(fs)
        for kind, (total, count) in self.logp.by_kind.items():
            if count:
                m[f"diag/logp_{ROW_KINDS[kind]}"] = total / count
        return m


# ==========================================================================================================
# the metrics row


def rollout_metrics(r: StepRollouts) -> Metrics:
    """reward/* over all rows; train/* rates over the policy's own rollouts (teacher rows excluded), by mode."""
    out: Metrics = {}
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


# TRL's own logs the row keeps, under the project's names
TRL_KEYS = {"completions/mean_length": "trl/completions/mean_length", "frac_reward_zero_std": "trl/frac_reward_zero_std",
            "clip_ratio/region_mean": "trl/clip_ratio/region_mean", "kl": "trl/kl"}  # fmt: skip


def metrics_row(
    step: int, record: StepRecord, logs: Mapping[str, Any], intervention_metrics: Metrics, step_time_s: float
) -> Metrics:
    """The metrics.jsonl row of optimiser step `step` (before the health gauges): the rollouts' rates, the
    gradient and routing gauges, the intervention's gauges, what TRL logged, timings. JSON has no NaN: None."""
    row: Metrics = {"step": step}
    if record.rollouts is not None:
        row.update(rollout_metrics(record.rollouts))
    row.update(record.gradient)
    row.update(record.reward_metrics)  # baseline/* of a monitor (train/baselines.py)
    row.update(record.advantage_metrics)  # baseline/* of adv_mod
    row.update(intervention_metrics)  # the direction in force (routing/solve_* of solve_orth)
    if "entropy" in logs:
        row["policy/entropy"] = logs["entropy"]
    for k, name in TRL_KEYS.items():
        if k in logs:
            row[name] = logs[k]
    if "learning_rate" in logs:
        row["train/lr"] = logs["learning_rate"]
    gen = record.generation
    row["perf/step_time_s"] = step_time_s
    row["perf/tokens_per_s"] = gen.policy_tokens / gen.generate_s if gen is not None and gen.generate_s > 0 else None
    row["perf/generate_s"] = gen.generate_s if gen is not None else 0.0
    row["perf/grade_s"] = record.grade_s
    row["perf/backward_s"] = record.backward_s
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


def rollout_rows(step: int, r: StepRollouts, k: int) -> list[Metrics]:
    """rollouts.jsonl rows: `k` evenly spaced rows of the step (deterministic), with their verdicts."""
    n = len(r.verdicts)
    k = min(k, n)
    idx = sorted({int(round(i * (n - 1) / max(k - 1, 1))) for i in range(k)})
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
