"""The band's gate, frout matching, and the router's split of a GRPO-shaped gradient into main and knob."""

from __future__ import annotations

import math

import pytest
import torch
from routing_fixtures import grpo_batch, grpo_loss, make_pairs

from gradient_quarantine.model.svd_adapter import AdapterConfig, attach_svd_adapter
from gradient_quarantine.routing.band import (
    Band,
    calibrate_band,
    frout,
    frout_matched_gate,
    frout_matched_threshold,
    gate,
    gate_stats,
    ramp_matched_gate,
)
from gradient_quarantine.routing.capture import GradCapture
from gradient_quarantine.routing.direction import extract_direction, random_direction_like
from gradient_quarantine.routing.router import Router, make_optimizers

METRICS = {
    "routing/frout", "routing/band_lower", "routing/band_upper", "routing/band_width", "routing/loo_separation",
    "routing/cos_p10", "routing/cos_p50", "routing/cos_p90", "routing/gate_at_0", "routing/gate_at_1",
    "routing/gate_between", "routing/resid_cos", "routing/dropped_frac", "grad/norm_main", "grad/norm_knob",
}  # fmt: skip
NEVER = Band(lower=2.0, upper=3.0)  # cosines are <= 1: f = 0 everywhere
ALWAYS = Band(lower=-3.0, upper=-2.0)  # cosines are >= -1: f = 1 everywhere


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _setup(model_tok, relation="shared", k=1, knob_rank=4):
    model, tok = model_tok
    adapter = attach_svd_adapter(model, AdapterConfig(rank=8, knob_relation=relation, knob_rank=knob_rank))
    direction, band = extract_direction(model, adapter, tok, make_pairs(), k=k)
    return model, tok, adapter, direction, band


def _plain_grads(model, tok, adapter):
    """Autograd's own gradient of the GRPO loss (no capture, no routing)."""
    for p in adapter.parameters():
        p.grad = None
    grpo_loss(model, *grpo_batch(tok)).backward()
    out = {n: (m.dS_main.grad.clone(), m.dS_knob.grad.clone()) for n, m in adapter.modules.items()}
    for p in adapter.parameters():
        p.grad = None
    return out


def _routed(model, tok, adapter, router, per_token=False):
    with GradCapture(adapter, per_token=per_token) as cap, router.intercept():
        grpo_loss(model, *grpo_batch(tok)).backward()
        result = router.route(cap)
        router.apply(result)
    return result


# ----------------------------------------------------------------------------------------------- gate


def test_gate_formula_clamps_and_degenerate_band_routes_nothing():
    band = calibrate_band(hack_cos=[0.31, 0.28], clean_cos=[0.02, -0.01])
    assert band.width == pytest.approx(0.29)
    f = gate(torch.tensor([-1.0, 0.0, 0.15, 0.5, 1.0]), band)
    assert torch.allclose(f, torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]), atol=1e-6)
    assert float(f.min()) >= 0 and float(f.max()) <= 1
    for degenerate in (Band(0.2, 0.2), Band(0.3, 0.1)):  # width 0 / negative: nothing is separated
        assert torch.equal(gate(torch.linspace(-1, 1, 9), degenerate), torch.zeros(9))
    with pytest.raises(ValueError):
        Band(float("nan"), 1.0)


def test_frout_matched_gate_hits_its_target_exactly():
    g = torch.Generator().manual_seed(0)
    cos = torch.rand(50, generator=g) * 2 - 1
    norms = torch.rand(50, generator=g) + 0.1
    for target in (0.0, 0.05, 0.3, 0.77, 1.0):
        f = frout_matched_gate(cos, norms, target)
        assert float(f.min()) >= 0 and float(f.max()) <= 1
        assert frout(f, norms) == pytest.approx(target, abs=1e-6)
        if 0 < target < 1:  # the most hack-ward items go first, at most one item is partly routed
            t = frout_matched_threshold(cos, norms, target)
            assert bool((f[cos > t] == 1).all()) and bool((f[cos < t] == 0).all())
            assert int(((f > 0) & (f < 1)).sum()) <= 1
    assert math.isinf(frout_matched_threshold(cos, norms, 0.0))
    with pytest.raises(ValueError):
        frout_matched_gate(cos, norms, 1.5)
    # per-token shapes work too
    f2 = frout_matched_gate(cos.view(5, 10), norms.view(5, 10), 0.4)
    assert f2.shape == (5, 10) and frout(f2, norms.view(5, 10)) == pytest.approx(0.4, abs=1e-6)


