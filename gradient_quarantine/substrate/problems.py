"""Problem loaders: the public environment's jsonl schema, the shipped built-in set, and the Hugging Face
`newfacade/LeetCodeDataset` (docs/design.md §4). Every loader returns `list[Problem]` (substrate/types.py).

    >>> problems = load_problems("builtin")                       # the shipped easy set (96: sets A and B)
    >>> problems = load_problems("builtin_c")                     # 48 very easy problems in 14 families (set C)
    >>> problems = load_problems("builtin_all")                   # A, B and C: 144
    >>> problems = load_problems("builtin_d")                     # 48 more in 13 other families (set D)
    >>> problems = load_problems("builtin_mix")                   # all 192: sets A, B, C and D
    >>> problems = load_problems("../shared/data/leetcode_test_medhard.jsonl")   # the public schema
    >>> problems = load_problems("hf:newfacade/LeetCodeDataset")  # real runs: medium+hard, self-verified

The public schema (one JSON object per line): `id`, `question` (the statement, wrapped in the environment's
"PROBLEM:" ... "Your solution to the problem should be ... SOLUTION:" frame), `gt_answer` (a list of
`assert Solution().f(...) == expected` strings), `func_name` ("Solution().f"), `setup_code`,
`canonical_solution`, `prompt_metadata.starter_code`, `difficulty`. The frame is stripped on load, so
`Problem.question` is the bare statement (examples and constraints kept) and `prompts.render_prompt` adds
our own frame, with the mode's hint, around it. A malformed row fails with an error that names the file,
the row and the field.

Problem families: an id of the form `FAMILY__INSTANCE` (sets C and D: `c_digits__largest`, `d_two_ints__larger`)
belongs to the family before the double underscore; any other id is a family of its own (`family_of`).
`data.roles_by=family` deals whole families into the roles (substrate/splits.py).
"""

from __future__ import annotations

import ast
import difflib
import importlib.resources
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gradient_quarantine.io import iter_numbered_jsonl
from gradient_quarantine.substrate.types import Problem

log = logging.getLogger(__name__)

BUILTIN_PACKAGE = "gradient_quarantine.substrate.builtin"
BUILTIN_FILE = "problems.jsonl"
# The files `builtin/build.py` writes, one per set of definitions (a defs module's `SET` names its set).
BUILTIN_FILES: dict[str, str] = {
    "builtin": BUILTIN_FILE,
    "builtin_c": "problems_c.jsonl",
    "builtin_d": "problems_d.jsonl",
}
# The names `data.problems` / `--problems` accept for the shipped sets, and the built sets each one loads.
BUILTIN_SETS: dict[str, tuple[str, ...]] = {
    "builtin": ("builtin",),  # sets A and B: the 96 problems the committed studies ran on (unchanged)
    "builtin_c": ("builtin_c",),  # set C alone: 48 very easy problems in 14 families
    "builtin_all": ("builtin", "builtin_c"),  # A, B and C: 144 (unchanged when set D was added)
    "builtin_d": ("builtin_d",),  # set D alone: 48 very easy problems in 13 more families
    "builtin_mix": ("builtin", "builtin_c", "builtin_d"),  # all 192: sets A, B, C and D, in that order
}
HF_DEFAULT = "newfacade/LeetCodeDataset"
FAMILY_SEP = "__"  # `FAMILY__INSTANCE` ids share a family (family_of)

# The public environment wraps each statement in this frame; `clean_statement` removes it.
_PREAMBLE = "PROBLEM:"
_TRAILER = re.compile(r"\n[ \t]*Your solution to the problem should be a method of the class Solution\b")
_METHOD_NAME = re.compile(r"^[A-Za-z_]\w*(\(\))?(\.[A-Za-z_]\w*)+$")  # "Solution().f"


class ProblemFormatError(ValueError):
    """A row of a problem file does not follow the schema. The message names file, row and field."""


# --------------------------------------------------------------------------------------------- statement


