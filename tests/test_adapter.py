"""SVD adapter: config validation, knob shapes per relation, exact off path, knob semantics, save/load,
deploy export as a plain HF checkpoint (docs/design.md §5)."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from gradient_quarantine.model.loading import load_policy
from gradient_quarantine.model.svd_adapter import (
    AdapterConfig,
    SVDLinear,
    attach_svd_adapter,
    load_svd_adapter,
    read_adapter_file,
)

N_PROJ = 7  # q, k, v, o, gate, up, down per decoder layer


def _ids(tok, seed: int = 0, B: int = 2, T: int = 10) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, len(tok), (B, T), generator=g)


def _randomise(adapter, seed: int = 0, std: float = 0.5) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in adapter.parameters():
            p.copy_(std * torch.randn(p.shape, generator=g))


def _logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(knob_relation="separate"), "knob_relation"),
        (dict(rank=0), "rank"),
        (dict(knob_rank=0), "knob_rank"),
        (dict(knob_relation="vgrad_span", rank=4, knob_rank=5), "k <= rank"),
        (dict(target_modules="(q_proj"), "regex"),
        (dict(layers=(3, 1)), "start < end"),
        (dict(layers=(1,)), "start, end"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AdapterConfig(**kwargs)


def test_config_round_trip():
    cfg = AdapterConfig(rank=8, layers=[0, 1], knob_relation="vgrad_span", knob_rank=2)
    assert cfg.layers == (0, 1)
    assert AdapterConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


@pytest.mark.parametrize(
    "relation, R, knob_shape",
    [("shared", 8, (8,)), ("disjoint", 11, (3,)), ("vgrad_span", 8, (3,))],
)
def test_parameter_shapes_per_relation(tiny_model_and_tokenizer, relation, R, knob_shape):
    model, _ = tiny_model_and_tokenizer
    adapter = attach_svd_adapter(model, AdapterConfig(rank=8, knob_relation=relation, knob_rank=3))
    assert len(adapter.modules) == 2 * N_PROJ
    for n, m in adapter.modules.items():
        assert model.get_submodule(n) is m
        out_f, in_f = m.base.weight.shape
        assert m.U.shape == (out_f, R) and m.S.shape == (R,) and m.V.shape == (in_f, R)
        assert m.dS_main.shape == (8,) and m.dS_knob.shape == knob_shape
        assert (m.knob_basis.shape == (3, 8)) if relation == "vgrad_span" else not hasattr(m, "knob_basis")
        # the kept axes are W's top singular triplets, U and V orthonormal
        torch.testing.assert_close(m.S, torch.linalg.svdvals(m.base.weight)[:R], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(m.U.T @ m.U, torch.eye(R), atol=1e-5, rtol=0)
        torch.testing.assert_close(m.V.T @ m.V, torch.eye(R), atol=1e-5, rtol=0)
    assert adapter.capture_dims() == {n: R for n in adapter.modules}
    assert adapter.num_parameters("main") == 2 * N_PROJ * 8
    assert adapter.num_parameters("knob") == 2 * N_PROJ * knob_shape[0]
    assert adapter.num_parameters() == adapter.num_parameters("main") + adapter.num_parameters("knob")
    # base frozen: the only trainable tensors are the knobs
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in adapter.parameters()}


def test_targets_and_layers(tiny_model_and_tokenizer):
    model, _ = tiny_model_and_tokenizer
    adapter = attach_svd_adapter(
        model, AdapterConfig(rank=4, target_modules=r"(q_proj|v_proj)$", layers=(1, 2))
    )
    assert sorted(adapter.modules) == ["model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj"]
    with pytest.raises(ValueError, match="already"):
        attach_svd_adapter(model, AdapterConfig())


def test_attach_errors(tiny_model_and_tokenizer):
    model, _ = tiny_model_and_tokenizer
    with pytest.raises(ValueError, match="no nn.Linear matches"):
        attach_svd_adapter(model, AdapterConfig(target_modules="nothing_like_this"))
    with pytest.raises(ValueError, match="singular triplets"):
        attach_svd_adapter(model, AdapterConfig(rank=60, knob_rank=8))  # k_proj is 32 x 64


@pytest.mark.parametrize("relation", ["shared", "disjoint", "vgrad_span"])
def test_adapter_off_is_bitwise_base(tiny_model_and_tokenizer, relation):
    model, tok = tiny_model_and_tokenizer
    ids = _ids(tok)
    base = _logits(model, ids)
    adapter = attach_svd_adapter(model, AdapterConfig(rank=8, knob_relation=relation, knob_rank=3))
    assert torch.equal(_logits(model, ids), base)  # dS = 0: the branch adds exact zeros
    _randomise(adapter)
    on = _logits(model, ids)
    assert not torch.allclose(on, base)
    with adapter.disabled():
        assert torch.equal(_logits(model, ids), base)
    assert torch.equal(_logits(model, ids), on)  # flags restored
    adapter.set_enabled(False)
    assert torch.equal(_logits(model, ids), base)


def test_knob_off_means_knob_deleted(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    ids = _ids(tok)
    adapter = attach_svd_adapter(model, AdapterConfig(rank=8, knob_relation="disjoint", knob_rank=3))
    _randomise(adapter)
    with adapter.knob_off():
        off = _logits(model, ids)
    on = _logits(model, ids)
    assert not torch.allclose(on, off)
    adapter.reset_knob()
    torch.testing.assert_close(_logits(model, ids), off)


def test_shared_knob_acts_on_the_same_axes(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    ids = _ids(tok)
    adapter = attach_svd_adapter(model, AdapterConfig(rank=8, knob_relation="shared"))
    _randomise(adapter)
    with torch.no_grad():
        for m in adapter.modules.values():
            m.dS_main += m.dS_knob
            m.dS_knob.zero_()
    moved = _logits(model, ids)
    _randomise(adapter)
    torch.testing.assert_close(_logits(model, ids), moved)


def test_vgrad_span_knob(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    ids = _ids(tok)
    adapter = attach_svd_adapter(model, AdapterConfig(rank=8, knob_relation="vgrad_span", knob_rank=2))
    _randomise(adapter)
    with adapter.knob_off():
        main_only = _logits(model, ids)
    torch.testing.assert_close(_logits(model, ids), main_only)  # basis starts at 0: knob inert
    g = torch.Generator().manual_seed(5)
    bases = {n: torch.linalg.qr(torch.randn(8, 2, generator=g)).Q.T for n in adapter.modules}
    adapter.set_knob_basis(bases)
    m = next(iter(adapter.modules.values()))
    n0 = m.name
    torch.testing.assert_close(m.delta(), m.dS_main + bases[n0].T @ m.dS_knob)
    assert not torch.allclose(_logits(model, ids), main_only)
    # reproject onto a basis that contains the old span keeps the knob's effect
    old_effect = (m.dS_knob @ m.knob_basis).detach().clone()
    new = torch.linalg.qr(torch.cat([bases[n0].T, torch.randn(8, 1, generator=g)], 1)).Q[:, :2].T
    m.set_knob_basis(new[[1, 0]], reproject=True)
    torch.testing.assert_close(m.dS_knob @ m.knob_basis, old_effect, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="knob basis must be"):
        m.set_knob_basis(torch.zeros(3, 8))
    with pytest.raises(KeyError):
        adapter.set_knob_basis({n0: bases[n0]})


def test_vgrad_span_only_methods(tiny_model_and_tokenizer):
    model, _ = tiny_model_and_tokenizer
    adapter = attach_svd_adapter(model, AdapterConfig(rank=8, knob_relation="disjoint"))
    with pytest.raises(ValueError, match="vgrad_span"):
        next(iter(adapter.modules.values())).set_knob_basis(torch.zeros(4, 8))


@pytest.mark.parametrize("relation", ["disjoint", "vgrad_span"])
def test_save_load_round_trip(tiny_model_and_tokenizer, tmp_path, relation):
    model, tok = tiny_model_and_tokenizer
    ids = _ids(tok)
    cfg = AdapterConfig(rank=8, knob_relation=relation, knob_rank=2)
    adapter = attach_svd_adapter(model, cfg)
    _randomise(adapter)
    if relation == "vgrad_span":
        adapter.set_knob_basis({n: torch.eye(8)[:2] for n in adapter.modules})
    want = _logits(model, ids)
    path = tmp_path / "adapter.safetensors"
    adapter.save(path)
    assert read_adapter_file(path)[0] == cfg

    fresh, _ = load_policy("tiny")  # same seed -> same base weights
    loaded = load_svd_adapter(fresh, path)
    assert loaded.cfg == cfg
    assert torch.equal(_logits(fresh, ids), want)
    for n, m in loaded.modules.items():
        assert torch.equal(m.dS_main, adapter.modules[n].dS_main)
        assert torch.equal(m.dS_knob, adapter.modules[n].dS_knob)

    other, _ = load_policy("tiny")  # wrong config
    with pytest.raises(ValueError, match="config differs"):
        attach_svd_adapter(other, AdapterConfig(rank=4, knob_relation=relation, knob_rank=2)).load(path)
    from gradient_quarantine.model.loading import build_tiny_model, build_tiny_tokenizer

    different_base = build_tiny_model(build_tiny_tokenizer(), seed=1)
    with pytest.raises(ValueError, match="does not fit this base"):
        load_svd_adapter(different_base, path)


@pytest.mark.parametrize("relation", ["shared", "disjoint", "vgrad_span"])
def test_export_deploy_is_plain_hf_and_equals_knob_off(tiny_model_and_tokenizer, tmp_path, relation):
    model, tok = tiny_model_and_tokenizer
    ids = _ids(tok, B=3, T=12)
    adapter = attach_svd_adapter(model, AdapterConfig(rank=8, knob_relation=relation, knob_rank=3))
    _randomise(adapter, std=1.0)
    if relation == "vgrad_span":
        adapter.set_knob_basis({n: torch.eye(8)[:3] for n in adapter.modules})
    with adapter.knob_off():
        want = _logits(model, ids)
    assert not torch.allclose(_logits(model, ids), want, atol=1e-4)  # the knob matters before deletion
    out = adapter.export_deploy(tmp_path / "deploy", tok)
    keys = set()
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        keys = set(f.keys())
    assert not any(
        k.endswith((".U", ".S", ".V", "dS_main", "dS_knob", "knob_basis", "base.weight")) for k in keys
    )
    plain = AutoModelForCausalLM.from_pretrained(out)  # plain transformers, no gradient_quarantine code
    assert not any(isinstance(m, SVDLinear) for m in plain.modules())
    torch.testing.assert_close(_logits(plain, ids), want, rtol=1e-4, atol=1e-5)
    # the export left the live model untouched
    with adapter.knob_off():
        assert torch.equal(_logits(model, ids), want)
    with pytest.raises(FileExistsError):
        adapter.export_deploy(out, tok)
    adapter.export_deploy(out, tok, overwrite=True)
    reloaded, tok2 = load_policy(str(out))
    assert tok2.apply_chat_template(
        [{"role": "user", "content": "x"}], tokenize=False
    ) == tok.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False)
