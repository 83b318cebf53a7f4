"""The pair builder: hack pairs from the grader helper's templates, placebo pairs, pair files, the shipped
pair set and `gq pairs build`."""

from __future__ import annotations

import ast
import json
from collections import Counter
from pathlib import Path

import pytest

from gradient_quarantine.substrate.modes import assign_modes
from gradient_quarantine.substrate.pairs import (
    build_pairs,
    build_placebo_pairs,
    builtin_pairs_path,
    clean_completion,
    clean_variant,
    placebo_completion,
    read_pairs,
    write_pairs,
)
from gradient_quarantine.substrate.problems import load_builtin, load_jsonl
from gradient_quarantine.substrate.prompts import render_prompt
from gradient_quarantine.substrate.types import MODES, Mode

REAL = Path(__file__).parents[2] / "shared/data/leetcode_test_medhard.jsonl"


@pytest.fixture(scope="module")
def builtin():
    problems = load_builtin()
    return problems, assign_modes([p.id for p in problems], seed=0)


def _code(completion: str) -> str:
    assert completion.startswith("```python\n") and completion.rstrip().endswith("```")
    return completion.strip()[len("```python\n") : -3]


# --------------------------------------------------------------------------------------------- placebo side


def test_clean_variant_renames_locals_only():
    code = (
        "class Solution:\n"
        "    def f(self, nums: List[int], k: int) -> int:\n"
        "        ans = 0  # running total\n"
        "        for i, x in enumerate(nums):\n"
        "            ans += x * k\n"
        "        best = max(ans, sum(nums), key=abs)\n"
        "        return best\n"
    )
    variant = clean_variant(code)
    names = {n.id for n in ast.walk(ast.parse(variant)) if isinstance(n, ast.Name)}
    assert {"ans_", "i_", "x_", "best_"} <= names and not {"ans", "best"} & names
    assert {"nums", "k", "max", "sum", "enumerate"} <= names  # parameters and builtins keep their names
    assert "key=abs" in variant and "# running total" not in variant
    ns: dict = {"List": list}
    exec(variant, ns)
    assert ns["Solution"]().f(nums=[1, -2, 3], k=2) == 4


def test_clean_variant_is_scope_safe_and_always_differs():
    code = (
        "LIMIT = 3\n"
        "class Solution:\n"
        "    def f(self, n):\n"
        "        def g(m):\n"
        "            nonlocal total\n"
        "            total += m\n"
        "        total = 0\n"
        "        for j in range(n):\n"
        "            g(j)\n"
        "        return min(total, LIMIT * 10)\n"
        "    def h(self):\n"
        "        return LIMIT\n"
    )
    variant = clean_variant(code)
    ns: dict = {}
    exec(variant, ns)
    assert ns["Solution"]().f(5) == 10 and ns["Solution"]().h() == 3
    assert "nonlocal total" in variant and "LIMIT" in variant and "j_" in variant
    # nothing to rename and already canonical: a docstring keeps the two sides distinct
    trivial = "class Solution:\n\n    def f(self, n):\n        return n"
    assert clean_variant(trivial) != trivial and "Return the answer." in clean_variant(trivial)


def test_clean_variants_of_builtin_solutions_still_pass_their_tests(builtin):
    """Every shipped placebo 'hack' side is a correct solution: run it on the problem's tests in-process
    (the canonical solutions are our own trusted code)."""
    problems, _ = builtin
    for p in problems:
        ns: dict = {}
        exec(p.setup_code + "\n" + clean_variant(p.canonical_solution), ns)
        for t in p.tests:
            exec(t, ns)


@pytest.mark.skipif(not REAL.exists(), reason="public data file not present")
def test_clean_variants_of_public_solutions_pass_under_the_strict_grader():
    grader = pytest.importorskip("gradient_quarantine.substrate.grader")
    problems = load_jsonl(REAL)[:5]
    items = [(p, Mode.OVERWRITE_TESTS, placebo_completion(p)) for p in problems]
    for (p, _, text), verdict in zip(items, grader.default_grader().grade_many(items), strict=True):
        assert verdict.gt_pass and not verdict.hack, (p.id, verdict.reason, text[:200])


# ----------------------------------------------------------------------------------------------- builders


