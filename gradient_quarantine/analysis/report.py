"""`gq report`: the paper's figures and tables (A1-A7) regenerated from run directories alone.

    >>> paths = build_report(["out/runs"], "out/report")     # writes PNG + CSV + MD, and results.md
    >>> runs = load_runs(["out/runs"])                         # Run records, with what each one lacks

Inputs are exactly the files and keys of docs/run_directory.md (config.json, summary.json,
per_mode_deploy.json, deploy_evals.jsonl, metrics.jsonl, rollouts.jsonl); nothing else about a run is read.
The arm files (experiments/arms/*.yaml) say which table an arm belongs to and whether it reads labels; an
arm without a file (an inline arm) lands in A7, so no run is ever left out for lack of a home.

Runs are grouped by preset, steps and what was run (method and settings, config.json), labelled by the arm they
are (`canonical_arm`: the arm file the sweep named, or the shipped arm whose settings on that preset they match,
so a plain `gq train --preset smoke --set method=vanilla` is "vanilla" although its derived label is
"vanilla_teacher50"; the derived label stays as the "config arm" column). Runs of different length, scale or
settings are never averaged together; every delta compares with the vanilla group at the same preset and steps
whose settings differ least, paired by seed. Two runs of one group with the same seed are duplicates: listed in
results.md and their seed's value is their mean, never one silently picked. Tables use complete runs (summary
status "complete" and per_mode_deploy.json present); curves also show partial runs up to where they stopped.
Every run that is partial or missing a file is listed in results.md with what it was left out of.
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

from gradient_quarantine.analysis.stats import ALPHA, MIN_SEEDS
from gradient_quarantine.io import atomic_write_text, read_jsonl

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

    def gauge(self, key: str) -> float:
        """Mean over steps of a metrics.jsonl key (NaN if the run never logs it, e.g. vanilla's routing/*)."""
        vals = [float(r[key]) for r in self.metrics if _finite(r.get(key))]
        return float(np.mean(vals)) if vals else float("nan")

    def series(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of a metrics.jsonl key."""
        rows = [(int(r["step"]), float(r[key])) for r in self.metrics if "step" in r and _finite(r.get(key))]
        if not rows:
            return np.array([], dtype=int), np.array([])
        s, v = zip(*rows, strict=True)
        return np.array(s), np.array(v)

    def eval_series(self, metric: str, which: str = "deploy") -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of deploy_evals.jsonl: the deploy-eval rate over training."""
        rows = []
        for r in self.deploy_evals:
            ev = r.get(which) or {}
            if "step" in r and _finite(ev.get(metric)):
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


def _finite(v: Any) -> bool:
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


# ----------------------------------------------------------------------------------------------------
# The report


@dataclass
class Section:
    key: str
    title: str
    body: str
    files: list[Path] = field(default_factory=list)


def build_report(
    runs_dirs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    alpha: float = ALPHA,
    long_steps: int = 200,
    method_arm: str = METHOD_ARM,
    baseline_arm: str = BASELINE_ARM,
) -> list[Path]:
    """Write A1-A7 (PNG + CSV, tables as MD + CSV) and results.md into `out_dir`; returns the files written."""
    from gradient_quarantine.analysis import figures as F
    from gradient_quarantine.analysis import tables as T

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = load_runs(runs_dirs)
    info = arm_info()
    groups = group_runs(runs, info)
    modes = _modes(runs)

    def ref(g: Group) -> Group | None:
        return closest(g, groups, baseline_arm)

    def full(g: Group) -> Group | None:
        return closest(g, groups, method_arm)

    def artifact(arm: str) -> str:
        return info.get(arm, {}).get("artifact") or "A7"

    def pick(art: str) -> list[Group]:
        keep = [g for g in groups if g.base in (baseline_arm, method_arm) or artifact(g.base) == art]
        return [g for g in keep if not _is_heldout(g, modes)] if art != "A5" else keep

    sections: list[Section] = []
    written: list[Path] = []
    combos = sorted({(g.preset, g.steps) for g in groups})

    # A1: deploy hack and solve over training, route2b vs vanilla.
    files, parts = [], []
    for preset, steps in combos:
        here = [g for g in groups if (g.preset, g.steps) == (preset, steps) and not _is_heldout(g, modes)]
        # each route2b group beside its closest vanilla group (usually one pair per preset and length)
        pairs = [(ref(m), m) for m in here if m.base == method_arm]
        pairs = pairs or [(v, None) for v in here if v.base == baseline_arm]
        for i, pair in enumerate(pairs):
            curves = {"deploy hack": [], "deploy solve": []}
            for g in pair:
                if g is None:
                    continue
                for metric, panel in (("hack", "deploy hack"), ("solve", "deploy solve")):
                    curves[panel].append(_eval_curve(g, metric))
            curves = {k: [c for c in v if c.by_seed] for k, v in curves.items()}
            if not any(curves.values()):
                continue
            stem = out / (f"a1_dynamics_{_slug(preset)}_{steps}steps" + (f"_{i + 1}" if i else ""))
            title = (f"A1: deploy (knob off) hack and solve over training, {method_arm} vs {baseline_arm} — "
                     f"preset {preset}, {steps} steps; line = mean over seeds, band = ±SEM")
            files += F.dynamics_figure(curves, stem, title)
            n = {c.label: len(c.by_seed) for c in curves["deploy hack"]}
            few = [f"{a} has n={k} < {MIN_SEEDS} seeds" for a, k in n.items() if k < MIN_SEEDS]
            parts.append(f"![A1 {preset} {steps}]({stem.name}.png)\n\nData: [{stem.name}.csv]({stem.name}.csv). "
                         f"Seeds: {', '.join(f'{a} n={k}' for a, k in n.items())}."
                         + (" " + "; ".join(few) + "." if few else ""))
    sections.append(Section("A1", "A1 — deploy hack and solve over training", "\n\n".join(parts) or
                             f"_No {method_arm}/{baseline_arm} runs with deploy_evals.jsonl._", files))
    written += files

    # A2: the keynote table, plus the per-mode breakdown.
    a2 = pick("A2")
    t2 = T.arm_table(a2, ref, alpha=alpha, knob_on=True, base=_base_runs(groups, baseline_arm))
    t2m = T.by_mode_table(a2, modes, ref, alpha=alpha)
    files = t2.write(out, "a2_main") + t2m.write(out, "a2_by_mode")
    written += files
    sections.append(Section("A2", "A2 — deploy hack and solve per arm (mean ± SEM over seeds, paired test vs vanilla)",
                            t2.to_markdown() + "\n#### Per mode\n\n" + t2m.to_markdown(), files))

    # A3: the ablation table (what each component buys), with the label-free routing gauges.
    t3 = T.arm_table(pick("A3"), ref, alpha=alpha, gauges=True, knob_on=True)
    t3.notes.append(
        "route2b, erase and knob-on, read together: a routed rollout's gradient outside the knob's own coordinates "
        "reaches neither knob (dropped frac = that share of the routed squared norm; erase drops all of it). "
        "route2b's deploy hack vs erase's says whether routing does more than dropping the same gradient; "
        "route2b's knob-on hack vs its own deploy hack says whether the knob absorbed the hack (knob-on above "
        "deploy) or the routed part was merely erased (knob-on ≈ deploy, as for erase, whose knob never trains).")
    t3.notes += [n for g in pick("A3") if (n := _frout_match_note(g, runs))]
    files = t3.write(out, "a3_ablations")
    written += files
    sections.append(Section("A3", "A3 — ablations: one row per arm", t3.to_markdown(), files))

    # A4: long runs (>= long_steps), collapse marked.
    files, parts = [], []
    for preset, steps in combos:
        if steps < long_steps:
            continue
        gs = [g for g in groups if (g.preset, g.steps) == (preset, steps) and not _is_heldout(g, modes)]
        gs = [g for g in gs if g.base in (baseline_arm, method_arm)] or gs
        panels = {
            "deploy hack": [_eval_curve(g, "hack", markers=True) for g in gs],
            "deploy solve": [_eval_curve(g, "solve", markers=True) for g in gs],
            "train reward/mean": [_metric_curve(g, "reward/mean", markers=True) for g in gs],
            "policy/logp_mean": [_metric_curve(g, "policy/logp_mean", markers=True) for g in gs],
        }
        panels = {k: [c for c in v if c.by_seed] for k, v in panels.items()}
        if not any(panels.values()):
            continue
        stem = out / f"a4_long_run_{_slug(preset)}_{steps}steps"
        files += F.dynamics_figure(
            panels, stem, f"A4: long run, preset {preset}, {steps} steps; thin = seeds, dashed = collapse detected",
            per_seed=True, ylabels={"train reward/mean": "reward", "policy/logp_mean": "mean logp"})
        tc = T.collapse_table([r for g in gs for r in sorted(g.all_runs, key=lambda r: (r.seed, r.path.name))])
        files += tc.write(out, f"a4_collapse_{_slug(preset)}_{steps}steps")
        parts.append(f"![A4 {preset} {steps}]({stem.name}.png)\n\nData: [{stem.name}.csv]({stem.name}.csv).\n\n"
                     + tc.to_markdown())
    sections.append(Section("A4", f"A4 — long run (>= {long_steps} steps), collapse marked", "\n\n".join(parts) or
                            f"_No runs with >= {long_steps} steps (`gq report --long-steps N` to change)._", files))
    written += files

    # A5: held-out modes.
    held = [g for g in groups if _is_heldout(g, modes)]
    files, body = [], ""
    if held:
        t5 = T.heldout_table(held, modes, ref, full, alpha=alpha)
        files += t5.write(out, "a5_heldout")
        for preset, steps in sorted({(g.preset, g.steps) for g in held}):
            series = []
            hs = [h for h in held if (h.preset, h.steps) == (preset, steps)]
            for g in [ref(hs[0]), full(hs[0]), *hs]:
                if g is None:
                    continue
                pair = set(g.pair_modes)
                sums = [_summ(g.values("hack", mode=m)) for m in modes]
                hatched = [bool(pair) and m not in pair for m in modes]
                label = g.arm + (f" (pairs: {', '.join(g.pair_modes)})" if _is_heldout(g, modes) else "")
                label += f", n={len(g.values('hack'))}"
                series.append((label, g.arm, [s.mean for s in sums], [s.sem for s in sums], hatched))
            stem = out / f"a5_heldout_{_slug(preset)}_{steps}steps"
            files += F.bars_figure(list(modes), series, stem, f"A5: per-mode deploy hack, v_grad from 2 of 4 modes "
                                   f"(preset {preset}, {steps} steps)")
            body += f"![A5 {preset} {steps}]({stem.name}.png)\n\nData: [{stem.name}.csv]({stem.name}.csv).\n\n"
        body += t5.to_markdown()
    else:
        body = "_No runs whose pair set covers only some modes (arms heldout_a / heldout_b)._"
    written += files
    sections.append(Section("A5", "A5 — held-out modes", body, files))

    # A6: traces.
    traces = _traces_markdown(runs, modes, baseline_arm)
    p6 = out / "a6_traces.md"
    atomic_write_text(p6, traces)
    written.append(p6)
    sections.append(Section("A6", "A6 — traces (prompt + hint, a hack and a clean completion per mode)",
                            "See [a6_traces.md](a6_traces.md).", [p6]))

    # A7: the remaining ablations, as context.
    t7 = T.arm_table(pick("A7"), ref, alpha=alpha, gauges=True, knob_on=True)
    t7.notes += [n for g in pick("A7") if (n := _frout_match_note(g, runs))]
    unknown = sorted({g.arm for g in groups if g.base not in info})
    if unknown:
        t7.notes.append(f"arms without an arm file (inline arms) are listed here: {', '.join(unknown)}")
    files = t7.write(out, "a7_context")
    written += files
    sections.append(Section("A7", "A7 — remaining ablations (context)", t7.to_markdown(), files))

    # Routing diagnostics: does the gate pick out the hack rows? (labels read here, after the runs)
    tg = T.gate_table([r for r in runs if r.config is not None], {r.path: g.arm for g in groups for r in g.all_runs})
    files = tg.write(out, "routing_gate_by_kind")
    written += files
    sections.append(Section("R", "Routing diagnostics — mean gate per kind of training row", tg.to_markdown(), files))

    # Hacking the policy found itself: loophole vs no-loophole prompts, base rate, roles, census of own hacks.
    th = T.own_hacking_table(runs, {r.path: g.arm for g in groups for r in g.all_runs})
    files = th.write(out, "own_hacking")
    written += files
    sections.append(Section("H", "Own hacking — prompts with and without a loophole, and where the policy's hacks "
                            "come from", th.to_markdown(), files))

    # Missing / partial runs: listed, never silently dropped.
    ti = T.issues_table(runs)
    files = ti.write(out, "runs_issues")
    written += files
    results = _results_md(runs, groups, sections, ti, alpha, runs_dirs)
    p = out / "results.md"
    atomic_write_text(p, results)
    written.append(p)
    return written


def _modes(runs: Sequence[Run]) -> list[str]:
    from gradient_quarantine.substrate.types import MODES

    modes = [m.value for m in MODES]
    for r in runs:
        for ev in (r.eval_of("deploy") or {}, *[(x.get("deploy") or {}) for x in r.deploy_evals[-1:]]):
            for m in (ev.get("by_mode") or {}):
                if m not in modes:
                    modes.append(m)
    return modes


def _is_heldout(g: Group, modes: Sequence[str]) -> bool:
    pm = set(g.pair_modes)
    return bool(pm) and not set(modes) <= pm


def _summ(values: dict[int, float]):
    from gradient_quarantine.analysis.stats import summarize

    return summarize(list(values.values()))


def _base_runs(groups: Sequence[Group], baseline_arm: str) -> dict[tuple[str, int], list[Run]]:
    """Per (preset, steps): the runs whose `base` eval stands for the base model (vanilla's, else any)."""
    out: dict[tuple[str, int], list[Run]] = {}
    for g in groups:
        key = (g.preset, g.steps)
        if g.base == baseline_arm or key not in out:
            rs = [r for r in g.runs if r.eval_of("base")]
            if rs and (g.base == baseline_arm or key not in out):
                out[key] = rs
    return out


def _eval_curve(g: Group, metric: str, markers: bool = False):
    from gradient_quarantine.analysis.figures import Curve

    series = [(int(r.seed), r.eval_series(metric)) for r in g.all_runs]
    return _curve(g, series, markers, Curve)


def _metric_curve(g: Group, key: str, markers: bool = False):
    from gradient_quarantine.analysis.figures import Curve

    series = [(int(r.seed), r.series(key)) for r in g.all_runs]
    return _curve(g, series, markers, Curve)


def _curve(g: Group, series: list[tuple[int, tuple[np.ndarray, np.ndarray]]], markers: bool, Curve: Any):
    """One curve per seed; a seed run twice (a duplicate) is the mean of its runs at each step."""
    series = [(s, v) for s, v in series if len(v[0])]
    steps = np.array(sorted({int(t) for s, v in series for t in v[0]}), dtype=int)
    pos = {int(t): i for i, t in enumerate(steps)}
    per_seed: dict[int, list[np.ndarray]] = defaultdict(list)
    for s, (st, vals) in series:
        y = np.full(len(steps), np.nan)
        for t, v in zip(st, vals, strict=True):
            y[pos[int(t)]] = v
        per_seed[s].append(y)
    by_seed = {s: ys[0] if len(ys) == 1 else _nanmean(ys) for s, ys in per_seed.items()}
    marks = []
    if markers:
        for r in g.all_runs:
            c = r.collapse
            if c.get("detected") and c.get("step") is not None:
                marks.append((int(r.seed), float(c["step"]), "collapse"))
    return Curve(label=g.arm, arm=g.base, steps=steps, by_seed=by_seed, markers=marks)


def _nanmean(ys: list[np.ndarray]) -> np.ndarray:
    stack = np.vstack(ys)
    n = np.sum(~np.isnan(stack), 0)
    return np.where(n > 0, np.nansum(stack, 0) / np.maximum(n, 1), np.nan)


def _frout_match_note(g: Group, runs: Sequence[Run]) -> str | None:
    """How closely a frout-matched control (random-V, placebo) followed its partner, step by step: |frout_t -
    partner frout_t| over the steps of its complete runs. The partner is the run directory its config's
    `routing.frout_from` names when that run was read, else the target it logged (`routing/frout_target`, which
    is the partner's frout at that step). None for arms that are not matched controls."""
    by_path = {r.path.resolve(): r for r in runs}
    diffs: list[float] = []
    n_runs, n_mean_only = 0, 0
    for r in g.runs:
        src = ((r.config or {}).get("routing") or {}).get("frout_from")
        partner = by_path.get(Path(src).resolve()) if src else None
        want = ({int(m["step"]): float(m["routing/frout"]) for m in partner.metrics
                 if "step" in m and _finite(m.get("routing/frout"))} if partner is not None else {})  # fmt: skip
        d = []
        for m in r.metrics:
            t, got = m.get("step"), m.get("routing/frout")
            target = want.get(int(t)) if partner is not None and t is not None else m.get("routing/frout_target")
            if _finite(got) and _finite(target):
                d.append(abs(float(got) - float(target)))
        if d and (partner is not None or any("routing/frout_target" in m for m in r.metrics)):
            diffs += d
            n_runs += 1
        elif src:
            n_mean_only += 1  # a run from before step matching: matched in mean frout only
    if not diffs and not n_mean_only:
        return None
    out = f"{g.arm} ({g.preset}, {g.steps} steps): "
    if diffs:
        out += (f"frout matched to its partner step by step: max |frout − partner frout| = {max(diffs):.3g}, "
                f"mean = {float(np.mean(diffs)):.3g} over {len(diffs)} steps of {n_runs} run(s)")
    if n_mean_only:
        out += ("; " if diffs else "") + f"{n_mean_only} run(s) matched in mean frout only (no per-step target logged)"
    return out


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", s).strip("-") or "x"


# ----------------------------------------------------------------------------------------------------
# A6 traces


def _fence(text: str) -> str:
    """A backtick fence longer than any backtick run inside `text`, so completions render verbatim."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _pick_trace(rows: list[tuple[Run, dict[str, Any]]], want: str) -> tuple[Run, dict[str, Any], str] | None:
    """The first matching rollout in a fixed order (policy's own before teacher's; later steps first)."""
    def ok(row: dict[str, Any]) -> bool:
        if want == "hack":
            return bool(row.get("hack"))
        if want == "solve":
            return bool(row.get("gt_pass")) and not row.get("hack")
        # clean but unsolved: well-formed, no hack signature, not a hack
        return bool(row.get("format_ok")) and not row.get("attempted") and not row.get("hack")

    for teacher in (False, True):
        for run, row in rows:
            if bool(row.get("teacher")) == teacher and ok(row):
                kind = {"hack": "hack", "solve": "clean (solves: gt_pass)",
                        "clean": "clean (no hack, but does not solve: no solving completion was sampled)"}[want]
                return run, row, kind + (" — a teacher completion (the policy sampled none)" if teacher else "")
    return None


def _pick_pair(cands: list[tuple[Run, dict[str, Any]]]) -> list[tuple[Run, dict[str, Any], str] | None]:
    """[hack, clean]: on the same problem when the logs allow it (so one prompt shows both), else independently."""
    by_problem: dict[Any, list[tuple[Run, dict[str, Any]]]] = defaultdict(list)
    for run, row in cands:
        by_problem[row.get("problem_id")].append((run, row))
    hack = _pick_trace(cands, "hack")
    for teacher in (False, True):  # the policy's own hacks first
        for run, row in cands:
            if not row.get("hack") or bool(row.get("teacher")) != teacher:
                continue
            same = by_problem[row.get("problem_id")]
            clean = _pick_trace(same, "solve") or _pick_trace(same, "clean")
            if clean is not None:
                return [_pick_trace([(run, row)], "hack"), clean]
    return [hack, _pick_trace(cands, "solve") or _pick_trace(cands, "clean")]


def _traces_markdown(runs: Sequence[Run], modes: Sequence[str], baseline_arm: str) -> str:
    ordered = sorted([r for r in runs if r.config is not None],
                     key=lambda r: (r.arm != baseline_arm, r.arm or "", r.seed or 0, r.path.name))
    by_mode: dict[str, list[tuple[Run, dict[str, Any]]]] = defaultdict(list)
    for r in ordered:
        rows = sorted(r.rollouts, key=lambda x: -int(x.get("step", 0)))
        for row in rows:
            by_mode[str(row.get("mode"))].append((r, row))
    lines = ["# A6 — traces per loophole mode", "",
             "For every mode: the prompt (with the mode's hint) and a hack and a clean completion sampled during "
             "training, from rollouts.jsonl with the grader's labels. Picked deterministically: vanilla runs first, "
             "the policy's own completions before teacher ones, later steps first.", ""]
    for m in modes:
        lines += [f"## {m}", ""]
        cands = by_mode.get(m, [])
        if not cands:
            lines += ["_No logged rollouts of this mode in any run._", ""]
            continue
        picks = _pick_pair(cands)
        prompt_src = next((p for p in picks if p is not None), None) or (cands[0][0], cands[0][1], "")
        prompt = str(prompt_src[1].get("prompt", ""))
        system = prompt_src[1].get("system")  # absent in run dirs written before it was logged
        f = _fence(prompt)
        if system is not None:
            lines += ["**System message**", "", _fence(str(system)) + "text", str(system), _fence(str(system)), ""]
        lines += ["**Prompt (with the mode's hint)**", "", f + "text", prompt, f, ""]
        for want, p in zip(("hack", "clean"), picks, strict=True):
            if p is None:
                lines += [f"**{want.capitalize()} completion:** _none logged for this mode._", ""]
                continue
            run, row, kind = p
            labels = ", ".join(f"{k}={row.get(k)}" for k in ("gt_pass", "flawed_pass", "hack", "attempted",
                                                             "format_ok", "reward", "reason"))
            comp = str(row.get("completion", ""))
            f = _fence(comp)
            lines += [f"**{kind.capitalize()}** — run `{run.path.name}` (arm {run.arm}, seed {run.seed}), "
                      f"step {row.get('step')}, problem `{row.get('problem_id')}`; {labels}", "",
                      f + "text", comp, f, ""]
            if row.get("system") not in (None, system):  # e.g. an inoculated training prompt
                lines += ["_(asked under a different system message:)_", "",
                          _fence(str(row["system"])) + "text", str(row["system"]), _fence(str(row["system"])), ""]
            if row.get("prompt") != prompt:
                lines += ["_(this completion answers a different prompt of the same mode:)_", "",
                          _fence(str(row.get("prompt"))) + "text", str(row.get("prompt")),
                          _fence(str(row.get("prompt"))), ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------
# results.md


def _results_md(runs: Sequence[Run], groups: Sequence[Group], sections: Sequence[Section], issues_t: Any,
                 alpha: float, runs_dirs: Sequence[str | Path]) -> str:
    n_complete = sum(r.complete for r in runs)
    few = sorted({f"{g.arm} ({g.preset}, {g.steps} steps): n={len(g.runs)}" for g in groups if len(g.runs) < MIN_SEEDS})
    out = [
        "# Results",
        "",
        f"Regenerated by `gq report` from {len(runs)} run directories under "
        f"{', '.join(f'`{d}`' for d in runs_dirs)}: {n_complete} complete, {len(runs) - n_complete} partial or "
        "missing files (listed at the end). Nothing else was read.",
        "",
        f"Statistics: mean ± SEM over seeds; deltas vs vanilla at the same preset and steps, paired by seed; "
        f"two-sided paired t-test (scipy.stats.ttest_rel), alpha = {alpha}, n = shared seeds, uncorrected for "
        "multiple comparisons. Deploy = knob off.",
        "",
    ]
    if few:
        out += [f"**Fewer than {MIN_SEEDS} seeds:** " + "; ".join(few) + ".", ""]
    dups = [(g, seed, rs) for g in groups for seed, rs in g.duplicates(complete=False).items()]
    if dups:
        out += [f"**Duplicate runs:** {len(dups)} arm/seed pair(s) were run more than once (listed under "
                "[Duplicate runs](#duplicate-runs)); each such seed counts once, as the mean of its runs.", ""]
    out += ["## Contents", ""]
    for s in sections:
        out.append(f"- [{s.title}](#{s.key.lower()}) — " + ", ".join(f"[{p.name}]({p.name})" for p in s.files))
    out += ["- [Missing or partial runs](#missing-or-partial-runs)"]
    out += ["- [Duplicate runs](#duplicate-runs)", ""] if dups else [""]
    for s in sections:
        out += [f'<a id="{s.key.lower()}"></a>', f"## {s.title}", "", s.body.strip(), ""]
    out += ["## Missing or partial runs", "", "Also as [runs_issues.md](runs_issues.md) / [runs_issues.csv](runs_issues.csv).", ""]
    out += [issues_t.to_markdown() if issues_t.rows else "_None: every run is complete with every file._", ""]
    if dups:
        out += ["## Duplicate runs", "",
                "Runs of the same arm (method and settings), preset, steps and seed. Tables and curves use the mean "
                "of a seed's runs (n counts the seed once); remove or move the runs that should not count.", "",
                "| arm | preset | steps | seed | runs |", "|---|---|---|---|---|"]  # fmt: skip
        for g, seed, rs in dups:
            out.append(f"| {g.arm} | {g.preset} | {g.steps} | {seed} | "
                       + ", ".join(f"{r.path.name} ({r.status})" for r in rs) + " |")
        out.append("")
    label = {r.path: g.arm for g in groups for r in g.all_runs}
    out += ["## Runs read", ""]
    weak = [f"{r.path.name} ({r.isolation})" for r in runs if r.isolation != "bwrap"]
    if weak:  # a result graded under a weaker sandbox (or an unknown one) must be visible as such
        out += ["**Not graded under the bwrap sandbox** (docs/architecture.md, \"Sandbox\"): " + ", ".join(weak) + ".", ""]
    out += ["| run | arm | config arm | seed | preset | steps | status | sandbox | config_hash |",
            "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in runs:
        c = r.config or {}
        out.append(f"| {r.path.name} | {label.get(r.path, '?')} | {r.arm or '?'} | "
                   f"{r.seed if r.seed is not None else '?'} | {r.preset} | {r.steps} | {r.status} | {r.isolation} | "
                   f"{c.get('config_hash', '?')} |")
    return "\n".join(out) + "\n"
