"""Cost of route2b's gradient capture + routing against a plain backward, on a GRPO-shaped batch.

For each model shape, one process times, interleaved repeat by repeat (so machine noise hits all alike):

    plain        forward + backward of the GRPO loss, adapter attached, no capture
    rollout      the same under GradCapture(per_token=False) + Router(granularity="rollout").route + apply
    token        the same under GradCapture(per_token=True)  + Router(granularity="token").route + apply

It reports per variant the median and the minimum step time and their ratio to plain, the time of
`route + apply` alone (the router's share), the bytes the capture holds after the backward (per rollout:
B x R x modules floats, i.e. O(batch x adapter size)), and the step's peak memory above the resident baseline:
on CUDA `max_memory_allocated` minus the memory allocated before the step, on CPU (Linux) the peak RSS (VmHWM,
reset through /proc/self/clear_refs before each measured step) minus the RSS before it.

Clock: on CUDA wall time after a synchronize; on CPU this process's CPU time (the bench machine is shared, so
its wall time mostly measures the neighbours; run with --threads 1 there).

Shapes: `tiny` (the test model) and `smollm2-135m-shape` (random-init LlamaConfig with SmolLM2-135M's
dimensions: 30 layers, hidden 576, MLP 1536, 9 heads / 3 KV heads, vocab 49152; no download).

    .venv/bin/python bench/bench_routing.py --threads 1                      # both shapes, CPU defaults
    .venv/bin/python bench/bench_routing.py --shape smollm2-135m-shape --batch 8 --prompt-len 256 \
        --completion-len 256 --device cuda --repeats 10
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from gradient_quarantine.model.svd_adapter import AdapterConfig, attach_svd_adapter
from gradient_quarantine.routing.band import Band
from gradient_quarantine.routing.capture import GradCapture
from gradient_quarantine.routing.direction import Direction
from gradient_quarantine.routing.router import Router

VARIANTS = ("plain", "rollout", "token")
TARGETS = {"rollout": 1.10, "token": 1.5}


@dataclass
class Setup:
    model: torch.nn.Module
    adapter: object
    ids: torch.Tensor  # (B, T)
    att: torch.Tensor  # (B, T)
    cmask: torch.Tensor  # (B, T)
    adv: torch.Tensor  # (B,)
    routers: dict[str, Router]
    device: str


def build_model(shape: str) -> torch.nn.Module:
    if shape == "tiny":
        from gradient_quarantine.model.loading import build_tiny_model, build_tiny_tokenizer

        return build_tiny_model(build_tiny_tokenizer())
    if shape == "smollm2-135m-shape":
        from transformers import LlamaConfig, LlamaForCausalLM

        cfg = LlamaConfig(  # SmolLM2-135M(-Instruct) config.json dimensions
            vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
            num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192, rope_theta=100000.0,
            rms_norm_eps=1e-5, tie_word_embeddings=True, hidden_act="silu",
        )  # fmt: skip
        torch.manual_seed(0)
        return LlamaForCausalLM(cfg)
    raise ValueError(f"unknown shape {shape!r}: tiny | smollm2-135m-shape")


def setup(args: argparse.Namespace, shape: str) -> Setup:
    model = build_model(shape).to(args.device, dtype=getattr(torch, args.dtype)).eval()
    adapter = attach_svd_adapter(
        model, AdapterConfig(rank=args.rank, knob_relation=args.knob_relation, knob_rank=args.knob_rank)
    )
    g = torch.Generator().manual_seed(0)
    B, P, C = args.batch, args.prompt_len, args.completion_len
    ids = torch.randint(0, model.config.vocab_size, (B, P + C), generator=g)
    # GRPO shape: completions of varied length, right padding, advantages normalised within each group
    lens = torch.randint(C // 2, C + 1, (B,), generator=g)
    att = torch.zeros(B, P + C, dtype=torch.long)
    cmask = torch.zeros(B, P + C, dtype=torch.long)
    for b in range(B):
        att[b, : P + lens[b]] = 1
        cmask[b, P : P + lens[b]] = 1
    group = args.group if B % args.group == 0 else B
    r = torch.randn(B, generator=g).view(-1, group)
    adv = ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-4)).flatten()
    # a unit direction spread over every module, and a band narrow enough that the gate takes all three
    # branches (0, 1, between): the router does its full work
    dg = torch.Generator().manual_seed(1)
    raw = {n: torch.randn(m.R, generator=dg) for n, m in adapter.modules.items()}
    norm = torch.sqrt(sum((v**2).sum() for v in raw.values()))
    direction = Direction(
        {n: (v / v.norm())[None].to(args.device) for n, v in raw.items()},
        {n: (v / norm).to(args.device) for n, v in raw.items()},
        "random",
    )
    band = Band(lower=-0.02, upper=0.02)
    routers = {v: Router(adapter, direction, band, granularity=v) for v in ("rollout", "token")}
    dev = args.device
    return Setup(model, adapter, ids.to(dev), att.to(dev), cmask.to(dev), adv.to(dev), routers, dev)


def grpo_loss(s: Setup) -> torch.Tensor:
    """TRL `grpo`: -(A_b * mean over completion tokens of log p) averaged over the batch (on-policy)."""
    from trl.trainer.utils import selective_log_softmax

    logits = s.model(input_ids=s.ids, attention_mask=s.att).logits[:, :-1]  # (B, T-1, V)
    logp = selective_log_softmax(logits.float(), s.ids[:, 1:])  # (B, T-1)
    m = s.cmask[:, 1:].to(logp.dtype)
    per_seq = (logp * m).sum(1) / m.sum(1).clamp(min=1)  # (B,)
    return -(s.adv * per_seq).mean()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def step(s: Setup, variant: str, clock, measure: bool = False) -> tuple[float, int]:
    """One forward + backward (+ capture + routing). Returns (route + apply seconds, capture bytes held if
    `measure`, else 0: reading them back costs a copy, so timed steps skip it)."""
    for p in s.adapter.parameters():
        p.grad = None
    if variant == "plain":
        grpo_loss(s).backward()
        return 0.0, 0
    router = s.routers[variant]
    with GradCapture(s.adapter, per_token=variant == "token") as cap, router.intercept():
        grpo_loss(s).backward()
        _sync(s.device)
        t0 = clock()
        router.apply(router.route(cap))
        _sync(s.device)
        t_route = clock() - t0
        held = capture_bytes(cap) if measure else 0
    return t_route, held


def capture_bytes(cap: GradCapture) -> int:
    """Bytes of the tensors the capture keeps after the backward (per-rollout G; per-token a and b)."""
    total = sum(G.numel() * G.element_size() for G in cap.per_rollout.values())
    if cap.per_token_enabled:
        for name in cap.names:
            a, b = cap.per_token(name)
            total += a.numel() * a.element_size() + b.numel() * b.element_size()
    return total


# --------------------------------------------------------------------------------------------- memory


def _glibc():
    """glibc, set so that RSS follows live memory: a fixed mmap threshold (glibc otherwise raises it after each
    large free, so freed tensors stay resident in the heap and a step's RSS peak depends on what ran before)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD: allocations >= 128 KiB are mmapped, freed at once
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = None


def _proc_status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_memory_of(s: Setup, variant: str) -> int | None:
    """Peak memory of one step above what was resident before it (bytes), or None if not measurable."""
    gc.collect()
    if s.device.startswith("cuda"):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step(s, variant, time.perf_counter)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    _LIBC.malloc_trim(0) if _LIBC is not None else None  # hand freed heap pages back: RSS ~ live memory
    try:  # Linux: "5" resets the peak resident set size (VmHWM) to the current RSS
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    base = _proc_status_kb("VmRSS")
    step(s, variant, time.process_time)
    peak = _proc_status_kb("VmHWM")
    return None if base is None or peak is None else (peak - base) * 1024


# --------------------------------------------------------------------------------------------- driver


def run_shape(args: argparse.Namespace, shape: str) -> dict:
    s = setup(args, shape)
    cuda = args.device.startswith("cuda")
    clock = time.perf_counter if cuda else time.process_time
    held = {v: step(s, v, clock, measure=True)[1] for v in VARIANTS}  # warm-up (kernels, allocator) + capture bytes
    peak = {v: peak_memory_of(s, v) for v in VARIANTS}
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    route: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for _ in range(args.repeats):
        for v in VARIANTS:  # interleaved: the same machine noise hits every variant
            _sync(args.device)
            t0 = clock()
            t_route, _ = step(s, v, clock)
            _sync(args.device)
            times[v].append(clock() - t0)
            route[v].append(t_route)
    med = {v: statistics.median(t) for v, t in times.items()}
    best = {v: min(t) for v, t in times.items()}
    return {
        "shape": shape,
        "modules": len(s.adapter.modules),
        "adapter_coords": sum(m.R for m in s.adapter.modules.values()),
        "batch": args.batch,
        "tokens": int(s.ids.numel()),
        "threads": torch.get_num_threads(),
        "clock": "wall (cuda synchronized)" if cuda else "process CPU time",
        "median_s": med,
        "min_s": best,
        "ratio_median": {v: med[v] / med["plain"] for v in VARIANTS},
        "ratio_min": {v: best[v] / best["plain"] for v in VARIANTS},
        "route_apply_median_s": {v: statistics.median(t) for v, t in route.items()},
        "all_s": times,
        "capture_bytes": held,
        "peak_over_baseline_bytes": peak,
    }


def print_result(r: dict, args: argparse.Namespace) -> None:
    mib = 1 / 2**20
    print(
        f"\n{r['shape']}: {r['modules']} modules, {r['adapter_coords']} adapter coords, batch {r['batch']}, "
        f"{r['tokens']} tokens, {args.device} {args.dtype}, {r['threads']} thread(s), {args.repeats} repeats, "
        f"clock: {r['clock']}"
    )
    print(
        f"{'variant':8s} {'median s':>9s} {'x plain':>8s} {'min s':>9s} {'x plain':>8s} {'route+apply s':>14s}"
        f" {'capture MiB':>12s} {'step peak MiB':>14s}"
    )
    for v in VARIANTS:
        pk = r["peak_over_baseline_bytes"][v]
        print(
            f"{v:8s} {r['median_s'][v]:9.4f} {r['ratio_median'][v]:8.3f} {r['min_s'][v]:9.4f} "
            f"{r['ratio_min'][v]:8.3f} {r['route_apply_median_s'][v]:14.4f} {r['capture_bytes'][v] * mib:12.3f} "
            f"{'-' if pk is None else f'{pk * mib:.1f}':>14s}"
        )
    for v, t in TARGETS.items():
        ok = "meets" if r["ratio_median"][v] <= t else "MISSES"
        print(
            f"  {v}: {r['ratio_median'][v]:.3f}x plain (median), {r['ratio_min'][v]:.3f}x (min): {ok} <= {t:.2f}x"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=["tiny", "smollm2-135m-shape", "both"], default="both")
    ap.add_argument("--batch", type=int, default=8, help="rollouts in the micro-batch")
    ap.add_argument("--group", type=int, default=8, help="GRPO group size (advantages normalised per group)")
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--completion-len", type=int, default=32)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--knob-relation", default="disjoint")
    ap.add_argument("--knob-rank", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    global _LIBC
    if not args.device.startswith("cuda"):
        _LIBC = _glibc()
    shapes = ["tiny", "smollm2-135m-shape"] if args.shape == "both" else [args.shape]
    results = []
    for shape in shapes:
        results.append(run_shape(args, shape))
        print_result(results[-1], args)
    if args.json:
        from gradient_quarantine.io import atomic_write_json

        atomic_write_json(args.json, {"args": vars(args), "results": results})


if __name__ == "__main__":
    main()
