"""`gq study`: the main job end to end on the smoke preset (queue -> runs -> report), then resumed."""

import json
import subprocess
import sys
from pathlib import Path


def _gq(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("gq")
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_study_runs_sweep_then_report_and_resumes(tmp_path):
    sweep = tmp_path / "mini.yaml"
    sweep.write_text(
        "name: mini\npreset: smoke\nseeds: [41]\narms:\n  - vanilla\n  - route2b\n  - random_v\n"
    )
    out = tmp_path / "study"
    first = _gq("study", str(sweep), "--out", str(out), "--set", "steps=2", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.strip().splitlines()[-1] == str(out / "report" / "results.md")
    run_dirs = sorted(p for p in (out / "runs").iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(run_dirs) == 3
    for rd in run_dirs:
        assert json.loads((rd / "summary.json").read_text())["status"] == "complete"
    assert (out / "report" / "results.md").exists()
    summary = first.stderr[first.stderr.index("Summary:"):]  # the closing summary table
    assert all(f"│ {arm} " in summary for arm in ("vanilla", "route2b", "random_v"))

    # Again: nothing is queued twice or re-run; the report is rebuilt from the same runs.
    second = _gq("study", str(sweep), "--out", str(out), cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming" in second.stderr
    assert sorted(p for p in (out / "runs").iterdir() if p.is_dir() and not p.name.startswith(".")) == run_dirs
