"""TRL and transformers where the project goes past their public API: every private name it relies on, in one place.

The trainer extends TRL (pinned 1.16.0, transformers 5.23.0: pyproject.toml) through a few private methods that have
no public equivalent. Each is listed in `PINNED` with the parameters the project calls it with (or overrides it
with), and checked against the installed libraries when this module is imported: an upgrade that renames, moves or
re-signs one fails at import, with a message naming what moved, instead of deep inside a training step.
tests/test_trl_compat.py checks each signature and that no other module of the package touches these names.

| private name (TRL 1.16 / transformers 5) | what the project does with it |
|---|---|
| `GRPOTrainer._generate_and_score_completions` | overridden by `HookedGRPOTrainer`: `after_scoring(batch)` runs on its output |
| `Trainer._load_from_checkpoint` | overridden by `HookedGRPOTrainer`: `load_model_state(dir)` (only the adapter is trained) |
| `Trainer._load_optimizer_and_scheduler`, `Trainer._load_rng_state` | not called: they read the files `save_checkpoint` writes |
| `GRPOTrainer._tokenize_prompts` | `tokenize_prompts`: the rollout function tokenises as TRL does |
| `GRPOTrainer._generate_single_turn` | `generate_single_turn`: TRL's own sampling (vLLM, `sampler="trl"`) |
| `GRPOTrainer._get_per_token_logps_and_entropies` | `per_token_logps`: the loss's own log-prob forward (adv_mod's scoring pass) |
| the fused head's call convention (`fused_lm_head=True`, `labels`, `.log_probs`) | `fused_head_logps`: policy/logp_mean read off the loss forward |
| `VLLMGeneration._iter_named_params`, `._fix_param_name_to_vllm` | `push_weights_to_vllm`: vLLM gets merged weights |
| `GenerationMixin._prepare_generation_config`, `GenerationConfig._get_default_generation_params` | `merged_generation_config`, `default_generation_params`: the fast sampler reads what `generate` would |
| `trl.trainer.utils._use_triton`, `._CHUNKED_LOGPROB_CHUNK_SIZE`, `trl.kernels.chunked_logprob.TOKEN_CHUNK_SIZE` | `tile_cpu_fused_head`: the fused head on a CPU scores the completion tokens only, in cache-sized tiles |

What public API does is done with it: checkpoint files are written with `torch.save` under transformers' own file
names (`save_checkpoint`), in the format its resume reads; TRL's tokenizer is its public `processing_class`.

    >>> tokenize_prompts(trainer, prompts)                      # [[int]], as TRL tokenises them
    >>> generate_single_turn(trainer, prompt_ids, 8)            # (completion ids, sampling log-probs or None)
    >>> save_checkpoint(trainer, out_dir)                       # optimizer.pt, scheduler.pt, rng_state.pth, ...
"""

from __future__ import annotations

import importlib
import inspect
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
import trl
from transformers.trainer import OPTIMIZER_NAME, SCHEDULER_NAME, TRAINER_STATE_NAME
from trl import GRPOTrainer

# ==========================================================================================================
# the pins


class TRLCompatError(ImportError):
    """An installed TRL / transformers no longer has a private name the project relies on, as pinned."""


