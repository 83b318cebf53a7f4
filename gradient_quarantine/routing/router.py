"""The router: split each step's adapter gradient into the main knob's and the quarantine knob's.

Per rollout b (docs/architecture.md "Gate" and "Routing", docs/design.md §5), with `G_b = dL_b/dθ` from
`GradCapture` in capture coordinates and the update direction `u_b = -G_b`:

    cos_b      = <u_b, v_hat> / ||u_b||                       over all modules' coordinates
    f_b        = clamp((cos_b - lower) / (upper - lower), 0, 1)   (or frout-matched, for controls)
    grad_main  = main_coords(sum_b (1 - f_b) G_b)             -> dS_main.grad
    grad_knob  = knob_coords(sum_b f_b G_b)                   -> dS_knob.grad
    frout      = sum_b f_b ||G_b|| / sum_b ||G_b||

`main_coords` / `knob_coords` are the adapter's (`SVDLinear`): for `shared` both are the same R axes, so
`grad_main + grad_knob = sum_b G_b` exactly; for `disjoint` the main knob reads axes [:rank] and the knob its
own axes [rank:]; for `vgrad_span` the knob reads `knob_basis @ G` (its k coordinates inside span(v_grad)).
Per token (`granularity="token"`), the same with `f_bt` from `u_bt = -G_bt`, `G_bt = a_bt * b_bt`.

The router must be the only writer of the adapter's `.grad`: autograd would otherwise add the unrouted total.
Wrap the backward in `router.intercept()` (leaf hooks drop autograd's own contribution to dS_main / dS_knob),
then `apply(route(cap))` per micro-batch; `.grad` accumulates across micro-batches as usual.

    >>> router = Router(adapter, direction, band, granularity="rollout")
    >>> opt_main, opt_knob = make_optimizers(adapter, lr_main=1e-3, lr_knob=1e-3)
    >>> with GradCapture(adapter) as cap, router.intercept():
    ...     for mb in micro_batches:
    ...         cap.reset()
    ...         grpo_loss(model, mb).backward()
    ...         result = router.route(cap)          # RouteResult(main, knob, stats)
    ...         router.apply(result)
    ...         results.append(result)
    >>> metrics.update(router.stats(results))        # the step's label-free gauges
    >>> opt_main.step(); opt_knob.step()

Separate optimiser state (`make_optimizers`): see its docstring.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor

from gradient_quarantine.routing.band import (
    GATE_ATOL,
    Band,
    band_stats,
    frout,
    frout_matched_gate,
    gate,
    ramp_matched_gate,
)
from gradient_quarantine.routing.capture import GradCapture
from gradient_quarantine.routing.cosine import cosine_of
from gradient_quarantine.routing.direction import Direction

GRANULARITIES = ("rollout", "token")
_EPS = 1e-12


@dataclass
class RouteResult:
    """One micro-batch's routing.

    `main[m]`: (rank,) gradient for `dS_main`; `knob[m]`: (knob_size,) gradient for `dS_knob`.
    `stats`: label-free gauges of this micro-batch (docs/run_directory.md names), computed on first read: a
    trainer merges a whole step's micro-batches with `Router.stats` instead, and per micro-batch they would
    cost ~50 small kernels and a host sync for nothing.
    The rest is kept so `Router.stats` can merge several micro-batches into one step's gauges:
    `cos`, `norms`, `f`, `valid` are flat over items (rollouts or tokens); `kept`, `routed` are (M, R) in capture
    coordinates, `sum (1 - f) G` and `sum f G`. `per_row(B)` summarises the items per row (the trainer logs it).
    """

    main: dict[str, Tensor]
    knob: dict[str, Tensor]
    cos: Tensor | None = None
    norms: Tensor | None = None
    f: Tensor | None = None
    valid: Tensor | None = None
    kept: Tensor | None = None
    routed: Tensor | None = None
    sign: float = -1.0
    router: Router | None = field(default=None, repr=False)  # computes `stats` when first read
    _stats: dict[str, float] | None = field(default=None, repr=False)

    @property
    def stats(self) -> dict[str, float]:
        if self._stats is None:
            self._stats = self.router.stats([self]) if self.router is not None else {}
        return self._stats

    def per_row(self, n_rows: int) -> tuple[Tensor, Tensor, Tensor]:
        """`(score, gate, valid)`, each (n_rows,), one entry per row (rollout) of the micro-batch: what the router
        read and did, summarised per row (a reading of this result; nothing is recomputed or re-routed).

        Per-rollout gate: the row's `cos(u_b, v_hat)`, its `f_b` and `||G_b|| > 0`. Per-token gate: the row's
        token-mass-weighted mean token cosine `sum_t ||G_bt|| cos_bt / sum_t ||G_bt||` (the score the token band is
        calibrated on), its mass-weighted routed share `sum_t f_bt ||G_bt|| / sum_t ||G_bt||` (its frout, as the
        band's `pair_gate_*` on a pair side) and whether any of its tokens has gradient. A row without gradient
        (zero advantage) has no direction: `valid` False, its score and gate mean nothing."""
        if self.cos is None or self.f is None or self.norms is None or self.valid is None:
            raise ValueError("this RouteResult keeps no per-item cosines (Router.route fills them)")
        if self.cos.numel() == n_rows:  # one item per row: the per-rollout gate
            return self.cos, self.f, self.valid
        if n_rows <= 0 or self.cos.numel() % n_rows:
            raise ValueError(f"{self.cos.numel()} items do not split into {n_rows} rows")
        w = self.norms.view(n_rows, -1).float()  # (B, T) ||G_bt||
        mass = w.sum(1)  # (B,)
        score = (self.cos.view(n_rows, -1).float() * w).sum(1) / mass.clamp(min=_EPS)
        share = (self.f.view(n_rows, -1).float() * w).sum(1) / mass.clamp(min=_EPS)
        return score, share, self.valid.view(n_rows, -1).any(1)


class Router:
    """Route captured gradients into main and knob gradients (see module docstring).

    Args:
        adapter: the attached `SVDAdapter`.
        direction: `v_grad` (or a control) in capture coordinates, one block per adapter module.
        band: the calibrated band.
        granularity: "rollout" (one gate per rollout) or "token" (one per position; needs
            `GradCapture(..., per_token=True)`).
        frout_target: if set, ignore the band's gate and route exactly this fraction of each micro-batch's
            gradient mass, most hack-ward items first (random-V / placebo controls, frout-matched). Settable per
            step (`router.frout_target = x`) to follow a real run's logged `routing/frout` step by step.
        ramp_rel_width: with `frout_target`, the shape of the matched gate. None: a hard cut (items fully routed
            in cosine order until the target is met). A number: the band's ramp,
            `f = clamp((cos - lower) / width, 0, 1)`, `width = ramp_rel_width * (p90 - p10 of the micro-batch's
            live cosines)`, `lower` placed to hit the target (`band.ramp_matched_gate`). A control matched to
            route2b uses route2b's `band_width / (cos_p90 - cos_p10)` of the same step, so its ramp spans the
            same share of its own cosine spread as route2b's did. Settable per step like `frout_target`.
        check: assert the routing invariants every call (cheap: O(M x R)).
    """

    def __init__(
        self,
        adapter,
        direction: Direction,
        band: Band,
        granularity: str = "rollout",
        frout_target: float | None = None,
        check: bool = True,
        ramp_rel_width: float | None = None,
    ):
        if granularity not in GRANULARITIES:
            raise ValueError(f"granularity={granularity!r}: one of {GRANULARITIES}")
        if frout_target is not None and not 0.0 <= frout_target <= 1.0:
            raise ValueError(f"frout_target={frout_target}: a fraction of gradient mass, in [0, 1]")
        self.adapter = adapter
        self.granularity = granularity
        self.frout_target = frout_target
        self.ramp_rel_width = ramp_rel_width
        self.check = check
        self.names = list(adapter.modules)
        Rs = {m.R for m in adapter.modules.values()}
        if len(Rs) != 1:  # AdapterConfig gives every module the same R; the packed (M, R) layout relies on it
            raise ValueError(f"modules have different capture ranks {sorted(Rs)}")
        self.R = Rs.pop()
        first = adapter.modules[self.names[0]]
        self.rank, self.relation = first.rank, first.knob_relation
        self.direction: Direction
        self.band: Band
        self.set_direction(direction, band, reproject_knob=False)

    # ---- direction -------------------------------------------------------------------------------------------

    def set_direction(
        self, direction: Direction, band: Band, reproject_knob: bool = True, optimizer: torch.optim.Optimizer | None = None
    ) -> None:
        """Install a (refreshed) direction and band. For `vgrad_span` the knob's basis becomes the direction's
        basis; `reproject_knob` keeps the knob's current effect as far as the new span allows, and re-projects
        the knob's Adam moments in `optimizer` with it (`SVDLinear.set_knob_basis`)."""
        if set(direction.v_hat) != set(self.names):
            missing, extra = set(self.names) - set(direction.v_hat), set(direction.v_hat) - set(self.names)
            raise KeyError(
                f"direction modules differ from the adapter's: missing {sorted(missing)[:3]}, extra {sorted(extra)[:3]}"
            )
        for m, v in direction.v_hat.items():
            if v.shape != (self.R,):
                raise ValueError(
                    f"direction block {m} has shape {tuple(v.shape)}, capture coordinates have R={self.R}"
                )
        if self.relation == "vgrad_span":
            want = tuple(self.adapter.modules[self.names[0]].knob_basis.shape)  # (k, rank)
            if direction.basis[self.names[0]].shape != want:
                raise ValueError(
                    f"vgrad_span knob needs a (k={want[0]}, rank={want[1]}) basis per module but the direction has "
                    f"{tuple(direction.basis[self.names[0]].shape)}: extract it with k = knob_rank"
                )
            self.adapter.set_knob_basis(direction.basis, reproject=reproject_knob, optimizer=optimizer)
        dev = self.adapter.modules[self.names[0]].U.device
        self.direction = direction.to(dev)
        self.band = band
        self._v = torch.stack([self.direction.v_hat[m].float() for m in self.names])  # (M, R)
        # unit over all modules (a v_grad already is; a hand-made direction need not be)
        self._v = self._v / self._v.norm().clamp(min=_EPS)

    # ---- routing --------------------------------------------------------------------------------------------

    def _gate(self, cos: Tensor, norms: Tensor) -> Tensor:
        if self.frout_target is None:
            return gate(cos, self.band)
        rel = self.ramp_rel_width
        live = cos[norms > 0].float()
        if rel is None or not math.isfinite(rel) or rel <= 0 or live.numel() < 2:
            return frout_matched_gate(cos, norms, self.frout_target)
        p10, p90 = torch.quantile(live, torch.tensor([0.1, 0.9], device=live.device)).tolist()
        return ramp_matched_gate(cos, norms, self.frout_target, rel * (p90 - p10))

    def route(self, cap: GradCapture, sign: float = -1.0) -> RouteResult:
        """Split the captured micro-batch gradient. `sign`: the gate scores `u = sign * G` (-1: G is the loss
        gradient, u the update direction; +1 if the captured loss is a log-likelihood to ascend)."""
        if self.granularity == "rollout":
            G = torch.stack([cap.per_rollout[m] for m in self.names], 1).float()  # (B, M, R)
            dot = sign * torch.einsum("bmr,mr->b", G, self._v)  # (B,) <u_b, v_hat>
            norms = G.flatten(1).norm(dim=1)  # (B,) ||G_b||
            cos = cosine_of(dot, norms)  # (B,) v_hat is unit
            f = self._gate(cos, norms)  # (B,)
            routed = torch.einsum("b,bmr->mr", f, G)  # (M, R) sum_b f_b G_b
            kept = torch.einsum("b,bmr->mr", 1.0 - f, G)  # (M, R) sum_b (1 - f_b) G_b
            total = G.sum(0)  # (M, R)
        else:
            cos, norms, f, kept, routed, total = self._route_tokens(cap, sign)
        valid = norms > 0  # zero-gradient items (A_b = 0, padding) carry no mass and no direction
        if self.check:
            self._check(f, kept, routed, total)
        main = self._main_coords(kept)
        knob = self._knob_coords(routed)
        result = RouteResult(
            main=dict(zip(self.names, main.unbind(0), strict=True)),  # one op for all M views, not M indexings
            knob=dict(zip(self.names, knob.unbind(0), strict=True)),
            cos=cos.flatten(), norms=norms.flatten(), f=f.flatten(), valid=valid.flatten(), kept=kept, routed=routed,
            sign=sign, router=self,
        )  # fmt: skip
        return result

    def _route_tokens(self, cap: GradCapture, sign: float) -> tuple[Tensor, ...]:
        """Per-token gate. Pass 1 forms `G_bt = a_bt * b_bt` one module at a time and sums `<u_bt, v_hat>` and
        `||G_bt||^2` over modules; pass 2 routes each module's `G_bt` with the resulting `f_bt`. The `G_bt` of
        pass 1 are kept for pass 2 (one more B x T x R float32 per module while routing) rather than asking the
        capture for its factors twice."""
        if not cap.per_token_enabled:
            raise RuntimeError("granularity='token' needs GradCapture(adapter, per_token=True)")
        dot = sq = None
        Gts: list[Tensor] = []
        for i, m in enumerate(self.names):
            a, b = cap.per_token(m)  # (B, T, R) each
            Gt = a.float() * b.float()  # (B, T, R) G_bt
            d = Gt @ self._v[i]  # (B, T)
            s = (Gt * Gt).sum(-1)  # (B, T)
            dot = d if dot is None else dot + d
            sq = s if sq is None else sq + s
            Gts.append(Gt)
        dot = sign * dot
        norms = sq.sqrt()  # (B, T) ||G_bt||
        cos = cosine_of(dot, norms)  # (B, T) v_hat is unit
        f = self._gate(cos, norms)  # (B, T)
        weights = torch.stack([f, 1.0 - f, torch.ones_like(f)])  # (3, B, T): routed, kept, total
        split = torch.stack([torch.einsum("kbt,btr->kr", weights, Gt) for Gt in Gts], 1)  # (3, M, R)
        del Gts
        return cos, norms, f, split[1], split[0], split[2]

    def _check(self, f: Tensor, kept: Tensor, routed: Tensor, total: Tensor) -> None:
        # The two invariants the method relies on (STYLE 5): f in [0, 1]; kept + routed = total (capture coords,
        # i.e. main + knob = total gradient when the knob shares the main axes). One host sync for both.
        err = (kept + routed - total).abs().max() / total.abs().max().clamp(min=_EPS)
        lo, hi, err = torch.stack([f.min(), f.max(), err]).tolist() if f.numel() else (0.0, 0.0, float(err))
        if not (lo >= 0.0 and hi <= 1.0):
            raise AssertionError(f"gate outside [0, 1]: min {lo}, max {hi}")
        if not err <= 1e-4:
            raise AssertionError(
                f"routing lost gradient: max |kept + routed - total| / max |total| = {err:.2e}"
            )

    def _main_coords(self, X: Tensor) -> Tensor:  # (M, R) -> (M, rank)
        return X[:, : self.rank]

    def _knob_coords(self, X: Tensor) -> Tensor:  # (M, R) -> (M, knob_size)
        if self.relation == "shared":
            return X
        if self.relation == "disjoint":
            return X[:, self.rank :]
        bases = torch.stack([self.adapter.modules[m].knob_basis for m in self.names]).float()  # (M, k, rank)
        return torch.einsum("mkr,mr->mk", bases, X)  # knob_basis @ G per module

    # ---- writing gradients ----------------------------------------------------------------------------------

    @contextmanager
    def intercept(self) -> Iterator[None]:
        """While active, autograd's own gradient for dS_main / dS_knob is dropped (leaf hooks return zeros), so
        `apply()` is the only writer of their `.grad`. Wrap the backward passes whose gradients are routed."""
        handles = [p.register_hook(torch.zeros_like) for p in self.adapter.parameters()]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    @torch.no_grad()
    def apply(self, result: RouteResult) -> None:
        """Accumulate `result.main` into `dS_main.grad` and `result.knob` into `dS_knob.grad`."""
        params, grads = [], []
        for m in self.names:
            mod = self.adapter.modules[m]
            params += [mod.dS_main, mod.dS_knob]
            grads += [result.main[m].to(mod.dS_main.dtype), result.knob[m].to(mod.dS_knob.dtype)]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        torch._foreach_add_([p.grad for p in params], grads)  # one fused launch instead of 2M small adds

    # ---- gauges ---------------------------------------------------------------------------------------------

    def stats(self, results: Sequence[RouteResult]) -> dict[str, float]:
        """Label-free gauges (docs/design.md §5) over one or several micro-batches (one optimiser step).

        `routing/frout` (mass-weighted), the band in force, `routing/cos_p10/p50/p90` of the live cosines,
        `routing/gate_at_0/1/between`, `routing/resid_cos` = cos(u of the main knob's gradient after routing,
        v_grad) in capture coordinates (about 0 if nothing hack-ward leaks into the deployed knob),
        `routing/dropped_frac` = 1 - ||knob_coords(sum f G)||^2 / ||sum f G||^2 (the routed share that reaches
        neither knob), and `grad/norm_main`, `grad/norm_knob`. Percentiles and gate fractions count only items with non-zero
        gradient (a zero-advantage rollout or a padding token has no direction).
        """
        cos = torch.cat([r.cos for r in results])
        norms = torch.cat([r.norms for r in results])
        f = torch.cat([r.f for r in results])
        w = torch.cat([r.valid for r in results]).float()
        kept = sum(r.kept for r in results)  # (M, R)
        routed = sum(r.routed for r in results)
        # every gauge as a 0-d tensor first, then one host sync (this runs every step on the GPU)
        routed_frac = frout(f, norms)  # 0-d, synced below with the rest
        qs = torch.tensor([0.1, 0.5, 0.9], device=cos.device)
        q = torch.nanquantile(torch.where(w > 0, cos.float(), torch.nan), qs)  # nan if nothing is live
        n_live = w.sum()
        at0 = ((f <= GATE_ATOL).float() * w).sum()
        at1 = ((f >= 1 - GATE_ATOL).float() * w).sum()
        frac = torch.stack([at0, at1, n_live - at0 - at1]) / n_live.clamp(min=1)
        # residual: the main knob's update direction after routing, embedded in capture coordinates (axes the
        # main knob does not own, e.g. a disjoint knob's, are zero), against v_hat
        u_main = torch.zeros_like(kept)
        u_main[:, : self.rank] = results[0].sign * kept[:, : self.rank]
        resid = cosine_of((u_main * self._v).sum(), u_main.norm())
        # dropped: the share of the routed squared norm that reaches neither knob. The routed part leaves the
        # main knob by construction; the knob takes only its own coordinates of it (disjoint: its extra axes,
        # vgrad_span: the projection on span(v_grad)), so the rest is masked out (the gradient-routing design),
        # i.e. erased. 0 for shared (the knob has every axis); NaN when nothing was routed.
        knob_g = self._knob_coords(routed)
        routed_sq = (routed * routed).sum()
        dropped = torch.where(
            routed_sq > 0, (1.0 - (knob_g * knob_g).sum() / routed_sq.clamp(min=_EPS)).clamp(0.0, 1.0), torch.nan
        )
        vals = torch.cat([
            routed_frac[None], q, frac, resid[None], dropped[None], self._main_coords(kept).norm()[None],
            knob_g.norm()[None],
        ]).tolist()  # fmt: skip
        names = [
            "routing/frout", "routing/cos_p10", "routing/cos_p50", "routing/cos_p90", "routing/gate_at_0",
            "routing/gate_at_1", "routing/gate_between", "routing/resid_cos", "routing/dropped_frac",
            "grad/norm_main", "grad/norm_knob",
        ]  # fmt: skip
        out = {**band_stats(self.band), **dict(zip(names, vals, strict=True))}
        if self.frout_target is not None:  # a matched control: what it was asked to route (vs routing/frout)
            out["routing/frout_target"] = float(self.frout_target)
        return out


def make_optimizers(
    adapter,
    lr_main: float,
    lr_knob: float,
    weight_decay_knob: float = 0.0,
    weight_decay_main: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
) -> tuple[torch.optim.AdamW, torch.optim.AdamW]:
    """Two AdamW optimisers, one per knob, with nothing shared.

    Why separate state (docs/design.md §5): Adam's first moment is a running sum of past gradients and its second
    moment rescales each coordinate. If routed and unrouted gradients fed the same moments (one parameter, or
    one optimiser whose clipping / schedule couples the two), the momentum of last step's routed, hack-ward
    gradient would keep moving the *main* knob for many steps after the router took it out, and the shared
    per-coordinate scaling would amplify exactly the small residual the router left: routing would be undone
    by the optimiser. Here dS_main and dS_knob are distinct tensors with their own AdamW instances, so each
    knob's moments only ever see its own routed gradient; separate instances also let the knob have its own
    learning rate and weight decay (none by default: "no weight decay pulls the knob back to zero unless
    asked"), and let a trainer clip each knob's gradient norm separately (a global clip over both would let a
    large knob gradient shrink the main knob's step).
    """
    main, knob = list(adapter.main_parameters()), list(adapter.knob_parameters())
    if {id(p) for p in main} & {id(p) for p in knob}:
        raise ValueError("main and knob parameters overlap; the knobs must be distinct tensors")
    opt_main = torch.optim.AdamW(main, lr=lr_main, weight_decay=weight_decay_main, betas=betas)
    opt_knob = torch.optim.AdamW(knob, lr=lr_knob, weight_decay=weight_decay_knob, betas=betas)
    return opt_main, opt_knob