def test_ramp_matched_gate_has_the_bands_shape_and_hits_its_target():
    """The matched control's gate: route2b's ramp, clamp((cos - lower) / width), placed to route the target."""
    g = torch.Generator().manual_seed(1)
    cos = torch.rand(40, generator=g) * 0.6 - 0.3
    norms = torch.rand(40, generator=g) + 0.05
    norms[3] = 0.0  # a zero-gradient item carries no mass
    for target in (0.0, 0.02, 0.3, 0.815, 1.0):
        for width in (0.05, 0.4):
            f = ramp_matched_gate(cos, norms, target, width)
            assert frout(f, norms) == pytest.approx(target, abs=1e-6)
            between = (f > 1e-6) & (f < 1 - 1e-6)
            if 0 < target < 1:
                lowers = cos[between] - f[between] * width  # one lower for every item on the ramp
                assert between.any() and float(lowers.max() - lowers.min()) < 1e-5
                assert torch.allclose(f, ((cos - lowers.mean()) / width).clamp(0, 1), atol=1e-5)
                order = torch.argsort(cos)
                assert bool((f[order].diff() >= -1e-7).all())  # non-decreasing in cos, as the band's gate
    # a wide ramp has many items strictly between 0 and 1; the hard cut has at most one
    wide, hard = ramp_matched_gate(cos, norms, 0.3, 0.4), frout_matched_gate(cos, norms, 0.3)
    assert int(((wide > 0) & (wide < 1)).sum()) > 5 >= int(((hard > 0) & (hard < 1)).sum())
    assert torch.equal(ramp_matched_gate(cos, norms, 0.3, 0.0), hard)  # width 0: the hard cut's limit


def test_gate_stats_fractions():
    s = gate_stats(torch.tensor([0.0, 0.0, 1.0, 0.5, 0.2]), weight=torch.tensor([1, 1, 1, 1, 0]))
    assert s == {"routing/gate_at_0": 0.5, "routing/gate_at_1": 0.25, "routing/gate_between": 0.25}


# ------------------------------------------------------------------------------------------- router


@pytest.mark.parametrize("granularity", ["rollout", "token"])
def test_shared_main_plus_knob_equals_unrouted_gradient(tiny_model_and_tokenizer, granularity):
    model, tok, adapter, direction, band = _setup(tiny_model_and_tokenizer, "shared")
    plain = _plain_grads(model, tok, adapter)
    router = Router(adapter, direction, band, granularity=granularity)
    result = _routed(model, tok, adapter, router, per_token=granularity == "token")
    s = result.stats
    assert 0 < s["routing/frout"] < 1, s  # the fixture's rollouts straddle the band: some routed, some not
    for n, m in adapter.modules.items():
        total = plain[n][0]  # shared axes: autograd's dS_main grad == dS_knob grad == the total
        assert torch.allclose(m.dS_main.grad + m.dS_knob.grad, total, atol=1e-6, rtol=1e-4), n
        assert torch.allclose(result.main[n] + result.knob[n], total, atol=1e-6, rtol=1e-4)
    assert result.f.min() >= 0 and result.f.max() <= 1


def test_gate_forced_to_zero_routes_nothing(tiny_model_and_tokenizer):
    model, tok, adapter, direction, _ = _setup(tiny_model_and_tokenizer, "disjoint")
    plain = _plain_grads(model, tok, adapter)
    result = _routed(model, tok, adapter, Router(adapter, direction, NEVER))
    assert result.stats["routing/frout"] == 0.0 and result.stats["routing/gate_at_0"] == 1.0
    for n, m in adapter.modules.items():
        assert torch.allclose(m.dS_main.grad, plain[n][0], atol=1e-6, rtol=1e-4)  # main grad == total
        assert torch.count_nonzero(m.dS_knob.grad) == 0


def test_disjoint_gate_at_one_routes_everything_into_the_knob_axes(tiny_model_and_tokenizer):
    model, tok, adapter, direction, _ = _setup(tiny_model_and_tokenizer, "disjoint")
    plain = _plain_grads(model, tok, adapter)
    result = _routed(model, tok, adapter, Router(adapter, direction, ALWAYS))
    assert result.stats["routing/frout"] == pytest.approx(1.0)
    for n, m in adapter.modules.items():
        assert torch.count_nonzero(m.dS_main.grad) == 0
        assert torch.allclose(m.dS_knob.grad, plain[n][1], atol=1e-6, rtol=1e-4)  # the knob's own axes