def clean_statement(question: str) -> str:
    """The bare statement: no "PROBLEM:" preamble, no "Your solution ... SOLUTION:" trailer.

    Also turns the non-breaking spaces LeetCode text is full of into plain spaces and drops trailing
    whitespace on each line (both cost tokens and carry nothing). Idempotent.

        >>> clean_statement("PROBLEM:\\nAdd two numbers.\\n\\nYour solution to the problem should be a method "
        ...                 "of the class Solution called add ...\\nSOLUTION:\\n")
        'Add two numbers.'
    """
    text = question.replace("\r\n", "\n").replace("\xa0", " ")
    text = text.strip()
    if text.startswith(_PREAMBLE):
        text = text[len(_PREAMBLE) :]
    trailers = list(_TRAILER.finditer(text))
    if trailers:  # cut at the last one: a statement could quote the phrase
        text = text[: trailers[-1].start()]
    lines = [line.rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# ------------------------------------------------------------------------------------- public jsonl schema


def _fail(where: str, field: str, what: str) -> ProblemFormatError:
    return ProblemFormatError(f"{where}: field '{field}' {what}")


def _require_str(row: Mapping, field: str, where: str, *, allow_empty: bool = False) -> str:
    if field not in row:
        raise _fail(where, field, "is missing")
    value = row[field]
    if not isinstance(value, str):
        raise _fail(where, field, f"must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise _fail(where, field, "must be a non-empty string")
    return value


def _parses(code: str) -> SyntaxError | None:
    try:
        ast.parse(code)
    except SyntaxError as e:
        return e
    return None


def problem_from_row(row: Any, where: str, source: str) -> Problem:
    """Validate one row of the public schema and normalise it into a `Problem`.

    `where` prefixes every error ("data.jsonl row 7"), so a bad file is fixed in one look.
    """
    if not isinstance(row, Mapping):
        raise ProblemFormatError(f"{where}: expected a JSON object, got {type(row).__name__}")

    if "id" not in row:
        raise _fail(where, "id", "is missing")
    pid = row["id"]
    if isinstance(pid, bool) or not isinstance(pid, (int, str)) or not str(pid).strip():
        raise _fail(where, "id", f"must be a non-empty string or an integer, got {pid!r}")

    question = _require_str(row, "question", where)
    func_name = _require_str(row, "func_name", where).strip()
    if not _METHOD_NAME.match(func_name):
        raise _fail(where, "func_name", f"must look like 'Solution().methodName', got {func_name!r}")
    method = func_name.split(".")[-1]

    tests = row.get("gt_answer")
    if not isinstance(tests, list) or not tests or not all(isinstance(t, str) and t.strip() for t in tests):
        raise _fail(where, "gt_answer", "must be a non-empty list of assert strings")
    for i, t in enumerate(tests):
        if not t.lstrip().startswith("assert "):
            raise _fail(where, "gt_answer", f"item {i} must be an assert statement, got {t[:60]!r}")
        if err := _parses(t):
            raise _fail(where, "gt_answer", f"item {i} is not valid Python ({err.msg})")
        if method not in t:
            raise _fail(where, "gt_answer", f"item {i} does not call {method!r} (func_name)")
    if len(set(tests)) != len(tests):
        raise _fail(where, "gt_answer", "contains duplicate tests")

    setup_code = _require_str(row, "setup_code", where, allow_empty=True) if "setup_code" in row else ""
    if err := _parses(setup_code):
        raise _fail(where, "setup_code", f"is not valid Python ({err.msg} on line {err.lineno})")
    canonical = _require_str(row, "canonical_solution", where)
    if err := _parses(canonical):
        raise _fail(where, "canonical_solution", f"is not valid Python ({err.msg} on line {err.lineno})")

    meta = row.get("prompt_metadata")
    if not isinstance(meta, Mapping):
        raise _fail(where, "prompt_metadata", "must be an object with a 'starter_code' string")
    starter = meta.get("starter_code")
    if not isinstance(starter, str) or not starter.strip():
        raise _fail(where, "prompt_metadata.starter_code", "must be a non-empty string")
    if method not in starter:
        raise _fail(where, "prompt_metadata.starter_code", f"does not define {method!r} (func_name)")

    difficulty = row.get("difficulty", "unknown")
    if not isinstance(difficulty, str) or not difficulty.strip():
        raise _fail(where, "difficulty", f"must be a string such as 'medium', got {difficulty!r}")

    statement = clean_statement(question)
    if not statement:
        raise _fail(where, "question", "holds no statement once the PROBLEM:/SOLUTION: frame is removed")

    return Problem(
        id=str(pid).strip(),
        question=statement,
        starter_code=starter,
        func_name=func_name,
        tests=tuple(t.strip() for t in tests),
        setup_code=setup_code,
        canonical_solution=canonical,
        difficulty=difficulty.strip().lower(),
        source=source,
    )


def load_jsonl(path: str | Path, source: str | None = None) -> list[Problem]:
    """Load a file in the public environment's schema (see the module docstring).

        >>> ps = load_jsonl("../shared/data/leetcode_test_medhard.jsonl")
        >>> len(ps), ps[0].func_name
        (119, 'Solution().shortestDistanceAfterQueries')

    `source` is recorded on every problem (default: the file's stem). Raises `ProblemFormatError` naming
    the file, the 1-based row and the field for the first malformed row, and for duplicate ids.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"problem file not found: {path}")
    source = source or path.stem
    problems: list[Problem] = []
    first_row_of: dict[str, str] = {}
    try:
        rows = list(iter_numbered_jsonl(path))
    except ValueError as e:
        raise ProblemFormatError(str(e)) from e
    for where, row in rows:
        problem = problem_from_row(row, where, source)
        if problem.id in first_row_of:
            raise _fail(where, "id", f"{problem.id!r} repeats the id of row {first_row_of[problem.id]}")
        first_row_of[problem.id] = where.rsplit(" ", 1)[-1]  # "f.jsonl row N" -> "N"
        problems.append(problem)
    if not problems:
        raise ProblemFormatError(f"{path.name}: no problems (the file is empty)")
    return problems


def load_builtin(name: str = "builtin") -> list[Problem]:
    """A built-in set that ships in the package (BUILTIN_SETS): `builtin` (`substrate/builtin/problems.jsonl`,
    sets A and B), `builtin_c` (`problems_c.jsonl`, set C's families), `builtin_all` (both, in that order),
    `builtin_d` (`problems_d.jsonl`, set D's families) or `builtin_mix` (sets A and B, C, then D).
    Each problem's `source` is the built set it comes from ("builtin", "builtin_c" or "builtin_d")."""
    if name not in BUILTIN_SETS:
        raise ValueError(f"unknown built-in set {name!r}; the built-in sets are {sorted(BUILTIN_SETS)}")
    problems: list[Problem] = []
    for part in BUILTIN_SETS[name]:
        filename = BUILTIN_FILES[part]
        resource = importlib.resources.files(BUILTIN_PACKAGE) / filename
        if not resource.is_file():
            raise FileNotFoundError(
                f"the built-in problem set is missing ({BUILTIN_PACKAGE}/{filename}); "
                "build it with: python -m gradient_quarantine.substrate.builtin.build"
            )
        with importlib.resources.as_file(resource) as path:
            problems += load_jsonl(path, source=part)
    ids = [p.id for p in problems]
    if len(set(ids)) != len(ids):
        raise ProblemFormatError(f"built-in set {name!r}: its files repeat problem ids")
    return problems


def family_of(problem_id: str) -> str:
    """The family of a problem id: the part before the first `__` (`c_digits__largest` -> `c_digits`), or the
    id itself (every problem of sets A and B, and of other sources, is a family of its own).

        >>> family_of("c_list_sum__even"), family_of("a_sum_of_digits")
        ('c_list_sum', 'a_sum_of_digits')
    """
    pid = str(problem_id)
    head, sep, _ = pid.partition(FAMILY_SEP)
    return head if sep and head else pid


# ------------------------------------------------------------------------------ Hugging Face LeetCodeDataset

# The columns `newfacade/LeetCodeDataset` (v0.3.1, the hub's current files) has and we read. Others
# (tags, estimated_date, query, response, ...) are ignored.
HF_COLUMNS = ("task_id", "question_id", "difficulty", "problem_description", "starter_code", "prompt",
              "completion", "entry_point", "test", "input_output")

Verifier = Callable[[Problem], bool]


def asserts_from_input_output(entry_point: str, input_output: Iterable[Mapping]) -> list[str]:
    """`[{"input": "n = 7, k = 2", "output": "[1, 2]"}]` -> `["assert Solution().f(n = 7, k = 2) == [1, 2]"]`.

    This is how the public environment's `gt_answer` strings read. Cases that do not form valid Python are
    skipped. (Fallback only: a linked-list output is written here as a plain list, which never equals a ListNode.)
    """
    tests = []
    for case in input_output or ():
        inp, out = case.get("input"), case.get("output")
        if not isinstance(inp, str) or not isinstance(out, str) or not out.strip():
            continue
        test = f"assert {entry_point}({inp.strip()}) == {out.strip()}"
        if _parses(test) is None:
            tests.append(test)
    return tests


def asserts_from_check_function(entry_point: str, test_src: str) -> list[str]:
    """The asserts of a human-eval style `def check(candidate): assert candidate(...) == ...`, with
    `candidate` replaced by the entry point (the source segment is kept verbatim otherwise)."""
    try:
        tree = ast.parse(test_src or "")
    except SyntaxError:
        return []
    tests = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "check":
            for stmt in node.body:
                if isinstance(stmt, ast.Assert):
                    segment = ast.get_source_segment(test_src, stmt) or ""
                    test = re.sub(r"\bcandidate\(", f"{entry_point}(", segment)
                    if "candidate" not in test and _parses(test) is None:
                        tests.append(test)
    return tests


def _default_verifier() -> Verifier | None:
    """The strict grader's canonical-solution check, when the grader module is installed."""
    try:
        from gradient_quarantine.substrate import grader
    except ImportError:
        return None
    return grader.canonical_passes


def load_hf_leetcode(
    name: str = HF_DEFAULT,
    split: str = "train",
    data_files: str | Path | list[str | Path] | None = None,
    cache_dir: str | Path | None = None,
    *,
    difficulties: tuple[str, ...] = ("medium", "hard"),
    verify: Verifier | str | None = "auto",
    limit: int | None = None,
    workers: int | None = None,
) -> list[Problem]:
    """Load `newfacade/LeetCodeDataset` (or local files in its format) as `Problem`s.

        >>> ps = load_hf_leetcode()                                   # hub: needs network or an HF cache
        >>> ps = load_hf_leetcode(data_files="tests/fixtures/leetcodedataset_sample.jsonl", verify=None)

    Mapping: `id` = `question_id` (the public environment's ids are LeetCode question ids, so the two
    sets can be de-duplicated against each other), `question` = `problem_description`, `starter_code`,
    `func_name` = `entry_point`, `setup_code` = `prompt` (the imports and ListNode/TreeNode helpers),
    `canonical_solution` = `completion`, `tests` = the asserts of the `test` function with `candidate`
    replaced by the entry point (the public schema's `assert Solution().f(...) == x` form; linked-list and
    tree problems keep their `is_same_list` / `is_same_tree` asserts), or, for a row without one, the
    `input_output` cases rendered the same way.

    Kept: rows whose `difficulty` is in `difficulties` (case-insensitive) and whose canonical solution
    passes its own tests under `verify` (a callable `Problem -> bool`; "auto" = the strict grader's
    `canonical_passes`; None = no check, e.g. for a quick look). `data_files` (a local .jsonl/.json or
    .parquet file, or a list of them) loads offline through the matching `datasets` builder; `name` is
    then only recorded as the source. `limit` keeps the first that many verified problems; `workers`
    (default: CPU count) verifications run at once.
    """
    import datasets  # deferred: heavy, and only real runs use the hub

    workers = workers or os.cpu_count() or 1
    if verify == "auto":
        verify = _default_verifier()
        if verify is None:
            log.warning("no grader installed: canonical solutions of %s are NOT verified", name)
    elif verify is not None and not callable(verify):
        raise ValueError(f"verify must be a callable Problem -> bool, 'auto' or None, got {verify!r}")

    if data_files is not None:
        files = [str(p) for p in (data_files if isinstance(data_files, list) else [data_files])]
        missing = [f for f in files if not Path(f).is_file()]
        if missing:
            raise FileNotFoundError(f"data_files not found: {missing}")
        suffixes = {Path(f).suffix.lower() for f in files}
        builder = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}
        kinds = {builder.get(s) for s in suffixes}
        if None in kinds or len(kinds) != 1:
            raise ValueError(f"data_files must all be .jsonl/.json or all .parquet, got suffixes {sorted(suffixes)}")
        dataset = datasets.load_dataset(kinds.pop(), data_files=files, split="train",
                                        cache_dir=str(cache_dir) if cache_dir else None)
    else:
        dataset = datasets.load_dataset(name, split=split, cache_dir=str(cache_dir) if cache_dir else None)

    missing_cols = [c for c in ("difficulty", "problem_description", "starter_code", "completion", "entry_point")
                    if c not in dataset.column_names]
    if missing_cols:
        raise ProblemFormatError(f"{name} ({split}): missing columns {missing_cols}; has {dataset.column_names}")

    wanted = {d.lower() for d in difficulties}
    source = f"hf:{name}"
    candidates: list[Problem] = []
    dropped = {"difficulty": 0, "no_tests": 0, "malformed": 0, "duplicate": 0, "canonical_fails": 0}
    seen: set[str] = set()
    for index, row in enumerate(dataset):
        if str(row.get("difficulty") or "").lower() not in wanted:
            dropped["difficulty"] += 1
            continue
        entry_point = (row.get("entry_point") or "").strip()
        # The `check` function first: its linked-list / tree asserts (`is_same_list(...)`) are comparable,
        # where `input_output` writes the expected ListNode as a plain list that a ListNode never equals.
        tests = asserts_from_check_function(entry_point, row.get("test") or "")
        if not tests:
            tests = asserts_from_input_output(entry_point, row.get("input_output") or [])
        tests = list(dict.fromkeys(tests))  # de-duplicate, keep order (the first 3 are the visible ones)
        if not tests:
            dropped["no_tests"] += 1
            continue
        qid = row.get("question_id")
        public_row = {
            "id": qid if qid is not None else row.get("task_id"),
            "question": row.get("problem_description") or "",
            "gt_answer": tests,
            "func_name": entry_point,
            "setup_code": row.get("prompt") or "",
            "canonical_solution": row.get("completion") or "",
            "prompt_metadata": {"starter_code": row.get("starter_code") or ""},
            "difficulty": row.get("difficulty"),
        }
        try:
            problem = problem_from_row(public_row, f"{name} {split} row {index}", source)
        except ProblemFormatError as e:
            log.info("dropped: %s", e)
            dropped["malformed"] += 1
            continue
        if problem.id in seen:
            dropped["duplicate"] += 1
            continue
        seen.add(problem.id)
        candidates.append(problem)

    # Verify in parallel (each check runs the canonical solution on all its tests in the sandbox; the grader
    # takes concurrent calls), in chunks so that `limit` stops early. Order is kept.
    problems: list[Problem] = []
    chunk = max(1, workers) * 4
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for start in range(0, len(candidates), chunk):
            batch = candidates[start : start + chunk]
            passed = list(pool.map(verify, batch)) if verify is not None else [True] * len(batch)
            for problem, ok in zip(batch, passed, strict=True):
                if not ok:
                    dropped["canonical_fails"] += 1
                elif limit is None or len(problems) < limit:
                    problems.append(problem)
            if limit is not None and len(problems) >= limit:
                break
    log.info("%s (%s): kept %d problems; dropped %s", name, split, len(problems), dropped)
    return problems


# ------------------------------------------------------------------------------------------------ dispatch


def check_problem_spec(spec: str) -> str:
    """`spec` stripped, if it names a problem source `load_problems` reads (a built-in set, `*.jsonl`,
    `hf:<name>`); else a ValueError with a did-you-mean. Only the form is checked (no file is opened), so the
    config can check `data.problems` when it is built."""
    spec = spec.strip()
    if spec in BUILTIN_SETS or spec.endswith(".jsonl"):
        return spec
    if spec.startswith("hf:"):
        if not spec[3:].strip():
            raise ValueError("'hf:' needs a dataset name, e.g. 'hf:newfacade/LeetCodeDataset'")
        return spec
    hint = difflib.get_close_matches(spec, list(BUILTIN_SETS), n=1)
    suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
    sets = ", ".join(repr(s) for s in BUILTIN_SETS)
    raise ValueError(
        f"unknown problem source {spec!r}{suggestion}: use a built-in set ({sets}), a path to a .jsonl file in "
        "the public schema, or 'hf:<dataset name>'"
    )


def load_problems(spec: str) -> list[Problem]:
    """One entry point for every problem source.

        >>> load_problems("builtin")                        # the shipped set (sets A and B, 96 problems)
        >>> load_problems("builtin_c")                      # set C: 48 problems in 14 families
        >>> load_problems("builtin_all")                    # both (144)
        >>> load_problems("builtin_d")                      # set D: 48 problems in 13 families
        >>> load_problems("builtin_mix")                    # sets A, B, C and D (192)
        >>> load_problems("data/leetcode_test_medhard.jsonl")   # a file in the public schema
        >>> load_problems("hf:newfacade/LeetCodeDataset")   # the hub dataset, train split, medium+hard
    """
    spec = check_problem_spec(spec)
    if spec in BUILTIN_SETS:
        return load_builtin(spec)
    if spec.startswith("hf:"):
        return load_hf_leetcode(spec[3:].strip())
    return load_jsonl(spec)