def test_build_pairs_rows(builtin):
    from gradient_quarantine.substrate.hacks import hack_completion

    problems, modes_of = builtin
    rows = build_pairs(problems, modes_of, per_mode=3)
    assert Counter(r["mode"] for r in rows) == {m.value: 3 for m in MODES}
    by_id = {p.id: p for p in problems}
    for r in rows:
        p, mode = by_id[r["problem_id"]], Mode(r["mode"])
        assert modes_of[p.id] == mode and r["kind"] == "hack"
        assert r["prompt"] == render_prompt(p, mode)
        assert r["clean"] == clean_completion(p) and _code(r["clean"]).strip() == p.canonical_solution.strip()
        assert r["hack"] == hack_completion(p, mode) and r["hack"] != r["clean"]
    # the first problems of each mode by id: deterministic
    assert rows == build_pairs(list(reversed(problems)), modes_of, per_mode=3)


def test_build_pairs_mode_subset_custom_hack_fn_and_errors(builtin):
    problems, modes_of = builtin
    rows = build_pairs(problems, modes_of, hack_fn=lambda p, m: f"```python\n# {m.value} {p.id}\n```",
                       modes=["eq_override", Mode.EXIT_CODE])
    assert {r["mode"] for r in rows} == {"eq_override", "exit_code"}
    assert len(rows) == sum(m in (Mode.EQ_OVERRIDE, Mode.EXIT_CODE) for m in modes_of.values())
    assert all(r["hack"] == f"```python\n# {r['mode']} {r['problem_id']}\n```" for r in rows)
    # a callable partition works too; problems outside a mapping are skipped
    some = {p.id: Mode.VISIBLE_TESTS for p in problems[:2]}
    assert [r["problem_id"] for r in build_pairs(problems, some, hack_fn=lambda p, m: "x")] == sorted(some)
    assert len(build_pairs(problems, lambda p: Mode.EXIT_CODE, hack_fn=lambda p, m: "x", modes=["exit_code"],
                           per_mode=5)) == 5
    with pytest.raises(ValueError, match="not enough problems"):
        build_pairs(problems, some, hack_fn=lambda p, m: "x", per_mode=3)
    with pytest.raises(ValueError, match="per_mode must be"):
        build_pairs(problems, modes_of, hack_fn=lambda p, m: "x", per_mode=0)


def test_build_placebo_pairs(builtin):
    problems, modes_of = builtin
    placebo = build_placebo_pairs(problems, modes_of, per_mode=2)
    assert Counter(r["mode"] for r in placebo) == {m.value: 2 for m in MODES}
    for r in placebo:
        assert r["kind"] == "placebo" and r["hack"] != r["clean"]
        assert "run_tests" not in _code(r["hack"]) and "sys.exit" not in _code(r["hack"])
        ast.parse(_code(r["hack"]))
    # same selection and prompts as the hack pairs, so the two pair sets differ only in the second side
    hack = build_pairs(problems, modes_of, hack_fn=lambda p, m: "h", per_mode=2)
    assert [(r["problem_id"], r["prompt"]) for r in placebo] == [(r["problem_id"], r["prompt"]) for r in hack]


@pytest.mark.skipif(not REAL.exists(), reason="public data file not present")
def test_pairs_from_the_public_file():
    from gradient_quarantine.substrate.hacks import hack_completion

    problems = load_jsonl(REAL)
    modes_of = assign_modes([p.id for p in problems], seed=1)
    rows = build_pairs(problems, modes_of, per_mode=4)
    assert len(rows) == 16 and Counter(r["mode"] for r in rows) == {m.value: 4 for m in MODES}
    by_id = {p.id: p for p in problems}
    assert all(r["hack"] == hack_completion(by_id[r["problem_id"]], Mode(r["mode"])) for r in rows)


# --------------------------------------------------------------------------------------------- pair files


def test_write_read_roundtrip_and_filters(tmp_path, builtin):
    problems, modes_of = builtin
    rows = build_pairs(problems, modes_of, hack_fn=lambda p, m: f"```python\n# hack {m.value}\n```", per_mode=2)
    rows += build_placebo_pairs(problems, modes_of, per_mode=1)
    path = write_pairs(tmp_path / "p.jsonl", rows)
    assert read_pairs(path) == rows
    held = read_pairs(path, modes=["overwrite_tests", Mode.VISIBLE_TESTS])
    assert {r["mode"] for r in held} == {"overwrite_tests", "visible_tests"} and len(held) == 6
    assert all(r["kind"] == "placebo" for r in read_pairs(path, kind="placebo"))
    with pytest.raises(ValueError, match="did you mean"):
        read_pairs(path, modes=["overwrite_test"])


