"""A run's problems by role: load, partition into modes, split into warmstart / pairs / train / eval, apply the
no-loophole share (substrate/splits.py). One function, used by `gq train`, `gq warmstart` and `gq pairs build`,
so every stage of a run sees the same problems.

    >>> rp = run_problems(cfg)                       # fresh
    >>> rp = run_problems(cfg, recorded=split_json)  # a resumed run: the recorded split and modes, not recomputed
    >>> rp.train, rp.eval, rp.modes_of["a_count_digits"], rp.record()
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gradient_quarantine.seeding import eval_holdout_rng
from gradient_quarantine.substrate.splits import ROLES, Split, assign_roles
from gradient_quarantine.substrate.types import Mode, Problem
from gradient_quarantine.train.config import TrainConfig


@dataclass
class RunProblems:
    """Every problem of a run, its mode, and the problems each stage uses."""

    by_id: dict[str, Problem]
    modes_of: dict[str, Mode]
    split: Split | None  # None: no split, every stage shares the problems
    overlap: bool  # stages may share problems (no split, or data.allow_overlap): the report marks the run
    warmstart: list[Problem]
    pairs: list[Problem]
    train: list[Problem]
    eval: list[Problem]

    def record(self) -> dict[str, Any]:
        """What split.json holds (train/rundir.py)."""
        return {
            "split": self.split.to_record(self.modes_of) if self.split is not None else None,
            "overlap": self.overlap,
            "modes": {pid: m.value for pid, m in sorted(self.modes_of.items())},
        }


def builtin_pair_roles(cfg: TrainConfig, problem_ids) -> dict[str, str]:
    """The shipped pair set's problems are pinned to the `pairs` role when a run uses it (its hack sides are
    fixed text on those problems); a run without a pair set pins nothing."""
    if cfg.routing.pairs != "builtin" or not cfg.resolved_pair_modes:
        return {}
    from gradient_quarantine.substrate.pairs import builtin_pairs_path, read_pairs

    ids = {row["problem_id"] for row in read_pairs(builtin_pairs_path(), modes=cfg.resolved_pair_modes, kind="hack")}
    return {pid: "pairs" for pid in sorted(ids) if pid in set(problem_ids)}


def run_problems(cfg: TrainConfig, recorded: Mapping[str, Any] | None = None) -> RunProblems:
    from gradient_quarantine.substrate.modes import assign_modes
    from gradient_quarantine.substrate.problems import load_problems

    problems = load_problems(cfg.data.problems)
    if cfg.data.limit:
        problems = problems[: cfg.data.limit]
    by_id = {p.id: p for p in problems}
    if recorded is not None:
        split = Split.from_record(recorded["split"]) if recorded.get("split") else None
        modes_of = {pid: Mode(m) for pid, m in recorded["modes"].items()}
    else:
        modes_of = assign_modes(list(by_id), seed=cfg.data.mode_seed)
        forced = builtin_pair_roles(cfg, by_id) if cfg.data.split else None
        split, modes_of = assign_roles(modes_of, cfg.data.split, cfg.data.split_seed, cfg.data.no_loophole, forced,
                                       by=cfg.data.roles_by)  # fmt: skip
    if split is None:  # no split: every stage shares the problems (data.eval_holdout still holds some out)
        rng = eval_holdout_rng(cfg.data.mode_seed)
        n_hold = int(round(cfg.data.eval_holdout * len(problems)))
        held = {problems[i].id for i in rng.permutation(len(problems))[:n_hold]}
        train = [p for p in problems if p.id not in held]
        roles = {"warmstart": train, "pairs": train, "train": train, "eval": [p for p in problems if p.id in held] or train}
    else:
        roles = {role: [by_id[pid] for pid in split.ids(role)] for role in ROLES}
    if not roles["train"] or not roles["eval"]:
        raise ValueError(f"the problems leave {len(roles['train'])} train and {len(roles['eval'])} eval problems; "
                         "raise data.split.train / data.split.eval, data.limit, or lower data.eval_holdout")  # fmt: skip
    return RunProblems(
        by_id=by_id, modes_of=modes_of, split=split, overlap=split is None or cfg.data.allow_overlap,
        warmstart=roles["warmstart"], pairs=roles["pairs"], train=roles["train"], eval=roles["eval"],
    )  # fmt: skip
