"""A run's set-up: its problems and their roles, the policy and its adapter, the pair set, v_grad and its band, the
intervention, and every step's prompts. Everything here is built from the config (and, on resume, from what the
run directory recorded) before the first step; the trainer and the loop (train/run.py) use it.

* **Problems** (train/roles.py): warmstart / pairs / train / eval problems and their modes, recorded in split.json
  (a resumed run reads it back, so every stage keeps its problems).
* **Policy**: the warm-started checkpoint when the run has one (train/warmstart.py, cached), else `model`; the SVD
  adapter on `adapter.targets`; the knob frozen unless the intervention trains it.
* **Pairs**: the hack pairs of the pair modes (built-in, built on the `pairs` problems, or a file) or their placebo
  twins; per mode the first `routing.pairs_per_mode` calibrate v_grad and the band, the next
  `routing.heldout_pairs_per_mode` are held out (only the gate on them is logged).
* **Direction** (`extract_direction`, at the start and at every refresh, on the current policy): v_grad (or its
  random / placebo control) and its band from the pairs' gradients; with `routing.solve_orth`, v_grad's projection
  on a solve direction (solve pairs on the pair set's problems, substrate/solve_pairs.py) is removed per module
  before the band is calibrated (routing/orthogonalize.py).
* **Intervention** (`make_intervention`): the arm's plug-in (train/intervention.py), with the direction in force
  (the checkpoint's on resume).

    >>> s = RunSetup(cfg, run_dir).build()              # seeds, problems (split.json), warm start, policy + adapter
    >>> s.load_pairs()                                  # v_grad's calibration pairs (and held-out ones)
    >>> direction, band = s.extract_direction()         # on the current policy
    >>> intervention = make_intervention(s, ckpt=None)  # Route2b(Router(...)), Vanilla(), MonitorScreen(...), ...
    >>> s.prompt_rows(intervention)                     # every step's prompts, in order
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from gradient_quarantine.io import read_jsonl
from gradient_quarantine.train.config import TrainConfig
from gradient_quarantine.train.intervention import (
    Intervention,
    load_direction_and_band,
    save_direction_and_band,
)
from gradient_quarantine.train.rundir import RunDir


class RunSetup:
    """What one run is made of, built from its config; `build()` makes the model, the rest is made on demand."""

    def __init__(self, cfg: TrainConfig, run_dir: RunDir, resume: bool = False):
        self.cfg = cfg
        self.run_dir = run_dir
        self.resume = resume
        self.pairs: list | None = None  # routing.Pair: v_grad's calibration pairs (load_pairs)
        self.heldout_pairs: list = []
        self.pair_rows: list[dict] = []  # the pair set's rows (their problems carry the solve pairs)
        self._solve_pairs: list | None = None

    # ---------------------------------------------------------------------------------------------- model

    def build(self) -> RunSetup:
        """Seeds, the problems and their roles, the policy (warm-started when the run has one) and its adapter."""
        from transformers import set_seed

        from gradient_quarantine.model.loading import load_policy
        from gradient_quarantine.model.svd_adapter import attach_svd_adapter
        from gradient_quarantine.train.allocator import set_allocator

        cfg = self.cfg
        set_allocator(cfg.run.malloc)
        if cfg.run.torch_threads:
            torch.set_num_threads(cfg.run.torch_threads)
        set_seed(cfg.seed)
        self.device = device(cfg.run.device)
        if cfg.rollout.backend == "vllm":
            _check_vllm(self.device)

        # problems, modes, roles (partition, split and eval set use data.* seeds only: the same for every arm)
        self._assign_roles()

        # policy (the warm-started checkpoint when the run has one) + adapter
        dtype = cfg.run.dtype if cfg.run.dtype != "auto" else ("bfloat16" if self.device == "cuda" else "float32")
        self.base_model = self._warmstart(self.device, dtype) if cfg.warmstart.enabled else cfg.model
        self.model, self.tok = load_policy(self.base_model, dtype=dtype, device=self.device)
        self.tok.padding_side = "left"
        self.adapter = attach_svd_adapter(self.model, cfg.adapter.adapter_config())
        if not intervention_class(cfg).trains_knob:  # the knob exists (same adapter) but is never trained
            for p in self.adapter.knob_parameters():
                p.requires_grad_(False)
        return self

    def _assign_roles(self) -> None:
        """warmstart / pairs / train / eval problems and their modes (train/roles.py), recorded in split.json;
        a resumed run reads its split.json back, so every stage keeps its problems.

        `data.train_loophole=false` (the clean arm): the run's working modes (`self.modes_of`: the training prompts,
        their reward and teacher rows) have every `train` problem as no_loophole; split.json and `self.problems`
        (the warm start) keep the shared modes, so the roles, the warm start and the eval are the other arms'."""
        from gradient_quarantine.train.roles import run_problems

        recorded = self.run_dir.read_split() if self.resume else None
        rp = run_problems(self.cfg, recorded)
        self.problems_by_id, self.modes_of, self.split = rp.by_id, rp.modes_of, rp.split
        if not self.cfg.data.train_loophole:
            if rp.split is None:
                raise ValueError(
                    "data.train_loophole=false (the clean arm) needs data.split: without it the training problems "
                    "are also the warm-start, pair (and, without data.eval_holdout, eval) problems, so they cannot "
                    "lose their loophole alone; set data.split (e.g. {warmstart: 0.4, pairs: 0.1, train: 0.25, eval: 0.25})"
                )
            self.modes_of = rp.split.train_without_loophole(rp.modes_of)
        self.warmstart_problems, self.pair_problems = rp.warmstart, rp.pairs
        self.train_problems, self.eval_pool = rp.train, rp.eval
        if recorded is None:
            self.run_dir.write_split(rp.record())
        self.problems = rp

    def _warmstart(self, device: str, dtype: str) -> str:
        """Path of the warm-started checkpoint (built once, cached: train/warmstart.py)."""
        import shutil

        from gradient_quarantine.io import atomic_write_json
        from gradient_quarantine.train.warmstart import EXAMPLES, read_base_rates, warmstart_for

        path = warmstart_for(self.cfg, self.problems, device=device, dtype=dtype)
        # the run directory records its starting point: which checkpoint, its base rates, the examples it saw
        atomic_write_json(self.run_dir.file("warmstart.json"), {"path": str(path), "key": path.name,
                                                            "base_rates": read_base_rates(path)})  # fmt: skip
        shutil.copyfile(path / EXAMPLES, self.run_dir.file("warmstart_examples.jsonl"))
        self.warmstart_path = path
        return str(path)

    # ---------------------------------------------------------------------------------------------- prompts

    def prompt_rows(self, intervention: Intervention) -> list[dict]:
        """The prompts of every step, in order: seeded passes over the training problems (one HF 'epoch' is
        the whole run, so resuming skips batches exactly and never reshuffles), as the intervention renders them."""
        from gradient_quarantine.seeding import prompt_order_rng

        cfg = self.cfg
        rng = prompt_order_rng(cfg.seed)
        need = cfg.steps * cfg.grpo.prompts_per_step
        order: list[int] = []
        while len(order) < need:
            order += rng.permutation(len(self.train_problems)).tolist()
        rows = []
        for i in order[:need]:
            p = self.train_problems[i]
            mode = self.modes_of[p.id]
            rows.append({"prompt": intervention.prompt(p, mode), "problem_id": p.id, "mode": mode.value})
        return rows

    # ---------------------------------------------------------------------------------------------- pairs

    def load_pairs(self) -> list:
        """The routing.Pair list v_grad is calibrated on (hack pairs of the pair modes, or their placebo twins);
        also sets `heldout_pairs` and `pair_rows`."""
        from gradient_quarantine.routing.pairs import Pair
        from gradient_quarantine.substrate.pairs import (
            build_pairs,
            builtin_pairs_path,
            placebo_completion,
            read_pairs,
        )
        from gradient_quarantine.substrate.problems import load_problems

        r, modes = self.cfg.routing, self.cfg.resolved_pair_modes
        if r.pairs == "builtin":
            rows = read_pairs(builtin_pairs_path(), modes=modes, kind="hack")
            known = {p.id: p for p in load_problems("builtin")}
        elif r.pairs == "build":
            rows = build_pairs(self.pair_problems, self.modes_of, modes=modes)  # capped per mode below
            known = self.problems_by_id
        else:
            rows = read_pairs(r.pairs, modes=modes, kind="hack")
            known = self.problems_by_id
            if self.split is not None and not self.cfg.data.allow_overlap:
                self.split.check_disjoint({"pairs": [row["problem_id"] for row in rows]})
        # per mode, in file (or id) order: the first pairs_per_mode calibrate v_grad and the band, the next
        # heldout_pairs_per_mode are held out (only the gate on them is logged; fewer when the mode runs short)
        h = r.heldout_pairs_per_mode
        total = {m: sum(row["mode"] == m for row in rows) for m in {row["mode"] for row in rows}}
        count: dict[str, int] = {}
        kept, held = [], []
        for row in rows:
            m = row["mode"]
            count[m] = count.get(m, 0) + 1
            n_cal = r.pairs_per_mode or max(total[m] - h, 1)
            if count[m] <= n_cal:
                kept.append(row)
            elif count[m] <= n_cal + h:
                held.append(row)
        short = {m: n for m, n in total.items() if r.pairs_per_mode and n < r.pairs_per_mode}
        if r.pairs == "build" and short:
            raise ValueError(f"not enough pair problems for routing.pairs_per_mode={r.pairs_per_mode}: got {short}")
        rows = kept
        self.heldout_pairs = [Pair(prompt=row["prompt"], clean=row["clean"], hack=row["hack"]) for row in held]
        if not rows:
            raise ValueError(f"the pair set {r.pairs!r} has no pairs for modes {modes}")
        self.pair_rows = rows  # routing.solve_orth builds its solve pairs on these problems
        if r.pair_sides == "on_policy":
            rows = self._on_policy_rows(rows, known)
        if r.direction == "placebo":
            # both sides clean: the canonical solution and a renamed/reformatted clean variant of it
            missing = [row["problem_id"] for row in rows if row["problem_id"] not in known]
            if missing:
                raise ValueError(f"placebo pairs need the problems of the pair set; unknown ids {missing[:3]}")
            rows = [{**row, "hack": placebo_completion(known[row["problem_id"]])} for row in rows]
        self.pairs = [Pair(prompt=row["prompt"], clean=row["clean"], hack=row["hack"]) for row in rows]
        return self.pairs

    def _on_policy_rows(self, rows: list[dict], known: dict) -> list[dict]:
        """`routing.pair_sides=on_policy`: on each pair problem, `on_policy_samples` completions of the current
        policy to the unhinted prompt (eval temperature, the rollouts' length), each paired with itself plus the
        mode's hack (`substrate.pairs.on_policy_pairs`). Sampled once, with its own seed; fails when a mode is
        left with no pair."""
        from gradient_quarantine.seeding import on_policy_pairs_seed
        from gradient_quarantine.substrate.pairs import on_policy_pairs
        from gradient_quarantine.substrate.prompts import render_prompt
        from gradient_quarantine.substrate.types import Mode
        from gradient_quarantine.train.deploy_eval import sample

        missing = [row["problem_id"] for row in rows if row["problem_id"] not in known]
        if missing:
            raise ValueError(f"routing.pair_sides=on_policy needs the pair set's problems; unknown ids {missing[:3]}")
        problems = [known[row["problem_id"]] for row in rows]
        cfg = self.cfg
        texts = sample(self.model, self.tok, [render_prompt(p, Mode.NO_LOOPHOLE) for p in problems],
                       cfg.routing.on_policy_samples, cfg.eval.temperature, cfg.grpo.max_completion_length,
                       cfg.eval.batch_size, seed=on_policy_pairs_seed(cfg.seed),
                       backend="generate" if cfg.rollout.sampler_for(self.device) == "trl" else "auto")  # fmt: skip
        out = [pair for row, p, ts in zip(rows, problems, texts, strict=True)
               for pair in on_policy_pairs(p, row["mode"], row["prompt"], ts)]  # fmt: skip
        empty = sorted({row["mode"] for row in rows} - {row["mode"] for row in out})
        if empty:
            raise ValueError(f"routing.pair_sides=on_policy: no completion of the policy on the pair problems of "
                             f"{empty} had code to insert a hack into; raise routing.on_policy_samples")  # fmt: skip
        return out

    def solve_pairs(self) -> list:
        """The routing `Pair`s of the solve set: the pair set's problems and prompts, (canonical, stub) completions.
        `Pair(prompt, clean=correct, hack=incorrect)` (routing/orthogonalize.solve_direction's convention). Cached."""
        from gradient_quarantine.routing.pairs import Pair
        from gradient_quarantine.substrate.problems import load_problems
        from gradient_quarantine.substrate.solve_pairs import solve_pairs_for

        if self._solve_pairs is not None:
            return self._solve_pairs
        if not self.pair_rows:
            raise RuntimeError("routing.solve_orth needs the pair set's rows: call load_pairs() first")
        builtin = self.cfg.routing.pairs == "builtin"
        known = {p.id: p for p in load_problems("builtin")} if builtin else self.problems_by_id
        rows = solve_pairs_for(self.pair_rows, known)
        self._solve_pairs = [Pair(prompt=r["prompt"], clean=r["correct"], hack=r["incorrect"]) for r in rows]
        return self._solve_pairs

    # ---------------------------------------------------------------------------------------------- direction

    @property
    def matched_control(self) -> bool:
        """A control frout-matched to a constant or a partner run: its gate is not the band's."""
        r = self.cfg.routing
        return r.frout_target is not None or r.frout_from is not None

    def extract_direction(self):
        """v_grad (or its control) and the band, on the current policy, from the pair set.

        Wiring only: the config becomes a recipe (`detector_recipe`) and `routing.detector.build_detector` does the
        extraction, with `routing.solve_orth`'s solve-orthogonalisation as the recipe's transform (`_solve_orth`).
        Arms gated by the band (not frout-matched controls) also get the gate on the pairs, in sample and held out
        (`_gate_on_pairs`)."""
        from gradient_quarantine.routing.detector import build_detector

        recipe = detector_recipe(self.cfg)
        if self.cfg.routing.solve_orth:
            # docs/design.md §7: remove v_grad's projection on a solve direction before the band (and per LOO fold)
            recipe = dataclasses.replace(recipe, transform=self._solve_orth(str(recipe.length_norm)))
        det = build_detector(self.model, self.adapter, self.tok, self.pairs, recipe)
        if not self.matched_control:  # a matched control's gate is not the band's: no gauge of it on pairs
            self._gate_on_pairs(det.direction, det.band, str(recipe.length_norm))
        return det.direction, det.band

    def _solve_orth(self, length_norm: str) -> Callable:
        """Extract the solve direction on the current policy and return `direction -> orthogonalize(direction,
        solve)` (applied to v_grad and to each leave-one-out fold's direction before their bands)."""
        from gradient_quarantine.routing.orthogonalize import orthogonalize, solve_direction

        cfg = self.cfg
        pairs = self.solve_pairs()  # solve_direction records n_pairs and length_norm in solve.meta
        kw = {"k": cfg.routing.k, "length_norm": length_norm, "temperature": cfg.grpo.temperature}
        solve = solve_direction(self.model, self.adapter, self.tok, pairs, **kw)
        return functools.partial(orthogonalize, solve=solve)

    def _gate_on_pairs(self, direction, band, norm: str) -> None:
        """Label-free gauges of the band's gate on the pair set (band.pair_gate_*, band.heldout_gate_*, logged as
        routing/*): the mean gate on the hack and the clean sides of the calibration pairs (in sample: rollout
        gate from the band's own cosines; token gate from a second pass, the sides' mass-weighted token frout)
        and of the held-out pairs (routing.heldout_pairs_per_mode), which took no part in v_grad or the band."""
        from gradient_quarantine.routing.band import gate
        from gradient_quarantine.routing.direction import pair_gates

        cfg = self.cfg
        kw = {"length_norm": norm, "temperature": cfg.grpo.temperature, "batch_size": cfg.routing.pair_batch}
        if band.granularity == "rollout":
            fh, fc = gate(torch.tensor(band.hack_cos), band), gate(torch.tensor(band.clean_cos), band)
        else:
            fh, fc = pair_gates(self.model, self.adapter, self.tok, self.pairs, direction, band, **kw)
        band.pair_gate_hack, band.pair_gate_clean = float(fh.mean()), float(fc.mean())
        if self.heldout_pairs:
            fh, fc = pair_gates(self.model, self.adapter, self.tok, self.heldout_pairs, direction, band, **kw)
            band.heldout_gate_hack, band.heldout_gate_clean = float(fh.mean()), float(fc.mean())
            band.n_heldout = len(self.heldout_pairs)

    def frout_schedule(self) -> dict[int, tuple[float, float | None]] | None:
        """{step: (frout target, ramp width relative to the live cosine spread)} of a matched control, or None.

        `routing.frout_target`: that constant every step, through a hard cut (no partner, no ramp to copy).
        `routing.frout_from`: step by step from the partner's metrics.jsonl: at step t the control routes what
        the partner routed at step t (`routing/frout`), through a ramp spanning the same share of the live
        cosine spread as the partner's band did (`routing/band_width / (cos_p90 - cos_p10)`; a hard cut where
        that is not positive). Matching in mean only would let a control that routes 0.43 every step stand in
        for a partner that routed 0.00 to 0.82."""
        r = self.cfg.routing
        if r.frout_target is not None:
            return {t: (r.frout_target, None) for t in range(1, self.cfg.steps + 1)}
        if r.frout_from is None:
            return None
        path = Path(r.frout_from)
        path = path / "metrics.jsonl" if path.is_dir() else path
        if not path.is_file():
            raise FileNotFoundError(f"routing.frout_from={r.frout_from!r}: no metrics.jsonl there")
        sched: dict[int, tuple[float, float | None]] = {}
        for row in read_jsonl(path):
            if "step" not in row or not _finite(row.get("routing/frout")):
                continue
            spread = (row.get("routing/cos_p90") or math.nan) - (row.get("routing/cos_p10") or math.nan)
            rel = (row.get("routing/band_width") or math.nan) / spread if _finite(spread) and spread > 0 else None
            sched[int(row["step"])] = (min(max(float(row["routing/frout"]), 0.0), 1.0),
                                       rel if _finite(rel) and rel > 0 else None)  # fmt: skip
        missing = [t for t in range(1, self.cfg.steps + 1) if t not in sched]
        if missing:
            raise ValueError(
                f"routing.frout_from={r.frout_from!r}: {path} has no routing/frout for step(s) {missing[:5]}"
                f"{' ...' if len(missing) > 5 else ''} of this run's {self.cfg.steps}; a step-matched control needs "
                "a partner run at least as long (set steps to the partner's, or routing.frout_target=<fraction>)"
            )
        return sched


