"""The fast sampler (train/sampler.py) against TRL's transformers path and a fresh full forward, on a tiny model.

* greedy: completions token for token those of TRL's `_generate_single_turn` (prompts of different lengths,
  an EOS hit mid-way by some rows, several batches forced by a small K/V budget);
* sampling: the returned log-probabilities equal a fresh full forward's `log_softmax(logits / T)`, rows stopping
  at different steps (row compaction) and prompts of different lengths (padding mask); top-k = 1 sampling is
  greedy; every sampled token is inside the top-k of the full forward's logits;
* the inverse-CDF draw never picks a zero-probability token and matches the distribution;
* the decode step's linear layers (`_Linears`: live weights with the adapter merged in, MKL-packed where torch
  has it) give each module's own output, packed and unpacked, knob on and off; a model whose projections are
  neither nn.Linear nor SVDLinear goes to `generate`;
* each supported family (llama = SmolLM2, qwen2, qwen3) against transformers' `generate` and full forward;
* wiring: `RolloutFunc` samples here on the transformers backend and hands settings it does not implement
  (repetition penalty) to TRL; the deploy eval's sampler agrees with `generate` at a near-zero temperature.

The tiny model is re-initialised with std 0.5 weights: the default init (std 0.02) repeats one token forever,
which would make every comparison trivial.
"""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

trl = pytest.importorskip("trl")

from datasets import Dataset  # noqa: E402

from gradient_quarantine.model.loading import build_tiny_model, build_tiny_tokenizer  # noqa: E402
from gradient_quarantine.model.svd_adapter import AdapterConfig, attach_svd_adapter  # noqa: E402
from gradient_quarantine.train.rollouts import RolloutFunc, prompt_key  # noqa: E402
from gradient_quarantine.train.sampler import (  # noqa: E402
    SamplingParams,
    _draw,
    _Linears,
    effective_params,
    generate_like_trl,
    mkl_packing_available,
    sample_rows,
    unsupported,
)

G = 4
PROMPTS = [[{"role": "user", "content": f"Write a function f{i} that returns {'x' * 7 * i}."}] for i in range(3)]


def _model(extra_eos: int | None = None):
    """Tiny model (varied greedy output), an SVD adapter with non-zero deltas, optionally a second EOS id."""
    tok = build_tiny_tokenizer()
    model = build_tiny_model(tok, initializer_range=0.5)
    model.eval()
    adapter = attach_svd_adapter(model, AdapterConfig(rank=6, knob_rank=2))
    with torch.no_grad():
        g = torch.Generator().manual_seed(3)
        for p in adapter.main_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)  # the sampler must see the adapter's effect
    if extra_eos is not None:
        model.generation_config.eos_token_id = [tok.eos_token_id, extra_eos]
    return model, tok


def _trainer(tmp_path, model, tok, rollout=None, **gen):
    args = trl.GRPOConfig(
        output_dir=str(tmp_path), per_device_train_batch_size=len(PROMPTS) * G, num_generations=G,
        max_completion_length=20, use_cpu=True, report_to="none", save_strategy="no", bf16=False,
        generation_kwargs=gen or None,
    )  # fmt: skip
    rows = [{"prompt": p, "problem_id": f"p{i}", "mode": "exit_code"} for i, p in enumerate(PROMPTS)]
    return trl.GRPOTrainer(
        model=model, reward_funcs=[lambda completions, **_: [0.0] * len(completions)], args=args,
        train_dataset=Dataset.from_list(rows), processing_class=tok, rollout_func=rollout,
    )  # fmt: skip


def _prompt_ids(trainer):
    ids, _, _ = trainer._tokenize_prompts([p for p in PROMPTS for _ in range(G)])
    return ids


def _mid_sequence_token(tmp_path) -> int:
    """A token that greedy decoding emits mid-way in one prompt's completion (made an EOS below)."""
    model, tok = _model()
    trainer = _trainer(tmp_path / "probe", model, tok, do_sample=False)
    ids, _ = trainer._generate_single_turn(_prompt_ids(trainer), None, {}, G)
    return ids[G][6]  # prompt 1's 7th token


