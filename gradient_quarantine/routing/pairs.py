"""The pair set and per-sequence log-prob gradients in adapter (capture) coordinates.

A `Pair` is (prompt, clean completion, hack completion). The only supervision it carries is which side is
the hack: no mode, no problem id, no label beyond the side assignment (no-cheat invariant, docs/design.md §5).

`sequence_logprob_grads` returns, for each sequence `y_n` given its prompt, the gradient in capture coordinates
of `l(y_n) = norm_n * sum_t log p(y_nt | prompt, y_n<t)`, for all sequences in one batched forward/backward
(docs/architecture.md "Pair differences and v_grad"). The normalisation must match the live GRPO loss
(docs/design.md §9: "the extraction's length normalisation must match the live loss"); TRL's `loss_type` maps to
`length_norm` as follows (TRL 1.16 `GRPOTrainer._compute_loss`):

| TRL loss_type            | live per-sequence weight                  | length_norm here              |
|--------------------------|-------------------------------------------|-------------------------------|
| `grpo`, `sapo`           | `1 / |y_b|` (mean over the sequence)      | `"sequence_mean"`             |
| `dr_grpo`                | `1 / max_completion_length` (constant)    | `"constant:<max_completion_length>"` |
| `dapo`, `bnpo`, `cispo`, `vespo` | `1 / tokens in the batch` (one constant per batch) | `"none"` (sum)   |
| `luspo`                  | sum over the sequence                     | `"none"`                      |

A weight that is one constant for the whole batch changes neither cosines nor the direction, so "none" is
exact for the token-normalised losses up to that constant; what matters is that long and short sequences are
weighted relative to each other as the live loss weighs them. The batch-wide `1/B` of `grpo` is dropped for the
same reason. Use `length_norm_for_loss_type` to derive the setting from a trainer config.

    >>> pairs = [Pair(prompt=[{"role": "user", "content": "Sum digits of n."}], clean=CLEAN, hack=HACK)]
    >>> grads = sequence_logprob_grads(model, adapter, tok, [p.prompt for p in pairs], [p.hack for p in pairs],
    ...                                length_norm="sequence_mean")
    >>> grads["model.layers.0.mlp.down_proj"].shape     # (n_sequences, R)
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from gradient_quarantine.routing.capture import GradCapture
from gradient_quarantine.routing.cosine import cosine_of, direction_norm

# TRL loss_type -> length_norm kind (see the module docstring). "constant" needs max_completion_length.
_LOSS_TYPE_NORM = {
    "grpo": "sequence_mean",
    "sapo": "sequence_mean",
    "dr_grpo": "constant",
    "dapo": "none",
    "bnpo": "none",
    "cispo": "none",
    "vespo": "none",
    "luspo": "none",
}


@dataclass(frozen=True)
class Pair:
    """One pair: a chat prompt (list of `{"role", "content"}` messages) and two completions of it."""

    prompt: list[dict]
    clean: str
    hack: str

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, list) or not all(
            isinstance(m, dict) and "content" in m for m in self.prompt
        ):
            raise ValueError("Pair.prompt must be a list of chat messages ({'role': ..., 'content': ...})")
        if not self.clean or not self.hack:
            raise ValueError("Pair.clean and Pair.hack must be non-empty completions")


@dataclass(frozen=True)
class LengthNorm:
    """How `l(y)` normalises the summed token log-probs: `sequence_mean` (1/|y|), `none` (1) or `constant` (1/N)."""

    kind: str
    constant: float | None = None

    @classmethod
    def parse(cls, spec: str | LengthNorm) -> LengthNorm:
        """`"sequence_mean"`, `"none"` or `"constant:<N>"` (N > 0)."""
        if isinstance(spec, LengthNorm):
            return spec
        if spec in ("sequence_mean", "none"):
            return cls(spec)
        if isinstance(spec, str) and spec.startswith("constant:"):
            try:
                n = float(spec.split(":", 1)[1])
            except ValueError:
                n = float("nan")
            if not (math.isfinite(n) and n > 0):
                raise ValueError(
                    f"length_norm {spec!r}: the constant must be a positive number, e.g. 'constant:512'"
                )
            return cls("constant", n)
        raise ValueError(
            f"unknown length_norm {spec!r}: use 'sequence_mean' (TRL grpo), 'none' (dapo/bnpo) or "
            "'constant:<max_completion_length>' (dr_grpo); see length_norm_for_loss_type"
        )

    def weights(self, n_tokens: torch.Tensor) -> torch.Tensor:
        """Per-sequence weight on the summed log-probs, shape of `n_tokens` (completion tokens per sequence)."""
        if self.kind == "sequence_mean":
            return 1.0 / n_tokens.clamp(min=1).to(torch.float32)
        if self.kind == "constant":
            return torch.full(n_tokens.shape, 1.0 / float(self.constant), dtype=torch.float32)
        return torch.ones(n_tokens.shape, dtype=torch.float32)

    def __str__(self) -> str:
        return f"constant:{self.constant:g}" if self.kind == "constant" else self.kind


def length_norm_for_loss_type(loss_type: str, max_completion_length: int | None = None) -> str:
    """The `length_norm` that matches TRL's GRPO `loss_type` (table in the module docstring)."""
    kind = _LOSS_TYPE_NORM.get(loss_type)
    if kind is None:
        raise ValueError(f"unknown TRL loss_type {loss_type!r}; known: {sorted(_LOSS_TYPE_NORM)}")
    if kind == "constant":
        if not max_completion_length or max_completion_length <= 0:
            raise ValueError(f"loss_type {loss_type!r} normalises by max_completion_length: pass it (> 0)")
        return f"constant:{int(max_completion_length)}"
    return kind


