"""Sampling speed: the fast sampler (train/sampler.py) against TRL's transformers path and the matmul floor,
side by side in one process, repeats interleaved (order rotated) so machine load hits all three alike.

Two workloads, shapes as flags:

    step   one training step's sampling: P prompts x G rows, N new tokens at T (the demo: 2 x 8 x 128, T=1.0)
           new    `generate_like_trl(trainer, prompt_ids, G)` (what train/rollouts.py calls)
           trl    `trainer._generate_single_turn(prompt_ids, None, {}, G)` (TRL 1.16, transformers branch)
    eval   one deploy eval: E prompts x S samples, N new tokens at T=0.7 (24 x 8 x 128)
           new    `sample_rows` as train/deploy_eval.sample runs it (batches by the K/V budget)
           trl    `model.generate` in left-padded batches of --eval-batch rows (deploy_eval's `generate` path)
    floor  for both: the model's linear-layer matmuls alone (torch.mm with its weights, lm_head included) at
           the shapes the new path runs (one prefill per prompt, every row per decode step); no attention,
           no adapter, no norms, no sampling. What a perfect implementation of the same algorithm would pay.
    floor_packed  the same, the decode steps' matmuls through MKL's packed GEMM (weights packed beforehand for
           their row count, packing not timed), which the new path's decode step uses where torch has it:
           the floor of the matmul the new path actually runs (x86 builds only).

Every completion is forced to N tokens (`min_new_tokens`), so all paths process the same tokens; tokens/s =
rows x N / seconds. Clocks: wall time and this process's CPU time (one torch thread: CPU time is what the work
cost, wall time also counts the neighbours on a shared machine). The model is the demo's (SmolLM2-135M) with
the demo's SVD adapter attached (rank 32 + knob 4 on layers 15-30).

    nice -n 10 .venv/bin/python bench/bench_sampling.py --threads 1 --repeats 3
    nice -n 10 .venv/bin/python bench/bench_sampling.py --profile new --new-tokens 48    # torch.profiler table
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
import warnings  # noqa: E402

warnings.filterwarnings("ignore")

import torch  # noqa: E402
import trl  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import GenerationConfig  # noqa: E402

from gradient_quarantine.model.loading import load_policy  # noqa: E402
from gradient_quarantine.model.svd_adapter import AdapterConfig, attach_svd_adapter  # noqa: E402
from gradient_quarantine.substrate.modes import assign_modes  # noqa: E402
from gradient_quarantine.substrate.problems import load_problems  # noqa: E402
from gradient_quarantine.substrate.prompts import render_prompt  # noqa: E402
from gradient_quarantine.train.deploy_eval import _generate_rows  # noqa: E402
from gradient_quarantine.train.sampler import (  # noqa: E402
    effective_params,
    generate_like_trl,
    mkl_packing_available,
    sample_rows,
)


def timed(fn):
    """(wall s, CPU s, result)"""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w0, time.process_time() - c0, out


def matmul_floor(model, prefill_lens: list[int], decode_rows: list[int], packed: bool = False,
                 reps: int = 3) -> tuple[float, float]:
    """(wall s, CPU s) of the linear layers' matmuls at the given shapes: each prefill runs every layer weight on
    L rows and lm_head on its last row; each decode step runs every weight and lm_head on its rows. `packed`: the
    decode steps' matmuls through MKL's packed GEMM with each weight packed beforehand for its row count (packing
    not timed), as the sampler's decode step runs them; the prefills through torch.mm either way."""
    # every projection's base weight (an SVDLinear holds its frozen base as an nn.Linear; U, V, deltas left out)
    layer_w = [m.weight.detach() for layer in model.model.layers for m in layer.modules() if isinstance(m, torch.nn.Linear)]
    head = model.lm_head.weight.detach()
    inputs: dict[tuple[int, int], torch.Tensor] = {}
    counts: dict[int, int] = {}
    for b in decode_rows:
        counts[b] = counts.get(b, 0) + 1
    packs = {b: [torch.ops.mkl._mkl_reorder_linear_weight(w, b) for w in layer_w + [head]] for b in counts} if packed else {}

    def run(rows: int, weights, packs=None) -> None:
        for i, w in enumerate(weights):
            x = inputs.setdefault((rows, w.shape[1]), torch.randn(rows, w.shape[1], dtype=w.dtype))
            if packs is None:
                torch.mm(x, w.t())
            else:
                torch.ops.mkl._mkl_linear(x, packs[i], w, None, rows)

    def one_pass() -> None:
        for L in prefill_lens:
            run(L, layer_w)
            run(1, [head])
        for b, n in counts.items():  # same shape, n times
            for _ in range(n):
                run(b, layer_w + [head], packs.get(b))

    one_pass()  # warm the inputs
    runs = [timed(one_pass)[:2] for _ in range(reps)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def build_trainer(model, tok, rows, args, out_dir):
    cfg = trl.GRPOConfig(
        output_dir=out_dir, per_device_train_batch_size=len(rows) * args.rows, num_generations=args.rows,
        max_completion_length=args.new_tokens, temperature=args.temperature, top_p=1.0,
        generation_kwargs=None if args.natural else {"min_new_tokens": args.new_tokens}, use_cpu=True, bf16=False, report_to="none",
        save_strategy="no", disable_dropout=True, gradient_checkpointing=False, seed=0,
    )  # fmt: skip
    return trl.GRPOTrainer(
        model=model, reward_funcs=[lambda completions, **_: [0.0] * len(completions)], args=cfg,
        train_dataset=Dataset.from_list(rows), processing_class=tok,
    )  # fmt: skip


def report(name: str, res: dict[str, list[tuple[float, float, int]]]) -> None:
    """res[path] = per repeat (wall s, CPU s, tokens generated)."""
    med = {k: tuple(statistics.median(x[i] for x in v) for i in range(3)) for k, v in res.items()}
    print(f"\n{name}: medians over {len(res['new'])} interleaved repeats")
    floors = [k for k in ("floor", "floor_packed") if k in med]
    print(f"{'path':12s} {'tokens':>7s} {'wall s':>8s} {'tok/s wall':>11s} {'CPU s':>8s} {'tok/s CPU':>10s} "
          f"{'x trl (CPU)':>12s}" + "".join(f" {'% of ' + f + ' (CPU)':>24s}" for f in floors))  # fmt: skip
    for k in ["new", "trl"] + floors:
        w, c, n = med[k]
        print(f"{k:12s} {n:7.0f} {w:8.2f} {n / w:11.1f} {c:8.2f} {n / c:10.1f} {med['trl'][1] / c:12.2f}"
              + "".join(f" {100 * med[f][1] / c:23.0f}%" for f in floors))  # fmt: skip
    print(f"speed-up new vs trl (time per call): {med['trl'][1] / med['new'][1]:.2f}x CPU, "
          f"{med['trl'][0] / med['new'][0]:.2f}x wall; tokens/s {med['new'][2] / med['new'][1] / (med['trl'][2] / med['trl'][1]):.2f}x "
          f"CPU; new reaches {100 * med['floor'][1] / med['new'][1]:.0f}% of the matmul floor of its shapes (CPU)"
          + (f", {100 * med['floor_packed'][1] / med['new'][1]:.0f}% of the packed-GEMM floor" if "floor_packed" in med
             else ""))  # fmt: skip
    for k, v in res.items():
        print(f"  {k} per repeat (wall/CPU s, tokens): " + ", ".join(f"{w:.1f}/{c:.1f} {n}" for w, c, n in v))


def interleaved(paths: dict, model, repeats: int, packed_floor: bool) -> dict[str, list[tuple[float, float, int]]]:
    """Run each path `repeats` times, order rotated per repeat; the floors replay the shapes of the new path's
    latest call (its prefills and its rows per decode step). paths[k]() -> (tokens generated, Trace | None)."""
    keys = ["new", "trl", "floor"] + (["floor_packed"] if packed_floor else [])
    res: dict[str, list[tuple[float, float, int]]] = {k: [] for k in keys}
    trace, n_new = None, 0
    for rep in range(repeats):
        order = keys[rep % len(keys):] + keys[: rep % len(keys)]
        if trace is None:  # the floors need the new path's shapes first
            order = ["new"] + [k for k in order if k != "new"]
        for k in order:
            if k.startswith("floor"):
                w, c = matmul_floor(model, trace.prefill_lens, trace.decode_rows, packed=k == "floor_packed")
                res[k].append((w, c, n_new))
            else:
                w, c, (n, tr) = timed(paths[k])
                if k == "new":
                    trace, n_new = tr, n
                res[k].append((w, c, n))
    return res


def _until_eos(ids: list[int], eos: set[int]) -> int:
    return next((i + 1 for i, t in enumerate(ids) if t in eos), len(ids))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--prompts", type=int, default=2, help="training step: distinct prompts")
    ap.add_argument("--rows", type=int, default=8, help="training step: rows (rollouts) per prompt")
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--eval-prompts", type=int, default=24)
    ap.add_argument("--eval-samples", type=int, default=8)
    ap.add_argument("--eval-temperature", type=float, default=0.7)
    ap.add_argument("--eval-batch", type=int, default=32, help="rows per generate() call on the old eval path")
    ap.add_argument("--adapter-layers", default="15,30", help="the SVD adapter's layer range (demo: top 15 of 30)")
    ap.add_argument("--adapter-rank", type=int, default=32, help="its rank (+ a knob of 4)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--natural", action="store_true",
                    help="let completions stop at EOS (the settings as trained; lengths differ between paths) "
                    "instead of forcing every one to --new-tokens")
    ap.add_argument("--skip", choices=("step", "eval"), default=None, help="leave one workload out")
    ap.add_argument("--profile", choices=("new", "trl"), default=None,
                    help="print a torch.profiler table of one training-step call of that path and exit")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    model, tok = load_policy(args.model)
    lo, hi = (int(x) for x in args.adapter_layers.split(","))
    attach_svd_adapter(model, AdapterConfig(rank=args.adapter_rank, knob_rank=4, layers=(lo, hi)))
    model.eval()
    problems = load_problems("builtin")
    modes_of = assign_modes([p.id for p in problems], seed=0)
    chats = [render_prompt(p, modes_of[p.id]) for p in problems]
    rows = [{"prompt": c} for c in chats[: args.prompts]]

    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(model, tok, rows, args, tmp)
    step_ids, _, _ = trainer._tokenize_prompts([r["prompt"] for r in rows for _ in range(args.rows)])
    G = args.rows
    print(f"model={args.model} threads={torch.get_num_threads()} step: {args.prompts} prompts x {G} rows x "
          f"{args.new_tokens} tokens, T={args.temperature}, prompt lengths {[len(p) for p in step_ids[::G]]}; "
          f"eval: {args.eval_prompts} x {args.eval_samples} x {args.new_tokens}, T={args.eval_temperature}, "
          f"old-path batch {args.eval_batch}; load average {os.getloadavg()[0]:.1f}")  # fmt: skip

    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        fn = {"new": lambda: generate_like_trl(trainer, step_ids, G),
              "trl": lambda: trainer._generate_single_turn(step_ids, None, {}, G)}[args.profile]  # fmt: skip
        with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
        return

    torch.manual_seed(0)
    mode = "natural lengths (stop at EOS)" if args.natural else f"every completion forced to {args.new_tokens} tokens"
    with torch.no_grad():
        if args.skip != "step":
            assert generate_like_trl(trainer, step_ids[:G], G)[2] == "fast"  # warm-up, and the path is the fast one
            # what generate_like_trl runs, called directly for its trace
            params = effective_params(model, trainer.generation_config, trainer.eos_token_ids, tok.pad_token_id)

            def new_step():
                out = sample_rows(model, step_ids, params)
                return sum(len(c) for c in out.completion_ids), out.trace

            def trl_step():
                ids, _ = trainer._generate_single_turn(step_ids, None, {}, G)
                return sum(len(c) for c in ids), None

            res = interleaved({"new": new_step, "trl": trl_step}, model, args.repeats, mkl_packing_available())
            report(f"training step ({args.prompts} x {G} rows, {mode})", res)

        if args.skip != "eval":
            ids = tok.apply_chat_template(chats[: args.eval_prompts], add_generation_prompt=True, tokenize=True,
                                          return_dict=True)["input_ids"]  # fmt: skip
            eval_rows = [ids[i] for i in range(len(ids)) for _ in range(args.eval_samples)]
            eos = model.generation_config.eos_token_id
            eos_ids = sorted({tok.eos_token_id, *([eos] if isinstance(eos, int) else (eos or []))} - {None})
            settings = dict(do_sample=True, temperature=args.eval_temperature, top_p=1.0, top_k=0,
                            max_new_tokens=args.new_tokens, eos_token_id=eos_ids, pad_token_id=tok.pad_token_id,
                            disable_compile=True)  # fmt: skip
            if not args.natural:
                settings["min_new_tokens"] = args.new_tokens
            params = effective_params(model, GenerationConfig(**settings), eos_ids, tok.pad_token_id)
            sample_rows(model, eval_rows[:2], params)  # warm-up

            def new_eval():
                out = sample_rows(model, eval_rows, params)
                return sum(len(c) for c in out.completion_ids), out.trace

            def trl_eval():
                comps = _generate_rows(model, eval_rows, settings, args.eval_batch, tok.pad_token_id, "cpu")
                return sum(_until_eos(c, set(eos_ids)) for c in comps), None

            res = interleaved({"new": new_eval, "trl": trl_eval}, model, args.repeats, mkl_packing_available())
            report(f"deploy eval ({args.eval_prompts} x {args.eval_samples} rows, {mode})", res)


if __name__ == "__main__":
    main()
