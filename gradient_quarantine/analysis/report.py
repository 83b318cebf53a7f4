"""`gq report`: the paper's figures and tables (A1-A7) regenerated from run directories alone.

    >>> paths = build_report(["out/runs"], "out/report")     # writes PNG + CSV + MD, and results.md
    >>> rep = Report(out, runs, group_runs(runs), arm_info(), modes)
    >>> a2_main(rep)                                           # one artifact: writes a2_*.md/.csv, returns its Section

`build_report` reads the runs (analysis/runs.py: `Run`, `Group`, `load_runs`, `group_runs`), then calls one
function per artifact (`ARTIFACTS`: A1-A7, the routing and own-hacking tables), each writing its files and
returning its section, and writes results.md from them (`results_md`, with the run table `runs_read_md`).

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

import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gradient_quarantine.analysis.runs import (
    BASELINE_ARM,
    METHOD_ARM,
    Group,
    Run,
    arm_info,
    closest,
    finite,
    group_runs,
    load_runs,
)
from gradient_quarantine.analysis.stats import ALPHA, MIN_SEEDS
from gradient_quarantine.analysis.traces import traces_markdown
from gradient_quarantine.io import atomic_write_text

# ----------------------------------------------------------------------------------------------------
# The report: one function per artifact, each writing its files and returning its part of results.md


@dataclass
class Section:
    key: str
    title: str
    body: str
    files: list[Path] = field(default_factory=list)


@dataclass
class Report:
    """What every artifact is made from: the runs read, their groups and modes, and the options of `gq report`."""

    out: Path
    runs: list[Run]
    groups: list[Group]
    info: dict[str, dict[str, Any]]  # arm_info(): each arm file's artifact, reads_labels and settings
    modes: list[str]
    alpha: float = ALPHA
    long_steps: int = 200
    method_arm: str = METHOD_ARM
    baseline_arm: str = BASELINE_ARM

    def ref(self, g: Group) -> Group | None:
        """g's reference: the vanilla group at g's preset and steps whose settings differ least from g's."""
        return closest(g, self.groups, self.baseline_arm)

    def full(self, g: Group) -> Group | None:
        """The route2b group closest to g (what a held-out arm is compared with)."""
        return closest(g, self.groups, self.method_arm)

    def artifact(self, arm: str) -> str:
        """The table an arm belongs to (its arm file's `artifact`); an arm without a file goes to A7."""
        return self.info.get(arm, {}).get("artifact") or "A7"

    def pick(self, art: str) -> list[Group]:
        """The groups of one table: its arms with vanilla and route2b; held-out groups only in A5."""
        keep = [g for g in self.groups if g.base in (self.baseline_arm, self.method_arm) or self.artifact(g.base) == art]
        return [g for g in keep if not _is_heldout(g, self.modes)] if art != "A5" else keep

    @property
    def combos(self) -> list[tuple[str, int]]:
        """Every (preset, steps) read: curves are drawn per combination, never across them."""
        return sorted({(g.preset, g.steps) for g in self.groups})

    @property
    def labels(self) -> dict[Path, str]:
        """{run path: its group's label}."""
        return {r.path: g.arm for g in self.groups for r in g.all_runs}


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
    from gradient_quarantine.analysis import tables as T

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = load_runs(runs_dirs)
    info = arm_info()
    rep = Report(out, runs, group_runs(runs, info), info, _modes(runs), alpha, long_steps, method_arm, baseline_arm)
    sections = [make(rep) for make in ARTIFACTS]
    issues = T.issues_table(runs)  # missing / partial runs: listed, never silently dropped
    issue_files = issues.write(out, "runs_issues")
    results = out / "results.md"
    atomic_write_text(results, results_md(runs, rep.groups, sections, issues, alpha, runs_dirs))
    return [p for s in sections for p in s.files] + issue_files + [results]


def a1_dynamics(rep: Report) -> Section:
    """A1: deploy hack and solve over training, each route2b group beside its closest vanilla group (usually one
    figure per preset and length)."""
    from gradient_quarantine.analysis import figures as F

    out, method_arm, baseline_arm = rep.out, rep.method_arm, rep.baseline_arm
    files, parts = [], []
    for preset, steps in rep.combos:
        here = [g for g in rep.groups if (g.preset, g.steps) == (preset, steps) and not _is_heldout(g, rep.modes)]
        pairs = [(rep.ref(m), m) for m in here if m.base == method_arm]
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
    return Section("A1", "A1 — deploy hack and solve over training", "\n\n".join(parts) or
                   f"_No {method_arm}/{baseline_arm} runs with deploy_evals.jsonl._", files)


