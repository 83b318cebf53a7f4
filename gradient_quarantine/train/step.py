"""One GRPO step as data: the typed record the trainer fills while TRL runs the step, and the metrics row the run
makes of it (docs/run_directory.md names every key).

The trainer (train/trainer.py) starts a `StepRecord` when the step's rollouts are generated and fills it as TRL
calls back into it: the sampling cost, the graded rollouts and the rewards TRL trained on, the row kinds, each
micro-batch's routing, the log-probs of the training forward, and at the step's end the gradient gauges. The run
(train/run_callbacks.py) reads it once, when TRL logs the step, and writes `metrics_row(...)` to metrics.jsonl.
Nothing of a step is kept anywhere else.

    >>> record = trainer.record                          # after TRL logged step t
    >>> row = metrics_row(t, record, logs, intervention.metrics(), step_time_s=12.3)
    >>> rollout_rows(t, record.rollouts, k=4, scores=record.scores)   # rollouts.jsonl: k evenly spaced rows
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
    from gradient_quarantine.train.leakage import StepGradient

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
    """One micro-batch's forward + backward: its rows' kinds and indices into the step's rollouts (they travel with
    the rows through TRL's shuffle and split), the advantages TRL's loss trained them on and, when the intervention
    routed its gradient, the routing."""

    row_kind: torch.Tensor | None  # (B,) ROW_KINDS, or None when the rows carry no kinds
    route: RouteResult | None = None
    row_index: torch.Tensor | None = None  # (B,) each row's index into the step's rollouts (`gq_row_index`)
    advantages: torch.Tensor | None = None  # (B,) what TRL's loss read (after the intervention's change)


@dataclass
class RowScores:
    """Each of the step's rows in the step's order (the index into `StepRecord.rollouts`): the detector's score and
    the gate of a routed row (`RouteResult.per_row`: per rollout `cos(u_b, v_hat)` and `f_b`; per token the row's
    token-mass-weighted mean token cosine and mass-weighted routed share), None where the step routed nothing or
    the row had no gradient (zero advantage: no direction); the advantage TRL trained the row on (None: not seen in
    a micro-batch). Read for the logs only (rollouts.jsonl, `detector/*`)."""

    cos: list[float | None]
    gate: list[float | None]
    advantage: list[float | None]
    routed: bool  # did the step route with a Router (route2b, erase, random-V, placebo)


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
    scores: RowScores | None = None  # at the step's end: each row's detector score, gate and advantage
    step_gradient: StepGradient | None = None  # at the step's end: the main-axis gradient, before and after routing
    grade_s: float = 0.0  # wall time of grading the rows in the sandbox (both graders)
    backward_s: float = 0.0  # wall time of the micro-batches' forward + backward, routing included

    def rows_s(self) -> float:
        """Wall time spent so far on the step's rows: sampling and grading."""
        return (self.generation.generate_s if self.generation is not None else 0.0) + self.grade_s

    def gate_by_kind(self) -> dict[int, list[float]]:
        """Each row's gate value (`RouteResult.per_row`: per rollout f_b; a per-token gate: the row's mass-weighted
        routed share), by row kind, rows with gradient only. Reads labels, so it is only logged; the router never
        sees it (the no-cheat invariant)."""
        out: dict[int, list[float]] = {}
        for mb in self.micro_batches:
            if mb.route is None or mb.row_kind is None:
                continue
            kinds = mb.row_kind.tolist()
            _, f, valid = mb.route.per_row(len(kinds))
            for kind, fb, ok in zip(kinds, f.tolist(), valid.tolist(), strict=True):
                if ok:
                    out.setdefault(int(kind), []).append(float(fb))
        return out

    def row_scores(self) -> RowScores | None:
        """Each row's detector score, gate and advantage, put back in the step's order by the index each row
        carried through TRL's shuffle and split (`MicroBatch.row_index`); None when the rows carried no index.
        One host sync for the whole step."""
        mbs = self.micro_batches
        if not mbs or any(mb.row_index is None for mb in mbs):
            return None
        parts = []
        for mb in mbs:
            idx = mb.row_index.double()
            B = idx.numel()
            nan = torch.full_like(idx, math.nan)
            adv = mb.advantages.double().flatten() if mb.advantages is not None else nan
            if mb.route is not None:
                cos, f, valid = (t.to(idx.device) for t in mb.route.per_row(B))
                cos, f = torch.where(valid, cos.double(), math.nan), torch.where(valid, f.double(), math.nan)
            else:
                cos = f = nan
            parts.append(torch.stack([idx, adv.to(idx.device), cos, f], 1))  # (B, 4)
        rows = torch.cat(parts).tolist()
        last = max((int(r[0]) for r in rows), default=-1)
        n = len(self.rollouts.verdicts) if self.rollouts is not None else last + 1
        out = RowScores([None] * n, [None] * n, [None] * n, routed=any(mb.route is not None for mb in mbs))
        for i, adv, cos, f in rows:
            i = int(i)
            if 0 <= i < n:
                out.advantage[i] = adv if math.isfinite(adv) else None
                out.cos[i] = cos if math.isfinite(cos) else None
                out.gate[i] = f if math.isfinite(f) else None
        return out

    def detector_metrics(self, gradient: Metrics) -> Metrics:
        """`detector/*` of a routed step (`detector_gauges` over the policy's own rows with a score, labelled by the
        strict grader's `hack`; teacher rows excluded) and `routing/capture` = 1 - `routing/dropped_frac` (the
        routed share the knob keeps) where `gradient` has it. Read after routing, for the logs only: the labels
        never reach the router (the no-cheat invariant)."""
        m: Metrics = {}
        if "routing/dropped_frac" in gradient:  # NaN or None (nothing routed) -> null
            dropped = gradient["routing/dropped_frac"]
            m["routing/capture"] = 1.0 - dropped if dropped is not None else None
        sc, r = self.scores, self.rollouts
        if sc is None or not sc.routed or r is None or len(r.verdicts) != len(sc.cos):
            return m
        own = [i for i, t in enumerate(r.teacher) if t is None and sc.cos[i] is not None]
        m.update(detector_gauges([completion_score(sc.cos[i], sc.advantage[i]) for i in own],
                                 [sc.gate[i] for i in own], [bool(r.verdicts[i].hack) for i in own]))  # fmt: skip
        return m

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
# the detector on the policy's own rollouts (labels read for the logs only)


