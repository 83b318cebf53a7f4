"""`gq direction`: extract the hack direction `v_grad` and its band from a pair file, next to random-V.

    gq direction --model tiny --pairs pairs.jsonl --out out/direction
    gq direction --model smollm2-135m --pairs builtin --modes overwrite_tests,exit_code --k 1 --rank 16 --out out/dir
    gq direction --model smollm2-135m --pairs placebo.jsonl --placebo --out out/placebo_dir
    gq direction --model M --pairs pairs.jsonl --loss-type dr_grpo --max-completion-length 512 --out out/dir

Writes into `--out`:
  v_grad.safetensors (+ v_grad.json)   the direction, per module `<module>.basis` (k, R) and `<module>.v_hat` (R,)
  band.json                            lower, upper, width, per-pair cosines, leave-one-pair-out separation
  pair_cosines.json                    one row per pair: problem_id, mode, hack/clean cosine and gate value
  direction_summary.json               the command's settings, the band of v_grad and of each random-V seed
and prints the band of v_grad and of random-V side by side. The extraction is `routing.detector.build_detector`
(the trainer's); each random-V band is that recipe with `direction="random"` on the same pass's pair gradients.

This module is a CLI, not part of `routing/`: it may read the pair file's `mode` column to filter rows, but the
`Pair`s it hands to routing carry no mode (no-cheat invariant, docs/design.md §5).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer

from gradient_quarantine.cli import app


def _split_modes(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    out = [m.strip() for v in values for m in v.split(",") if m.strip()]
    return out or None


@app.command("direction")
def direction(
    model: str = typer.Option(..., "--model", help="'tiny', 'smollm2-135m', a local checkpoint or a hub id."),
    pairs: str = typer.Option(..., "--pairs", help="Pair file (jsonl from `gq pairs build`), or 'builtin'."),
    out: Path = typer.Option(
        ..., "--out", help="Directory to write v_grad, the band and per-pair cosines into."
    ),
    modes: list[str] = typer.Option(
        None, "--modes", help="Only pairs of these modes: comma-separated and/or repeated (default: all)."
    ),
    k: int = typer.Option(1, "--k", min=1, help="Directions kept per module (top-k right singular vectors)."),
    rank: int = typer.Option(
        16, "--rank", min=1, help="Adapter basis width r (singular triplets per module)."
    ),
    knob_relation: str = typer.Option("disjoint", "--knob-relation", help="shared | disjoint | vgrad_span."),
    knob_rank: int = typer.Option(4, "--knob-rank", min=1, help="Knob axes (disjoint) or k (vgrad_span)."),
    adapter_path: Path = typer.Option(
        None,
        "--adapter",
        help="Load this saved adapter (e.g. a run's train.safetensors) instead of a fresh one.",
    ),
    length_norm: str = typer.Option(
        None, "--length-norm", help="sequence_mean | none | constant:<N>; default: derived from --loss-type."
    ),
    loss_type: str = typer.Option(
        "grpo", "--loss-type", help="The live TRL loss_type the extraction must match."
    ),
    max_completion_length: int = typer.Option(
        None, "--max-completion-length", help="Needed for --loss-type dr_grpo (its constant normaliser)."
    ),
    temperature: float = typer.Option(
        1.0, "--temperature", help="Sampling temperature the live loss divides by."
    ),
    placebo: bool = typer.Option(False, "--placebo", help="Use the file's placebo rows (clean vs clean)."),
    random_seeds: int = typer.Option(8, "--random-seeds", min=0, help="Random-V seeds to compare against."),
    batch_size: int = typer.Option(
        None, "--batch-size", help="Sequences per backward (default: all in one)."
    ),
    device: str = typer.Option(None, "--device", help="cpu | cuda (default: cuda if available)."),
    dtype: str = typer.Option(
        None, "--dtype", help="Model dtype, e.g. float32 or bfloat16 (default float32)."
    ),
) -> None:
    """Extract v_grad and its band on the given policy; print its band width next to random-V's.

    Example: gq direction --model tiny --pairs pairs.jsonl --modes overwrite_tests,exit_code --out out/dir
    """
    import torch
    from rich.console import Console
    from rich.table import Table

    from gradient_quarantine.io import atomic_write_json
    from gradient_quarantine.model.loading import load_policy
    from gradient_quarantine.model.svd_adapter import AdapterConfig, attach_svd_adapter, load_svd_adapter
    from gradient_quarantine.routing.band import gate, save_band
    from gradient_quarantine.routing.detector import DetectorRecipe, build_detector, detector_from_sides
    from gradient_quarantine.routing.direction import save_direction
    from gradient_quarantine.routing.pairs import LengthNorm, Pair, length_norm_for_loss_type
    from gradient_quarantine.substrate.pairs import builtin_pairs_path, read_pairs

    console = Console()
    try:
        norm = LengthNorm.parse(length_norm or length_norm_for_loss_type(loss_type, max_completion_length))
        pair_file = builtin_pairs_path() if pairs == "builtin" else Path(pairs)
        if not pair_file.is_file():
            raise FileNotFoundError(f"pair file {pair_file} not found (build one with `gq pairs build`)")
        rows = read_pairs(pair_file, modes=_split_modes(modes), kind="placebo" if placebo else "hack")
        if not rows:
            raise ValueError(
                f"{pair_file}: no {'placebo' if placebo else 'hack'} pairs"
                + (f" for modes {_split_modes(modes)}" if modes else "")
            )
        if k > len(rows):
            raise ValueError(f"--k {k} needs at least {k} pairs, the file gives {len(rows)}")
        cfg = (
            None
            if adapter_path
            else AdapterConfig(rank=rank, knob_relation=knob_relation, knob_rank=knob_rank)
        )
        kind = "placebo" if placebo else "v_grad"
        recipe = DetectorRecipe(
            k=k, length_norm=norm, temperature=temperature, batch_size=batch_size, kind=kind
        )
    except (ValueError, FileNotFoundError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(code=2) from e

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    policy, tok = load_policy(model, dtype=dtype, device=device)
    adapter = load_svd_adapter(policy, adapter_path) if adapter_path else attach_svd_adapter(policy, cfg)
    # mode-free pairs: the side assignment is the only supervision routing sees
    pair_set = [Pair(r["prompt"], r["clean"], r["hack"]) for r in rows]

    with console.status(f"extracting {kind} from {len(pair_set)} pairs on {model} ({device})"):
        # one batched backward over all 2n sides (routing/detector.py)
        det = build_detector(policy, adapter, tok, pair_set, recipe)
    v_grad, band = det.direction, det.band
    # random-V, the trainer's control (routing.direction=random), on the very same pair gradients
    random_bands = [
        (s, detector_from_sides(det.sides, replace(recipe, direction="random", random_seed=s)).band)
        for s in range(random_seeds)
    ]

    out.mkdir(parents=True, exist_ok=True)
    save_direction(v_grad, out / "v_grad.safetensors")
    save_band(band, out / "band.json")
    f_hack = gate(torch.tensor(band.hack_cos), band).tolist()
    f_clean = gate(torch.tensor(band.clean_cos), band).tolist()
    atomic_write_json(
        out / "pair_cosines.json",
        [
            {"problem_id": r["problem_id"], "mode": r["mode"], "hack_cos": hc, "clean_cos": cc, "gate_hack": fh,
             "gate_clean": fc}
            for r, hc, cc, fh, fc in zip(rows, band.hack_cos, band.clean_cos, f_hack, f_clean, strict=True)
        ],
    )  # fmt: skip
    widths = [b.width for _, b in random_bands]
    atomic_write_json(
        out / "direction_summary.json",
        {
            "model": model, "pairs": str(pair_file), "modes": _split_modes(modes), "kind": kind, "n_pairs": len(rows),
            "k": k, "adapter": str(adapter_path) if adapter_path else adapter.cfg.to_dict(),
            "length_norm": str(norm), "temperature": temperature,
            "v_grad": band.to_dict() | {"hack_cos": None, "clean_cos": None},
            "random_v": [{"seed": s, **b.to_dict(), "hack_cos": None, "clean_cos": None} for s, b in random_bands],
            "random_v_mean_abs_width": sum(abs(w) for w in widths) / len(widths) if widths else None,
        },
    )  # fmt: skip

    table = Table(title=f"band on {len(rows)} {kind} pairs ({model}, k={k}, {norm})")
    for col in ("direction", "lower", "upper", "width", "loo sep."):
        table.add_column(col, justify="right" if col != "direction" else "left")

    def fmt(x: float | None) -> str:
        return "-" if x is None else f"{x:+.4f}"

    table.add_row(kind, fmt(band.lower), fmt(band.upper), fmt(band.width), fmt(band.loo_separation))
    for s, b in random_bands:
        table.add_row(f"random-V seed {s}", fmt(b.lower), fmt(b.upper), fmt(b.width), "-")
    if widths:
        table.add_row("random-V mean |width|", "", "", f"{sum(abs(w) for w in widths) / len(widths):.4f}", "")
    console.print(table)
    console.print(f"wrote {out}/v_grad.safetensors, band.json, pair_cosines.json, direction_summary.json")