def test_greedy_equals_trl_token_for_token(tmp_path):
    eos = _mid_sequence_token(tmp_path)
    model, tok = _model(extra_eos=eos)
    trainer = _trainer(tmp_path / "a", model, tok, do_sample=False)
    prompt_ids = _prompt_ids(trainer)
    assert len({len(p) for p in prompt_ids}) == 3  # three prompt lengths: the padding mask is exercised
    trl_ids, trl_lp = trainer._generate_single_turn(prompt_ids, None, {}, G)
    ours, lp, who = generate_like_trl(trainer, prompt_ids, G)
    assert who == "fast" and ours == trl_ids and lp is None and trl_lp is None

    lengths = {len(c) for c in trl_ids}
    assert min(lengths) < 20 and max(lengths) == 20, "some rows must stop at the EOS, others run to the limit"
    assert all(c[-1] in (tok.eos_token_id, eos) for c in trl_ids if len(c) < 20)  # the EOS is kept

    # the same through the sampler directly, forced into several batches (one row's K/V at a time and more)
    params = effective_params(model, trainer.generation_config, trainer.eos_token_ids, tok.pad_token_id)
    assert isinstance(params, SamplingParams), params
    for rows_per_batch in (1, 5):
        out = sample_rows(model, prompt_ids, params, max_cache_bytes=_budget(model, prompt_ids, params, rows_per_batch))
        assert out.completion_ids == trl_ids
        assert out.trace.batches == -(-len(prompt_ids) // rows_per_batch)


def _budget(model, prompt_ids, params, rows: int) -> int:
    """A K/V budget that holds every prompt once and `rows` rows' new tokens."""
    from gradient_quarantine.train.sampler import kv_bytes_per_position

    n_prompts = len({tuple(p) for p in prompt_ids})
    return kv_bytes_per_position(model) * (max(len(p) for p in prompt_ids) * n_prompts + rows * params.max_new_tokens)


def _full_forward_logps(model, prompt: list[int], completion: list[int], temperature: float):
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()  # (n, V): predicts each token
    return torch.log_softmax(logits / temperature, dim=-1), logits


def test_sampled_logprobs_equal_a_fresh_full_forward(tmp_path):
    model, tok = _model()
    trainer = _trainer(tmp_path / "a", model, tok)
    prompt_ids = _prompt_ids(trainer)
    # 48 new tokens: long enough that rows stopping at step 3 leave the batch under the packed-weights rule
    # (a repack costs `_REPACK_COST_STEPS` steps) as well as the plain one
    base = dict(max_new_tokens=48, pad_token_id=tok.pad_token_id, temperature=0.7, top_k=5)
    torch.manual_seed(0)
    probe = sample_rows(model, prompt_ids, SamplingParams(eos_token_ids=(tok.eos_token_id,), **base))
    # the tokens half the rows drew at step 3 become EOS ids: the same seed stops those rows there (the draws up
    # to the first stop are the same), the rest run on, so rows leave the batch mid-way
    stop = tuple(sorted({c[3] for c in probe.completion_ids[: len(prompt_ids) // 2]}))
    params = SamplingParams(eos_token_ids=(tok.eos_token_id, *stop), **base)
    torch.manual_seed(0)
    out = sample_rows(model, prompt_ids, params, return_logprobs=True)
    lengths = [len(c) for c in out.completion_ids]
    assert min(lengths) <= 4 and max(lengths) == 48 and out.trace.compactions >= 1
    assert out.trace.prefill_lens == [len(prompt_ids[g * G]) for g in range(len(PROMPTS))]  # one prefill per prompt
    for prompt, comp, lp in zip(prompt_ids, out.completion_ids, out.logprobs, strict=True):
        assert len(comp) == 48 or comp[-1] in params.eos_token_ids  # stops at its first EOS, which it keeps
        full, logits = _full_forward_logps(model, list(prompt), comp, 0.7)
        expected = full.gather(1, torch.tensor(comp)[:, None])[:, 0]
        torch.testing.assert_close(torch.tensor(lp), expected, atol=1e-5, rtol=1e-5)
        top5 = logits.topk(5, dim=-1).indices
        assert all(c in top5[i] for i, c in enumerate(comp)), "top_k=5: every token among the 5 most likely"

    torch.manual_seed(0)  # seeded: the same draws again
    assert sample_rows(model, prompt_ids, params).completion_ids == out.completion_ids


@pytest.mark.parametrize("family", ["llama", "qwen2", "qwen3"])
def test_each_supported_family_greedy_equals_generate_and_logprobs_equal_full_forward(family):
    """The decode step is written out per family (train/sampler.py `_decode`): pin each one (SmolLM2 is llama)
    against transformers' own `generate` (greedy, left-padded batch) and full forward (sampled log-probs)."""
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    tok = build_tiny_tokenizer()
    dims = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, initializer_range=0.5,
                tie_word_embeddings=True, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)  # fmt: skip
    if family == "qwen3":
        model = build_tiny_model(tok, initializer_range=0.5)
    else:
        config_cls, model_cls = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}[family]
        torch.manual_seed(0)
        model = model_cls(config_cls(**dims))
    model.eval()
    assert model.config.model_type == family
    ids = tok.apply_chat_template(PROMPTS, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    rows = [p for p in ids for _ in range(2)]
    gc = GenerationConfig(do_sample=False, max_new_tokens=16, eos_token_id=[tok.eos_token_id], pad_token_id=tok.pad_token_id)
    params = effective_params(model, gc, [tok.eos_token_id], tok.pad_token_id)
    ours = sample_rows(model, rows, params).completion_ids
    width = max(len(r) for r in rows)
    input_ids = torch.tensor([[tok.pad_token_id] * (width - len(r)) + list(r) for r in rows])
    with torch.no_grad():
        gen = model.generate(input_ids=input_ids, attention_mask=(torch.arange(width)[None] >= width - torch.tensor(
            [len(r) for r in rows])[:, None]).long(), generation_config=gc)[:, width:].tolist()  # fmt: skip
    theirs = [g[: g.index(tok.eos_token_id) + 1] if tok.eos_token_id in g else g for g in gen]
    assert ours == theirs

    # in float64, so the comparison is not blurred by float32 rounding: these std-0.5 weights give activations
    # large enough that the two float32 computations differ by up to ~1e-4 in a log-probability
    model.double()
    torch.manual_seed(0)
    out = sample_rows(model, rows, SamplingParams(max_new_tokens=16, eos_token_ids=(tok.eos_token_id,),
                                                  pad_token_id=tok.pad_token_id, temperature=0.8),
                      return_logprobs=True)  # fmt: skip
    for prompt, comp, lp in zip(rows, out.completion_ids, out.logprobs, strict=True):
        full, _ = _full_forward_logps(model, list(prompt), comp, 0.8)
        expected = full.gather(1, torch.tensor(comp)[:, None])[:, 0]
        torch.testing.assert_close(torch.tensor(lp), expected, atol=1e-6, rtol=1e-6)


def test_top_k_one_sampling_is_greedy():
    model, tok = _model()
    ids = tok.apply_chat_template(PROMPTS, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    base = dict(max_new_tokens=16, eos_token_ids=(tok.eos_token_id,), pad_token_id=tok.pad_token_id)
    greedy = sample_rows(model, ids, SamplingParams(do_sample=False, **base)).completion_ids
    torch.manual_seed(1)
    assert sample_rows(model, ids, SamplingParams(top_k=1, temperature=1.3, **base)).completion_ids == greedy


def test_draw_matches_the_distribution_and_never_picks_zero_mass():
    probs = torch.tensor([[0.0, 0.5, 0.0, 0.2, 0.3, 0.0]]).repeat(40_000, 1)
    torch.manual_seed(0)
    tok = _draw(probs)
    freq = torch.bincount(tok, minlength=6).double() / len(tok)
    assert freq[[0, 2, 5]].sum() == 0
    torch.testing.assert_close(freq, probs[0].double(), atol=0.01, rtol=0)


@pytest.mark.parametrize("packed", [True, False], ids=["mkl-packed", "merged-unpacked"])
def test_decode_linears_give_each_modules_own_output(monkeypatch, packed):
    from gradient_quarantine.model.svd_adapter import SVDLinear
    from gradient_quarantine.train import sampler

    if packed and not mkl_packing_available():
        pytest.skip("this torch build has no MKL packed GEMM")
    monkeypatch.setattr(sampler, "mkl_packing_available", lambda: packed)
    model, _ = _model()
    adapted = [m for m in model.modules() if isinstance(m, SVDLinear)]
    with torch.no_grad():
        for m in adapted:
            m.dS_knob.normal_(0, 0.3)  # the knob moves the output too, so knob_off must change the merged weight
    mods = [getattr(getattr(layer, a), b) for layer in model.model.layers for a, b in sampler._PROJECTIONS]
    mods.append(model.lm_head)
    assert len(adapted) == len(mods) - 1  # the adapter covers every projection of the tiny model
    g = torch.Generator().manual_seed(0)
    for rows in (5, 16):
        for knob in (True, False):
            for m in adapted:
                m.knob_enabled = knob
            lin = _Linears(model, rows)
            assert lin.packable == packed and lin.repack_cost_steps == (sampler._REPACK_COST_STEPS if packed else 1)
            with torch.no_grad():
                for m in mods:
                    x = torch.randn(rows, 1, m.in_features, generator=g)
                    torch.testing.assert_close(lin(m, x), m(x), atol=1e-5, rtol=1e-5)
    lin.pack(3)  # fewer rows: repacked for them
    x = torch.randn(3, 1, model.lm_head.in_features, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(lin(model.lm_head, x), model.lm_head(x), atol=1e-5, rtol=1e-5)


def test_a_projection_that_is_not_linear_or_svd_linear_goes_to_generate():
    model, _ = _model()
    assert unsupported(model) is None
    model.model.layers[0].mlp.up_proj = torch.nn.Sequential(model.model.layers[0].mlp.up_proj)
    assert "up_proj" in unsupported(model)


def test_rollout_func_samples_here_and_hands_unimplemented_settings_to_trl(tmp_path):
    model, tok = _model()
    rollout = RolloutFunc({prompt_key(p): f"p{i}" for i, p in enumerate(PROMPTS)}, None, 0, 0.5, seed=41)
    trainer = _trainer(tmp_path / "a", model, tok, rollout=rollout, do_sample=False)
    batch = [p for p in PROMPTS for _ in range(G)]
    out, stats = rollout(batch, trainer)
    assert stats.sampler == "fast"
    assert out["completion_ids"] == trainer._generate_single_turn(_prompt_ids(trainer), None, {}, G)[0]

    rollout_trl = RolloutFunc({prompt_key(p): f"p{i}" for i, p in enumerate(PROMPTS)}, None, 0, 0.5, seed=41,
                              sampler="trl")  # fmt: skip
    out_trl, stats_trl = rollout_trl(batch, trainer)
    assert out_trl["completion_ids"] == out["completion_ids"]
    assert stats_trl.sampler == "trl"

    penalised = _trainer(tmp_path / "b", model, tok, rollout=rollout, do_sample=False, repetition_penalty=1.3)
    _, stats = rollout(batch, penalised)
    assert stats.sampler == "trl"  # repetition_penalty is not implemented here: TRL samples


def test_deploy_eval_sampler_agrees_with_generate_at_near_zero_temperature():
    from gradient_quarantine.train.deploy_eval import sample

    model, tok = _model()
    kw = dict(samples=3, temperature=1e-5, max_new_tokens=12, batch_size=4, seed=5)
    fast = sample(model, tok, PROMPTS, backend="fast", **kw)
    slow = sample(model, tok, PROMPTS, backend="generate", **kw)
    assert fast == slow
    assert len(fast) == len(PROMPTS) and all(len(t) == 3 for t in fast)
