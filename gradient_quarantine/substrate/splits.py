"""Problem roles: every problem of a run plays exactly one role, so that the detector, the warm start, the
training and the evaluation never share a problem (docs/design.md, "Making hacking emerge").

| role        | used by                                                                              |
|-------------|--------------------------------------------------------------------------------------|
| `warmstart` | the supervised warm start (canonical solutions + a few hacks in the warm-start forms) |
| `pairs`     | the pair set: the weak detector's only supervision (`gq pairs build`, routing.pairs=build) |
| `train`     | the GRPO prompts                                                                     |
| `eval`      | the deploy / knob-on / base evaluations                                              |

The split is stratified by loophole mode (each mode is dealt into the roles separately, so every mode is
present in every role when it has at least one problem per role), seeded and deterministic in (problem ids,
modes, sizes, seed). Sizes are fractions of each mode's problems or total counts spread over the modes.
Then, inside `train` and `eval` only, a share of each mode's problems becomes `Mode.NO_LOOPHOLE`: the prompt
carries no hint and the strict grader alone scores it (a prompt where no hack pays).

Roles are drawn by instance (`by="instance"`, the default and the behaviour every committed run has: each
problem is dealt on its own, so the instances of one problem family can sit in different roles and the eval
measures transfer to unseen instances of trained families) or by family (`by="family"`: every instance of a
family, `substrate.problems.family_of`, gets the same role, so the eval measures transfer to unseen tasks).
By family, whole families are dealt greedily, largest first in a seeded order, each to the role whose per-mode
targets its instances' modes most lack; the sizes and the mode balance are then met as nearly as whole families
allow (a family's instances keep the modes they were given). `train_without_loophole` gives the clean
reference arm's modes (`data.train_loophole=false`): the training problems lose their loophole, nothing else.

    >>> split = split_problems(modes_of, {"warmstart": 0.35, "pairs": 0.15, "train": 0.25, "eval": 0.25}, seed=0)
    >>> split.role_of["a_count_digits"], split.ids("eval")[:3]
    >>> modes_of = split.apply_no_loophole(modes_of, share=0.25, seed=0)    # a copy; train/eval only
    >>> split.to_record()                                                   # what split.json holds
    >>> split_problems(modes_of, sizes, seed=0, by="family")                # whole families per role
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gradient_quarantine.seeding import no_loophole_rng, split_rng
from gradient_quarantine.substrate.modes import parse_mode
from gradient_quarantine.substrate.types import MODES, Mode

ROLES: tuple[str, ...] = ("warmstart", "pairs", "train", "eval")
ROLES_BY: tuple[str, ...] = ("instance", "family")  # data.roles_by: how roles are drawn


class RoleOverlapError(ValueError):
    """Two stages of a run would use the same problem (e.g. a pair file built on training problems)."""


@dataclass(frozen=True)
class Split:
    """{problem id: role}, plus the settings that made it (recorded in the run directory as split.json)."""

    role_of: dict[str, str]
    sizes: dict[str, float]
    seed: int
    forced: dict[str, str] = field(default_factory=dict)
    by: str = "instance"  # ROLES_BY: each problem dealt on its own, or whole families

    def ids(self, role: str) -> list[str]:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; roles are {list(ROLES)}")
        return sorted(pid for pid, r in self.role_of.items() if r == role)

    def counts(self, modes_of: Mapping[str, Mode]) -> dict[str, dict[str, int]]:
        """{role: {mode: number of problems}} (modes as given, so no-loophole problems count as such)."""
        out: dict[str, dict[str, int]] = {r: {} for r in ROLES}
        for pid, role in sorted(self.role_of.items()):
            m = parse_mode(modes_of[pid]).value
            out[role][m] = out[role].get(m, 0) + 1
        return out

    def apply_no_loophole(self, modes_of: Mapping[str, Mode], share: float, seed: int) -> dict[str, Mode]:
        """A copy of `modes_of` where `share` of each loophole mode's `train` and `eval` problems (rounded,
        per mode and role) are `Mode.NO_LOOPHOLE`. Warm-start and pair problems keep their mode."""
        if not 0.0 <= share < 1.0:
            raise ValueError(f"the no-loophole share must be in [0, 1), got {share}")
        out = {pid: parse_mode(m) for pid, m in modes_of.items()}
        rng = no_loophole_rng(seed)
        for role in ("train", "eval"):
            for mode in MODES:
                ids = [pid for pid in self.ids(role) if out[pid] is mode]
                rng.shuffle(ids)
                for pid in ids[: int(round(share * len(ids)))]:
                    out[pid] = Mode.NO_LOOPHOLE
        return out

    def train_without_loophole(self, modes_of: Mapping[str, Mode]) -> dict[str, Mode]:
        """A copy of `modes_of` where every `train` problem is `Mode.NO_LOOPHOLE` (the clean reference arm,
        `data.train_loophole=false`); the warm-start, pair and eval problems keep their modes."""
        out = {pid: parse_mode(m) for pid, m in modes_of.items()}
        for pid in self.ids("train"):
            out[pid] = Mode.NO_LOOPHOLE
        return out

    def check_disjoint(self, used: Mapping[str, Sequence[str]]) -> None:
        """Raise RoleOverlapError if problems a stage uses (e.g. {"pairs": pair-file ids}) have another role."""
        clashes = []
        for role, ids in used.items():
            for pid in sorted(set(ids)):
                other = self.role_of.get(pid)
                if other is not None and other != role:
                    clashes.append(f"{pid} ({role} stage, but in role {other})")
        if clashes:
            shown = "; ".join(clashes[:8]) + (f"; ... {len(clashes) - 8} more" if len(clashes) > 8 else "")
            raise RoleOverlapError(
                f"problem roles overlap: {shown}. Use a pair set built on the `pairs` role (routing.pairs=build, or "
                "`gq pairs build --split RUN_DIR/split.json`), or set data.allow_overlap=true to study the overlap "
                "on purpose (the report marks such runs)"
            )

    def to_record(self, modes_of: Mapping[str, Mode] | None = None) -> dict:
        rec: dict = {"seed": self.seed, "sizes": dict(self.sizes), "forced": dict(sorted(self.forced.items())),
                     "roles": {r: self.ids(r) for r in ROLES}}  # fmt: skip
        if self.by != "instance":  # only when set: a by-instance split.json reads as it always did
            rec["by"] = self.by
        if modes_of is not None:
            rec["modes"] = {pid: parse_mode(modes_of[pid]).value for pid in sorted(self.role_of)}
            rec["counts"] = self.counts(modes_of)
        return rec

    @classmethod
    def from_record(cls, rec: Mapping) -> Split:
        role_of = {pid: role for role, ids in rec["roles"].items() for pid in ids}
        return cls(role_of=role_of, sizes=dict(rec["sizes"]), seed=int(rec["seed"]), forced=dict(rec.get("forced", {})),
                   by=str(rec.get("by", "instance")))  # fmt: skip


def _counts_for(n: int, sizes: Mapping[str, float], n_total: int) -> dict[str, int]:
    """How many of one mode's `n` problems each role gets. Fractions apply to `n`; a count (>= 1, integer)
    is the role's total over all modes and is spread in proportion (n / n_total). Remainders go to the
    roles with the largest fractional parts; every role with a positive size gets at least one problem
    when `n` allows."""
    want = {}
    for role in ROLES:
        s = float(sizes.get(role, 0.0))
        want[role] = s * n if s < 1.0 else s * n / n_total
    total = sum(want.values())
    if total > n + 1e-9:
        scale = n / total  # sizes over 100% of this mode: shrink proportionally
        want = {r: w * scale for r, w in want.items()}
    base = {r: math.floor(w) for r, w in want.items()}
    for r in ROLES:  # every requested role present when possible (each mode in every role)
        if want[r] > 0 and base[r] == 0 and sum(base.values()) < n:
            base[r] = 1
    left = min(n, int(round(sum(want.values())))) - sum(base.values())
    for r in sorted(ROLES, key=lambda r: -(want[r] - math.floor(want[r]))):
        if left <= 0:
            break
        if want[r] > base[r]:
            base[r] += 1
            left -= 1
    return base


def _family_roles(
    modes: Mapping[str, Mode], sizes: Mapping[str, float], rng, forced: Mapping[str, str]
) -> dict[str, str]:
    """{problem id: role} with every family in one role (or, when the sizes sum below 1, left out whole).

    Targets are per (role, mode), the instance split's before rounding: a fraction s of each mode's problems,
    or a count spread over the modes in proportion; what the sizes leave is a target of "no role". Families
    (forced ones first, pinned to their role; then largest first, in a seeded order among equals) go one by one
    to the role maximising the sum, over the family's instances, of what that role still lacks of each
    instance's mode (ties: the order of ROLES)."""
    from gradient_quarantine.substrate.problems import family_of

    families: dict[str, list[str]] = {}
    for pid in sorted(modes):
        families.setdefault(family_of(pid), []).append(pid)
    n_total = len(modes)
    share = {r: (float(sizes.get(r, 0.0)) if float(sizes.get(r, 0.0)) < 1.0 else float(sizes[r]) / n_total)
             for r in ROLES}  # fmt: skip
    total = sum(share.values())
    if total > 1.0:  # sizes over 100%: shrink proportionally (as the instance split does)
        share = {r: v / total for r, v in share.items()}
    left_out = max(0.0, 1.0 - sum(share.values()))
    targets = [r for r in ROLES if share[r] > 0] + ([None] if left_out > 1e-9 else [])
    share_of = {**share, None: left_out}
    n_mode = Counter(modes.values())
    lack = {(r, m): share_of[r] * n for r in targets for m, n in n_mode.items()}

    pinned: dict[str, str] = {}
    for pid, role in sorted(forced.items()):
        fam = family_of(pid)
        if pinned.setdefault(fam, role) != role:
            raise ValueError(f"data.roles_by=family: family {fam!r} has problems forced into two roles "
                             f"({pinned[fam]!r} and {role!r}); a family takes one role")  # fmt: skip
    free = sorted(f for f in families if f not in pinned)
    rng.shuffle(free)
    free.sort(key=lambda f: -len(families[f]))  # stable: the seeded order stays among families of one size
    role_of: dict[str, str] = {}
    for fam in sorted(pinned) + free:
        ids = families[fam]
        if fam in pinned:
            role = pinned[fam]
        else:
            role = max(targets, key=lambda r: (sum(lack[r, modes[p]] for p in ids), -targets.index(r)))
        for pid in ids:
            if (role, modes[pid]) in lack:
                lack[role, modes[pid]] -= 1
            if role is not None:
                role_of[pid] = role
    empty = [r for r in targets if r is not None and not any(v == r for v in role_of.values())]
    if empty:
        raise ValueError(
            f"data.roles_by=family: role(s) {empty} got no family ({len(families)} families for data.split={dict(sizes)}); "
            "raise their sizes, use a set with more families, or data.roles_by=instance"
        )
    return role_of


