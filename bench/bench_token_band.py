"""The per-token gate's band on a pair set: the rollout band reused (before) vs a band calibrated on per-token
cosines (after), and the token frout each gives on the hack and the clean sides.

For each side of each pair the per-token gradient `G_t` (the live per-token gate's item: every position's
contribution, prompt included) is scored `cos_t = cos(G_t, v_hat)`; a band's token frout on a side is
`sum_t f_t ||G_t|| / sum_t ||G_t||`, `f_t = clamp((cos_t - lower) / (upper - lower), 0, 1)` (mean over pairs),
the share of positions with `cos_t > 0` is counted over positions with a non-zero gradient. The bands:

    rollout  lower / upper = mean cosine of the clean / hack sides' whole gradients (what the token gate reused)
    token    lower / upper = mean over pairs of each side's token-mass-weighted mean token cosine

Held-out pairs (`--heldout`, the next pairs of each mode, not used for v_grad or either band) give the same
figures out of sample. Defaults are the demo preset's (SmolLM2-135M-Instruct, adapter rank 32 + 4 disjoint knob
axes on layers [20, 30), T = 1.0, `grpo` loss -> sequence-mean length normalisation, the shipped pairs).

    nice -n 10 .venv/bin/python bench/bench_token_band.py --pairs-per-mode 2 --heldout 2 --threads 1
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from gradient_quarantine.model.loading import load_policy
from gradient_quarantine.model.svd_adapter import AdapterConfig, attach_svd_adapter
from gradient_quarantine.routing.band import gate
from gradient_quarantine.routing.direction import direction_and_band, pair_side_token_stats, token_frouts
from gradient_quarantine.routing.pairs import Pair


def side_figures(stats, bands: dict) -> dict:
    pos = [float((c[w > 0] > 0).float().mean()) for c, w in zip(stats.cos, stats.norm, strict=True)]
    out = {"pos_cos_share": sum(pos) / len(pos)}
    for name, band in bands.items():
        out[f"frout_{name}"] = float(token_frouts(stats, band).mean())
        c, w = torch.cat(stats.cos), torch.cat(stats.norm)
        out[f"frout_{name}_pooled"] = float((gate(c, band) * w).sum() / w.sum())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--pairs-per-mode", type=int, default=2, help="calibration pairs per mode (demo: 2)")
    ap.add_argument("--heldout", type=int, default=2, help="further pairs per mode held out")
    ap.add_argument("--rank", type=int, default=32)
    ap.add_argument("--knob-rank", type=int, default=4)
    ap.add_argument("--layers", type=int, nargs=2, default=[20, 30])
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from gradient_quarantine.substrate.pairs import builtin_pairs_path, read_pairs  # a bench, not routing/

    rows = read_pairs(builtin_pairs_path(), kind="hack")
    count: dict[str, int] = {}
    cal, held = [], []
    for row in rows:  # per mode in file order: calibration pairs first, then the held-out ones
        n = count[row["mode"]] = count.get(row["mode"], 0) + 1
        if n <= args.pairs_per_mode:
            cal.append(row)
        elif n <= args.pairs_per_mode + args.heldout:
            held.append(row)
    pairs = [Pair(r["prompt"], r["clean"], r["hack"]) for r in cal]
    heldout = [Pair(r["prompt"], r["clean"], r["hack"]) for r in held]

    t0 = time.perf_counter()
    model, tok = load_policy(args.model, dtype="float32", device="cpu")
    adapter = attach_svd_adapter(model, AdapterConfig(rank=args.rank, knob_relation="disjoint",
                                                      knob_rank=args.knob_rank, layers=tuple(args.layers)))  # fmt: skip
    kw = {"length_norm": "sequence_mean", "temperature": args.temperature, "batch_size": args.batch_size}
    hs, cs = pair_side_token_stats(model, adapter, tok, pairs, **kw)  # pass 1: gradients and token masses
    direction, rollout_band = direction_and_band(hs.grads, cs.grads, k=1)
    _, token_band = direction_and_band(hs.grads, cs.grads, k=1, hack_mass=hs.mass, clean_mass=cs.mass)
    bands = {"rollout_band": rollout_band, "token_band": token_band}
    hs, cs = pair_side_token_stats(model, adapter, tok, pairs, v_hat=direction.v_hat, **kw)  # pass 2: cos_t
    out = {
        "model": args.model, "n_pairs": len(pairs), "n_heldout": len(heldout),
        "bands": {k: {"lower": b.lower, "upper": b.upper, "width": b.width, "loo_separation": b.loo_separation}
                  for k, b in bands.items()},
        "in_sample": {"hack": side_figures(hs, bands), "clean": side_figures(cs, bands)},
    }  # fmt: skip
    if heldout:
        hh, hc = pair_side_token_stats(model, adapter, tok, heldout, v_hat=direction.v_hat, **kw)
        out["heldout"] = {"hack": side_figures(hh, bands), "clean": side_figures(hc, bands)}
    out["wall_s"] = time.perf_counter() - t0
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
