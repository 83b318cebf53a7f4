"""Problem loaders: the public schema (real file when present), malformed rows, the built-in set, the
LeetCodeDataset format on local files, and the `load_problems` dispatch."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from gradient_quarantine.substrate.problems import (
    ProblemFormatError,
    asserts_from_check_function,
    asserts_from_input_output,
    clean_statement,
    load_builtin,
    load_hf_leetcode,
    load_jsonl,
    load_problems,
)
from gradient_quarantine.substrate.types import Problem

REAL = Path(__file__).parents[2] / "shared/data/leetcode_test_medhard.jsonl"
FIXTURE = Path(__file__).parent / "fixtures/leetcodedataset_sample.jsonl"

GOOD_ROW = {
    "id": 7,
    "question": "PROBLEM:\nReturn n doubled.\n\nYour solution to the problem should be a method of the class Solution "
                "called double and should pass all tests. Use the following starter code:\n```python\nclass "
                "Solution:\n    def double(self, n: int) -> int:\n        # Add your code here\n```\n\nSOLUTION:\n",
    "gt_answer": ["assert Solution().double(n = 1) == 2", "assert Solution().double(n = 0) == 0"],
    "func_name": "Solution().double",
    "setup_code": "from typing import *\n",
    "canonical_solution": "class Solution:\n    def double(self, n: int) -> int:\n        return 2 * n\n",
    "prompt_metadata": {"starter_code": "class Solution:\n    def double(self, n: int) -> int:\n        "},
    "difficulty": "Medium",
}


def write_rows(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ------------------------------------------------------------------------------------------- public schema


@pytest.mark.skipif(not REAL.exists(), reason="public data file not present")
def test_real_public_file_loads_and_is_stripped():
    problems = load_jsonl(REAL)
    assert len(problems) == 119
    assert len({p.id for p in problems}) == 119
    raw = [json.loads(line) for line in REAL.read_text().splitlines()]
    for p, r in zip(problems, raw, strict=True):
        assert p.id == str(r["id"]) and p.func_name == r["func_name"]
        assert p.tests == tuple(r["gt_answer"]) and len(p.tests) >= 3
        assert p.difficulty in {"medium", "hard"} and p.source == "leetcode_test_medhard"
        # the environment's frame is gone, the statement (with its constraints) is kept
        assert not p.question.startswith("PROBLEM:") and "SOLUTION:" not in p.question
        assert "Your solution to the problem should be" not in p.question
        assert "Constraints:" in p.question and "\xa0" not in p.question
        assert p.method_name in p.starter_code


def test_good_row_normalised(tmp_path):
    (p,) = load_jsonl(write_rows(tmp_path / "d.jsonl", [GOOD_ROW]))
    assert p == Problem(
        id="7", question="Return n doubled.", starter_code=GOOD_ROW["prompt_metadata"]["starter_code"],
        func_name="Solution().double", tests=tuple(GOOD_ROW["gt_answer"]), setup_code="from typing import *\n",
        canonical_solution=GOOD_ROW["canonical_solution"], difficulty="medium", source="d",
    )


def test_clean_statement_is_idempotent_and_keeps_plain_text():
    once = clean_statement(GOOD_ROW["question"])
    assert once == "Return n doubled." and clean_statement(once) == once
    assert clean_statement("No frame here.\n\n\n\nConstraints:\n\n1 <= n") == "No frame here.\n\nConstraints:\n\n1 <= n"


def _mutate(field, value):
    row = copy.deepcopy(GOOD_ROW)
    if value is _DELETE:
        del row[field]
    else:
        row[field] = value
    return row


_DELETE = object()

MALFORMED = [
    (_mutate("gt_answer", []), "gt_answer", "must be a non-empty list of assert strings"),
    (_mutate("gt_answer", "assert x"), "gt_answer", "must be a non-empty list of assert strings"),
    (_mutate("gt_answer", ["Solution().double(n = 1) == 2"]), "gt_answer", "must be an assert statement"),
    (_mutate("gt_answer", ["assert Solution().double(n = ) == 2"]), "gt_answer", "not valid Python"),
    (_mutate("gt_answer", ["assert Solution().triple(n = 1) == 3"]), "gt_answer", "does not call 'double'"),
    (_mutate("gt_answer", ["assert Solution().double(n = 1) == 2"] * 2), "gt_answer", "duplicate"),
    (_mutate("question", _DELETE), "question", "is missing"),
    (_mutate("question", "   "), "question", "non-empty"),
    (_mutate("question", 3), "question", "must be a string"),
    (_mutate("id", None), "id", "non-empty string or an integer"),
    (_mutate("func_name", "double"), "func_name", "Solution().methodName"),
    (_mutate("canonical_solution", "class Solution:\n    def double(self n):\n"), "canonical_solution",
     "not valid Python"),
    (_mutate("setup_code", "import (\n"), "setup_code", "not valid Python"),
    (_mutate("prompt_metadata", _DELETE), "prompt_metadata", "starter_code"),
    (_mutate("prompt_metadata", {"starter_code": ""}), "prompt_metadata.starter_code", "non-empty"),
    (_mutate("prompt_metadata", {"starter_code": "class Solution:\n    def other(self):"}),
     "prompt_metadata.starter_code", "does not define"),
    (_mutate("difficulty", 3), "difficulty", "must be a string"),
]


@pytest.mark.parametrize("bad,field,message", MALFORMED, ids=[f"{f}:{m[:20]}" for _, f, m in MALFORMED])
def test_malformed_row_names_file_row_and_field(tmp_path, bad, field, message):
    path = write_rows(tmp_path / "data.jsonl", [_mutate("id", 1), _mutate("id", 2), bad])
    with pytest.raises(ProblemFormatError) as err:
        load_jsonl(path)
    text = str(err.value)
    assert text.startswith(f"data.jsonl row 3: field '{field}'"), text
    assert message in text


def test_not_json_and_not_object_and_duplicate_ids(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(GOOD_ROW) + "\n{not json\n")
    with pytest.raises(ProblemFormatError, match=r"x.jsonl row 2: not valid JSON"):
        load_jsonl(path)
    write_rows(path, [GOOD_ROW, [1, 2]])
    with pytest.raises(ProblemFormatError, match=r"x.jsonl row 2: expected a JSON object"):
        load_jsonl(path)
    write_rows(path, [GOOD_ROW, GOOD_ROW])
    with pytest.raises(ProblemFormatError, match=r"x.jsonl row 2: field 'id' '7' repeats the id of row 1"):
        load_jsonl(path)
    path.write_text("\n")
    with pytest.raises(ProblemFormatError, match="empty"):
        load_jsonl(path)
    with pytest.raises(FileNotFoundError):
        load_jsonl(tmp_path / "absent.jsonl")


# ------------------------------------------------------------------------------------------------ built-in


def test_builtin_set_loads():
    problems = load_builtin()
    assert len(problems) >= 40
    assert all(p.source == "builtin" and p.difficulty == "easy" for p in problems)
    assert len({p.id for p in problems}) == len(problems)
    assert all(len(p.tests) >= 10 for p in problems)
    assert all(not p.question.startswith("PROBLEM:") for p in problems)


# ----------------------------------------------------------------------------------- LeetCodeDataset format


def test_asserts_from_input_output_and_check_function():
    io = [{"input": "nums = [1,2], k = 3", "output": "[3, 4]"}, {"input": "x = (", "output": "1"},
          {"input": "n = 1", "output": ""}]
    assert asserts_from_input_output("Solution().f", io) == ["assert Solution().f(nums = [1,2], k = 3) == [3, 4]"]
    src = "def check(candidate):\n    assert candidate(n = 2) == 4\n    x = 1\n    assert candidate(n = 0) == 0\n"
    assert asserts_from_check_function("Solution().g", src) == [
        "assert Solution().g(n = 2) == 4", "assert Solution().g(n = 0) == 0"]
    assert asserts_from_check_function("Solution().g", "def check(:") == []


def test_hf_format_local_jsonl_without_verification(tmp_path):
    problems = load_hf_leetcode(data_files=FIXTURE, cache_dir=tmp_path / "cache", verify=None)
    by_id = {p.id: p for p in problems}
    # 9003 is Easy: filtered out; everything else is medium/hard
    assert sorted(by_id) == ["9001", "9002", "9004", "9005", "9006"]
    p = by_id["9001"]
    assert p.func_name == "Solution().findNumbers" and p.difficulty == "medium"
    assert p.tests[0] == "assert Solution().findNumbers(nums = [12,345,2,6,7896]) == 2" and len(p.tests) == 5
    assert p.question.startswith("Given an integer array nums") and "Constraints:" in p.question
    assert "class ListNode" in p.setup_code and p.source == "hf:newfacade/LeetCodeDataset"
    # 9005 has no check function: its tests come from input_output
    assert by_id["9005"].tests[1] == "assert Solution().secondLargest(nums = [7,7]) == -1"
    # 9006 (linked list) keeps the check function's comparable is_same_list asserts
    assert by_id["9006"].tests[0] == (
        "assert is_same_list(Solution().reverseList(head = list_node([1,2,3])), list_node([3,2,1]))")
    # difficulties is configurable
    easy = load_hf_leetcode(data_files=FIXTURE, cache_dir=tmp_path / "cache", verify=None, difficulties=("easy",))
    assert [p.id for p in easy] == ["9003"]


def test_hf_format_verify_callable_drops_failures(tmp_path):
    calls = []

    def verify(problem: Problem) -> bool:
        calls.append(problem.id)
        return problem.id != "9004"

    problems = load_hf_leetcode(data_files=[FIXTURE], cache_dir=tmp_path / "cache", verify=verify)
    assert [p.id for p in problems] == ["9001", "9002", "9005", "9006"]
    assert sorted(calls) == ["9001", "9002", "9004", "9005", "9006"]  # verified in parallel: any order
    assert [p.id for p in load_hf_leetcode(data_files=FIXTURE, cache_dir=tmp_path / "c", verify=None, limit=2)] \
        == ["9001", "9002"]


def test_hf_format_parquet(tmp_path):
    import datasets

    parquet = tmp_path / "sample.parquet"
    datasets.load_dataset("json", data_files=str(FIXTURE), split="train", cache_dir=str(tmp_path / "c0")).to_parquet(
        str(parquet))
    problems = load_hf_leetcode(data_files=parquet, cache_dir=tmp_path / "c1", verify=None)
    assert [p.id for p in problems] == ["9001", "9002", "9004", "9005", "9006"]


def test_hf_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_hf_leetcode(data_files=tmp_path / "nope.jsonl", verify=None)
    other = tmp_path / "x.csv"
    other.write_text("a\n1\n")
    with pytest.raises(ValueError, match="must all be"):
        load_hf_leetcode(data_files=other, verify=None)
    with pytest.raises(ValueError, match="verify must be"):
        load_hf_leetcode(data_files=FIXTURE, verify="yes")


def test_hf_verifies_with_the_grader_by_default(tmp_path):
    pytest.importorskip("gradient_quarantine.substrate.grader")
    problems = load_hf_leetcode(data_files=FIXTURE, cache_dir=tmp_path / "cache")
    # 9004's canonical solution is off by one; the rest (the linked-list 9006 included) pass their own tests
    assert [p.id for p in problems] == ["9001", "9002", "9005", "9006"]


# ------------------------------------------------------------------------------------------------ dispatch


def test_load_problems_dispatch(tmp_path):
    assert [p.id for p in load_problems("builtin")] == [p.id for p in load_builtin()]
    path = write_rows(tmp_path / "mine.jsonl", [GOOD_ROW])
    assert load_problems(str(path))[0].id == "7"
    with pytest.raises(ValueError, match="did you mean 'builtin'"):
        load_problems("bultin")
    with pytest.raises(ValueError, match="needs a dataset name"):
        load_problems("hf:")
    with pytest.raises(ValueError, match="unknown problem source"):
        load_problems("problems.csv")
