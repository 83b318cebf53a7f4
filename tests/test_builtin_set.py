"""The shipped built-in sets are what the definitions build to, and they are big and varied enough."""

import json
from pathlib import Path

import pytest

from gradient_quarantine.substrate.builtin import build
from gradient_quarantine.substrate.problems import BUILTIN_FILES

# Every set with definitions of its own (a `defs_*.py` module's SET) and how many problems it ships.
SET_SIZES = {"builtin": 96, "builtin_c": 48, "builtin_d": 48}


def test_every_built_file_is_covered():
    assert set(SET_SIZES) == set(BUILTIN_FILES)


def test_shipped_jsonl_matches_definitions():
    # A definition edited without rebuilding would ship stale tests; rebuild in memory and compare.
    rows = [build.build_row(d) for d in build.load_definitions()]
    shipped = [json.loads(line) for line in Path(build.OUT).read_text().splitlines()]
    assert rows == shipped, "problems.jsonl is stale: python -m gradient_quarantine.substrate.builtin.build"


@pytest.mark.parametrize("name", sorted(SET_SIZES))
def test_builtin_set_size_and_tests(name):
    rows = [build.build_row(d) for d in build.load_definitions(name)]
    shipped = [json.loads(line) for line in build.out_path(name).read_text().splitlines()]
    assert rows == shipped, f"{name} is stale: python -m gradient_quarantine.substrate.builtin.build"
    assert len(rows) == SET_SIZES[name]
    for r in rows:
        assert len(r["gt_answer"]) >= 10, r["id"]
        outputs = {a.rsplit("==", 1)[1] for a in r["gt_answer"]}
        assert len(outputs) >= 2, f"{r['id']}: a constant answer would pass every test"
