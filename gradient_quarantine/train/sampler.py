"""Fast sampling for the transformers backend: the training rollouts and the deploy / base evals.

**What it replaces.** TRL 1.16's `GRPOTrainer._generate_single_turn`, transformers branch (left-pad every row,
`model.generate(generation_config=trainer.generation_config)`, cut each row after its first EOS), when
train/rollouts.py samples the policy rows, and the `model.generate` loop of train/deploy_eval.py. TRL's vLLM and
continuous-batching branches, multi-process runs and models or settings this module does not cover still go
through TRL / `generate` (`generate_like_trl`, `unsupported`).

**What stays theirs.** The model's own modules do every computation (embedding, decoder layers with the SVD
adapter as attached, final norm, lm_head, rotary embedding, transformers' SDPA attention); the sampling settings
are the GenerationConfig `generate` would run with (TRL's, merged with the model's exactly as `generate` merges
them); the logits warpers are transformers' own classes in `generate`'s order (temperature, top-k, top-p, min-p)
and `min_new_tokens` masks the EOS ids as `generate` does; a row stops at its first EOS, which it keeps, and the
step stops when every row has stopped or at `max_new_tokens`.

**What is different** (why it is faster; the profile and figures are in bench/README.md):

1. one prefill per distinct prompt, its K/V written into all of that prompt's rows (TRL prefills each row: a
   group of 8 prefills the same prompt 8 times, more work than 192 decode steps);
2. K/V live in one preallocated buffer per layer, `(rows, kv_heads, prompt + new, head_dim)`, written in place
   (transformers' DynamicCache concatenates at every step: at 16 rows that copy cost as much CPU time as all the
   matmuls); prompts of different lengths are right-aligned in it, with a padding mask;
3. all rows of a call are decoded together, in as few batches as the K/V budget allows (`max_cache_bytes`),
   and rows that stopped leave the batch (`generate` keeps computing them until the last row stops);
4. a token is drawn by inverse CDF (float64 cumulative sum, one uniform per row) instead of `torch.multinomial`,
   which draws an exponential per vocabulary entry (27 ms a step at 16 rows x 49k, 10x the rest of sampling).

**Pins** (tests/test_sampler.py): with greedy decoding the completions are token for token those of TRL's
`_generate_single_turn` (prompts of different lengths, EOS mid-way, several batches); with sampling the
returned log-probabilities equal a fresh full forward's `log_softmax(logits / T)` at the sampled tokens (what
TRL's loss computes); top-k = 1 sampling is greedy. **Not the same as TRL:** the random stream. For one seed the
sampled tokens differ from `generate`'s (same distribution, different draws), so a run sampled here is not
bit-for-bit a run sampled by TRL; `RolloutFunc(sampler="trl")` keeps TRL's sampling where that matters.

    >>> params = SamplingParams(max_new_tokens=192, eos_token_ids=(2,), pad_token_id=2, temperature=1.0)
    >>> out = sample_rows(model, [prompt_a] * 8 + [prompt_b] * 8, params)   # one prefill per prompt
    >>> out.completion_ids[0]          # token ids up to and including the first EOS
    >>> ids, logprobs, who = generate_like_trl(trainer, prompt_ids, num_generations=8)   # train/rollouts.py
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

# Decoder families whose layers this module drives directly: `model.model.{embed_tokens, layers, norm,
# rotary_emb}` + `model.lm_head`, full (not sliding-window) causal attention, K/V written through
# `past_key_values.update(k, v, layer_idx)`. Others go through `generate`.
SUPPORTED_MODEL_TYPES = ("llama", "qwen2", "qwen3")

# K/V buffer budget per batch. SmolLM2-135M holds 46 KB per row and position (30 layers x K,V x 3 heads x 64 x
# fp32), so 1 GiB is ~50 rows of 231 + 192 tokens: batches large enough that a step's matmuls run near their
# best rate on a CPU, small enough for two jobs side by side on a small machine.
DEFAULT_CACHE_BYTES = 1 << 30

# GenerationConfig fields this sampler implements (any other field that differs from transformers' default
# sends the call to `generate`).
_HANDLED = {
    "max_new_tokens", "min_new_tokens", "do_sample", "temperature", "top_k", "top_p", "min_p",
    "repetition_penalty", "eos_token_id", "pad_token_id", "bos_token_id", "disable_compile", "use_cache",
    "cache_implementation", "max_length", "transformers_version", "_from_model_config",
}  # fmt: skip


@dataclass(frozen=True)
class SamplingParams:
    """What `generate` would do, reduced to what this sampler implements."""

    max_new_tokens: int
    eos_token_ids: tuple[int, ...]
    pad_token_id: int
    do_sample: bool = True
    temperature: float = 1.0
    top_k: int = 0  # 0 / None: off
    top_p: float = 1.0
    min_p: float | None = None
    min_new_tokens: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.do_sample and not self.temperature > 0:
            raise ValueError(f"sampling needs temperature > 0, got {self.temperature}")

    def warpers(self) -> list:
        """transformers' logits warpers, in `generate`'s order (`_get_logits_processor`); none when greedy."""
        from transformers.generation.logits_process import (
            MinPLogitsWarper,
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        if not self.do_sample:
            return []
        out: list = []
        if self.temperature != 1.0:
            out.append(TemperatureLogitsWarper(self.temperature))
        if self.top_k:
            out.append(TopKLogitsWarper(top_k=self.top_k, min_tokens_to_keep=1))
        if self.top_p < 1.0:
            out.append(TopPLogitsWarper(top_p=self.top_p, min_tokens_to_keep=1))
        if self.min_p is not None:
            out.append(MinPLogitsWarper(min_p=self.min_p, min_tokens_to_keep=1))
        return out


def params_from_generation_config(gc, eos_token_ids: Sequence[int], pad_token_id: int) -> SamplingParams | str:
    """SamplingParams for an effective GenerationConfig, or a string saying why this sampler cannot run it."""
    from transformers import GenerationConfig

    # a field is "off" when unset, False, or at transformers' blank or global-default value (a config merged by
    # `generate` spells the defaults out)
    blank, defaults = GenerationConfig(), GenerationConfig._get_default_generation_params()
    def off(k: str, v) -> bool:
        return v is None or v is False or v == getattr(blank, k, None) or (k in defaults and v == defaults[k])

    extra = sorted(k for k, v in gc.to_dict().items() if k not in _HANDLED and not off(k, v))
    if extra:
        return f"generation settings not implemented here: {extra}"
    if (gc.repetition_penalty or 1.0) != 1.0:
        return f"repetition_penalty={gc.repetition_penalty}"
    if gc.cache_implementation is not None:
        return f"cache_implementation={gc.cache_implementation!r}"
    if gc.max_new_tokens is None:
        return "max_new_tokens is unset (a max_length-only config)"
    return SamplingParams(
        max_new_tokens=int(gc.max_new_tokens),
        eos_token_ids=tuple(int(e) for e in eos_token_ids),
        pad_token_id=int(pad_token_id),
        do_sample=bool(gc.do_sample),
        temperature=float(gc.temperature if gc.temperature is not None else 1.0),
        top_k=int(gc.top_k or 0),
        top_p=float(gc.top_p if gc.top_p is not None else 1.0),
        min_p=gc.min_p,
        min_new_tokens=int(gc.min_new_tokens or 0),
    )


def unsupported(model) -> str | None:
    """Why this sampler cannot drive `model` (None: it can)."""
    cfg = getattr(model, "config", None)
    if cfg is None or getattr(cfg, "model_type", None) not in SUPPORTED_MODEL_TYPES:
        return f"model type {getattr(cfg, 'model_type', None)!r} (supported: {SUPPORTED_MODEL_TYPES})"
    if getattr(cfg, "_attn_implementation", None) != "sdpa":
        return f"attention implementation {getattr(cfg, '_attn_implementation', None)!r} (needs 'sdpa')"
    if any(t != "full_attention" for t in (getattr(cfg, "layer_types", None) or [])):
        return "sliding-window layers"
    inner = getattr(model, "model", None)
    if getattr(model, "lm_head", None) is None or not all(
        hasattr(inner, a) for a in ("embed_tokens", "layers", "norm", "rotary_emb")
    ):
        return "not a model.model.{embed_tokens,layers,norm,rotary_emb} + lm_head decoder"
    return None


# ----------------------------------------------------------------------------------------------------------
# K/V buffer


class _KVBuffer:
    """Duck-typed `past_key_values` for the decoder layers: one preallocated (rows, kv_heads, S, head_dim)
    K and V tensor per layer, written in place. Rows are right-aligned: row b's prompt occupies columns
    [P - L_b, P), its n-th new token column P + n.

    Two modes, set by the caller before each pass:
      prefill(r0, r1, start): the pass is one prompt (batch 1); its K/V go to rows r0:r1 from `start` on, and
        attention sees the prompt's own K/V (causal, no padding);
      decode(col, lo): the pass is one new token per row; it goes to column `col`, attention sees [lo, col].
    """

    def __init__(self, n_layers: int, rows: int, kv_heads: int, length: int, head_dim: int, dtype, device):
        shape = (rows, kv_heads, length, head_dim)
        self.k = [torch.empty(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.v = [torch.empty(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self._prefill: tuple[int, int, int] | None = None
        self._col = self._lo = 0

    def prefill(self, r0: int, r1: int, start: int) -> None:
        self._prefill = (r0, r1, start)

    def decode(self, col: int, lo: int) -> None:
        self._prefill, self._col, self._lo = None, col, lo

    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *args, **kwargs):
        k, v = self.k[layer_idx], self.v[layer_idx]
        if self._prefill is not None:
            r0, r1, start = self._prefill  # key: (1, kv_heads, L, head_dim)
            end = start + key.shape[2]
            k[r0:r1, :, start:end] = key  # broadcast over the prompt's rows
            v[r0:r1, :, start:end] = value
            # the padding left of a shorter prompt is masked, but a masked score is still q.k + (-inf): NaN if the
            # buffer's uninitialised memory holds a NaN there, so it is zeroed
            k[r0:r1, :, :start] = 0
            v[r0:r1, :, :start] = 0
            return key, value
        k[:, :, self._col] = key[:, :, 0]  # key: (rows, kv_heads, 1, head_dim)
        v[:, :, self._col] = value[:, :, 0]
        return k[:, :, self._lo : self._col + 1], v[:, :, self._lo : self._col + 1]

    def keep(self, idx: torch.Tensor) -> None:
        """Drop the rows not in `idx` (rows that stopped): one copy of what is left."""
        self.k = [t.index_select(0, idx) for t in self.k]
        self.v = [t.index_select(0, idx) for t in self.v]


# ----------------------------------------------------------------------------------------------------------
# the sampler


def kv_bytes_per_position(model) -> int:
    """Bytes of K/V one row holds per position (all layers)."""
    cfg = model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    elem = next(model.parameters()).element_size()
    return cfg.num_hidden_layers * 2 * cfg.num_key_value_heads * head_dim * elem


@dataclass
class Trace:
    """The shapes a call ran (the benchmark replays them for the matmul floor)."""

    prefill_lens: list[int] = field(default_factory=list)  # one entry per prefill (prompt length)
    decode_rows: list[int] = field(default_factory=list)  # rows in the batch at each decode forward
    batches: int = 0
    compactions: int = 0


@dataclass
class Samples:
    """Per row, in the order of the prompts given: token ids up to and including the first EOS (or
    `max_new_tokens` of them) and, when asked for, each token's log-probability `log_softmax(logits / T)`."""

    completion_ids: list[list[int]]
    logprobs: list[list[float]] | None
    trace: Trace


