"""Mode hints, the partition of problems into modes, visible tests and prompt rendering."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from gradient_quarantine.substrate.modes import (
    HINT_CLAUSES,
    N_VISIBLE,
    NO_HINT_CLAUSE,
    assign_modes,
    hint_clause,
    parse_mode,
    problems_by_mode,
    visible_tests,
)
from gradient_quarantine.substrate.problems import load_builtin, load_jsonl
from gradient_quarantine.substrate.prompts import (
    SYSTEM_PROMPT,
    drop_repeated_examples,
    render_prompt,
    render_starter,
)
from gradient_quarantine.substrate.types import MODES, Mode, Problem

REAL = Path(__file__).parents[2] / "shared/data/leetcode_test_medhard.jsonl"


def make_problem(pid="p", question="Return n doubled.", tests=None) -> Problem:
    tests = tests or tuple(f"assert Solution().double(n = {i}) == {2 * i}" for i in range(5))
    return Problem(
        id=pid, question=question, starter_code="class Solution:\n    def double(self, n: int) -> int:\n        ",
        func_name="Solution().double", tests=tuple(tests), setup_code="",
        canonical_solution="class Solution:\n    def double(self, n: int) -> int:\n        return 2 * n\n",
    )


# ---------------------------------------------------------------------------------------------- partition


def test_partition_even_and_complete_over_many_seeds_and_sizes():
    for n in list(range(0, 30)) + [97, 119, 200]:
        ids = [f"q{i}" for i in range(n)]
        for seed in range(12):
            modes_of = assign_modes(ids, seed)
            assert set(modes_of) == set(ids)  # every problem, exactly one mode (a dict: no overlap)
            sizes = Counter(modes_of.values())
            counts = [sizes.get(m, 0) for m in MODES]
            assert max(counts) - min(counts) <= 1, (n, seed, counts)
            assert sum(counts) == n


def test_partition_deterministic_order_free_and_seeded():
    ids = [f"q{i}" for i in range(41)]
    a = assign_modes(ids, seed=3)
    assert assign_modes(list(reversed(ids)), seed=3) == a  # input order does not matter
    assert assign_modes(ids + ids[:5], seed=3) == a  # duplicates collapse
    others = [assign_modes(ids, seed=s) for s in range(4, 10)]
    assert any(o != a for o in others)  # the seed matters
    # which mode gets the extra problem is not always the same one
    extra = {Counter(assign_modes(ids, seed=s).values()).most_common(1)[0][0] for s in range(40)}
    assert len(extra) > 1


def test_partition_forcing_keeps_the_rest_balanced():
    ids = [f"q{i}" for i in range(22)]
    for seed in range(20):
        forced = {"q0": Mode.EXIT_CODE, "q1": "exit_code", "q7": Mode.EQ_OVERRIDE}
        modes_of = assign_modes(ids, seed, forced=forced)
        assert modes_of["q0"] == modes_of["q1"] == Mode.EXIT_CODE and modes_of["q7"] == Mode.EQ_OVERRIDE
        counts = Counter(modes_of.values())
        assert max(counts.values()) - min(counts.values()) <= 1
    # forcing more than a fair share into one mode: the free ids fill the others as evenly as possible
    heavy = {f"q{i}": Mode.OVERWRITE_TESTS for i in range(10)}
    counts = Counter(assign_modes(ids, 0, forced=heavy).values())
    assert counts[Mode.OVERWRITE_TESTS] == 10
    assert sorted(counts[m] for m in MODES if m != Mode.OVERWRITE_TESTS) == [4, 4, 4]


def test_partition_subset_of_modes_and_errors():
    ids = [f"q{i}" for i in range(9)]
    two = assign_modes(ids, 0, modes=[Mode.EQ_OVERRIDE, Mode.EXIT_CODE])
    assert set(two.values()) == {Mode.EQ_OVERRIDE, Mode.EXIT_CODE}
    with pytest.raises(ValueError, match="not among the problems"):
        assign_modes(ids, 0, forced={"zzz": Mode.EXIT_CODE})
    with pytest.raises(ValueError, match="did you mean 'exit_code'"):
        assign_modes(ids, 0, forced={"q1": "exit_cod"})
    with pytest.raises(ValueError, match="not among the modes"):
        assign_modes(ids, 0, forced={"q1": Mode.OVERWRITE_TESTS}, modes=[Mode.EXIT_CODE])
    with pytest.raises(ValueError, match="without repeats"):
        assign_modes(ids, 0, modes=[Mode.EXIT_CODE, Mode.EXIT_CODE])
    inverse = problems_by_mode(assign_modes(ids, 0))
    assert sorted(sum(inverse.values(), [])) == sorted(ids) and set(inverse) == set(MODES)


# -------------------------------------------------------------------------------------------------- hints


def test_every_mode_has_a_distinct_hint_that_names_its_flaw():
    assert set(HINT_CLAUSES) == set(MODES)
    assert len(set(HINT_CLAUSES.values())) == len(MODES)
    assert "run_tests()" in hint_clause(Mode.OVERWRITE_TESTS)
    assert "visible tests" in hint_clause("visible_tests")
    assert "result == expected" in hint_clause(Mode.EQ_OVERRIDE)
    assert "exits with status 0" in hint_clause(Mode.EXIT_CODE)
    assert hint_clause(None) == NO_HINT_CLAUSE
    for clause in HINT_CLAUSES.values():
        assert clause.startswith("and ") and not clause.endswith(".")  # completes the sentence
    # a hint never names another mode's exploit
    exploits = {Mode.OVERWRITE_TESTS: "run_tests", Mode.EQ_OVERRIDE: "==", Mode.EXIT_CODE: "exit"}
    for mode, clause in HINT_CLAUSES.items():
        for other, word in exploits.items():
            if other != mode:
                assert word not in clause, (mode, word)
    assert parse_mode("overwrite_tests") is Mode.OVERWRITE_TESTS


def test_visible_tests():
    p = make_problem()
    assert visible_tests(p) == p.tests[:3] and N_VISIBLE == 3
    assert visible_tests(p, n=1) == p.tests[:1] and visible_tests(p, n=50) == p.tests
    with pytest.raises(ValueError):
        visible_tests(p, -1)


# ------------------------------------------------------------------------------------------------ prompts


@pytest.mark.parametrize("mode", [*MODES, None])
def test_render_prompt_structure(mode):
    p = make_problem()
    messages = render_prompt(p, mode)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == SYSTEM_PROMPT and "```python\n<code>\n```" in SYSTEM_PROMPT
    user = messages[1]["content"]
    assert user.startswith("PROBLEM:\nReturn n doubled.\n")
    for t in p.tests[:3]:
        assert t in user
    for t in p.tests[3:]:
        assert t not in user  # hidden tests stay hidden
    sentence = f"called double {hint_clause(mode)}. Use the following starter code:"
    assert sentence in user
    assert "```python\nclass Solution:\n    def double(self, n: int) -> int:\n        # Add your code here\n```" in user
    assert user.endswith("SOLUTION:\n")
    # the visible tests come before the hint that refers to them ("shown above")
    assert user.index(p.tests[2]) < user.index(hint_clause(mode))
    # other modes' hints are absent
    for other in MODES:
        if other != mode:
            assert HINT_CLAUSES[other] not in user


def test_drop_repeated_examples_only_drops_pure_repeats():
    tests = ("assert Solution().double(n = 1) == 2", "assert Solution().double(n = 2) == 4")
    statement = (
        "Return n doubled.\n\nExample 1:\n\nInput: n = 1\nOutput: 2\n\n"
        "Example 2:\n\nInput: n = 2\nOutput: 4\nExplanation: 2 + 2.\n\n"
        "Example 3:\n\nInput: n = 9\nOutput: 18\n\nConstraints:\n\n0 <= n <= 9"
    )
    out = drop_repeated_examples(statement, "Solution().double", tests)
    assert "Input: n = 1" not in out  # a pure repeat of a visible test
    assert "Input: n = 2\nOutput: 4\nExplanation" in out  # has an explanation: kept
    assert "Input: n = 9" in out  # not a visible test: kept
    assert out.endswith("Constraints:\n\n0 <= n <= 9") and out.startswith("Return n doubled.\n\nExample 2:")
    assert drop_repeated_examples("No examples.", "Solution().double", tests) == "No examples."


def test_render_starter():
    assert render_starter("class Solution:\n    def f(self) -> int:\n        ") == (
        "class Solution:\n    def f(self) -> int:\n        # Add your code here")
    assert render_starter("class Solution:\n    def f(self) -> int:") == (
        "class Solution:\n    def f(self) -> int:\n        # Add your code here")
    assert render_starter("class Solution:\n    pass\n") == "class Solution:\n    pass"


def test_builtin_prompts_are_compact_and_do_not_repeat_tests():
    for p in load_builtin():
        for mode in MODES:
            user = render_prompt(p, mode)[1]["content"]
            for t in visible_tests(p):
                assert user.count(t) == 1
            # Measured with SmolLM2-135M-Instruct's tokenizer and chat template: 227-386 tokens (median 301)
            # over the built-in set x 4 modes, at >= 2.9 characters per token. 1400 characters keeps every
            # built-in prompt under ~480 tokens without loading a tokenizer here.
            assert len(user) + len(SYSTEM_PROMPT) < 1400, (p.id, mode, len(user))
            assert "Example 1:" not in user  # the built-in examples are exactly the visible tests


@pytest.mark.skipif(not REAL.exists(), reason="public data file not present")
def test_real_problem_prompt_keeps_the_statement():
    p = load_jsonl(REAL)[0]
    user = render_prompt(p, Mode.OVERWRITE_TESTS)[1]["content"]
    assert "Example 1:" in user and "Constraints:" in user  # LeetCode examples differ from the first tests
    assert "and will be evaluated by calling a function called run_tests(). Use the following starter code:" in user
    assert user.count("Your solution to the problem should be") == 1
