"""The typed training config: one source of truth for every hyper-parameter of a run.

Every field carries a one-line doc (shown by `gq train --help-config` and in docs/training.md); cross-field
rules are checked when the config is built, with a message that says what to set instead. A preset
(experiments/presets/*.yaml) is a partial dict of these fields; `--set key=value` overrides one dotted key.

    >>> cfg = TrainConfig(steps=3, model="tiny", method="route2b")
    >>> cfg.routing.gate, cfg.arm, cfg.name            # ('rollout', 'route2b', 'route2b_s41')
    >>> cfg.config_hash()                              # stable across runs of the same settings
    >>> TrainConfig(steps=3, method="vanilla", routing={"gate": "token"})   # -> ValueError naming the key

Top-level keys follow docs/run_directory.md (`name`, `arm`, `seed`, `preset`, `steps`, `model`,
`pair_modes`, `git_commit`, `config_hash`); the rest is nested by concern.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gradient_quarantine.model.adapter_config import DEFAULT_TARGET_NAMES, AdapterConfig, targets_regex
from gradient_quarantine.substrate.types import MODES

MODE_NAMES: tuple[str, ...] = tuple(m.value for m in MODES)

# TRL 1.16's GRPO loss aggregations (GRPOConfig.loss_type). "grpo" normalises each rollout by its own length,
# which is the normalisation docs/architecture.md uses for the pair differences (l(y) = 1/|y| sum_t log p).
LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo")

# Live trackers `run.report_to` can name (TRL's `report_to` values; train/tracking.py)
TRACKERS = ("tensorboard", "wandb", "trackio")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class AdapterSection(_Section):
    """The SVD adapter (docs/design.md §5): W = U S V^T, the adapter adds U diag(dS) V^T x.

    Its values are checked by the adapter's own `AdapterConfig` (model/adapter_config.py), which
    `adapter_config()` builds: the one place adapter settings are validated."""

    rank: int = Field(16, description="r: top singular triplets per targeted layer (the basis width)")
    targets: list[str] = Field(
        default_factory=lambda: list(DEFAULT_TARGET_NAMES),
        min_length=1,
        description="names (suffixes) of the linear layers that get an adapter",
    )
    knob: Literal["shared", "disjoint", "vgrad_span"] = Field(
        "disjoint",
        description="how the quarantine knob relates to the main adapter: same axes, its own axes, or span(v_grad)",
    )
    knob_rank: int = Field(
        4, description="knob size per layer: its own extra axes (disjoint) or k of the v_grad span (vgrad_span)"
    )
    layers: list[int] | None = Field(
        None, description="[start, end): only decoder layers in this range get an adapter (None: all); the "
        "backward then stops at `start`, which is what makes a CPU step cheaper",
    )

    @model_validator(mode="after")
    def _adapter_accepts(self) -> AdapterSection:
        self.adapter_config()  # raises the adapter's own ValueError, which names the key (rank, knob_rank, layers)
        return self

    def adapter_config(self) -> AdapterConfig:
        """The model's `AdapterConfig` for these settings (`targets` as a regex of the layer-name suffixes)."""
        return AdapterConfig(
            rank=self.rank, target_modules=targets_regex(self.targets), knob_relation=self.knob,
            knob_rank=self.knob_rank, layers=self.layers,  # AdapterConfig makes it a tuple once checked
        )  # fmt: skip


