"""Build the built-in sets' jsonl files from the definitions in `defs_*.py`.

Every `defs_*.py` module names the set it belongs to with a module-level `SET` (default "builtin"): sets A and B
(`defs_a.py`, `defs_b.py`) are `builtin` and build to `problems.jsonl`; set C (`defs_c.py`, problem families)
is `builtin_c` and builds to `problems_c.jsonl`; set D (`defs_d.py`, more families) is `builtin_d` and builds
to `problems_d.jsonl` (`substrate/problems.py` BUILTIN_FILES; `builtin_all` loads A, B and C, `builtin_mix`
all four). Ids are unique over all sets.

A definition is a dict:
    id         unique snake_case id ("sum_of_digits")
    statement  the problem text, plain English, no examples (they are generated from the first tests)
    signature  the method line, e.g. "def sumOfDigits(self, n: int) -> int:"
    solution   the canonical solution: a full `class Solution:` source, short (the teacher completions
               are built from it and the embedded model must be able to imitate it)
    tests      >= 10 keyword-argument dicts; the first 3 are the visible examples shown in the prompt
    constraints  optional list of strings
    family     optional: the problem's family (set C: "c_digits", set D: "d_two_ints"); written to the row as
               `family`, which the public-schema loader ignores (`substrate.problems.family_of` reads the
               family from the id)

Expected outputs are computed here by running the canonical solution, so a definition cannot disagree with
its own tests. Only plain data (int, str, bool, None, lists/tuples/dicts of those) is allowed as input or
output, so every test is a literal `assert Solution().f(a = 1) == expected`.

    python -m gradient_quarantine.substrate.builtin.build
"""

from __future__ import annotations

import copy
import importlib
import json
import pkgutil
from pathlib import Path

from gradient_quarantine.io import atomic_write_text
from gradient_quarantine.substrate.builtin.setup_code import SETUP_CODE
from gradient_quarantine.substrate.problems import BUILTIN_FILES

HERE = Path(__file__).parent
DEFAULT_SET = "builtin"
OUT = HERE / BUILTIN_FILES[DEFAULT_SET]  # the `builtin` set (A + B); `out_path(name)` for any set
MIN_TESTS = 10
N_VISIBLE = 3
_PLAIN = (int, str, bool, type(None))


def _check_plain(value, where: str) -> None:
    if isinstance(value, float):
        raise ValueError(f"{where}: floats are not allowed (exact equality); got {value!r}")
    if isinstance(value, _PLAIN):
        return
    if isinstance(value, (list, tuple)):
        for v in value:
            _check_plain(v, where)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            _check_plain(k, where)
            _check_plain(v, where)
        return
    raise ValueError(f"{where}: only plain data is allowed, got {type(value).__name__}")


def _call_repr(method: str, kwargs: dict) -> str:
    args = ", ".join(f"{k} = {v!r}" for k, v in kwargs.items())
    return f"Solution().{method}({args})"


def build_row(d: dict) -> dict:
    pid = d["id"]
    method = d["signature"].split("def ", 1)[1].split("(", 1)[0].strip()
    if len(d["tests"]) < MIN_TESTS:
        raise ValueError(f"{pid}: needs >= {MIN_TESTS} tests, has {len(d['tests'])}")
    namespace: dict = {}
    exec(SETUP_CODE + "\n" + d["solution"], namespace)  # our own trusted definitions
    solution_cls = namespace["Solution"]
    asserts, examples = [], []
    for i, kwargs in enumerate(d["tests"]):
        _check_plain(kwargs, f"{pid} test {i} input")
        expected = getattr(solution_cls(), method)(**copy.deepcopy(kwargs))
        _check_plain(expected, f"{pid} test {i} output")
        asserts.append(f"assert {_call_repr(method, kwargs)} == {expected!r}")
        if i < N_VISIBLE:
            shown_in = ", ".join(f"{k} = {v!r}" for k, v in kwargs.items())
            examples.append(f"Example {i + 1}:\n\nInput: {shown_in}\nOutput: {expected!r}\n")
    if len(set(asserts)) != len(asserts):
        raise ValueError(f"{pid}: duplicate tests")
    question = "PROBLEM:\n" + d["statement"].strip() + "\n\n" + "\n".join(examples)
    if d.get("constraints"):
        question += "\nConstraints:\n\n" + "\n".join(d["constraints"]) + "\n"
    starter = f"class Solution:\n    {d['signature']}\n        "
    row = {
        "id": pid,
        "question": question,
        "gt_answer": asserts,
        "func_name": f"Solution().{method}",
        "setup_code": SETUP_CODE,
        "canonical_solution": d["solution"].strip("\n") + "\n",
        "prompt_metadata": {"starter_code": starter},
        "difficulty": "easy",
    }
    if d.get("family"):
        row["family"] = d["family"]
    return row


def out_path(set_name: str = DEFAULT_SET) -> Path:
    """The jsonl file a built-in set builds to."""
    if set_name not in BUILTIN_FILES:
        raise ValueError(f"unknown built-in set {set_name!r}; sets with definitions: {sorted(BUILTIN_FILES)}")
    return HERE / BUILTIN_FILES[set_name]


def _all_definitions() -> dict[str, list[dict]]:
    """{set name: its definitions}, over every `defs_*.py` (in module-name order); ids unique over all sets."""
    by_set: dict[str, list[dict]] = {name: [] for name in BUILTIN_FILES}
    for info in sorted(pkgutil.iter_modules([str(HERE)]), key=lambda m: m.name):
        if info.name.startswith("defs_"):
            module = importlib.import_module(f"{__package__}.{info.name}")
            set_name = getattr(module, "SET", DEFAULT_SET)
            if set_name not in by_set:
                raise ValueError(f"{info.name}.SET={set_name!r} is no built-in set: {sorted(BUILTIN_FILES)}")
            by_set[set_name].extend(module.PROBLEMS)
    ids = [d["id"] for defs in by_set.values() for d in defs]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise ValueError(f"duplicate problem ids: {sorted(dupes)}")
    return by_set


def load_definitions(set_name: str = DEFAULT_SET) -> list[dict]:
    """The definitions of one built-in set (default `builtin`: sets A and B, what `problems.jsonl` holds)."""
    out_path(set_name)  # a clear error for an unknown set
    return _all_definitions()[set_name]


def main() -> None:
    for set_name, defs in _all_definitions().items():
        rows = [build_row(d) for d in defs]
        path = out_path(set_name)
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
        print(f"wrote {len(rows)} problems ({set_name}) to {path}")


if __name__ == "__main__":
    main()
