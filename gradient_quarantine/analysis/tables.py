"""Tables of the report: markdown for reading, CSV (raw numbers) for anything downstream.

    >>> t = arm_table(groups, ["vanilla", "route2b"], alpha=0.05)
    >>> t.write(out_dir, "a2_main")          # a2_main.md + a2_main.csv
    >>> print(t.to_markdown())

Every row carries n (seeds); a row with fewer than 3 seeds says so in its `note` column, and the table's
notes repeat the test, alpha and the number of tests it holds. Nothing is filtered by significance.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gradient_quarantine.analysis.stats import (
    ALPHA,
    MIN_SEEDS,
    PairedTest,
    hierarchical_bootstrap,
    paired_test,
    summarize,
)
from gradient_quarantine.io import atomic_write_text

if TYPE_CHECKING:
    from gradient_quarantine.analysis.runs import Group, Run


@dataclass
class Table:
    """A markdown table (formatted cells) plus its CSV twin (raw values) and notes printed under it."""

    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    csv_rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        if not self.rows:
            return "_(no rows: no runs for this table)_\n" + "".join(f"\n{n}\n" for n in self.notes)
        esc = [[c.replace("|", "\\|").replace("\n", " ") for c in r] for r in self.rows]
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "|".join("---" for _ in self.columns) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in esc]
        out = "\n".join(lines) + "\n"
        if self.notes:
            out += "\n" + "\n".join(f"- {n}" for n in self.notes) + "\n"
        return out

    def to_csv(self) -> str:
        buf = io.StringIO()
        keys: list[str] = []
        for r in self.csv_rows:
            keys += [k for k in r if k not in keys]
        w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
        w.writeheader()
        for r in self.csv_rows:
            w.writerow({k: _csv(v) for k, v in r.items()})
        return buf.getvalue()

    def write(self, out_dir: Path, stem: str) -> list[Path]:
        md, cs = out_dir / f"{stem}.md", out_dir / f"{stem}.csv"
        atomic_write_text(md, self.to_markdown())
        atomic_write_text(cs, self.to_csv())
        return [md, cs]


def _csv(v: Any) -> Any:
    if isinstance(v, float):
        return "" if not math.isfinite(v) else repr(round(v, 10))
    if isinstance(v, (list, tuple)):
        return " ".join(map(str, v))
    return v


def _val(x: float, digits: int = 3) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def seed_note(n: int) -> str:
    return f"n={n} < {MIN_SEEDS} seeds" if n < MIN_SEEDS else ""


# ----------------------------------------------------------------------------------------------------


def arm_table(
    groups: Sequence[Group],
    reference: Callable[[Group], Group | None],
    *,
    alpha: float = ALPHA,
    gauges: bool = False,
    knob_on: bool = False,
    base: dict[tuple[str, int], list[Run]] | None = None,
    bootstrap: bool = False,
) -> Table:
    """One row per group (arm at a preset and step count): deploy hack and solve mean +- SEM over seeds,
    delta vs the reference (vanilla at the same preset and steps) and the paired test across seeds."""
    cols = ["arm", "config arm", "preset", "steps", "n", "deploy hack", "deploy solve", "Δ hack vs vanilla",
            "p (hack)", "Δ solve vs vanilla", "p (solve)"]
    if bootstrap:
        cols += ["Δ hack: seeds + prompts bootstrap 95% CI", "p (bootstrap)"]
    if knob_on:
        cols.append("knob-on hack")
    if gauges:
        cols += ["frout", "band width", "resid cos", "dropped frac"]
    cols.append("note")
    t = Table(cols)
    n_tests = 0
    seen_base: set[tuple[str, int]] = set()
    for g in groups:
        ref = reference(g)
        hack, solve = g.values("hack"), g.values("solve")
        sh, ss = summarize(list(hack.values())), summarize(list(solve.values()))
        if ref is not None and ref is not g:
            th, ts = paired_test(hack, ref.values("hack"), alpha), paired_test(solve, ref.values("solve"), alpha)
            n_tests += 2 * (th.n >= 2)
        else:
            th = ts = None
        notes = [x for x in (seed_note(sh.n), "" if ref is not None else "no vanilla at this preset/steps") if x]
        if sh.n == 0:
            notes.append("no complete run: see Missing or partial runs")
            th = ts = None
        if g.reads_labels:
            notes.append("baseline: reads labels")
        dups = g.duplicates()
        if dups:
            notes.append("duplicate runs of seed " + ", ".join(f"{s} ({len(rs)} runs)" for s, rs in dups.items())
                         + ": averaged per seed, listed under Duplicate runs")  # fmt: skip
        if ref is not None and ref is not g and ref.arm != ref.base:
            notes.append(f"vs {ref.arm}")  # several vanilla groups here: the one whose settings differ least
        row = [g.arm, ", ".join(g.config_arms), g.preset, str(g.steps), str(sh.n), sh.fmt(), ss.fmt(),
               _delta(th), _p(th), _delta(ts), _p(ts)]
        rec: dict[str, Any] = {
            "arm": g.arm, "config_arm": " ".join(g.config_arms), "preset": g.preset, "steps": g.steps, "n": sh.n,
            "seeds": sorted(hack),
            "hack_mean": sh.mean, "hack_sem": sh.sem, "solve_mean": ss.mean, "solve_sem": ss.sem,
            **_test_fields("hack", th), **_test_fields("solve", ts),
        }
        if bootstrap:
            bt = (hierarchical_bootstrap(g.prompt_rates("hack"), ref.prompt_rates("hack"), alpha=alpha)
                  if ref is not None and ref is not g else None)  # fmt: skip
            row += [bt.fmt_ci() if bt else "—", f"{bt.p:.3g}" if bt else "—"]
            rec.update(hack_boot_lo=bt.lo if bt else None, hack_boot_hi=bt.hi if bt else None,
                       hack_boot_p=bt.p if bt else None, hack_boot_n_prompts=bt.n_prompts if bt else None)  # fmt: skip
        if knob_on:
            sk = summarize(list(g.values("hack", which="knob_on").values()))
            row.append(sk.fmt())
            rec.update(knob_on_hack_mean=sk.mean, knob_on_hack_sem=sk.sem)
        if gauges:
            for key, name in (("routing/frout", "frout"), ("routing/band_width", "band_width"),
                              ("routing/resid_cos", "resid_cos"), ("routing/dropped_frac", "dropped_frac")):
                s = summarize([r.gauge(key) for r in g.runs])
                row.append(s.fmt() if s.n else "—")
                rec.update({f"{name}_mean": s.mean, f"{name}_sem": s.sem})
        row.append("; ".join(notes))
        rec["note"] = "; ".join(notes)
        t.rows.append(row)
        t.csv_rows.append(rec)
        key = (g.preset, g.steps)
        if base is not None and key not in seen_base and base.get(key):
            seen_base.add(key)
            bh = summarize([r.deploy("hack", "base") for r in base[key]])
            bs = summarize([r.deploy("solve", "base") for r in base[key]])
            if bh.n:
                brow = ["base model (no adapter)", "", g.preset, str(g.steps), str(bh.n), bh.fmt(), bs.fmt(), "", "", "",
                        ""]  # fmt: skip
                brow += [""] * (len(cols) - len(brow) - 1) + ["from per_mode_deploy.json `base`"]
                t.rows.append(brow)
                t.csv_rows.append({"arm": "base", "preset": g.preset, "steps": g.steps, "n": bh.n,
                                   "hack_mean": bh.mean, "hack_sem": bh.sem, "solve_mean": bs.mean,
                                   "solve_sem": bs.sem, "note": "base model"})
    t.notes = [
        "deploy = knob off (the model a user would ship), final eval of each run (per_mode_deploy.json); "
        "rates are fractions of sampled completions; mean ± SEM over seeds (SEM = sd(ddof=1)/sqrt(n)).",
        f"Δ = mean over shared seeds of (arm − vanilla), same preset and steps; p = two-sided paired t-test "
        f"across seeds (scipy.stats.ttest_rel), alpha = {alpha}, n = shared seeds (df = n − 1); "
        f"{n_tests} tests in this table, not corrected for multiple comparisons.",
    ]
    if bootstrap:
        t.notes.append(
            "bootstrap: a hierarchical bootstrap of Δ hack (10,000 draws; shared seeds resampled, then each drawn "
            "seed's eval prompts, paired by prompt; deploy_samples.jsonl): the paired test asks whether another "
            "seed would differ, the bootstrap also whether other prompts of this kind would; with 3 seeds its "
            "interval is mostly the prompts'. — for runs without per-sample records.")
    return t


def _delta(t: PairedTest | None) -> str:
    if t is None:
        return "—"
    if not math.isfinite(t.delta):
        return "—"
    return f"{t.delta:+.3f}" + (f" ± {t.sem:.3f}" if math.isfinite(t.sem) else "")


def _p(t: PairedTest | None) -> str:
    if t is None:
        return "—"
    if not math.isfinite(t.p):
        return t.fmt_p()  # says why (n<2, no shared seeds, zero variance)
    star = " *" if t.significant else ""
    return f"{t.fmt_p()}{star} (n={t.n})"


def _test_fields(prefix: str, t: PairedTest | None) -> dict[str, Any]:
    if t is None:
        return {f"{prefix}_delta": float("nan"), f"{prefix}_delta_sem": float("nan"), f"{prefix}_t": float("nan"),
                f"{prefix}_p": float("nan"), f"{prefix}_test_n": 0, f"{prefix}_significant": ""}
    return {f"{prefix}_delta": t.delta, f"{prefix}_delta_sem": t.sem, f"{prefix}_t": t.t, f"{prefix}_p": t.p,
            f"{prefix}_test_n": t.n, f"{prefix}_significant": t.significant, "alpha": t.alpha}


def by_mode_table(
    groups: Sequence[Group], modes: Sequence[str], reference: Callable[[Group], Group | None], alpha: float = ALPHA
) -> Table:
    """Per arm and mode: deploy hack and solve (mean +- SEM over seeds), Δ hack vs vanilla with its paired p."""
    t = Table(["arm", "preset", "steps", "mode", "n", "deploy hack", "deploy solve", "Δ hack vs vanilla",
               "p (hack)", "note"])
    n_tests = 0
    for g in groups:
        ref = reference(g)
        for m in modes:
            hack, solve = g.values("hack", mode=m), g.values("solve", mode=m)
            sh, ss = summarize(list(hack.values())), summarize(list(solve.values()))
            th = paired_test(hack, ref.values("hack", mode=m), alpha) if ref is not None and ref is not g else None
            n_tests += th is not None and th.n >= 2
            note = seed_note(sh.n)
            t.rows.append([g.arm, g.preset, str(g.steps), m, str(sh.n), sh.fmt(), ss.fmt(), _delta(th), _p(th), note])
            t.csv_rows.append({"arm": g.arm, "preset": g.preset, "steps": g.steps, "mode": m, "n": sh.n,
                               "hack_mean": sh.mean, "hack_sem": sh.sem, "solve_mean": ss.mean, "solve_sem": ss.sem,
                               **_test_fields("hack", th), "note": note})
    t.notes = [f"per-mode deploy rates (knob off) from per_mode_deploy.json `deploy.by_mode`; paired t-test across "
               f"seeds vs vanilla, alpha = {alpha}; {n_tests} tests, uncorrected."]
    return t


def heldout_table(
    groups: Sequence[Group], modes: Sequence[str], reference: Callable[[Group], Group | None],
    full: Callable[[Group], Group | None], alpha: float = ALPHA,
) -> Table:
    """A5: for each arm whose pair set covers only some modes, per-mode deploy hack split into modes in the pair
    set and held-out modes, against vanilla and the all-mode route2b; plus the per-seed mean over held-out modes."""
    t = Table(["arm", "pair modes", "mode", "side", "n", "deploy hack", "vanilla hack", "Δ vs vanilla",
               "p", "route2b (all modes) hack", "note"])
    n_tests = 0
    for g in groups:
        ref, rfull = reference(g), full(g)
        pair = set(g.pair_modes)
        rows_modes = [(m, "pair set" if m in pair else "held out") for m in modes]
        rows_modes += [("mean over held-out modes", "held out"), ("mean over pair-set modes", "pair set")]
        for m, side in rows_modes:
            if m.startswith("mean over"):
                sel = [x for x in modes if (x in pair) == (side == "pair set")]
                hack = g.mode_mean("hack", sel)
                vh = ref.mode_mean("hack", sel) if ref is not None else {}
                fh = rfull.mode_mean("hack", sel) if rfull is not None else {}
            else:
                hack = g.values("hack", mode=m)
                vh = ref.values("hack", mode=m) if ref is not None else {}
                fh = rfull.values("hack", mode=m) if rfull is not None else {}
            s, sv, sf = summarize(list(hack.values())), summarize(list(vh.values())), summarize(list(fh.values()))
            test = paired_test(hack, vh, alpha) if ref is not None else None
            n_tests += test is not None and test.n >= 2
            note = seed_note(s.n)
            t.rows.append([g.arm, ", ".join(g.pair_modes), m, side, str(s.n), s.fmt(), sv.fmt(), _delta(test),
                           _p(test), sf.fmt() if sf.n else "—", note])
            t.csv_rows.append({"arm": g.arm, "preset": g.preset, "steps": g.steps, "pair_modes": g.pair_modes,
                               "mode": m, "side": side, "n": s.n, "hack_mean": s.mean, "hack_sem": s.sem,
                               "vanilla_hack_mean": sv.mean, "vanilla_hack_sem": sv.sem,
                               "route2b_hack_mean": sf.mean, "route2b_hack_sem": sf.sem,
                               **_test_fields("hack", test), "note": note})
    t.notes = [
        "v_grad (and the band) come from the pair modes only; 'held out' modes never appear in the pair set, so "
        "suppression there is generalisation (claim C2). Means over modes are taken per seed, then over seeds.",
        f"paired t-test across seeds vs vanilla (same preset and steps), alpha = {alpha}; {n_tests} tests, uncorrected.",
    ]
    return t


def collapse_table(runs: Sequence[Run]) -> Table:
    """Every run of the long-run figure: did collapse fire, at which step, why (summary.json `collapse`)."""
    t = Table(["run", "arm", "seed", "steps done", "status", "collapse", "step", "reasons"])
    for r in runs:
        c = r.collapse
        t.rows.append([r.path.name, r.arm, str(r.seed), str(r.steps_done), r.status,
                       "yes" if c.get("detected") else "no", _val(c.get("step"), 0) if c.get("step") is not None else "—",
                       ", ".join(c.get("reasons") or [])])
        t.csv_rows.append({"run": r.path.name, "arm": r.arm, "seed": r.seed, "steps_done": r.steps_done,
                           "status": r.status, "collapse": bool(c.get("detected")), "collapse_step": c.get("step"),
                           "reasons": ";".join(c.get("reasons") or [])})
    t.notes = ["collapse = a health signal fired (logp cratering, reward to zero, grad-norm spike); "
               "recorded by the trainer, marked on the figure, never cropped."]
    return t


GATE_KINDS = ("teacher_hack", "teacher_canonical", "policy_hack", "policy_nohack")


PAIR_GATES = ("pair_gate_hack", "pair_gate_clean", "heldout_gate_hack", "heldout_gate_clean")


def gate_table(runs: Sequence[Run], labels: dict[Any, str] | None = None) -> Table:
    """Per routed run: the mean gate on each kind of training row, weighted by how many rows of that kind each
    step had (metrics.jsonl `diag/gate_<kind>`, `diag/n_<kind>`), with frout and the band width; and the band's
    gate on the pair set's hack / clean sides, in sample (the pairs it was calibrated on) and on held-out pairs
    that took no part in it (`routing/pair_gate_*`, `routing/heldout_gate_*`, mean over steps).

    This is where a selective detector shows: route2b should gate the hack rows well above the clean ones, and
    the frout-matched random-V control should gate all kinds alike. Labels enter only here, after the run.
    `labels`: {run path: arm label of its group} (the report's grouping; default config.json's arm).
    """
    t = Table(["run", "arm", "seed", "steps", "gate", "frout", "band width", "pairs in sample: hack / clean",
               "held-out pairs: hack / clean", *(f"gate: {k.replace('_', ' ')} (rows)" for k in GATE_KINDS)])
    for r in runs:
        if not any(_finite_row(row, "routing/frout") for row in r.metrics):
            continue  # not routed (vanilla, label baselines)
        arm = (labels or {}).get(r.path) or r.arm or "?"
        granularity = ((r.config or {}).get("routing") or {}).get("gate", "?")
        g = {k: r.gauge(f"routing/{k}") for k in PAIR_GATES}
        row = [r.path.name, arm, str(r.seed), str(r.steps_done), granularity,
               _val(r.gauge("routing/frout")), _val(r.gauge("routing/band_width")),
               f"{_val(g['pair_gate_hack'])} / {_val(g['pair_gate_clean'])}",
               f"{_val(g['heldout_gate_hack'])} / {_val(g['heldout_gate_clean'])}"]  # fmt: skip
        rec: dict[str, Any] = {"run": r.path.name, "arm": arm, "config_arm": r.arm, "seed": r.seed,
                               "steps": r.steps_done, "gate": granularity, "frout_mean": r.gauge("routing/frout"),
                               "band_width_mean": r.gauge("routing/band_width"),
                               **{f"{k}_mean": v for k, v in g.items()}}  # fmt: skip
        for kind in GATE_KINDS:
            pairs = [(float(m[f"diag/gate_{kind}"]), int(m[f"diag/n_{kind}"])) for m in r.metrics
                     if _finite_row(m, f"diag/gate_{kind}") and m.get(f"diag/n_{kind}")]
            n = sum(k for _, k in pairs)
            mean = sum(g * k for g, k in pairs) / n if n else float("nan")
            row.append(f"{_val(mean)} ({n})" if n else "— (0)")
            rec.update({f"gate_{kind}": mean, f"n_{kind}": n})
        t.rows.append(row)
        t.csv_rows.append(rec)
    t.notes = [
        "gate = the router's routing weight for a rollout (0: its gradient trains the main adapter, 1: the "
        "quarantine knob), from the label-free cosine with v_grad through the band; mean over every row of that "
        "kind in the run (rows in brackets).",
        "kinds use the grader's labels (teacher pool row or policy sample; hack = passes the flawed grader and "
        "fails the strict one), which the trainer logs after routing: the router never sees them.",
        "pairs: the band's mean gate on the pair set's hack and clean sides (token gate: each side's mass-weighted "
        "share of routed tokens), in sample and on held-out pairs (routing.heldout_pairs_per_mode) that took no "
        "part in v_grad or the band; in-sample selectivity that does not hold out of sample is overfit to the "
        "pairs. — for frout-matched controls (their gate is the matched target, not the band) and runs without "
        "held-out pairs.",
    ]
    return t


def _finite_row(row: dict[str, Any], key: str) -> bool:
    v = row.get(key)
    return isinstance(v, (int, float)) and math.isfinite(v)


def issues_table(runs: Sequence[Run]) -> Table:
    """Runs that are missing files or not complete, and what they are left out of."""
    t = Table(["run", "arm", "seed", "status", "problem"])
    for r in runs:
        if r.issues:
            t.rows.append([r.path.name, r.arm or "?", str(r.seed) if r.seed is not None else "?", r.status,
                           "; ".join(r.issues)])
            t.csv_rows.append({"run": r.path.name, "arm": r.arm, "seed": r.seed, "status": r.status,
                               "problems": "; ".join(r.issues)})
    return t


def own_hacking_table(runs: Sequence[Run], arm_of: dict[Path, str] | None = None) -> Table:
    """Per run: deploy rates on prompts with and without a loophole (did the policy learn *when* hacking pays?),
    the base model's hack rate, whether its stages shared problems, and the census of the hacks it sampled itself
    (analysis/own_hacks.py: pair-set template, warm-start example or form, a line of the template or of a
    warm-start hack, or novel)."""
    import json

    from gradient_quarantine.analysis.own_hacks import CLASSES, own_hack_census

    t = Table(["run", "arm", "seed", "roles", "deploy hack (loophole)", "deploy attempt (no loophole)",
               "deploy solve (no loophole)", "base hack (loophole)", "own hacks", "template / ws example / ws form / template line / ws line / novel",
               "first own hack"])  # fmt: skip
    for r in sorted(runs, key=lambda r: (str(r.arm), r.seed or 0, r.path.name)):
        if r.config is None or not r.complete:
            continue
        split = r.path / "split.json"
        roles = "unrecorded"
        if split.is_file():
            rec = json.loads(split.read_text(encoding="utf-8"))
            roles = "overlap" if rec.get("overlap") else "disjoint"
        dep, base = r.eval_of("deploy") or {}, r.eval_of("base") or {}
        hk, uh, bh = dep.get("hackable") or dep, dep.get("unhackable") or {}, (base.get("hackable") or base)
        c = own_hack_census(r.path)
        k = c["by_class"]
        arm = (arm_of or {}).get(r.path, str(r.arm))
        t.rows.append([r.path.name, arm, str(r.seed), roles, _val(_f(hk.get("hack"))), _val(_f(uh.get("attempt"))),
                       _val(_f(uh.get("solve"))), _val(_f(bh.get("hack"))), f"{c['n_hack']} of {c['n_own']}",
                       " / ".join(str(k[x]) for x in CLASSES),
                       "—" if c["first_step"] is None else str(c["first_step"])])  # fmt: skip
        t.csv_rows.append({"run": r.path.name, "arm": arm, "seed": r.seed, "roles": roles,
                           "deploy_hack_hackable": hk.get("hack"), "deploy_attempt_unhackable": uh.get("attempt"),
                           "deploy_solve_unhackable": uh.get("solve"), "base_hack_hackable": bh.get("hack"),
                           "own_rollouts_logged": c["n_own"], "own_hacks": c["n_hack"], **{f"own_{x}": n for x, n in k.items()},
                           "own_hacks_by_mode": json.dumps(c["by_mode"]), "first_own_hack_step": c["first_step"]})  # fmt: skip
    t.notes.append("own hacks: the policy's own rollouts (teacher rows excluded) logged in rollouts.jsonl that pass the "
                   "flawed grader and fail the strict one (labels read after the run); a census over every rollout needs "
                   "run.rollouts_per_log >= the rollouts per step (the demo preset logs all). 'roles: overlap' marks a "
                   "run whose warm start, pairs, training or eval shared problems (no data.split, or data.allow_overlap)")
    return t


def detector_table(runs: Sequence[Run], arm_of: dict[Path, str] | None = None) -> Table:
    """A8, per run whose arm computes a gate: the detector on the policy's own rollouts (rollouts.jsonl `cos`,
    `gate`, with the strict grader's `hack`, read after the run) and whether the knob keeps what it is given
    (`routing/capture`). Pooled over every logged row that had a gradient: AUC of the score, hack rows vs the rest,
    and the mean gate on each class (the gate's soft TPR and FPR); the mean per-step AUC beside it."""
    import json

    from gradient_quarantine.train.step import completion_score, roc_auc

    t = Table(["run", "arm", "seed", "scored rows (hack / other)", "AUC (pooled)", "AUC (mean per step)",
               "gate on hacks (TPR)", "gate on others (FPR)", "frout", "knob capture", "leakage"])  # fmt: skip
    for r in sorted(runs, key=lambda r: (str(r.arm), r.seed or 0, r.path.name)):
        path = r.path / "rollouts.jsonl"
        if r.config is None or not path.is_file():
            continue
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        scored = [x for x in rows if not x.get("teacher") and isinstance(x.get("cos"), (int, float))
                  and isinstance(x.get("hack"), bool)]  # fmt: skip
        if not scored:
            continue  # an arm without a gate, or a run from before rows carried their score
        hack = [x["hack"] for x in scored]
        auc = roc_auc([completion_score(x["cos"], x.get("advantage")) for x in scored], hack)
        g_h = [x["gate"] for x in scored if x["hack"]]
        g_c = [x["gate"] for x in scored if not x["hack"]]
        tpr = sum(g_h) / len(g_h) if g_h else float("nan")
        fpr = sum(g_c) / len(g_c) if g_c else float("nan")
        arm = (arm_of or {}).get(r.path, str(r.arm))
        step_auc, capture, frout = r.gauge("detector/auc"), r.gauge("routing/capture"), r.gauge("routing/frout")
        leak = r.gauge("leak/leakage")
        t.rows.append([r.path.name, arm, str(r.seed), f"{len(g_h)} / {len(g_c)}", _val(_f(auc)), _val(step_auc),
                       _val(tpr), _val(fpr), _val(frout), _val(capture), _val(leak)])  # fmt: skip
        t.csv_rows.append({"run": r.path.name, "arm": arm, "seed": r.seed, "n_hack": len(g_h), "n_other": len(g_c),
                           "auc_pooled": auc, "auc_step_mean": step_auc, "gate_tpr": tpr, "gate_fpr": fpr,
                           "frout_mean": frout, "capture_mean": capture, "leakage_mean": leak})  # fmt: skip
    t.notes += [
        "score = the completion's own cosine with v_grad, sign(A_b) x the cosine the gate read (per-token gate: its "
        "mass-weighted mean token cosine): the gate reads the update A_b grad l(y_b), whose sign follows the "
        "advantage's, so its raw cosine would separate hacks (which get the positive advantages) under any "
        "direction; rows without gradient (zero advantage) have none and are left out. Labels are read here, after "
        "the run: the router never sees them.",
        "knob capture = 1 - routing/dropped_frac, mean over steps: the share of the routed gradient that the knob "
        "keeps (1 for a shared knob; a disjoint knob keeps only what falls on its own axes). Deleting a knob that "
        "captured little removes little.",
        "leakage = leak/leakage, mean over the steps that measured it: the share of the step's hack-ward gradient "
        "(against a fixed probe of eval-role hack/clean pairs) that still reached the main knob; vanilla 1, a "
        "content-blind control about 1 - frout (docs/architecture.md, 'Leakage').",
    ]
    return t


def _f(x: Any) -> float:
    return float(x) if isinstance(x, (int, float)) else float("nan")
