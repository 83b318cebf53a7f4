"""Every random stream the project derives from a seed, one named function per purpose.

A run has one seed (`seed`), its data two more (`data.mode_seed`, `data.split_seed`) and its warm start one
(`warmstart.seed`). Each purpose below draws from its own stream, derived from one of them with a fixed salt, so
two purposes never share draws and each is reproducible on its own: a resumed run redraws exactly what the
uninterrupted run drew, and every arm of a study sees the same problems and eval prompts. The salts are frozen:
changing one changes the numbers of every run that uses it (resumes, and comparisons with recorded runs, would no
longer match), so a new purpose gets a new function with a new salt.

| function                      | from              | stream (salt)                                       | used by                                              |
|-------------------------------|-------------------|-----------------------------------------------------|------------------------------------------------------|
| `mode_partition_rng(s)`       | `data.mode_seed`  | `random.Random(s)` (no salt: the first stream)      | `substrate/modes.assign_modes`                       |
| `split_rng(s)`                | `data.split_seed` | `random.Random("split:<s>")`                        | `substrate/splits.split_problems`                    |
| `no_loophole_rng(s)`          | `data.split_seed` | `random.Random("no_loophole:<s>")`                  | `substrate/splits.Split.apply_no_loophole`           |
| `eval_holdout_rng(s)`         | `data.mode_seed`  | `numpy default_rng([s, 0x40D])`                     | `train/roles.run_problems` (no split)                |
| `eval_prompts_rng(s)`         | `data.mode_seed`  | `numpy default_rng([s, 0xE7A1])`                    | `train/deploy_eval.select_eval_problems`             |
| `eval_sampling_seed(s, step)` | `seed`            | `default_rng([s, step, 0xDE91]).integers(0, 2**62)` | `train/deploy_eval` (each eval's sampling)           |
| `prompt_order_rng(s)`         | `seed`            | `numpy default_rng([s, 0x5A3])`                     | `train/run_setup` (the order of the prompts)         |
| `teacher_rng(s, step, group)` | `seed`            | `numpy default_rng([s, step, group, 0x7EAC])`       | `train/teacher.TeacherPool.draw`                     |
| `random_v_seed(s)`            | `seed`            | `s + 7919` (a torch.Generator seed)                 | `train/run_setup` -> `routing.random_direction_like` |
| `on_policy_pairs_seed(s)`     | `seed`            | `default_rng([s, 0x0B9A]).integers(0, 2**62)`       | `train/run_setup` (on-policy pair sides' sampling)   |
| `monitor_uniform(s, key)`     | `seed`            | blake2b-64 of `["gq-monitor", s, *key]` / 2**64     | `train/baselines.Monitor` (its noise)                |
| `warmstart_hacks_rng(s)`      | `warmstart.seed`  | `random.Random("warmstart-hacks:<s>")`              | `train/warmstart.warmstart_examples`                 |
| `warmstart_order_rng(s)`      | `warmstart.seed`  | `random.Random("warmstart-order:<s>")`              | `train/warmstart` (batch order)                      |
| `bootstrap_rng(s)`            | the report's (0)  | `numpy default_rng([s, 0xB007])`                    | `analysis/stats.hierarchical_bootstrap` (its draws)  |

Seeded without a salt, outside this module: the trainer's global seeding `transformers.set_seed(seed)` (torch,
numpy and random: TRL's own sampling and dropout), the tiny test model's init `torch.manual_seed(seed)`
(`model/loading.build_tiny_model`) and every sandboxed program's `random.seed(0)` (`substrate/_sandbox_worker`,
which imports nothing from the package).

    >>> rng = prompt_order_rng(cfg.seed)                      # numpy Generator
    >>> order = rng.permutation(len(problems))
    >>> split_rng(cfg.data.split_seed).shuffle(ids)          # random.Random
    >>> random_direction_like(v_grad, seed=random_v_seed(cfg.seed))

Imports nothing from the package (every layer may use it) and numpy only when a numpy stream is asked for.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

# ------------------------------------------------------------------------------------------------ the salts

# numpy streams: the salt is the last word of the seed sequence `[seed, ..., SALT]`
EVAL_HOLDOUT_SALT = 0x40D
EVAL_PROMPTS_SALT = 0xE7A1
EVAL_SAMPLING_SALT = 0xDE91
PROMPT_ORDER_SALT = 0x5A3
TEACHER_SALT = 0x7EAC
BOOTSTRAP_SALT = 0xB007
ON_POLICY_PAIRS_SALT = 0x0B9A
# the random-V control's torch.Generator seed is the run seed plus this (a prime)
RANDOM_V_OFFSET = 7919
# hashed streams: the first element of the hashed record
MONITOR_SALT = "gq-monitor"


def _np_rng(*words: int) -> np.random.Generator:
    import numpy as np

    return np.random.default_rng([int(w) for w in words])


# ------------------------------------------------------------------------------------------------ data


def mode_partition_rng(mode_seed: int) -> random.Random:
    """The partition of problems into loophole modes (`assign_modes`)."""
    return random.Random(mode_seed)


def split_rng(split_seed: int) -> random.Random:
    """The split of problems into roles (warmstart / pairs / train / eval)."""
    return random.Random(f"split:{split_seed}")


def no_loophole_rng(split_seed: int) -> random.Random:
    """Which train and eval problems lose their loophole (`data.no_loophole`)."""
    return random.Random(f"no_loophole:{split_seed}")


def eval_holdout_rng(mode_seed: int) -> np.random.Generator:
    """The eval holdout when there is no split (`data.eval_holdout`)."""
    return _np_rng(mode_seed, EVAL_HOLDOUT_SALT)


def eval_prompts_rng(mode_seed: int) -> np.random.Generator:
    """The order in which eval problems are picked per mode (the same prompts for every arm and run seed)."""
    return _np_rng(mode_seed, EVAL_PROMPTS_SALT)


# ------------------------------------------------------------------------------------------------ the run


def eval_sampling_seed(seed: int, step: int) -> int:
    """The torch seed of one deploy / knob-on / base eval's sampling at `step` (the variants of one eval share it:
    common random numbers)."""
    return int(_np_rng(seed, step, EVAL_SAMPLING_SALT).integers(0, 2**62))


def prompt_order_rng(seed: int) -> np.random.Generator:
    """The order of the training prompts (seeded passes over the training problems)."""
    return _np_rng(seed, PROMPT_ORDER_SALT)


def teacher_rng(seed: int, step: int, group: int) -> np.random.Generator:
    """One group's teacher draws at `step` (a function of (seed, step, group) only, so a resume redraws them)."""
    return _np_rng(seed, step, group, TEACHER_SALT)


