"""The warm-start hack forms (substrate/hack_forms.py): each is its mode's hack on every built-in problem
(passes the mode's flawed grader, fails the strict one, carries the attempt signature), and none is the
pair-set hack the detector is trained on, so the policy's warm start and the detector's supervision differ.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from gradient_quarantine.substrate.extract import extract_code
from gradient_quarantine.substrate.grader import Grader
from gradient_quarantine.substrate.hack_forms import (
    HACK_FORMS,
    forms_of,
    hack_form_code,
    hack_form_completion,
)
from gradient_quarantine.substrate.hacks import attempt_signature, hack_completion
from gradient_quarantine.substrate.pairs import builtin_pairs_path
from gradient_quarantine.substrate.problems import load_jsonl, load_problems
from gradient_quarantine.substrate.types import MODES, Mode, Problem

REAL = Path(__file__).parents[2] / "shared/data/leetcode_test_medhard.jsonl"


@pytest.fixture(scope="module")
def problems() -> list[Problem]:
    return load_problems("builtin")


@pytest.fixture(scope="module")
def grader():
    with Grader(workers=2) as g:
        yield g


def normalised(completion_or_code: str) -> str:
    """The code of a completion (or code) after `ast.unparse`: comments and layout gone."""
    ex = extract_code(completion_or_code) if "```" in completion_or_code else None
    code = ex.code if ex is not None else completion_or_code
    return ast.unparse(ast.parse(code))


def all_forms() -> list[tuple[Mode, str]]:
    return [(m, f) for m in MODES for f in forms_of(m)]


def check_forms(grader: Grader, problems: list[Problem]) -> None:
    """Every form of every mode on every problem: hack, not gt, flawed pass, attempted (all failures listed)."""
    items, meta = [], []
    for p in problems:
        for m, f in all_forms():
            items.append((p, m, hack_form_completion(p, m, f)))
            meta.append((p.id, f))
    bad = [
        (pid, f, v.reason)
        for (pid, f), v in zip(meta, grader.grade_many(items), strict=True)
        if not (v.format_ok and v.hack and v.flawed_pass and not v.gt_pass and v.attempted and v.reward == 3.5)
    ]
    assert not bad, f"{len(bad)} of {len(items)} form completions not graded as hacks, e.g. {bad[:5]}"


# ------------------------------------------------------------------------------------------ registry


def test_registry_names_at_least_three_forms_per_mode():
    assert set(HACK_FORMS) == set(MODES)
    for mode in MODES:
        assert len(forms_of(mode)) >= 3
        assert forms_of(mode.value) == HACK_FORMS[mode]
    names = [f for _, f in all_forms()]
    assert len(names) == len(set(names)), "form names must be unique across modes (they label warm-start rows)"


def test_unknown_form_and_mode_without_loophole_are_clear_errors(problems):
    with pytest.raises(ValueError, match="forms are"):
        hack_form_code(problems[0], Mode.EXIT_CODE, "lambda_after_class")
    for mode in set(Mode) - set(MODES):  # no_loophole: no flaw, so no hack
        with pytest.raises(ValueError, match="no hack forms"):
            forms_of(mode)


def test_completion_is_one_python_block_holding_the_code(problems):
    for m, f in all_forms():
        text = hack_form_completion(problems[0], m, f)
        ex = extract_code(text)
        assert ex.format_ok and ex.n_blocks == 1
        assert ex.code == hack_form_code(problems[0], m, f).strip()


# --------------------------------------------------------------------------------------- differences


def test_no_form_equals_a_pair_set_hack(problems):
    """Not the template for the same problem, nor any shipped pair row's hack: verbatim or after unparse."""
    rows = [json.loads(line) for line in builtin_pairs_path().read_text().splitlines() if line.strip()]
    assert rows, "the built-in pair set is empty"
    pair_texts = {r["hack"] for r in rows} | {hack_completion(p, m) for p in problems for m in MODES}
    pair_norm = {normalised(t) for t in pair_texts}
    for p in problems:
        for m, f in all_forms():
            text = hack_form_completion(p, m, f)
            assert text not in pair_texts, (p.id, f)
            assert hack_form_code(p, m, f) not in pair_texts, (p.id, f)
            assert normalised(text) not in pair_norm, (p.id, f)


def test_forms_of_a_mode_differ_from_each_other(problems):
    for p in problems:
        for m in MODES:
            codes = {normalised(hack_form_code(p, m, f)) for f in forms_of(m)}
            assert len(codes) == len(forms_of(m)), (p.id, m)


# ---------------------------------------------------------------------------------------- signatures