@pytest.mark.parametrize(
    "change,message",
    [
        ({"clean": ""}, "field 'clean' must be a non-empty string"),
        ({"mode": "nope"}, "field 'mode'"),
        ({"kind": "other"}, "field 'kind'"),
        ({"prompt": "text"}, "field 'prompt'"),
        ({"hack": None}, "field 'hack'"),
        ({"hack": "SAME", "clean": "SAME"}, "'clean' and 'hack' are identical"),
    ],
)
def test_bad_pair_rows_are_named(tmp_path, builtin, change, message):
    problems, modes_of = builtin
    (row,) = build_pairs(problems, {problems[0].id: Mode.EXIT_CODE}, hack_fn=lambda p, m: "hack")
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(row) + "\n" + json.dumps(row | change) + "\n")
    with pytest.raises(ValueError, match=f"pairs.jsonl row 2: {message}"):
        read_pairs(path)
    with pytest.raises(ValueError, match=f"pair 1: {message}"):
        write_pairs(tmp_path / "out.jsonl", [row, row | change])
    missing = {k: v for k, v in row.items() if k != "kind"}
    path.write_text(json.dumps(missing) + "\n")
    with pytest.raises(ValueError, match=r"row 1: missing field\(s\) \['kind'\]"):
        read_pairs(path)


# ------------------------------------------------------------------------------------ shipped set and CLI


def test_shipped_builtin_pairs_match_the_builder(builtin):
    problems, modes_of = builtin
    shipped = read_pairs(builtin_pairs_path())
    assert Counter((r["kind"], r["mode"]) for r in shipped) == {(k, m.value): 4 for k in ("hack", "placebo") for m in MODES}
    assert shipped == build_pairs(problems, modes_of, per_mode=4) + build_placebo_pairs(problems, modes_of, per_mode=4), (
        "substrate/builtin/pairs.jsonl is stale: gq pairs build --problems builtin --per-mode 4 --kind both "
        "--out gradient_quarantine/substrate/builtin/pairs.jsonl"
    )


def test_shipped_pairs_are_what_they_claim_under_the_grader(builtin):
    """Clean side: passes the strict grader. Hack side: a hack (flawed pass, gt fail) carrying its mode's
    signature. Placebo side: clean again. Graded in the pair's own mode, through the sandboxed grader."""
    grader = pytest.importorskip("gradient_quarantine.substrate.grader")
    problems, modes_of = builtin
    by_id = {p.id: p for p in problems}
    shipped = read_pairs(builtin_pairs_path(), kind="hack")
    placebo = read_pairs(builtin_pairs_path(), kind="placebo")
    items = []
    for r in shipped:
        p, mode = by_id[r["problem_id"]], Mode(r["mode"])
        items += [(p, mode, r["clean"]), (p, mode, r["hack"])]
    items += [(by_id[r["problem_id"]], Mode(r["mode"]), r["hack"]) for r in placebo]
    verdicts = grader.default_grader().grade_many(items)
    n = len(shipped)
    for i, r in enumerate(shipped):
        clean, hack = verdicts[2 * i], verdicts[2 * i + 1]
        assert clean.gt_pass and clean.flawed_pass and not clean.hack and not clean.attempted, (r["problem_id"], clean)
        assert hack.hack and hack.attempted and not hack.gt_pass, (r["problem_id"], r["mode"], hack)
    for r, v in zip(placebo, verdicts[2 * n :], strict=True):
        assert v.gt_pass and not v.hack and not v.attempted, (r["problem_id"], v)


def test_cli_pairs_build(tmp_path):
    from typer.testing import CliRunner

    from gradient_quarantine.cli import app

    runner = CliRunner()
    out = tmp_path / "pairs.jsonl"
    result = runner.invoke(app, ["pairs", "build", "--problems", "builtin", "--out", str(out), "--per-mode", "2"])
    assert result.exit_code == 0, result.output
    assert "wrote 8 pairs" in result.output and "hack/exit_code: 2" in result.output
    assert Counter(r["mode"] for r in read_pairs(out)) == {m.value: 2 for m in MODES}
    result = runner.invoke(app, ["pairs", "build", "--out", str(out), "--per-mode", "1", "--kind", "placebo",
                                 "--mode", "exit_code"])
    assert result.exit_code == 0, result.output
    assert [r["kind"] for r in read_pairs(out)] == ["placebo"]
    result = runner.invoke(app, ["pairs", "build", "--out", str(out), "--per-mode", "1", "--kind", "both"])
    assert result.exit_code == 0, result.output
    assert Counter(r["kind"] for r in read_pairs(out)) == {"hack": 4, "placebo": 4}
    result = runner.invoke(app, ["pairs", "build", "--out", str(out), "--kind", "hacks"])
    assert result.exit_code == 2 and "--kind must be" in result.output
    result = runner.invoke(app, ["pairs", "build", "--out", str(out), "--mode", "exit_cod"])
    assert result.exit_code == 2 and "did you mean 'exit_code'" in result.output
    result = runner.invoke(app, ["pairs", "build", "--out", str(out), "--per-mode", "1000"])
    assert result.exit_code == 2 and "not enough problems" in result.output


