"""The GRPO trainer: TRL's `GRPOTrainer` (pinned 1.16.0) with an intervention's hooks, and one record per step.

What is TRL's and what is ours:

* generation, rewards -> group advantages, the GRPO loss and its backward, the optimiser loop: TRL's;
* the rows: `gq_rollout` (TRL's `rollout_func` hook) samples the policy's rows and adds the teacher mix
  (train/rollouts.py); `flawed_grader` (TRL's reward function) grades them (the flawed grader of each problem's
  mode: `3.0 * flawed_pass + 0.5 * format_ok`);
* the intervention (train/intervention.py) changes what its arm changes, through narrow hooks: the reward
  (`reward`), the advantages (`advantages`, in `after_scoring`), how each micro-batch's gradient is assembled
  (`backward`: route2b's capture and routing) and the step's gradient (`finish_gradients`); plain GRPO is the
  `Vanilla` intervention, which changes nothing;
* separate optimiser state per knob (`create_optimizer`: one AdamW whose state is per tensor, the two knobs in
  their own parameter groups with their own lr / weight decay) and a separate gradient clip per knob;
* optional: an advantage std floor (rescales TRL's group-centred advantages).

One optimiser step, in the order TRL calls into this class (docs/architecture.md, "One step"):

    gq_rollout(prompts)            sample + teacher rows                    -> record.generation
    flawed_grader(...)             grade; intervention.reward              -> record.rollouts, .rewards, .reward_metrics
    after_scoring(batch)           row kinds + indices; std floor; intervention.advantages -> record.advantage_metrics
    training_step(micro-batch) x n intervention.backward around TRL's forward + backward
      compute_loss                   the loss forward's log-probs per row kind      -> record.micro_batches, .logp
    _finish_gradients()            intervention.finish_gradients; clip per knob;  -> record.gradient, .scores
                                   each row's score / gate / advantage, detector/*
    (TRL: optimiser step, scheduler step, log -> the run's callback reads `record`: train/run_callbacks.py)

Every hook writes into `self.record`, the step's `StepRecord` (train/step.py), started by the step's first
micro-batch; nothing of a step is kept anywhere else. The model's only trained state is the adapter, so a checkpoint
is the adapter plus TRL's optimiser, scheduler, RNG and trainer state (`save_checkpoint_files`).

    >>> trainer = GQGRPOTrainer(model=model, args=grpo_config, train_dataset=rows, processing_class=tok,
    ...                         adapter=adapter, rollouts=RolloutFunc(...), grader=RolloutGrader(grader, problems),
    ...                         intervention=Route2b(router))
    >>> trainer.train()
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import torch

from gradient_quarantine.train import trl_compat
from gradient_quarantine.train.intervention import Intervention, Vanilla
from gradient_quarantine.train.knob_optim import SplitAdamW, clip_split_
from gradient_quarantine.train.leakage import step_gradient
from gradient_quarantine.train.rollouts import RolloutFunc, RolloutGrader
from gradient_quarantine.train.step import MicroBatch, StepRecord


class GQGRPOTrainer(trl_compat.HookedGRPOTrainer):
    """TRL's GRPOTrainer; the intervention changes what its arm changes, every step is recorded in `record`.

    `grader`: the step's rows are graded by it and TRL's one reward function is `flawed_grader`. Without it, TRL's
    own `reward_funcs` (a test's synthetic reward) and no verdicts in the record.
    """

    def __init__(
        self,
        *args: Any,
        adapter,
        rollouts: RolloutFunc,
        grader: RolloutGrader | None = None,
        intervention: Intervention | None = None,
        lr_knob: float | None = None,
        weight_decay_knob: float = 0.0,
        max_grad_norm: float = 0.0,
        adv_std_floor: float | None = None,
        knob_optimizer: str = "separate",
        **kwargs: Any,
    ):
        self.adapter = adapter
        self.rollouts = rollouts
        self.grade = grader
        self.intervention = intervention if intervention is not None else Vanilla()
        self.lr_knob = lr_knob
        self.weight_decay_knob = weight_decay_knob
        self.knob_max_grad_norm = max_grad_norm
        self.adv_std_floor = adv_std_floor
        self.knob_optimizer = knob_optimizer
        self.record = StepRecord()
        if grader is not None:
            kwargs["reward_funcs"] = [self.flawed_grader]
        super().__init__(*args, rollout_func=self.gq_rollout, **kwargs)
        if self.args.steps_per_generation != self.args.gradient_accumulation_steps or self.num_iterations != 1:
            raise ValueError("one generation per optimiser step (steps_per_generation = gradient_accumulation_steps, "
                             "num_iterations = 1): the step record assumes it")  # fmt: skip
        if adv_std_floor is not None and self.accelerator.num_processes > 1:
            raise ValueError("grpo.adv_std_floor needs whole groups on one process; run on one GPU or unset it")

    # ---- the step's rows: sampled, graded, scored ----------------------------------------------------------

    def gq_rollout(self, prompts: list, _trainer) -> dict[str, Any]:
        """TRL's `rollout_func` (TRL passes itself as `_trainer`): the step's rows (policy samples + teacher mix),
        and what sampling them cost."""
        out, stats = self.rollouts(prompts, self)
        step = self.state.global_step + 1
        if self.record.step != step or self.record.generation is not None:  # scored outside a training step
            self.record = StepRecord(step=step)
        self.record.generation = stats
        return out

    def flawed_grader(self, prompts, completions, completion_ids, problem_id, mode, teacher=None, **_: Any):
        """TRL's reward function: each row graded by its mode's flawed grader, then the intervention's reward
        change (`None`: a row left out of its group). TRL passes the dataset's columns (`problem_id`, `mode`) and
        the rollout function's extra field (`teacher`) as lists, one entry per completion."""
        t0 = time.perf_counter()
        rollouts = self.grade(prompts, completions, problem_id, mode, teacher)
        self.record.grade_s += time.perf_counter() - t0
        rewards, metrics = self.intervention.reward(rollouts, step=int(self.state.global_step))
        self.record.rollouts, self.record.rewards, self.record.reward_metrics = rollouts, rewards, metrics
        return rewards

    def after_scoring(self, batch: dict[str, Any]) -> dict[str, Any]:
        """TRL's scored batch (advantages `A = r - mean_group(r)`, scaled per `scale_rewards`), before it is split
        into micro-batches: row kinds and indices travel with the rows; the std floor; the intervention's advantage
        change."""
        rollouts = self.record.rollouts
        device = batch["advantages"].device
        if rollouts is not None and len(rollouts.verdicts) == len(batch["advantages"]):
            # for the logs only (diag/*, policy/logp_mean): travels with the rows through TRL's shuffle and split
            batch["gq_row_kind"] = torch.tensor(rollouts.row_kinds(), dtype=torch.long, device=device)
        # each row's index into the step's rollouts, for the logs only (rollouts.jsonl's cos / gate / advantage,
        # detector/*): it travels with the rows too (TRL's shuffle draws one permutation whatever the batch holds)
        batch["gq_row_index"] = torch.arange(len(batch["advantages"]), dtype=torch.long, device=device)
        if self.adv_std_floor is not None and self.model.training:
            # TRL ran with scale_rewards="none": batch["advantages"] = r - mean_group(r), groups contiguous.
            G = self.num_generations
            A = batch["advantages"].view(-1, G)  # (groups, G)
            std = A.std(dim=1, keepdim=True)  # unbiased, as TRL's group std
            batch["advantages"] = (A / std.clamp(min=self.adv_std_floor)).view(-1)
        if self.model.training:
            self.record.advantage_metrics = self.intervention.advantages(self, batch)
        return batch

    # ---- the gradient ----------------------------------------------------------------------------------------

    def training_step(self, model, inputs, num_items_in_batch):
        """One micro-batch: TRL's forward + backward, inside the intervention's `backward` (route2b routes it)."""
        step = self.state.global_step + 1
        if self.record.step != step:  # the first micro-batch of optimiser step `step` (it generates the rows)
            self.record = StepRecord(step=step)
        run_backward = functools.partial(super().training_step, model, inputs, num_items_in_batch)
        t0, rows_s = time.perf_counter(), self.record.rows_s()
        loss, routed = self.intervention.backward(step, run_backward)
        # TRL samples and grades the step's rows inside its first micro-batch's training_step: not backward time
        self.record.backward_s += time.perf_counter() - t0 - (self.record.rows_s() - rows_s)
        if routed is not None and self.record.micro_batches:
            self.record.micro_batches[-1].route = routed
        if self.accelerator.sync_gradients:  # the last micro-batch of this optimiser step
            self._finish_gradients()
        return loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """TRL's loss; its forward's per-token log-probs of the sampled completions are tallied per row kind
        (read off TRL's fused head by a hook for this forward only, so nothing is recomputed)."""
        adv = inputs.get("advantages")
        mb = MicroBatch(row_kind=inputs.get("gq_row_kind"), row_index=inputs.get("gq_row_index"),
                        advantages=adv.detach() if adv is not None else None)  # fmt: skip
        self.record.micro_batches.append(mb)

        def tally(module, args, kwargs, output) -> None:
            fused = trl_compat.fused_head_logps(kwargs, output) if torch.is_grad_enabled() else None
            if fused is not None:
                self.record.logp.add(*fused, mb.row_kind)

        handle = self.model.register_forward_hook(tally, with_kwargs=True)
        try:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        finally:
            handle.remove()

    @torch.no_grad()
    def _finish_gradients(self) -> None:
        routed = [mb.route for mb in self.record.micro_batches if mb.route is not None]
        m = self.intervention.finish_gradients(self.adapter, routed)
        self.record.step_gradient = step_gradient(self.adapter, routed)  # for the leakage gauge (train/leakage.py)
        if self.knob_max_grad_norm > 0 and isinstance(self.optimizer, SplitAdamW):
            # one factor for both: the split between the knobs is what the router decided
            clip_split_(self.adapter.main_parameters(), self.adapter.knob_parameters(), self.knob_max_grad_norm)
        # clip each knob on its own: a global clip would let a large knob gradient shrink the main step
        elif self.knob_max_grad_norm > 0:
            for params in (self.adapter.main_parameters(), self.adapter.knob_parameters()):
                with_grad = [p for p in params if p.grad is not None]
                if with_grad:
                    torch.nn.utils.clip_grad_norm_(with_grad, self.knob_max_grad_norm)
        m.update(self.record.logp_metrics())
        # each row's detector score, gate and advantage (rollouts.jsonl), and the detector's gauges on the policy's
        # own rows: they read labels, after routing, for the logs only
        self.record.scores = self.record.row_scores()
        m.update(self.record.detector_metrics(m))
        self.record.gradient = m

    # ---- optimiser: separate state and lr per knob -----------------------------------------------------------

    def create_optimizer(self, model=None):
        """One AdamW, two parameter groups (main, knob). Adam's moments live per tensor, so dS_main and dS_knob
        never share state: last step's routed gradient cannot leak into the main knob through momentum or the
        second-moment scaling (docs/design.md §5). `grpo.knob_optimizer=split` (a shared knob): `SplitAdamW`, one
        second moment of the summed gradient and a first moment per knob, so the knob keeps the routed share of
        the update (train/knob_optim.py)."""
        if self.optimizer is None and self.knob_optimizer == "split":  # train/knob_optim.py
            self.optimizer = SplitAdamW(
                self.adapter.main_parameters(), self.adapter.knob_parameters(), lr=self.args.learning_rate,
                betas=(self.args.adam_beta1, self.args.adam_beta2), eps=self.args.adam_epsilon,
                weight_decay=self.args.weight_decay, weight_decay_knob=self.weight_decay_knob,
            )  # fmt: skip
        if self.optimizer is None:
            self.optimizer = torch.optim.AdamW(
                [
                    {"params": self.adapter.main_parameters(), "lr": self.args.learning_rate,
                     "weight_decay": self.args.weight_decay, "name": "main"},
                    {"params": self.adapter.knob_parameters(), "lr": self.lr_knob or self.args.learning_rate,
                     "weight_decay": self.weight_decay_knob, "name": "knob"},
                ],
                betas=(self.args.adam_beta1, self.args.adam_beta2),
                eps=self.args.adam_epsilon,
            )  # fmt: skip
        return self.optimizer

    # ---- checkpoints: the adapter is the only trained state in the model --------------------------------------

    def load_model_state(self, checkpoint_dir: Path, model=None) -> None:
        self.adapter.load(Path(checkpoint_dir) / "adapter.safetensors")

    def save_checkpoint_files(self, out_dir: Path) -> None:
        """Write what `train(resume_from_checkpoint=out_dir)` reads, in transformers' own formats
        (optimizer.pt, scheduler.pt, rng_state.pth, trainer_state.json), plus the adapter."""
        self.adapter.save(out_dir / "adapter.safetensors")
        trl_compat.save_checkpoint(self, out_dir)
