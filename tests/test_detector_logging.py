"""The detector on the policy's own rollouts (issue 23, item 1): each rollouts.jsonl row carries its detector score
`cos`, its `gate` and its `advantage`, and every routed step logs `detector/*` (ROC AUC of the cosine, the gate's
soft true- and false-positive rates) and `routing/capture`. They read the strict labels after routing, for the logs
only (tests/test_no_cheat.py checks that the router never sees them).

Hand computations of the helpers first, then the plumbing on tiny `smoke` runs: the values logged per row are
recomputed from the run directory (the band in direction/, the rewards in the rows) and from the metrics row."""

from __future__ import annotations

import dataclasses
import json
import math
import os

import pytest
import torch

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from gradient_quarantine.io import read_jsonl  # noqa: E402
from gradient_quarantine.routing.band import Band, gate  # noqa: E402
from gradient_quarantine.routing.router import RouteResult  # noqa: E402
from gradient_quarantine.train.step import (  # noqa: E402
    MicroBatch,
    StepRecord,
    StepRollouts,
    detector_gauges,
    roc_auc,
    rollout_rows,
)

# ==========================================================================================================
# the helpers, by hand


def _pairwise_auc(scores, labels):
    """The definition, pair by pair: P(positive > negative) + P(tie) / 2."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def test_roc_auc_by_hand():
    # positives 0.35, 0.8 vs negatives 0.1, 0.4: 0.35 beats 0.1, 0.8 beats both -> 3 of 4 pairs
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == pytest.approx(0.75)
    # a tie counts half: 0.5 vs 0.5 (1/2), 0.5 vs 0.2 (1), 0.9 vs both (2) -> 3.5 of 4
    assert roc_auc([0.5, 0.5, 0.2, 0.9], [True, False, False, True]) == pytest.approx(0.875)
    assert roc_auc([0.3, 0.3, 0.3], [True, False, True]) == pytest.approx(0.5)  # all tied
    assert roc_auc([0.9, 0.1, 0.8], [True, False, True]) == pytest.approx(1.0)
    assert roc_auc([0.0, 0.1, 0.8], [True, True, False]) == pytest.approx(0.0)
    # an empty class: no AUC
    assert roc_auc([0.1, 0.2], [True, True]) is None
    assert roc_auc([0.1, 0.2], [False, False]) is None
    assert roc_auc([], []) is None
    rng = torch.Generator().manual_seed(0)
    for _ in range(20):  # many ties (rounded scores), against the pair-by-pair definition
        s = torch.randint(0, 5, (17,), generator=rng).float().div(4).tolist()
        y = (torch.rand(17, generator=rng) < 0.4).tolist()
        if any(y) and not all(y):
            assert roc_auc(s, y) == pytest.approx(_pairwise_auc(s, y))


def test_detector_gauges_by_hand():
    m = detector_gauges(
        cos=[0.1, 0.4, 0.35, 0.8], gate=[0.0, 0.5, 0.25, 1.0], hack=[False, False, True, True]
    )
    assert m == {"detector/auc": pytest.approx(0.75), "detector/gate_tpr": pytest.approx(0.625),
                 "detector/gate_fpr": pytest.approx(0.25), "detector/n_hack": 2, "detector/n_clean": 2}  # fmt: skip
    m = detector_gauges(cos=[0.2, 0.3], gate=[0.2, 0.6], hack=[False, False])
    assert m["detector/auc"] is None and m["detector/gate_tpr"] is None
    assert m["detector/gate_fpr"] == pytest.approx(0.4) and (m["detector/n_hack"], m["detector/n_clean"]) == (
        0,
        2,
    )
    m = detector_gauges([], [], [])
    assert m["detector/auc"] is m["detector/gate_tpr"] is m["detector/gate_fpr"] is None
    assert m["detector/n_hack"] == m["detector/n_clean"] == 0


def _route(cos, f, norms) -> RouteResult:
    cos, f, norms = (torch.tensor(x, dtype=torch.float32).flatten() for x in (cos, f, norms))
    return RouteResult(main={}, knob={}, cos=cos, norms=norms, f=f, valid=norms > 0)


def test_per_row_of_a_route_result():
    # per rollout: the items are the rows
    cos, f, valid = _route([0.2, -0.1], [0.5, 0.0], [1.0, 0.0]).per_row(2)
    assert (
        cos.tolist() == pytest.approx([0.2, -0.1])
        and f.tolist() == [0.5, 0.0]
        and valid.tolist() == [True, False]
    )
    # per token, 2 rows x 3 tokens: the row's mass-weighted mean cosine and mass-weighted routed share
    r = _route(
        [[0.5, -0.5, 0.9], [0.1, 0.2, 0.3]], [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]], [[1.0, 3.0, 0.0], [0.0] * 3]
    )
    cos, f, valid = r.per_row(2)
    assert cos[0] == pytest.approx((0.5 * 1 - 0.5 * 3) / 4) and f[0] == pytest.approx(1 / 4)
    assert valid.tolist() == [True, False]  # row 1 has no gradient on any token
    with pytest.raises(ValueError):
        r.per_row(4)


def _verdict(hack: bool):
    from gradient_quarantine.substrate.types import Verdict

    return Verdict(
        format_ok=True, gt_pass=False, flawed_pass=hack, hack=hack, attempted=hack, reward=0.0, reason="ok"
    )


def test_row_scores_back_in_step_order():
    """Rows shuffled and split into two micro-batches come back in the step's order by the index they carried;
    the detector's gauges read the policy's own rows with a score (teacher rows and rows without gradient out)."""
    n = 6
    teacher = [None, None, None, None, "hack", "canonical"]
    hack = [False, True, True, False, True, False]
    rollouts = StepRollouts(
        ["p"] * n, ["exit_code"] * n, ["q"] * n, ["c"] * n, teacher, [_verdict(h) for h in hack]
    )
    cos = [0.1, 0.7, 0.3, 0.3, 0.9, -0.2]
    f = [0.0, 1.0, 0.4, 0.4, 1.0, 0.0]
    norm = [1.0, 1.0, 1.0, 0.0, 1.0, 1.0]  # row 3 has no gradient: no score
    adv = [-1.0, 1.0, 0.5, 0.0, 2.0, -2.0]
    rec = StepRecord(step=1, rollouts=rollouts)
    for order in ([4, 1, 0], [3, 5, 2]):  # TRL's shuffle and split
        rec.micro_batches.append(MicroBatch(
            row_kind=torch.tensor([rollouts.row_kinds()[i] for i in order]),
            route=_route([cos[i] for i in order], [f[i] for i in order], [norm[i] for i in order]),
            row_index=torch.tensor(order), advantages=torch.tensor([adv[i] for i in order]),
        ))  # fmt: skip
    rec.scores = sc = rec.row_scores()
    assert sc.routed and sc.advantage == pytest.approx(adv)
    assert sc.cos[:3] == pytest.approx(cos[:3]) and sc.cos[3] is None and sc.cos[4:] == pytest.approx(cos[4:])
    assert sc.gate[3] is None and [sc.gate[i] for i in (0, 1, 2, 4, 5)] == pytest.approx(
        [0.0, 1.0, 0.4, 1.0, 0.0]
    )
    m = rec.detector_metrics({"routing/dropped_frac": 0.25})
    # scored policy rows, as completion scores sign(A) cos: 0 (clean, -0.1), 1 (hack, 0.7), 2 (hack, 0.3)
    assert m["detector/auc"] == pytest.approx(1.0)
    # the sign matters: a hack reinforced (A > 0) at cos 0.2 and a clean row pushed down (A < 0) at raw cos 0.5
    # is a completion score of 0.2 against -0.5: the raw cosines would have ranked them the other way
    from gradient_quarantine.train.step import completion_score

    assert completion_score(0.2, 1.0) > completion_score(0.5, -2.0) and completion_score(0.3, None) == 0.3
    assert m["detector/gate_tpr"] == pytest.approx(0.7) and m["detector/gate_fpr"] == pytest.approx(0.0)
    assert (m["detector/n_hack"], m["detector/n_clean"]) == (2, 1)
    assert m["routing/capture"] == pytest.approx(0.75)
    # by kind: the same per-row gates (policy_nohack: row 0 only, row 3 has no gradient)
    assert rec.gate_by_kind() == {0: [0.0], 1: pytest.approx([1.0, 0.4]), 2: [0.0], 3: [1.0]}
    rows = rollout_rows(1, rollouts, k=6, scores=sc)
    assert [r["cos"] for r in rows] == sc.cos and [r["advantage"] for r in rows] == sc.advantage
    # an arm without a gate: advantages only, no detector gauges
    for mb in rec.micro_batches:
        mb.route = None
    rec.scores = sc = rec.row_scores()
    assert (
        not sc.routed
        and sc.cos == [None] * n
        and sc.gate == [None] * n
        and sc.advantage == pytest.approx(adv)
    )
    assert rec.detector_metrics({}) == {}


# ==========================================================================================================
# on tiny runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A route2b run (two micro-batches a step), its per-token gate and vanilla, every row of every step logged.
    The tiny random-init policy never hacks, so every other policy row is labelled a hack (the label only: the
    reward, hence training, is the grader's) so that the detector has both classes to tell apart."""
    from gradient_quarantine.experiments.presets import build_config
    from gradient_quarantine.train.rollouts import RolloutGrader
    from gradient_quarantine.train.run import train

    grade = RolloutGrader.__call__

    def labelled(self, *args, **kwargs):
        r = grade(self, *args, **kwargs)
        own = [i for i, t in enumerate(r.teacher) if t is None]
        for i in own[1::2]:
            r.verdicts[i] = dataclasses.replace(r.verdicts[i], hack=True)
        return r

    base = tmp_path_factory.mktemp("detector_runs")
    arms = {"route2b": ["grpo.micro_batch=2"], "token": ["routing.gate=token", "grpo.micro_batch=4"],
            "vanilla": ["method=vanilla"]}  # fmt: skip
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(RolloutGrader, "__call__", labelled)
        for arm, sets in arms.items():
            common = [f"run.cache_dir={base / 'cache'}", "run.progress=false"]
            n = build_config("smoke", sets + common).resolved().grpo.rollouts_per_step
            cfg = build_config("smoke", sets + common + [f"run.rollouts_per_log={n}"]).resolved()
            out[arm] = (cfg, train(cfg, runs_dir=base / arm).path)
    return out


