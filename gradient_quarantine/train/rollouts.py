"""Rollouts for the GRPO trainer: the policy's samples (train/sampler.py on the transformers backend, TRL's
vLLM generation otherwise), plus the teacher mix, through TRL's public `rollout_func` hook; and their grading.

`TRL.GRPOTrainer(rollout_func=...)` hands the trainer the step's prompts (each repeated G times, groups
contiguous) and takes back `prompt_ids`, `completion_ids`, `logprobs` and extra per-row fields (forwarded to the
reward function); the trainer's `gq_rollout` calls `RolloutFunc`, which returns them with what sampling cost
(`RolloutStats`, for the step's record). Prompts are tokenised by TRL's own tokenisation
(`trl_compat.tokenize_prompts`, pinned TRL 1.16). On the transformers backend the rows are sampled by
train/sampler.py (`generate_like_trl`: one prefill per prompt, a preallocated K/V cache; bench/README.md has its
speed) with TRL's sampling settings, EOS and padding: greedy completions are TRL's token for token
(tests/test_sampler.py), sampled ones the same distribution with different draws. vLLM, continuous batching,
settings the sampler does not implement and `sampler="trl"` go through TRL's own sampling
(`trl_compat.generate_single_turn`; `tests/test_train_trainer.py` checks that with `sampler="trl"` and no teacher
mix the completions are token-for-token those of a plain `GRPOTrainer`). With a teacher mix, only the policy rows of
each group are sampled (the first `G - n_teacher`, so the sampled batch is still made of whole groups, as TRL's
vLLM server mode needs); the last `n_teacher` rows get teacher completions (train/teacher.py).

`RolloutGrader` grades a step's rows with the flawed grader of each problem's mode (the reward TRL trains on,
before the intervention's change, is `Verdict.reward = 3.0 * flawed_pass + 0.5 * format_ok`).

    >>> rollout = RolloutFunc(prompt_to_problem, pool=None, n_teacher=0, hack_share=0.5, seed=41)
    >>> out, stats = rollout(prompts, trainer)                # what TRL's rollout_func returns, and its cost
    >>> RolloutGrader(grader, problems_by_id)(prompts, completions, problem_id, mode, teacher)   # StepRollouts
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from gradient_quarantine.train import trl_compat
from gradient_quarantine.train.sampler import generate_like_trl
from gradient_quarantine.train.step import RolloutStats, StepRollouts
from gradient_quarantine.train.teacher import TeacherPool


def prompt_key(messages: list[dict]) -> str:
    """A stable key for a chat prompt (its messages as canonical JSON)."""
    return json.dumps([[m.get("role"), m.get("content")] for m in messages], ensure_ascii=False)


class RolloutFunc:
    """Sample the policy rows (fast sampler or TRL), fill the teacher rows from the pool: what TRL's
    `rollout_func` returns, and the call's `RolloutStats`."""

    def __init__(
        self,
        prompt_to_problem: Mapping[str, str],
        pool: TeacherPool | None,
        n_teacher: int,
        hack_share: float,
        seed: int,
        sampler: str = "fast",
        teacher_steps: int | None = None,
    ):
        if sampler not in ("fast", "trl"):
            raise ValueError(f"sampler must be 'fast' (train/sampler.py, where it applies) or 'trl', got {sampler!r}")
        if n_teacher > 0 and pool is None:
            raise ValueError("a teacher mix (n_teacher > 0) needs a TeacherPool")
        self.prompt_to_problem = dict(prompt_to_problem)
        self.pool = pool
        self.n_teacher = n_teacher
        self.hack_share = hack_share
        self.seed = seed
        self.sampler = sampler
        self.teacher_steps = teacher_steps  # teacher rows only in the first N optimiser steps (None: every step)

    def __call__(self, prompts: list, trainer) -> tuple[dict[str, Any], RolloutStats]:
        G = trainer.num_generations if trainer.model.training else trainer.num_generations_eval
        n_rows = len(prompts)
        if n_rows % G:
            raise ValueError(f"{n_rows} prompts is not a whole number of groups of {G}")
        in_schedule = self.teacher_steps is None or int(trainer.state.global_step) < self.teacher_steps
        n_t = self.n_teacher if trainer.model.training and in_schedule else 0
        g_policy = G - n_t
        policy_rows = [g * G + j for g in range(n_rows // G) for j in range(g_policy)]

        # TRL's own tokenisation; sampling by train/sampler.py on the transformers backend (TRL's settings, EOS and
        # padding; greedy = TRL's token for token), else TRL's own (vLLM, continuous batching, sampler="trl")
        t0 = time.perf_counter()
        prompt_ids = trl_compat.tokenize_prompts(trainer, prompts)
        rows = [prompt_ids[i] for i in policy_rows]
        if self.sampler == "fast":
            sampled_ids, sampled_logprobs, who = generate_like_trl(trainer, rows, g_policy)
        else:
            sampled_ids, sampled_logprobs = trl_compat.generate_single_turn(trainer, rows, g_policy)
            who = "trl"
        gen_s = time.perf_counter() - t0

        completion_ids: list[list[int]] = [None] * n_rows  # type: ignore[list-item]
        logprobs: list[list[float | None]] | None = [None] * n_rows if sampled_logprobs is not None else None  # type: ignore[list-item]
        for k, i in enumerate(policy_rows):
            completion_ids[i] = list(sampled_ids[k])
            if logprobs is not None:
                logprobs[i] = list(sampled_logprobs[k])
        teacher_kind: list[str | None] = [None] * n_rows
        if n_t:
            step = int(trainer.state.global_step)
            for g in range(n_rows // G):
                pid = self.prompt_to_problem[prompt_key(prompts[g * G])]
                for j, (kind, ids) in enumerate(self.pool.draw(pid, self.seed, step, g, n_t, self.hack_share)):
                    i = g * G + g_policy + j
                    # whole, even past max_completion_length: a cut-off solution would be a broken
                    # demonstration (unterminated code block); the loss masks by length either way
                    completion_ids[i] = list(ids)
                    teacher_kind[i] = kind
                    if logprobs is not None:
                        # no sampling log-probs for teacher tokens: TRL maps None to NaN and its vLLM
                        # importance-sampling correction then leaves those tokens uncorrected (ratio 1)
                        logprobs[i] = [None] * len(completion_ids[i])
        stats = RolloutStats(
            policy_tokens=sum(len(c) for c in sampled_ids),
            generate_s=gen_s,
            n_policy=len(policy_rows),
            n_teacher=n_rows - len(policy_rows),
            teacher_kinds=teacher_kind,
            sampler=who,
        )
        out = {
            "prompt_ids": [list(p) for p in prompt_ids],
            "completion_ids": completion_ids,
            "logprobs": logprobs,
            "teacher": teacher_kind,  # extra field: reaches the reward function (for logging only)
        }
        return out, stats


class RolloutGrader:
    """Grade a step's rows: each completion by the flawed grader of its problem's mode (`Verdict`: the reward, the
    strict label, the solve, ...). Called by the trainer's reward function with TRL's per-row columns."""

    def __init__(self, grader, problems_by_id: Mapping[str, Any]):
        self.grader = grader
        self.problems_by_id = problems_by_id

    def __call__(self, prompts: list, completions: list, problem_id: list[str], mode: list[str],
                 teacher: list[str | None] | None = None) -> StepRollouts:  # fmt: skip
        from gradient_quarantine.substrate.types import Mode

        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        items = [(self.problems_by_id[pid], Mode(m), t) for pid, m, t in zip(problem_id, mode, texts, strict=True)]
        verdicts = self.grader.grade_many(items)
        return StepRollouts(
            list(problem_id), list(mode), list(prompts), texts,
            list(teacher) if teacher is not None else [None] * len(texts), verdicts,
        )  # fmt: skip


# ----------------------------------------------------------------------------------------------------------
# vLLM: the SVD adapter is merged into W before TRL pushes weights to vLLM


def install_vllm_weight_sync(trainer, adapter) -> None:
    """Make TRL's vLLM weight sync push merged weights (`SVDLinear.merged_weight(live=True)`: W + U diag(delta) V^T,
    knob as currently enabled) under the base model's parameter names; vLLM knows nothing about SVDLinear.
    Not exercised by the CPU test suite (no vLLM there; tests/test_trl_compat.py checks the merged walk against the
    adapter's forward); see docs/training.md."""
    trl_compat.push_weights_to_vllm(trainer, lambda: merged_named_weights(trainer.model, adapter))


def merged_named_weights(model, adapter):
    """`(name, tensor)` over the model's parameters as a plain model has them: each adapted layer's
    `...q_proj.base.weight` becomes `...q_proj.weight` = its merged weight, its `dS_main` / `dS_knob` are folded
    into it, everything else is as it stands."""
    owner = {f"{n}.": n for n in adapter.modules}
    for name, param in model.named_parameters():
        prefix = next((p for p in owner if name.startswith(p)), None)
        if prefix is None:
            yield name, param.data
            continue
        rest = name[len(prefix) :]
        if rest == "base.weight":
            yield prefix + "weight", adapter.modules[owner[prefix]].merged_weight(live=True)
        elif rest == "base.bias":
            yield prefix + "bias", param.data
        # dS_main / dS_knob: folded into the weight above
