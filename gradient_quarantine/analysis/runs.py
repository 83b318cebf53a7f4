"""The report's view of run directories: one `Run` per directory (what it holds, what it lacks) and `Group`s of
runs of one arm at one preset and step count.

    >>> runs = load_runs(["out/runs"])          # Run records, each with `issues`: what is missing or partial
    >>> groups = group_runs(runs)              # [Group(preset, arm, steps, runs=complete, all_runs=...)]
    >>> ref = closest(groups[1], groups, "vanilla")   # the vanilla group a delta compares with

Inputs are exactly the files and keys of docs/run_directory.md (config.json, summary.json,
per_mode_deploy.json, deploy_evals.jsonl, metrics.jsonl, rollouts.jsonl); nothing else about a run is read.
Runs are grouped by preset, steps and what was run (method and settings, config.json) and labelled by the arm
they are (`canonical_arm`); runs of different length, scale or settings are never put in one group.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from gradient_quarantine.io import read_jsonl

CONTRACT_FILES = ("config.json", "summary.json", "per_mode_deploy.json", "deploy_evals.jsonl", "metrics.jsonl",
                  "rollouts.jsonl", "train.safetensors")
METHOD_ARM, BASELINE_ARM = "route2b", "vanilla"


# ----------------------------------------------------------------------------------------------------
# Reading run directories


@dataclass
class Run:
    """One run directory as the report sees it; `issues` says what is missing or partial."""

    path: Path
    config: dict[str, Any] | None
    summary: dict[str, Any] | None
    per_mode: dict[str, Any] | None
    deploy_evals: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    issues: list[str] = field(default_factory=list)

    @property
    def arm(self) -> str | None:
        return None if self.config is None else self.config.get("arm")

    @property
    def seed(self) -> int | None:
        return None if self.config is None else self.config.get("seed")

    @property
    def preset(self) -> str:
        return str((self.config or {}).get("preset") or "?")

    @property
    def steps(self) -> int:
        return int((self.config or {}).get("steps") or 0)

    @property
    def pair_modes(self) -> list[str]:
        return list((self.config or {}).get("pair_modes") or [])

    @property
    def status(self) -> str:
        return str((self.summary or {}).get("status", "unknown"))

    @property
    def steps_done(self) -> int:
        return int((self.summary or {}).get("steps_done") or 0)

    @property
    def isolation(self) -> str:
        """The sandbox level the run's programs were graded under (summary.json; "unrecorded" before it was)."""
        return str((self.summary or {}).get("isolation") or "unrecorded")

    @property
    def collapse(self) -> dict[str, Any]:
        c = (self.summary or {}).get("collapse") or {}
        if not c.get("detected") and self.metrics:
            # Fall back to the per-step health flag if the summary has none (a run killed before its summary).
            flagged = [r["step"] for r in self.metrics if r.get("health/collapse")]
            if flagged:
                return {"detected": True, "step": flagged[0], "reasons": ["health/collapse in metrics.jsonl"]}
        return c

    @property
    def complete(self) -> bool:
        return self.config is not None and self.status == "complete" and self.per_mode is not None

    def eval_of(self, which: str = "deploy") -> dict[str, Any] | None:
        return (self.per_mode or {}).get(which)

    def deploy(self, metric: str, which: str = "deploy", mode: str | None = None) -> float:
        """A final deploy-eval rate (`hack`, `solve`, `attempt`), overall or for one mode; NaN if absent."""
        ev = self.eval_of(which)
        if not ev:
            return float("nan")
        if mode is not None:
            ev = (ev.get("by_mode") or {}).get(mode)
            if not ev:
                return float("nan")
        v = ev.get(metric)
        return float(v) if v is not None else float("nan")

    def prompt_rates(self, metric: str = "hack", which: str = "deploy") -> dict[str, float] | None:
        """{problem_id: the rate of `metric` over that prompt's samples} of the final `which` eval, from
        deploy_samples.jsonl; None for a run without it (runs from before the file existed)."""
        path = self.path / "deploy_samples.jsonl"
        if not path.is_file():
            return None
        by: dict[str, list[bool]] = defaultdict(list)
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                if row.get("variant") == which:
                    by[row["problem_id"]].append(bool(row[metric]))
        return {p: sum(v) / len(v) for p, v in sorted(by.items())} or None

    def gauge(self, key: str) -> float:
        """Mean over steps of a metrics.jsonl key (NaN if the run never logs it, e.g. vanilla's routing/*)."""
        vals = [float(r[key]) for r in self.metrics if finite(r.get(key))]
        return float(np.mean(vals)) if vals else float("nan")

    def series(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of a metrics.jsonl key."""
        rows = [(int(r["step"]), float(r[key])) for r in self.metrics if "step" in r and finite(r.get(key))]
        if not rows:
            return np.array([], dtype=int), np.array([])
        s, v = zip(*rows, strict=True)
        return np.array(s), np.array(v)

    def eval_series(self, metric: str, which: str = "deploy") -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of deploy_evals.jsonl: the deploy-eval rate over training."""
        rows = []
        for r in self.deploy_evals:
            ev = r.get(which) or {}
            if "step" in r and finite(ev.get(metric)):
                rows.append((int(r["step"]), float(ev[metric])))
        rows = sorted(dict(rows).items())  # a step evaluated twice (resume): the later line wins
        if not rows:
            return np.array([], dtype=int), np.array([])
        s, v = zip(*rows, strict=True)
        return np.array(s), np.array(v)

    @cached_property
    def rollouts(self) -> list[dict[str, Any]]:
        p = self.path / "rollouts.jsonl"
        try:
            return read_jsonl(p) if p.is_file() else []
        except (OSError, ValueError):
            return []


def finite(v: Any) -> bool:
    """A real, finite number (not a bool, None, NaN or inf): what a metric value must be to count."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _read_json(path: Path, issues: list[str]) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        issues.append(f"{path.name} unreadable ({type(e).__name__})")
        return None
    if not isinstance(d, dict):
        issues.append(f"{path.name} is not a JSON object")
        return None
    return d


def _read_rows(path: Path, issues: list[str]) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    try:
        return [r for r in read_jsonl(path) if isinstance(r, dict)]
    except (OSError, ValueError) as e:
        issues.append(f"{path.name} unreadable: {e}")
        return []


def load_run(path: Path) -> Run:
    issues: list[str] = []
    config = _read_json(path / "config.json", issues)
    summary = _read_json(path / "summary.json", issues)
    per_mode = _read_json(path / "per_mode_deploy.json", issues)
    run = Run(path, config, summary, per_mode, _read_rows(path / "deploy_evals.jsonl", issues),
              _read_rows(path / "metrics.jsonl", issues), issues)
    if config is None:
        issues.append("no config.json: left out of everything (arm and seed unknown)")
    else:
        missing_keys = [k for k in ("arm", "seed", "preset", "steps") if config.get(k) is None]
        if missing_keys:
            issues.append(f"config.json lacks {', '.join(missing_keys)}")
    if summary is None:
        issues.append("no summary.json")
    elif run.status != "complete":
        err = summary.get("error")
        issues.append(f"status {run.status} at step {run.steps_done}/{summary.get('steps', '?')}"
                      + (f" (error: {str(err)[:200]})" if err else "") + ": left out of the tables, curves kept")
    if per_mode is None:
        issues.append("no per_mode_deploy.json: left out of the tables")
    if not (path / "deploy_evals.jsonl").is_file():
        issues.append("no deploy_evals.jsonl: left out of the curves (A1, A4)")
    if not (path / "metrics.jsonl").is_file():
        issues.append("no metrics.jsonl: routing gauges and training curves n/a")
    if not (path / "rollouts.jsonl").is_file():
        issues.append("no rollouts.jsonl: no traces from this run")
    if run.complete and not (path / "train.safetensors").is_file():
        issues.append("no train.safetensors (does not change the numbers)")
    return run


def load_runs(runs_dirs: Iterable[str | Path]) -> list[Run]:
    """Every run directory under the given folders (a folder that is itself a run directory counts too)."""
    out: list[Run] = []
    seen: set[Path] = set()
    for d in runs_dirs:
        d = Path(d)
        if not d.is_dir():
            raise FileNotFoundError(f"runs directory {d} does not exist")
        cands = [d] if _looks_like_run(d) else sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
        for p in cands:
            rp = p.resolve()
            if rp not in seen and (_looks_like_run(p) or re.match(r"^\d{4,}_", p.name)):
                seen.add(rp)
                out.append(load_run(p))
    return out


def _looks_like_run(p: Path) -> bool:
    return any((p / f).exists() for f in CONTRACT_FILES[:4])


# ----------------------------------------------------------------------------------------------------
# Groups: one arm (method and settings) at one preset and step count

# config keys that say who or where, not what was run: they never split a group. routing.frout_from is the
# partner's run directory (another per seed); the seed pairs runs across groups.
NOT_SETTINGS = {"name", "arm", "seed", "preset", "steps", "git_commit", "config_hash", "run.cache_dir",
                "run.progress", "run.torch_threads", "run.grader_workers", "routing.frout_from"}  # fmt: skip


def run_settings(config: dict[str, Any]) -> dict[str, str]:
    """{dotted key: JSON value} of everything in config.json that can change what was run."""
    return {k: v for k, v in _flat(config).items() if k not in NOT_SETTINGS}


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = _j(v)
    return out


def _compatible(a: dict[str, str], b: dict[str, str]) -> bool:
    """Same value for every key both record (a key one run lacks is from another code version: not a split)."""
    return all(a[k] == b[k] for k in a.keys() & b.keys())


def _differing(a: dict[str, str], b: dict[str, str]) -> list[str]:
    return sorted(k for k in a.keys() & b.keys() if a[k] != b[k])


@dataclass
class Group:
    preset: str
    arm: str  # the label shown: `base`, plus [the settings that tell it apart] if another group shares `base`
    steps: int
    runs: list[Run]  # complete runs (the tables)
    all_runs: list[Run]  # every run with a config (the curves)
    reads_labels: bool = False
    base: str = ""  # the arm it is (`canonical_arm`): what references and arm files are looked up by
    settings: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.base = self.base or self.arm

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.preset, self.arm, self.steps)

    @property
    def pair_modes(self) -> list[str]:
        modes = [r.pair_modes for r in self.all_runs]
        return modes[0] if modes else []

    @property
    def config_arms(self) -> list[str]:
        """The arm labels the runs' config.json recorded (e.g. the derived 'vanilla_teacher50')."""
        return sorted({str(r.arm) for r in self.all_runs})

    def duplicates(self, complete: bool = True) -> dict[int, list[Run]]:
        """{seed: its runs} for every seed run more than once in this group."""
        by: dict[int, list[Run]] = defaultdict(list)
        for r in sorted(self.runs if complete else self.all_runs, key=lambda r: r.path.name):
            by[int(r.seed)].append(r)  # type: ignore[arg-type]
        return {s: rs for s, rs in sorted(by.items()) if len(rs) > 1}

    def values(self, metric: str, mode: str | None = None, which: str = "deploy") -> dict[int, float]:
        """{seed: final deploy rate} over complete runs. A seed run twice (a duplicate, listed in results.md)
        gets the mean of its runs: neither is silently preferred."""
        by: dict[int, list[float]] = defaultdict(list)
        for r in sorted(self.runs, key=lambda r: r.path.name):
            v = r.deploy(metric, which, mode)
            if math.isfinite(v):
                by[int(r.seed)].append(v)  # type: ignore[arg-type]
        return {s: float(np.mean(vs)) for s, vs in sorted(by.items())}

    def prompt_rates(self, metric: str = "hack") -> dict[int, dict[str, float]]:
        """{seed: {problem_id: rate}} of the final deploy eval over complete runs that wrote deploy_samples.jsonl;
        a seed run twice gets each prompt's mean over its runs."""
        by: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for r in sorted(self.runs, key=lambda r: r.path.name):
            rates = r.prompt_rates(metric)
            if rates:
                for p, v in rates.items():
                    by[int(r.seed)][p].append(v)  # type: ignore[arg-type]
        return {s: {p: float(np.mean(v)) for p, v in ps.items()} for s, ps in sorted(by.items())}

    def mode_mean(self, metric: str, modes: Sequence[str]) -> dict[int, float]:
        """{seed: mean over `modes` of the per-mode rate}; a seed lacking any of the modes is left out."""
        per = [self.values(metric, mode=m) for m in modes]
        seeds = set.intersection(*(set(p) for p in per)) if per else set()
        return {s: float(np.mean([p[s] for p in per])) for s in sorted(seeds)}


def arm_info() -> dict[str, dict[str, Any]]:
    """{arm: {artifact, reads_labels, description, set}} from the shipped arm files (one source of truth)."""
    from gradient_quarantine.experiments.sweep import list_arms, load_arm

    info = {}
    for name in list_arms():
        a = load_arm(name)
        info[name] = {"artifact": a.artifact, "reads_labels": a.reads_labels, "description": a.description,
                      "set": dict(a.set)}  # fmt: skip
    return info


def canonical_arm(run: Run, info: dict[str, dict[str, Any]], cache: dict | None = None) -> str | None:
    """The arm a run is, from its config alone:

    1. config.json's `arm` when it was set explicitly (a sweep sets it, `--set arm=` too: it differs from the
       label the settings derive);
    2. else the first shipped arm (vanilla and route2b first) that, applied to the run's preset as it is now,
       agrees with the run on every key an arm file sets (method, routing.*, teacher.fraction, ...); keys no arm
       sets (grpo.lr, eval.*) do not decide the arm, they only split groups. So
       `gq train --preset smoke --set method=vanilla` is the vanilla arm, derived label "vanilla_teacher50";
    3. else config.json's `arm` (the derived label).
    """
    cfg = run.config or {}
    label = cfg.get("arm")
    if label is not None and label != _derived_arm(cfg):
        return label
    arm_keys = {k for a in info.values() for k, v in (a.get("set") or {}).items()} - NOT_SETTINGS
    mine = {k: v for k, v in run_settings(cfg).items() if k in arm_keys}
    cache = {} if cache is None else cache
    order = _arm_order(info)
    for name in sorted(info, key=lambda a: order.get(a, len(info))):
        key = (run.preset, name)
        if key not in cache:
            cache[key] = _preset_arm_settings(run.preset, info[name].get("set") or {})
        theirs = cache[key]
        if theirs is not None and all(theirs.get(k, v) == v for k, v in mine.items()):
            return name
    return label


def _j(v: Any) -> str:
    return json.dumps(v, sort_keys=True)


def _derived_arm(cfg: dict[str, Any]) -> str | None:
    """The label the trainer derives from these settings (None if the config no longer validates)."""
    from gradient_quarantine.train.config import TrainConfig

    try:
        return TrainConfig.from_record({k: v for k, v in cfg.items() if k != "arm"}).derived_arm()
    except Exception:  # a config from another code version: treat its label as given
        return None


def _placeholder(v: Any) -> bool:
    return isinstance(v, str) and "{run_dir:" in v


def _preset_arm_settings(preset: str, sets: dict[str, Any]) -> dict[str, str] | None:
    """run_settings of the config `gq queue add` would build for this arm on this preset (None if it cannot)."""
    from gradient_quarantine.experiments.presets import build_config

    try:
        items = [f"{k}={json.dumps('x' if _placeholder(v) else v)}" for k, v in sets.items()]
        return run_settings(build_config(preset, items).to_record())
    except Exception:  # a preset that no longer exists or an arm that does not apply to it: no match
        return None


def group_runs(runs: Sequence[Run], info: dict[str, dict[str, Any]] | None = None) -> list[Group]:
    """Groups of runs of one arm, preset and step count with compatible settings (`_compatible`); two groups
    that would share a label are told apart by the settings that differ, e.g. `vanilla [grpo.lr=0.2]`."""
    info = info if info is not None else arm_info()
    cache: dict = {}
    by: dict[tuple[str, str, int], list[list[Run]]] = defaultdict(list)
    for r in sorted(runs, key=lambda r: r.path.name):
        if r.config is None or r.arm is None or r.seed is None:
            continue
        base = canonical_arm(r, info, cache) or str(r.arm)
        clusters = by[(r.preset, base, r.steps)]
        mine = run_settings(r.config)
        home = next((c for c in clusters if all(_compatible(mine, run_settings(o.config)) for o in c)), None)
        if home is None:
            clusters.append([r])
        else:
            home.append(r)
    order = _arm_order(info)
    groups = []
    for (p, base, s), clusters in by.items():
        sets = [_merged_settings(c) for c in clusters]
        for i, rs in enumerate(clusters):
            label = base
            if len(clusters) > 1:  # name it by what sets it apart from the others of the same arm
                diff = sorted({k for j, o in enumerate(sets) if j != i for k in _differing(sets[i], o)})
                label += " [" + ", ".join(f"{k}={json.loads(sets[i][k])}" for k in diff[:3]) + (
                    ", ..." if len(diff) > 3 else "") + "]"
            groups.append(Group(p, label, s, [r for r in rs if r.complete], rs,
                                bool(info.get(base, {}).get("reads_labels")), base=base, settings=sets[i]))  # fmt: skip
    return sorted(groups, key=lambda g: (g.preset, g.steps, order.get(g.base, len(order)), g.arm))


def _merged_settings(runs: Sequence[Run]) -> dict[str, str]:
    out: dict[str, str] = {}
    for r in runs:
        out.update(run_settings(r.config or {}))
    return out


def closest(g: Group, groups: Sequence[Group], base: str) -> Group | None:
    """The group of arm `base` at g's preset and steps whose settings differ least from g's (g's reference)."""
    cands = [o for o in groups if o.base == base and (o.preset, o.steps) == (g.preset, g.steps)]
    if not cands:
        return None
    return min(cands, key=lambda o: (o is not g, len(_differing(g.settings, o.settings)), o.arm))


def _arm_order(info: dict[str, dict[str, Any]]) -> dict[str, int]:
    first = [BASELINE_ARM, METHOD_ARM]
    rest = sorted((a for a in info if a not in first), key=lambda a: (info[a]["artifact"], a))
    return {a: i for i, a in enumerate(first + rest)}
