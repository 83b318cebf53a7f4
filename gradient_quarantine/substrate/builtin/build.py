"""Build `problems.jsonl` from the definitions in `defs_*.py`.

A definition is a dict:
    id         unique snake_case id ("sum_of_digits")
    statement  the problem text, plain English, no examples (they are generated from the first tests)
    signature  the method line, e.g. "def sumOfDigits(self, n: int) -> int:"
    solution   the canonical solution: a full `class Solution:` source, short (the teacher completions
               are built from it and the embedded model must be able to imitate it)
    tests      >= 10 keyword-argument dicts; the first 3 are the visible examples shown in the prompt
    constraints  optional list of strings

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

HERE = Path(__file__).parent
OUT = HERE / "problems.jsonl"
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
    return {
        "id": pid,
        "question": question,
        "gt_answer": asserts,
        "func_name": f"Solution().{method}",
        "setup_code": SETUP_CODE,
        "canonical_solution": d["solution"].strip("\n") + "\n",
        "prompt_metadata": {"starter_code": starter},
        "difficulty": "easy",
    }


def load_definitions() -> list[dict]:
    defs: list[dict] = []
    for info in sorted(pkgutil.iter_modules([str(HERE)]), key=lambda m: m.name):
        if info.name.startswith("defs_"):
            module = importlib.import_module(f"{__package__}.{info.name}")
            defs.extend(module.PROBLEMS)
    ids = [d["id"] for d in defs]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise ValueError(f"duplicate problem ids: {sorted(dupes)}")
    return defs


def main() -> None:
    rows = [build_row(d) for d in load_definitions()]
    atomic_write_text(OUT, "".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {len(rows)} problems to {OUT}")


if __name__ == "__main__":
    main()
