"""The hack direction `v_grad`'s parts: the math from side gradients (`direction_from_grads`), the pair sides'
gradients (`pair_side_grads`, `pair_side_token_stats`), the band's per-pair scores (`side_scores`), the controls
(random-V, placebo), the gate on pairs (`pair_gates`) and persistence. The cosine the gate reads is `cosine.py`'s
(`cosine` and `dot_and_sqnorm` are importable from here too).

The extraction that puts them together (direction, band, leave-one-pair-out separation) lives once, in
detector.py (`build_detector` from a `DetectorRecipe`); `extract_direction` and `direction_and_band` here are
thin aliases of it.

Math (docs/architecture.md "Pair differences and v_grad", docs/design.md §5):

    d_i      = grad[l(hack_i) - l(clean_i)]                        per pair, capture coordinates, per module m
    D_m      = stack_i d_i,m                                       (n_pairs, R)
    V_m      = top-k right singular vectors of D_m                 (k, R), oriented: mean_i <d_i,m, v> >= 0
    v_hat    = concat_m V_m^T V_m mean_i d_i,m, unit norm over all modules
    cos(u)   = <u, v_hat> / ||u||                                  over the concatenation of all modules

The band (`band.py`) is calibrated on the same pair gradients: `c_hack_i = cos(grad l(hack_i))`,
`c_clean_i = cos(grad l(clean_i))`, `lower = mean c_clean`, `upper = mean c_hack`.

The per-token gate scores each position's contribution `G_t` (sum_t G_t = G), whose cosines have another
distribution (smaller, and about half of them positive on either side), so it gets its own band, calibrated the
same way on per-token scores: each side's token-mass-weighted mean token cosine

    s(side) = sum_t ||G_t|| cos(G_t, v_hat) / sum_t ||G_t|| = <G, v_hat> / (||v_hat|| sum_t ||G_t||)

(the identity makes it cheap: the side's gradient and its token mass `sum_t ||G_t||`, one pass), then
`lower = mean s(clean)`, `upper = mean s(hack)`.

Controls:
  * random-V (`random_direction_like`): per module a Haar-random orthonormal (k, R) basis, and a v_hat inside
    its span with the same per-module norm as the real v_hat (so the same total norm, 1). Not oriented by the
    pairs: its band width is about 0 with either sign, so it must be run frout-matched.
  * placebo (`placebo_pairs`): the same extraction on pairs whose two sides are both clean.

    >>> det = build_detector(model, adapter, tok, pairs, DetectorRecipe(k=1, length_norm="sequence_mean"))
    >>> direction, band = det.direction, det.band          # detector.py; or extract_direction(...), its alias
    >>> band.width, band.loo_separation
    >>> rand = random_direction_like(direction, seed=0)
    >>> save_direction(direction, "out/dir/v_grad.safetensors"); d2 = load_direction("out/dir/v_grad.safetensors")
    >>> cosine(cap.per_rollout, direction.v_hat)        # (B,)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_save

from gradient_quarantine.io import atomic_write_bytes, atomic_write_json
from gradient_quarantine.routing.band import Band, frout, gate
from gradient_quarantine.routing.cosine import cosine, cosine_of, direction_norm, dot_and_sqnorm
from gradient_quarantine.routing.pairs import (
    LengthNorm,
    Pair,
    TokenStats,
    differing_spans,
    sequence_logprob_grads,
    sequence_token_stats,
)

DIRECTION_FORMAT = "gq-direction-v1"
# solve: from (correct, incorrect) pairs, orthogonalize.py
DIRECTION_KINDS = ("v_grad", "random", "placebo", "solve")
_EPS = 1e-12


@dataclass
class Direction:
    """Per-module hack direction in capture coordinates.

    `basis[m]`: (k, R) orthonormal rows spanning module m's top-k pair-difference directions.
    `v_hat[m]`: (R,) the gate direction's block for module m; unit norm over the concatenation of modules.
    `kind`: "v_grad" (from hack/clean pairs), "random" (random-V control) or "placebo" (clean/clean pairs).
    """

    basis: dict[str, torch.Tensor]
    v_hat: dict[str, torch.Tensor]
    kind: str = "v_grad"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in DIRECTION_KINDS:
            raise ValueError(f"Direction.kind={self.kind!r}: one of {DIRECTION_KINDS}")
        if set(self.basis) != set(self.v_hat):
            raise ValueError("Direction.basis and Direction.v_hat must cover the same modules")
        ks = {b.shape[0] for b in self.basis.values()}
        if len(ks) != 1:
            raise ValueError(f"every module must have the same k, got {sorted(ks)}")
        for m, b in self.basis.items():
            if b.ndim != 2 or self.v_hat[m].shape != (b.shape[1],):
                raise ValueError(
                    f"module {m}: basis must be (k, R) and v_hat (R,), got {tuple(b.shape)}, {tuple(self.v_hat[m].shape)}"
                )

    @property
    def k(self) -> int:
        return next(iter(self.basis.values())).shape[0]

    @property
    def modules(self) -> list[str]:
        return list(self.v_hat)

    def norms(self) -> dict[str, float]:
        """||v_hat_m|| per module (they sum in squares to 1)."""
        return {m: float(v.norm()) for m, v in self.v_hat.items()}

    def to(self, device: torch.device | str) -> Direction:
        return Direction(
            {m: b.to(device) for m, b in self.basis.items()},
            {m: v.to(device) for m, v in self.v_hat.items()},
            self.kind,
            dict(self.meta),
        )


# ------------------------------------------------------------------------------------------------------------
# extraction


def direction_from_grads(
    hack_grads: Mapping[str, torch.Tensor],
    clean_grads: Mapping[str, torch.Tensor],
    k: int = 1,
    kind: str = "v_grad",
) -> Direction:
    """`v_grad` from per-pair side gradients `{m: (n, R)}` (pure math; see the module docstring).

    Computed on CPU in float64 (the matrices are n x R, tiny), so the result does not depend on the device;
    the returned tensors are float32 on the device of the inputs.
    """
    if set(hack_grads) != set(clean_grads):
        raise KeyError("hack and clean gradients must cover the same modules")
    basis: dict[str, torch.Tensor] = {}
    proj: dict[str, torch.Tensor] = {}
    device = None
    for m in hack_grads:
        device = hack_grads[m].device
        D = (hack_grads[m].detach().double() - clean_grads[m].detach().double()).cpu()  # (n, R): d_i,m
        n, R = D.shape
        if not 1 <= k <= min(n, R):
            raise ValueError(f"k={k} must be in [1, min(n_pairs={n}, R={R})]: need at least k pairs")
        _, _, Vh = torch.linalg.svd(D, full_matrices=False)  # Vh (min(n,R), R)
        Vm = Vh[:k]  # (k, R) top-k right singular vectors
        d_bar = D.mean(0)  # (R,) mean pair difference
        sign = torch.where(Vm @ d_bar < 0, -1.0, 1.0).double()  # orient: mean_i <d_i, v> >= 0
        Vm = Vm * sign[:, None]
        basis[m] = Vm
        proj[m] = Vm.T @ (Vm @ d_bar)  # (R,) projection of d_bar onto span(V_m)
    total = torch.sqrt(sum((p**2).sum() for p in proj.values()))
    if not total > _EPS:
        raise ValueError(
            "the mean pair difference is zero in every module's span: the two sides of every pair give the same "
            "gradient (identical completions?)"
        )
    v_hat = {m: (p / total).float().to(device) for m, p in proj.items()}
    return Direction({m: b.float().to(device) for m, b in basis.items()}, v_hat, kind, {"k": k})


def side_cosines(
    direction: Direction, hack_grads: Mapping[str, torch.Tensor], clean_grads: Mapping[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(c_hack, c_clean)`, each (n,): each side's gradient cosine with `v_hat`."""
    return cosine(hack_grads, direction.v_hat), cosine(clean_grads, direction.v_hat)