def a2_main(rep: Report) -> Section:
    """A2: the keynote table (deploy hack and solve per arm, knob-on and the base model beside), and per mode."""
    from gradient_quarantine.analysis import tables as T

    a2 = rep.pick("A2")
    t2 = T.arm_table(a2, rep.ref, alpha=rep.alpha, knob_on=True, base=_base_runs(rep.groups, rep.baseline_arm),
                     bootstrap=True)  # fmt: skip
    t2m = T.by_mode_table(a2, rep.modes, rep.ref, alpha=rep.alpha)
    files = t2.write(rep.out, "a2_main") + t2m.write(rep.out, "a2_by_mode")
    return Section("A2", "A2 — deploy hack and solve per arm (mean ± SEM over seeds, paired test vs vanilla)",
                   t2.to_markdown() + "\n#### Per mode\n\n" + t2m.to_markdown(), files)


def a3_ablations(rep: Report) -> Section:
    """A3: the ablation table (what each component buys), with the label-free routing gauges."""
    from gradient_quarantine.analysis import tables as T

    t3 = T.arm_table(rep.pick("A3"), rep.ref, alpha=rep.alpha, gauges=True, knob_on=True)
    t3.notes.append(
        "route2b, erase and knob-on, read together: a routed rollout's gradient outside the knob's own coordinates "
        "reaches neither knob (dropped frac = that share of the routed squared norm; erase drops all of it). "
        "route2b's deploy hack vs erase's says whether routing does more than dropping the same gradient; "
        "route2b's knob-on hack vs its own deploy hack says whether the knob absorbed the hack (knob-on above "
        "deploy) or the routed part was merely erased (knob-on ≈ deploy, as for erase, whose knob never trains).")
    t3.notes += [n for g in rep.pick("A3") if (n := _frout_match_note(g, rep.runs))]
    files = t3.write(rep.out, "a3_ablations")
    return Section("A3", "A3 — ablations: one row per arm", t3.to_markdown(), files)


def a4_long_runs(rep: Report) -> Section:
    """A4: runs of at least `long_steps` steps: deploy rates and training curves per seed, collapse marked."""
    from gradient_quarantine.analysis import figures as F
    from gradient_quarantine.analysis import tables as T

    out, long_steps = rep.out, rep.long_steps
    files, parts = [], []
    for preset, steps in rep.combos:
        if steps < long_steps:
            continue
        gs = [g for g in rep.groups if (g.preset, g.steps) == (preset, steps) and not _is_heldout(g, rep.modes)]
        gs = [g for g in gs if g.base in (rep.baseline_arm, rep.method_arm)] or gs
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
    return Section("A4", f"A4 — long run (>= {long_steps} steps), collapse marked", "\n\n".join(parts) or
                   f"_No runs with >= {long_steps} steps (`gq report --long-steps N` to change)._", files)


def a5_heldout(rep: Report) -> Section:
    """A5: held-out modes: runs whose pair set covers only some modes, per-mode deploy hack beside vanilla's and
    route2b's (the modes outside the pair set hatched)."""
    from gradient_quarantine.analysis import figures as F
    from gradient_quarantine.analysis import tables as T

    out, modes = rep.out, _loophole_modes(rep.modes)  # held out or in the pair set: loophole modes only
    held = [g for g in rep.groups if _is_heldout(g, modes)]
    if not held:
        return Section("A5", "A5 — held-out modes",
                       "_No runs whose pair set covers only some modes (arms heldout_a / heldout_b)._", [])
    files: list[Path] = []
    body = ""
    t5 = T.heldout_table(held, modes, rep.ref, rep.full, alpha=rep.alpha)
    files += t5.write(out, "a5_heldout")
    for preset, steps in sorted({(g.preset, g.steps) for g in held}):
        series = []
        hs = [h for h in held if (h.preset, h.steps) == (preset, steps)]
        for g in [rep.ref(hs[0]), rep.full(hs[0]), *hs]:
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
    return Section("A5", "A5 — held-out modes", body, files)


def a6_traces(rep: Report) -> Section:
    """A6: traces, a hack and a clean completion per mode with its prompt (analysis/traces.py)."""
    p6 = rep.out / "a6_traces.md"
    atomic_write_text(p6, traces_markdown(rep.runs, rep.modes, rep.baseline_arm))
    return Section("A6", "A6 — traces (prompt + hint, a hack and a clean completion per mode)",
                   "See [a6_traces.md](a6_traces.md).", [p6])


def a7_context(rep: Report) -> Section:
    """A7: the remaining ablations as context, and every arm without an arm file."""
    from gradient_quarantine.analysis import tables as T

    t7 = T.arm_table(rep.pick("A7"), rep.ref, alpha=rep.alpha, gauges=True, knob_on=True)
    t7.notes += [n for g in rep.pick("A7") if (n := _frout_match_note(g, rep.runs))]
    unknown = sorted({g.arm for g in rep.groups if g.base not in rep.info})
    if unknown:
        t7.notes.append(f"arms without an arm file (inline arms) are listed here: {', '.join(unknown)}")
    files = t7.write(rep.out, "a7_context")
    return Section("A7", "A7 — remaining ablations (context)", t7.to_markdown(), files)


