"""Solve-orthogonalised `v_grad` (docs/design.md §7): remove from the hack direction its projection on a *solve
direction*, so that routing cannot take solving with it.

The solve direction is built exactly as `v_grad` is (`detector.build_detector` with `kind="solve"`), from
(correct, incorrect) completion pairs instead of (clean, hack) ones: per pair
`s_i = grad[l(correct_i) - l(incorrect_i)]`, per module the top-k right singular vectors `S_m` (k_s, R) of the
stacked `s_i`, oriented towards the correct side. Then, per module m, with `P_m = I - S_m^T S_m` (the
projector onto the orthogonal complement of span(S_m)):

    v_m'     = P_m v_hat_m                                   (R,)  v_grad's block minus its solve component
    basis_m' = orthonormal rows spanning P_m basis_m^T        (k, R) (QR), each oriented so <b, v_m'> >= 0
    v_hat'   = v' / ||v'||                                    unit over the concatenation of modules

`v_hat_m` lies in span(basis_m), so `v_m'` lies in span(basis_m'): the result is again a valid `Direction`
(its `basis` is what a `vgrad_span` knob spans). The band is calibrated on the orthogonalised direction
afterwards, and the leave-one-pair-out gauge orthogonalises each fold's direction the same way: the caller passes
`functools.partial(orthogonalize, solve=solve)` as the recipe's `transform` (`detector.DetectorRecipe`).

Like the rest of `routing/`, this sees `Pair`s and gradients only: which completion is correct is the pair's
side assignment, the same kind of supervision as the hack pair set (no rollout label is ever read).

    >>> solve = solve_direction(model, adapter, tok, solve_pairs, k=1, length_norm="sequence_mean")
    >>> v_orth = orthogonalize(v_grad, solve)        # per module: S_m @ v_orth.v_hat[m] == 0
    >>> v_orth.meta["solve_orth"]                    # {"removed": ||v - P v||^2, "cos_solve": cos(v_grad, v_solve), ...}
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from gradient_quarantine.routing.detector import DetectorRecipe, build_detector
from gradient_quarantine.routing.direction import Direction
from gradient_quarantine.routing.pairs import LengthNorm, Pair

_EPS = 1e-12
# A projected basis row shorter than this (its rows start at unit length) means v_grad's span lies (almost)
# inside the solve span in that module: nothing hack-ward would be left to route there.
_RANK_TOL = 1e-6


def solve_direction(
    model: torch.nn.Module,
    adapter,
    tokenizer,
    pairs: Sequence[Pair],
    k: int = 1,
    length_norm: str | LengthNorm = "sequence_mean",
    temperature: float = 1.0,
    batch_size: int | None = None,
) -> Direction:
    """The solve direction on the current policy, from solve pairs: `build_detector` with `kind="solve"`.

    `pairs[i] = Pair(prompt, clean=<correct completion>, hack=<incorrect completion>)`: the pair types are shared
    with the hack pair set, so here the `hack` slot holds the *incorrect* side. The direction points from the
    incorrect towards the correct side (`s_i = grad l(correct_i) - grad l(incorrect_i)`), with the same length
    normalisation and temperature as `v_grad`'s extraction (they must match the live loss, docs/design.md §9).
    The band calibrated with it is dropped: the band that gates is calibrated on the orthogonalised v_grad.
    """
    recipe = DetectorRecipe(
        k=k, length_norm=length_norm, temperature=temperature, batch_size=batch_size, kind="solve"
    )
    return build_detector(model, adapter, tokenizer, pairs, recipe).direction


def orthogonalize(direction: Direction, solve: Direction) -> Direction:
    """`direction` with, per module, its component in span(solve.basis[m]) removed (module docstring).

    Raises ValueError if in some module v_grad's span lies inside the solve span (nothing would be left), or if
    the two directions do not cover the same modules / coordinates.
    """
    if set(direction.v_hat) != set(solve.v_hat):
        raise KeyError("v_grad and the solve direction must cover the same modules")
    basis: dict[str, torch.Tensor] = {}
    proj: dict[str, torch.Tensor] = {}
    removed_sq = 0.0
    dot_solve = 0.0
    for m, v in direction.v_hat.items():
        S = solve.basis[m].detach().double().cpu()  # (k_s, R) orthonormal rows
        v64 = v.detach().double().cpu()  # (R,)
        B = direction.basis[m].detach().double().cpu()  # (k, R)
        if S.shape[1] != v64.shape[0]:
            raise ValueError(f"module {m}: solve direction has R={S.shape[1]}, v_grad has R={v64.shape[0]}")
        v_proj = v64 - S.T @ (S @ v64)  # (R,) P_m v_hat_m
        B_proj = B - (B @ S.T) @ S  # (k, R) P_m applied to each basis row
        Q, Rr = torch.linalg.qr(B_proj.T)  # (R, k), (k, k)
        if not bool((torch.diagonal(Rr).abs() > _RANK_TOL).all()):
            raise ValueError(
                f"module {m}: v_grad's span lies inside the solve direction's span, so solve-orthogonalising "
                "removes it entirely; use a smaller routing.k or more solve pairs"
            )
        Bn = Q.T  # (k, R) orthonormal, spans P_m basis_m^T
        sign = torch.where(Bn @ v_proj < 0, -1.0, 1.0).double()  # orient each row towards v_m'
        basis[m] = Bn * sign[:, None]
        proj[m] = v_proj
        removed_sq += float(((v64 - v_proj) ** 2).sum())
        dot_solve += float(v64 @ solve.v_hat[m].detach().double().cpu())
    total = torch.sqrt(sum((p**2).sum() for p in proj.values()))
    if not total > _EPS:
        raise ValueError(
            "v_grad lies entirely in the solve span: nothing is left after solve-orthogonalising"
        )
    v_norm_sq = sum(float((v.double() ** 2).sum()) for v in direction.v_hat.values())
    s_norm = sum(float((s.double() ** 2).sum()) for s in solve.v_hat.values()) ** 0.5
    devs = {m: v.device for m, v in direction.v_hat.items()}
    meta = {
        **direction.meta,
        "solve_orth": {
            "k_solve": solve.k,
            # fraction of v_grad's squared norm that lay in the solve spans (what was removed)
            "removed": removed_sq / max(v_norm_sq, _EPS),
            # signed cos(v_grad, v_solve) over all modules before removal: < 0 means hack-ward is un-solving
            "cos_solve": dot_solve / max(v_norm_sq**0.5 * s_norm, _EPS),
            "n_solve_pairs": solve.meta.get("n_pairs"),
        },
    }
    return Direction(
        {m: b.float().to(devs[m]) for m, b in basis.items()},
        {m: (p / total).float().to(devs[m]) for m, p in proj.items()},
        direction.kind,
        meta,
    )


def solve_component(direction: Direction, solve: Direction) -> dict[str, float]:
    """Per module, `||S_m v_hat_m|| / ||v_hat_m||`: how much of v_grad's block lies in the solve span (about 0
    after `orthogonalize`; a check and a gauge)."""
    out: dict[str, float] = {}
    for m, v in direction.v_hat.items():
        S = solve.basis[m].to(v.device, torch.float64)
        v64 = v.double()
        out[m] = float((S @ v64).norm() / v64.norm().clamp(min=_EPS))
    return out
