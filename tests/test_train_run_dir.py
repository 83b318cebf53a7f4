"""`gq train --run-dir DIR` (how the queue runs a job): trains in exactly DIR, resumes the run DIR holds, and
refuses a DIR that holds another run or other files."""

from __future__ import annotations

import json
import os

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from typer.testing import CliRunner  # noqa: E402

from gradient_quarantine.cli import app  # noqa: E402


def _train(*args: str):
    return CliRunner().invoke(app, ["train", *args])


def test_run_dir_trains_there_then_resumes_in_place_and_refuses_other_runs(tmp_path):
    runs = tmp_path / "runs"
    run_dir = runs / "0005_mine"
    opts = ["--preset", "smoke", "--set", "steps=1", "--set", f"run.cache_dir={tmp_path / 'cache'}", "--quiet"]
    res = _train(*opts, "--name", "mine", "--run-dir", str(run_dir))
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().splitlines()[-1] == str(run_dir)  # the last line printed is the run directory
    assert [p.name for p in runs.iterdir()] == ["0005_mine"]  # no numbered directory beside it
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "complete"
    assert json.loads((run_dir / "config.json").read_text())["name"] == "mine"
    metrics = (run_dir / "metrics.jsonl").read_bytes()

    # Again with only --run-dir, or with the options it was started with: the run it holds is resumed (it is
    # complete, so nothing runs) and the same directory printed.
    for again in (["--run-dir", str(run_dir)], [*opts, "--name", "mine", "--run-dir", str(run_dir)]):
        res = _train(*again)
        assert res.exit_code == 0 and res.stdout.strip().splitlines()[-1] == str(run_dir), res.output
    assert (run_dir / "metrics.jsonl").read_bytes() == metrics

    # Options that describe another run are refused, and the directory is left as it was.
    res = _train(*opts, "--set", "grpo.lr=0.01", "--run-dir", str(run_dir))
    assert res.exit_code == 2 and "holds a run of another config" in res.output
    res = _train(*opts, "--name", "theirs", "--run-dir", str(run_dir))
    assert res.exit_code == 2 and "holds the run 'mine', not 'theirs'" in res.output
    res = _train("--set", "steps=2", "--run-dir", str(run_dir))
    assert res.exit_code == 2 and "give only --run-dir to resume it" in res.output
    assert (run_dir / "metrics.jsonl").read_bytes() == metrics

    # --run-dir names the directory itself: no --runs-dir beside it, no --resume.
    res = _train(*opts, "--run-dir", str(run_dir), "--runs-dir", str(runs))
    assert res.exit_code == 2 and "drop --runs-dir" in res.output
    res = _train("--resume", str(run_dir), "--run-dir", str(run_dir))
    assert res.exit_code == 2 and "drop --preset/--set/--name/--run-dir" in res.output

    # A directory with files but no run is not trained over; a new one needs --preset.
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    res = _train(*opts, "--run-dir", str(other))
    assert res.exit_code == 2 and "is not empty and holds no run" in res.output
    assert [p.name for p in other.iterdir()] == ["notes.txt"]
    res = _train("--run-dir", str(tmp_path / "new"))
    assert res.exit_code == 2 and "holds no run yet: give --preset" in res.output
    assert not (tmp_path / "new").exists()
