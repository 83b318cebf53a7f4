"""The one extraction of the hack detector: `v_grad` (or its control), its band and their gauges from a pair set.

Every caller builds it here, from a typed recipe: the trainer (`RunSetup.extract_direction`, at the start and at
every refresh), `gq direction`, the solve direction of solve-orthogonalisation (`orthogonalize.solve_direction`),
and the thin aliases `direction.extract_direction` / `direction.direction_and_band`. Nothing else composes
`direction_from_grads` with `calibrate_band` (tests/test_detector.py checks it).

"Detector" here is the pair-calibrated direction and band that the gate reads, nothing that reads a label: like the
rest of `routing/`, it sees the fixed pair set and gradients only.

Stages (docs/architecture.md "Pair differences and v_grad", "Band"):

  1. `measure_pair_sides`: one batched backward over the 2n pair sides -> `PairSides`, each side's gradient
     `{m: (n, R)}` (and, for the per-token band, its token mass `sum_t ||G_t||`), oriented so that the direction
     points towards the `hack` slot (for `kind="solve"` the correct completion, which `Pair` keeps in `clean`).
  2. `detector_from_sides` (pure math on those gradients):
       direction = direction_from_grads(hack, clean, k)                 top-k SVD of the pair differences
       direction = random_direction_like(direction, seed)               recipe.direction == "random" (random-V)
       direction = transform(direction)                                 e.g. solve-orthogonalisation
       band      = calibrate_on_sides(direction, sides)                 mean side scores at the recipe's granularity
       band.loo_separation = leave_one_out_separation(...)             real directions only, transform per fold
  3. `build_detector` = 1 + 2, and records `n_pairs`, `length_norm`, `temperature` in `direction.meta`.

A further option (a direction from activations, scores restricted to differing tokens, on-policy pair sides) is a
new `DetectorRecipe` field with a default that keeps today's behaviour, read in the stage it changes: callers
that do not set it do not change.

    >>> recipe = DetectorRecipe(k=1, length_norm="sequence_mean", granularity="token", batch_size=2)
    >>> det = build_detector(model, adapter, tok, pairs, recipe)
    >>> det.direction, det.band, det.band.loo_separation, det.width, det.n_pairs
    >>> ctrl = detector_from_sides(det.sides, replace(recipe, direction="random", random_seed=0))  # same pass
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from gradient_quarantine.routing.activation import (
    ActivationDirection,
    activation_direction,
    activation_loo_separation,
    activation_scores,
    default_layer,
    mean_completion_states,
)
from gradient_quarantine.routing.band import GRANULARITIES, Band, calibrate_band
from gradient_quarantine.routing.direction import (
    Direction,
    direction_from_grads,
    pair_side_grads,
    pair_side_token_stats,
    random_direction_like,
    side_scores,
)
from gradient_quarantine.routing.pairs import LengthNorm, Pair, differing_spans

# what the pairs are: hack/clean, clean/clean, correct/incorrect (random-V is `direction`, not a kind)
RECIPE_KINDS = ("v_grad", "placebo", "solve")
RECIPE_DIRECTIONS = ("real", "random")
# which tokens of a pair side its gradient is taken over: all of the completion, or where the two sides differ
PAIR_TOKENS = ("all", "differing")
# what a completion is scored on: its gradient (the live gate's signal) or its mean activation (routing/activation.py)
SIGNALS = ("gradient", "activation")


@dataclass(frozen=True)
class DetectorRecipe:
    """How to build a detector from a pair set (validated on construction; ValueError names the field).

    `k`: directions kept per module (top-k right singular vectors of the pair differences), >= 1.
    `length_norm`: `l(y)`'s length normalisation, a `LengthNorm` or its spec (`"sequence_mean"`, `"none"`,
      `"constant:<N>"`); it must match the live loss (`pairs.length_norm_for_loss_type`).
    `temperature`: the sampling temperature the live loss divides the logits by, > 0.
    `batch_size`: sequences per forward/backward (None: all 2n sides in one).
    `granularity`: `"rollout"` (band on the sides' gradient cosines) or `"token"` (band on their
      token-mass-weighted mean token cosines, for the per-token gate).
    `kind`: `"v_grad"` (hack/clean pairs), `"placebo"` (clean/clean pairs, `direction.placebo_pairs`) or `"solve"`
      (`Pair(prompt, clean=correct, hack=incorrect)`; the direction points towards the correct side).
    `direction`: `"real"`, or `"random"` for the random-V control: the real direction replaced by
      `random_direction_like(real, random_seed)`, its band calibrated on the same side scores, and no
      leave-one-out separation. `random_seed` is required with `"random"` and refused otherwise.
    `transform`: optional `Direction -> Direction` applied before the band and inside each leave-one-out fold
      (e.g. `functools.partial(orthogonalize.orthogonalize, solve=...)`), so the band and the gauge describe
      the direction actually in force.
    `pair_tokens`: `"all"` (each side's `l(y)` over its whole completion) or `"differing"` (over the tokens between
      the two sides' common token prefix and suffix, `pairs.differing_spans`; the rest is context): the
      difference of a hack and its clean twin is then the hack's own tokens, not the shared code around them.
      The live gate still scores whole rollouts.
    `signal`: `"gradient"` (`v_grad`, what the live gate scores) or `"activation"` (a direction in the residual
      stream at decoder layer `layer`, default the middle one, from the pair sides' mean completion states:
      routing/activation.py; offline only, `gq detector eval`, not wired into the live gate). `k`, `granularity`,
      `length_norm` and `temperature` do not apply to it.
    """

    k: int = 1
    length_norm: str | LengthNorm = "sequence_mean"
    temperature: float = 1.0
    batch_size: int | None = None
    granularity: str = "rollout"
    kind: str = "v_grad"
    direction: str = "real"
    random_seed: int | None = None
    transform: Callable[[Direction], Direction] | None = None
    pair_tokens: str = "all"
    signal: str = "gradient"
    layer: int | None = None

    def __post_init__(self) -> None:
        if not _is_int(self.k) or self.k < 1:
            raise ValueError(f"DetectorRecipe.k={self.k!r}: must be an int >= 1 (directions kept per module)")
        try:
            LengthNorm.parse(self.length_norm)
        except ValueError as e:
            raise ValueError(f"DetectorRecipe.length_norm: {e}") from None
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not (math.isfinite(t) and t > 0):
            raise ValueError(f"DetectorRecipe.temperature={t!r}: must be a finite number > 0")
        if self.batch_size is not None and (not _is_int(self.batch_size) or self.batch_size < 1):
            raise ValueError(
                f"DetectorRecipe.batch_size={self.batch_size!r}: must be None (all at once) or an int >= 1"
            )
        if self.granularity not in GRANULARITIES:
            raise ValueError(f"DetectorRecipe.granularity={self.granularity!r}: one of {GRANULARITIES}")
        if self.kind not in RECIPE_KINDS:
            hint = " (random-V is direction='random' with a random_seed)" if self.kind == "random" else ""
            raise ValueError(f"DetectorRecipe.kind={self.kind!r}: one of {RECIPE_KINDS}{hint}")
        if self.direction not in RECIPE_DIRECTIONS:
            raise ValueError(f"DetectorRecipe.direction={self.direction!r}: one of {RECIPE_DIRECTIONS}")
        if self.direction == "random" and not _is_int(self.random_seed):
            raise ValueError(
                f"DetectorRecipe.random_seed={self.random_seed!r}: direction='random' needs an int seed "
                "(e.g. seeding.random_v_seed(seed))"
            )
        if self.direction == "real" and self.random_seed is not None:
            raise ValueError(
                f"DetectorRecipe.random_seed={self.random_seed!r} is only read with direction='random'; "
                "leave it None for a real direction"
            )
        if self.signal not in SIGNALS:
            raise ValueError(f"DetectorRecipe.signal={self.signal!r}: one of {SIGNALS}")
        if self.layer is not None and (not _is_int(self.layer) or self.layer < 0):
            raise ValueError(f"DetectorRecipe.layer={self.layer!r}: None (the middle layer) or an int >= 0")
        if self.signal == "activation" and (self.kind != "v_grad" or self.direction != "real" or self.transform):
            raise ValueError("DetectorRecipe.signal='activation' is built from hack/clean pairs as is: kind='v_grad', "
                             "direction='real', no transform")  # fmt: skip
        if self.pair_tokens not in PAIR_TOKENS:
            raise ValueError(f"DetectorRecipe.pair_tokens={self.pair_tokens!r}: one of {PAIR_TOKENS}")
        if self.transform is not None and not callable(self.transform):
            raise ValueError(
                f"DetectorRecipe.transform={self.transform!r}: must be a callable Direction -> Direction"
            )

    @property
    def norm(self) -> LengthNorm:
        """`length_norm` parsed."""
        return LengthNorm.parse(self.length_norm)


@dataclass(frozen=True)
class PairSides:
    """Each pair's two sides measured on the policy: `hack[m]`, `clean[m]` (n, R) side gradients, and with the
    per-token band their token masses `hack_mass`, `clean_mass` (n,). Oriented: the direction points from `clean`
    towards `hack` (for `kind="solve"`, `hack` holds the correct side, as the solve band's `hack_cos` does)."""

    hack: Mapping[str, torch.Tensor]
    clean: Mapping[str, torch.Tensor]
    hack_mass: torch.Tensor | None = None
    clean_mass: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if (self.hack_mass is None) != (self.clean_mass is None):
            raise ValueError(
                "PairSides: give both sides' token masses (per-token band) or neither (rollout band)"
            )
        if set(self.hack) != set(self.clean):
            raise ValueError("PairSides: hack and clean gradients must cover the same modules")

    @property
    def granularity(self) -> str:
        """The band these sides can calibrate: "token" with token masses, else "rollout"."""
        return "rollout" if self.hack_mass is None else "token"

    @property
    def n(self) -> int:
        return next(iter(self.hack.values())).shape[0]


@dataclass(frozen=True)
class Detector:
    """A built detector: the `direction` (its meta records the recipe's k, length_norm, temperature and
    n_pairs), its `band` (per-pair scores, `loo_separation` filled for a real direction), the `sides` it was
    calibrated on (to score other directions on the same pass, e.g. random-V) and the `recipe`."""

    direction: Direction | None  # None for signal="activation"
    band: Band
    sides: PairSides | None  # None for signal="activation"
    recipe: DetectorRecipe
    activation: ActivationDirection | None = None  # signal="activation" only
    pairs_n: int = 0

    @property
    def n_pairs(self) -> int:
        return self.sides.n if self.sides is not None else self.pairs_n

    @property
    def width(self) -> float:
        """The band's width `upper - lower` (clearly > 0 for a real direction, about 0 for random-V)."""
        return self.band.width


def build_detector(
    model: torch.nn.Module, adapter, tokenizer, pairs: Sequence[Pair], recipe: DetectorRecipe
) -> Detector:
    """The detector of `pairs` on the current policy (the caller sets the adapter state), built as `recipe` says:
    one batched backward over the pairs' sides (`measure_pair_sides`), then `detector_from_sides`."""
    if not isinstance(recipe, DetectorRecipe):
        raise TypeError(f"build_detector needs a DetectorRecipe, got {type(recipe).__name__}")
    if recipe.signal == "activation":
        return _activation_detector(model, tokenizer, pairs, recipe)
    sides = measure_pair_sides(model, adapter, tokenizer, pairs, recipe)
    det = detector_from_sides(sides, recipe)
    det.direction.meta.update(
        {"n_pairs": len(pairs), "length_norm": str(recipe.length_norm), "temperature": recipe.temperature}
    )
    return det


def _activation_detector(model: torch.nn.Module, tokenizer, pairs: Sequence[Pair], recipe: DetectorRecipe) -> Detector:
    """`signal="activation"`: the pair sides' mean completion states at `layer`, their difference and midpoint,
    the band on the sides' scores, leave-one-pair-out separation (routing/activation.py)."""
    if not pairs:
        raise ValueError("empty pair set")
    layer = recipe.layer if recipe.layer is not None else default_layer(model)
    prompts = [p.prompt for p in pairs] * 2
    completions = [p.hack for p in pairs] + [p.clean for p in pairs]
    keep = None
    if recipe.pair_tokens == "differing":
        spans = [differing_spans(tokenizer, p.hack, p.clean) for p in pairs]
        keep = [h for h, _ in spans] + [c for _, c in spans]
    states = mean_completion_states(model, tokenizer, prompts, completions, layer, recipe.batch_size, keep)
    n = len(pairs)
    hs, cs = states[:n], states[n:]
    ad = activation_direction(hs, cs, layer)
    band = calibrate_band(activation_scores(hs, ad), activation_scores(cs, ad))
    band.loo_separation = activation_loo_separation(hs, cs, layer)
    return Detector(None, band, None, recipe, activation=ad, pairs_n=n)


def measure_pair_sides(
    model: torch.nn.Module, adapter, tokenizer, pairs: Sequence[Pair], recipe: DetectorRecipe
) -> PairSides:
    """The pairs' side gradients (and token masses for `granularity="token"`), from one batched backward over the
    2n sides, oriented for `recipe.kind` (module docstring)."""
    args = (model, adapter, tokenizer, pairs, recipe.norm, recipe.temperature, recipe.batch_size)
    differing = {"differing_only": recipe.pair_tokens == "differing"}
    swap = recipe.kind == "solve"  # the direction points towards the correct side, kept in the `clean` slot
    if recipe.granularity == "token":  # the per-token band also needs each side's token mass (same backward)
        hs, cs = pair_side_token_stats(*args, **differing)
        pos, neg = (cs, hs) if swap else (hs, cs)
        return PairSides(pos.grads, neg.grads, pos.mass, neg.mass)
    hack_g, clean_g = pair_side_grads(*args, **differing)
    pos_g, neg_g = (clean_g, hack_g) if swap else (hack_g, clean_g)
    return PairSides(pos_g, neg_g)


def detector_from_sides(sides: PairSides, recipe: DetectorRecipe) -> Detector:
    """The direction, its band and its leave-one-out separation from measured sides (module docstring, stage 2).
    Pure math: the recipe's measuring fields (length_norm, temperature, batch_size) are not read here."""
    if sides.granularity != recipe.granularity:
        raise ValueError(
            f"recipe granularity={recipe.granularity!r} but the sides were measured for a {sides.granularity!r} "
            "band (token masses are needed exactly for the per-token band)"
        )
    direction = direction_from_grads(sides.hack, sides.clean, recipe.k, recipe.kind)
    if recipe.direction == "random":
        # fixed Haar-random span (the same seed every refresh); per-module norms follow the real direction
        direction = random_direction_like(direction, seed=recipe.random_seed)
    if recipe.transform is not None:
        direction = recipe.transform(direction)
    band = calibrate_on_sides(direction, sides)
    if recipe.direction != "random":  # random-V is not oriented by the pairs: no out-of-sample gauge of it
        band.loo_separation = leave_one_out_separation(
            sides.hack, sides.clean, recipe.k, transform=recipe.transform,
            hack_mass=sides.hack_mass, clean_mass=sides.clean_mass,
        )  # fmt: skip
    return Detector(direction, band, sides, recipe)


def calibrate_on_sides(direction: Direction, sides: PairSides) -> Band:
    """The band of `direction` on measured sides: `[mean clean score, mean hack score]`, scores at the sides'
    granularity (`direction.side_scores`)."""
    scores = side_scores(direction, sides.hack, sides.clean, sides.hack_mass, sides.clean_mass)
    return calibrate_band(*scores, granularity=sides.granularity)


def leave_one_out_separation(
    hack_grads: Mapping[str, torch.Tensor],
    clean_grads: Mapping[str, torch.Tensor],
    k: int = 1,
    transform: Callable[[Direction], Direction] | None = None,
    hack_mass: torch.Tensor | None = None,
    clean_mass: torch.Tensor | None = None,
) -> float | None:
    """Fraction of pairs i that a direction and band calibrated *without* pair i still separate.

    Pair i is separated when, with `v_hat` and `[lower, upper]` recomputed from the other pairs, its clean side's
    cosine lies below the band's midpoint and its hack side's above it (so the gate routes the hack side more
    than half and the clean side less than half), and that band has positive width. None when fewer than
    k + 1 pairs (nothing left to calibrate on). A label-free gauge: it uses only the pair set.
    `transform` (optional) is applied to each fold's direction before its band, as the live direction was
    (e.g. solve-orthogonalisation, orthogonalize.py), so the gauge describes the direction actually in force.
    With the sides' token masses, the per-token band's version: scores are `token_scores` (`side_scores`).
    """
    n = next(iter(hack_grads.values())).shape[0]
    if n < k + 1 or n < 2:
        return None
    hits = 0
    for i in range(n):
        keep = [j for j in range(n) if j != i]
        h = {m: g[keep] for m, g in hack_grads.items()}
        c = {m: g[keep] for m, g in clean_grads.items()}
        try:
            d = direction_from_grads(h, c, k)
            if transform is not None:
                d = transform(d)
        except ValueError:
            continue  # degenerate without pair i: not separated
        token = hack_mass is not None and clean_mass is not None
        masses = (hack_mass[keep], clean_mass[keep]) if token else (None, None)
        band = calibrate_band(*side_scores(d, h, c, *masses))
        ch, cc = side_scores(
            d,
            {m: g[i : i + 1] for m, g in hack_grads.items()},
            {m: g[i : i + 1] for m, g in clean_grads.items()},
            *((hack_mass[i : i + 1], clean_mass[i : i + 1]) if token else (None, None)),
        )
        mid = 0.5 * (band.lower + band.upper)
        hits += int(band.width > 0 and float(cc) < mid < float(ch))
    return hits / n


def _is_int(x: object) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)
