"""The TRL side of a run: `GRPOConfig` from the run's config, and the trainer built on the set-up.

Every TRL / transformers argument the project sets is here, each from one config key or fixed for a reason given
beside it. `build_trainer` assembles `GQGRPOTrainer` (train/trainer.py) from the set-up (train/run_setup.py):
the prompts as the intervention renders them, the rollout function with its teacher pool, the grader, the
intervention, the knobs' optimiser settings, the loop's callbacks.

    >>> args = grpo_args(cfg, run_dir, model, report_to="none")
    >>> trainer = build_trainer(setup, grader, intervention, callbacks=[StepCallback(run)])
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import torch

from gradient_quarantine.train.config import TrainConfig
from gradient_quarantine.train.intervention import Intervention
from gradient_quarantine.train.run_setup import RunSetup, device
from gradient_quarantine.train.rundir import RunDir


def grpo_args(cfg: TrainConfig, run: RunDir, model, report_to: str | list[str] = "none"):
    """TRL's `GRPOConfig` for this run (TRL's loop does the rest: sampling settings, the loss, the schedule)."""
    from trl import GRPOConfig

    from gradient_quarantine.train.tracking import PROJECT

    g = cfg.grpo
    micro = g.micro_batch or g.rollouts_per_step
    use_cpu = device(cfg.run.device) == "cpu"
    return GRPOConfig(
        output_dir=str(run.path),  # nothing is written there by TRL/transformers (save_strategy="no")
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=g.rollouts_per_step // micro,
        num_generations=g.num_generations,
        max_completion_length=g.max_completion_length,
        temperature=g.temperature,
        top_p=g.top_p,
        beta=g.beta,
        epsilon=g.epsilon,
        loss_type=g.loss_type,
        scale_rewards="none" if g.adv_std_floor is not None else g.scale_rewards,
        learning_rate=g.lr,
        weight_decay=g.weight_decay,
        lr_scheduler_type=g.lr_schedule,
        warmup_steps=g.warmup_steps,
        max_grad_norm=0.0,  # clipped per knob in GQGRPOTrainer._finish_gradients
        max_steps=cfg.steps,
        num_train_epochs=1,
        logging_steps=1,
        save_strategy="no",  # checkpoints are the run's own (train/run_callbacks.py)
        report_to=report_to,
        run_name=run.path.name,
        project=PROJECT,  # trackio's project
        disable_tqdm=True,
        seed=cfg.seed,
        shuffle_dataset=False,
        remove_unused_columns=False,
        disable_dropout=True,
        gradient_checkpointing=False,  # GradCapture needs the one ordinary forward (no recomputation)
        use_cpu=use_cpu,
        bf16=(not use_cpu and model.dtype == torch.bfloat16),
        use_vllm=cfg.rollout.backend == "vllm",
        vllm_mode=cfg.rollout.vllm_mode,
        vllm_gpu_memory_utilization=cfg.rollout.vllm_gpu_memory_utilization,
        log_completions=False,
        dataloader_num_workers=0,
    )


def build_trainer(setup: RunSetup, grader, intervention: Intervention, callbacks: Sequence[Any] = (),
                  report_to: str | list[str] = "none"):  # fmt: skip
    """The run's `GQGRPOTrainer`: every step's prompts, the rollout function (policy samples + teacher mix), the
    flawed grader, the intervention. `callbacks` in the order given (trackers, then the run's step callback)."""
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback

    from gradient_quarantine.train import trl_compat
    from gradient_quarantine.train.rollouts import (
        RolloutFunc,
        RolloutGrader,
        install_vllm_weight_sync,
        prompt_key,
    )
    from gradient_quarantine.train.teacher import TeacherPool
    from gradient_quarantine.train.trainer import GQGRPOTrainer

    cfg, g = setup.cfg, setup.cfg.grpo
    trl_compat.tile_cpu_fused_head(g.cpu_fused_head == "tiled" and device(cfg.run.device) == "cpu")
    rows = setup.prompt_rows(intervention)
    pool = None
    if cfg.n_teacher:
        pool = TeacherPool.build(
            setup.train_problems, setup.modes_of, setup.tok, cfg.teacher.hack_modes, cfg.run.cache_dir,
            hack_forms=cfg.teacher.hack_forms,
        )
    rollouts = RolloutFunc(
        {prompt_key(r["prompt"]): r["problem_id"] for r in rows}, pool, cfg.n_teacher, cfg.teacher.hack_share,
        cfg.seed, sampler=cfg.rollout.sampler_for(setup.device), teacher_steps=cfg.teacher.steps,
    )  # fmt: skip
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is TRL-experimental: pinned + tested
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        trainer = GQGRPOTrainer(
            model=setup.model,
            args=grpo_args(cfg, setup.run_dir, setup.model, report_to),
            train_dataset=Dataset.from_list(rows),
            processing_class=setup.tok,
            callbacks=list(callbacks),
            adapter=setup.adapter,
            rollouts=rollouts,
            grader=RolloutGrader(grader, setup.problems_by_id),
            intervention=intervention,
            lr_knob=g.lr_knob,
            weight_decay_knob=g.weight_decay_knob,
            max_grad_norm=g.max_grad_norm,
            adv_std_floor=g.adv_std_floor,
            knob_optimizer=g.knob_optimizer,
        )
    trainer.remove_callback(PrinterCallback)  # our own progress bar and metrics.jsonl instead
    install_vllm_weight_sync(trainer, setup.adapter)
    return trainer
