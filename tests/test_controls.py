"""Controls that can fail (issue 12): the random-V partner matched step by step, the per-token band calibrated
on per-token cosines, the gate on held-out pairs, on the tiny model and the smoke preset.

Router-level properties (the ramp-shaped matched gate, dropped_frac, the vgrad_span refresh of Adam moments) are
in tests/test_routing.py; the report's grouping, duplicates and A3 in tests/test_report.py.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from gradient_quarantine.experiments.presets import ConfigError, build_config  # noqa: E402
from gradient_quarantine.io import append_jsonl  # noqa: E402


def _run(tmp_path, sets, setup=False):
    """A smoke-preset run's set-up (train/run_setup.py); `setup`: with its model, adapter and problems built."""
    from gradient_quarantine.train.run_setup import RunSetup
    from gradient_quarantine.train.rundir import RunDir

    cfg = build_config(
        "smoke", [*sets, f"run.cache_dir={tmp_path / 'cache'}", "run.progress=false"]
    ).resolved()
    r = RunSetup(cfg, RunDir.create(tmp_path / "runs", cfg.name))
    return r.build() if setup else r


# ------------------------------------------------------------------------------- random-V, step by step


def _partner(tmp_path, frouts, widths=None):
    d = tmp_path / "0001_route2b_s41"
    d.mkdir(parents=True)
    for t, fr in enumerate(frouts, 1):
        w = widths[t - 1] if widths else 0.3
        append_jsonl(d / "metrics.jsonl", {"step": t, "routing/frout": fr, "routing/band_width": w,
                                           "routing/cos_p10": -0.1, "routing/cos_p90": 0.5})  # fmt: skip
    return d


def test_random_v_targets_its_partners_frout_at_each_step(tmp_path):
    """The committed route2b run routed 0.00 to 0.815 over its steps; its random-V partner must follow that
    series, not its mean, and copy the ramp's width relative to the cosine spread."""
    partner = _partner(tmp_path, [0.0, 0.815, 0.43], widths=[0.3, 0.6, -0.1])
    r = _run(tmp_path, ["routing.direction=random", f"routing.frout_from={partner}"])
    sched = r.frout_schedule()
    assert [sched[t][0] for t in (1, 2, 3)] == [0.0, 0.815, 0.43]
    assert sched[1][1] == pytest.approx(0.3 / 0.6) and sched[2][1] == pytest.approx(0.6 / 0.6)
    assert sched[3][1] is None  # a band that separates nothing has no ramp to copy: the hard cut
    # a constant target (no partner): the same every step, hard cut
    c = _run(tmp_path / "c", ["routing.direction=random", "routing.frout_target=0.2"]).frout_schedule()
    assert set(c.values()) == {(0.2, None)} and sorted(c) == [1, 2, 3]


def test_random_v_refuses_a_partner_shorter_than_itself(tmp_path):
    partner = _partner(tmp_path, [0.1, 0.2])
    r = _run(tmp_path, ["routing.direction=random", f"routing.frout_from={partner}"])
    with pytest.raises(ValueError, match=r"no routing/frout for step\(s\) \[3\]"):
        r.frout_schedule()


# ------------------------------------------------------------------------------- the per-token band


def _token_scores_by_hand(model, tok, adapter, pairs, v_hat, side):
    """Each side's sum_t ||G_t|| cos_t / sum_t ||G_t|| and its token frout under a band, from a per-token capture
    of each sequence on its own (no batching), with the cosine over all modules' coordinates."""
    import torch

    from gradient_quarantine.routing.capture import GradCapture
    from gradient_quarantine.routing.pairs import encode_batch

    out = []
    for p in pairs:
        ids, att, cmask = encode_batch(tok, [p.prompt], [getattr(p, side)])
        with GradCapture(adapter, per_token=True) as cap:
            logp = torch.log_softmax(model(input_ids=ids, attention_mask=att).logits[:, :-1].float(), -1)
            logp = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
            m = cmask[:, 1:].float()
            ((logp * m).sum(1) / m.sum(1)).sum().backward()
        # (T, sum R): each position's contribution, every module's coordinates concatenated
        Gt = torch.cat([(lambda a, b: a * b)(*cap.per_token(n))[0] for n in adapter.modules], -1)
        v = torch.cat([v_hat[n] for n in adapter.modules])
        norm = Gt.norm(dim=-1)
        cos = Gt @ v / (norm * v.norm()).clamp(min=1e-12)
        out.append((cos, norm))
    return out


