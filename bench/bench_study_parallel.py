"""A study's arms side by side against one after another (issue 10's 0.65x target), in one run.

The same small study (a sweep's jobs for one seed, each cut to a few steps with a one-sample final eval) is run
through the real queue and workers (`experiments/workers.run_local`) three ways, one after another:

    sequential      workers=1, the preset's torch threads (the demo preset pins 1)   = `gq study demo -w 1`
    sequential_all  workers=1, torch threads = every core                           (the best one-at-a-time)
    side_by_side    workers=auto: one job per core, one torch thread each            = `gq study demo`

Measured: each layout's wall time, and each job's seconds per step. A job runs the same steps in `sequential`
and `side_by_side` (same seed, same thread count: CPU results are deterministic), so the ratio of its step
times is the **contention factor** c of two jobs sharing the machine (c = 1: perfect; c = 2: no gain on 2
cores). `sequential_all` samples other tokens (another reduction order), so it is compared per generated token.

The three-seed study (9 jobs: vanilla and route2b per seed side by side, random-V after its route2b) is then
projected from these measurements by a list-scheduling simulation (`project_study`): every job is as long as its
arm's measured step time times the study's steps, two jobs at once each run c times slower, the queue's
priorities and dependencies as in the sweep. It assumes evals and set-up share the steps' contention; the
report says so beside the figure.

    .venv/bin/python -u bench/bench_study_parallel.py --cache-dir out/cache            # demo preset, 2 steps
    .venv/bin/python -u bench/bench_study_parallel.py --sweep demo --steps 3 --layouts sequential,side_by_side
    .venv/bin/python -u bench/bench_study_parallel.py --model tiny --steps 1 --set adapter.layers=null \
        --set grpo.max_completion_length=16 --cache-dir /tmp/tiny_cache                    # the code path only

`--cache-dir` should hold the demo's warm start (else the first layout builds it, and its wall time says so).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from gradient_quarantine.analysis.runs import load_run
from gradient_quarantine.experiments.presets import parse_set
from gradient_quarantine.experiments.queue import JobQueue
from gradient_quarantine.experiments.sweep import add_sweep, load_sweep
from gradient_quarantine.experiments.workers import cpu_count, run_local

LAYOUTS = ("sequential", "sequential_all", "side_by_side")


@dataclass
class JobTiming:
    name: str
    arm: str
    wall_s: float  # the job's subprocess, start to finish (queue events)
    step_s: list[float]  # perf/step_time_s of each step
    tokens: list[float]  # policy-sampled tokens of each step (perf/tokens_per_s x perf/generate_s)

    @property
    def s_per_token(self) -> float:
        return sum(self.step_s) / max(sum(self.tokens), 1.0)


@dataclass
class LayoutResult:
    layout: str
    wall_s: float
    jobs: dict[str, JobTiming]


def job_overrides(args: argparse.Namespace, layout: str) -> dict:
    """Every job of the small study: a few steps, a one-sample final eval, no base eval, the shared cache."""
    extra = {
        "steps": args.steps,
        "eval.every": 0, "eval.n_prompts": 1, "eval.samples": 1, "eval.knob_on": False, "eval.base": False,
        "run.cache_dir": str(Path(args.cache_dir).resolve()), "run.progress": False,
        "run.checkpoint_every": max(args.steps, 1),
    }  # fmt: skip
    if args.model:
        extra["model"] = args.model
    if layout == "sequential_all":
        extra["run.torch_threads"] = cpu_count()
    extra.update(dict(parse_set(s) for s in args.set))
    return extra


def read_steps(run_dir: Path) -> tuple[list[float], list[float]]:
    """(seconds, completion tokens) of each step, from the run's metrics.jsonl (`analysis.runs`)."""
    run = load_run(run_dir)
    _, step_s = run.series("perf/step_time_s")
    _, tok_s = run.series("perf/tokens_per_s")  # over the sampling time: tokens = tokens_per_s * generate_s
    _, gen_s = run.series("perf/generate_s")
    return [float(x) for x in step_s], [float(a * b) for a, b in zip(tok_s, gen_s, strict=True)]


def run_layout(args: argparse.Namespace, layout: str, tmp: Path) -> LayoutResult:
    q = JobQueue(tmp / layout / "queue.sqlite")
    sweep = load_sweep(args.sweep).model_copy(update={"max_attempts": 1})  # a failing job stops the bench at once
    add_sweep(q, sweep, seeds=[args.seed], extra=job_overrides(args, layout),
              runs_dir=tmp / layout / "runs")  # fmt: skip
    workers = "auto" if layout == "side_by_side" else 1
    t0 = time.perf_counter()
    outcomes = run_local(q, workers, install_signal_handlers=False,
                         on_event=lambda msg: print(f"  [{layout}] {msg}", flush=True))  # fmt: skip
    wall = time.perf_counter() - t0
    bad = [o for o in outcomes if o.status != "done"]
    if bad:
        raise SystemExit(f"{layout}: {len(bad)} job(s) did not finish: {bad} (logs in {tmp / layout})")
    jobs = {}
    for job in q.jobs():
        steps, tokens = read_steps(Path(job.run_dir))
        jobs[job.name] = JobTiming(job.name, job.arm or job.name, job.finished - job.started, steps, tokens)
    return LayoutResult(layout, wall, jobs)