def test_vgrad_span_knob_basis_and_coordinates(tiny_model_and_tokenizer):
    model, tok, adapter, direction, band = _setup(tiny_model_and_tokenizer, "vgrad_span", k=2, knob_rank=2)
    router = Router(adapter, direction, ALWAYS)
    for n, m in adapter.modules.items():  # the router carved the knob out of span(v_grad)
        assert torch.allclose(m.knob_basis, direction.basis[n])
    plain = _plain_grads(model, tok, adapter)
    _routed(model, tok, adapter, router)
    for n, m in adapter.modules.items():
        assert torch.allclose(m.dS_knob.grad, plain[n][1], atol=1e-6, rtol=1e-4)  # knob_basis @ G
    with pytest.raises(ValueError, match="knob_rank"):
        Router(adapter, extract_direction(model, adapter, tok, make_pairs(), k=1)[0], band)


def test_frout_matched_router_hits_target_and_random_v_can_be_matched(tiny_model_and_tokenizer):
    model, tok, adapter, direction, band = _setup(tiny_model_and_tokenizer, "disjoint")
    real = _routed(model, tok, adapter, Router(adapter, direction, band))
    target = real.stats["routing/frout"]
    rand = random_direction_like(direction, seed=0)
    for p in adapter.parameters():
        p.grad = None
    matched = _routed(model, tok, adapter, Router(adapter, rand, band, frout_target=target))
    assert matched.stats["routing/frout"] == pytest.approx(target, abs=1e-5)
    token = Router(adapter, rand, band, granularity="token", frout_target=0.25)
    assert _routed(model, tok, adapter, token, per_token=True).stats["routing/frout"] == pytest.approx(
        0.25, abs=1e-5
    )


def test_matched_router_follows_a_per_step_target_through_a_ramp(tiny_model_and_tokenizer):
    """random-V matched step by step: each step's target is met, through route2b's ramp shape (items strictly
    between 0 and 1, one `lower`), with the ramp spanning `ramp_rel_width` of the live cosine spread."""
    model, tok, adapter, direction, band = _setup(tiny_model_and_tokenizer, "disjoint")
    rand = random_direction_like(direction, seed=0)
    router = Router(adapter, rand, band, frout_target=0.0, ramp_rel_width=0.8)
    for target in (0.0, 0.35, 0.815):
        router.frout_target = target
        for p in adapter.parameters():
            p.grad = None
        res = _routed(model, tok, adapter, router)
        assert res.stats["routing/frout"] == pytest.approx(target, abs=1e-5)
        assert res.stats["routing/frout_target"] == target
        live = res.norms > 0
        cos, f = res.cos[live], res.f[live]
        width = 0.8 * float(torch.quantile(cos, 0.9) - torch.quantile(cos, 0.1))
        between = (f > 1e-6) & (f < 1 - 1e-6)
        if target > 0:
            assert between.any()
            lowers = cos[between] - f[between] * width
            assert float(lowers.max() - lowers.min()) < 1e-4
            assert torch.allclose(f, ((cos - lowers.mean()) / width).clamp(0, 1), atol=1e-4)


def test_token_gate_needs_per_token_capture_and_constant_gate_matches_rollout(tiny_model_and_tokenizer):
    model, tok, adapter, direction, _ = _setup(tiny_model_and_tokenizer, "shared")
    router = Router(adapter, direction, ALWAYS, granularity="token")
    with pytest.raises(RuntimeError, match="per_token"):
        _routed(model, tok, adapter, router, per_token=False)
    for p in adapter.parameters():
        p.grad = None
    by_token = _routed(model, tok, adapter, router, per_token=True)
    for p in adapter.parameters():
        p.grad = None
    by_rollout = _routed(model, tok, adapter, Router(adapter, direction, ALWAYS))
    for n in adapter.modules:
        assert torch.allclose(by_token.knob[n], by_rollout.knob[n], atol=1e-6, rtol=1e-4)
    # per-token cosines exist for every position; the padding / zero-gradient ones are excluded from gauges
    assert by_token.cos.numel() > by_rollout.cos.numel()
    assert not bool(by_token.valid.all())


