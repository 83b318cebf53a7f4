"""AdamW for a `shared` knob that keeps what it is routed: one second moment for both knobs, a first moment each.

With `adapter.knob=shared` the two knobs are scales on the same singular axes (delta = dS_main + dS_knob), and the
router hands them `g_main = sum_b (1 - f_b) G_b` and `g_knob = sum_b f_b G_b`. Two independent AdamW instances
normalise each gradient on its own, and Adam is invariant to a coordinate's scale: a coordinate whose gradient is
90 % routed moves the main knob as far as the knob, so deleting the knob at deploy removes about half of what was
learned whatever the gate said (the "magnitude-split tie", docs/design.md §9). `disjoint` avoids the tie by giving
the knob axes of its own, but then the routed gradient on the main axes has nowhere to go and is dropped (93 % of it
in the demo study: `routing/dropped_frac`).

`SplitAdamW` keeps the update itself split in proportion to the gradients. Per coordinate, with one step count t:

    m_main <- b1 m_main + (1 - b1) g_main          m_knob <- b1 m_knob + (1 - b1) g_knob      (first moments: own)
    v      <- b2 v + (1 - b2) (g_main + g_knob)^2                                           (second moment: shared)
    dS_main <- dS_main (1 - lr wd_main) - lr m_main_hat / (sqrt(v_hat) + eps)
    dS_knob <- dS_knob (1 - lr wd_knob) - lr m_knob_hat / (sqrt(v_hat) + eps)

so the two updates add up to exactly the AdamW update of the summed gradient (what vanilla GRPO takes, weight decay
aside), and the knob holds exactly the routed share of it: its capture is 1, and deleting it removes what was routed.
The first moments stay apart, so last step's routed gradient never re-enters the main knob through momentum; the
shared scale divides a small unrouted residual by the whole gradient's magnitude rather than blowing it up to a full
step, as a separate second moment would. Both knobs need the same learning rate (the config checks it).

    >>> opt = SplitAdamW(adapter.main_parameters(), adapter.knob_parameters(), lr=0.3)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class SplitAdamW(torch.optim.Optimizer):
    """Two parameter groups, `main` and `knob`, of equally shaped tensors paired in order (module docstring)."""

    def __init__(
        self,
        main: Sequence[torch.nn.Parameter],
        knob: Sequence[torch.nn.Parameter],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        weight_decay_knob: float = 0.0,
    ):
        main, knob = list(main), list(knob)
        if len(main) != len(knob) or any(a.shape != b.shape for a, b in zip(main, knob, strict=True)):
            raise ValueError("SplitAdamW pairs each main tensor with an equally shaped knob tensor (adapter.knob=shared)")
        if {id(p) for p in main} & {id(p) for p in knob}:
            raise ValueError("main and knob parameters overlap; the knobs must be distinct tensors")
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": 0.0}
        super().__init__([{"params": main, "weight_decay": weight_decay, "name": "main"},
                          {"params": knob, "weight_decay": weight_decay_knob, "name": "knob"}], defaults)  # fmt: skip

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        gm, gk = self.param_groups
        if gm["lr"] != gk["lr"] or gm["betas"] != gk["betas"] or gm["eps"] != gk["eps"]:
            raise ValueError("SplitAdamW: both groups need the same lr, betas and eps (their updates must add up)")
        b1, b2 = gm["betas"]
        for pm, pk in zip(gm["params"], gk["params"], strict=True):
            if pm.grad is None and pk.grad is None:
                continue
            g_main = pm.grad if pm.grad is not None else torch.zeros_like(pm)
            g_knob = pk.grad if pk.grad is not None else torch.zeros_like(pk)
            sm, sk = self.state[pm], self.state[pk]
            if not sm:
                sm["step"] = torch.zeros((), dtype=torch.float32)
                sm["exp_avg"] = torch.zeros_like(pm, memory_format=torch.preserve_format)
                sm["exp_avg_sq"] = torch.zeros_like(pm, memory_format=torch.preserve_format)  # shared with pk
                sk["exp_avg"] = torch.zeros_like(pk, memory_format=torch.preserve_format)
            sm["step"] += 1
            t = float(sm["step"])
            sm["exp_avg"].lerp_(g_main, 1 - b1)
            sk["exp_avg"].lerp_(g_knob, 1 - b1)
            g = g_main + g_knob
            sm["exp_avg_sq"].mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (sm["exp_avg_sq"] / (1 - b2**t)).sqrt_().add_(gm["eps"])
            step_size = gm["lr"] / (1 - b1**t)
            for p, st, group in ((pm, sm, gm), (pk, sk, gk)):
                if group["weight_decay"]:
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                p.addcdiv_(st["exp_avg"], denom, value=-step_size)
        return loss


def clip_split_(main: Sequence[torch.nn.Parameter], knob: Sequence[torch.nn.Parameter], max_norm: float) -> float:
    """Clip both knobs' gradients by one factor, from the norm of their sum (the update SplitAdamW takes), so the
    split between them is kept. Returns the summed gradient's norm before clipping."""
    sums = [(a.grad if a.grad is not None else 0) + (b.grad if b.grad is not None else 0)
            for a, b in zip(main, knob, strict=True) if a.grad is not None or b.grad is not None]  # fmt: skip
    if not sums:
        return 0.0
    total = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(s) for s in sums])))
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for p in [*main, *knob]:
            if p.grad is not None:
                p.grad.mul_(scale)
    return total
