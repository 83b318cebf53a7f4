"""Isolation levels as the commands see them (docs/architecture.md, "Sandbox"): "auto" is bwrap or a refusal
that says what to do, a weaker level is used only when asked for by name, and the level is recorded with every
result (`gq grade` rows, summary.json, the report's run table).

"Without any isolation" is a PATH on which neither bwrap nor unshare can be found, with the process's cached
detection cleared: what a machine without bubblewrap looks like to the grader.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gradient_quarantine.substrate import sandbox
from gradient_quarantine.substrate.sandbox import SandboxError, detect_isolation, weakest

pytestmark = pytest.mark.timeout(300)


def _available(level: str) -> bool:
    try:
        detect_isolation(level)
    except SandboxError:
        return False
    return True


# The weaker level this machine can give when asked for by name: unshare (root), else none (always).
OPT_IN = "unshare" if _available("unshare") else "none"


@pytest.fixture
def no_sandbox(monkeypatch, tmp_path):
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(sandbox, "_detected", {})
    assert shutil.which("bwrap") is None and shutil.which("unshare") is None


def _check_refusal(text: str) -> None:
    """The refusal says why, what to install, which setting accepts a weaker level and what it leaves open."""
    flat = " ".join(text.split())  # CLI output may be wrapped
    for part in ("bwrap is not installed", "apt-get install bubblewrap", "--isolation unshare",
                 "grader.isolation=unshare", "READ every other file"):
        assert part in flat, (part, flat)


# ----------------------------------------------------------------------------------------- the library


def test_auto_without_isolation_raises(no_sandbox):
    from gradient_quarantine.substrate.grader import Grader

    with pytest.raises(SandboxError) as e:
        detect_isolation("auto")
    _check_refusal(str(e.value))
    with pytest.raises(SandboxError, match="bubblewrap"):
        Grader(workers=1)  # isolation="auto" is the default
    with pytest.raises(SandboxError, match="isolation 'bwrap' is not available here: bwrap is not installed"):
        detect_isolation("bwrap")
    with pytest.raises(SandboxError, match="isolation 'unshare' is not available here"):
        detect_isolation("unshare")
    assert detect_isolation("none").level == "none"  # only by name
    with pytest.raises(ValueError, match="isolation must be"):
        detect_isolation("weak")


def test_weakest_level_wins():
    assert weakest("bwrap", "unshare") == "unshare" and weakest("none", "bwrap") == "none"
    assert weakest("bwrap", None) == "bwrap" and weakest(None, None) is None
    assert weakest("bwrap", "something old") == "something old"  # unknown counts as weakest


@pytest.mark.skipif(not _available("unshare"), reason="the unshare level needs root and util-linux unshare")
def test_unshare_server_reports_its_lockdown():
    iso = detect_isolation("unshare")
    server = sandbox.ForkServer(iso, role="clean", uid=None, preload=())
    try:
        server.start()
        assert server.info["fs_lockdown"] is True and server.info["pidns"] is True
    finally:
        server.close()


# ------------------------------------------------------------------------------------------- gq grade


def _completions(tmp_path):
    from gradient_quarantine.substrate.hacks import code_block
    from gradient_quarantine.substrate.problems import load_problems

    p = load_problems("builtin")[0]
    path = tmp_path / "completions.jsonl"
    path.write_text(json.dumps({"problem_id": p.id, "completion": code_block(p.canonical_solution)}) + "\n")
    return path


def test_gq_grade_refuses_without_a_sandbox(no_sandbox, tmp_path):
    from typer.testing import CliRunner

    from gradient_quarantine.cli import app

    out = tmp_path / "graded.jsonl"
    res = CliRunner().invoke(app, ["grade", "--problems", "builtin", "--completions", str(_completions(tmp_path)),
                                   "--out", str(out), "--workers", "1"])
    assert res.exit_code == 2, res.output
    _check_refusal(res.output)
    assert not out.exists()


def test_gq_grade_records_the_level(tmp_path):
    from typer.testing import CliRunner

    from gradient_quarantine.cli import app

    comps = _completions(tmp_path)
    for args, level in (([], "bwrap"), (["--isolation", OPT_IN], OPT_IN)):
        if level == "bwrap" and not _available("bwrap"):
            continue
        out = tmp_path / f"graded_{level}.jsonl"
        res = CliRunner().invoke(app, ["grade", "--problems", "builtin", "--completions", str(comps),
                                       "--out", str(out), "--workers", "1", *args])
        assert res.exit_code == 0, res.output
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert rows and all(r["isolation"] == level and r["gt_pass"] for r in rows), rows
        assert f"(sandbox: {level})" in res.output


# --------------------------------------------------------------------------------- gq train, the queue


def test_gq_train_refuses_before_a_run_dir_exists(no_sandbox, tmp_path):
    from typer.testing import CliRunner

    from gradient_quarantine.cli import app

    runs = tmp_path / "runs"
    res = CliRunner().invoke(app, ["train", "--preset", "smoke", "--runs-dir", str(runs), "--quiet"])
    assert res.exit_code == 2, res.output
    _check_refusal(res.output)
    assert not runs.exists() or not [p for p in runs.iterdir() if p.name != ".jobs"]


def test_the_run_records_its_level_and_the_report_shows_it(tmp_path):
    """A run records the level it graded under in summary.json (here one that stops early: a problems file
    that does not exist, so no model is loaded), and the report's run table shows it."""
    from gradient_quarantine.analysis import report
    from gradient_quarantine.analysis import tables as T
    from gradient_quarantine.analysis.runs import load_runs
    from gradient_quarantine.experiments.presets import build_config
    from gradient_quarantine.train.run import train

    runs = tmp_path / "runs"
    missing = tmp_path / "no_such_problems.jsonl"
    levels = [OPT_IN] + (["bwrap"] if _available("bwrap") else [])
    for level in levels:
        cfg = build_config("smoke", [f"data.problems={missing}", f"grader.isolation={level}",
                                     "run.progress=false"], name=f"stop_{level}")
        with pytest.raises(FileNotFoundError, match="no_such_problems"):
            train(cfg, runs_dir=runs)
    by_level = {}
    for path in sorted(runs.glob("0*")):
        summary = json.loads((path / "summary.json").read_text())
        config = json.loads((path / "config.json").read_text())
        assert summary["status"] == "failed" and summary["isolation"] == config["grader"]["isolation"]
        by_level[summary["isolation"]] = path.name
    assert set(by_level) == set(levels)
    loaded = load_runs([runs])
    md = report.results_md(loaded, [], [], T.issues_table(loaded), 0.05, [runs])
    table = md[md.index("## Runs read"):]
    assert "| sandbox |" in table
    for level, name in by_level.items():
        assert f"| {name} |" in table and f"| {level} |" in table
    assert "**Not graded under the bwrap sandbox**" in table and f"{by_level[OPT_IN]} ({OPT_IN})" in table


