"""baseline.monitor=detector (train/baselines.py DetectorMonitor): a row is flagged exactly when its gate under the
detector's band is at or above the threshold, the flags are penalised or screened as the synthetic monitor's are,
no verdict decides a flag, the config checks its keys, and a smoke run trains with it."""

from __future__ import annotations

import os

import pytest
import torch

from gradient_quarantine.routing.band import Band, gate
from gradient_quarantine.train.baselines import DetectorMonitor
from gradient_quarantine.train.step import StepRollouts


class _V:
    def __init__(self, reward: float, hack: bool):
        self.reward, self.hack = reward, hack


def _rollouts(rewards, hacks) -> StepRollouts:
    n = len(rewards)
    return StepRollouts(problem_ids=[f"p{i}" for i in range(n)], modes=["exit_code"] * n,
                        prompts=[[{"role": "user", "content": f"q{i}"}] for i in range(n)],
                        completions=[f"c{i}" for i in range(n)], teacher=[None] * n,
                        verdicts=[_V(r, h) for r, h in zip(rewards, hacks, strict=True)])  # fmt: skip


COS = torch.tensor([-0.2, 0.0, 0.1, 0.15, 0.3])  # band [0, 0.2]: gates 0, 0, 0.5, 0.75, 1


@pytest.mark.parametrize("threshold", [0.5, 0.75, 1.0])
def test_flags_are_the_rows_whose_gate_reaches_the_threshold(threshold):
    band = Band(lower=0.0, upper=0.2)
    seen = []

    def score(prompts, completions, direction):
        seen.append((prompts, completions, direction))
        return COS

    mon = DetectorMonitor("v", band, score, threshold, "penalty", penalty=3.0)
    r = _rollouts([3.5, 0.5, 3.5, 0.5, 3.5], [True, False, False, True, True])
    rewards, m = mon.reward(r, step=1)
    want = [bool(g >= threshold) for g in gate(COS, band).tolist()]
    assert rewards == [x - 3.0 * f for x, f in zip([3.5, 0.5, 3.5, 0.5, 3.5], want, strict=True)]
    assert seen[0][1] == r.completions and seen[0][2] == "v"  # texts and the direction in force, nothing else
    assert m["baseline/flag_rate"] == pytest.approx(sum(want) / 5)
    # the verdicts never decide a flag: the same texts with every label flipped give the same flags
    flipped = _rollouts([3.5, 0.5, 3.5, 0.5, 3.5], [False, True, True, False, False])
    assert mon.flags(flipped)[0] == want


def test_screen_drops_the_flagged_rows_and_bad_settings_fail():
    band = Band(lower=0.0, upper=0.2)
    mon = DetectorMonitor("v", band, lambda p, c, d: COS, 0.5, "screen")
    rewards, m = mon.reward(_rollouts([1.0] * 5, [False] * 5), step=1)
    assert rewards == [1.0, 1.0, None, None, None] and m["baseline/screened_frac"] == pytest.approx(0.6)
    with pytest.raises(ValueError, match="penalty' or 'screen"):
        DetectorMonitor("v", band, lambda p, c, d: COS, 0.5, "erase")


def test_config_keys():
    from gradient_quarantine.experiments.presets import build_config

    cfg = build_config("smoke", ["method=vanilla", "baseline.kind=monitor_screen", "baseline.monitor=detector"])
    assert cfg.derived_arm().startswith("monitor_screen_det") and cfg.baseline.uses_direction
    with pytest.raises(ValueError, match="monitor_tpr / monitor_fpr describe"):
        build_config("smoke", ["method=vanilla", "baseline.kind=monitor_screen", "baseline.monitor=detector",
                               "baseline.monitor_tpr=0.5"])  # fmt: skip
    with pytest.raises(ValueError, match="does not use it"):
        build_config("smoke", ["method=vanilla", "baseline.monitor=detector"])
    with pytest.raises(ValueError, match="monitor_threshold is the detector's"):
        build_config("smoke", ["method=vanilla", "baseline.kind=monitor_screen", "baseline.monitor_threshold=0.3"])


def test_a_smoke_run_with_the_detector_penalty(tmp_path):
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from typer.testing import CliRunner

    from gradient_quarantine.cli import app
    from gradient_quarantine.io import read_jsonl

    res = CliRunner().invoke(app, ["train", "--preset", "smoke", "--runs-dir", str(tmp_path / "runs"), "--quiet",
                                   "--set", f"run.cache_dir={tmp_path / 'cache'}", "--set", "steps=2",
                                   "--set", "method=vanilla", "--set", "baseline.kind=monitor_penalty",
                                   "--set", "baseline.monitor=detector", "--set", "baseline.monitor_threshold=0.3"])  # fmt: skip
    assert res.exit_code == 0, res.output
    run = tmp_path / "runs" / res.stdout.strip().splitlines()[-1].split("/")[-1]
    rows = read_jsonl(run / "metrics.jsonl")
    assert all("baseline/flag_rate" in r and r["baseline/detector_gate_mean"] is not None for r in rows)
    assert (run / "direction" / "band.json").is_file()
