"""Memory churn of a demo training job (issue 26): before and after, side by side in one run.

The same cut demo job (vanilla by default, one seed, `--steps` steps, a one-sample final eval, no base eval) is
trained once per variant, each in its own `gq train` subprocess, one after another (the order alternated over
repeats so machine load hits both alike):

* `before`: `grpo.cpu_fused_head=trl`, TRL's fused log-prob head on its own CPU path (every position, prompt
  included, in 4096 x 32768 tiles: ~445 MB buffers allocated and handed back to the kernel every micro-batch), and
  `run.malloc=glibc` (glibc's defaults);
* `tiled`: the fused head on the completion positions only, in 512 x 4096 tiles, glibc's defaults;
* `after`: the defaults (that head, and `run.malloc=retain`: freed memory kept for reuse, train/allocator.py).

For each it prints what the process used (`os.wait4`: user and kernel CPU seconds, the kernel's share, minor faults,
peak RSS) and, from the run's metrics.jsonl, per step: sampling (`perf/generate_s`), the micro-batches' forward +
backward (`perf/backward_s`), the step, minor faults and kernel seconds (`perf/minor_faults`, `perf/sys_s`).

Step 1's rollouts are sampled from the same warm start with the same seed, so both variants train on the same
completions there (checked: the bench says whether they match); later steps' completions can drift apart by float32
rounding, so forward + backward is also given per completion token.

    .venv/bin/python -u bench/bench_memory.py --cache-dir out/cache                # 3 steps x 2 variants, ~8 min
    .venv/bin/python -u bench/bench_memory.py --model tiny --steps 1 --set adapter.layers=null --set adapter.rank=4 \\
        --set adapter.knob_rank=2 --set grpo.max_completion_length=16 --cache-dir /tmp/tiny_cache   # the code path

`--cache-dir` should hold the demo's warm start (else the first run builds it, ~4-8 min, and says so).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_study_parallel import job_overrides  # bench/ is the script's directory, so on sys.path

from gradient_quarantine.analysis.runs import load_run

VARIANTS = {
    "before": {"grpo.cpu_fused_head": "trl", "run.malloc": "glibc"},
    "tiled": {"run.malloc": "glibc"},
    "after": {},
}
STEP_KEYS = ("generate_s", "backward_s", "step_time_s", "minor_faults", "sys_s", "user_s", "tokens_per_s")


def train(args: argparse.Namespace, variant: str, run_dir: Path) -> dict[str, float]:
    """One `gq train` run of the cut demo job in this variant; what the process used (its own rusage)."""
    cut = job_overrides(argparse.Namespace(**{**vars(args), "set": []}), "sequential")
    sets = [f"{k}={v}" for k, v in {"method": "vanilla", **cut, **VARIANTS[variant]}.items()] + args.set
    cmd = [str(Path(sys.executable).parent / "gq"), "train", "--preset", args.preset, "--run-dir", str(run_dir),
           "--quiet"] + [a for kv in sets for a in ("--set", kv)]  # fmt: skip
    t0 = time.perf_counter()
    with open(run_dir.parent / f"{variant}.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        tail = (run_dir.parent / f"{variant}.log").read_text()[-3000:]
        raise SystemExit(f"{' '.join(cmd)} failed ({os.waitstatus_to_exitcode(status)}):\n{tail}")
    return {"wall_s": wall, "user_s": usage.ru_utime, "sys_s": usage.ru_stime, "minor_faults": usage.ru_minflt,
            "peak_rss_gb": usage.ru_maxrss * 1024 / 1e9}  # fmt: skip  (ru_maxrss is in KiB on Linux)


def per_step(run_dir: Path) -> list[dict[str, float]]:
    """STEP_KEYS of each step of a finished run, and its completion tokens."""
    run = load_run(run_dir)
    cols = {k: [float(x) for x in run.series(f"perf/{k}")[1]] for k in STEP_KEYS}
    rows = [dict(zip(STEP_KEYS, vals, strict=True)) for vals in zip(*cols.values(), strict=True)]
    for r in rows:
        r["tokens"] = r["generate_s"] * r["tokens_per_s"]
    return rows


def step1_completions(run_dir: Path) -> list[str]:
    rows = [json.loads(line) for line in (run_dir / "rollouts.jsonl").read_text().splitlines() if line.strip()]
    return [r["completion"] for r in rows if r["step"] == 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--steps", type=int, default=3, help="training steps per run")
    ap.add_argument("--repeats", type=int, default=1, help="runs per variant (order alternated)")
    ap.add_argument("--cache-dir", default="out/cache", help="should hold the preset's warm start")
    ap.add_argument("--model", default=None, help="another model than the preset's (e.g. tiny, to check the path)")
    ap.add_argument("--set", action="append", default=[], help="another config override key=value (repeatable)")
    args = ap.parse_args()

    procs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    steps: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    first: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_memory_") as tmp:
        for rep in range(args.repeats):
            order = list(VARIANTS) if rep % 2 == 0 else list(VARIANTS)[::-1]
            for v in order:
                run_dir = Path(tmp) / f"{v}_{rep}"
                p = train(args, v, run_dir)
                rows = per_step(run_dir)
                procs[v].append(p)
                steps[v] += rows
                first.setdefault(v, step1_completions(run_dir))
                print(f"[{v} repeat {rep}] wall {p['wall_s']:.0f} s, user {p['user_s']:.0f} s, sys {p['sys_s']:.0f} s "
                      f"({100 * p['sys_s'] / (p['user_s'] + p['sys_s']):.1f} %), minor faults {p['minor_faults'] / 1e6:.2f} M, "
                      f"peak RSS {p['peak_rss_gb']:.2f} GB; per step backward_s / generate_s / faults: "
                      + ", ".join(f"{r['backward_s']:.1f} / {r['generate_s']:.1f} / {r['minor_faults'] / 1e6:.2f} M"
                                  for r in rows), flush=True)  # fmt: skip

    same = all(first[v] == first["before"] for v in first)
    print(f"\n{args.preset} preset, {args.steps} steps x {args.repeats} repeat(s) per variant; step 1 completions "
          f"{'identical' if same else 'DIFFER'} across variants")
    print(f"{'variant':8s} {'wall_s':>7s} {'sys share':>9s} {'faults/step':>12s} {'peak RSS GB':>12s} "
          f"{'step1 fwd+bwd':>14s} {'fwd+bwd/step':>13s} {'ms/token':>9s} {'generate_s':>11s} {'step_s':>7s}")
    med: dict[str, dict[str, float]] = {}
    for v in VARIANTS:
        ps, rs = procs[v], steps[v]
        m = {
            "wall_s": statistics.median(p["wall_s"] for p in ps),
            "sys_share": sum(p["sys_s"] for p in ps) / sum(p["user_s"] + p["sys_s"] for p in ps),
            "faults": statistics.median(r["minor_faults"] for r in rs),
            "rss": max(p["peak_rss_gb"] for p in ps),
            "step1": statistics.median(r["backward_s"] for r in rs[:: args.steps]),
            "bwd": statistics.median(r["backward_s"] for r in rs),
            "per_tok": sum(r["backward_s"] for r in rs) / max(sum(r["tokens"] for r in rs), 1.0),
            "gen": statistics.median(r["generate_s"] for r in rs),
            "step": statistics.median(r["step_time_s"] for r in rs),
        }
        med[v] = m
        print(f"{v:8s} {m['wall_s']:7.0f} {100 * m['sys_share']:8.1f}% {m['faults'] / 1e6:10.2f} M {m['rss']:12.2f} "
              f"{m['step1']:14.1f} {m['bwd']:13.1f} {1e3 * m['per_tok']:9.1f} {m['gen']:11.1f} {m['step']:7.1f}")
    b = med["before"]
    for v in list(VARIANTS)[1:]:
        a = med[v]
        print(f"{v} / before: step-1 forward+backward {a['step1'] / b['step1']:.2f}x, forward+backward per step "
              f"{a['bwd'] / b['bwd']:.2f}x, per token {a['per_tok'] / b['per_tok']:.2f}x, minor faults per step "
              f"{a['faults'] / max(b['faults'], 1):.3f}x, peak RSS {a['rss'] / b['rss']:.2f}x, "
              f"whole run {a['wall_s'] / b['wall_s']:.2f}x")

if __name__ == "__main__":
    main()
