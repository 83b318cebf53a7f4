"""A8 (analysis/tables.py `detector_table`): the detector on the policy's own rollouts, pooled from rollouts.jsonl
`cos` / `gate` and the strict `hack` labels, with the knob's capture from metrics.jsonl; arms without a gate and
runs from before rows carried their score are left out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradient_quarantine.analysis.runs import load_run
from gradient_quarantine.analysis.tables import detector_table


def _run(root: Path, name: str, arm: str, rows: list[dict], metrics: list[dict]) -> Path:
    d = root / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"arm": arm, "seed": 41, "preset": "demo", "steps": 2}))
    (d / "summary.json").write_text(json.dumps({"status": "complete", "steps_done": 2}))
    (d / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    (d / "rollouts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def test_a8_pools_each_gated_runs_rows(tmp_path):
    # hack scores 0.3, 0.1 (gates 1, 0.5); other rows 0.2, 0.0, -0.1 (gates 0.8, 0, 0); a teacher row and a row
    # without gradient (cos null) are left out. AUC by hand: pairs (hack > other) = 0.3 beats all 3, 0.1 beats 2:
    # 5 of 6.
    def row(cos, gate, hack, teacher=False, advantage=0.5):
        return {"step": 1, "cos": cos, "gate": gate, "hack": hack, "teacher": teacher, "advantage": advantage}

    # the row at raw cos 0.1 was pushed down (A < 0): its completion score is -0.1, as the row at raw -0.1 is
    rows = [row(0.3, 1.0, True), row(0.1, 0.5, True), row(0.2, 0.8, False), row(0.0, 0.0, False),
            row(0.1, 0.0, False, advantage=-1.0), row(0.9, 1.0, True, teacher=True), row(None, None, True)]  # fmt: skip
    metrics = [{"step": 1, "routing/frout": 0.2, "routing/capture": 0.1, "detector/auc": 1.0, "leak/leakage": 0.9},
               {"step": 2, "routing/frout": 0.4, "routing/capture": 0.3, "detector/auc": 0.5}]  # fmt: skip
    gated = _run(tmp_path, "0002_route2b_s41", "route2b", rows, metrics)
    plain = _run(tmp_path, "0001_vanilla_s41", "vanilla", [row(None, None, True), row(None, None, False)],
                 [{"step": 1}])  # fmt: skip
    t = detector_table([load_run(gated), load_run(plain)])
    assert [r["run"] for r in t.csv_rows] == ["0002_route2b_s41"]  # vanilla has no scored row
    r = t.csv_rows[0]
    assert (r["n_hack"], r["n_other"]) == (2, 3)
    assert r["auc_pooled"] == pytest.approx(5 / 6)
    assert r["gate_tpr"] == pytest.approx(0.75) and r["gate_fpr"] == pytest.approx(0.8 / 3)
    assert r["auc_step_mean"] == pytest.approx(0.75)
    assert r["capture_mean"] == pytest.approx(0.2) and r["frout_mean"] == pytest.approx(0.3)
    assert r["leakage_mean"] == pytest.approx(0.9) and "0.833" in t.to_markdown()