def completion_score(cos: float, advantage: float | None) -> float:
    """The detector's score of the completion itself, `cos(grad l(y_b), v_hat) = sign(A_b) cos(u_b, v_hat)`: the
    gate reads the update `u_b = A_b grad l(y_b)`, whose sign follows the advantage's, so its raw cosine would
    separate hacks from the rest whenever hacks get the positive advantages, whatever the direction (a random
    one included). This is what `gq detector eval` scores."""
    return cos if advantage is None or advantage == 0 else math.copysign(1.0, advantage) * cos


def roc_auc(scores: list[float], labels: list[bool]) -> float | None:
    """ROC AUC of `scores` for `labels` (True: positive): P(score of a positive > score of a negative), ties
    counted half (the Mann-Whitney U over n_pos * n_neg, from average ranks). None when either class is empty."""
    pos = sum(bool(y) for y in labels)
    neg = len(labels) - pos
    if pos == 0 or neg == 0:
        return None
    from scipy.stats import rankdata

    ranks = rankdata(np.asarray(scores, dtype=np.float64))  # ties get their average rank
    r_pos = float(ranks[np.asarray(labels, dtype=bool)].sum())
    return (r_pos - pos * (pos + 1) / 2) / (pos * neg)


def detector_gauges(cos: list[float], gate: list[float], hack: list[bool]) -> Metrics:
    """The detector on rows with a score (one entry per row, alike): `detector/auc` (ROC AUC of the score, hack
    rows vs the rest, None when either class is empty), `detector/gate_tpr` / `detector/gate_fpr` (the mean gate
    on hack / non-hack rows: the gate's soft true- and false-positive rates, None without such rows),
    `detector/n_hack`, `detector/n_clean` (how many rows of each class they are over)."""
    on_hack = [g for g, h in zip(gate, hack, strict=True) if h]
    on_clean = [g for g, h in zip(gate, hack, strict=True) if not h]
    return {
        "detector/auc": roc_auc(cos, hack),
        "detector/gate_tpr": float(np.mean(on_hack)) if on_hack else None,
        "detector/gate_fpr": float(np.mean(on_clean)) if on_clean else None,
        "detector/n_hack": len(on_hack),
        "detector/n_clean": len(on_clean),
    }


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


def rollout_rows(step: int, r: StepRollouts, k: int, scores: RowScores | None = None) -> list[Metrics]:
    """rollouts.jsonl rows: `k` evenly spaced rows of the step (deterministic), with their verdicts and, from
    `scores` (the step's `StepRecord.scores`), each row's detector score `cos`, `gate` and `advantage` (null where
    the step has none: `cos` and `gate` of an arm without a gate, of a row without gradient)."""
    n = len(r.verdicts)
    k = min(k, n)
    idx = sorted({int(round(i * (n - 1) / max(k - 1, 1))) for i in range(k)})
    if scores is not None and len(scores.cos) != n:
        scores = None
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
            "cos": scores.cos[i] if scores is not None else None,
            "gate": scores.gate[i] if scores is not None else None,
            "advantage": scores.advantage[i] if scores is not None else None,
        })  # fmt: skip
    return rows