# ==========================================================================================================
# the intervention


def detector_recipe(cfg: TrainConfig):
    """The `routing.detector.DetectorRecipe` a run's config asks for (without `routing.solve_orth`'s transform,
    which needs the policy: `RunSetup.extract_direction` adds it): k (`adapter.knob_rank` for a `vgrad_span`
    knob, else `routing.k`), the length normalisation of `grpo.loss_type`, `grpo.temperature`,
    `routing.pair_batch`, `routing.gate` (token: the per-token gate's band, on the sides' token-mass-weighted mean
    token cosines), `routing.direction` (placebo pairs, or random-V seeded by `seeding.random_v_seed`: the same
    Haar-random span at every refresh), `routing.pair_tokens`. Training and `gq detector eval` both read it."""
    from gradient_quarantine.routing.detector import DetectorRecipe
    from gradient_quarantine.routing.pairs import length_norm_for_loss_type
    from gradient_quarantine.seeding import random_v_seed

    r = cfg.routing
    return DetectorRecipe(
        k=cfg.adapter.knob_rank if cfg.adapter.knob == "vgrad_span" else r.k,
        length_norm=length_norm_for_loss_type(cfg.grpo.loss_type, cfg.grpo.max_completion_length),
        temperature=cfg.grpo.temperature,
        batch_size=r.pair_batch,
        granularity=r.gate,
        kind="placebo" if r.direction == "placebo" else "v_grad",
        direction="random" if r.direction == "random" else "real",
        random_seed=random_v_seed(cfg.seed) if r.direction == "random" else None,
        pair_tokens=r.pair_tokens,
    )


