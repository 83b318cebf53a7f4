"""Fast sampling for the transformers backend: the training rollouts and the deploy / base evals.

**What it replaces.** TRL 1.16's `GRPOTrainer._generate_single_turn`, transformers branch (left-pad every row,
`model.generate(generation_config=trainer.generation_config)`, cut each row after its first EOS), when
train/rollouts.py samples the policy rows, and the `model.generate` loop of train/deploy_eval.py. TRL's vLLM and
continuous-batching branches, multi-process runs and models or settings this module does not cover still go
through TRL / `generate` (`generate_like_trl`, `unsupported`).

**What stays theirs.** The model's own modules do every computation but the decode step's matmuls (embedding,
norms, activation, rotary embedding; the prompt's prefill runs the decoder layers themselves, SVD adapter as
attached, with transformers' SDPA attention); the decode step's projections and lm_head apply the weights those
modules apply now (item 5); the sampling settings are the GenerationConfig `generate` would
run with (TRL's, merged with the model's exactly as `generate` merges them); the logits warpers are
transformers' own classes in `generate`'s order (temperature, top-k, top-p, min-p) and `min_new_tokens` masks
the EOS ids as `generate` does; a row stops at its first EOS, which it keeps, and the call stops when every row
has stopped or at `max_new_tokens`.

**What is different** (why it is faster; the profile and figures are in bench/README.md):

1. one prefill per distinct prompt (TRL prefills each row: a group of 8 prefills the same prompt 8 times);
2. K/V preallocated and written in place, each prompt's once and each row's new tokens apart (transformers'
   DynamicCache concatenates at every step: at 16 rows that copy cost as much CPU time as all the matmuls, and
   reading 8 copies of a prompt's K/V per step rivalled reading the weights). The decode step's decoder layer
   is therefore written out here (`_decode`, llama / qwen2 / qwen3) with its attention over [the row's prompt,
   its new tokens] computed group by group (`_KV.attend`); tests pin each family against `generate`;
3. all rows of a call are decoded together, in as few batches as the K/V budget allows (`max_cache_bytes`),
   and rows that stopped leave the batch (`generate` keeps computing them until the last row stops);
4. a token is drawn by inverse CDF (float64 cumulative sum, one uniform per row) instead of `torch.multinomial`,
   which draws an exponential per vocabulary entry (27 ms a step at 16 rows x 49k, 10x the rest of sampling);
5. on a CPU the decode step's linear layers run on their live weights taken once per call (`_Linears`: the SVD
   adapter merged in, W + U diag(delta) V^T, as a vLLM engine samples; one matmul per projection instead of five
   ops) and, where torch has MKL's packed GEMM, packed once for the batch's row count: torch's `linear` re-packs
   the weight at every call, which at 8-16 rows costs 0.7-1.3x the product itself. With them the demo's step
   samples 2.3x as fast as TRL's path, 1.9x without (bench/README.md). Rows leaving the batch then cost a
   repack, so they leave later (`_REPACK_COST_STEPS`).

**Pins** (tests/test_sampler.py): with greedy decoding the completions are token for token those of TRL's
`_generate_single_turn` (prompts of different lengths, EOS mid-way, several batches); with sampling the
returned log-probabilities equal a fresh full forward's `log_softmax(logits / T)` at the sampled tokens (what
TRL's loss computes); top-k = 1 sampling is greedy; the decode step's linear layers give each module's own
output (packed or not, knob on or off) to float32 rounding: the merged weight rounds differently from the
adapter's separate branch, so logits agree to ~1e-6, not bit for bit. **Not the same as TRL:** the random stream. For one seed the
sampled tokens differ from `generate`'s (same distribution, different draws), so a run sampled here is not
bit-for-bit a run sampled by TRL; `rollout.sampler=trl` (`RolloutFunc(sampler="trl")`) keeps TRL's sampling.

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
    from gradient_quarantine.train.trl_compat import default_generation_params

    blank, defaults = GenerationConfig(), default_generation_params()
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
    layer = inner.layers[0]
    attn = getattr(layer, "self_attn", None)
    if not all(hasattr(layer, a) for a in ("mlp", "input_layernorm", "post_attention_layernorm")) or not all(
        hasattr(attn, a) for a in ("q_proj", "k_proj", "v_proj", "o_proj", "head_dim", "scaling")
    ):
        return "decoder layers not shaped like llama's (what `_decode` writes out)"
    from gradient_quarantine.model.svd_adapter import SVDLinear

    mlp = getattr(layer, "mlp", None)
    if not all(hasattr(mlp, a) for a in ("gate_proj", "up_proj", "down_proj", "act_fn")):
        return "MLP not shaped like llama's (down(act(gate(x)) * up(x)), what `_decode` writes out)"
    for lyr in inner.layers:
        for a, b in _PROJECTIONS:
            proj = getattr(getattr(lyr, a), b)
            if type(proj) is not torch.nn.Linear and not isinstance(proj, SVDLinear):
                return f"projection {a}.{b} is a {type(proj).__name__} (needs nn.Linear or SVDLinear)"
    import importlib

    if not hasattr(importlib.import_module(type(model).__module__), "apply_rotary_pos_emb"):
        return "no apply_rotary_pos_emb in the model's modeling module"
    return None


# ----------------------------------------------------------------------------------------------------------
# K/V: each prompt's once, each row's new tokens


class _KV:
    """The K/V of one batch, preallocated and written in place, per layer:

        prefix  (prompts, kv_heads, P, head_dim)   each distinct prompt's K/V, once (its rows share it)
        suffix  (rows, kv_heads, N, head_dim)      each row's new tokens, column t = its t-th new token

    `groups` lists (prompt index, first row, end row, prompt length): a prompt's rows are contiguous. In the
    prefill pass (one prompt, batch 1, transformers' own attention) it is the `past_key_values` the decoder layers
    write through `update`; in decode steps `attend` computes the attention itself. Storing the prompt once is
    what makes decoding cheaper: at 16 rows x 400 positions a step's K/V reads rival its weight reads, and 60 %
    of those positions are the prompt, identical across a group's rows.
    """

    def __init__(self, n_layers: int, groups: list[tuple[int, int, int, int]], rows: int, kv_heads: int,
                 prompt_len: int, new_tokens: int, head_dim: int, dtype, device):  # fmt: skip
        pre = (len(groups), kv_heads, prompt_len, head_dim)
        suf = (rows, kv_heads, new_tokens, head_dim)
        self.pk = [torch.empty(pre, dtype=dtype, device=device) for _ in range(n_layers)]
        self.pv = [torch.empty(pre, dtype=dtype, device=device) for _ in range(n_layers)]
        self.sk = [torch.empty(suf, dtype=dtype, device=device) for _ in range(n_layers)]
        self.sv = [torch.empty(suf, dtype=dtype, device=device) for _ in range(n_layers)]
        self.groups = groups
        self.prefilling = 0  # the prompt whose prefill pass is running
        self.t = 0  # the column the current decode step writes

    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *args, **kwargs):
        """Prefill (`past_key_values.update` in transformers' attention): key (1, kv_heads, L, head_dim)."""
        L = key.shape[2]
        self.pk[layer_idx][self.prefilling, :, :L] = key[0]
        self.pv[layer_idx][self.prefilling, :, :L] = value[0]
        return key, value  # the prompt attends to itself only (causal)

    def attend(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
        """Decode: q (rows, heads, 1, head_dim), k / v (rows, kv_heads, 1, head_dim) of the new token; returns
        softmax(q K^T * scale) V over [the row's prompt, its new tokens so far] as (rows, heads, head_dim)."""
        t = self.t
        sk, sv = self.sk[layer], self.sv[layer]
        sk[:, :, t] = k[:, :, 0]
        sv[:, :, t] = v[:, :, 0]
        B, H, _, D = q.shape
        KV = sk.shape[1]
        R = H // KV  # query heads per K/V head (heads j*R .. j*R+R-1 read K/V head j, as transformers' repeat_kv)
        qg = q.view(B, KV, R, D)
        s_new = torch.matmul(qg, sk[:, :, : t + 1].transpose(-1, -2)) * scale  # (B, KV, R, t+1)
        out = torch.empty(B, KV, R, D, dtype=q.dtype, device=q.device)
        for g, r0, r1, L in self.groups:
            n = r1 - r0
            qq = qg[r0:r1].transpose(0, 1).reshape(KV, n * R, D)  # the group's queries against its prompt, once
            s_pre = torch.matmul(qq, self.pk[layer][g, :, :L].transpose(-1, -2)) * scale  # (KV, nR, L)
            s_pre = s_pre.view(KV, n, R, L).transpose(0, 1)  # (n, KV, R, L)
            p = torch.softmax(torch.cat([s_pre, s_new[r0:r1]], dim=-1), dim=-1)  # (n, KV, R, L+t+1)
            o_pre = torch.matmul(p[..., :L].transpose(0, 1).reshape(KV, n * R, L), self.pv[layer][g, :, :L])
            out[r0:r1] = o_pre.view(KV, n, R, D).transpose(0, 1) + torch.matmul(p[..., L:], sv[r0:r1, :, : t + 1])
        return out.view(B, H, D)

    def keep(self, rows: list[int]) -> None:
        """Keep only these rows (the others stopped): their new-token K/V is copied, the prompts' stays."""
        idx = torch.tensor(rows, device=self.sk[0].device)
        self.sk = [x.index_select(0, idx) for x in self.sk]
        self.sv = [x.index_select(0, idx) for x in self.sv]
        where = {}
        for i, r in enumerate(rows):
            g = next(gg for gg, r0, r1, _ in self.groups if r0 <= r < r1)
            where.setdefault(g, []).append(i)
        lens = {g: L for g, _, _, L in self.groups}
        self.groups = [(g, ix[0], ix[-1] + 1, lens[g]) for g, ix in where.items()]


# ----------------------------------------------------------------------------------------------------------
# the decode step's linear layers

# Decoder-layer projections the decode step applies (llama / qwen2 / qwen3), as (submodule, attribute).
_PROJECTIONS = (("self_attn", "q_proj"), ("self_attn", "k_proj"), ("self_attn", "v_proj"), ("self_attn", "o_proj"),
                ("mlp", "gate_proj"), ("mlp", "up_proj"), ("mlp", "down_proj"))  # fmt: skip

# When rows leave a packed batch, every weight is repacked for the new row count: on SmolLM2-135M 0.17-0.28 s, about
# three decode steps' matmuls at 16 rows (83 ms), and only about half of a packed matmul's time at 8-16 rows scales
# with its rows (the rest is reading the weight). So rows leave once they would waste 8 steps of the whole batch
# (without packing: 1 step, the K/V copy only).
_REPACK_COST_STEPS = 8

_mkl_packing_ok: bool | None = None


def mkl_packing_available() -> bool:
    """Whether this torch build runs MKL's packed single-precision GEMM (`torch.ops.mkl._mkl_linear`, the op
    inductor's CPU weight freezing uses). Checked once, on a 2 x 2 product."""
    global _mkl_packing_ok
    if _mkl_packing_ok is None:
        try:
            w, x = torch.arange(4.0).view(2, 2), torch.ones(1, 2)
            packed = torch.ops.mkl._mkl_reorder_linear_weight(w, 1)
            _mkl_packing_ok = torch.equal(torch.ops.mkl._mkl_linear(x, packed, w, None, 1), x @ w.T)
        except (AttributeError, RuntimeError, NotImplementedError):
            _mkl_packing_ok = False
    return _mkl_packing_ok


class _Linears:
    """The decode step's linear layers: every decoder layer's q/k/v/o and MLP projections and lm_head.

    On a CPU they run on the weights the modules apply now, taken once per call (`live_weight`: the SVD adapter
    merged in, W + U diag(delta) V^T, with the knob and adapter flags as set; the weight a vLLM engine samples
    with), so a decode step makes one matmul per projection instead of the adapter's four extra ops (7 % of the
    step at the demo's shapes). Where MKL's packed GEMM is available (x86 torch builds, float32) each weight is
    also packed once for the batch's row count: at 8-16 rows, 1.5-2.6x torch's own `linear` on the same weight
    (which re-packs it at every call), and bit-identical to it at 16 rows and more. A different row count
    needs a repack (`pack`). The live and packed copies live for one batch: +1.1 GiB of RSS on SmolLM2-135M
    with the demo's adapter (0.7 GiB of model), built in 0.5 s.

    On an accelerator the modules run as they are (a merged copy of every adapted weight would cost GPU memory
    the size of the adapted layers). The prompt's prefill always runs the modules themselves.
    """

    def __init__(self, model, rows: int):
        layers = model.model.layers[: model.config.num_hidden_layers]
        mods = [getattr(getattr(layer, a), b) for layer in layers for a, b in _PROJECTIONS] + [model.lm_head]
        self.on_modules = model.lm_head.weight.device.type != "cpu"
        self.weight: dict[torch.nn.Module, torch.Tensor] = {}
        self.bias: dict[torch.nn.Module, torch.Tensor | None] = {}
        if not self.on_modules:
            self.weight = {m: live_weight(m) for m in mods}
            self.bias = {m: m.bias for m in mods}
        self.packable = not self.on_modules and mkl_packing_available() and all(
            w.dtype == torch.float32 for w in self.weight.values())  # fmt: skip
        self.packed: dict[torch.nn.Module, torch.Tensor] = {}
        self.rows = 0
        self.pack(rows)

    @property
    def repack_cost_steps(self) -> int:
        """What changing the row count costs, in decode steps (1: nothing beyond the copy of the K/V)."""
        return _REPACK_COST_STEPS if self.packable else 1

    def pack(self, rows: int) -> None:
        """Pack every weight for a batch of `rows` rows (no-op where packing is off)."""
        self.rows = rows
        if self.packable:
            self.packed = {}  # free the old copies before making the new ones
            self.packed = {m: torch.ops.mkl._mkl_reorder_linear_weight(w, rows) for m, w in self.weight.items()}

    def __call__(self, module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """module(x) for one decode step's x (rows, 1, in_features)."""
        if self.on_modules:
            return module(x)
        w, b = self.weight[module], self.bias[module]
        if self.packable:
            assert x.shape[0] == self.rows, f"packed for {self.rows} rows, called with {x.shape[0]}"
            return torch.ops.mkl._mkl_linear(x, self.packed[module], w, b, self.rows)
        return torch.nn.functional.linear(x, w, b)


def live_weight(module: torch.nn.Module) -> torch.Tensor:
    """The weight a projection applies now: an SVDLinear's merged live weight (model/svd_adapter.py), a plain
    nn.Linear's own."""
    from gradient_quarantine.model.svd_adapter import SVDLinear

    if isinstance(module, SVDLinear):
        return module.merged_weight(live=True)
    return module.weight.detach()


# ----------------------------------------------------------------------------------------------------------
# the sampler


def kv_bytes_per_position(model) -> int:
    """Bytes of K/V one sequence holds per position (all layers)."""
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
    from gradient_quarantine.train.trl_compat import merged_generation_config

    merged = merged_generation_config(model, gc)  # transformers' own merge (pinned 5.x)
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
    # K/V budget: every distinct prompt's prefix (an upper bound for one batch) + each row's new tokens
    per_pos = kv_bytes_per_position(model)
    prefix_bytes = per_pos * max(len(p) for p in prompt_ids) * len(by_prompt)
    cap = (max_cache_bytes - prefix_bytes) // (per_pos * params.max_new_tokens)
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


def _prefill(model, ids: torch.Tensor, kv: _KV) -> torch.Tensor:
    """One prompt (1, L) through the model's own modules (transformers' causal attention), its K/V into `kv`;
    returns the last position's logits (1, V), float32 as `generate` reads them."""
    inner = model.model
    pos = torch.arange(ids.shape[1], device=ids.device)[None]  # (1, L)
    h = inner.embed_tokens(ids)  # (1, L, H)
    pe = inner.rotary_emb(h, pos)
    for layer in inner.layers[: model.config.num_hidden_layers]:
        h = layer(h, attention_mask=None, position_ids=pos, past_key_values=kv, position_embeddings=pe)
        if isinstance(h, tuple):
            h = h[0]
    return model.lm_head(inner.norm(h[:, -1:]))[:, -1].float()


def _decode(model, tok: torch.Tensor, pos: torch.Tensor, kv: _KV, rope, lin: _Linears) -> torch.Tensor:
    """One new token per row: tok (B,) at positions pos (B,); returns logits (B, V) float32. The decoder layer
    of the supported families (llama / qwen2 / qwen3) written out with the model's own norms, activation and
    rotary embedding; the projections and lm_head through `lin` (the live weights, packed), attention by
    `kv.attend` (each prompt's K/V once)."""
    inner = model.model
    h = inner.embed_tokens(tok[:, None])  # (B, 1, H)
    cos, sin = inner.rotary_emb(h, pos[:, None])  # (B, 1, head_dim) each
    B = h.shape[0]
    for i, layer in enumerate(inner.layers[: model.config.num_hidden_layers]):
        attn, mlp = layer.self_attn, layer.mlp
        x = layer.input_layernorm(h)
        q = lin(attn.q_proj, x).view(B, 1, -1, attn.head_dim)  # (B, 1, heads, head_dim)
        k = lin(attn.k_proj, x).view(B, 1, -1, attn.head_dim)
        v = lin(attn.v_proj, x).view(B, 1, -1, attn.head_dim).transpose(1, 2)  # (B, kv_heads, 1, head_dim)
        if hasattr(attn, "q_norm"):  # qwen3: RMSNorm over each head's dims, before the rotation
            q, k = attn.q_norm(q), attn.k_norm(k)
        q, k = rope(q.transpose(1, 2), k.transpose(1, 2), cos, sin)
        o = kv.attend(i, q, k, v, attn.scaling)  # (B, heads, head_dim)
        h = h + lin(attn.o_proj, o.reshape(B, 1, -1))
        x = layer.post_attention_layernorm(h)
        h = h + lin(mlp.down_proj, mlp.act_fn(lin(mlp.gate_proj, x)) * lin(mlp.up_proj, x))  # llama's MLP
    return lin(model.lm_head, inner.norm(h))[:, -1].float()  # (B, V)


def _draw(probs: torch.Tensor) -> torch.Tensor:
    """One token per row from `probs` (B, V) by inverse CDF: the first index whose cumulative mass exceeds a
    uniform draw. float64 sums; u is kept below the total, so a zero-probability token is never drawn."""
    c = probs.cumsum(-1, dtype=torch.float64)  # (B, V)
    total = c[:, -1:]
    u = torch.rand(total.shape, dtype=torch.float64, device=probs.device) * total
    u = torch.minimum(u, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(c, u, right=True).squeeze(1)  # (B,)


def _sample_batch(model, prompts: list[tuple[int, ...]], params: SamplingParams, want_lp: bool, trace: Trace):
    import importlib

    cfg = model.config
    device = model.lm_head.weight.device
    rope = importlib.import_module(type(model).__module__).apply_rotary_pos_emb  # the model family's own
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    B = len(prompts)
    groups: list[tuple[int, int, int, int]] = []  # (prompt index, first row, end row, prompt length)
    r0 = 0
    while r0 < B:
        r1 = r0 + 1
        while r1 < B and prompts[r1] == prompts[r0]:
            r1 += 1
        groups.append((len(groups), r0, r1, len(prompts[r0])))
        r0 = r1
    kv = _KV(cfg.num_hidden_layers, groups, B, cfg.num_key_value_heads, max(g[3] for g in groups),
             params.max_new_tokens, head_dim, model.model.embed_tokens.weight.dtype, device)  # fmt: skip
    lin = _Linears(model, B)
    trace.batches += 1

    # prefill: once per prompt; its rows start from the same logits
    logits = torch.empty(B, cfg.vocab_size, dtype=torch.float32, device=device)
    for g, r0, r1, L in groups:
        kv.prefilling = g
        logits[r0:r1] = _prefill(model, torch.tensor([prompts[r0]], device=device), kv)
        trace.prefill_lens.append(L)

    lens = torch.tensor([len(p) for p in prompts], device=device)  # (B,) each row's prompt length
    eos = torch.tensor(params.eos_token_ids, dtype=torch.long, device=device)
    warpers = params.warpers()
    T = params.max_new_tokens
    # tokens stay on the device and come back once at the end, cut after each row's first EOS; a row that
    # stopped keeps drawing (ignored) until it leaves the batch. On a GPU the stop check (a host sync) runs every
    # 8th step: up to 7 extra steps against a sync per step.
    out_tok = torch.full((B, T), -1, dtype=torch.long, device=device)  # -1: not drawn (the row had left)
    out_lp = torch.zeros((B, T), dtype=torch.float32, device=device) if want_lp else None
    rows = torch.arange(B, device=device)  # batch row -> output row
    stopped = torch.zeros(B, dtype=torch.bool, device=device)
    check_every = 1 if device.type == "cpu" else 8
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
        out_tok[rows, t] = tok
        if out_lp is not None:  # what TRL's loss computes: log_softmax(logits / T) at the token
            out_lp[rows, t] = torch.log_softmax(logits / params.temperature, dim=-1).gather(1, tok[:, None])[:, 0]
        stopped |= torch.isin(tok, eos)
        if t == T - 1:
            break
        if t % check_every == check_every - 1:
            n_stopped = int(stopped.sum())
            if n_stopped == len(rows):
                break
            # rows that stopped leave the batch once the row-steps they would waste pay for copying their K/V
            # and repacking the weights (`repack_cost_steps` decode steps of the whole batch)
            if n_stopped and n_stopped * (T - 1 - t) >= len(rows) * lin.repack_cost_steps:
                keep = (~stopped).nonzero()[:, 0]
                kv.keep(keep.tolist())
                lin.pack(len(keep))
                tok, lens, rows, stopped = tok[keep], lens[keep], rows[keep], stopped[keep]
                trace.compactions += 1
        kv.t = t  # the token just drawn is new token t of every row, at position len + t
        logits = _decode(model, tok, lens + t, kv, rope, lin)
        trace.decode_rows.append(len(rows))
    # every row either drew an EOS or ran all T steps (the loop ends early only when every row stopped, and a row
    # leaves the batch only after its EOS), so no -1 comes before the cut
    eos_set = set(params.eos_token_ids)
    toks = out_tok.tolist()
    lps_all = out_lp.tolist() if out_lp is not None else None
    out_ids, lps = [], []
    for r in range(B):
        n = next((i + 1 for i, x in enumerate(toks[r]) if x in eos_set), T)  # up to and including the first EOS
        out_ids.append(toks[r][:n])
        lps.append(lps_all[r][:n] if lps_all is not None else [])
    return out_ids, lps


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
    from gradient_quarantine.train.trl_compat import generate_single_turn, tokenizer_of

    why = trl_unsupported(trainer)
    params: SamplingParams | str | None = why
    if why is None:
        pad = tokenizer_of(trainer).pad_token_id  # what TRL pads with
        params = effective_params(trainer.model, trainer.generation_config, trainer.eos_token_ids, pad)
    if not isinstance(params, SamplingParams):
        ids, logprobs = generate_single_turn(trainer, prompt_ids, num_generations)
        return ids, logprobs, "trl"
    return sample_rows(trainer.model, prompt_ids, params).completion_ids, None, "fast"