def test_token_band_is_calibrated_on_per_token_cosines(tiny_model_and_tokenizer):
    """routing.gate=token gets its own band: lower/upper are the clean/hack sides' token-mass-weighted mean token
    cosines (checked against a per-sequence per-token capture), not the whole-rollout cosines; it carries its
    leave-one-pair-out separation; pair_gates gives each side's mass-weighted token frout under it."""
    import torch
    from routing_fixtures import make_pairs

    from gradient_quarantine.model.svd_adapter import AdapterConfig, attach_svd_adapter
    from gradient_quarantine.routing.band import gate
    from gradient_quarantine.routing.detector import DetectorRecipe, build_detector
    from gradient_quarantine.routing.direction import pair_gates

    model, tok = tiny_model_and_tokenizer
    adapter = attach_svd_adapter(model, AdapterConfig(rank=8, knob_relation="disjoint", knob_rank=2))
    pairs = make_pairs()
    rollout = build_detector(model, adapter, tok, pairs, DetectorRecipe(k=1, batch_size=3))
    token = build_detector(model, adapter, tok, pairs, DetectorRecipe(k=1, batch_size=3, granularity="token"))
    direction, rollout_band, tdir, token_band = rollout.direction, rollout.band, token.direction, token.band
    for n in direction.v_hat:  # the same direction; only the band differs
        torch.testing.assert_close(tdir.v_hat[n], direction.v_hat[n], atol=1e-5, rtol=1e-4)
    assert rollout_band.granularity == "rollout" and token_band.granularity == "token"
    for side, got in (("hack", token_band.hack_cos), ("clean", token_band.clean_cos)):
        by_hand = _token_scores_by_hand(model, tok, adapter, pairs, direction.v_hat, side)
        want = [float((c * w).sum() / w.sum()) for c, w in by_hand]
        assert got == pytest.approx(want, abs=1e-4)
    assert token_band.lower == pytest.approx(sum(token_band.clean_cos) / len(pairs))
    assert token_band.upper == pytest.approx(sum(token_band.hack_cos) / len(pairs))
    # per-token scores are smaller than whole-rollout cosines (|sum_t G_t| <= sum_t |G_t|): a narrower band
    assert 0 < token_band.width < rollout_band.width
    assert token_band.loo_separation is not None
    # the gate on the pairs at token granularity: each side's mass-weighted share of routed tokens
    fh, fc = pair_gates(model, adapter, tok, pairs, direction, token_band, batch_size=3)
    for f, side in ((fh, "hack"), (fc, "clean")):
        by_hand = _token_scores_by_hand(model, tok, adapter, pairs, direction.v_hat, side)
        want = [float((gate(c, token_band) * w).sum() / w.sum()) for c, w in by_hand]
        assert f.tolist() == pytest.approx(want, abs=1e-4)
    assert float(fh.mean()) > float(fc.mean())  # hack tokens are routed more than clean tokens


# ------------------------------------------------------------------------------- held-out pairs


@pytest.mark.parametrize("gate", ["rollout", "token"])
def test_gate_is_logged_on_held_out_pairs(tmp_path, gate):
    """routing.heldout_pairs_per_mode: per mode, pairs after the calibration ones are kept out of v_grad and the
    band, and the band's gate on them is logged beside the in-sample one (routing/pair_gate_*,
    routing/heldout_gate_*), at the gate's granularity."""
    from gradient_quarantine.routing.band import band_stats

    r = _run(tmp_path, [f"routing.gate={gate}", "routing.pairs_per_mode=2", "routing.heldout_pairs_per_mode=1"],
             setup=True)  # fmt: skip
    r.load_pairs()
    assert len(r.pairs) == 8 and len(r.heldout_pairs) == 4  # 4 modes x (2 calibration + 1 held out)
    assert not {p.hack for p in r.pairs} & {p.hack for p in r.heldout_pairs}
    direction, band = r.extract_direction()
    assert band.granularity == gate and band.n_heldout == 4 and len(band.hack_cos) == 8
    stats = band_stats(band)
    for key in ("pair_gate_hack", "pair_gate_clean", "heldout_gate_hack", "heldout_gate_clean"):
        assert 0.0 <= stats[f"routing/{key}"] <= 1.0
    if gate == "rollout":  # in sample: the band's gate on its own pairs' cosines
        import torch

        from gradient_quarantine.routing.band import gate as band_gate

        want = float(band_gate(torch.tensor(band.hack_cos), band).mean())
        assert stats["routing/pair_gate_hack"] == pytest.approx(want)
    # a frout-matched control gates by its target, not its band: no gate on pairs is claimed for it
    c = _run(tmp_path / "ctrl", ["routing.direction=random", "routing.frout_target=0.3",
                                 "routing.heldout_pairs_per_mode=1"], setup=True)  # fmt: skip
    c.load_pairs()
    assert c.frout_schedule() is not None and c.matched_control
    assert c.extract_direction()[1].heldout_gate_hack is None