def intervention_class(cfg: TrainConfig) -> type[Intervention]:
    """The arm's intervention: `method` (route2b, with `routing.action` route or erase) or `baseline.kind`."""
    from gradient_quarantine.train.baselines import (
        AdvMod,
        DetectorMonitor,
        Inoculation,
        MonitorPenalty,
        MonitorScreen,
    )
    from gradient_quarantine.train.intervention import Vanilla
    from gradient_quarantine.train.route2b import Erase, Route2b

    if cfg.method == "route2b":
        return Erase if cfg.routing.action == "erase" else Route2b
    if cfg.baseline.detector_monitor:
        return DetectorMonitor
    by_kind: dict[str, type[Intervention]] = {
        "none": Vanilla, "monitor_penalty": MonitorPenalty, "monitor_screen": MonitorScreen,
        "inoculation": Inoculation, "adv_mod": AdvMod,
    }  # fmt: skip
    return by_kind[cfg.baseline.kind]


def make_intervention(setup: RunSetup, ckpt: Path | None = None) -> Intervention:
    """The run's intervention, built from its config. One acting through v_grad gets the direction in force: the
    checkpoint's on resume, else a fresh extraction (written to RUN_DIR/direction for the record); it refreshes it
    every `routing.refresh_every` steps with `setup.extract_direction`."""
    from gradient_quarantine.train.baselines import (
        AdvMod,
        DetectorMonitor,
        Inoculation,
        Monitor,
        MonitorPenalty,
        MonitorScreen,
    )
    from gradient_quarantine.train.route2b import Route2b

    cfg, cls = setup.cfg, intervention_class(setup.cfg)
    b = cfg.baseline
    if cls is MonitorPenalty:
        return MonitorPenalty(Monitor(b.monitor_tpr, b.monitor_fpr, cfg.seed), b.penalty)
    if cls is MonitorScreen:
        return MonitorScreen(Monitor(b.monitor_tpr, b.monitor_fpr, cfg.seed))
    if cls is Inoculation:
        return Inoculation(b.inoculation_text)
    if not cls.uses_direction:
        return cls()
    if setup.pairs is None:
        setup.load_pairs()
    schedule = setup.frout_schedule()
    found = load_direction_and_band(ckpt) if ckpt is not None else None
    direction, band = found if found is not None else setup.extract_direction()
    if ckpt is None:  # step-0 direction, for the record (refreshes overwrite it in the checkpoint)
        save_direction_and_band(setup.run_dir.path / "direction", direction, band)
    refresh: dict[str, Any] = {"extract": setup.extract_direction, "refresh_every": cfg.routing.refresh_every,
                               "steps": cfg.steps}  # fmt: skip
    if cls is AdvMod:  # no Router: the direction scores advantages, the knob is never trained
        return AdvMod(direction, band, b.adv_coef, **refresh)
    if cls is DetectorMonitor:  # the same detector's flags, penalised or screened; no Router, no knob
        from gradient_quarantine.routing.pairs import length_norm_for_loss_type
        from gradient_quarantine.train.baselines import rollout_text_scores

        norm = length_norm_for_loss_type(cfg.grpo.loss_type, cfg.grpo.max_completion_length)
        score = functools.partial(rollout_text_scores, setup.model, setup.adapter, setup.tok, norm,
                                  cfg.grpo.temperature, cfg.grpo.micro_batch)  # fmt: skip
        action = "penalty" if b.kind == "monitor_penalty" else "screen"
        return DetectorMonitor(direction, band, score, b.monitor_threshold, action, b.penalty, **refresh)
    from gradient_quarantine.routing.router import Router

    assert issubclass(cls, Route2b), cls
    first = schedule[1] if schedule else (None, None)
    router = Router(setup.adapter, direction, band, granularity=cfg.routing.gate, frout_target=first[0],
                    ramp_rel_width=first[1])  # fmt: skip
    cumulative = (0.0, 0.0)
    if schedule is not None and ckpt is not None:  # resume: the sums as the last kept metrics row logged them
        rows = [r for r in setup.run_dir.read_metrics() if "routing/frout_cum" in r]
        if rows:
            cumulative = (float(rows[-1]["routing/frout_cum_scheduled"]), float(rows[-1]["routing/frout_cum"]))
    return cls(router, per_token=cfg.routing.gate == "token", frout_schedule=schedule, carry=cfg.routing.frout_carry,
               cumulative=cumulative, **refresh)  # fmt: skip


# ==========================================================================================================
# helpers


def device(spec: str) -> str:
    """`run.device` resolved: auto = cuda when visible, else cpu."""
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("run.device=cuda but no CUDA device is visible; set run.device=cpu or auto")
    return spec


def _check_vllm(device: str) -> None:
    if device != "cuda":
        raise RuntimeError("rollout.backend=vllm needs a CUDA GPU; set rollout.backend=transformers")
    try:
        import vllm  # noqa: F401
    except ImportError as e:
        raise RuntimeError(
            "rollout.backend=vllm needs the optional extra: pip install 'gradient_quarantine[vllm]'"
        ) from e


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
