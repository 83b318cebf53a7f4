"""route2b and erase: the interventions that route the gradient (docs/design.md §5; docs/architecture.md, the math).

route2b changes one thing in a GRPO step, how the adapter's gradient is assembled. TRL's forward + backward of
each micro-batch runs inside `GradCapture` (per-rollout or per-token gradients `G_b` in adapter coordinates) and
`Router.intercept()` (autograd's own adapter gradient is dropped); the router then gates each item against v_grad
and writes

    dS_main.grad += main_coords(sum_b (1 - f_b) G_b)        dS_knob.grad += knob_coords(sum_b f_b G_b)

accumulating over micro-batches as autograd would. The router reads gradients and the pair set only (no reward,
label or mode: the no-cheat invariant). The knob is deleted at deployment. Its controls are the same class: a
random or placebo direction (`routing.direction`), frout-matched to a constant or to a partner run step by step
(`frout_schedule`).

erase is route2b whose routed part is dropped instead of kept: the knob gets no gradient.

    >>> iv = Route2b(Router(adapter, direction, band), per_token=False, extract=setup.extract_direction,
    ...              refresh_every=6, steps=24)
    >>> loss, routed = iv.backward(step, lambda: trl_training_step(...))    # inside GQGRPOTrainer.training_step
    >>> iv.finish_gradients(adapter, [routed, ...])                        # routing/* gauges of the step
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import torch

from gradient_quarantine.train.intervention import DirectionIntervention, Metrics

if TYPE_CHECKING:
    from gradient_quarantine.routing.band import Band
    from gradient_quarantine.routing.direction import Direction
    from gradient_quarantine.routing.router import Router, RouteResult


class Route2b(DirectionIntervention):
    """Gradient routing through the v_grad gate into a quarantine knob (module docstring)."""

    name = "route2b"
    trains_knob = True

    def __init__(
        self,
        router: Router,
        per_token: bool = False,
        frout_schedule: Mapping[int, tuple[float, float | None]] | None = None,
        extract: Callable[[], tuple[Direction, Band]] | None = None,
        refresh_every: int = 0,
        steps: int = 0,
        carry: bool = False,
        cumulative: tuple[float, float] = (0.0, 0.0),
    ):
        super().__init__(extract, refresh_every, steps)
        self.router = router
        self.per_token = per_token  # a per-token gate needs a per-token capture
        # a matched control: {step: (frout target, ramp width relative to the live cosine spread)}
        self.frout_schedule = frout_schedule
        # cumulative matching (routing.frout_carry): what the schedule asked for and what was routed, summed over
        # the steps so far; the difference is added to the next step's target (restored from metrics on resume)
        self.carry = carry
        self.cum_scheduled, self.cum_routed = cumulative
        self._step = 0

    @property
    def direction(self) -> Direction:
        return self.router.direction

    @property
    def band(self) -> Band:
        return self.router.band

    def set_direction(self, direction: Direction, band: Band, optimizer=None) -> None:
        # a vgrad_span knob's basis follows the direction; its Adam moments are re-projected with it
        self.router.set_direction(direction, band, reproject_knob=True, optimizer=optimizer)

    def backward(self, step: int, run_backward: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, RouteResult]:
        from gradient_quarantine.routing.capture import GradCapture

        if self.frout_schedule is not None:  # a matched control follows its partner step by step
            self.router.frout_target, self.router.ramp_rel_width = self.matched_target(step)
            self._step = step
        with GradCapture(self.router.adapter, per_token=self.per_token) as cap, self.router.intercept():
            loss = run_backward()  # TRL's forward + backward; autograd's own dS gradients are dropped
            result = self.router.route(cap)  # f_b per item; main = sum (1 - f_b) G_b, knob = sum f_b G_b
        self.router.apply(result)  # the router is the only writer of dS_main.grad / dS_knob.grad
        return loss, result

    def finish_gradients(self, adapter, routed: Sequence[RouteResult]) -> Metrics:
        """routing/frout, the band, the live cosines' percentiles, the gate's spread, resid_cos, dropped_frac and
        the two knobs' gradient norms, over the step's micro-batches (`Router.stats`); for a matched control the
        scheduled target and the cumulative sums (`routing/frout_scheduled`, `routing/frout_cum_scheduled`,
        `routing/frout_cum`)."""
        m = self.router.stats(routed)
        if self.frout_schedule is not None and self._step in self.frout_schedule:
            m.update(self.account(self._step, m.get("routing/frout")))
        return m

    def matched_target(self, step: int) -> tuple[float, float | None]:
        """A matched control's (frout target, ramp width) at `step`: the schedule's, plus with `carry` what the
        steps so far fell short of (a step whose groups had no reward variance routes nothing), within [0, 1]."""
        target, ramp = self.frout_schedule[step]
        if self.carry:
            target = min(max(target + self.cum_scheduled - self.cum_routed, 0.0), 1.0)
        return target, ramp

    def account(self, step: int, frout: float | None) -> Metrics:
        """Add step `step`'s scheduled and realised frout (None / NaN: nothing routed) to the sums; their gauges."""
        self.cum_scheduled += self.frout_schedule[step][0]
        self.cum_routed += float(frout) if frout is not None and math.isfinite(frout) else 0.0
        return {"routing/frout_scheduled": self.frout_schedule[step][0],
                "routing/frout_cum_scheduled": self.cum_scheduled, "routing/frout_cum": self.cum_routed}  # fmt: skip


class Erase(Route2b):
    """route2b whose routed part is dropped: `dS_main` gets `sum_b (1 - f_b) G_b`, the knob nothing."""

    name = "erase"

    def finish_gradients(self, adapter, routed: Sequence[RouteResult]) -> Metrics:
        m = super().finish_gradients(adapter, routed)
        for p in adapter.knob_parameters():
            p.grad = None
        m["routing/dropped_frac"] = 1.0 if m["routing/frout"] > 0 else float("nan")
        return m
