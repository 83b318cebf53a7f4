"""What an arm changes in a GRPO step: an intervention, a plug-in of a few narrow hooks.

Every arm of the study is TRL's GRPO plus one intervention. The trainer (train/trainer.py) calls its hooks at fixed
points of each step; the run (train/run_callbacks.py) calls the last three between steps:

| hook | called | changes what | overridden by |
|---|---|---|---|
| `prompt(problem, mode)` | building the training prompts (once, before training) | the prompt | inoculation |
| `reward(rollouts, step)` | after the grader scored the step's rows | the rewards TRL trains on | monitor_penalty, monitor_screen |
| `advantages(trainer, batch)` | after TRL's group advantages, before any loss | the advantages | adv_mod |
| `backward(step, run_backward)` | around TRL's forward + backward of each micro-batch | how the gradient is assembled | route2b, erase |
| `finish_gradients(adapter, routed)` | after the step's last micro-batch, before the clip and the optimiser step | the gradient; its gauges | route2b, erase |
| `refresh(step, optimizer)` | after each optimiser step (the intervention decides when) | v_grad and its band | route2b, erase, adv_mod |
| `metrics()` | when the step is logged | gauges of the intervention's state | route2b, erase, adv_mod (solve_orth) |
| `save(dir)` | with every checkpoint | what a resumed run must restore | route2b, erase, adv_mod |

Each hook's default leaves the step as plain GRPO makes it, so `Vanilla` overrides nothing. Reward, advantage and
metrics hooks return their gauges (`baseline/*`, `routing/*`) instead of keeping them: the trainer puts them in the
step's record (train/step.py). The classes: `Vanilla` (here), `Route2b` and `Erase` (train/route2b.py),
`MonitorPenalty`, `MonitorScreen`, `Inoculation` and `AdvMod` (train/baselines.py); `make_intervention`
(train/run_setup.py) picks one from the config. Adding an arm = one class + one line there + one arm YAML.

    >>> iv = Vanilla()
    >>> iv.prompt(problem, Mode.EXIT_CODE)                  # render_prompt(problem, mode)
    >>> iv.reward(rollouts, step=3)                         # ([v.reward for v in verdicts], {})
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from gradient_quarantine.routing.band import Band
    from gradient_quarantine.routing.direction import Direction
    from gradient_quarantine.routing.router import RouteResult
    from gradient_quarantine.substrate.types import Mode, Problem
    from gradient_quarantine.train.step import StepRollouts

Metrics = dict[str, Any]


class Intervention:
    """The hooks (module docstring), each the identity: plain GRPO. Subclasses override the ones they change."""

    name = "vanilla"
    trains_knob = False  # is the quarantine knob trained (else it is frozen: the same adapter, never updated)
    uses_direction = False  # does it need the pair set, v_grad and its band

    def prompt(self, problem: Problem, mode: Mode) -> list[dict]:
        """The chat prompt a training row is generated from (deploy evals always use `render_prompt`)."""
        from gradient_quarantine.substrate.prompts import render_prompt

        return render_prompt(problem, mode)

    def reward(self, rollouts: StepRollouts, step: int) -> tuple[list[float | None], Metrics]:
        """The rewards TRL trains on (None: an unscorable row, left out of its group), and gauges. Default: the
        flawed grader's reward of each row."""
        return [float(v.reward) for v in rollouts.verdicts], {}

    def advantages(self, trainer, batch: dict[str, Any]) -> Metrics:
        """Change `batch["advantages"]` (B,) in place, TRL's scored batch of a training step; return gauges."""
        return {}

    def backward(self, step: int, run_backward: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, RouteResult | None]:
        """Run TRL's forward + backward of one micro-batch (`run_backward()`, returns the loss) and say how its
        gradient was routed (None: autograd's gradient stands)."""
        return run_backward(), None

    def finish_gradients(self, adapter, routed: Sequence[RouteResult]) -> Metrics:
        """After the step's last micro-batch (under no_grad): change the adapter's `.grad` if needed, return the
        gradient gauges (`grad/norm_main`, `grad/norm_knob`, and routing/* where routed)."""
        return {"grad/norm_main": _grad_norm(adapter.main_parameters()),
                "grad/norm_knob": _grad_norm(adapter.knob_parameters())}  # fmt: skip

    def refresh(self, step: int, optimizer) -> None:
        """After optimiser step `step` (its metrics row, eval and checkpoint are written after this)."""

    def metrics(self) -> Metrics:
        """Gauges of the intervention's state in the step just logged."""
        return {}

    def save(self, directory: Path) -> None:
        """Write what a resumed run needs into a checkpoint directory."""


class Vanilla(Intervention):
    """Plain GRPO: TRL's prompts, rewards, advantages and gradient, untouched; the knob is never trained."""


class DirectionIntervention(Intervention):
    """An intervention that acts through v_grad and its band (route2b, erase, adv_mod). It holds the direction in
    force, re-extracts it on the current policy every `refresh_every` optimiser steps (`extract()` -> direction,
    band; never after the last step), checkpoints it, and logs the solve_orth gauges of it."""

    uses_direction = True

    def __init__(self, extract: Callable[[], tuple[Direction, Band]] | None = None, refresh_every: int = 0,
                 steps: int = 0):  # fmt: skip
        self.extract, self.refresh_every, self.steps = extract, refresh_every, steps

    # the direction and band in force (subclasses store them)
    direction: Direction
    band: Band

    def set_direction(self, direction: Direction, band: Band, optimizer=None) -> None:
        raise NotImplementedError

    def refresh_due(self, step: int) -> bool:
        n = self.refresh_every
        return self.extract is not None and n > 0 and step % n == 0 and step < self.steps

    def refresh(self, step: int, optimizer) -> None:
        if self.refresh_due(step):
            self.set_direction(*self.extract(), optimizer=optimizer)

    def metrics(self) -> Metrics:
        """`routing/solve_removed` (fraction of v_grad's squared norm that lay in the solve span) and
        `routing/solve_cos` (signed cos(v_grad, v_solve)) when v_grad is solve-orthogonalised (routing.solve_orth)."""
        orth = self.direction.meta.get("solve_orth")
        if not orth:
            return {}
        return {"routing/solve_removed": orth["removed"], "routing/solve_cos": orth["cos_solve"]}

    def save(self, directory: Path) -> None:
        save_direction_and_band(directory, self.direction, self.band)


def save_direction_and_band(directory: Path, direction: Direction, band: Band) -> None:
    """`direction.safetensors` + `band.json` in `directory` (a checkpoint, or RUN_DIR/direction at step 0)."""
    from gradient_quarantine.routing.band import save_band
    from gradient_quarantine.routing.direction import save_direction

    directory.mkdir(parents=True, exist_ok=True)
    save_direction(direction, directory / "direction.safetensors")
    save_band(band, directory / "band.json")


def load_direction_and_band(directory: Path) -> tuple[Direction, Band] | None:
    """What `save_direction_and_band` wrote, or None when `directory` has no direction."""
    from gradient_quarantine.routing.band import load_band
    from gradient_quarantine.routing.direction import load_direction

    if not (directory / "direction.safetensors").is_file():
        return None
    return load_direction(directory / "direction.safetensors"), load_band(directory / "band.json")


def _grad_norm(params: Sequence[torch.nn.Parameter]) -> float:
    sq = sum(float((p.grad.float() ** 2).sum()) for p in params if p.grad is not None)
    return math.sqrt(sq)