def project_study(length: dict[str, float], seeds: int, workers: int, contention: float) -> tuple[float, float]:
    """(makespan, sum of job lengths) of the demo sweep's jobs for `seeds` seeds on `workers` workers.

    length[arm] = one job's time alone. Jobs start in the queue's order (vanilla and route2b, priority 1, before
    random-V, which also waits for its seed's route2b); while k > 1 jobs run, each progresses at 1 / contention
    of its alone speed (the measured c of two jobs; used for any k > 1)."""
    first = [(arm, s) for s in range(seeds) for arm in ("vanilla", "route2b") if arm in length]
    later = [("random_v", s) for s in range(seeds) if "random_v" in length]
    pending, running, done, now = first + later, {}, set(), 0.0
    while pending or running:
        for job in list(pending):  # fill free workers in queue order, dependencies respected
            if len(running) >= workers:
                break
            if job[0] == "random_v" and ("route2b", job[1]) not in done:
                continue
            pending.remove(job)
            running[job] = length[job[0]]
        rate = 1.0 / (contention if len(running) > 1 else 1.0)
        job, left = min(running.items(), key=lambda kv: kv[1])
        dt = left / rate
        now += dt
        running = {j: r - dt * rate for j, r in running.items() if j != job}
        done.add(job)
    return now, sum(length[arm] for arm, _ in first + later)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sweep", default="demo", help="sweep name or .yaml (its jobs for one seed are timed)")
    ap.add_argument("--seed", type=int, default=41)
    ap.add_argument("--steps", type=int, default=2, help="steps per job in the timed study")
    ap.add_argument("--model", default=None, help="override the preset's model (tiny: the code path only)")
    ap.add_argument("--cache-dir", default="out/cache", help="run.cache_dir (holds the warm start)")
    ap.add_argument("--layouts", default=",".join(LAYOUTS), help=f"comma-separated, of {LAYOUTS}")
    ap.add_argument("--study-steps", type=int, default=24, help="steps per job of the projected study")
    ap.add_argument("--study-seeds", type=int, default=3, help="seeds of the projected study")
    ap.add_argument("--set", action="append", default=[], help="extra key=value for every job")
    args = ap.parse_args()
    layouts = [x.strip() for x in args.layouts.split(",") if x.strip()]
    if unknown := set(layouts) - set(LAYOUTS):
        ap.error(f"unknown layouts {sorted(unknown)}; choose from {LAYOUTS}")

    print(f"{cpu_count()} CPU cores; sweep {args.sweep}, seed {args.seed}, {args.steps} steps per job", flush=True)
    res: dict[str, LayoutResult] = {}
    with tempfile.TemporaryDirectory(prefix="bench_study_") as tmp:
        for layout in layouts:
            print(f"{layout} ...", flush=True)
            res[layout] = run_layout(args, layout, Path(tmp))

    print(f"\n{'layout':15s} {'wall s':>8s}   per job: wall s, mean s/step, ms per completion token")
    for r in res.values():
        per = "; ".join(f"{j.name} {j.wall_s:.0f} / {statistics.mean(j.step_s):.1f} / {1e3 * j.s_per_token:.0f}"
                        for j in r.jobs.values())  # fmt: skip
        print(f"{r.layout:15s} {r.wall_s:8.1f}   {per}")
    if "side_by_side" not in res:
        return
    side = res["side_by_side"]
    for base in ("sequential", "sequential_all"):
        if base in res:
            print(f"this study, side_by_side / {base}: {side.wall_s / res[base].wall_s:.2f} (wall)")
    if "sequential" not in res:
        return
    seq = res["sequential"]
    # Contention: the first `cores` jobs start together side by side; compare their steps with the same steps alone.
    together = list(side.jobs)[: cpu_count()] if len(side.jobs) > 1 else []
    factors = [statistics.mean(side.jobs[n].step_s) / statistics.mean(seq.jobs[n].step_s) for n in together]
    if not factors:
        return
    c = statistics.mean(factors)
    print(f"contention factor c (s/step side by side / alone, same steps): {c:.2f} "
          f"({', '.join(f'{n} {f:.2f}' for n, f in zip(together, factors, strict=True))})")  # fmt: skip
    length = {j.arm: statistics.mean(j.step_s) * args.study_steps for j in seq.jobs.values()}
    makespan, total = project_study(length, args.study_seeds, cpu_count(), c)
    print(f"projected {args.study_seeds}-seed study ({args.study_steps} steps per job, {cpu_count()} workers): "
          f"side by side / one after another = {makespan / total:.2f} (makespan {makespan / 60:.0f} min vs "
          f"{total / 60:.0f} min of steps; evals and set-up assumed to contend like steps)")  # fmt: skip
    if "sequential_all" in res:
        speed_all = statistics.mean(j.s_per_token for j in res["sequential_all"].jobs.values()) / statistics.mean(
            j.s_per_token for j in seq.jobs.values())
        print(f"  against one at a time with {cpu_count()} torch threads (its s per token = {speed_all:.2f} x "
              f"sequential's): "
              f"{makespan / (total * speed_all):.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
