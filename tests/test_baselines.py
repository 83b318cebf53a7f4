"""Published baselines and the solve-orthogonalised v_grad (train/baselines.py, routing/orthogonalize.py,
substrate/solve_pairs.py), on the tiny model and the built-in problems:

* monitor: the lowered-accuracy monitor has its stated TPR / FPR on a large synthetic label set (seeded), and is
  per-rollout deterministic;
* monitor_penalty: TRL's advantages are those of `r_b - penalty * flag_b`, exactly;
* monitor_screen: a flagged rollout leaves its group's mean and std, gets advantage 0, and its gradient is 0;
* inoculation: the training prompt differs from the normal one by the instruction only; deploy evals use the
  normal prompt;
* adv_mod: `A_b <- A_b - adv_coef * clamp((cos_b - lower) / (upper - lower), 0, 1)`, with `cos_b` from a capture
  pass whose per-rollout gradient matches per-sample autograd;
* solve_orth: the orthogonalised direction has no component in the solve span, per module; the stub side of a
  solve pair fails every grader;
* config: each baseline is validated (no routing with a baseline, no stray keys); every arm file runs end to end
  through `Run` and writes a complete run directory; adv_mod resumes to the same numbers.

Each baseline is an intervention (train/intervention.py); its hooks run inside the trainer, which records what
they did in the step's record (`trainer.record`: the graded rows, the rewards TRL trained on, the gauges).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from scipy.stats import binomtest

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from gradient_quarantine.experiments.presets import ConfigError, build_config  # noqa: E402
from gradient_quarantine.experiments.sweep import load_arm  # noqa: E402
from gradient_quarantine.io import read_jsonl  # noqa: E402
from gradient_quarantine.routing.direction import Direction, direction_from_grads  # noqa: E402
from gradient_quarantine.routing.orthogonalize import orthogonalize, solve_component  # noqa: E402
from gradient_quarantine.substrate.prompts import SYSTEM_PROMPT, render_prompt  # noqa: E402
from gradient_quarantine.substrate.types import MODES, Mode  # noqa: E402
from gradient_quarantine.train.baselines import (  # noqa: E402
    LOOPHOLES,
    AdvMod,
    Monitor,
    MonitorPenalty,
    MonitorScreen,
    inoculation_instruction,
    inoculation_prompt,
    rollout_logprob_grads,
)
from gradient_quarantine.train.config import MODE_NAMES, TrainConfig  # noqa: E402
from gradient_quarantine.train.intervention import Vanilla  # noqa: E402
from gradient_quarantine.train.step import LogpTally  # noqa: E402

BASELINE_ARMS = ["monitor_penalty_gt", "monitor_penalty_weak", "monitor_screen_gt", "monitor_screen_weak",
                 "inoculation", "adv_mod"]  # fmt: skip
ARMS = [*BASELINE_ARMS, "solve_orth"]


def arm_sets(arm: str) -> list[str]:
    return [f"{k}={v}" for k, v in load_arm(arm).set.items()]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")  # shared: the base-model eval and teacher pool are computed once


@pytest.fixture(scope="module")
def grader():
    from gradient_quarantine.substrate.grader import Grader

    with Grader(workers=1) as g:
        yield g


@pytest.fixture(scope="module")
def builtin():
    from gradient_quarantine.substrate.modes import assign_modes
    from gradient_quarantine.substrate.problems import load_problems

    problems = load_problems("builtin")
    return problems, assign_modes([p.id for p in problems], seed=0)


def _run(tmp_path, cache_dir, sets):
    """The set-up of a smoke-preset run (train/run_setup.py): model, adapter and problems (nothing trained)."""
    from gradient_quarantine.train.run_setup import RunSetup
    from gradient_quarantine.train.rundir import RunDir

    cfg = build_config("smoke", [*sets, f"run.cache_dir={cache_dir}", "run.progress=false"]).resolved()
    return RunSetup(cfg, RunDir.create(tmp_path, cfg.name)).build()


def _trainer(s, grader):
    """The run's trainer and its intervention, built as `Run.start` builds them."""
    from gradient_quarantine.train.run_setup import make_intervention
    from gradient_quarantine.train.run_trainer import build_trainer

    return build_trainer(s, grader, make_intervention(s))


