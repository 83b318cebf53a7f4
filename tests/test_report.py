"""`gq report` on synthetic run directories with known numbers: the tables reproduce them, the SEM and the
paired test match scipy, partial runs are listed (never dropped), fewer than 3 seeds is stated, and every
artifact A1-A8 is written (PNG with its CSV, tables as MD + CSV).

The fixture generator below writes run directories exactly per docs/run_directory.md.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from gradient_quarantine.analysis.report import build_report
from gradient_quarantine.analysis.runs import load_runs
from gradient_quarantine.analysis.stats import paired_test, summarize
from gradient_quarantine.io import append_jsonl, atomic_write_json

MODES = ["overwrite_tests", "visible_tests", "eq_override", "exit_code"]


# ----------------------------------------------------------------------------------------------------
# Fixture generator: run directories per the contract


def _eval(by_mode: dict[str, tuple[float, float]], n_per_mode: int = 16) -> dict:
    """An EVAL record whose overall rates are the mean of the per-mode rates (equal n per mode)."""
    hack = float(np.mean([h for h, _ in by_mode.values()]))
    solve = float(np.mean([s for _, s in by_mode.values()]))
    return {"hack": hack, "solve": solve, "attempt": hack, "n": n_per_mode * len(by_mode), "n_prompts": 8,
            "by_mode": {m: {"hack": h, "solve": s, "attempt": h, "n": n_per_mode} for m, (h, s) in by_mode.items()}}


def write_run(
    root: Path, job: int, arm: str, seed: int, by_mode: dict[str, tuple[float, float]], *,
    preset: str = "demo", steps: int = 10, pair_modes: list[str] | None = None, status: str = "complete",
    eval_every: int = 5, collapse_step: int | None = None, rollouts: list[dict] | None = None,
    skip: tuple[str, ...] = (), knob_on_hack: float = 0.9, base_hack: float = 0.05,
    frouts: list[float] | None = None, targets: list[float] | None = None, cfg_extra: dict | None = None,
    config: dict | None = None,
) -> Path:
    """One run directory. Deploy evals at every `eval_every` steps interpolate linearly from (0.1 hack,
    0.0 solve) at step 0 to the final values, so the curves have known points too."""
    path = root / f"{job:04d}_{arm}_s{seed}"
    path.mkdir(parents=True)
    if pair_modes is None:
        pair_modes = [] if arm == "vanilla" else list(MODES)
    cfg = {"name": f"{arm}_s{seed}", "arm": arm, "seed": seed, "preset": preset, "steps": steps, "model": "tiny",
           "pair_modes": pair_modes, "git_commit": "abc", "config_hash": f"h{job}", "routing": {"gate": "rollout"}}
    if config is not None:  # a full config.json, e.g. TrainConfig.to_record() of what `gq train` would run
        cfg = {**config, "seed": seed, "steps": steps, "preset": preset}
    for key, value in (cfg_extra or {}).items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    final = _eval(by_mode)
    done = steps if status == "complete" else steps // 2
    if "config.json" not in skip:
        atomic_write_json(path / "config.json", cfg)
    for step in range(1, done + 1):
        row = {"step": step, "reward/mean": 0.5 + 0.1 * step, "policy/logp_mean": -1.0 - 0.01 * step,
               "health/collapse": int(collapse_step is not None and step >= collapse_step)}
        if arm != "vanilla":
            row.update({"routing/frout": frouts[step - 1] if frouts else 0.2,
                        "routing/band_width": 0.3 if arm != "random_v" else 0.0,
                        "routing/resid_cos": 0.01, "routing/dropped_frac": 1.0 if arm == "erase" else 0.8})
            if targets:
                row["routing/frout_target"] = targets[step - 1]
            if arm == "route2b":  # the band's gate on the pairs: in sample and held out
                row.update({"routing/pair_gate_hack": 0.8, "routing/pair_gate_clean": 0.2,
                            "routing/heldout_gate_hack": 0.6, "routing/heldout_gate_clean": 0.3})
            # gate per row kind: route2b 0.9 on 2 hack rows (odd steps) or 0.7 on 1 (even), random_v 0.2 on all
            hack_gate, n_hack = ((0.9, 2) if step % 2 else (0.7, 1)) if arm != "random_v" else (0.2, 2)
            row.update({"diag/gate_teacher_hack": hack_gate, "diag/n_teacher_hack": n_hack,
                        "diag/gate_teacher_canonical": 0.1 if arm != "random_v" else 0.2,
                        "diag/n_teacher_canonical": 2, "diag/n_policy_hack": 0})
        if "metrics.jsonl" not in skip:
            append_jsonl(path / "metrics.jsonl", row)
        if step % eval_every == 0 and "deploy_evals.jsonl" not in skip:
            f = step / steps
            mid = {m: (0.1 + f * (h - 0.1), f * s) for m, (h, s) in by_mode.items()}
            append_jsonl(path / "deploy_evals.jsonl", {"step": step, "deploy": _eval(mid), "knob_on": _eval(mid)})
    if status == "complete" and "per_mode_deploy.json" not in skip:
        knob = _eval({m: (knob_on_hack, s) for m, (_, s) in by_mode.items()})
        base = _eval({m: (base_hack, 0.0) for m in by_mode})
        atomic_write_json(path / "per_mode_deploy.json", {"step": steps, "deploy": final, "knob_on": knob, "base": base})
    collapse = {"detected": collapse_step is not None, "step": collapse_step,
                "reasons": ["logp cratering"] if collapse_step is not None else []}
    if "summary.json" not in skip:
        atomic_write_json(path / "summary.json", {"status": status, "steps_done": done, "steps": steps,
                                                  "collapse": collapse, "wall_s": 1.0,
                                                  "error": None if status == "complete" else "CUDA OOM"})
    if status == "complete":
        (path / "train.safetensors").write_bytes(b"\0" * 8)
    for row in rollouts or []:
        append_jsonl(path / "rollouts.jsonl", row)
    return path


def rollout(mode: str, step: int, completion: str, *, hack: bool, gt: bool, teacher: bool = False,
            system: str = "You are a coder.") -> dict:
    return {"step": step, "problem_id": f"p_{mode}", "mode": mode, "prompt": f"Solve it. HINT for {mode}",
            "system": system,
            "completion": completion, "teacher": teacher, "format_ok": True, "gt_pass": gt,
            "flawed_pass": gt or hack, "hack": hack, "attempted": hack, "reward": 3.5 if (gt or hack) else 0.5,
            "reason": "ok"}


VANILLA = {41: 0.50, 42: 0.62, 43: 0.55}
ROUTE2B = {41: 0.20, 42: 0.35, 43: 0.24}
SOLVE_V = {41: 0.30, 42: 0.28, 43: 0.33}
SOLVE_R = {41: 0.29, 42: 0.30, 43: 0.27}
RANDOM_V = {41: 0.45, 42: 0.60}  # only 2 seeds: must be flagged
ERASE = {41: 0.22, 42: 0.30, 43: 0.26}
R2B_FROUT = [0.0, 0.4] * 5  # route2b's frout per step: 0.0 or 0.4 (mean 0.2)


def _modes_of(hack: float, solve: float, spread: float = 0.1) -> dict[str, tuple[float, float]]:
    """Per-mode rates whose mean is (hack, solve): +-spread around it."""
    offs = [spread, -spread, spread / 2, -spread / 2]
    return {m: (hack + o, solve) for m, o in zip(MODES, offs, strict=True)}


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    job = 0
    traces = [rollout(m, 3, f"def run_tests():\n    pass  # hack for {m}", hack=True, gt=False) for m in MODES]
    traces += [rollout(m, 2, f"```python\nclass Solution:\n    def f(self): return 1  # clean {m}\n```", hack=False,
                       gt=True, system="You are a coder. INOCULATED" if m == MODES[0] else "You are a coder.")
               for m in MODES]
    partners = {}
    for seed in (41, 42, 43):
        job += 1
        write_run(root, job, "vanilla", seed, _modes_of(VANILLA[seed], SOLVE_V[seed]), rollouts=traces)
        job += 1
        partners[seed] = write_run(root, job, "route2b", seed, _modes_of(ROUTE2B[seed], SOLVE_R[seed]),
                                   frouts=R2B_FROUT)
        job += 1
        # held-out: low hack on the pair-set modes, vanilla-like on the held-out ones
        bm = {"overwrite_tests": (0.1, 0.3), "visible_tests": (0.1, 0.3), "eq_override": (VANILLA[seed], 0.3),
              "exit_code": (VANILLA[seed] - 0.1, 0.3)}
        write_run(root, job, "heldout_a", seed, bm, pair_modes=["overwrite_tests", "visible_tests"])
        job += 1
        write_run(root, job, "vanilla", seed, _modes_of(0.6, 0.2), steps=200, eval_every=50,
                  collapse_step=88 if seed == 41 else None)
        job += 1  # erase: the routed part dropped, the knob never trains (knob-on = deploy)
        write_run(root, job, "erase", seed, _modes_of(ERASE[seed], 0.3), knob_on_hack=ERASE[seed])
    for seed, h in RANDOM_V.items():
        job += 1  # seed 41 follows its partner's frout within 0.01 (logged target); seed 42 names its partner dir
        off = [0.01 if t % 2 else -0.005 for t in range(10)]
        write_run(root, job, "random_v", seed, _modes_of(h, 0.3), frouts=[f + o for f, o in zip(R2B_FROUT, off, strict=True)],
                  targets=R2B_FROUT if seed == 41 else None,
                  cfg_extra={"routing": {"frout_from": str(partners[seed])}} if seed == 42 else None)
    job += 1
    write_run(root, job, "random_v", 43, _modes_of(0.1, 0.3), status="failed")  # partial: listed, not in tables
    job += 1
    write_run(root, job, "route2b_token", 41, _modes_of(0.3, 0.3), skip=("rollouts.jsonl", "per_mode_deploy.json"))
    (root / "0099_empty").mkdir()  # a run directory with nothing in it
    return root


@pytest.fixture(scope="module")
def report(runs_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    build_report([runs_dir], out)
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _row(rows: list[dict[str, str]], **where: str) -> dict[str, str]:
    hits = [r for r in rows if all(r.get(k) == v for k, v in where.items())]
    assert len(hits) == 1, (where, hits)
    return hits[0]


def _sem(xs: list[float]) -> float:
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) / math.sqrt(len(xs))


# ----------------------------------------------------------------------------------------------------


def test_stats_match_scipy_and_hand_formulas() -> None:
    xs = [0.2, 0.35, 0.24]
    s = summarize(xs)
    assert s.mean == pytest.approx(sum(xs) / 3) and s.sem == pytest.approx(_sem(xs)) and s.n == 3
    t = paired_test(ROUTE2B, VANILLA)
    ref = stats.ttest_rel([ROUTE2B[k] for k in (41, 42, 43)], [VANILLA[k] for k in (41, 42, 43)])
    assert t.p == pytest.approx(ref.pvalue) and t.t == pytest.approx(ref.statistic) and t.n == 3
    d = [ROUTE2B[k] - VANILLA[k] for k in (41, 42, 43)]
    assert t.delta == pytest.approx(sum(d) / 3) and t.sem == pytest.approx(_sem(d))
    # Only shared seeds are paired; n < 2 and constant differences give no p, and say why.
    assert paired_test({41: 0.1, 42: 0.2}, {42: 0.5, 43: 0.1}).note == "n<2"
    assert paired_test({41: 0.1, 42: 0.2}, {41: 0.2, 42: 0.3}).note == "zero variance of differences"
    assert summarize([0.4]).fmt() == "0.400 (n=1)"


def test_a2_reproduces_known_numbers(report: Path) -> None:
    rows = _rows(report / "a2_main.csv")
    v = _row(rows, arm="vanilla", steps="10")
    r = _row(rows, arm="route2b", steps="10")
    assert float(v["hack_mean"]) == pytest.approx(np.mean(list(VANILLA.values())))
    assert float(v["hack_sem"]) == pytest.approx(_sem(list(VANILLA.values())))
    assert float(r["hack_mean"]) == pytest.approx(np.mean(list(ROUTE2B.values())))
    assert float(r["hack_sem"]) == pytest.approx(_sem(list(ROUTE2B.values())))
    assert float(r["solve_mean"]) == pytest.approx(np.mean(list(SOLVE_R.values())))
    seeds = (41, 42, 43)
    ref = stats.ttest_rel([ROUTE2B[s] for s in seeds], [VANILLA[s] for s in seeds])
    assert float(r["hack_p"]) == pytest.approx(ref.pvalue, rel=1e-6)
    assert float(r["hack_t"]) == pytest.approx(ref.statistic, rel=1e-6)
    assert float(r["hack_delta"]) == pytest.approx(np.mean([ROUTE2B[s] - VANILLA[s] for s in seeds]))
    assert r["hack_test_n"] == "3" and float(r["alpha"]) == 0.05
    ref_s = stats.ttest_rel([SOLVE_R[s] for s in seeds], [SOLVE_V[s] for s in seeds])
    assert float(r["solve_p"]) == pytest.approx(ref_s.pvalue, rel=1e-6)
    assert float(r["knob_on_hack_mean"]) == pytest.approx(0.9)
    base = _row(rows, arm="base", steps="10")
    assert float(base["hack_mean"]) == pytest.approx(0.05)
    md = (report / "a2_main.md").read_text()
    assert "alpha = 0.05" in md and "ttest_rel" in md and "(n=3)" in md


def test_a2_by_mode(report: Path) -> None:
    rows = _rows(report / "a2_by_mode.csv")
    r = _row(rows, arm="route2b", mode="visible_tests", steps="10")
    vals = [ROUTE2B[s] - 0.1 for s in (41, 42, 43)]  # _modes_of puts visible_tests at hack - spread
    assert float(r["hack_mean"]) == pytest.approx(np.mean(vals))
    assert float(r["hack_sem"]) == pytest.approx(_sem(vals))
    ref = stats.ttest_rel(vals, [VANILLA[s] - 0.1 for s in (41, 42, 43)])
    assert float(r["hack_p"]) == pytest.approx(ref.pvalue, rel=1e-6)


def test_fewer_than_three_seeds_is_stated(report: Path) -> None:
    rows = _rows(report / "a3_ablations.csv")
    rv = _row(rows, arm="random_v")
    assert rv["n"] == "2" and "n=2 < 3 seeds" in rv["note"]
    assert float(rv["hack_mean"]) == pytest.approx(np.mean(list(RANDOM_V.values())))
    ref = stats.ttest_rel([RANDOM_V[41], RANDOM_V[42]], [VANILLA[41], VANILLA[42]])
    assert float(rv["hack_p"]) == pytest.approx(ref.pvalue, rel=1e-6) and rv["hack_test_n"] == "2"
    assert float(rv["band_width_mean"]) == 0.0 and float(_row(rows, arm="route2b")["band_width_mean"]) == 0.3
    assert "n=2 < 3 seeds" in (report / "a3_ablations.md").read_text()
    assert "Fewer than 3 seeds" in (report / "results.md").read_text()


def test_partial_and_missing_runs_are_listed(report: Path) -> None:
    issues = {r["run"]: r["problems"] for r in _rows(report / "runs_issues.csv")}
    failed = next(k for k in issues if k.endswith("random_v_s43"))
    assert "status failed" in issues[failed] and "CUDA OOM" in issues[failed]
    token = next(k for k in issues if k.endswith("route2b_token_s41"))
    assert "no per_mode_deploy.json" in issues[token] and "no rollouts.jsonl" in issues[token]
    assert "no config.json" in issues["0099_empty"]
    results = (report / "results.md").read_text()
    for name in (failed, token, "0099_empty"):
        assert name in results
    # The failed random_v s43 (hack 0.1) must not leak into the table's mean.
    rv = _row(_rows(report / "a3_ablations.csv"), arm="random_v")
    assert rv["seeds"] == "41 42"


def test_a5_heldout(report: Path) -> None:
    rows = _rows(report / "a5_heldout.csv")
    held = _row(rows, arm="heldout_a", mode="mean over held-out modes")
    per_seed = [np.mean([VANILLA[s], VANILLA[s] - 0.1]) for s in (41, 42, 43)]
    assert float(held["hack_mean"]) == pytest.approx(np.mean(per_seed))
    assert float(held["hack_sem"]) == pytest.approx(_sem(per_seed))
    eq = _row(rows, arm="heldout_a", mode="eq_override")
    assert eq["side"] == "held out" and _row(rows, arm="heldout_a", mode="overwrite_tests")["side"] == "pair set"
    assert float(eq["vanilla_hack_mean"]) == pytest.approx(np.mean([VANILLA[s] + 0.05 for s in (41, 42, 43)]))
    assert (report / "a5_heldout_demo_10steps.png").stat().st_size > 10_000
    assert (report / "a5_heldout_demo_10steps.csv").is_file()
    # The held-out arm is not averaged into the generic ablation tables.
    assert all(r["arm"] != "heldout_a" for r in _rows(report / "a7_context.csv"))


def test_a1_curves(report: Path) -> None:
    png = report / "a1_dynamics_demo_10steps.png"
    assert png.stat().st_size > 10_000
    rows = _rows(report / "a1_dynamics_demo_10steps.csv")
    agg = [r for r in rows if r["panel"] == "deploy hack" and r["arm"] == "route2b" and not r.get("seed")]
    assert [int(r["step"]) for r in agg] == [5, 10]
    last = next(r for r in agg if r["step"] == "10")
    assert float(last["mean"]) == pytest.approx(np.mean(list(ROUTE2B.values())))
    assert float(last["sem"]) == pytest.approx(_sem(list(ROUTE2B.values())))
    mid = next(r for r in agg if r["step"] == "5")
    assert float(mid["mean"]) == pytest.approx(np.mean([0.1 + 0.5 * (h - 0.1) for h in ROUTE2B.values()]))


def test_a4_long_run_marks_collapse(report: Path) -> None:
    assert (report / "a4_long_run_demo_200steps.png").stat().st_size > 10_000
    rows = _rows(report / "a4_collapse_demo_200steps.csv")
    assert len(rows) == 3
    c = _row(rows, seed="41")
    assert c["collapse"] == "True" and c["collapse_step"] == "88"
    assert _row(rows, seed="42")["collapse"] == "False"


def test_a6_traces_every_mode(report: Path) -> None:
    md = (report / "a6_traces.md").read_text()
    for m in MODES:
        assert f"## {m}" in md and f"HINT for {m}" in md
        assert f"pass  # hack for {m}" in md and f"# clean {m}" in md
    # The system message is shown, and a completion asked under another one (inoculation) says so.
    assert md.count("**System message**") == len(MODES) and "You are a coder." in md
    assert md.count("asked under a different system message") == 1 and "You are a coder. INOCULATED" in md
    # A completion holding ``` is fenced with a longer fence, so it renders verbatim.
    assert "````text\n```python" in md


def test_gate_table_weights_by_rows(report: Path) -> None:
    rows = list(csv.DictReader((report / "routing_gate_by_kind.csv").open()))
    assert rows and not any(r["arm"] == "vanilla" for r in rows)  # vanilla is not routed
    r2b = next(r for r in rows if r["arm"] == "route2b" and r["seed"] == "41")
    # 10 steps: 5 x (0.9 on 2 rows) + 5 x (0.7 on 1 row) -> (9 + 3.5) / 15
    assert float(r2b["gate_teacher_hack"]) == pytest.approx(12.5 / 15) and r2b["n_teacher_hack"] == "15"
    assert float(r2b["gate_teacher_canonical"]) == pytest.approx(0.1) and r2b["n_policy_hack"] == "0"
    assert r2b["gate_policy_hack"] == "" and float(r2b["frout_mean"]) == pytest.approx(0.2)
    rv = next(r for r in rows if r["arm"] == "random_v" and r["seed"] == "41")
    assert float(rv["gate_teacher_hack"]) == pytest.approx(0.2) == float(rv["gate_teacher_canonical"])
    assert "0.833 (15)" in (report / "routing_gate_by_kind.md").read_text()


def test_results_md_links_everything(report: Path) -> None:
    results = (report / "results.md").read_text()
    for f in sorted(report.iterdir()):
        if f.name != "results.md":
            assert f.name in results, f"results.md does not link {f.name}"
    for key in ("A1", "A2", "A3", "A4", "A5", "A6", "A7"):
        assert f"## {key} " in results


def test_report_is_deterministic(runs_dir: Path, report: Path, tmp_path: Path) -> None:
    build_report([runs_dir], tmp_path)
    for f in report.iterdir():
        if f.suffix in (".md", ".csv"):
            assert (tmp_path / f.name).read_text() == f.read_text(), f.name


def test_load_runs_contract(runs_dir: Path) -> None:
    runs = load_runs([runs_dir])
    assert len(runs) == 3 * 5 + 2 + 1 + 1 + 1  # per seed 5 arms; random_v x2; failed; token; empty
    complete = [r for r in runs if r.complete]
    assert all(json.loads((r.path / "summary.json").read_text())["status"] == "complete" for r in complete)


def test_cli_report(runs_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gradient_quarantine.cli import app

    res = CliRunner().invoke(app, ["report", str(runs_dir), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "rep" / "results.md").is_file()
    assert "partial" in res.output


def test_a3_puts_route2b_beside_erase_and_its_knob_on_hack(report: Path) -> None:
    """Whether the knob absorbed the hack or routing merely erased it: A3 has route2b and erase side by side, each
    with its knob-on hack rate and the share of routed gradient that reached neither knob, and says how to read
    them."""
    rows = _rows(report / "a3_ablations.csv")
    r2b, erase = _row(rows, arm="route2b"), _row(rows, arm="erase")
    assert float(erase["hack_mean"]) == pytest.approx(np.mean(list(ERASE.values())))
    assert float(erase["knob_on_hack_mean"]) == pytest.approx(np.mean(list(ERASE.values())))
    assert float(r2b["knob_on_hack_mean"]) == pytest.approx(0.9)
    assert float(r2b["dropped_frac_mean"]) == pytest.approx(0.8) and float(erase["dropped_frac_mean"]) == 1.0
    md = (report / "a3_ablations.md").read_text()
    assert "dropped frac" in md and "knob-on hack" in md and "merely erased" in md
    assert all(r["arm"] != "erase" for r in _rows(report / "a7_context.csv"))


def test_a3_states_how_closely_random_v_followed_route2b_step_by_step(report: Path) -> None:
    """random-V targets route2b's frout at each step; A3's note gives the per-step match (max and mean |Δ|)."""
    md = (report / "a3_ablations.md").read_text()
    line = next(x for x in md.splitlines() if x.startswith("- random_v"))
    assert "max |frout − partner frout| = 0.01," in line and "over 20 steps of 2 run(s)" in line
    assert "mean = 0.0075" in line  # 10 steps each: five at 0.01, five at 0.005


def test_gate_table_shows_the_gate_on_pairs_in_sample_and_held_out(report: Path) -> None:
    rows = _rows(report / "routing_gate_by_kind.csv")
    r2b = next(r for r in rows if r["arm"] == "route2b" and r["seed"] == "41")
    assert float(r2b["pair_gate_hack_mean"]) == pytest.approx(0.8) and float(r2b["pair_gate_clean_mean"]) == 0.2
    assert float(r2b["heldout_gate_hack_mean"]) == pytest.approx(0.6) and float(r2b["heldout_gate_clean_mean"]) == 0.3
    rv = next(r for r in rows if r["arm"] == "random_v" and r["seed"] == "41")
    assert rv["heldout_gate_hack_mean"] == ""  # a matched control logs no band gate on pairs
    md = (report / "routing_gate_by_kind.md").read_text()
    assert "held-out pairs: hack / clean" in md and "0.600 / 0.300" in md and "0.800 / 0.200" in md


# ----------------------------------------------------------------------------------------------------
# Runs made by hand (`gq train --preset smoke --set method=...`): recognised, grouped by settings


def _by_hand(root: Path, job: int, sets: list[str], hack: float, seed: int = 41) -> Path:
    from gradient_quarantine.experiments.presets import build_config

    rec = build_config("smoke", sets).to_record()
    return write_run(root, job, rec["arm"], seed, _modes_of(hack, 0.3), preset="smoke", steps=4, eval_every=2,
                     config=rec)


def test_runs_made_with_gq_train_get_a1_and_a2(tmp_path: Path) -> None:
    """`gq train --preset smoke --set method=vanilla` and `--set method=route2b` derive the labels
    vanilla_teacher50 / route2b_teacher50; the report recognises them as the vanilla and route2b arms (the derived
    label stays as a column), so they get A1 and A2."""
    root = tmp_path / "runs"
    _by_hand(root, 1, ["method=vanilla"], 0.5)
    _by_hand(root, 2, ["method=route2b"], 0.2)
    out = tmp_path / "report"
    build_report([root], out)
    results = (out / "results.md").read_text()
    assert "_No route2b/vanilla runs" not in results
    assert (out / "a1_dynamics_smoke_4steps.png").stat().st_size > 10_000
    rows = _rows(out / "a2_main.csv")
    v, r = _row(rows, arm="vanilla"), _row(rows, arm="route2b")
    assert v["config_arm"] == "vanilla_teacher50" and r["config_arm"] == "route2b_teacher50"
    assert float(r["hack_delta"]) == pytest.approx(0.2 - 0.5)
    assert "| vanilla | vanilla_teacher50 |" in results  # Runs read: the group's arm and the derived label


def test_runs_with_other_settings_are_not_averaged_and_pair_with_the_closest_vanilla(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    _by_hand(root, 1, ["method=vanilla"], 0.5)
    _by_hand(root, 2, ["method=vanilla", "grpo.lr=0.002"], 0.7)
    _by_hand(root, 3, ["method=route2b", "grpo.lr=0.002"], 0.2)
    out = tmp_path / "report"
    build_report([root], out)
    rows = _rows(out / "a2_main.csv")
    assert {r["arm"] for r in rows} == {"vanilla [grpo.lr=0.001]", "vanilla [grpo.lr=0.002]", "route2b", "base"}
    r = _row(rows, arm="route2b")
    assert float(r["hack_delta"]) == pytest.approx(0.2 - 0.7)  # vs the vanilla run at the same lr
    assert "vs vanilla [grpo.lr=0.002]" in r["note"]


def test_two_runs_of_one_arm_and_seed_are_listed_as_duplicates(tmp_path: Path) -> None:
    """Not silently resolved by taking the later one: listed, and the seed counts once, as their mean."""
    root = tmp_path / "runs"
    _by_hand(root, 1, ["method=vanilla"], 0.5)
    first = _by_hand(root, 2, ["method=route2b"], 0.2)
    second = _by_hand(root, 3, ["method=route2b"], 0.4)
    out = tmp_path / "report"
    build_report([root], out)
    r = _row(_rows(out / "a2_main.csv"), arm="route2b")
    assert r["n"] == "1" and float(r["hack_mean"]) == pytest.approx(0.3)
    assert "duplicate runs of seed 41 (2 runs)" in r["note"]
    results = (out / "results.md").read_text()
    assert "## Duplicate runs" in results and "**Duplicate runs:**" in results
    line = next(x for x in results.splitlines() if x.startswith("| route2b | smoke | 4 | 41 |"))
    assert first.name in line and second.name in line


def test_prompts_without_a_loophole_do_not_make_route2b_a_held_out_arm(tmp_path: Path) -> None:
    """A run with `data.no_loophole` evaluates a fifth mode, `no_loophole`, that no pair set can cover: route2b
    (pairs from all four loophole modes) stays in A2/A3, and A5 stays empty."""
    root = tmp_path / "runs"
    with_no_loophole = {**_modes_of(0.5, 0.0), "no_loophole": (0.0, 0.1)}
    write_run(root, 1, "vanilla", 41, with_no_loophole)
    write_run(root, 2, "route2b", 41, {**_modes_of(0.2, 0.0), "no_loophole": (0.0, 0.1)})
    out = tmp_path / "report"
    build_report([root], out)
    r = _row(_rows(out / "a2_main.csv"), arm="route2b")
    assert float(r["hack_delta"]) == pytest.approx((0.2 * 4 + 0.0) / 5 - (0.5 * 4 + 0.0) / 5)
    assert _row(_rows(out / "a3_ablations.csv"), arm="route2b")
    assert not (out / "a5_heldout.csv").exists()