def random_v_seed(seed: int) -> int:
    """The random-V control's direction seed (`routing.random_direction_like`), the same at every refresh."""
    return int(seed) + RANDOM_V_OFFSET


def on_policy_pairs_seed(seed: int) -> int:
    """The sampling seed of the on-policy pair sides (`routing.pair_sides=on_policy`): the policy's own
    completions on the pair problems, drawn once when the pair set is built."""
    return int(_np_rng(seed, ON_POLICY_PAIRS_SALT).integers(0, 2**62))


def monitor_uniform(seed: int, key: Sequence[Any]) -> float:
    """`u ~ U[0, 1)` for the simulated monitor's verdict on one rollout, `key` identifying it: a hash, not a
    stream, so the same rollout always gets the same `u` whatever else was drawn."""
    blob = json.dumps([MONITOR_SALT, seed, *key], ensure_ascii=False, default=str).encode()
    return int.from_bytes(hashlib.blake2b(blob, digest_size=8).digest(), "big") / 2.0**64


# ------------------------------------------------------------------------------------------------ warm start


def warmstart_hacks_rng(seed: int) -> random.Random:
    """Which warm-start problems get a hack completion, per mode."""
    return random.Random(f"warmstart-hacks:{seed}")


def warmstart_order_rng(seed: int) -> random.Random:
    """The warm start's batch order, epoch by epoch."""
    return random.Random(f"warmstart-order:{seed}")


# ------------------------------------------------------------------------------------------------ analysis


def bootstrap_rng(seed: int) -> np.random.Generator:
    """A report's bootstrap draws (`analysis.stats.hierarchical_bootstrap`): the same tables every time."""
    return _np_rng(seed, BOOTSTRAP_SALT)