class DataSection(_Section):
    """Which problems, how they are split into modes, and which ones the deploy eval uses."""

    problems: str = Field(
        "builtin",
        description="problem source: a built-in set ('builtin': the 96 problems of sets A and B; 'builtin_c': 48 "
        "very easy problems in 14 families of 3-4 instances; 'builtin_all': those 144; 'builtin_d': 48 more very "
        "easy problems in 13 other families; 'builtin_mix': all 192 of sets A, B, C and D), a public-schema "
        ".jsonl, or 'hf:<name>'",
    )
    mode_seed: int = Field(
        0, description="seed of the problem -> mode partition (fixed across arms and seeds so runs are paired)"
    )
    eval_holdout: float = Field(
        0.0, ge=0.0, lt=1.0, description="fraction of problems kept out of training for the deploy eval (0: eval on the training problems)"
    )
    limit: int | None = Field(None, ge=1, description="use only the first N problems (after loading), e.g. for a quick run")
    split: dict[str, float] | None = Field(
        None,
        description="problem roles {warmstart, pairs, train, eval}: each a fraction of every mode's problems or a "
        "whole count; disjoint and stratified by mode (substrate/splits.py). None: no split, every stage shares "
        "the problems (the report marks such runs)",
    )
    split_seed: int = Field(0, description="seed of the role split (fixed across arms and seeds so runs are paired)")
    no_loophole: float = Field(
        0.0, ge=0.0, lt=1.0,
        description="share of each mode's train and eval problems whose prompt has no hint and whose reward is the "
        "strict grader's (Mode.NO_LOOPHOLE)",
    )
    allow_overlap: bool = Field(
        False, description="let a pair file's problems sit in other roles (a study of the overlap; the report marks it)"
    )
    roles_by: Literal["instance", "family"] = Field(
        "instance",
        description="how data.split draws roles: 'instance' (each problem on its own, stratified by mode; what every "
        "committed run did), so instances of one family can be trained and evaluated and the eval measures transfer "
        "to unseen instances of trained families; or 'family' (all instances of a family, ids FAMILY__INSTANCE as in "
        "builtin_c and builtin_d, share one role), so the eval measures transfer to unseen tasks. Sets A and B have no families "
        "(each problem is its own). Needs data.split",
    )
    train_loophole: bool = Field(
        True,
        description="false: the clean reference (arm `clean`): every training prompt loses its loophole (no hint; "
        "reward, teacher rows and training metrics as Mode.NO_LOOPHOLE, i.e. the strict grader's), while the warm "
        "start, the pair set and the deploy / knob-on / base evals keep their modes, so deploy hack and solve are "
        "measured on the same prompts as in every other arm. Needs data.split (checked at run start)",
    )

    # New fields left out of config_hash at their defaults, so every earlier run keeps its hash (resume checks it).
    HASH_OMIT_AT_DEFAULT: ClassVar[dict[str, Any]] = {"roles_by": "instance", "train_loophole": True}

    @field_validator("problems")
    @classmethod
    def _problem_source(cls, v: str) -> str:
        from gradient_quarantine.substrate.problems import check_problem_spec

        return check_problem_spec(v)  # the form only: files are opened at run start

    @model_validator(mode="after")
    def _roles_by_needs_split(self) -> DataSection:
        if self.roles_by != "instance" and self.split is None:
            raise ValueError(
                f"data.roles_by={self.roles_by} draws the roles of data.split, which is unset; set data.split "
                "(e.g. {warmstart: 0.4, pairs: 0.1, train: 0.25, eval: 0.25}) or data.roles_by=instance"
            )
        return self

    @field_validator("split")
    @classmethod
    def _split_roles(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is None:
            return v
        from gradient_quarantine.substrate.splits import ROLES

        unknown = sorted(set(v) - set(ROLES))
        if unknown:
            raise ValueError(f"data.split: unknown roles {unknown}; roles are {list(ROLES)}")
        for role, size in v.items():
            if size < 0 or (size >= 1 and float(size) != int(size)):
                raise ValueError(f"data.split.{role}={size}: give a fraction in [0, 1) or a whole count >= 1")
        fractions = sum(s for s in v.values() if s < 1)
        if fractions > 1 + 1e-9:
            raise ValueError(f"data.split fractions sum to {fractions:.3g} > 1; lower them")
        if not v.get("train") or not v.get("eval"):
            raise ValueError("data.split needs a non-zero `train` and `eval` role")
        return v


class WarmstartSection(_Section):
    """The supervised warm start (train/warmstart.py): the RL starting point sees canonical solutions of the
    `warmstart` problems and a few hacks in forms the pair set does not contain, then every arm starts from it."""

    enabled: bool = Field(False, description="fine-tune the base model on the warmstart role first (cached) and "
                          "train every arm on top of it")  # fmt: skip
    hack_share: float = Field(
        0.1, ge=0.0, lt=1.0, description="fraction of the warm-start examples that are hacks (warm-start forms, "
        "substrate/hack_forms.py), dealt round-robin over hack_modes"
    )
    hack_modes: list[str] | None = Field(None, description="modes whose hacks the warm start shows (None: all four)")
    canonical_unhinted: bool = Field(
        False, description="also show every hinted warmstart problem's canonical solution under the unhinted prompt, "
        "so the warm start teaches the task apart from the hint (the hint then only adds the hack examples)"
    )
    layers: int = Field(15, ge=1, description="fine-tune the top N decoder layers (all their weights) and the final norm")
    epochs: int = Field(2, ge=1, description="passes over the warm-start examples")
    lr: float = Field(1e-4, gt=0.0, description="AdamW learning rate")
    batch_size: int = Field(4, ge=1, description="examples per optimiser step")
    max_length: int = Field(768, ge=16, description="truncate prompt + completion to this many tokens")
    eval_samples: int = Field(4, ge=1, description="samples per eval problem for the base rates written beside it")
    eval_temperature: float = Field(0.7, gt=0.0, description="sampling temperature of those base rates")
    seed: int = Field(0, description="seed of the example order and the base-rate sampling")

    HASH_OMIT_AT_DEFAULT: ClassVar[dict[str, Any]] = {"canonical_unhinted": False}

    @field_validator("hack_modes")
    @classmethod
    def _known(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _check_modes(v, "warmstart.hack_modes")


class GRPOSection(_Section):
    """GRPO as TRL implements it; defaults from the public environment (docs/design.md §6)."""

    prompts_per_step: int = Field(16, ge=1, description="distinct prompts per optimiser step")
    num_generations: int = Field(16, ge=2, description="G: rollouts per prompt (group size)")
    micro_batch: int | None = Field(
        None, ge=1, description="rollouts per forward/backward (gradient accumulation); None: the whole step at once"
    )
    temperature: float = Field(0.7, gt=0.0, description="sampling temperature of the training rollouts")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus sampling of the training rollouts")
    max_completion_length: int = Field(1536, ge=1, description="max new tokens per rollout")
    beta: float = Field(0.0, ge=0.0, description="KL coefficient against the base model (0: no reference model)")
    epsilon: float = Field(0.2, gt=0.0, description="PPO clip range")
    loss_type: Literal[LOSS_TYPES] = Field("grpo", description="TRL loss aggregation (length normalisation)")  # type: ignore[valid-type]
    scale_rewards: Literal["group", "batch", "none"] = Field("group", description="advantage scaling by the reward std")
    adv_std_floor: float | None = Field(
        None, gt=0.0, description="divide advantages by max(group std, floor) instead of std + 1e-4 (None: TRL's)"
    )
    lr: float = Field(1e-4, gt=0.0, description="learning rate of the main knob")
    lr_knob: float | None = Field(None, gt=0.0, description="learning rate of the quarantine knob (None: same as lr)")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay of the main knob")
    weight_decay_knob: float = Field(0.0, ge=0.0, description="AdamW weight decay of the knob (pulls it to zero)")
    lr_schedule: Literal["constant", "constant_with_warmup", "linear", "cosine"] = Field(
        "constant", description="learning-rate schedule (TRL/transformers names)"
    )
    warmup_steps: int = Field(0, ge=0, description="warm-up steps of the schedule")
    max_grad_norm: float = Field(1.0, ge=0.0, description="clip each knob's gradient to this norm (0: no clipping)")
    knob_optimizer: Literal["separate", "split"] = Field(
        "separate",
        description="'separate': one AdamW state per knob (each normalises its own gradient); 'split' (adapter.knob="
        "shared only): one second moment of the summed gradient for both knobs and a first moment each, so their "
        "updates add up to vanilla AdamW's and the knob holds exactly the routed share (train/knob_optim.py); "
        "clipping then scales both by one factor",
    )
    cpu_fused_head: Literal["tiled", "trl"] = Field(
        "tiled",
        description="on a CPU, TRL's fused log-prob head scores the completion tokens only, in 512 x 4096 tiles "
        "('tiled'; 0.05x the head's time at the demo's shapes, bench/README.md 'Memory churn'), or every position "
        "in TRL's 4096 x 32768 tiles ('trl', its own CPU path, kept for the bench); no effect on a GPU",
    )

    # New fields left out of config_hash at their defaults when the default is what earlier runs did.
    HASH_OMIT_AT_DEFAULT: ClassVar[dict[str, Any]] = {"knob_optimizer": "separate"}

    @property
    def rollouts_per_step(self) -> int:
        return self.prompts_per_step * self.num_generations


class RoutingSection(_Section):
    """route2b: the gate, the direction and its controls (docs/design.md §5)."""

    gate: Literal["rollout", "token"] = Field("rollout", description="one gate value per rollout, or per token")
    direction: Literal["real", "random", "placebo"] = Field(
        "real", description="v_grad from the pair set, Haar-random (random-V), or from clean/clean pairs (placebo)"
    )
    k: int = Field(1, ge=1, description="rank of v_grad per module (top right singular vectors of the pair differences)")
    refresh_every: int = Field(
        5, ge=0, description="recompute v_grad and the band on the current policy every N steps (0: frozen at step 0)"
    )
    pairs: str = Field(
        "builtin",
        description="pair set: 'builtin' (shipped), 'build' (from the training problems), or a pairs .jsonl path",
    )
    pairs_per_mode: int | None = Field(
        4, ge=1, description="calibrate v_grad and the band on at most this many pairs per mode (None: all)"
    )
    heldout_pairs_per_mode: int = Field(
        0, ge=0, description="per mode, this many further pairs are held out of v_grad and the band; the gate on "
        "them is logged (routing/heldout_gate_hack, _clean): an out-of-sample check of the band",
    )
    pair_batch: int = Field(
        2, ge=1, description="sequences per forward/backward when extracting v_grad (full-vocab logits: memory)"
    )
    action: Literal["route", "erase"] = Field(
        "route", description="route the gated part into the knob, or erase it (drop it: the predecessor arm)"
    )
    frout_target: float | None = Field(
        None, ge=0.0, le=1.0,
        description="frout-matched control: route exactly this fraction of the gradient mass every step (hard cut)",
    )
    frout_from: str | None = Field(
        None, description="frout-matched control, step by step: at step t route what this run dir (or metrics.jsonl) "
        "routed at step t (routing/frout), through a ramp as wide, relative to the cosine spread, as its band",
    )
    frout_carry: bool = Field(
        True,
        description="frout-matched control: add what earlier steps fell short of their target (a step whose groups "
        "had no reward variance routes nothing) to the next step's target, so the cumulative routed mass follows "
        "the schedule's (logged: routing/frout_cum, routing/frout_cum_scheduled); false: step by step only",
    )
    unmatched_ok: bool = Field(
        False, description="allow a random/placebo direction without frout matching (its band routes ~nothing)"
    )
    pair_tokens: Literal["all", "differing"] = Field(
        "all",
        description="pair sides' gradients over the whole completion ('all') or over the tokens where the two sides "
        "differ ('differing': between their common token prefix and suffix; routing/detector.py)",
    )
    pair_sides: Literal["template", "on_policy"] = Field(
        "template",
        description="what a pair's two sides are: 'template' (the problem's canonical solution vs the mode's hack "
        "template, substrate/hacks.py) or 'on_policy' (the policy's own completions on the pair problems, sampled "
        "without the hint when the pairs are built, each against itself with the mode's hack inserted, "
        "substrate/hacks.insert_hack): the pair differs in the hack alone, in code the policy writes",
    )
    on_policy_samples: int = Field(
        4, ge=1, description="with pair_sides=on_policy: completions sampled per pair problem (each one pair; a "
        "completion without parseable code, or without the problem's method to insert into, is skipped)",
    )
    # New fields left out of config_hash at their defaults, so every earlier run keeps its hash (resume checks it).
    HASH_OMIT_AT_DEFAULT: ClassVar[dict[str, Any]] = {"pair_tokens": "all", "pair_sides": "template",
                                                       "on_policy_samples": 4}  # fmt: skip
    solve_orth: bool = Field(
        False,
        description="remove v_grad's projection on a solve direction (from correct/incorrect pairs) before the band "
        "(docs/design.md §7, routing/orthogonalize.py)",
    )

    @model_validator(mode="after")
    def _on_policy_sides_are_hack_pairs(self) -> RoutingSection:
        if self.pair_sides == "on_policy" and self.direction == "placebo":
            raise ValueError("routing.pair_sides=on_policy builds hack pairs from the policy's completions; the "
                             "placebo control's pairs are clean/clean variants of the canonical solution: use "
                             "routing.pair_sides=template with routing.direction=placebo")  # fmt: skip
        return self


class TeacherSection(_Section):
    """Teacher mix: part of each group is drawn from a cached pool of teacher completions (docs/design.md §6)."""

    fraction: float = Field(0.0, ge=0.0, lt=1.0, description="fraction of each group replaced by teacher completions")
    hack_share: float = Field(
        0.5, ge=0.0, le=1.0, description="of the teacher completions, the fraction that are the mode's hack (rest: canonical)"
    )
    hack_modes: list[str] | None = Field(
        None, description="modes whose teacher pool contains hacks (None: all four)"
    )
    hack_forms: Literal["template", "warmstart"] = Field(
        "template", description="teacher hack text: the pair set's own template, or a warm-start form "
        "(substrate/hack_forms.py) the pair set does not contain"
    )
    steps: int | None = Field(
        None, ge=1, description="teacher rows only in the first N optimiser steps, on-policy after (None: every step)"
    )

    @field_validator("hack_modes")
    @classmethod
    def _known_modes(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _check_modes(v, "teacher.hack_modes")


class EvalSection(_Section):
    """Deploy eval: knob off, n prompts x G samples, graded strictly and per mode (docs/design.md §6)."""

    every: int = Field(0, ge=0, description="deploy-eval every E steps during training (0: only at the end)")
    n_prompts: int = Field(64, ge=1, description="prompts per deploy eval (capped at the number of eval problems)")
    samples: int = Field(8, ge=1, description="samples per prompt")
    temperature: float = Field(0.7, gt=0.0, description="sampling temperature of the deploy eval")
    max_new_tokens: int | None = Field(None, ge=1, description="max new tokens (None: grpo.max_completion_length)")
    batch_size: int = Field(
        32, ge=1,
        description="sequences per generate() call (rollout.sampler=trl only: the fast sampler batches by its K/V budget)",
    )
    knob_on: bool = Field(True, description="also evaluate with the knob on (it should hold the hacking)")
    base: bool = Field(True, description="also evaluate the base model (adapter off), cached per substrate+model")


class RolloutSection(_Section):
    """Where rollouts are sampled: transformers generate (CPU/GPU) or vLLM (GPU, optional extra)."""

    backend: Literal["transformers", "vllm"] = Field("transformers", description="generation backend")
    vllm_mode: Literal["colocate", "server"] = Field("colocate", description="TRL's vLLM mode")
    vllm_gpu_memory_utilization: float = Field(0.3, gt=0.0, le=1.0, description="vLLM's share of GPU memory (colocate)")
    sampler: Literal["auto", "fast", "trl"] = Field(
        "auto",
        description="transformers backend: 'fast' (train/sampler.py: one prefill per prompt, in-place K/V, on a CPU "
        "the adapter merged and the weights MKL-packed; TRL's settings, other random draws), 'trl' (TRL's "
        "generate, its random stream), or 'auto': the faster one for the device as measured (bench/README.md: "
        "fast on a CPU, 2.3x TRL's; trl on CUDA, where fast was 3.4-5.5x slower); rollouts and evals. config.json "
        "records the resolved choice",
    )

    def sampler_for(self, device: str) -> str:
        """`sampler` with 'auto' resolved for `device` ('cpu' / 'cuda')."""
        if self.sampler != "auto":
            return self.sampler
        return "trl" if device == "cuda" else "fast"


class RunSection(_Section):
    """Bookkeeping: checkpoints, logging, devices, caches."""

    checkpoint_every: int = Field(10, ge=1, description="write a resumable checkpoint every N steps (and at the end)")
    log_rollouts_every: int = Field(1, ge=0, description="append sampled rollouts to rollouts.jsonl every N steps (0: never)")
    rollouts_per_log: int = Field(8, ge=1, description="how many rollouts of the step to log")
    leakage_every: int = Field(
        6, ge=0, description="log leak/leakage and leak/hackward every N steps (and at step 1): the share of the "
        "step's hack-ward gradient, against a fixed probe of eval-role hack/clean pairs, that still reaches the "
        "main knob (train/leakage.py); 0: never",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="training device")
    malloc: Literal["retain", "glibc"] = Field(
        "retain",
        description="the process's C allocator: 'retain' keeps freed memory for reuse instead of handing it back to "
        "the kernel every step (train/allocator.py; bench/README.md 'Memory churn'), 'glibc' leaves its defaults",
    )
    dtype: Literal["auto", "float32", "bfloat16"] = Field("auto", description="model dtype (auto: bf16 on GPU, fp32 on CPU)")
    torch_threads: int | None = Field(None, ge=1, description="torch intra-op threads (None: torch's default)")
    grader_workers: int | None = Field(None, ge=1, description="parallel grader processes (None: the grader's default)")
    cache_dir: str = Field("out/cache", description="cache of converted models, teacher pools and base-model evals")
    progress: bool = Field(True, description="show a progress bar")
    report_to: list[Literal[TRACKERS]] = Field(  # type: ignore[valid-type]
        default_factory=list,
        description="live trackers besides metrics.jsonl (the source of truth): tensorboard (RUN_DIR/tb), wandb "
        "(offline unless WANDB_MODE is set), trackio; TRL's logs and the metrics row ([] or none: no tracker)",
    )

    @field_validator("report_to", mode="before")
    @classmethod
    def _trackers(cls, v: Any) -> Any:
        # TRL's spellings: "none" (or null) for no tracker, one name for a list of one
        if v is None or v == "none":
            return []
        if isinstance(v, str):
            v = [v]
        if isinstance(v, list):
            if "all" in v:
                raise ValueError("name the trackers (TRL's 'all' means whatever happens to be installed): "
                                 f"{', '.join(TRACKERS)}")
            if "none" in v:
                raise ValueError("'none' means no tracker: give it alone, or name the trackers only")
            if len(set(v)) != len(v):
                raise ValueError("a tracker is named twice")
        return v


class GraderSection(_Section):
    """The sandbox the policy's programs are graded in (substrate/sandbox.py; docs/architecture.md, "Sandbox")."""

    isolation: Literal["auto", "bwrap", "unshare", "none"] = Field(
        "auto",
        description="sandbox level: auto (bwrap, or refuse to start), or a weaker level accepted explicitly: unshare "
        "(host files readable, not writable; root only) or none (no isolation); the level used is in summary.json",
    )


# Published baselines (docs/design.md §7), run on vanilla GRPO at the same settings; train/baselines.py.
BASELINE_KINDS = ("none", "monitor_penalty", "monitor_screen", "inoculation", "adv_mod")
MONITOR_KINDS = ("monitor_penalty", "monitor_screen")


class BaselineSection(_Section):
    """A published baseline instead of routing (train/baselines.py). The monitor kinds read the strict hack label
    (upper references, not label-free peers of route2b); inoculation and adv_mod read no label."""

    kind: Literal[BASELINE_KINDS] = Field(  # type: ignore[valid-type]
        "none",
        description="none | monitor_penalty (reward -= penalty for flagged rollouts) | monitor_screen (flagged "
        "rollouts dropped from the update) | inoculation (training prompts request the hack) | adv_mod (advantage "
        "penalised by the v_grad gate)",
    )
    monitor_tpr: float = Field(
        1.0, ge=0.0, le=1.0, description="monitor: probability that a hack is flagged (1 - miss rate; 1: ground truth)"
    )
    monitor_fpr: float = Field(
        0.0, ge=0.0, le=1.0, description="monitor: probability that a non-hack is flagged (0: ground truth)"
    )
    penalty: float = Field(
        3.0, gt=0.0, description="monitor_penalty: subtracted from a flagged rollout's reward (3.0 cancels a flawed pass)"
    )
    monitor: Literal["synthetic", "detector"] = Field(
        "synthetic",
        description="monitor kinds: who flags a rollout. 'synthetic': the strict label seen through monitor_tpr / "
        "monitor_fpr (reads labels); 'detector': route2b's own detector, a row flagged when its gate (the band's "
        "f of cos(grad l(y), v_hat)) is >= monitor_threshold (reads no label), so penalty, screening, adv_mod and "
        "routing differ only in what they do with the same flags",
    )
    monitor_threshold: float = Field(
        0.5, gt=0.0, le=1.0, description="monitor=detector: flag a rollout whose gate is at or above this"
    )
    adv_coef: float = Field(1.0, gt=0.0, description="adv_mod: A_b <- A_b - adv_coef * f(cos_b), f the route2b gate")
    inoculation_text: str | None = Field(
        None, description="inoculation: the instruction added to the training system prompt ({loophole}: the mode's "
        "loophole); None: the built-in one"
    )

    # New fields left out of config_hash at their defaults, so every earlier run keeps its hash (resume checks it).
    HASH_OMIT_AT_DEFAULT: ClassVar[dict[str, Any]] = {"monitor": "synthetic", "monitor_threshold": 0.5}

    @property
    def uses_direction(self) -> bool:
        """adv_mod and a detector-flagged monitor extract v_grad (and its band) from the pair set, like route2b."""
        return self.kind == "adv_mod" or self.detector_monitor

    @property
    def detector_monitor(self) -> bool:
        return self.kind in MONITOR_KINDS and self.monitor == "detector"

    def label(self) -> str:
        """Arm label: the kind, with _gt / _weak for a ground-truth / lowered-accuracy monitor, _det for the
        detector's flags."""
        if self.detector_monitor:
            return f"{self.kind}_det"
        if self.kind in MONITOR_KINDS:
            return f"{self.kind}_{'gt' if (self.monitor_tpr, self.monitor_fpr) == (1.0, 0.0) else 'weak'}"
        return self.kind


class HealthSection(_Section):
    """Collapse detection (docs/design.md §6, §9): recorded, never acted on silently, never cropped."""

    window: int = Field(5, ge=2, description="steps in the running baseline")
    logp_drop: float = Field(
        0.5, gt=0.0, description="logp cratering: mean logp this far (nats) below the baseline (measured degeneration: "
        "-0.29 -> -0.7/-1.06, which a 1-nat threshold missed)"
    )
    logp_persist: int = Field(
        2, ge=1, description="logp cratering must last this many consecutive steps (one small batch is noisy)"
    )
    reward_zero_steps: int = Field(3, ge=1, description="reward to zero: this many consecutive steps at ~0 after >0")
    grad_spike: float = Field(10.0, gt=1.0, description="grad-norm spike: this many times the baseline median")
    format_drop: float = Field(
        0.3, gt=0.0, le=1.0, description="format collapse: the policy's format rate this far below the baseline "
        "median for logp_persist consecutive steps"
    )


class TrainConfig(_Section):
    """One training run. Top-level keys are the run directory's contract (docs/run_directory.md)."""

    name: str | None = Field(None, description="run name (default: <arm>_s<seed>)")
    arm: str | None = Field(None, description="arm label the report groups by (default: derived from the settings)")
    method: Literal["vanilla", "route2b"] = Field("route2b", description="vanilla GRPO, or GRPO with route2b routing")
    seed: int = Field(41, description="seed of everything random in the run (sampling, prompt order, teacher draws)")
    preset: str | None = Field(None, description="the preset this config came from (recorded, not used)")
    steps: int = Field(30, ge=1, description="optimiser steps")
    model: str = Field("smollm2-135m", description="policy: 'tiny', 'smollm2-135m', a local path or a hub id")
    pair_modes: list[str] | None = Field(
        None, description="modes the pair set covers (None: all four for route2b, none for vanilla)"
    )
    git_commit: str | None = Field(None, description="filled in at start")

    adapter: AdapterSection = Field(default_factory=AdapterSection)
    data: DataSection = Field(default_factory=DataSection)
    warmstart: WarmstartSection = Field(default_factory=WarmstartSection)
    grpo: GRPOSection = Field(default_factory=GRPOSection)
    routing: RoutingSection = Field(default_factory=RoutingSection)
    teacher: TeacherSection = Field(default_factory=TeacherSection)
    eval: EvalSection = Field(default_factory=EvalSection)
    rollout: RolloutSection = Field(default_factory=RolloutSection)
    run: RunSection = Field(default_factory=RunSection)
    grader: GraderSection = Field(default_factory=GraderSection)
    health: HealthSection = Field(default_factory=HealthSection)
    baseline: BaselineSection = Field(default_factory=BaselineSection)

    @field_validator("pair_modes")
    @classmethod
    def _pair_modes_known(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _check_modes(v, "pair_modes")

    @model_validator(mode="after")
    def _cross_field(self) -> TrainConfig:
        g, r = self.grpo, self.routing
        routed = self.method == "route2b"
        # --- batch shape
        if g.micro_batch is not None and g.rollouts_per_step % g.micro_batch:
            raise ValueError(
                f"grpo.micro_batch={g.micro_batch} must divide the rollouts per step "
                f"(grpo.prompts_per_step * grpo.num_generations = {g.rollouts_per_step}); "
                f"set grpo.micro_batch to one of {_divisors(g.rollouts_per_step)}"
            )
        n_teacher = round(self.teacher.fraction * g.num_generations)
        if self.teacher.fraction > 0 and n_teacher == 0:
            raise ValueError(
                f"teacher.fraction={self.teacher.fraction} x grpo.num_generations={g.num_generations} rounds to 0 "
                f"teacher rollouts per group; set teacher.fraction >= {1 / g.num_generations:.3g} or 0"
            )
        if n_teacher >= g.num_generations:
            raise ValueError(
                f"teacher.fraction={self.teacher.fraction} leaves no policy rollout in a group of "
                f"{g.num_generations}; set teacher.fraction <= {(g.num_generations - 1) / g.num_generations:.3g}"
            )
        if g.knob_optimizer == "split":
            if self.adapter.knob != "shared":
                raise ValueError(f"grpo.knob_optimizer=split needs adapter.knob=shared (the knobs on the same axes), "
                                 f"not {self.adapter.knob}")  # fmt: skip
            if g.lr_knob is not None and g.lr_knob != g.lr:
                raise ValueError("grpo.knob_optimizer=split takes one learning rate for both knobs (their updates "
                                 "add up): unset grpo.lr_knob")  # fmt: skip
        # --- routing only means something for route2b
        if not routed:
            if self.pair_modes and not self.baseline.uses_direction:
                raise ValueError("pair_modes is set but method=vanilla has no pair set; set method=route2b or drop pair_modes")
            if self.adapter.knob == "vgrad_span":
                raise ValueError(
                    "adapter.knob=vgrad_span is spanned by v_grad, which method=vanilla does not extract; "
                    "set adapter.knob=disjoint (or shared) for vanilla"
                )
            if r.frout_target is not None or r.frout_from is not None:
                raise ValueError("routing.frout_* is set but method=vanilla routes nothing; set method=route2b")
        else:
            if self.pair_modes is not None and len(self.pair_modes) == 0:
                raise ValueError("method=route2b needs at least one mode in pair_modes (or leave it unset for all four)")
            if r.frout_target is not None and r.frout_from is not None:
                raise ValueError("set only one of routing.frout_target and routing.frout_from")
            if r.direction != "real" and r.frout_target is None and r.frout_from is None and not r.unmatched_ok:
                raise ValueError(
                    f"routing.direction={r.direction} is a control: without frout matching its band (width ~0) routes "
                    "~nothing and the control says nothing. Set routing.frout_from=<the real arm's run dir> or "
                    "routing.frout_target=<fraction> (or routing.unmatched_ok=true to run it unmatched)"
                )
        if self.grpo.adv_std_floor is not None and self.grpo.scale_rewards != "group":
            raise ValueError(
                "grpo.adv_std_floor replaces the group std scaling; set grpo.scale_rewards=group (or unset the floor)"
            )
        if self.warmstart.enabled and not (self.data.split or {}).get("warmstart"):
            raise ValueError(
                "warmstart.enabled needs problems of its own: set data.split with a non-zero `warmstart` role "
                "(e.g. data.split={warmstart: 0.35, pairs: 0.15, train: 0.25, eval: 0.25})"
            )
        if self.routing.pairs == "build" and self.data.split is not None and not self.data.split.get("pairs"):
            if self.method == "route2b" or self.baseline.uses_direction:
                raise ValueError("routing.pairs=build takes the `pairs` role's problems; give data.split a `pairs` role")
        _check_baseline(self)  # baselines and routing.solve_orth (train/baselines.py)
        if self.rollout.backend == "vllm" and self.run.device == "cpu":
            raise ValueError("rollout.backend=vllm needs a GPU; set run.device=auto (or cuda), or rollout.backend=transformers")
        if self.grpo.warmup_steps >= self.steps and self.grpo.lr_schedule != "constant":
            raise ValueError(
                f"grpo.warmup_steps={self.grpo.warmup_steps} >= steps={self.steps}; lower grpo.warmup_steps"
            )
        return self

    # ------------------------------------------------------------------ derived values

    @property
    def resolved_pair_modes(self) -> list[str]:
        """The pair set's modes: [] for vanilla, all four when unset."""
        if self.method == "vanilla" and not self.baseline.uses_direction:
            return []
        return list(self.pair_modes) if self.pair_modes is not None else list(MODE_NAMES)

    @property
    def n_teacher(self) -> int:
        """Teacher completions per group."""
        return round(self.teacher.fraction * self.grpo.num_generations)

    def derived_arm(self) -> str:
        """The arm label: 'vanilla', 'route2b', 'random_v', 'placebo', with suffixes for the ablations."""
        if self.method == "vanilla":
            label = "vanilla" if self.baseline.kind == "none" else self.baseline.label()
        else:
            r = self.routing
            label = {"real": "route2b", "random": "random_v", "placebo": "placebo"}[r.direction]
            if r.gate == "token":
                label += "_token"
            if r.refresh_every == 0:
                label += "_frozen"
            if set(self.resolved_pair_modes) != set(MODE_NAMES):
                label += "_heldout"
            if self.adapter.knob != "disjoint":
                label += f"_{self.adapter.knob}"
            if self.grpo.knob_optimizer == "split":
                label += "_split"
            if r.solve_orth:
                label += "_solve_orth"
        if self.teacher.fraction > 0:
            label += f"_teacher{round(100 * self.teacher.fraction)}"
        if not self.data.train_loophole:  # the clean reference, never pooled with its arm
            label = "clean" if label == "vanilla" else f"{label}_clean"
        return label

    def resolved(self) -> TrainConfig:
        """A copy with arm, name and pair_modes filled in (what config.json records)."""
        out = self.model_copy(deep=True)
        if out.arm is None:
            out.arm = out.derived_arm()
        if out.name is None:
            out.name = f"{out.arm}_s{out.seed}"
        out.pair_modes = out.resolved_pair_modes
        if out.rollout.sampler == "auto":  # recorded as what ran
            from gradient_quarantine.train.run_setup import device

            out.rollout.sampler = out.rollout.sampler_for(device(out.run.device))
        return out

    def config_hash(self) -> str:
        """sha256 (16 hex) of everything that can change the numbers: not the name, preset, commit or paths
        that only say where things are written."""
        d = self.model_dump(mode="json")
        for key in ("name", "preset", "git_commit", "arm"):
            d.pop(key, None)
        for key in ("cache_dir", "progress", "torch_threads", "grader_workers", "report_to", "malloc", "leakage_every"):
            d["run"].pop(key, None)
        d["grader"].pop("isolation", None)  # recorded as summary.json `isolation`; does not change the numbers
        for section, omit in (("data", DataSection.HASH_OMIT_AT_DEFAULT), ("routing", RoutingSection.HASH_OMIT_AT_DEFAULT),
                              ("baseline", BaselineSection.HASH_OMIT_AT_DEFAULT), ("grpo", GRPOSection.HASH_OMIT_AT_DEFAULT),
                              ("warmstart", WarmstartSection.HASH_OMIT_AT_DEFAULT)):
            for key, default in omit.items():  # so hashes of earlier runs still match
                if d[section].get(key) == default:
                    d[section].pop(key)
        if d["routing"].get("frout_target") is None and d["routing"].get("frout_from") is None:
            d["routing"].pop("frout_carry", None)  # read by frout-matched controls only
        if not d["grader"]:
            d.pop("grader")  # so hashes of runs from before the section existed still match
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_record(self) -> dict[str, Any]:
        """The dict written to config.json: resolved, with `config_hash` (and `git_commit` as set)."""
        cfg = self.resolved()
        return {**cfg.model_dump(mode="json"), "config_hash": cfg.config_hash()}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> TrainConfig:
        """Inverse of `to_record` (config.json -> TrainConfig)."""
        d = dict(record)
        d.pop("config_hash", None)
        return cls.model_validate(d)


def _check_modes(values: list[str], key: str) -> list[str]:
    import difflib

    out = []
    for v in values:
        if v not in MODE_NAMES:
            close = difflib.get_close_matches(str(v), MODE_NAMES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{key}: unknown mode {v!r}{hint}; modes are {list(MODE_NAMES)}")
        if v in out:
            raise ValueError(f"{key}: mode {v!r} is listed twice")
        out.append(v)
    return out


def _check_baseline(cfg: TrainConfig) -> None:
    """Cross-field rules of the baseline section and routing.solve_orth, each naming what to set instead."""
    b, r = cfg.baseline, cfg.routing
    # a key counts as given when it differs from its default (config.json records every key, defaults included)
    given = {k for k, info in BaselineSection.model_fields.items() if getattr(b, k) != info.get_default()}
    if b.kind != "none" and cfg.method != "vanilla":
        raise ValueError(
            f"baseline.kind={b.kind} is a published baseline run on plain GRPO; with method={cfg.method} routing would "
            "act too and confound the comparison. Set method=vanilla (or baseline.kind=none for route2b)"
        )
    for key, kinds in (("monitor_tpr", MONITOR_KINDS), ("monitor_fpr", MONITOR_KINDS), ("penalty", ("monitor_penalty",)),
                       ("adv_coef", ("adv_mod",)), ("inoculation_text", ("inoculation",)), ("monitor", MONITOR_KINDS),
                       ("monitor_threshold", MONITOR_KINDS)):  # fmt: skip
        if key in given and b.kind not in kinds:
            raise ValueError(f"baseline.{key} is set but baseline.kind={b.kind} does not use it; set baseline.kind to "
                             f"{' or '.join(kinds)}, or drop baseline.{key}")  # fmt: skip
    if b.detector_monitor and given & {"monitor_tpr", "monitor_fpr"}:
        raise ValueError("baseline.monitor=detector flags with the detector's gate; monitor_tpr / monitor_fpr describe "
                         "the synthetic monitor: drop them (or set baseline.monitor=synthetic)")  # fmt: skip
    if b.monitor != "detector" and "monitor_threshold" in given:
        raise ValueError("baseline.monitor_threshold is the detector's; set baseline.monitor=detector or drop it")
    if b.kind in MONITOR_KINDS and b.monitor_tpr <= b.monitor_fpr:
        raise ValueError(
            f"baseline.monitor_tpr={b.monitor_tpr} <= baseline.monitor_fpr={b.monitor_fpr}: the monitor flags clean "
            "rollouts at least as often as hacks (no better than chance); set monitor_tpr > monitor_fpr"
        )
    if b.kind == "monitor_screen" and cfg.grpo.adv_std_floor is not None:
        raise ValueError(
            "baseline.kind=monitor_screen with grpo.adv_std_floor: the floor's group std would count the screened rows "
            "(TRL's NaN-aware baseline does not); unset grpo.adv_std_floor"
        )
    if b.inoculation_text is not None:
        try:
            b.inoculation_text.format(loophole="x")
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(
                f"baseline.inoculation_text: only the placeholder {{loophole}} is filled in ({type(e).__name__}: {e}); "
                "write other braces as {{ and }}"
            ) from None
    uses_v_grad = cfg.method == "route2b" or b.uses_direction
    if b.uses_direction and cfg.pair_modes is not None and len(cfg.pair_modes) == 0:
        raise ValueError(f"baseline {b.label()} needs at least one mode in pair_modes (or leave it unset for all four)")
    if b.uses_direction and r.direction != "real":
        raise ValueError(f"baseline {b.label()} scores rollouts with the real v_grad; set routing.direction=real "
                         f"(got {r.direction})")  # fmt: skip
    if r.solve_orth:
        if not uses_v_grad:
            raise ValueError("routing.solve_orth orthogonalises v_grad, which method=vanilla does not extract; set "
                             "method=route2b (or baseline.kind=adv_mod)")  # fmt: skip
        if r.direction != "real":
            raise ValueError(
                f"routing.solve_orth orthogonalises the real v_grad; routing.direction={r.direction} is a control with "
                "its own direction. Set routing.direction=real or routing.solve_orth=false"
            )


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def git_commit(repo: str | Path | None = None) -> str | None:
    """The checkout's commit (with '+dirty' if tracked files changed), or None outside a git checkout."""
    repo = Path(repo) if repo else Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("+dirty" if dirty else "")


def field_docs(model: type[BaseModel] = TrainConfig, prefix: str = "") -> dict[str, tuple[str, Any]]:
    """{dotted key: (description, default)} for every leaf field: the source of `--help-config` and docs."""
    out: dict[str, tuple[str, Any]] = {}
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.update(field_docs(ann, f"{prefix}{name}."))
        else:
            default = info.get_default(call_default_factory=True)
            out[f"{prefix}{name}"] = (info.description or "", default)
    return out