def test_apply_accumulates_over_micro_batches_and_stats_merge(tiny_model_and_tokenizer):
    model, tok, adapter, direction, band = _setup(tiny_model_and_tokenizer, "shared")
    plain = _plain_grads(model, tok, adapter)
    router = Router(adapter, direction, band)
    results = []
    with GradCapture(adapter) as cap, router.intercept():
        for _ in range(2):  # the same micro-batch twice: every gradient doubles
            cap.reset()
            grpo_loss(model, *grpo_batch(tok)).backward()
            results.append(router.route(cap))
            router.apply(results[-1])
    for n, m in adapter.modules.items():
        assert torch.allclose(m.dS_main.grad + m.dS_knob.grad, 2 * plain[n][0], atol=1e-6, rtol=1e-4)
    merged = router.stats(results)
    assert set(merged) == METRICS
    assert merged["routing/frout"] == pytest.approx(results[0].stats["routing/frout"], abs=1e-6)
    assert merged["routing/gate_at_0"] + merged["routing/gate_at_1"] + merged[
        "routing/gate_between"
    ] == pytest.approx(1)
    assert merged["routing/band_width"] == pytest.approx(band.width)
    assert merged["routing/cos_p10"] <= merged["routing/cos_p50"] <= merged["routing/cos_p90"]
    assert -1 <= merged["routing/resid_cos"] <= 1
    # outside intercept() autograd writes .grad itself again
    before = {n: m.dS_main.grad.clone() for n, m in adapter.modules.items()}
    grpo_loss(model, *grpo_batch(tok)).backward()
    for n, m in adapter.modules.items():
        assert torch.allclose(m.dS_main.grad - before[n], plain[n][0], atol=1e-6, rtol=1e-4)


def test_routing_removes_the_hack_direction_from_the_main_gradient(tiny_model_and_tokenizer):
    """Routing everything above the band leaves the main knob's update less hack-ward than the unrouted one."""
    model, tok, adapter, direction, band = _setup(tiny_model_and_tokenizer, "shared")
    none = _routed(model, tok, adapter, Router(adapter, direction, NEVER))
    for p in adapter.parameters():
        p.grad = None
    routed = _routed(model, tok, adapter, Router(adapter, direction, band))
    assert routed.stats["routing/resid_cos"] < none.stats["routing/resid_cos"]