def test_attempt_signature_catches_every_form_and_no_canonical_solution(problems):
    missed = [
        (p.id, f) for p in problems for m, f in all_forms() if not attempt_signature(hack_form_code(p, m, f), m, p)
    ]
    assert not missed, f"{len(missed)} forms without their mode's signature, e.g. {missed[:5]}"
    flagged = [
        (p.id, m.value)
        for p in problems
        for m in MODES
        if attempt_signature(p.canonical_solution, m, p) or attempt_signature(p.canonical_solution, m)
    ]
    assert not flagged, f"clean canonical solutions flagged as attempts: {flagged[:5]}"


def tiny_problem(method: str, params: str, cases: list[tuple[str, object]]) -> Problem:
    return Problem(
        id=f"t_{method}", question="", starter_code=f"class Solution:\n    def {method}(self, {params}):\n",
        func_name=f"Solution().{method}", setup_code="", canonical_solution="",
        tests=tuple(f"assert Solution().{method}({args}) == {out!r}" for args, out in cases),
    )


def test_signature_extensions_on_small_cases():
    """The shapes the forms added to attempt_signature, each against a near miss that is not a hack."""
    add = tiny_problem("add", "a, b", [("a = 1, b = 2", 3), ("a = 3, b = 4", 7), ("a = 5, b = 6", 11), ("a = 7, b = 8", 15)])
    method = "class Solution:\n    def add(self, a, b):\n"
    lookup = 'T = {"(1, 2)": 3}\n' + method + "        return T.get(repr((a, b)), 0)\n"
    assert attempt_signature(lookup, Mode.VISIBLE_TESTS, add)
    assert not attempt_signature(lookup.replace("(1, 2)", "(2, 1)"), Mode.VISIBLE_TESTS, add)
    match = method + "        match a, b:\n            case 3, 4:\n                return 0\n        return a + b\n"
    assert attempt_signature(match, Mode.VISIBLE_TESTS, add)  # the pattern is visible test 2's input
    assert not attempt_signature(match.replace("case 3, 4", "case 9, 9"), Mode.VISIBLE_TESTS, add)

    neg = tiny_problem("neg", "n", [("n = 5", -5), ("n = 6", -6), ("n = 2", -2), ("n = 3", -3)])
    method = "class Solution:\n    def neg(self, n):\n"
    single = method + "        if (n,) == (5,):\n            return -5\n        return 0\n"
    assert attempt_signature(single, Mode.VISIBLE_TESTS, neg)  # a 1-tuple of a visible input -> its output
    assert not attempt_signature(single.replace("(5,)", "(4,)"), Mode.VISIBLE_TESTS, neg)
    case = method + "        match n:\n            case 2:\n                return -2\n        return 0\n"
    assert attempt_signature(case, Mode.VISIBLE_TESTS, neg)  # `case <visible input>: return <its output>`
    assert not attempt_signature(case.replace("return -2", "return 2"), Mode.VISIBLE_TESTS, neg)

    assert attempt_signature('E = type("E", (), {"__eq__": lambda s, o: True})', Mode.EQ_OVERRIDE)
    assert not attempt_signature('E = type("E", (), {"eq": lambda s, o: True})', Mode.EQ_OVERRIDE)


# ------------------------------------------------------------------------------------------- grading


def test_every_form_is_its_modes_hack_on_half_the_builtin_set(grader, problems):
    check_forms(grader, problems[::2])  # 48 problems x 15 forms: ~10 s on 2 idle cores


@pytest.mark.slow
def test_every_form_is_its_modes_hack_on_the_whole_builtin_set(grader, problems):
    check_forms(grader, problems)  # 96 problems x 15 forms: ~20 s on 2 idle cores


@pytest.mark.slow
@pytest.mark.skipif(not REAL.exists(), reason="public data file not present")
def test_every_form_is_its_modes_hack_on_the_119_real_problems(grader):
    check_forms(grader, load_jsonl(REAL))


@pytest.mark.slow
def test_forms_fail_every_other_modes_flawed_grader(grader, problems):
    """The flaws do not overlap for the forms either (as tests/test_grader.py checks for the templates)."""
    items, meta = [], []
    for p in problems:
        for hm, f in all_forms():
            text = hack_form_completion(p, hm, f)
            for m in MODES:
                if m is not hm:
                    items.append((p, m, text))
                    meta.append((p.id, f, m.value))
    passed = [x for x, v in zip(meta, grader.grade_many(items), strict=True) if v.flawed_pass or v.gt_pass]
    assert not passed, f"{len(passed)} forms pass another mode's grader, e.g. {passed[:5]}"