def split_problems(
    modes_of: Mapping[str, Mode | str],
    sizes: Mapping[str, float],
    seed: int,
    forced: Mapping[str, str] | None = None,
    by: str = "instance",
) -> Split:
    """Deal each loophole mode's problems into the roles (see the module docstring).

    `sizes`: {role: fraction in (0, 1) of each mode's problems, or count >= 1 over all modes}; roles left out
    get none. `forced`: {problem id: role} pinned first (e.g. the shipped pair set's problems -> "pairs"); the
    rest are dealt around them. Problems of no role (sizes summing below 1) are left out of the run. `by`:
    "instance" (each problem on its own, stratified by mode) or "family" (whole families, `_family_roles`).
    """
    unknown = set(sizes) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown split roles {sorted(unknown)}; roles are {list(ROLES)}")
    for role, s in sizes.items():
        if s < 0 or (s >= 1.0 and float(s) != int(s)):
            raise ValueError(f"data.split.{role}={s}: give a fraction in [0, 1) or a whole count >= 1")
    if by not in ROLES_BY:
        raise ValueError(f"data.roles_by={by!r}: give one of {list(ROLES_BY)}")
    modes = {pid: parse_mode(m) for pid, m in modes_of.items()}
    forced = dict(forced or {})
    bad = {pid: r for pid, r in forced.items() if r not in ROLES or pid not in modes}
    if bad:
        raise ValueError(f"forced roles must name known problems and roles {list(ROLES)}: {dict(list(bad.items())[:5])}")
    rng = split_rng(seed)
    if by == "family":
        return Split(role_of=_family_roles(modes, sizes, rng, forced), sizes={r: float(s) for r, s in sizes.items()},
                     seed=seed, forced=forced, by=by)  # fmt: skip
    role_of: dict[str, str] = dict(forced)
    n_total = len(modes)
    for mode in MODES:
        ids = sorted(pid for pid, m in modes.items() if m is mode)
        counts = _counts_for(len(ids), sizes, n_total)
        for pid in ids:
            if pid in forced:
                counts[forced[pid]] = max(0, counts[forced[pid]] - 1)
        free = [pid for pid in ids if pid not in forced]
        rng.shuffle(free)
        pos = 0
        for role in ROLES:
            for pid in free[pos : pos + counts[role]]:
                role_of[pid] = role
            pos += counts[role]
    return Split(role_of=role_of, sizes={r: float(s) for r, s in sizes.items()}, seed=seed, forced=forced)


def assign_roles(
    modes_of: Mapping[str, Mode],
    sizes: Mapping[str, float] | None,
    seed: int,
    no_loophole: float = 0.0,
    forced: Mapping[str, str] | None = None,
    by: str = "instance",
) -> tuple[Split | None, dict[str, Mode]]:
    """(the split, the modes with the no-loophole share applied): what a run uses. `sizes=None` means no split
    (every stage shares the problems); the no-loophole share then applies to all of them (and `by` means
    nothing). `by`: roles drawn by "instance" or by "family" (split_problems)."""
    if sizes is None:
        everything = Split(role_of={pid: "train" for pid in modes_of}, sizes={"train": 1.0}, seed=seed)
        return None, everything.apply_no_loophole(modes_of, no_loophole, seed)
    split = split_problems(modes_of, sizes, seed, forced, by=by)
    return split, split.apply_no_loophole(modes_of, no_loophole, seed)