def _scored_batch(s, trainer, seed=0):
    """TRL's scored generation batch of the first step (whole groups, our rollout function and reward)."""
    from transformers import set_seed

    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    G = s.cfg.grpo.num_generations
    batch = [dict(row) for row in s.prompt_rows(trainer.intervention)[: s.cfg.grpo.prompts_per_step] for _ in range(G)]
    set_seed(seed)
    return trainer._generate_and_score_completions(batch)


def _group_advantages(rewards: np.ndarray, G: int) -> np.ndarray:
    """TRL's group advantage (scale_rewards=group) over non-NaN rewards; NaN rows (and lone rows) get 0."""
    A = np.zeros_like(rewards)
    for g in range(len(rewards) // G):
        r = rewards[g * G : (g + 1) * G]
        live = ~np.isnan(r)
        if live.sum() >= 2:
            mean, std = r[live].mean(), r[live].std(ddof=1)
            A[g * G : (g + 1) * G][live] = (r[live] - mean) / (std + 1e-4)
    return A


# ------------------------------------------------------------------------------------------------- monitor


def test_monitor_has_its_stated_accuracy_and_is_deterministic():
    n = 20_000
    hacks = [i % 2 == 0 for i in range(n)]  # 10k hacks, 10k clean
    for tpr, fpr in [(0.7, 0.1), (0.9, 0.02)]:
        mon = Monitor(tpr=tpr, fpr=fpr, seed=41)
        flags = [mon.flag(h, (3, i, f"p{i % 7}", f"code {i}")) for i, h in enumerate(hacks)]
        k_tp = sum(f for f, h in zip(flags, hacks, strict=True) if h)
        k_fp = sum(f for f, h in zip(flags, hacks, strict=True) if not h)
        assert abs(k_tp / (n // 2) - tpr) < 0.015 and abs(k_fp / (n // 2) - fpr) < 0.01
        assert binomtest(k_tp, n // 2, tpr).pvalue > 1e-3 and binomtest(k_fp, n // 2, fpr).pvalue > 1e-3
    gt = Monitor(1.0, 0.0, seed=41)
    assert all(gt.flag(h, (0, i)) == h for i, h in enumerate(hacks[:500]))
    mon = Monitor(0.7, 0.1, seed=41)
    key = (5, 2, "p1", "```python\nx\n```")
    assert mon.uniform(key) == Monitor(0.7, 0.1, seed=41).uniform(key)  # same rollout, same flag (resume-safe)
    assert mon.uniform(key) != Monitor(0.7, 0.1, seed=42).uniform(key) != mon.uniform((5, 3, "p1", key[3]))


def test_monitor_penalty_changes_rewards_exactly(tmp_path, cache_dir, grader):
    r = _run(tmp_path, cache_dir, [*arm_sets("monitor_penalty_weak"), "grpo.prompts_per_step=4"])
    trainer = _trainer(r, grader)
    out = _scored_batch(r, trainer)
    iv, record = trainer.intervention, trainer.record
    assert isinstance(iv, MonitorPenalty) and iv.name == "monitor_penalty"
    last = record.rollouts
    mon = Monitor(0.7, 0.1, seed=r.cfg.seed)
    flags = [mon.flag(v.hack, (0, i, pid, t))  # step 0: the first step's generation
             for i, (v, pid, t) in enumerate(zip(last.verdicts, last.problem_ids, last.completions, strict=True))]  # fmt: skip
    assert any(flags) and not all(flags)
    # what TRL trained on: the flawed grader's reward minus 3 for exactly these flags
    assert record.rewards == [v.reward - 3.0 * f for v, f in zip(last.verdicts, flags, strict=True)]
    trained = np.array([v.reward - 3.0 * f for v, f in zip(last.verdicts, flags, strict=True)], dtype=np.float32)
    want = _group_advantages(trained, r.cfg.grpo.num_generations)
    assert np.allclose(out["advantages"].numpy(), want, atol=1e-5)
    assert any(v.hack for v in last.verdicts)  # the teacher mix puts hacks in the batch
    m = record.reward_metrics
    assert m["baseline/reward_mean"] == pytest.approx(float(trained.mean()))
    assert m["baseline/flag_rate"] == pytest.approx(sum(flags) / len(flags))


def test_monitor_screen_drops_flagged_rollouts(tmp_path, cache_dir, grader):
    from gradient_quarantine.routing.capture import GradCapture

    r = _run(tmp_path, cache_dir, [*arm_sets("monitor_screen_gt"), "grpo.prompts_per_step=4"])
    trainer = _trainer(r, grader)
    out = _scored_batch(r, trainer)
    assert isinstance(trainer.intervention, MonitorScreen)
    last = trainer.record.rollouts
    flags = [x is None for x in trainer.record.rewards]  # a screened row: no reward for TRL
    assert flags == [v.hack for v in last.verdicts] and any(flags)  # ground truth: flag == strict hack label
    assert [x for x in trainer.record.rewards if x is not None] == [v.reward for v in last.verdicts if not v.hack]
    kept = np.array([np.nan if f else v.reward for v, f in zip(last.verdicts, flags, strict=True)], dtype=np.float32)
    want = _group_advantages(kept, r.cfg.grpo.num_generations)
    A = out["advantages"].numpy()
    assert np.allclose(A, want, atol=1e-5)
    assert all(A[i] == 0.0 for i, f in enumerate(flags) if f)
    assert any(A[i] != 0.0 for i, f in enumerate(flags) if not f)
    # the loss's per-rollout gradient: exactly zero for every screened rollout
    with GradCapture(r.adapter) as cap:
        trainer.compute_loss(trainer.model, out).backward()
    G = torch.cat([g for g in cap.per_rollout.values()], 1)  # (B, sum R)
    norms = G.norm(dim=1)
    assert all(norms[i] == 0.0 for i, f in enumerate(flags) if f)
    assert all(norms[i] > 0 for i in range(len(flags)) if A[i] != 0.0)


# --------------------------------------------------------------------------------------------- inoculation


def test_inoculation_prompt_differs_only_by_the_instruction(builtin):
    problems, modes_of = builtin
    for mode in MODES:
        p = next(p for p in problems if modes_of[p.id] == mode)
        normal, inoc = render_prompt(p, mode), inoculation_prompt(p, mode)
        instruction = inoculation_instruction(mode)
        assert LOOPHOLES[mode] in instruction
        assert inoc[1:] == normal[1:] and inoc[0]["role"] == normal[0]["role"] == "system"
        assert inoc[0]["content"] == normal[0]["content"] + "\n\n" + instruction
    custom = inoculation_prompt(problems[0], Mode.EXIT_CODE, text="Hack it: {loophole}!")
    assert custom[0]["content"].endswith(f"Hack it: {LOOPHOLES[Mode.EXIT_CODE]}!")


# ------------------------------------------------------------------------------------------------- adv_mod


def test_adv_mod_changes_advantages_by_the_formula(tmp_path, cache_dir, grader):
    r = _run(tmp_path, cache_dir, arm_sets("adv_mod"))
    trainer = _trainer(r, grader)
    mod = trainer.intervention
    # no routing in a baseline arm: the direction scores advantages, the knob is frozen, no gradient is routed
    assert isinstance(mod, AdvMod) and not mod.trains_knob and not hasattr(mod, "router")
    assert all(not p.requires_grad for p in r.adapter.knob_parameters())
    trainer.intervention = Vanilla()
    out = _scored_batch(r, trainer)
    A0 = out["advantages"].clone()
    params = r.adapter.main_parameters()
    assert all(p.grad is None for p in params)
    grads = rollout_logprob_grads(trainer, out)  # {m: (B, R)}
    assert all(p.grad is None for p in params)  # the capture pass leaves .grad as it was

    # the capture pass is each rollout's own grad sum_t log p: compare one (unpadded) row with plain autograd
    b = int(out["prompt_mask"].sum(1).argmax())  # the longest prompt: no left padding, same positions
    ids = torch.cat([out["prompt_ids"][b], out["completion_ids"][b][out["completion_mask"][b] == 1]])[None]
    P = out["prompt_ids"].shape[1]
    with torch.enable_grad():
        logits = r.model(input_ids=ids).logits[0, :-1].float() / r.cfg.grpo.temperature  # (T-1, V)
        logp = torch.log_softmax(logits, -1).gather(1, ids[0, 1:, None])[:, 0]  # (T-1,)
        auto = torch.autograd.grad(logp[P - 1 :].sum(), params)
    for (m, mod_m), g in zip(r.adapter.modules.items(), auto, strict=True):
        assert torch.allclose(grads[m][b, : mod_m.rank], g, rtol=1e-3, atol=1e-6), m

    # the formula, with the cosine computed independently over the concatenation of all modules
    names = list(mod.direction.v_hat)
    Gcat = torch.cat([grads[m] for m in names], 1)  # (B, M*R)
    v = torch.cat([mod.direction.v_hat[m] for m in names])  # (M*R,)
    cos = Gcat @ v / (Gcat.norm(dim=1) * v.norm())
    lower, upper = mod.band.lower, mod.band.upper
    assert upper > lower
    f = ((cos - lower) / (upper - lower)).clamp(0.0, 1.0)
    trainer.intervention = mod
    out2 = dict(out)
    out2["advantages"] = A0.clone()
    metrics = mod.advantages(trainer, out2)
    assert torch.allclose(out2["advantages"], A0 - r.cfg.baseline.adv_coef * f, atol=1e-5)
    assert (f > 0).any() and (out2["advantages"] < A0).any()
    assert metrics["baseline/adv_score_mean"] == pytest.approx(float(f.mean()), abs=1e-5)
    # through the trainer's own hook: the same change, and the scoring forward is not counted as training logp
    out3 = _scored_batch(r, trainer)
    assert torch.allclose(out3["advantages"], A0 - r.cfg.baseline.adv_coef * f, atol=1e-5)
    assert trainer.record.advantage_metrics["baseline/adv_score_mean"] == pytest.approx(float(f.mean()), abs=1e-5)
    assert trainer.record.logp == LogpTally()


# ----------------------------------------------------------------------------------------------- solve_orth


def _synthetic(n=6, R=5, mods=("a", "b", "c"), seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [{m: torch.randn(n, R, generator=gen) for m in mods} for _ in range(2)]


@pytest.mark.parametrize("k, k_solve", [(1, 1), (2, 1), (2, 2)])
def test_solve_orth_direction_is_orthogonal_to_the_solve_span_per_module(k, k_solve):
    hack, clean = _synthetic(seed=1)
    correct, incorrect = _synthetic(seed=2)
    v = direction_from_grads(hack, clean, k)
    solve = direction_from_grads(correct, incorrect, k_solve, kind="solve")
    before = solve_component(v, solve)
    assert max(before.values()) > 0.05  # there was something to remove
    w = orthogonalize(v, solve)
    assert isinstance(w, Direction) and w.kind == "v_grad" and w.k == k
    total = torch.sqrt(sum((x.double() ** 2).sum() for x in w.v_hat.values()))
    assert total == pytest.approx(1.0, abs=1e-6)
    for m in v.v_hat:
        S, B, vm = solve.basis[m].double(), w.basis[m].double(), w.v_hat[m].double()
        assert (S @ vm).abs().max() < 1e-6 and (S @ B.T).abs().max() < 1e-6  # no solve component left
        assert torch.allclose(B @ B.T, torch.eye(k, dtype=torch.float64), atol=1e-6)  # still orthonormal
        assert torch.allclose(B.T @ (B @ vm), vm, atol=1e-6)  # v_hat stays in the basis' span
    assert max(solve_component(w, solve).values()) < 1e-5
    removed = w.meta["solve_orth"]["removed"]
    assert 0 < removed < 1
    # the removed fraction is what the solve span held: ||v - Pv||^2 / ||v||^2
    want = sum(float((solve.basis[m].double() @ v.v_hat[m].double()).norm() ** 2) for m in v.v_hat)
    assert removed == pytest.approx(want, rel=1e-5)
    # orthogonalising twice changes nothing more
    w2 = orthogonalize(w, solve)
    assert all(torch.allclose(w2.v_hat[m], w.v_hat[m], atol=1e-6) for m in w.v_hat)


def test_solve_orth_refuses_a_direction_inside_the_solve_span():
    hack, clean = _synthetic(seed=3)
    v = direction_from_grads(hack, clean, 1)
    with pytest.raises(ValueError, match="inside the solve direction's span"):
        orthogonalize(v, Direction(v.basis, v.v_hat, "solve"))


def test_solve_pairs_are_correct_vs_failing_on_the_pair_set_problems(builtin, grader):
    from gradient_quarantine.substrate.pairs import build_pairs
    from gradient_quarantine.substrate.solve_pairs import build_solve_pairs, solve_pairs_for

    problems, modes_of = builtin
    rows = build_solve_pairs(problems, modes_of, per_mode=1)
    hack_rows = build_pairs(problems, modes_of, per_mode=1)
    assert [r["prompt"] for r in rows] == [r["prompt"] for r in hack_rows]  # same problems, same hinted prompts
    by_id = {p.id: p for p in problems}
    assert solve_pairs_for(hack_rows, by_id) == rows
    items = [(by_id[r["problem_id"]], r["mode"], r[side]) for r in rows for side in ("correct", "incorrect")]
    verdicts = grader.grade_many(items)
    for i, row in enumerate(rows):
        good, bad = verdicts[2 * i], verdicts[2 * i + 1]
        assert good.gt_pass and good.flawed_pass
        assert not bad.gt_pass and not bad.flawed_pass and not bad.hack and bad.format_ok, (row["mode"], bad)
    with pytest.raises(ValueError, match="not loaded"):
        solve_pairs_for([{**hack_rows[0], "problem_id": "nope"}], by_id)


def test_solve_orth_on_the_tiny_model(tmp_path, cache_dir):
    """Run.extract_direction with routing.solve_orth: the direction in force has no solve component."""
    from gradient_quarantine.routing.orthogonalize import solve_direction
    from gradient_quarantine.routing.pairs import length_norm_for_loss_type

    r = _run(tmp_path, cache_dir, arm_sets("solve_orth"))
    r.load_pairs()
    direction, band = r.extract_direction()
    norm = length_norm_for_loss_type(r.cfg.grpo.loss_type, r.cfg.grpo.max_completion_length)
    solve = solve_direction(r.model, r.adapter, r.tok, r.solve_pairs(), r.cfg.routing.k, norm,
                            r.cfg.grpo.temperature)  # fmt: skip
    assert max(solve_component(direction, solve).values()) < 1e-4
    meta = direction.meta["solve_orth"]
    assert 0 < meta["removed"] < 1 and meta["n_solve_pairs"] == len(r.pairs)
    assert band.loo_separation is not None and len(band.hack_cos) == len(r.pairs)


# --------------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "sets, match",
    [
        (["baseline.kind=inoculation"], "Set method=vanilla"),  # smoke is method=route2b
        (["method=vanilla", "baseline.penalty=2"], "baseline.penalty is set but baseline.kind=none"),
        (["method=vanilla", "baseline.kind=inoculation", "baseline.monitor_tpr=0.5"], "does not use it"),
        (["method=vanilla", "baseline.kind=monitor_screen", "baseline.monitor_tpr=0.1", "baseline.monitor_fpr=0.2"],
         "no better than chance"),
        (["method=vanilla", "baseline.kind=monitor_screen", "grpo.adv_std_floor=0.5"], "unset grpo.adv_std_floor"),
        (["method=vanilla", "baseline.kind=adv_mod", "routing.direction=random"], "set routing.direction=real"),
        (["method=vanilla", "baseline.kind=adv_mod", "pair_modes=[]"], "at least one mode"),
        (["method=vanilla", "baseline.kind=inoculation", "baseline.inoculation_text='do {this}'"], "only the placeholder"),
        (["method=vanilla", "routing.solve_orth=true"], "set method=route2b"),
        (["routing.solve_orth=true", "routing.direction=random", "routing.frout_target=0.3"],
         "routing.direction=real or routing.solve_orth=false"),
        (["method=vanilla", "baseline.kind=monitor"], "baseline.kind"),
    ],
)  # fmt: skip
def test_inconsistent_baseline_configs_fail_at_start(sets, match):
    with pytest.raises(ConfigError, match=match):
        build_config("smoke", sets)


@pytest.mark.parametrize("arm", ARMS)
def test_every_arm_validates_and_round_trips(arm):
    cfg = build_config("smoke", arm_sets(arm)).resolved()
    assert TrainConfig.from_record(cfg.to_record()) == cfg  # config.json -> resume / gq eval
    if arm in BASELINE_ARMS:
        assert cfg.method == "vanilla" and cfg.arm == f"{arm}_teacher50"  # the derived label: arm + smoke's teacher mix
        assert cfg.pair_modes == (list(MODE_NAMES) if arm == "adv_mod" else [])
    else:
        assert cfg.routing.solve_orth and cfg.arm.startswith("route2b_solve_orth")


# ----------------------------------------------------------------------------------------------- end to end


def _check_run_dir(path, cfg):
    """The run directory contract (docs/run_directory.md) for a finished run."""
    rec = json.loads((path / "config.json").read_text())
    for key in ("name", "arm", "seed", "preset", "steps", "model", "pair_modes", "git_commit", "config_hash"):
        assert key in rec
    assert rec["config_hash"] == cfg.config_hash() and rec["baseline"] == cfg.baseline.model_dump(mode="json")
    rows = read_jsonl(path / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, cfg.steps + 1))
    for r in rows:
        for key in ("reward/mean", "train/hack_rate", "train/solve_rate", "grad/norm_main", "grad/norm_knob",
                    "policy/logp_mean", "perf/step_time_s", "health/collapse"):  # fmt: skip
            assert key in r, key
    assert [e["step"] for e in read_jsonl(path / "deploy_evals.jsonl")] == [2, 3]
    final = json.loads((path / "per_mode_deploy.json").read_text())
    assert final["step"] == cfg.steps and all(final[v]["n"] > 0 for v in ("deploy", "knob_on", "base"))
    summary = json.loads((path / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["error"] is None
    assert read_jsonl(path / "rollouts.jsonl") and (path / "train.safetensors").is_file()
    assert (path / "checkpoint" / "COMPLETE").is_file()
    return rows


@pytest.mark.parametrize("arm", ARMS)
def test_every_arm_runs_end_to_end(arm, tmp_path, cache_dir, monkeypatch):
    from gradient_quarantine.model.svd_adapter import read_adapter_file
    from gradient_quarantine.train import deploy_eval
    from gradient_quarantine.train.run import Run
    from gradient_quarantine.train.rundir import RunDir

    eval_prompts: list = []
    real_sample = deploy_eval.sample

    def recording_sample(model, tokenizer, prompts, *a, **kw):  # the real sampler, with its prompts recorded
        eval_prompts.extend(prompts)
        return real_sample(model, tokenizer, prompts, *a, **kw)

    monkeypatch.setattr(deploy_eval, "sample", recording_sample)
    cfg = build_config("smoke", [*arm_sets(arm), f"run.cache_dir={cache_dir}", "run.progress=false",
                                 f"arm={arm}"]).resolved()  # fmt: skip
    r = Run(cfg, RunDir.create(tmp_path, cfg.name))
    path = r.start().path
    rows = _check_run_dir(path, cfg)
    _, tensors = read_adapter_file(path / "train.safetensors")
    main = sum(float(t.abs().sum()) for k, t in tensors.items() if k.endswith("dS_main"))
    knob = sum(float(t.abs().sum()) for k, t in tensors.items() if k.endswith("dS_knob"))
    assert main > 0
    b = cfg.baseline
    if b.kind != "none":
        assert knob == 0.0 and not any(k.startswith("routing/frout") for k in rows[0])  # no routing
    if b.kind.startswith("monitor"):
        for row in rows:
            assert {"baseline/flag_rate", "baseline/monitor_tpr", "baseline/monitor_fpr", "baseline/reward_mean"} <= set(row)
        if b.monitor_tpr == 1.0 and b.monitor_fpr == 0.0:
            assert all(row["baseline/monitor_tpr"] in (1.0, None) and row["baseline/monitor_fpr"] == 0.0 for row in rows)
        if b.kind == "monitor_screen":
            assert all("baseline/screened_frac" in row for row in rows)
    if b.kind == "adv_mod":
        assert all("baseline/adv_score_mean" in row and row["routing/band_width"] > 0 for row in rows)
        assert (path / "direction" / "direction.safetensors").is_file()
        assert (path / "checkpoint" / "direction.safetensors").is_file()  # refreshed direction, for resume
    if cfg.routing.solve_orth:
        assert knob > 0 and all(0 < row["routing/solve_removed"] < 1 for row in rows)
        assert json.loads((path / "direction" / "direction.json").read_text())["meta"]["solve_orth"]["removed"] > 0
    # training prompts as TRL passed them to the reward; deploy evals always the normal prompt
    train_prompts = r.trainer.record.rollouts.prompts  # the last step's rows
    assert eval_prompts and all(p[0]["content"] == SYSTEM_PROMPT for p in eval_prompts)
    inoculated = [p for p in train_prompts if "exploit the loophole" in p[0]["content"]]
    assert len(inoculated) == (len(train_prompts) if b.kind == "inoculation" else 0)
    logged = read_jsonl(path / "rollouts.jsonl")  # the logged traces carry the system message they were asked under
    assert all(("exploit the loophole" in row["system"]) == (b.kind == "inoculation") for row in logged)


def test_adv_mod_resumes_to_the_same_numbers(tmp_path, cache_dir):
    from faults import crash_after_step
    from safetensors.torch import load_file

    from gradient_quarantine.train.run import resume, train

    sets = [*arm_sets("adv_mod"), "steps=4", "run.checkpoint_every=2", "routing.refresh_every=3",
            f"run.cache_dir={cache_dir}", "run.progress=false", "eval.base=false"]  # fmt: skip
    ref = train(build_config("smoke", sets, name="ref"), runs_dir=tmp_path / "a").path
    with crash_after_step(3), pytest.raises(RuntimeError, match="injected crash after step 3"):
        train(build_config("smoke", sets, name="crashed"), runs_dir=tmp_path / "b")
    run = resume(next((tmp_path / "b").glob("*_crashed"))).path

    def strip(rows):
        return [{k: v for k, v in row.items() if not k.startswith("perf/")} for row in rows]

    assert strip(read_jsonl(run / "metrics.jsonl")) == strip(read_jsonl(ref / "metrics.jsonl"))
    ta, tb = load_file(run / "train.safetensors"), load_file(ref / "train.safetensors")
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
