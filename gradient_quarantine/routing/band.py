"""The band and the gate (docs/design.md §5, docs/architecture.md "Band" and "Gate").

On the pair set, the hack-side and clean-side gradients each have a cosine with the gate direction
`v_hat`; the band is `[lower, upper] = [mean clean cosine, mean hack cosine]`, and the gate maps a live
cosine to a routed fraction

    f = clamp((cos - lower) / (upper - lower), 0, 1)

Band width `upper - lower` is a label-free sanity figure: clearly positive for a real direction, about 0 (either
sign) for random-V. A band with `width <= 0` does not separate anything, so its gate routes nothing (f = 0
everywhere); a random-V or placebo control must then be run frout-matched (`frout_matched_gate`) so it routes
the same fraction of gradient mass as the real arm, otherwise the control says nothing.

    >>> band = calibrate_band(hack_cos=[0.31, 0.28], clean_cos=[0.02, -0.01])
    >>> band.width                      # 0.29
    >>> gate(torch.tensor([0.0, 0.15, 0.5]), band)   # tensor([0.0000, 0.5000, 1.0000])
    >>> f = frout_matched_gate(cos, norms, target=0.1)   # routes exactly 10 % of the mass
    >>> f = ramp_matched_gate(cos, norms, target=0.1, width=0.2)   # the same mass, through a ramp like the band's
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from gradient_quarantine.io import atomic_write_json

# A gate value counts as "at 0" / "at 1" within this tolerance (float32 arithmetic on the clamp).
GATE_ATOL = 1e-6
_EPS = 1e-12


GRANULARITIES = ("rollout", "token")


@dataclass
class Band:
    """A calibrated band. `hack_cos[i]`, `clean_cos[i]`: pair i's two sides' scores with `v_hat`: the cosine of
    the side's gradient (`granularity="rollout"`), or the token-mass-weighted mean of its per-token cosines
    (`"token"`, the band of the per-token gate: `sum_t ||G_t|| cos_t / sum_t ||G_t||`, see
    `direction.token_scores`).

    `loo_separation` (optional, filled by `extract_direction`): fraction of pairs that the band and direction
    calibrated *without* them still separate (see `direction.leave_one_out_separation`).
    Label-free gauges of the gate on pairs (optional, filled by the trainer; see `direction.pair_gates`): the mean
    gate on the hack and clean sides of the calibration pairs (`pair_gate_*`, in sample) and of `n_heldout`
    held-out pairs that took no part in the direction or the band (`heldout_gate_*`).
    """

    lower: float
    upper: float
    hack_cos: list[float] = field(default_factory=list)
    clean_cos: list[float] = field(default_factory=list)
    loo_separation: float | None = None
    granularity: str = "rollout"
    pair_gate_hack: float | None = None
    pair_gate_clean: float | None = None
    heldout_gate_hack: float | None = None
    heldout_gate_clean: float | None = None
    n_heldout: int = 0

    def __post_init__(self) -> None:
        self.lower, self.upper = float(self.lower), float(self.upper)
        if not (math.isfinite(self.lower) and math.isfinite(self.upper)):
            raise ValueError(f"band bounds must be finite, got lower={self.lower}, upper={self.upper}")
        if self.granularity not in GRANULARITIES:
            raise ValueError(f"band granularity {self.granularity!r}: one of {GRANULARITIES}")
        if len(self.hack_cos) != len(self.clean_cos):
            raise ValueError(
                f"hack_cos and clean_cos must have one entry per pair, got {len(self.hack_cos)} and {len(self.clean_cos)}"
            )

    @property
    def width(self) -> float:
        return self.upper - self.lower

    def to_dict(self) -> dict:
        return {**asdict(self), "width": self.width}

    @classmethod
    def from_dict(cls, d: dict) -> Band:
        gauges = ("pair_gate_hack", "pair_gate_clean", "heldout_gate_hack", "heldout_gate_clean")
        return cls(
            lower=d["lower"],
            upper=d["upper"],
            hack_cos=list(d.get("hack_cos", [])),
            clean_cos=list(d.get("clean_cos", [])),
            loo_separation=d.get("loo_separation"),
            granularity=d.get("granularity", "rollout"),  # band.json from before it was recorded: rollout
            **{k: d.get(k) for k in gauges},
            n_heldout=int(d.get("n_heldout") or 0),
        )


def calibrate_band(
    hack_cos: Sequence[float] | torch.Tensor, clean_cos: Sequence[float] | torch.Tensor, granularity: str = "rollout"
) -> Band:
    """`lower = mean_i c_clean_i`, `upper = mean_i c_hack_i` (docs/architecture.md "Band"); `c` are the sides'
    cosines (rollout gate) or token-mass-weighted mean token cosines (token gate)."""
    hack = torch.as_tensor(hack_cos, dtype=torch.float64).flatten()
    clean = torch.as_tensor(clean_cos, dtype=torch.float64).flatten()
    if hack.numel() == 0 or hack.numel() != clean.numel():
        raise ValueError(
            f"need the same, non-zero number of hack and clean cosines, got {hack.numel()} and {clean.numel()}"
        )
    return Band(
        lower=clean.mean().item(), upper=hack.mean().item(), hack_cos=hack.tolist(), clean_cos=clean.tolist(),
        granularity=granularity,
    )


def gate(cos: torch.Tensor, band: Band) -> torch.Tensor:
    """`f = clamp((cos - lower) / (upper - lower), 0, 1)`, same shape as `cos`.

    `width <= 0` (a band that does not separate the pair set): route nothing, f = 0 everywhere.
    """
    width = band.width
    if not width > 0:
        return torch.zeros_like(cos)
    f = ((cos - band.lower) / width).clamp(0.0, 1.0)
    return f


def frout(f: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
    """Routed fraction of gradient mass, `sum f ||G|| / sum ||G||` (docs/architecture.md "Routing"); 0 when there
    is no mass. `f`, `norms`: any shape, alike. A 0-d tensor on their device, so a step's gauges take one host
    sync together (`Router.stats`); `float(frout(f, norms))` for a number."""
    return (f * norms).sum() / norms.sum().clamp(min=_EPS)


def frout_matched_gate(cos: torch.Tensor, norms: torch.Tensor, target: float) -> torch.Tensor:
    """Gate that routes exactly `target` of the gradient mass, taking the most hack-ward items first.

    Items (rollouts or tokens, any shape; `cos` and `norms` alike) are sorted by cosine, highest first; they get
    f = 1 until the routed mass reaches `target * sum(norms)`, the item that crosses the target gets the fraction
    that makes the sum exact, the rest get 0. Used by controls (random-V, placebo) to route the same fraction as
    the real arm (docs/design.md §5: an unmatched control routes almost nothing and says nothing).
    """
    if not 0.0 <= target <= 1.0:
        raise ValueError(f"frout target must be in [0, 1], got {target}")
    flat_cos, flat_norm = cos.flatten(), norms.flatten().to(torch.float64)
    total = flat_norm.sum()
    f = torch.zeros_like(flat_norm)
    if total <= 0 or target == 0.0:
        return f.to(cos.dtype).view_as(cos)
    order = torch.argsort(flat_cos, descending=True, stable=True)  # (N,)
    mass = flat_norm[order]  # (N,)
    before = torch.cumsum(mass, 0) - mass  # mass routed before item j in the order
    want = target * total
    # f_j = clamp((want - before_j) / mass_j, 0, 1); zero-mass items are routed iff the target is not yet met
    f_sorted = torch.where(
        mass > 0,
        ((want - before) / mass.clamp(min=torch.finfo(torch.float64).tiny)).clamp(0, 1),
        (before < want).double(),
    )
    f[order] = f_sorted
    return f.to(cos.dtype).view_as(cos)


def ramp_matched_gate(
    cos: torch.Tensor, norms: torch.Tensor, target: float, width: float, iters: int = 64
) -> torch.Tensor:
    """Gate of the band's shape, `f = clamp((cos - lower) / width, 0, 1)`, with `lower` chosen so that it routes
    `target` of the gradient mass (`sum f ||G|| / sum ||G||`).

    The step-matched control (random-V, placebo): the same ramp as route2b's gate rather than a hard top-k cut,
    placed to route what route2b routed. frout is continuous and non-increasing in `lower` (1 at
    `min(cos) - width`, 0 at `max(cos)`), so `lower` is found by bisection, `iters` halvings in float64 without
    a host sync (64: exact to float precision). `width <= 0` (or not finite) is the hard cut's limit:
    `frout_matched_gate`.
    """
    if not 0.0 <= target <= 1.0:
        raise ValueError(f"frout target must be in [0, 1], got {target}")
    if not (math.isfinite(width) and width > 0):
        return frout_matched_gate(cos, norms, target)
    c, w = cos.flatten().double(), norms.flatten().double()  # (N,)
    total = w.sum()
    if total <= 0 or target == 0.0:
        return torch.zeros_like(cos)
    live = w > 0
    big = torch.finfo(torch.float64).max
    lo = torch.where(live, c, big).min() - width  # every live item at f = 1: frout 1 >= target
    hi = torch.where(live, c, -big).max()  # every live item at f = 0: frout 0 <= target
    want = target * total
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        routed = (((c - mid) / width).clamp(0, 1) * w).sum()
        ok = routed >= want  # frout(mid) >= target: the answer is at mid or above
        lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
    f = ((c - lo) / width).clamp(0, 1)
    return f.to(cos.dtype).view_as(cos)


def frout_matched_threshold(cos: torch.Tensor, norms: torch.Tensor, target: float) -> float:
    """The cosine threshold `t` of `frout_matched_gate`: items with `cos > t` are fully routed, the item at
    `cos == t` partly. A hard gate `cos >= t` routes at least `target` of the mass. Returns +inf for target 0."""
    f = frout_matched_gate(cos, norms, target).flatten()
    routed = f > 0
    if not routed.any():
        return math.inf
    return float(cos.flatten()[routed].min())


def gate_stats(f: torch.Tensor, weight: torch.Tensor | None = None) -> dict[str, float]:
    """Fractions of gate values at 0, at 1 and strictly between (metric names of docs/run_directory.md).

    `weight` (same shape, 0/1) excludes items, e.g. padding tokens whose gradient is exactly zero."""
    f = f.flatten()
    if weight is not None:
        f = f[weight.flatten() > 0]
    n = max(f.numel(), 1)
    at0 = (f <= GATE_ATOL).sum().item()
    at1 = (f >= 1 - GATE_ATOL).sum().item()
    return {
        "routing/gate_at_0": at0 / n,
        "routing/gate_at_1": at1 / n,
        "routing/gate_between": (f.numel() - at0 - at1) / n,
    }


def band_stats(band: Band) -> dict[str, float]:
    """The band in force, as logged every step."""
    out = {
        "routing/band_lower": band.lower,
        "routing/band_upper": band.upper,
        "routing/band_width": band.width,
    }
    if band.loo_separation is not None:
        out["routing/loo_separation"] = band.loo_separation
    for key in ("pair_gate_hack", "pair_gate_clean", "heldout_gate_hack", "heldout_gate_clean"):
        if getattr(band, key) is not None:
            out[f"routing/{key}"] = getattr(band, key)
    return out


def save_band(band: Band, path: str | Path) -> None:
    """Write the band (bounds, width, per-pair cosines) as JSON, atomically."""
    atomic_write_json(path, band.to_dict())


def load_band(path: str | Path) -> Band:
    return Band.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
