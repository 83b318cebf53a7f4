"""A run's evaluations (docs/design.md §6): the deploy eval (knob off) and the knob-on eval every `eval.every`
steps and at the end, the base model's once (cached), and `gq eval` (the same evals rebuilt from a run directory).

The evaluator itself is train/deploy_eval.py; this module decides which evals a run makes, when, with which
seed, and where their results go (deploy_evals.jsonl, per_mode_deploy.json).

    >>> ev = RunEvaluation(setup, grader)
    >>> ev.at_step(10)                   # deploy + knob_on, appended to deploy_evals.jsonl
    >>> ev.final()                       # the last step's, plus the base model's: per_mode_deploy.json
    >>> evaluate_run("out/runs/0003_route2b_s41")    # gq eval
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gradient_quarantine.train.config import TrainConfig
from gradient_quarantine.train.run_setup import RunSetup
from gradient_quarantine.train.rundir import RunDir


class RunEvaluation:
    """The evals of one run, on the set-up's model and adapter, graded by `grader`."""

    def __init__(self, setup: RunSetup, grader):
        from gradient_quarantine.train.deploy_eval import DeployEvaluator, select_eval_problems

        cfg = setup.cfg
        self.cfg, self.setup = cfg, setup
        problems = select_eval_problems(setup.eval_pool, setup.modes_of, cfg.eval.n_prompts, cfg.data.mode_seed)
        self.evaluator = DeployEvaluator(
            setup.model, setup.tok, setup.adapter, problems, setup.modes_of, grader, cfg.eval,
            max_new_tokens=cfg.grpo.max_completion_length,
            backend="generate" if cfg.rollout.sampler_for(setup.device) == "trl" else "auto",
        )  # fmt: skip

    def deploy(self, step: int) -> tuple[dict, dict | None]:
        """The deploy eval (knob off) and, with `eval.knob_on`, the knob-on eval, seeded by (seed, step)."""
        deploy = self.evaluator.run("deploy", seed=self.cfg.seed, step=step)
        knob_on = None
        if self.cfg.eval.knob_on:
            # a knob that was never trained is zero: knob on is the deploy model, same seed, same numbers
            untrained = all(float(p.detach().abs().max()) == 0.0 for p in self.setup.adapter.knob_parameters())
            knob_on = deploy if untrained else self.evaluator.run("knob_on", seed=self.cfg.seed, step=step)
            if untrained:
                self.evaluator.last_records["knob_on"] = [
                    {**r, "variant": "knob_on"} for r in self.evaluator.last_records["deploy"]
                ]
        return deploy, knob_on

    def at_step(self, step: int) -> tuple[dict, dict | None]:
        """The evals after optimiser step `step`, appended to deploy_evals.jsonl."""
        deploy, knob_on = self.deploy(step)
        self.setup.run_dir.append_deploy_eval(step, deploy, knob_on)
        return deploy, knob_on

    def base(self) -> dict[str, Any]:
        """The base model's EVAL (adapter off), cached per substrate + model + eval settings."""
        cfg, s = self.cfg, self.setup
        return self.evaluator.base(
            cfg.run.cache_dir,
            {"model": s.base_model, "problems": cfg.data.problems, "limit": cfg.data.limit,
             "mode_seed": cfg.data.mode_seed, "eval_holdout": cfg.data.eval_holdout, "dtype": str(s.model.dtype),
             "modes": [s.modes_of[p.id].value for p in self.evaluator.problems]},
        )  # fmt: skip

    def final(self) -> None:
        """After the last step: its evals (deploy_evals.jsonl) and, with the base model's, per_mode_deploy.json."""
        steps = self.cfg.steps
        deploy, knob_on = self.at_step(steps)
        base = self.base() if self.cfg.eval.base else None
        self.setup.run_dir.write_per_mode_deploy(steps, deploy, knob_on, base)
        self.write_samples()

    def write_samples(self) -> None:
        """deploy_samples.jsonl: every graded sample of the last deploy, knob-on and base evals."""
        last = self.evaluator.last_records
        self.setup.run_dir.write_deploy_samples([r for v in ("deploy", "knob_on", "base") for r in last.get(v, [])])


def evaluate_run(run_dir: str | Path, out: str | Path | None = None) -> dict[str, Any]:
    """`gq eval`: rebuild the run's model from config.json + train.safetensors and re-run its deploy eval
    (deploy, knob_on and base, seeded as the final eval of training). Writes per_mode_deploy.json (or `out`)."""
    from gradient_quarantine.io import atomic_write_json
    from gradient_quarantine.substrate.grader import Grader
    from gradient_quarantine.substrate.sandbox import weakest

    run = RunDir(run_dir)
    if not run.exists():
        raise FileNotFoundError(f"{run_dir}: not a run directory (no config.json)")
    adapter_file = run.file("train.safetensors")
    if not adapter_file.is_file():
        raise FileNotFoundError(f"{adapter_file} is missing: the run has not saved its adapter yet")
    cfg = TrainConfig.from_record(run.read_config())
    setup = RunSetup(cfg, run).build()
    setup.adapter.load(adapter_file)
    summary = run.read_summary() or {}
    step = int(summary.get("steps_done") or cfg.steps)
    with Grader(isolation=cfg.grader.isolation,
                **({"workers": cfg.run.grader_workers} if cfg.run.grader_workers else {})) as grader:
        ev = RunEvaluation(setup, grader)
        deploy, knob_on = ev.deploy(step)
        base = ev.base() if cfg.eval.base else None
        level = grader.isolation.level
    result = {"step": step, "deploy": deploy, "knob_on": knob_on, "base": base, "isolation": level}
    if out is not None:
        atomic_write_json(out, result)
    else:
        run.write_per_mode_deploy(step, deploy, knob_on, base)
        ev.write_samples()
        if summary:  # the run's numbers now include this grading: its level counts too
            atomic_write_json(run.file("summary.json"), {**summary, "isolation": weakest(summary.get("isolation"), level)})
    return result
