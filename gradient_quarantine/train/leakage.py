"""Leakage: how much of a step's hack-ward gradient still reaches the main knob (issue 23), against a fixed probe.

The probe is a few hack/clean pairs on problems that neither the pair set nor training contains (the `eval` role's
problems with a loophole, hacked in the first warm-start form of their mode, which the pair set's templates are not:
substrate/hack_forms.py). Every `run.leakage_every` steps, on the current policy:

    u      = sum_i grad l(hack_i) - grad l(clean_i)      main-knob coordinates   the probe's hack-ward direction
    g_all  = the step's whole loss gradient on the main axes (kept + routed, what vanilla GRPO applies)
    g_main = what reached dS_main after routing (kept; for an arm that routes nothing, g_all)

    leak/leakage     = <g_main, u> / <g_all, u>            the share of the hack-ward part still trained into main
    leak/hackward    = cos(-g_all, u)                       is the step hack-ward at all (> 0), and how much

A descent step moves along -g, so `-<g_all, u> > 0` is a step towards the probe's hacks. By construction leakage is 1
for vanilla (nothing routed), about 1 - frout for a direction that routes mass regardless of content (random-V), and
below that when the gate routes the hack-ward rows: C3's mechanism. With `leak/hackward` near 0 the ratio is
unstable; read them together. Gradients, not Adam's normalised updates: the share of what drives the update.

The probe's hack/clean sides are known by construction and read only here, after routing, for the logs: nothing of
it reaches the router (tests/test_no_cheat.py).

    >>> probe = LeakageProbe.build(setup)          # None without eval problems that have a loophole
    >>> probe.metrics(model, adapter, tok, record.step_gradient)   # {"leak/leakage": ..., "leak/hackward": ...}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from gradient_quarantine.routing.pairs import Pair, sequence_logprob_grads

PROBE_PER_MODE = 2


@dataclass
class StepGradient:
    """One step's gradient on the main axes, per module: what reached dS_main (`main`) and the whole loss gradient
    before routing (`whole`), each (rank,)."""

    main: dict[str, torch.Tensor]
    whole: dict[str, torch.Tensor]


def step_gradient(adapter, routed: Sequence) -> StepGradient | None:
    """The step's `StepGradient` from the adapter's main `.grad` (after routing wrote it) and the step's routing
    (`RouteResult.kept + routed` on the main axes); None when no main gradient was written."""
    main = {n: m.dS_main.grad.detach().float().clone() for n, m in adapter.modules.items() if m.dS_main.grad is not None}
    if not main:
        return None
    if not routed:
        return StepGradient(main, main)
    names = routed[0].router.names
    total = sum((r.kept + r.routed) for r in routed)  # (M, R) capture coordinates
    whole = {n: adapter.modules[n].main_coords(total[i]).detach().float() for i, n in enumerate(names)}
    return StepGradient(main, whole)


@dataclass
class LeakageProbe:
    pairs: list[Pair]
    length_norm: str
    temperature: float

    @classmethod
    def build(cls, setup) -> LeakageProbe | None:
        """Up to PROBE_PER_MODE pairs per loophole mode on the run's eval problems, hacked in the mode's first
        warm-start form; None when none of them has a loophole."""
        from gradient_quarantine.routing.pairs import length_norm_for_loss_type
        from gradient_quarantine.substrate.hack_forms import forms_of, hack_form_completion
        from gradient_quarantine.substrate.pairs import build_pairs
        from gradient_quarantine.substrate.types import MODES, Mode

        cfg = setup.cfg
        loophole = [m for m in MODES if m != Mode.NO_LOOPHOLE]
        pool = [p for p in setup.eval_pool if setup.modes_of.get(p.id) in loophole]
        if not pool:
            return None
        rows = build_pairs(pool, setup.modes_of, hack_fn=lambda p, m: hack_form_completion(p, m, forms_of(m)[0]),
                           modes=loophole)  # fmt: skip
        kept, count = [], {}
        for row in rows:
            count[row["mode"]] = count.get(row["mode"], 0) + 1
            if count[row["mode"]] <= PROBE_PER_MODE:
                kept.append(Pair(prompt=row["prompt"], clean=row["clean"], hack=row["hack"]))
        norm = length_norm_for_loss_type(cfg.grpo.loss_type, cfg.grpo.max_completion_length)
        return cls(kept, norm, cfg.grpo.temperature)

    def direction(self, model, adapter, tokenizer) -> dict[str, torch.Tensor]:
        """u on the main axes, per module, on the current policy (one forward + backward over the probe's sides)."""
        n = len(self.pairs)
        grads = sequence_logprob_grads(
            model, adapter, tokenizer, [p.prompt for p in self.pairs] * 2,
            [p.hack for p in self.pairs] + [p.clean for p in self.pairs], self.length_norm,
            temperature=self.temperature, batch_size=2,
        )  # fmt: skip
        return {m: adapter.modules[m].main_coords(g[:n].sum(0) - g[n:].sum(0)) for m, g in grads.items()}

    def metrics(self, model, adapter, tokenizer, grad: StepGradient) -> dict[str, float | None]:
        """`leak/leakage` and `leak/hackward` of one step's gradient (module docstring)."""
        return leakage(grad, self.direction(model, adapter, tokenizer))


def leakage(grad: StepGradient, u: Mapping[str, torch.Tensor]) -> dict[str, float | None]:
    """The two gauges of `grad` against the probe direction `u` (module docstring), over the modules both have."""
    names = [n for n in grad.whole if n in u]
    dot_main = sum(float(grad.main[n].double() @ u[n].double()) for n in names if n in grad.main)
    dot_all = sum(float(grad.whole[n].double() @ u[n].double()) for n in names)
    n_all = sum(float(grad.whole[n].double().pow(2).sum()) for n in names) ** 0.5
    n_u = sum(float(u[n].double().pow(2).sum()) for n in names) ** 0.5
    return {
        "leak/leakage": dot_main / dot_all if dot_all != 0.0 else None,
        "leak/hackward": -dot_all / (n_all * n_u) if n_all > 0 and n_u > 0 else None,
    }