def test_isolation_is_a_config_key_outside_the_hash():
    from gradient_quarantine.experiments.presets import ConfigError, build_config

    auto = build_config("smoke", [])
    weak = build_config("smoke", ["grader.isolation=unshare"])
    assert auto.grader.isolation == "auto" and weak.grader.isolation == "unshare"
    assert auto.config_hash() == weak.config_hash()  # recorded in summary.json; the numbers do not depend on it
    with pytest.raises(ConfigError, match="grader.isolation"):
        build_config("smoke", ["grader.isolation=weak"])


def test_queue_refuses_to_start_without_a_sandbox(no_sandbox, tmp_path):
    from typer.testing import CliRunner

    from gradient_quarantine.cli import app
    from gradient_quarantine.experiments.queue import JobQueue, JobSpec, QueueError
    from gradient_quarantine.experiments.workers import job_isolation, run_local

    db = tmp_path / "queue.sqlite"
    q = JobQueue(db)
    (jid,) = q.add([JobSpec(name="smoke_s41", preset="smoke", runs_dir=str(tmp_path / "runs"))])
    with pytest.raises(QueueError) as e:
        run_local(q, install_signal_handlers=False)
    assert "smoke_s41" in str(e.value) and "'auto'" in str(e.value)
    _check_refusal(str(e.value))
    res = CliRunner().invoke(app, ["queue", "run", "--db", str(db)])
    assert res.exit_code == 2 and "not starting" in res.output, res.output
    job = q.get(jid)
    assert job.status == "queued" and job.attempts == 0  # nothing was started, no attempt spent
    (opt,) = q.add([JobSpec(name="weak_s41", preset="smoke", overrides={"grader.isolation": "unshare"})])
    assert job_isolation(q.get(opt)) == "unshare" and job_isolation(job) == "auto"


def test_setup_script_warning_matches_fail_closed():
    """scripts/setup.sh must not promise a silent fallback the grader no longer makes."""
    body = (Path(__file__).resolve().parents[1] / "scripts" / "setup.sh").read_text(encoding="utf-8")
    assert "fallback sandbox" not in body
    assert "--isolation unshare" in body and "grader.isolation" in body