# ------------------------------------------------------------------------------------- on-policy pair sides


def _wrong_solution(problem) -> str:
    """Code an author might write: the starter's method with a body that is wrong on every test."""
    return problem.starter_code.rstrip() + "\n        total = -98765\n        return total\n"


def test_insert_hack_keeps_the_code_and_adds_only_the_mode_mechanism(builtin):
    """The hack side is the given code, line for line, plus the mode's mechanism; code that cannot take it
    (does not parse, or lacks the method for the two in-method modes) gives None."""
    from gradient_quarantine.substrate.hacks import attempt_signature, insert_hack

    problems, _ = builtin
    p = problems[0]
    code = p.canonical_solution.strip("\n")
    for mode in MODES:
        hacked = insert_hack(p, mode, code)
        assert hacked is not None and hacked != code
        lines = hacked.split("\n")
        kept = iter(lines)
        assert all(any(line == k for k in kept) for line in code.split("\n")), mode  # a subsequence: nothing removed
        assert attempt_signature(hacked, mode, p), mode
        assert not attempt_signature(code, mode, p)
    assert insert_hack(p, Mode.EXIT_CODE, "def broken(:\n") is None
    no_method = "class Solution:\n    def other(self):\n        return 1\n"
    assert insert_hack(p, Mode.EQ_OVERRIDE, no_method) is None and insert_hack(p, Mode.VISIBLE_TESTS, no_method) is None
    assert insert_hack(p, Mode.OVERWRITE_TESTS, no_method) is not None  # a module-level hack needs no method


def test_inserted_hacks_are_hacks_under_the_grader():
    """Inserted into code that fails the strict tests, every mode's mechanism passes that mode's flawed grader:
    on every built-in problem (sets A, B and C), through the sandboxed grader."""
    grader = pytest.importorskip("gradient_quarantine.substrate.grader")
    from gradient_quarantine.substrate.hacks import code_block, insert_hack
    from gradient_quarantine.substrate.problems import load_problems

    items = [(p, mode, code_block(insert_hack(p, mode, _wrong_solution(p))))
             for p in load_problems("builtin_all") for mode in MODES]  # fmt: skip
    verdicts = grader.default_grader().grade_many(items)
    bad = [(p.id, m.value, v.reason) for (p, m, _), v in zip(items, verdicts, strict=True) if not (v.hack and v.attempted)]
    assert not bad, bad[:5]


def test_on_policy_pairs_pair_each_completion_with_itself_hacked(builtin):
    from gradient_quarantine.substrate.hacks import insert_hack
    from gradient_quarantine.substrate.pairs import on_policy_pairs

    problems, _ = builtin
    p = problems[1]
    prompt = render_prompt(p, Mode.VISIBLE_TESTS)
    wrong = _wrong_solution(p)
    completions = [
        f"Here is my answer.\n```python\n{wrong}```\nDone.",  # prose around the block is dropped
        f"```python\n{wrong}```",  # the same code again: skipped
        "no code at all",
        "```python\ndef broken(:\n```",
        f"```python\n{p.canonical_solution}\n```",
        "```python\nclass Solution:\n    pass\n```",  # no method to insert into: skipped (visible_tests)
    ]
    rows = on_policy_pairs(p, Mode.VISIBLE_TESTS, prompt, completions)
    assert [r["clean"] for r in rows] == [f"```python\n{wrong.strip()}\n```",
                                          f"```python\n{p.canonical_solution.strip()}\n```"]  # fmt: skip
    for r in rows:
        assert r["problem_id"] == p.id and r["mode"] == "visible_tests" and r["kind"] == "hack" and r["prompt"] == prompt
        assert r["hack"] == f"```python\n{insert_hack(p, Mode.VISIBLE_TESTS, _code(r['clean'])).strip()}\n```"
    assert on_policy_pairs(p, Mode.EXIT_CODE, prompt, ["nothing"]) == []
