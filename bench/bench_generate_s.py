"""The demo preset's `perf/generate_s` through the fast sampler and through TRL's transformers path, with the whole
step time beside it (issue 10: generate_s at most 0.5x of sampling through TRL's path), in one run.

The same job (the demo preset, vanilla by default, one seed) is trained for `--steps` steps twice per repeat, once
with `rollout.sampler=fast` (train/sampler.py) and once with `rollout.sampler=trl` (TRL's `_generate_single_turn`),
each in its own `gq train` subprocess, one after another, the order alternated over repeats so machine load
hits both alike. The final eval is cut to one sample and the base eval is off, so a job is its steps. Each run's
metrics.jsonl gives per step `perf/generate_s` (the policy rows' sampling), `perf/tokens_per_s` and
`perf/step_time_s` (sampling, grading, forward, backward, routing, optimiser).

Both samplers see the same prompts (same seed) but draw different tokens, so completion lengths, and from the
first update on the policy, differ: the ratio is given per step (generate_s) and per generated token.

    .venv/bin/python -u bench/bench_generate_s.py --cache-dir out/cache       # 2 steps x 2 samplers, ~6 min
    .venv/bin/python -u bench/bench_generate_s.py --steps 3 --repeats 2 --set method=route2b
    .venv/bin/python -u bench/bench_generate_s.py --model tiny --steps 1 --set adapter.layers=null \
        --set adapter.rank=4 --set adapter.knob_rank=2 --set grpo.max_completion_length=16 --cache-dir /tmp/tiny_cache   # the code path only, 15 s

`--cache-dir` should hold the demo's warm start (else the first run builds it, ~4-8 min, and says so).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_study_parallel import job_overrides  # bench/ is the script's directory, so on sys.path

from gradient_quarantine.analysis.runs import load_run

SAMPLERS = ("fast", "trl")


def train(args: argparse.Namespace, sampler: str, run_dir: Path) -> float:
    """One `gq train` run of the cut demo job with this sampler; returns its wall seconds."""
    # the study bench's cut job (a few steps, a one-sample final eval, no base eval, the shared cache), as vanilla
    cut = job_overrides(argparse.Namespace(**{**vars(args), "set": []}), "sequential")  # --set passed on as typed
    sets = [f"{k}={v}" for k, v in {"method": "vanilla", **cut, "rollout.sampler": sampler}.items()] + args.set
    cmd = [str(Path(sys.executable).parent / "gq"), "train", "--preset", args.preset, "--run-dir", str(run_dir),
           "--quiet"] + [a for kv in sets for a in ("--set", kv)]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def per_step(run_dir: Path) -> list[dict[str, float]]:
    """generate_s, tokens and step_s of each step of a finished run."""
    run = load_run(run_dir)
    cols = {k: [float(x) for x in run.series(f"perf/{k}")[1]] for k in ("generate_s", "tokens_per_s", "step_time_s")}
    return [{"generate_s": g, "tokens": g * t, "step_s": s}
            for g, t, s in zip(cols["generate_s"], cols["tokens_per_s"], cols["step_time_s"], strict=True)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--steps", type=int, default=2, help="training steps per run")
    ap.add_argument("--repeats", type=int, default=1, help="runs per sampler (order alternated)")
    ap.add_argument("--cache-dir", default="out/cache", help="should hold the preset's warm start")
    ap.add_argument("--model", default=None, help="another model than the preset's (e.g. tiny, to check the path)")
    ap.add_argument("--set", action="append", default=[], help="another config override key=value (repeatable)")
    args = ap.parse_args()

    steps: dict[str, list[dict[str, float]]] = {s: [] for s in SAMPLERS}
    with tempfile.TemporaryDirectory(prefix="bench_generate_s_") as tmp:
        for rep in range(args.repeats):
            for sampler in SAMPLERS if rep % 2 == 0 else SAMPLERS[::-1]:
                run_dir = Path(tmp) / f"{sampler}_{rep}"
                wall = train(args, sampler, run_dir)
                rows = per_step(run_dir)
                steps[sampler] += rows
                print(f"[{sampler} repeat {rep}] {wall:.0f} s wall; per step generate_s / tokens / step_s: "
                      + ", ".join(f"{r['generate_s']:.1f} / {r['tokens']:.0f} / {r['step_s']:.1f}" for r in rows),
                      flush=True)  # fmt: skip

    print(f"\n{args.preset} preset, {args.steps} steps x {args.repeats} repeat(s) per sampler, medians over steps:")
    print(f"{'sampler':8s} {'generate_s':>11s} {'tokens':>7s} {'ms/token':>9s} {'step_s':>8s} {'generate share':>15s}")
    med = {}
    for s in SAMPLERS:
        g, n, st = (statistics.median(r[k] for r in steps[s]) for k in ("generate_s", "tokens", "step_s"))
        per_tok = sum(r["generate_s"] for r in steps[s]) / max(sum(r["tokens"] for r in steps[s]), 1.0)
        med[s] = (g, per_tok, st)
        print(f"{s:8s} {g:11.1f} {n:7.0f} {1e3 * per_tok:9.1f} {st:8.1f} {100 * g / st:14.0f}%")
    (g_f, t_f, s_f), (g_t, t_t, s_t) = med["fast"], med["trl"]
    print(f"fast / trl: generate_s {g_f / g_t:.2f}x, time per generated token {t_f / t_t:.2f}x, "
          f"whole step {s_f / s_t:.2f}x")


if __name__ == "__main__":
    main()