def effective_params(model, gc, eos_token_ids: Sequence[int], pad_token_id: int) -> SamplingParams | str:
    """The SamplingParams `model.generate(generation_config=gc)` would sample with (gc merged with the model's
    own generation config, as `generate` merges them), or why this sampler cannot run it."""
    why = unsupported(model)
    if why:
        return why
    merged, _ = model._prepare_generation_config(gc)  # transformers' own merge (pinned 5.x)
    return params_from_generation_config(merged, eos_token_ids, pad_token_id)


def even_chunks(n: int, cap: int) -> list[tuple[int, int]]:
    """[lo, hi) ranges that split n items into the fewest chunks of at most `cap`, as even as possible."""
    k = max(1, math.ceil(n / max(1, cap)))
    bounds = [round(i * n / k) for i in range(k + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(k)]


@torch.no_grad()
def sample_rows(
    model,
    prompt_ids: Sequence[Sequence[int]],
    params: SamplingParams,
    *,
    max_cache_bytes: int = DEFAULT_CACHE_BYTES,
    return_logprobs: bool = False,
) -> Samples:
    """One completion per row (rows with the same prompt share its prefill). Uses the global RNG (sampling)."""
    why = unsupported(model)
    if why:
        raise ValueError(f"the fast sampler cannot drive this model: {why}")
    n = len(prompt_ids)
    by_prompt: dict[tuple[int, ...], list[int]] = {}
    for i, p in enumerate(prompt_ids):
        by_prompt.setdefault(tuple(int(t) for t in p), []).append(i)
    order = [i for rows in by_prompt.values() for i in rows]  # rows grouped by prompt, groups contiguous
    width = max(len(p) for p in prompt_ids) + params.max_new_tokens
    cap = max_cache_bytes // (kv_bytes_per_position(model) * width)
    out_ids: list[list[int]] = [[] for _ in range(n)]
    out_lp: list[list[float]] | None = [[] for _ in range(n)] if return_logprobs else None
    trace = Trace()
    for lo, hi in even_chunks(n, cap):
        rows = order[lo:hi]
        ids, lps = _sample_batch(model, [tuple(prompt_ids[r]) for r in rows], params, return_logprobs, trace)
        for k, r in enumerate(rows):
            out_ids[r] = ids[k]
            if out_lp is not None:
                out_lp[r] = lps[k]
    return Samples(out_ids, out_lp, trace)


def _forward(model, ids: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor | None, cache: _KVBuffer) -> torch.Tensor:
    """The model's own modules on `ids` (B, T) at positions `pos` (B, T); returns the last position's logits,
    float32 (B, V), as `generate` reads them."""
    inner = model.model
    h = inner.embed_tokens(ids)  # (B, T, H)
    pe = inner.rotary_emb(h, pos)  # (cos, sin), each (B, T, head_dim)
    for layer in inner.layers[: model.config.num_hidden_layers]:
        h = layer(h, attention_mask=mask, position_ids=pos, past_key_values=cache, position_embeddings=pe)
        if isinstance(h, tuple):
            h = h[0]
    h = inner.norm(h[:, -1:])  # (B, 1, H): norm is per position, only the last one is read
    return model.lm_head(h)[:, -1].float()  # (B, V)


def _draw(probs: torch.Tensor) -> torch.Tensor:
    """One token per row from `probs` (B, V) by inverse CDF: the first index whose cumulative mass exceeds a
    uniform draw. float64 sums; u is kept below the total, so a zero-probability token is never drawn."""
    c = probs.cumsum(-1, dtype=torch.float64)  # (B, V)
    total = c[:, -1:]
    u = torch.rand(total.shape, dtype=torch.float64, device=probs.device) * total
    u = torch.minimum(u, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(c, u, right=True).squeeze(1)  # (B,)


def _sample_batch(model, prompts: list[tuple[int, ...]], params: SamplingParams, want_lp: bool, trace: Trace):
    cfg = model.config
    device = model.lm_head.weight.device
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    B = len(prompts)
    lens = torch.tensor([len(p) for p in prompts], device=device)  # (B,)
    P = int(lens.max())
    cache = _KVBuffer(cfg.num_hidden_layers, B, cfg.num_key_value_heads, P + params.max_new_tokens, head_dim,
                      model.model.embed_tokens.weight.dtype, device)  # fmt: skip
    trace.batches += 1

    # prefill: once per run of equal prompts, its K/V broadcast into the run's rows
    logits = torch.empty(B, cfg.vocab_size, dtype=torch.float32, device=device)
    r0 = 0
    while r0 < B:
        r1 = r0 + 1
        while r1 < B and prompts[r1] == prompts[r0]:
            r1 += 1
        L = len(prompts[r0])
        ids = torch.tensor([prompts[r0]], device=device)  # (1, L)
        cache.prefill(r0, r1, P - L)
        logits[r0:r1] = _forward(model, ids, torch.arange(L, device=device)[None], None, cache)
        trace.prefill_lens.append(L)
        r0 = r1

    start = P - lens  # (B,) first column of each row's prompt
    valid = torch.arange(P + params.max_new_tokens, device=device)[None, :] >= start[:, None]  # (B, S)
    eos = torch.tensor(params.eos_token_ids, dtype=torch.long, device=device)
    warpers = params.warpers()
    alive = list(range(B))  # batch row -> output row
    stopped = torch.zeros(B, dtype=torch.bool, device=device)
    out_ids: list[list[int]] = [[] for _ in range(B)]
    out_lp: list[list[float]] = [[] for _ in range(B)]
    T = params.max_new_tokens
    for t in range(T):
        scores = logits
        if t < params.min_new_tokens and eos.numel():
            scores = scores.index_fill(1, eos, float("-inf"))
        if params.do_sample:
            for w in warpers:
                scores = w(None, scores)
            tok = _draw(torch.softmax(scores, dim=-1))
        else:
            tok = scores.argmax(dim=-1)  # (B,)
        lp = None
        if want_lp:  # what TRL's loss computes: log_softmax(logits / T) at the token
            lp = torch.log_softmax(logits / params.temperature, dim=-1).gather(1, tok[:, None])[:, 0].tolist()
        toks = tok.tolist()
        was = stopped.tolist()
        for b, r in enumerate(alive):
            if not was[b]:
                out_ids[r].append(toks[b])
                if lp is not None:
                    out_lp[r].append(lp[b])
        stopped |= torch.isin(tok, eos)
        n_stopped = int(stopped.sum())
        if t == T - 1 or n_stopped == len(alive):
            break
        # rows that stopped leave the batch once the row-steps they would waste pay for copying the cache
        if n_stopped and n_stopped * (T - 1 - t) >= len(alive):
            keep = (~stopped).nonzero()[:, 0]
            cache.keep(keep)
            alive = [alive[i] for i in keep.tolist()]
            tok, lens, valid = tok[keep], lens[keep], valid[keep]
            stopped = stopped[keep]
            trace.compactions += 1
        col = P + t  # the column of the token just drawn
        lo = int((P - lens).min())  # columns left of lo are padding in every row
        cache.decode(col, lo)
        mask = None if bool(valid[:, lo].all()) else valid[:, None, None, lo : col + 1]  # (B, 1, 1, kv)
        logits = _forward(model, tok[:, None], (lens + t)[:, None], mask, cache)
        trace.decode_rows.append(len(alive))
    return out_ids, out_lp


# ----------------------------------------------------------------------------------------------------------
# TRL


def trl_unsupported(trainer) -> str | None:
    """Why `generate_like_trl` hands this trainer's sampling back to TRL (None: it samples here)."""
    if trainer.use_vllm:
        return "vLLM backend"
    if getattr(trainer, "use_transformers_continuous_batching", False):
        return "transformers continuous batching"
    if trainer.accelerator.num_processes > 1 or trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled:
        return "distributed training (DeepSpeed / FSDP / several processes)"
    return None


def generate_like_trl(trainer, prompt_ids: list[list[int]], num_generations: int):
    """`trainer._generate_single_turn(prompt_ids, None, {}, num_generations)` for text prompts, sampled here where
    this sampler applies, else by TRL. Returns `(completion_ids, logprobs, sampler)`: logprobs None as in TRL's
    transformers branch, `sampler` "fast" or "trl" (who sampled)."""
    why = trl_unsupported(trainer)
    params: SamplingParams | str | None = why
    if why is None:
        pad = trainer._tokenizer.pad_token_id  # what TRL pads with
        params = effective_params(trainer.model, trainer.generation_config, trainer.eos_token_ids, pad)
    if not isinstance(params, SamplingParams):
        ids, logprobs = trainer._generate_single_turn(prompt_ids, None, {}, num_generations)
        return ids, logprobs, "trl"
    return sample_rows(trainer.model, prompt_ids, params).completion_ids, None, "fast"