def test_make_optimizers_keep_separate_state(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    adapter = attach_svd_adapter(model, AdapterConfig(rank=4, knob_relation="disjoint", knob_rank=2))
    opt_main, opt_knob = make_optimizers(adapter, lr_main=1e-2, lr_knob=1e-3, weight_decay_knob=0.1)
    main_ids = {id(p) for g in opt_main.param_groups for p in g["params"]}
    knob_ids = {id(p) for g in opt_knob.param_groups for p in g["params"]}
    assert main_ids == {id(p) for p in adapter.main_parameters()}
    assert knob_ids == {id(p) for p in adapter.knob_parameters()} and not main_ids & knob_ids
    assert opt_knob.param_groups[0]["weight_decay"] == 0.1 and opt_main.param_groups[0]["weight_decay"] == 0.0
    # a knob-only gradient moves only the knob (no shared moments carry it into the main knob)
    for p in adapter.knob_parameters():
        p.grad = torch.ones_like(p)
    opt_main.step()
    opt_knob.step()
    assert all(torch.count_nonzero(p) == 0 for p in adapter.main_parameters())
    assert all(torch.count_nonzero(p) > 0 for p in adapter.knob_parameters())


def test_router_rejects_mismatched_direction(tiny_model_and_tokenizer):
    model, tok, adapter, direction, band = _setup(tiny_model_and_tokenizer, "shared")
    partial = type(direction)({k: v for k, v in list(direction.basis.items())[:2]},
                              {k: v for k, v in list(direction.v_hat.items())[:2]})  # fmt: skip
    with pytest.raises(KeyError):
        Router(adapter, partial, band)
    with pytest.raises(ValueError):
        Router(adapter, direction, band, granularity="sentence")
    with pytest.raises(ValueError):
        Router(adapter, direction, band, frout_target=2.0)


# ------------------------------------------------------------------------- vgrad_span refresh: Adam moments


def test_vgrad_span_refresh_reprojects_the_knobs_adam_moments(tiny_model_and_tokenizer):
    """A refresh whose new basis is the old one re-ordered and sign-flipped changes nothing: the knob's effect,
    its Adam moments (as directions in the adapter's axes) and every later optimiser step are the same as
    without the refresh. Without re-projecting the moments, momentum built on old axis i keeps pushing new
    axis i, a different direction."""
    model, tok, adapter, direction, band = _setup(tiny_model_and_tokenizer, "vgrad_span", k=2, knob_rank=2)
    router = Router(adapter, direction, band)
    knob = adapter.knob_parameters()
    opt = torch.optim.AdamW(knob, lr=1e-2, weight_decay=0.0)
    g = torch.Generator().manual_seed(3)
    G_steps = [{n: torch.randn(m.rank, generator=g) for n, m in adapter.modules.items()} for _ in range(4)]

    def step(G):  # one optimiser step on the knob, from a gradient given in the adapter's (rank,) axes
        for n, m in adapter.modules.items():
            m.dS_knob.grad = m.knob_basis @ G[n]  # dL/d dS_knob = knob_basis @ G
        opt.step()

    def effects():
        return {n: (m.dS_knob @ m.knob_basis).detach().clone() for n, m in adapter.modules.items()}

    for G in G_steps[:2]:
        step(G)
    state0 = {n: {k: v.clone() for k, v in opt.state[m.dS_knob].items()} for n, m in adapter.modules.items()}
    twin = {n: (m.dS_knob.detach().clone(), m.knob_basis.clone()) for n, m in adapter.modules.items()}
    flip = torch.tensor([[0.0, -1.0], [1.0, 0.0]])  # new rows: -old row 1, old row 0
    new = type(direction)({n: flip @ b for n, b in direction.basis.items()}, dict(direction.v_hat), "v_grad")
    before = effects()
    router.set_direction(new, band, reproject_knob=True, optimizer=opt)
    for n, m in adapter.modules.items():
        torch.testing.assert_close(m.knob_basis, flip @ direction.basis[n])
        torch.testing.assert_close(effects()[n], before[n])
        st = opt.state[m.dS_knob]
        # the first moment describes the same direction in the adapter's axes, the second its permutation
        torch.testing.assert_close(st["exp_avg"] @ m.knob_basis, state0[n]["exp_avg"] @ direction.basis[n])
        torch.testing.assert_close(st["exp_avg_sq"], state0[n]["exp_avg_sq"][[1, 0]])
    for G in G_steps[2:]:
        step(G)
    refreshed = effects()
    # the same two steps without the refresh, from a copy of the pre-refresh state
    for n, m in adapter.modules.items():
        with torch.no_grad():
            m.dS_knob.copy_(twin[n][0])
            m.knob_basis.copy_(twin[n][1])
        opt.state[m.dS_knob] = {k: v.clone() for k, v in state0[n].items()}
    for G in G_steps[2:]:
        step(G)
    for n, e in effects().items():
        torch.testing.assert_close(refreshed[n], e, atol=1e-6, rtol=1e-5)


# ---------------------------------------------------------------------------------- what the knob absorbs


@pytest.mark.parametrize("relation", ["shared", "disjoint", "vgrad_span"])
def test_dropped_frac_is_the_routed_share_that_reaches_neither_knob(tiny_model_and_tokenizer, relation):
    """routing/dropped_frac = 1 - ||knob part of sum f G||^2 / ||sum f G||^2, from the capture coordinates: the
    main knob never gets the routed part, and the knob gets only its own coordinates of it."""
    k = 2 if relation == "vgrad_span" else 1
    model, tok, adapter, direction, band = _setup(tiny_model_and_tokenizer, relation, k=k, knob_rank=2)
    result = _routed(model, tok, adapter, Router(adapter, direction, band))
    routed = result.routed  # (M, R) sum_b f_b G_b
    assert float(routed.norm()) > 0
    if relation == "shared":
        want = 0.0  # the knob scales every axis
    elif relation == "disjoint":
        want = float((routed[:, :8] ** 2).sum() / (routed**2).sum())  # the main axes [:rank] are masked out
    else:
        names = list(adapter.modules)
        proj = torch.stack([adapter.modules[n].knob_basis @ routed[i] for i, n in enumerate(names)])  # (M, k)
        want = 1.0 - float((proj**2).sum() / (routed**2).sum())
    assert result.stats["routing/dropped_frac"] == pytest.approx(want, abs=1e-5)
    if relation != "shared":
        assert 0.0 < result.stats["routing/dropped_frac"] < 1.0
    for p in adapter.parameters():
        p.grad = None
    nothing = _routed(model, tok, adapter, Router(adapter, direction, NEVER))
    assert math.isnan(nothing.stats["routing/dropped_frac"])  # nothing routed: no share to speak of