def _kind(row) -> str:
    if row["teacher"]:
        return f"teacher_{row['teacher_kind']}"
    return "policy_hack" if row["hack"] else "policy_nohack"


def _grpo_advantages(rewards: list[float], G: int) -> list[float]:
    """TRL's group advantages (scale_rewards="group"): (r - group mean) / (group std + 1e-4), unbiased std."""
    out = []
    for g in range(0, len(rewards), G):
        r = torch.tensor(rewards[g : g + G], dtype=torch.float64)
        out += ((r - r.mean()) / (r.std() + 1e-4)).tolist()
    return out


def _read(path):
    rows = read_jsonl(path / "rollouts.jsonl")
    steps = {}
    for r in rows:
        steps.setdefault(r["step"], []).append(r)
    return read_jsonl(path / "metrics.jsonl"), steps


def _check_rows_and_metrics(cfg, path):
    """What every routed run must satisfy: advantages are TRL's of each row, the gauges recompute from the rows,
    the per-row gate is what `diag/gate_<kind>` averages (it travelled with the rows on its own)."""
    metrics, steps = _read(path)
    n = cfg.grpo.rollouts_per_step
    assert sorted(steps) == [m["step"] for m in metrics] == list(range(1, cfg.steps + 1))
    auc_seen = False
    for m in metrics:
        rows = steps[m["step"]]
        assert len(rows) == n  # every row of the step
        for r in rows:
            assert {"cos", "gate", "advantage"} <= set(r)
            assert (r["cos"] is None) == (r["gate"] is None)
            assert r["advantage"] is not None
            if r["advantage"] == 0:  # no gradient, no direction: no score
                assert r["cos"] is None
            if r["gate"] is not None:
                assert 0.0 <= r["gate"] <= 1.0
        # the advantage each row was trained on: TRL's group advantage of the rewards, row by row
        want = _grpo_advantages([r["reward"] for r in rows], cfg.grpo.num_generations)
        assert [r["advantage"] for r in rows] == pytest.approx(want, abs=1e-5)
        # the gauges, from the logged rows: the policy's own rows with a score, by the strict label
        own = [r for r in rows if not r["teacher"] and r["cos"] is not None]
        hack, clean = [r for r in own if r["hack"]], [r for r in own if not r["hack"]]
        assert (m["detector/n_hack"], m["detector/n_clean"]) == (len(hack), len(clean))
        if hack and clean:
            auc_seen = True
            signed = [r["cos"] * (1 if r["advantage"] > 0 else -1 if r["advantage"] < 0 else 1) for r in own]
            assert m["detector/auc"] == pytest.approx(_pairwise_auc(signed, [r["hack"] for r in own]))
        else:
            assert m["detector/auc"] is None
        for key, side in (("detector/gate_tpr", hack), ("detector/gate_fpr", clean)):
            assert m[key] == (pytest.approx(sum(r["gate"] for r in side) / len(side)) if side else None)
        # diag/gate_<kind> is the mean gate of the rows of that kind (gq_row_kind travelled apart from the index)
        for kind in ("policy_nohack", "policy_hack", "teacher_canonical", "teacher_hack"):
            gates = [r["gate"] for r in rows if _kind(r) == kind and r["gate"] is not None]
            assert m.get(f"diag/n_{kind}", 0) == len(gates)
            if gates:
                assert m[f"diag/gate_{kind}"] == pytest.approx(sum(gates) / len(gates), abs=1e-6)
        if m["routing/dropped_frac"] is None:
            assert m["routing/capture"] is None
        else:
            assert m["routing/capture"] == pytest.approx(1.0 - m["routing/dropped_frac"])
    assert auc_seen, "no step had both hack and clean policy rows with a score: the AUC was never checked"
    return metrics, steps


