"""A hack direction in activation space, from the pair set: the offline comparison for `v_grad` (issue 23).

Persona-vector style (Chen et al. 2025): run the policy over each pair side, average the residual stream over the
side's completion tokens at one layer (`mean_completion_states`), and take the difference of the hack and clean
sides' means. A completion's score is its own mean state, centred on the midpoint of the two class means, projected
on that unit direction:

    h_n   = mean_{t in completion(n)} x_t^(layer)          (H,)   the layer's output, completion positions only
    v     = mean_i h_hack_i - mean_i h_clean_i;  v_hat = v / ||v||
    c     = (mean_i h_hack_i + mean_i h_clean_i) / 2
    s(n)  = (h_n - c) . v_hat                               > 0 on the hack side of the midpoint

Forward only, no backward: a score costs a fraction of the gradient signal's. Like `v_grad` it sees the pair set
only. It is not wired into the live gate (the router scores gradients); `gq detector eval` measures it
(`DetectorRecipe.signal="activation"`, routing/detector.py).

    >>> states = mean_completion_states(model, tok, prompts, completions, layer=15)      # (N, H)
    >>> ad = activation_direction(hack_states, clean_states, layer=15)
    >>> activation_scores(states, ad)                                                     # (N,)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from gradient_quarantine.routing.pairs import encode_batch


@dataclass(frozen=True)
class ActivationDirection:
    """`v_hat` (H,) unit direction from the clean sides' mean state to the hack sides', `center` (H,) the midpoint
    of the two class means, at the output of decoder layer `layer` (hidden_states[layer]; 0 = the embeddings)."""

    layer: int
    v_hat: torch.Tensor
    center: torch.Tensor


def default_layer(model: torch.nn.Module) -> int:
    """The middle decoder layer (where persona-style directions are usually read)."""
    return int(model.config.num_hidden_layers) // 2


@torch.no_grad()
def mean_completion_states(
    model: torch.nn.Module,
    tokenizer,
    prompts: Sequence[list[dict]],
    completions: Sequence[str],
    layer: int,
    batch_size: int | None = None,
    keep: Sequence[tuple[int, int]] | None = None,
) -> torch.Tensor:
    """(N, H) float32: each sequence's mean hidden state at `layer` over its completion tokens (EOS included, as
    `pairs.encode_batch` encodes them; `keep`: only those completion tokens). One forward per batch, no grad."""
    n_layers = int(model.config.num_hidden_layers)
    if not 0 <= layer <= n_layers:
        raise ValueError(f"layer={layer}: the model has hidden states 0..{n_layers}")
    input_ids, attention_mask, completion_mask = encode_batch(tokenizer, prompts, completions, keep=keep)
    device = next(model.parameters()).device
    N = input_ids.shape[0]
    step = N if batch_size is None else max(1, int(batch_size))
    out = []
    for lo in range(0, N, step):
        att = attention_mask[lo : lo + step]
        T = int(att.sum(1).max())  # right padding: trim what this chunk does not need
        ids, att = input_ids[lo : lo + step, :T].to(device), att[:, :T].to(device)
        cmask = completion_mask[lo : lo + step, :T].to(device, torch.float32)  # (n, T)
        # logits_to_keep=1: the LM head is not needed (a full-vocabulary projection of every position otherwise)
        h = model(input_ids=ids, attention_mask=att, output_hidden_states=True, logits_to_keep=1).hidden_states[layer]
        h = h.float()
        out.append((h * cmask[..., None]).sum(1) / cmask.sum(1, keepdim=True))  # (n, H)
    return torch.cat(out).cpu()


def activation_direction(hack_states: torch.Tensor, clean_states: torch.Tensor, layer: int) -> ActivationDirection:
    """The direction and midpoint of two sides' (n, H) mean states (module docstring)."""
    if hack_states.shape != clean_states.shape or hack_states.shape[0] == 0:
        raise ValueError(f"need matching, non-empty side states, got {tuple(hack_states.shape)} and "
                         f"{tuple(clean_states.shape)}")  # fmt: skip
    mh, mc = hack_states.double().mean(0), clean_states.double().mean(0)
    v = mh - mc
    norm = float(v.norm())
    if norm == 0.0:
        raise ValueError("the hack and clean sides have the same mean state: no direction")
    return ActivationDirection(layer, (v / norm).float(), ((mh + mc) / 2).float())


def activation_scores(states: torch.Tensor, ad: ActivationDirection) -> torch.Tensor:
    """(N,) `(h_n - c) . v_hat` of (N, H) mean states."""
    return (states.float() - ad.center) @ ad.v_hat


def activation_loo_separation(hack_states: torch.Tensor, clean_states: torch.Tensor, layer: int) -> float | None:
    """Fraction of pairs i that a direction and band built *without* pair i still separate (its clean side's score
    below the band's midpoint, its hack side's above, and the band of positive width), as
    `detector.leave_one_out_separation` for `v_grad`. None with fewer than 2 pairs."""
    n = hack_states.shape[0]
    if n < 2:
        return None
    hits = 0
    for i in range(n):
        rest = [j for j in range(n) if j != i]
        try:
            ad = activation_direction(hack_states[rest], clean_states[rest], layer)
        except ValueError:
            continue
        lower = float(activation_scores(clean_states[rest], ad).mean())
        upper = float(activation_scores(hack_states[rest], ad).mean())
        mid = 0.5 * (lower + upper)
        sh = float(activation_scores(hack_states[i : i + 1], ad))
        sc = float(activation_scores(clean_states[i : i + 1], ad))
        hits += int(upper > lower and sc < mid < sh)
    return hits / n