# ------------------------------------------------------------------------------- on-policy pair sides


def test_on_policy_pair_sides_sample_the_policy_unhinted_and_pair_each_completion(tmp_path, monkeypatch):
    """routing.pair_sides=on_policy: the pair problems' unhinted prompts are sampled from the run's own policy
    (on_policy_samples each, the run's seed stream), and each completion becomes a pair with itself plus the
    mode's hack, under the mode's hinted prompt. The sampler is the real one; only its texts are replaced here
    (a tiny random model writes no code), to check what is done with them."""
    import gradient_quarantine.train.deploy_eval as deploy_eval
    from gradient_quarantine.seeding import on_policy_pairs_seed
    from gradient_quarantine.substrate.hacks import code_block, insert_hack
    from gradient_quarantine.substrate.modes import NO_HINT_CLAUSE

    r = _run(tmp_path, ["routing.pair_sides=on_policy", "routing.on_policy_samples=3", "routing.pairs_per_mode=2"],
             setup=True)  # fmt: skip
    from gradient_quarantine.substrate.problems import load_problems

    known = {p.id: p for p in load_problems("builtin")}  # the smoke preset's pairs: the shipped pair file's
    seen = {}
    real_sample = deploy_eval.sample

    def sample(model, tok, prompts, samples, *args, seed, **kw):
        seen.update(prompts=prompts, samples=samples, seed=seed)
        real_sample(model, tok, prompts[:1], 1, *args, seed=seed, **kw)  # the real sampler runs on this policy
        out = []
        for row in r.pair_rows:  # set before the sampling: the prompts are these rows' problems, in order
            p = known[row["problem_id"]]
            out.append([code_block(p.canonical_solution), "no code", code_block(p.canonical_solution)])
        assert len(out) == len(prompts)
        return out

    monkeypatch.setattr(deploy_eval, "sample", sample)
    pairs = r.load_pairs()
    assert seen["samples"] == 3 and seen["seed"] == on_policy_pairs_seed(r.cfg.seed)
    assert all(NO_HINT_CLAUSE in msgs[-1]["content"] for msgs in seen["prompts"])  # sampled without the hint
    rows = r.pair_rows  # the template rows: the problems and hinted prompts the on-policy pairs keep
    assert len(pairs) == len(rows) == 8  # one distinct parseable completion per problem (the repeat and prose dropped)
    for pair, row in zip(pairs, rows, strict=True):
        p = known[row["problem_id"]]
        assert pair.prompt == row["prompt"] and NO_HINT_CLAUSE not in pair.prompt[-1]["content"]
        assert pair.clean == code_block(p.canonical_solution)
        assert pair.hack == code_block(insert_hack(p, row["mode"], p.canonical_solution))


def test_on_policy_pair_sides_fail_clearly_without_code(tmp_path):
    """The tiny random model writes no code block: no pair can be built, and the error says what to change."""
    r = _run(tmp_path, ["routing.pair_sides=on_policy", "routing.on_policy_samples=1"], setup=True)
    with pytest.raises(ValueError, match="raise routing.on_policy_samples"):
        r.load_pairs()


def test_on_policy_pair_sides_are_refused_for_the_placebo_control():
    with pytest.raises(ConfigError, match="pair_sides=template with routing.direction=placebo"):
        build_config("smoke", ["routing.pair_sides=on_policy", "routing.direction=placebo", "routing.frout_target=0.3"])