@dataclass(frozen=True)
class Pinned:
    """One private name: `path` (module, then attributes), the parameters the project passes or overrides (each
    further parameter must have a default), and text its source must contain (a call convention)."""

    path: str
    params: tuple[str, ...]
    use: str
    source_has: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    def resolve(self) -> Any:
        """The object at `path`: the longest importable module prefix, then attributes."""
        parts = self.path.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            for attr in parts[cut:]:
                obj = getattr(obj, attr)  # AttributeError: moved or renamed
            return obj
        raise ImportError(f"no module of {self.path} can be imported")

    def problem(self) -> str | None:
        """Why the installed libraries do not match this pin, or None."""
        try:
            obj = self.resolve()
        except (AttributeError, ImportError) as e:
            return f"{self.path} is gone ({e})"
        try:
            sig = inspect.signature(obj)
        except (TypeError, ValueError) as e:
            return f"{self.path} has no readable signature ({e})"
        got = list(sig.parameters.values())
        names = [p.name for p in got[: len(self.params)]]
        if names != list(self.params):
            return f"{self.path}{sig}: expected its parameters to start with ({', '.join(self.params)})"
        extra = [p.name for p in got[len(self.params) :] if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if extra:
            return f"{self.path}{sig}: new required parameter(s) {extra}"
        if self.source_has:
            src = inspect.getsource(obj)
            missing = [s for s in self.source_has if s not in src]
            if missing:
                return f"{self.path}: its source no longer contains {missing}"
        return None


PINNED: tuple[Pinned, ...] = (
    Pinned("trl.GRPOTrainer._generate_and_score_completions", ("self", "inputs"),
           "overridden (HookedGRPOTrainer): row kinds, the advantage std floor and the intervention's advantage change "
           "run on TRL's scored batch"),
    Pinned("transformers.Trainer._load_from_checkpoint", ("self", "resume_from_checkpoint", "model"),
           "overridden (HookedGRPOTrainer): a checkpoint holds the adapter only, not the model's weights"),
    Pinned("transformers.Trainer._load_optimizer_and_scheduler", ("self", "checkpoint"),
           "reads optimizer.pt / scheduler.pt as save_checkpoint writes them", ("OPTIMIZER_NAME", "SCHEDULER_NAME")),
    Pinned("transformers.Trainer._load_rng_state", ("self", "checkpoint"),
           "reads rng_state.pth as save_checkpoint writes it",
           ('"rng_state.pth"', '["python"]', '["numpy"]', '["cpu"]')),
    Pinned("trl.GRPOTrainer._tokenize_prompts", ("self", "prompts"),
           "tokenize_prompts: the rollout function tokenises prompts exactly as TRL does"),
    Pinned("trl.GRPOTrainer._generate_single_turn", ("self", "prompt_ids", "images", "multimodal_fields", "num_generations"),
           "generate_single_turn: TRL's own sampling (vLLM, sampler=trl, settings the fast sampler lacks)"),
    Pinned("trl.GRPOTrainer._get_per_token_logps_and_entropies",
           ("self", "model", "input_ids", "attention_mask", "logits_to_keep", "batch_size"),
           "per_token_logps: adv_mod scores rollouts with the loss's own log-prob forward",
           ("labels=labels, fused_lm_head=True", "outputs.log_probs")),
    Pinned("trl.trainer.utils.add_fused_lm_head", ("model", "temperature"),
           "fused_head_logps: the loss forward is model(..., labels=..., fused_lm_head=True) -> .log_probs (B, T-1); "
           "tile_cpu_fused_head: which positions it scores and its vocabulary tile are read from module globals",
           ("fused_lm_head=False, labels=None", "labels = labels[:, 1:]", "compact = _use_triton(hidden_states.device)",
            "_CHUNKED_LOGPROB_CHUNK_SIZE,")),
    Pinned("trl.kernels.chunked_logprob.ChunkedLogProbFunction.forward",
           ("ctx", "hidden", "weight", "bias", "targets", "temperature", "chunk_size"),
           "tile_cpu_fused_head: the token tile is the module global TOKEN_CHUNK_SIZE",
           ("range(0, N, TOKEN_CHUNK_SIZE)", "_use_triton(device)")),
    Pinned("trl.generation.vllm_generation.VLLMGeneration._iter_named_params", ("self",),
           "push_weights_to_vllm: replaced per trainer, so vLLM gets W + U diag(delta) V^T"),
    Pinned("trl.generation.vllm_generation.VLLMGeneration._fix_param_name_to_vllm", ("self", "name"),
           "push_weights_to_vllm: parameter names as vLLM expects them"),
    Pinned("transformers.generation.utils.GenerationMixin._prepare_generation_config", ("self", "generation_config"),
           "merged_generation_config: the fast sampler samples with the config generate() would use"),
    Pinned("transformers.GenerationConfig._get_default_generation_params", (),
           "default_generation_params: which generation settings are at their defaults"),
)


# module globals `tile_cpu_fused_head` sets: (module, name, type)
PINNED_GLOBALS: tuple[tuple[str, str, type], ...] = (
    ("trl.trainer.utils", "_use_triton", type(lambda: None)),
    ("trl.trainer.utils", "_CHUNKED_LOGPROB_CHUNK_SIZE", int),
    ("trl.kernels.chunked_logprob", "TOKEN_CHUNK_SIZE", int),
)


def _global_problem(module: str, name: str, kind: type) -> str | None:
    value = getattr(importlib.import_module(module), name, None)
    return None if isinstance(value, kind) else f"{module}.{name} is gone or no longer a {kind.__name__} ({value!r})"


def check(pins: tuple[Pinned, ...] = PINNED) -> None:
    """Raise `TRLCompatError` naming every pin the installed TRL / transformers no longer match."""
    found = [(p, p.problem()) for p in pins]
    found += [(Pinned(f"{m}.{n}", (), "tile_cpu_fused_head"), _global_problem(m, n, k)) for m, n, k in PINNED_GLOBALS]
    problems = [f"  - {why}\n    (used for: {p.use})" for p, why in found if why is not None]
    if problems:
        raise TRLCompatError(
            f"gradient_quarantine is pinned to trl==1.16.0 and transformers==5.23.0 (installed: trl {trl.__version__}, "
            f"transformers {transformers.__version__}); these private names moved:\n" + "\n".join(problems)
            + "\nAdapt gradient_quarantine/train/trl_compat.py (and its pins) or install the pinned versions."
        )


check()


# ==========================================================================================================
# the two private override points, as named hooks


class HookedGRPOTrainer(GRPOTrainer):
    """TRL's `GRPOTrainer` whose two private override points call named hooks; the project's trainer
    (train/trainer.py) overrides the hooks, never the private methods."""

    def _generate_and_score_completions(self, inputs):
        return self.after_scoring(super()._generate_and_score_completions(inputs))

    def after_scoring(self, batch: dict[str, Any]) -> dict[str, Any]:
        """TRL's scored generation batch (`advantages`, ids, masks, ...), before it is shuffled and split into
        micro-batches. Return it (changed in place or not)."""
        return batch

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        self.load_model_state(Path(resume_from_checkpoint), model)

    def load_model_state(self, checkpoint_dir: Path, model=None) -> None:
        """Restore the trained weights from a checkpoint directory (TRL's default: the whole model's)."""
        super()._load_from_checkpoint(str(checkpoint_dir), model)


# ==========================================================================================================
# checkpoint files, in the formats transformers' resume reads (public torch.save; no private writer)


def save_checkpoint(trainer, out_dir: Path) -> None:
    """`optimizer.pt`, `scheduler.pt`, `rng_state.pth` and `trainer_state.json`: what
    `trainer.train(resume_from_checkpoint=out_dir)` restores (the model's weights are the caller's)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    args = trainer.args
    torch.save(trainer.optimizer.state_dict(), out_dir / OPTIMIZER_NAME)
    torch.save(trainer.lr_scheduler.state_dict(), out_dir / SCHEDULER_NAME)
    rng: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(), "cpu": torch.random.get_rng_state()}
    if torch.cuda.is_available():
        distributed = args.world_size > 1
        rng["cuda"] = torch.cuda.random.get_rng_state_all() if distributed else torch.cuda.random.get_rng_state()
    torch.save(rng, out_dir / ("rng_state.pth" if args.world_size <= 1 else f"rng_state_{args.process_index}.pth"))
    trainer.state.save_to_json(str(out_dir / TRAINER_STATE_NAME))


# ==========================================================================================================
# calls


def tokenize_prompts(trainer, prompts: list) -> list[list[int]]:
    """Prompt token ids as TRL tokenises them (its chat template and settings); text prompts only."""
    prompt_ids, images, multimodal_fields = trainer._tokenize_prompts(prompts)
    if images is not None or multimodal_fields:
        raise ValueError("multimodal prompts are not supported by this trainer")
    return prompt_ids


def generate_single_turn(trainer, prompt_ids: list[list[int]], num_generations: int):
    """TRL's own sampling of text prompts: `(completion_ids, logprobs)`, logprobs None on the transformers path."""
    return trainer._generate_single_turn(prompt_ids, None, {}, num_generations)


def per_token_logps(trainer, model, input_ids: torch.Tensor, attention_mask: torch.Tensor, logits_to_keep: int) -> torch.Tensor:
    """(B, logits_to_keep) log-probs of the last `logits_to_keep` tokens, from TRL's own forward for the loss
    (temperature, fused head, autocast as in training), in one chunk."""
    logps, _, _ = trainer._get_per_token_logps_and_entropies(model, input_ids, attention_mask, logits_to_keep)
    return logps


def fused_head_logps(kwargs: Mapping[str, Any], output: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
    """From a forward hook's kwargs and output: `(log_probs, mask)`, each (B, T-1), for a forward through TRL's fused
    head (the loss's: `fused_lm_head=True`, `labels` = -100 off the completion), else None. `log_probs` is detached,
    0 where `mask` (the scored completion tokens) is False."""
    log_probs = getattr(output, "log_probs", None)
    if not kwargs.get("fused_lm_head") or log_probs is None:
        return None
    mask = kwargs["labels"][:, 1:] != -100  # (B, T-1)
    return torch.where(mask, log_probs.detach(), 0.0), mask


# ==========================================================================================================
# the fused head's tiles on a CPU

# TRL's fused head (`add_fused_lm_head`) projects through the LM head in [TOKEN_CHUNK_SIZE, vocab chunk] tiles, 4096 x
# 32768 by default, and scores only the completion positions where Triton runs it; elsewhere it scores every position
# (prompt included) so that tile shapes stay fixed for compiled backends. On a CPU that is the wrong trade: a demo
# micro-batch (8 rows x ~430 positions, ~60 completion tokens a row) projected 3,400 positions to score 480, and each
# 445 MB tile and the five temporaries of its torch fold were allocated, faulted in page by page and handed back to
# the kernel. Completion positions only, in 512 x 4096 tiles (8 MB: they stay in the allocator's heap and in cache):
# 0.85 s against 16.9 s for the head's forward + backward at that shape, minor faults 5.8 k against 2.7 M
# (bench/README.md, "Memory churn"). Same arithmetic: only the summation order of the online log-sum-exp changes.
CPU_TOKEN_TILE = 512
CPU_VOCAB_TILE = 4096
_TRL_DEFAULTS: dict[str, Any] = {}


def tile_cpu_fused_head(enabled: bool) -> None:
    """Make TRL's fused head score the completion tokens alone, in CPU-sized tiles (`enabled`), or restore TRL's own
    settings. Process-wide (TRL reads module globals), and the tiles apply on every device: enable it for a run on a
    CPU only (train/run_trainer.py does)."""
    import trl.kernels.chunked_logprob as kernel
    import trl.trainer.utils as utils

    if not _TRL_DEFAULTS:
        _TRL_DEFAULTS.update(use_triton=utils._use_triton, vocab=utils._CHUNKED_LOGPROB_CHUNK_SIZE,
                             tokens=kernel.TOKEN_CHUNK_SIZE)  # fmt: skip
    if enabled:
        trl_use_triton = _TRL_DEFAULTS["use_triton"]
        # read by add_fused_lm_head only, to choose compact scoring; the kernel's own dispatch keeps TRL's function
        utils._use_triton = lambda device: device.type == "cpu" or trl_use_triton(device)
        utils._CHUNKED_LOGPROB_CHUNK_SIZE = CPU_VOCAB_TILE
        kernel.TOKEN_CHUNK_SIZE = CPU_TOKEN_TILE
    else:
        utils._use_triton = _TRL_DEFAULTS["use_triton"]
        utils._CHUNKED_LOGPROB_CHUNK_SIZE = _TRL_DEFAULTS["vocab"]
        kernel.TOKEN_CHUNK_SIZE = _TRL_DEFAULTS["tokens"]


def push_weights_to_vllm(trainer, named_weights: Callable[[], Iterator[tuple[str, torch.Tensor]]]) -> bool:
    """Make TRL's vLLM weight sync push `named_weights()` (names as the plain model's) instead of walking the
    model's parameters. False when the trainer does not generate with vLLM."""
    gen = getattr(trainer, "vllm_generation", None)
    if gen is None:
        return False

    def iter_named_params():
        for name, tensor in named_weights():
            yield gen._fix_param_name_to_vllm(name), tensor

    gen._iter_named_params = iter_named_params
    return True


def merged_generation_config(model, generation_config):
    """The GenerationConfig `model.generate(generation_config=...)` samples with (merged with the model's own)."""
    merged, _ = model._prepare_generation_config(generation_config)
    return merged


def default_generation_params() -> dict[str, Any]:
    """transformers' global generation defaults (what a merged config spells out)."""
    return transformers.GenerationConfig._get_default_generation_params()


def tokenizer_of(trainer):
    """The trainer's tokenizer (its processing class, or a processor's tokenizer): public attributes only."""
    pc = trainer.processing_class
    return getattr(pc, "tokenizer", pc)