def routing_gate(rep: Report) -> Section:
    """Routing diagnostics: does the gate pick out the hack rows? (labels read here, after the runs)"""
    from gradient_quarantine.analysis import tables as T

    tg = T.gate_table([r for r in rep.runs if r.config is not None], rep.labels)
    files = tg.write(rep.out, "routing_gate_by_kind")
    return Section("R", "Routing diagnostics — mean gate per kind of training row", tg.to_markdown(), files)


def a8_detector(rep: Report) -> Section:
    """A8: the detector on the policy's own rollouts and the knob's capture, per gated run (labels read here)."""
    from gradient_quarantine.analysis import tables as T

    t8 = T.detector_table([r for r in rep.runs if r.config is not None], rep.labels)
    files = t8.write(rep.out, "a8_detector")
    return Section("A8", "A8 — the detector on the policy's own rollouts, and what the knob keeps", t8.to_markdown(),
                   files)  # fmt: skip


def own_hacking(rep: Report) -> Section:
    """Hacking the policy found itself: loophole vs no-loophole prompts, base rate, roles, census of own hacks."""
    from gradient_quarantine.analysis import tables as T

    th = T.own_hacking_table(rep.runs, rep.labels)
    files = th.write(rep.out, "own_hacking")
    return Section("H", "Own hacking — prompts with and without a loophole, and where the policy's hacks "
                   "come from", th.to_markdown(), files)


# The artifacts in the order results.md lists them.
ARTIFACTS: tuple[Callable[[Report], Section], ...] = (
    a1_dynamics, a2_main, a3_ablations, a4_long_runs, a5_heldout, a6_traces, a7_context, a8_detector, routing_gate,
    own_hacking,
)



# ----------------------------------------------------------------------------------------------------
# What the artifacts share: modes, held-out groups, base-model runs, curves, the frout-match note


def _modes(runs: Sequence[Run]) -> list[str]:
    from gradient_quarantine.substrate.types import MODES

    modes = [m.value for m in MODES]
    for r in runs:
        for ev in (r.eval_of("deploy") or {}, *[(x.get("deploy") or {}) for x in r.deploy_evals[-1:]]):
            for m in (ev.get("by_mode") or {}):
                if m not in modes:
                    modes.append(m)
    return modes


def _loophole_modes(modes: Sequence[str]) -> list[str]:
    """The modes a pair set can cover: every mode read but `no_loophole` (no hint, no flawed grader, no hacks)."""
    from gradient_quarantine.substrate.types import Mode

    return [m for m in modes if m != Mode.NO_LOOPHOLE.value]


def _is_heldout(g: Group, modes: Sequence[str]) -> bool:
    """g's pair set leaves out some loophole mode (heldout_a / heldout_b); prompts without a loophole do not count."""
    pm = set(g.pair_modes)
    return bool(pm) and not set(_loophole_modes(modes)) <= pm


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
                 if "step" in m and finite(m.get("routing/frout"))} if partner is not None else {})  # fmt: skip
        d = []
        for m in r.metrics:
            t, got = m.get("step"), m.get("routing/frout")
            target = want.get(int(t)) if partner is not None and t is not None else m.get("routing/frout_target")
            if finite(got) and finite(target):
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
# results.md: the header, the contents, every section, the missing or partial runs, duplicates, the runs read


def results_md(runs: Sequence[Run], groups: Sequence[Group], sections: Sequence[Section], issues_t: Any,
               alpha: float, runs_dirs: Sequence[str | Path]) -> str:
    """results.md: what was read and how the statistics are made, the contents, every artifact's section, the
    missing or partial runs (`issues_t`), the duplicate runs and the run table."""
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
        out += duplicates_md(dups)
    out += runs_read_md(runs, groups)
    return "\n".join(out) + "\n"


def duplicates_md(dups: Sequence[tuple[Group, int, list[Run]]]) -> list[str]:
    """results.md's "Duplicate runs": runs of one arm, preset, steps and seed (each seed counts once)."""
    out = ["## Duplicate runs", "",
           "Runs of the same arm (method and settings), preset, steps and seed. Tables and curves use the mean "
           "of a seed's runs (n counts the seed once); remove or move the runs that should not count.", "",
           "| arm | preset | steps | seed | runs |", "|---|---|---|---|---|"]  # fmt: skip
    for g, seed, rs in dups:
        out.append(f"| {g.arm} | {g.preset} | {g.steps} | {seed} | "
                   + ", ".join(f"{r.path.name} ({r.status})" for r in rs) + " |")
    out.append("")
    return out


def runs_read_md(runs: Sequence[Run], groups: Sequence[Group]) -> list[str]:
    """results.md's run table ("Runs read"): every run with its group's label, recorded arm, seed, status, the
    sandbox it was graded under (a weaker one named above the table) and config_hash."""
    label = {r.path: g.arm for g in groups for r in g.all_runs}
    out = ["## Runs read", ""]
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
    return out
