"""The shipped built-in set is what the definitions build to, and it is big and varied enough."""

import json
from pathlib import Path

from gradient_quarantine.substrate.builtin import build


def test_shipped_jsonl_matches_definitions():
    # A definition edited without rebuilding would ship stale tests; rebuild in memory and compare.
    rows = [build.build_row(d) for d in build.load_definitions()]
    shipped = [json.loads(line) for line in Path(build.OUT).read_text().splitlines()]
    assert rows == shipped, "problems.jsonl is stale: python -m gradient_quarantine.substrate.builtin.build"


def test_builtin_set_size_and_tests():
    rows = [build.build_row(d) for d in build.load_definitions()]
    assert len(rows) >= 96
    for r in rows:
        assert len(r["gt_answer"]) >= 10, r["id"]
        outputs = {a.rsplit("==", 1)[1] for a in r["gt_answer"]}
        assert len(outputs) >= 2, f"{r['id']}: a constant answer would pass every test"
