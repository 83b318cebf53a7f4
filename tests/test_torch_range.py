"""The torch range the project supports (pyproject.toml) against what is installed and what the lock pins.

A GPU node keeps its own CUDA torch (scripts/setup.sh --wheels DIR --system-torch), so the project states a
range instead of a pin: 2.11 (the H200 node's torch 2.11.0+cu130, where the CUDA cases of the capture and trainer
tests and bench/bench_gpu.py ran) to 2.13 (requirements.lock, what CI runs). The one torch internal the code reads,
`torch._C._current_graph_task_id` (routing/capture.py), is pinned by test_capture.py on whichever torch runs it.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _release(v: str) -> tuple[int, ...]:
    """'2.11.0+cu130' -> (2, 11, 0): the release numbers, padded to three."""
    nums = tuple(int(x) for x in re.match(r"\d+(?:\.\d+)*", v).group(0).split("."))
    return (nums + (0, 0, 0))[:3]


def _torch_range() -> tuple[tuple[int, ...], tuple[int, ...]]:
    spec = re.search(r'"torch\s*([^"]*)"', (ROOT / "pyproject.toml").read_text()).group(1)
    lo = re.search(r">=\s*([\d.]+)", spec)
    hi = re.search(r"<\s*([\d.]+)", spec)
    assert lo and hi, f"pyproject.toml must give torch a range '>=A,<B', got {spec!r}"
    return _release(lo.group(1)), _release(hi.group(1))


def test_installed_and_locked_torch_are_in_the_stated_range():
    lo, hi = _torch_range()
    assert lo == (2, 11, 0), "the lower end is the torch the GPU node ran (README, bench/README.md say 2.11)"
    assert lo <= _release(torch.__version__) < hi, f"torch {torch.__version__} is outside [{lo}, {hi})"
    locked = re.search(r"^torch==(\S+)$", (ROOT / "requirements.lock").read_text(), re.M).group(1)
    assert lo <= _release(locked) < hi, f"requirements.lock pins torch {locked}, outside the range"


def test_setup_checks_system_torch_against_the_range(tmp_path):
    """setup.sh --system-torch refuses a torch outside pyproject.toml's range: its check, run on fake versions."""
    import subprocess
    import sys

    script = (ROOT / "scripts" / "setup.sh").read_text()
    body = script.split("<<'PYEOF'\n", 1)[1].split("\nPYEOF", 1)[0]
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    for version, ok in [("2.11.0+cu130", True), ("2.13.0+cpu", True), ("2.10.1", False), ("2.14.0", False)]:
        pkg = tmp_path / f"site_{version.replace('+', '_')}" / "torch"
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text(f"__version__ = {version!r}\n")
        r = subprocess.run([sys.executable, "-c", body], cwd=tmp_path, capture_output=True, text=True,
                           env={"PYTHONPATH": str(pkg.parent), "PATH": "/usr/bin:/bin"})  # fmt: skip
        assert (r.returncode == 0) == ok, (version, r.stdout, r.stderr)
        if ok:
            assert r.stdout.split() == [str(pkg.parent.resolve()), version]
        else:
            assert "outside the supported range" in r.stderr
