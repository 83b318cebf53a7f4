"""v_grad extraction, controls (random-V, placebo), the band, and the per-sequence gradients they are built on."""

from __future__ import annotations

import math

import pytest
import torch
from routing_fixtures import alt_cleans, make_pairs

from gradient_quarantine.model.svd_adapter import AdapterConfig, attach_svd_adapter
from gradient_quarantine.routing.band import Band, calibrate_band, load_band, save_band
from gradient_quarantine.routing.detector import DetectorRecipe, build_detector, leave_one_out_separation
from gradient_quarantine.routing.direction import (
    Direction,
    cosine,
    direction_from_grads,
    load_direction,
    pair_side_grads,
    placebo_pairs,
    random_direction_like,
    save_direction,
    side_cosines,
)
from gradient_quarantine.routing.pairs import (
    LengthNorm,
    Pair,
    encode_batch,
    length_norm_for_loss_type,
    sequence_logprob_grads,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def tiny(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    adapter = attach_svd_adapter(model, AdapterConfig(rank=8, knob_relation="disjoint", knob_rank=4))
    return model, tok, adapter


def extract(model, adapter, tok, pairs, **recipe):
    """`(direction, band)` of `build_detector` with a `DetectorRecipe(**recipe)`."""
    det = build_detector(model, adapter, tok, pairs, DetectorRecipe(**recipe))
    return det.direction, det.band


@pytest.fixture
def side_grads(tiny):
    model, tok, adapter = tiny
    return pair_side_grads(model, adapter, tok, make_pairs())


# ------------------------------------------------------------------------------------------ pure math


def _synthetic(n=6, R=5, seed=0, signal=3.0):
    """Pair differences = signal * e_m (+ noise) in every module, with e_m a fixed unit vector."""
    g = torch.Generator().manual_seed(seed)
    e = {m: torch.nn.functional.normalize(torch.randn(R, generator=g), dim=0) for m in ("a", "b")}
    clean = {m: torch.randn(n, R, generator=g) for m in e}
    hack = {m: clean[m] + signal * e[m] + 0.1 * torch.randn(n, R, generator=g) for m in e}
    return hack, clean, e


def test_direction_from_grads_recovers_and_orients_the_shared_difference():
    hack, clean, e = _synthetic()
    d = direction_from_grads(hack, clean, k=1)
    for m in e:
        assert d.basis[m].shape == (1, 5)
        assert torch.allclose(d.basis[m].norm(dim=1), torch.ones(1), atol=1e-5)
        assert float(d.basis[m][0] @ e[m]) > 0.99  # oriented: the mean difference projects positively
    total = math.sqrt(sum(float(v.norm()) ** 2 for v in d.v_hat.values()))
    assert total == pytest.approx(1.0, abs=1e-5)
    # swapping the sides flips the orientation (the side assignment is the only supervision)
    flipped = direction_from_grads(clean, hack, k=1)
    for m in e:
        assert torch.allclose(flipped.v_hat[m], -d.v_hat[m], atol=1e-5)


def test_direction_k2_spans_and_v_hat_lies_in_span():
    hack, clean, _ = _synthetic(n=6, R=5)
    d = direction_from_grads(hack, clean, k=2)
    for m, B in d.basis.items():
        assert torch.allclose(B @ B.T, torch.eye(2), atol=1e-5)
        v = d.v_hat[m]
        assert torch.allclose(B.T @ (B @ v), v, atol=1e-5)
    with pytest.raises(ValueError, match="k=7"):
        direction_from_grads(hack, clean, k=7)  # more directions than pairs
    with pytest.raises(ValueError, match="zero"):
        direction_from_grads(clean, clean, k=1)  # identical sides: no direction


def test_cosine_is_over_the_concatenation_of_modules():
    g = torch.Generator().manual_seed(1)
    grads = {"a": torch.randn(4, 3, generator=g), "b": torch.randn(4, 2, generator=g)}
    v = {"a": torch.randn(3, generator=g), "b": torch.randn(2, generator=g)}
    flat_g = torch.cat([grads["a"], grads["b"]], 1)
    flat_v = torch.cat([v["a"], v["b"]])
    want = torch.nn.functional.cosine_similarity(flat_g, flat_v[None], dim=1)
    assert torch.allclose(cosine(grads, v), want, atol=1e-6)
    assert float(cosine({"a": torch.zeros(1, 3), "b": torch.zeros(1, 2)}, v)) == 0.0  # zero gradient
    with pytest.raises(KeyError):
        cosine({"a": grads["a"]}, v)  # a cosine over a subset of modules would change its meaning


def test_random_direction_same_rank_and_norms_and_is_seeded():
    hack, clean, _ = _synthetic(n=6, R=5)
    d = direction_from_grads(hack, clean, k=2)
    r = random_direction_like(d, seed=3)
    assert r.kind == "random" and r.k == d.k
    for m in d.v_hat:
        assert r.basis[m].shape == d.basis[m].shape
        assert torch.allclose(r.basis[m] @ r.basis[m].T, torch.eye(2), atol=1e-5)  # orthonormal
        assert float(r.v_hat[m].norm()) == pytest.approx(float(d.v_hat[m].norm()), rel=1e-5)
        assert torch.allclose(r.basis[m].T @ (r.basis[m] @ r.v_hat[m]), r.v_hat[m], atol=1e-5)  # in its span
    r2 = random_direction_like(d, seed=3)
    assert all(torch.equal(r.v_hat[m], r2.v_hat[m]) for m in d.v_hat)
    r3 = random_direction_like(d, seed=4)
    assert not all(torch.allclose(r.v_hat[m], r3.v_hat[m]) for m in d.v_hat)


def test_band_calibration_and_loo_on_synthetic():
    # R = 32: a clean side's own gradient is then nearly orthogonal to the shared difference, as in a real model
    hack, clean, _ = _synthetic(R=32, signal=10.0)
    d = direction_from_grads(hack, clean, k=1)
    band = calibrate_band(*side_cosines(d, hack, clean))
    assert band.lower == pytest.approx(sum(band.clean_cos) / 6)
    assert band.upper == pytest.approx(sum(band.hack_cos) / 6)
    assert band.width > 0
    assert leave_one_out_separation(hack, clean, k=1) == 1.0  # a strong shared signal: every pair separated
    # no signal at all: the leave-one-out band separates by chance only
    g = torch.Generator().manual_seed(5)
    noise_h = {m: torch.randn(8, 32, generator=g) for m in ("a", "b")}
    noise_c = {m: torch.randn(8, 32, generator=g) for m in ("a", "b")}
    assert leave_one_out_separation(noise_h, noise_c, k=1) <= 0.5
    assert (
        leave_one_out_separation({m: t[:1] for m, t in hack.items()}, {m: t[:1] for m, t in clean.items()})
        is None
    )


# ------------------------------------------------------------------------------- per-sequence gradients


def test_length_norm_parsing_and_loss_type_mapping():
    assert LengthNorm.parse("sequence_mean").kind == "sequence_mean"
    assert LengthNorm.parse("none").kind == "none"
    assert LengthNorm.parse("constant:512").constant == 512
    for bad in ("mean", "constant:0", "constant:x", "constant:-3"):
        with pytest.raises(ValueError):
            LengthNorm.parse(bad)
    assert length_norm_for_loss_type("grpo") == "sequence_mean"
    assert length_norm_for_loss_type("dr_grpo", 256) == "constant:256"
    assert length_norm_for_loss_type("dapo") == length_norm_for_loss_type("bnpo") == "none"
    with pytest.raises(ValueError, match="max_completion_length"):
        length_norm_for_loss_type("dr_grpo")
    with pytest.raises(ValueError, match="unknown"):
        length_norm_for_loss_type("ppo")


def test_batched_grads_equal_one_sequence_at_a_time_and_autograd(tiny):
    """One padded batch gives each sequence exactly its own gradient, equal to plain autograd on dS."""
    model, tok, adapter = tiny
    pairs = make_pairs(3)
    prompts = [p.prompt for p in pairs]
    comps = [pairs[0].hack, pairs[1].clean, pairs[2].hack]  # different lengths: padding matters
    batched = sequence_logprob_grads(model, adapter, tok, prompts, comps, "sequence_mean")
    for i in range(3):
        single = sequence_logprob_grads(
            model, adapter, tok, prompts[i : i + 1], comps[i : i + 1], "sequence_mean"
        )
        for m in adapter.modules:
            assert torch.allclose(batched[m][i], single[m][0], atol=1e-6, rtol=1e-4), m
    # plain autograd for sequence 0: d l / d dS_main equals the first `rank` capture coordinates
    ids, att, cmask = encode_batch(tok, prompts[:1], comps[:1])
    for p in adapter.parameters():
        p.grad = None
    logits = model(input_ids=ids, attention_mask=att).logits[:, :-1]
    logp = torch.log_softmax(logits.float(), -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    m = cmask[:, 1:].float()
    ((logp * m).sum() / m.sum()).backward()
    for name, mod in adapter.modules.items():
        assert torch.allclose(mod.dS_main.grad, batched[name][0, : mod.rank], atol=1e-6, rtol=1e-4)
    # the extraction leaves the adapter's .grad as it found it (it may run mid-accumulation)
    before = {n: mod.dS_main.grad.clone() for n, mod in adapter.modules.items()}
    sequence_logprob_grads(model, adapter, tok, prompts, comps, "none")
    assert all(torch.equal(before[n], mod.dS_main.grad) for n, mod in adapter.modules.items())


def test_length_norm_scales_each_sequence_by_its_length(tiny):
    model, tok, adapter = tiny
    pairs = make_pairs(2)
    prompts, comps = [p.prompt for p in pairs], [pairs[0].hack, pairs[1].clean]
    _, _, cmask = encode_batch(tok, prompts, comps)
    n_tok = cmask.sum(1).float()  # completion tokens incl. the appended EOS
    mean = sequence_logprob_grads(model, adapter, tok, prompts, comps, "sequence_mean")
    summed = sequence_logprob_grads(model, adapter, tok, prompts, comps, "none")
    const = sequence_logprob_grads(model, adapter, tok, prompts, comps, "constant:100")
    for m in adapter.modules:
        assert torch.allclose(summed[m], mean[m] * n_tok[:, None], atol=1e-5, rtol=1e-4)
        assert torch.allclose(const[m], summed[m] / 100, atol=1e-6, rtol=1e-4)


# ------------------------------------------------------------------------- real direction vs controls


def test_real_band_is_positive_and_random_v_is_about_zero(tiny, side_grads):
    """On a fixed pair set whose hack sides share a signature, v_grad separates the sides; random-V does not."""
    model, tok, adapter = tiny
    direction, band = extract(model, adapter, tok, make_pairs(), k=1)
    assert band.width > 0.25, band
    assert band.loo_separation >= 0.5  # the band calibrated without a pair still separates most pairs
    hack, clean = side_grads
    widths = [
        calibrate_band(*side_cosines(random_direction_like(direction, s), hack, clean)).width
        for s in range(16)
    ]
    mean_abs = sum(abs(w) for w in widths) / len(widths)
    assert mean_abs < 0.2 * band.width, (band.width, widths)
    assert min(widths) < 0 < max(widths)  # random-V's band has either sign: it is not oriented by the pairs


def test_placebo_pairs_are_clean_only_and_carry_no_hack_direction(tiny, side_grads):
    model, tok, adapter = tiny
    pairs = make_pairs()
    direction, band = extract(model, adapter, tok, pairs, k=1)
    placebo = placebo_pairs(pairs, alt_cleans())
    assert all(
        p.hack == a and p.clean == q.clean for p, q, a in zip(placebo, pairs, alt_cleans(), strict=True)
    )
    assert not any("run_tests" in p.clean + p.hack for p in placebo)
    cross = placebo_pairs(pairs)  # without a second clean variant: another pair's clean side
    assert [p.hack for p in cross] == [q.clean for q in pairs[1:] + pairs[:1]]
    p_dir, p_band = extract(model, adapter, tok, placebo, k=1, kind="placebo")
    assert p_dir.kind == "placebo"
    # in-sample the placebo band is positive by construction; out of sample (leave one out) it separates
    # far fewer pairs than the real direction
    assert p_band.loo_separation <= band.loo_separation - 0.25
    # the real direction does not separate clean from clean
    hp, cp = pair_side_grads(model, adapter, tok, placebo)
    assert abs(calibrate_band(*side_cosines(direction, hp, cp)).width) < 0.1
    with pytest.raises(ValueError):
        placebo_pairs(pairs[:1])
    with pytest.raises(ValueError):
        placebo_pairs(pairs, alt_cleans()[:3])


def test_extraction_is_deterministic(tiny):
    model, tok, adapter = tiny
    d1, b1 = extract(model, adapter, tok, make_pairs(4), k=1)
    d2, b2 = extract(model, adapter, tok, make_pairs(4), k=1)
    assert all(torch.equal(d1.v_hat[m], d2.v_hat[m]) for m in d1.v_hat)
    assert b1 == b2


def test_save_load_roundtrip(tmp_path, tiny):
    model, tok, adapter = tiny
    d, band = extract(model, adapter, tok, make_pairs(4), k=2)
    save_direction(d, tmp_path / "v_grad.safetensors")
    save_band(band, tmp_path / "band.json")
    d2, band2 = load_direction(tmp_path / "v_grad.safetensors"), load_band(tmp_path / "band.json")
    assert isinstance(d2, Direction) and d2.kind == d.kind and d2.modules == d.modules and d2.k == 2
    assert all(
        torch.equal(d.basis[m], d2.basis[m]) and torch.equal(d.v_hat[m], d2.v_hat[m]) for m in d.modules
    )
    assert d2.meta["n_pairs"] == 4
    assert isinstance(band2, Band) and band2 == band
    assert (tmp_path / "v_grad.json").exists()


def test_pair_validation():
    with pytest.raises(ValueError):
        Pair("not a chat", "a", "b")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Pair([{"role": "user", "content": "q"}], "", "b")


# ---------------------------------------------------------------------------------------------------- CLI


def test_cli_direction_writes_v_grad_band_and_compares_random_v(tmp_path):
    import json

    from typer.testing import CliRunner

    from gradient_quarantine.cli import app
    from gradient_quarantine.io import atomic_write_jsonl

    pairs = make_pairs()
    modes = ["overwrite_tests", "exit_code"]
    rows = [
        {"problem_id": f"p{i}", "mode": modes[i % 2], "kind": "hack", "prompt": p.prompt, "clean": p.clean,
         "hack": p.hack}
        for i, p in enumerate(pairs)
    ] + [
        {"problem_id": f"p{i}", "mode": modes[i % 2], "kind": "placebo", "prompt": p.prompt, "clean": p.clean,
         "hack": a}
        for i, (p, a) in enumerate(zip(pairs, alt_cleans(), strict=True))
    ]  # fmt: skip
    atomic_write_jsonl(tmp_path / "pairs.jsonl", rows)
    out = tmp_path / "dir"
    args = ["direction", "--model", "tiny", "--pairs", str(tmp_path / "pairs.jsonl"), "--rank", "8", "--k", "1",
            "--random-seeds", "4", "--device", "cpu", "--out", str(out)]  # fmt: skip
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "random-V" in r.output and "v_grad" in r.output
    d = load_direction(out / "v_grad.safetensors")
    band = load_band(out / "band.json")
    assert d.kind == "v_grad" and d.meta["n_pairs"] == 8 and band.width > 0.25
    per_pair = json.loads((out / "pair_cosines.json").read_text())
    assert [row["problem_id"] for row in per_pair] == [f"p{i}" for i in range(8)]
    summary = json.loads((out / "direction_summary.json").read_text())
    assert len(summary["random_v"]) == 4 and summary["random_v_mean_abs_width"] < 0.2 * band.width
    # a mode filter keeps only that mode's rows; --placebo reads the placebo rows
    r = CliRunner().invoke(app, args[:-1] + [str(tmp_path / "one"), "--modes", "exit_code", "--placebo"])
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "one" / "direction_summary.json").read_text())
    assert summary["n_pairs"] == 4 and summary["kind"] == "placebo" and summary["modes"] == ["exit_code"]
    r = CliRunner().invoke(app, args[:-1] + [str(tmp_path / "bad"), "--modes", "no_such_mode"])
    assert r.exit_code == 2 and "no_such_mode" in r.output