def token_scores(
    grads: Mapping[str, torch.Tensor], mass: torch.Tensor, v_hat: Mapping[str, torch.Tensor]
) -> torch.Tensor:
    """Token-mass-weighted mean token cosine of each sequence, (n,): `<G_n, v_hat> / (||v_hat|| mass_n)` with
    `mass_n = sum_t ||G_nt||` (equal to `sum_t ||G_nt|| cos_nt / sum_t ||G_nt||`, module docstring)."""
    dot, _ = dot_and_sqnorm(grads, v_hat)
    return cosine_of(dot, mass.to(dot.device).float(), direction_norm(v_hat))


def side_scores(
    direction: Direction,
    hack_grads: Mapping[str, torch.Tensor],
    clean_grads: Mapping[str, torch.Tensor],
    hack_mass: torch.Tensor | None = None,
    clean_mass: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The band's per-pair inputs: `side_cosines` (rollout gate), or with the sides' token masses the
    token-mass-weighted mean token cosines (`token_scores`, the per-token gate's band)."""
    if hack_mass is None or clean_mass is None:
        return side_cosines(direction, hack_grads, clean_grads)
    v = direction.v_hat
    return token_scores(hack_grads, hack_mass, v), token_scores(clean_grads, clean_mass, v)


def pair_side_grads(
    model: torch.nn.Module,
    adapter,
    tokenizer,
    pairs: Sequence[Pair],
    length_norm: str | LengthNorm = "sequence_mean",
    temperature: float = 1.0,
    batch_size: int | None = None,
    differing_only: bool = False,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """`(grad l(hack_i), grad l(clean_i))`, each `{m: (n, R)}`, from one batched backward over the 2n sides.
    `differing_only`: each side's `l` over the tokens where the two sides differ (`pairs.differing_spans`)."""
    if not pairs:
        raise ValueError("empty pair set")
    n = len(pairs)
    prompts = [p.prompt for p in pairs] * 2
    completions = [p.hack for p in pairs] + [p.clean for p in pairs]
    grads = sequence_logprob_grads(
        model,
        adapter,
        tokenizer,
        prompts,
        completions,
        length_norm,
        temperature=temperature,
        batch_size=batch_size,
        keep=_differing_keep(tokenizer, pairs) if differing_only else None,
    )
    return {m: g[:n] for m, g in grads.items()}, {m: g[n:] for m, g in grads.items()}


def pair_side_token_stats(
    model: torch.nn.Module,
    adapter,
    tokenizer,
    pairs: Sequence[Pair],
    length_norm: str | LengthNorm = "sequence_mean",
    temperature: float = 1.0,
    batch_size: int | None = None,
    v_hat: Mapping[str, torch.Tensor] | None = None,
    differing_only: bool = False,
) -> tuple[TokenStats, TokenStats]:
    """`pair_side_grads` with per-position statistics (`pairs.TokenStats`): `(hack sides, clean sides)`."""
    if not pairs:
        raise ValueError("empty pair set")
    n = len(pairs)
    st = sequence_token_stats(
        model, adapter, tokenizer, [p.prompt for p in pairs] * 2, [p.hack for p in pairs] + [p.clean for p in pairs],
        length_norm, temperature=temperature, batch_size=batch_size, v_hat=v_hat,
        keep=_differing_keep(tokenizer, pairs) if differing_only else None,
    )  # fmt: skip

    def half(sl: slice) -> TokenStats:
        return TokenStats(
            {m: g[sl] for m, g in st.grads.items()}, st.mass[sl],
            st.cos[sl] if st.cos is not None else None, st.norm[sl] if st.norm is not None else None,
        )  # fmt: skip

    return half(slice(0, n)), half(slice(n, 2 * n))


def _differing_keep(tokenizer, pairs: Sequence[Pair]) -> list[tuple[int, int]]:
    """`keep` spans for the 2n sides in `pair_side_grads` order (hacks, then cleans)."""
    spans = [differing_spans(tokenizer, p.hack, p.clean) for p in pairs]
    return [h for h, _ in spans] + [c for _, c in spans]


def pair_gates(
    model: torch.nn.Module,
    adapter,
    tokenizer,
    pairs: Sequence[Pair],
    direction: Direction,
    band: Band,
    length_norm: str | LengthNorm = "sequence_mean",
    temperature: float = 1.0,
    batch_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(gate on each pair's hack side, gate on its clean side)`, each (n,), through `band` at its granularity.

    Rollout band: `f = gate(cos(grad l(side), v_hat))`. Token band: the side's token frout,
    `sum_t f_t ||G_t|| / sum_t ||G_t||` with `f_t = gate(cos(G_t, v_hat))` (the live per-token gate's mass-weighted
    routed share). A label-free gauge of selectivity: on pairs the band was calibrated on (in sample) or on
    held-out pairs that took no part in it.
    """
    if band.granularity == "rollout":
        hack_g, clean_g = pair_side_grads(
            model, adapter, tokenizer, pairs, length_norm, temperature, batch_size
        )
        ch, cc = side_cosines(direction, hack_g, clean_g)
        return gate(ch, band), gate(cc, band)
    hs, cs = pair_side_token_stats(
        model, adapter, tokenizer, pairs, length_norm, temperature, batch_size, v_hat=direction.v_hat
    )
    return token_frouts(hs, band), token_frouts(cs, band)


def token_frouts(stats: TokenStats, band: Band) -> torch.Tensor:
    """(n,): each sequence's mass-weighted share of tokens routed by `band` (`stats` with `cos` and `norm`)."""
    if stats.cos is None or stats.norm is None:
        raise ValueError("token_frouts needs per-token cosines: sequence_token_stats(..., v_hat=...)")
    out = [float(frout(gate(c, band), w)) for c, w in zip(stats.cos, stats.norm, strict=True)]
    return torch.tensor(out)


def extract_direction(
    model: torch.nn.Module,
    adapter,
    tokenizer,
    pairs: Sequence[Pair],
    k: int = 1,
    length_norm: str | LengthNorm = "sequence_mean",
    temperature: float = 1.0,
    kind: str = "v_grad",
    batch_size: int | None = None,
    granularity: str = "rollout",
) -> tuple[Direction, Band]:
    """Alias of `detector.build_detector` with the recipe's fields as arguments: `(direction, band)`.

    Kept for callers that want the pair only (tests, bench/); the extraction itself lives in detector.py.
    `kind="solve"`: pairs hold a correct completion in `clean` and an incorrect one in `hack`, and the direction
    points towards the correct side (orthogonalize.py).
    """
    from gradient_quarantine.routing.detector import DetectorRecipe, build_detector

    recipe = DetectorRecipe(
        k=k, length_norm=length_norm, temperature=temperature, batch_size=batch_size, granularity=granularity,
        kind=kind,
    )  # fmt: skip
    det = build_detector(model, adapter, tokenizer, pairs, recipe)
    return det.direction, det.band


def direction_and_band(
    hack_grads: Mapping[str, torch.Tensor],
    clean_grads: Mapping[str, torch.Tensor],
    k: int = 1,
    kind: str = "v_grad",
    hack_mass: torch.Tensor | None = None,
    clean_mass: torch.Tensor | None = None,
) -> tuple[Direction, Band]:
    """Alias of `detector.detector_from_sides` on given side gradients: `(direction, band)` with the band's
    leave-one-pair-out separation; with both sides' token masses, the per-token gate's band.

    Kept for callers that measured the sides themselves (bench/bench_token_band.py); the extraction itself lives
    in detector.py. `direction.meta` records `k` only (the measuring settings are the caller's).
    """
    from gradient_quarantine.routing.detector import DetectorRecipe, PairSides, detector_from_sides

    token = hack_mass is not None and clean_mass is not None
    sides = PairSides(hack_grads, clean_grads, *((hack_mass, clean_mass) if token else (None, None)))
    det = detector_from_sides(sides, DetectorRecipe(k=k, kind=kind, granularity=sides.granularity))
    return det.direction, det.band


# ------------------------------------------------------------------------------------------------------------
# controls


def random_direction_like(direction: Direction, seed: int) -> Direction:
    """Random-V: per module a Haar-random orthonormal (k, R) basis and a v_hat in its span, ||v_hat_m|| as in
    `direction` (same per-module rank and norm, docs/design.md §5). Deterministic in `seed` (CPU generator)."""
    gen = torch.Generator().manual_seed(int(seed))
    basis: dict[str, torch.Tensor] = {}
    v_hat: dict[str, torch.Tensor] = {}
    for m in direction.v_hat:  # insertion order is the model's module order: deterministic
        k, R = direction.basis[m].shape
        A = torch.randn(R, k, generator=gen, dtype=torch.float64)
        Q, Rr = torch.linalg.qr(A)  # (R, k), (k, k)
        Q = Q * torch.sign(torch.diagonal(Rr)).where(
            torch.diagonal(Rr) != 0, torch.ones(k, dtype=torch.float64)
        )
        z = torch.randn(k, generator=gen, dtype=torch.float64)
        u = Q @ z  # (R,) Haar-random unit direction inside the random span
        u = u / u.norm()
        dev = direction.v_hat[m].device
        basis[m] = Q.T.float().to(dev)  # (k, R)
        v_hat[m] = (u * direction.v_hat[m].double().norm().cpu()).float().to(dev)
    return Direction(basis, v_hat, "random", {**direction.meta, "seed": int(seed), "like": direction.kind})


def placebo_pairs(pairs: Sequence[Pair], alt_clean: Sequence[str] | None = None) -> list[Pair]:
    """Placebo pairs: both sides clean, so any "direction" they give carries no hack signal.

    With `alt_clean` (a second clean completion per pair, same prompt, e.g. another correct solution), pair i
    becomes `(prompt_i, clean_i, alt_clean_i)`: the cleanest placebo. Without it, the second side of pair i is the
    clean side of pair i+1 (cyclically): still clean code, but for another prompt, so the placebo then also
    carries an "off-prompt" difference. Only clean sides are read, never the hack sides (label-free).
    """
    if alt_clean is not None:
        if len(alt_clean) != len(pairs):
            raise ValueError(
                f"alt_clean needs one completion per pair: {len(alt_clean)} for {len(pairs)} pairs"
            )
        return [Pair(p.prompt, p.clean, a) for p, a in zip(pairs, alt_clean, strict=True)]
    if len(pairs) < 2:
        raise ValueError(
            "placebo pairs without alt_clean need at least 2 pairs (each borrows another's clean side)"
        )
    n = len(pairs)
    return [Pair(pairs[i].prompt, pairs[i].clean, pairs[(i + 1) % n].clean) for i in range(n)]


# ------------------------------------------------------------------------------------------------------------
# persistence


def save_direction(direction: Direction, path: str | Path) -> None:
    """Write `path` (safetensors: `<module>.basis` (k, R), `<module>.v_hat` (R,)) and a JSON sidecar
    `<path stem>.json` (kind, k, per-module norms, meta) for humans. Both atomic."""
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    for m in direction.v_hat:
        tensors[f"{m}.basis"] = direction.basis[m].detach().float().cpu().contiguous()
        tensors[f"{m}.v_hat"] = direction.v_hat[m].detach().float().cpu().contiguous()
    meta = {
        "format": DIRECTION_FORMAT,
        "kind": direction.kind,
        "modules": json.dumps(direction.modules),
        "meta": json.dumps(direction.meta),
    }
    atomic_write_bytes(path, safetensors_save(tensors, metadata=meta))
    atomic_write_json(
        path.with_suffix(".json"),
        {
            "format": DIRECTION_FORMAT,
            "kind": direction.kind,
            "k": direction.k,
            "n_modules": len(direction.v_hat),
            "meta": direction.meta,
            "v_hat_norms": direction.norms(),
        },
    )


def load_direction(path: str | Path, device: torch.device | str = "cpu") -> Direction:
    """Read a direction written by `save_direction` (module order preserved)."""
    with safe_open(str(path), framework="pt", device=str(device)) as f:
        meta = f.metadata() or {}
        if meta.get("format") != DIRECTION_FORMAT:
            raise ValueError(
                f"{path}: not a gradient_quarantine direction file (format={meta.get('format')!r})"
            )
        modules = json.loads(meta["modules"])
        basis = {m: f.get_tensor(f"{m}.basis") for m in modules}
        v_hat = {m: f.get_tensor(f"{m}.v_hat") for m in modules}
    return Direction(basis, v_hat, meta["kind"], json.loads(meta.get("meta", "{}")))