def encode_batch(
    tokenizer,
    prompts: Sequence[list[dict]],
    completions: Sequence[str],
    append_eos: bool = True,
    keep: Sequence[tuple[int, int]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tokenise prompt + completion rows the way GRPO sees them; right-padded.

    The prompt is rendered with the chat template (generation opener included) and tokenised without special
    tokens, the completion is tokenised on its own and followed by EOS, as a sampled completion ends (TRL counts
    that EOS in the completion mask). Right padding keeps every real token at its true position, so no
    position ids are needed and padding (after the last real token) influences no real token.

    Returns `input_ids` (N, T), `attention_mask` (N, T) and `completion_mask` (N, T) (1 on completion tokens).
    `keep`: per row, the `[lo, hi)` range of completion tokens (EOS included) the mask keeps (`differing_spans`);
    the rest of the completion is context only, as the prompt is.
    """
    if keep is not None and len(keep) != len(completions):
        raise ValueError(f"{len(keep)} keep spans for {len(completions)} completions")
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    if len(prompts) == 0:
        raise ValueError("need at least one sequence")
    rows: list[tuple[list[int], list[int]]] = []
    for prompt, completion in zip(prompts, completions, strict=True):
        text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        p_ids = tokenizer(text, add_special_tokens=False).input_ids
        c_ids = tokenizer(completion, add_special_tokens=False).input_ids
        if append_eos and tokenizer.eos_token_id is not None:
            c_ids = c_ids + [tokenizer.eos_token_id]
        if not c_ids:
            raise ValueError(f"completion {completion!r} tokenises to nothing")
        rows.append((p_ids, c_ids))
    T = max(len(p) + len(c) for p, c in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    input_ids = torch.full((len(rows), T), pad, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), T), dtype=torch.long)
    completion_mask = torch.zeros((len(rows), T), dtype=torch.long)
    for n, (p_ids, c_ids) in enumerate(rows):
        L = len(p_ids) + len(c_ids)
        input_ids[n, :L] = torch.tensor(p_ids + c_ids)
        attention_mask[n, :L] = 1
        lo, hi = (0, len(c_ids)) if keep is None else keep[n]
        if not 0 <= lo < hi <= len(c_ids):
            raise ValueError(f"keep span {(lo, hi)} outside the completion's {len(c_ids)} tokens (row {n})")
        completion_mask[n, len(p_ids) + lo : len(p_ids) + hi] = 1
    return input_ids, attention_mask, completion_mask


def completion_ids(tokenizer, completion: str, append_eos: bool = True) -> list[int]:
    """A completion's token ids as `encode_batch` scores them (EOS appended)."""
    ids = tokenizer(completion, add_special_tokens=False).input_ids
    return ids + [tokenizer.eos_token_id] if append_eos and tokenizer.eos_token_id is not None else ids


def differing_spans(tokenizer, a: str, b: str, append_eos: bool = True) -> tuple[tuple[int, int], tuple[int, int]]:
    """Where two completions of one prompt differ, in completion tokens: each side's `[lo, hi)` between their
    common token prefix and common token suffix. A side with nothing of its own (the other is it plus inserted
    text) keeps its first position after the prefix, where the two sides' next-token predictions part."""
    ta, tb = completion_ids(tokenizer, a, append_eos), completion_ids(tokenizer, b, append_eos)
    pre = 0
    while pre < min(len(ta), len(tb)) and ta[pre] == tb[pre]:
        pre += 1
    suf = 0
    while suf < min(len(ta), len(tb)) - pre and ta[-1 - suf] == tb[-1 - suf]:
        suf += 1
    if pre == len(ta) == len(tb):
        raise ValueError("the two completions are the same tokens: nothing differs")

    def span(n: int) -> tuple[int, int]:
        lo = min(pre, n - 1)
        return lo, max(n - suf, lo + 1)

    return span(len(ta)), span(len(tb))


def sequence_logprob_grads(
    model: torch.nn.Module,
    adapter,
    tokenizer,
    prompts: Sequence[list[dict]],
    completions: Sequence[str],
    length_norm: str | LengthNorm = "sequence_mean",
    temperature: float = 1.0,
    batch_size: int | None = None,
    append_eos: bool = True,
    keep: Sequence[tuple[int, int]] | None = None,
) -> dict[str, torch.Tensor]:
    """Per-sequence `grad l(y_n)` in capture coordinates: `{module_name: (N, R)}` float32, on the model's device.

    One forward and one backward per batch (all N sequences unless `batch_size` caps memory), never one per
    sequence: rows do not interact in the forward, so the per-row split of the batch gradient that
    `GradCapture` returns is exactly each sequence's own gradient. `temperature` divides the logits as TRL
    does with its sampling temperature, so the log-probs are the ones the live loss differentiates.

    `keep` (`encode_batch`): score only these completion tokens of each row (the rest is context), the length
    normalisation over the kept tokens. The adapter's `.grad` fields are left as they were (extraction may run in
    the middle of an accumulation).
    The model's train/eval state is kept; the caller chooses the adapter state (e.g. knob on, as in training).
    """
    chunks: list[dict[str, torch.Tensor]] = []
    with _grads_kept(adapter):
        for cap, _ in _backward_chunks(
            model, adapter, tokenizer, prompts, completions, length_norm, temperature, batch_size, append_eos,
            keep=keep,
        ):  # fmt: skip
            chunks.append({name: g.detach().float() for name, g in cap.per_rollout.items()})
    return {name: torch.cat([c[name] for c in chunks], 0) for name in chunks[0]}


@dataclass
class TokenStats:
    """Per-position gradient statistics of each sequence's `l(y_n)` (`sequence_token_stats`).

    `grads[m]`: (N, R), as `sequence_logprob_grads`. `G_nt` is position t's contribution (`a_nt * b_nt`, every
    module's coordinates concatenated), the same per-token gradient the live per-token gate scores.
    `mass`: (N,) `sum_t ||G_nt||` over the sequence's positions (prompt and completion; padding has none).
    `cos[n]`, `norm[n]` (with `v_hat`): (T_n,) `cos(G_nt, v_hat)` and `||G_nt||` over the T_n real positions.
    """

    grads: dict[str, torch.Tensor]
    mass: torch.Tensor
    cos: list[torch.Tensor] | None = None
    norm: list[torch.Tensor] | None = None


def sequence_token_stats(
    model: torch.nn.Module,
    adapter,
    tokenizer,
    prompts: Sequence[list[dict]],
    completions: Sequence[str],
    length_norm: str | LengthNorm = "sequence_mean",
    temperature: float = 1.0,
    batch_size: int | None = None,
    v_hat: Mapping[str, torch.Tensor] | None = None,
    append_eos: bool = True,
    keep: Sequence[tuple[int, int]] | None = None,
) -> TokenStats:
    """`sequence_logprob_grads` plus per-position statistics (`TokenStats`), from the same single backward with a
    per-token capture: its memory is the live per-token gate's (B x T x 2R floats per module for `batch_size`
    sequences). The per-token band needs only `mass` (mass-weighted mean token cosine = <G_n, v_hat> / mass_n);
    `v_hat` adds each position's cosine, for the token-level gate on a pair set."""
    chunks: list[dict[str, torch.Tensor]] = []
    masses: list[torch.Tensor] = []
    coss: list[torch.Tensor] = []
    norms: list[torch.Tensor] = []
    vnorm = None
    if v_hat is not None:
        vnorm = direction_norm(v_hat)
    with _grads_kept(adapter):
        for cap, att in _backward_chunks(
            model, adapter, tokenizer, prompts, completions, length_norm, temperature, batch_size, append_eos,
            per_token=True, keep=keep,
        ):  # fmt: skip
            chunks.append({name: g.detach().float() for name, g in cap.per_rollout.items()})
            sq = dot = None
            for name in cap.names:
                a, b = cap.per_token(name)  # (n, T, R) each
                Gt = a.float() * b.float()  # (n, T, R) G_nt
                s = (Gt * Gt).sum(-1)  # (n, T)
                sq = s if sq is None else sq + s
                if v_hat is not None:
                    d = Gt @ v_hat[name].to(Gt.device, torch.float32)  # (n, T)
                    dot = d if dot is None else dot + d
            norm_t = sq.sqrt() * att  # (n, T): padding positions carry nothing
            masses.append(norm_t.sum(1))
            if v_hat is not None:
                cos_t = cosine_of(dot, norm_t, vnorm.to(norm_t.device))  # (n, T)
                for j in range(att.shape[0]):
                    L = int(att[j].sum())  # right padding: the real positions are [0, L)
                    coss.append(cos_t[j, :L].detach())
                    norms.append(norm_t[j, :L].detach())
    grads = {name: torch.cat([c[name] for c in chunks], 0) for name in chunks[0]}
    return TokenStats(grads, torch.cat(masses).detach(), coss if v_hat is not None else None,
                      norms if v_hat is not None else None)  # fmt: skip


@contextmanager
def _grads_kept(adapter) -> Iterator[None]:
    """Leave the adapter's `.grad` as it was before the extraction's backward passes."""
    params = [p for p in adapter.parameters() if p.requires_grad] if hasattr(adapter, "parameters") else []
    saved = [None if p.grad is None else p.grad.detach().clone() for p in params]
    try:
        yield
    finally:
        for p, g in zip(params, saved, strict=True):
            p.grad = g


def _backward_chunks(
    model, adapter, tokenizer, prompts, completions, length_norm, temperature, batch_size, append_eos,
    per_token: bool = False, keep: Sequence[tuple[int, int]] | None = None,
) -> Iterator[tuple[GradCapture, torch.Tensor]]:
    """One forward + backward of `sum_n l(y_n)` per chunk of `batch_size` sequences; yields each chunk's capture
    (after its backward) and attention mask (n, T)."""
    from trl.trainer.utils import selective_log_softmax

    norm = LengthNorm.parse(length_norm)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    input_ids, attention_mask, completion_mask = encode_batch(tokenizer, prompts, completions, append_eos, keep)
    device = next(model.parameters()).device
    N = input_ids.shape[0]
    step = N if batch_size is None else max(1, int(batch_size))
    for lo in range(0, N, step):
        ids = input_ids[lo : lo + step].to(device)  # (n, T)
        att = attention_mask[lo : lo + step].to(device)
        cmask = completion_mask[lo : lo + step].to(device)
        # trim the right padding this chunk does not need
        T = int(att.sum(1).max())
        ids, att, cmask = ids[:, :T], att[:, :T], cmask[:, :T]
        # the LM head only where a completion token is predicted: from the position before the earliest completion
        # token of the chunk on (the prompt's ~300 positions would cost a full-vocabulary projection each)
        first = int(cmask.float().argmax(1).min())  # earliest completion position in the chunk (>= 1: a prompt)
        keep = T - (first - 1)
        with GradCapture(adapter, per_token=per_token) as cap:
            logits = model(input_ids=ids, attention_mask=att, logits_to_keep=keep).logits[:, :-1]  # predicts t+1
            logp = selective_log_softmax(logits.float() / temperature, ids[:, first:])  # (n, T-first)
            mask = cmask[:, first:].to(logp.dtype)  # (n, T-first) targets that are completion tokens
            w = norm.weights(mask.sum(1)).to(logp.device)  # (n,)
            ell = (logp * mask).sum(1) * w  # (n,) l(y_n)
            ell.sum().backward()
        yield cap, att.float()
