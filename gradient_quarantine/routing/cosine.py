"""The cosine the gate reads, `cos(G, v_hat) = <G, v_hat> / (||G|| ||v_hat||)`, written once.

Three places score a gradient against the gate direction: the router (each rollout's or token's update
direction, live, over a packed (B, M, R) tensor and a unit `v_hat`), the band's calibration on the pair set
(each side's gradient, `{module: (n, R)}`, `direction.side_cosines`) and the per-token statistics of a pair set
(`pairs.sequence_token_stats`, position by position). Each forms `<G, v_hat>` and `||G||` in the layout it has;
all of them divide here, so they agree on what a cosine is, over which coordinates (every module's, concatenated)
and what a zero gradient gets (cosine 0: it has no direction).

    >>> dot, sq = dot_and_sqnorm(cap.per_rollout, v_hat)          # (B,), (B,) summed over modules
    >>> cos = cosine_of(dot, sq.sqrt(), direction_norm(v_hat))    # (B,)
    >>> cos = cosine(cap.per_rollout, v_hat)                      # the same, in one call
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

# Denominators are clamped here, so an item with zero gradient (a zero-advantage rollout, a padding token) gets
# cosine 0 instead of NaN.
EPS = 1e-12


def cosine_of(dot: Tensor, norm: Tensor, v_norm: Tensor | float | None = None) -> Tensor:
    """`dot / (norm * v_norm)`, elementwise, the denominator clamped at `EPS` (zero gradient: cosine 0).

    `dot`: `<G, v_hat>`, `norm`: `||G||` (same shape, any), `v_norm`: `||v_hat||` (None: `v_hat` is unit).
    """
    den = norm if v_norm is None else norm * v_norm
    return dot / den.clamp(min=EPS)


def direction_norm(v_hat: Mapping[str, Tensor]) -> Tensor:
    """`||v_hat||` over the concatenation of its modules, a float32 0-d tensor."""
    return torch.sqrt(sum((v.float() ** 2).sum() for v in v_hat.values()))


def dot_and_sqnorm(grads: Mapping[str, Tensor], v_hat: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
    """`(<G, v_hat>, ||G||^2)` summed over modules, each (...), float32. `grads[m]`: (..., R) for every module of
    `v_hat`; a missing or extra module is a KeyError (a cosine over a subset would silently change its meaning)."""
    if set(grads) != set(v_hat):
        missing, extra = set(v_hat) - set(grads), set(grads) - set(v_hat)
        raise KeyError(
            f"gradient and direction modules differ: missing {sorted(missing)[:3]}, extra {sorted(extra)[:3]}"
        )
    dot = sq = None
    for m, v in v_hat.items():
        g = grads[m].float()  # (..., R)
        d_m = g @ v.to(g.device, torch.float32)  # (...)
        s_m = (g * g).sum(-1)  # (...)
        dot = d_m if dot is None else dot + d_m
        sq = s_m if sq is None else sq + s_m
    return dot, sq


def cosine(grads: Mapping[str, Tensor], v_hat: Mapping[str, Tensor]) -> Tensor:
    """`cos(G, v_hat)` over the concatenation of the modules of `v_hat`: `grads[m]` (..., R) -> (...)."""
    dot, sq = dot_and_sqnorm(grads, v_hat)
    return cosine_of(dot, sq.sqrt(), direction_norm(v_hat))