def test_route2b_rows_carry_score_gate_and_advantage(runs):
    cfg, path = runs["route2b"]
    metrics, steps = _check_rows_and_metrics(cfg, path)
    band0 = Band.from_dict(json.loads((path / "direction" / "band.json").read_text()))
    assert band0.granularity == "rollout"
    for m in metrics:
        # the band in force: direction/'s until the first refresh, then the refreshed one (its bounds are logged)
        if m["step"] <= cfg.routing.refresh_every:
            assert (m["routing/band_lower"], m["routing/band_upper"]) == pytest.approx(
                (band0.lower, band0.upper)
            )
        band = Band(m["routing/band_lower"], m["routing/band_upper"])
        scored = [r for r in steps[m["step"]] if r["cos"] is not None]
        assert scored
        want = gate(torch.tensor([r["cos"] for r in scored], dtype=torch.float32), band).tolist()
        assert [r["gate"] for r in scored] == pytest.approx(want, abs=1e-5)


def test_token_gate_rows(runs):
    cfg, path = runs["token"]
    _check_rows_and_metrics(cfg, path)
    assert json.loads((path / "direction" / "band.json").read_text())["granularity"] == "token"


def test_vanilla_rows_have_advantages_and_no_gate(runs):
    cfg, path = runs["vanilla"]
    metrics, steps = _read(path)
    for m in metrics:
        assert not any(k.startswith("detector/") for k in m) and "routing/capture" not in m
        rows = steps[m["step"]]
        assert all(r["cos"] is None and r["gate"] is None for r in rows)
        want = _grpo_advantages([r["reward"] for r in rows], cfg.grpo.num_generations)
        assert [r["advantage"] for r in rows] == pytest.approx(want, abs=1e-5)
        assert any(r["advantage"] != 0 for r in rows)
        assert all(math.isfinite(r["advantage"]) for r in rows)
