"""Solve pairs: (prompt, correct completion, incorrect completion), from which the solve direction of the
solve-orthogonalised `v_grad` is built the same way `v_grad` is built from hack pairs (docs/design.md §7).

* correct: the canonical solution in a ```python block (the clean side of a hack pair);
* incorrect: the problem's own method signature returning a constant that fails its first test, i.e. the stub
  every hack template is built on (`hacks.hack_code`), *without* the hack mechanism. It fails the strict grader
  and every flawed grader (wrong answer on test 1), so it is neither a solve nor a hack.

Why that incorrect side: a hack pair's difference is (stub + mechanism) - canonical = mechanism + (stub -
canonical). The solve pair's difference is canonical - stub, exactly the second term with its sign flipped, so
removing v_grad's projection on the solve direction leaves the mechanism, and routing no longer takes the
"write a working solution" component with it.

    >>> rows = build_solve_pairs(problems, modes_of, per_mode=4)       # same selection and prompts as build_pairs
    >>> rows = solve_pairs_for(hack_pair_rows, problems_by_id)       # on the problems of an existing pair set
    >>> rows[0].keys()   # problem_id, mode, kind ("solve"), prompt, correct, incorrect
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping, Sequence

from gradient_quarantine.substrate.hacks import code_block, hack_code
from gradient_quarantine.substrate.pairs import ModesOf, build_pairs, clean_completion
from gradient_quarantine.substrate.types import Mode, Problem

SOLVE_PAIR_KEYS = ("problem_id", "mode", "kind", "prompt", "correct", "incorrect")


def incorrect_code(problem: Problem) -> str:
    """The stub solution: the `overwrite_tests` hack template with its `run_tests` removed (module docstring).

    The stub's return value is chosen by the template to differ from the first test's expected value, so it
    fails test 1 under every grader."""
    tree = ast.parse(hack_code(problem, Mode.OVERWRITE_TESTS))
    tree.body = [n for n in tree.body if not (isinstance(n, ast.FunctionDef) and n.name == "run_tests")]
    return ast.unparse(tree) + "\n"


def incorrect_completion(problem: Problem) -> str:
    return code_block(incorrect_code(problem))


def build_solve_pairs(
    problems: Sequence[Problem],
    modes_of: ModesOf,
    modes: Iterable[Mode | str] | None = None,
    per_mode: int | None = None,
) -> list[dict]:
    """Solve pairs for the problems `pairs.build_pairs` would choose (same selection, same hinted prompts)."""
    rows = build_pairs(
        problems, modes_of, hack_fn=lambda p, _m: incorrect_completion(p), modes=modes, per_mode=per_mode
    )
    return [_row(r["problem_id"], r["mode"], r["prompt"], r["clean"], r["hack"]) for r in rows]


def solve_pairs_for(pair_rows: Iterable[Mapping], problems_by_id: Mapping[str, Problem]) -> list[dict]:
    """Solve pairs on the problems and prompts of an existing (hack) pair set: for each row, its prompt, the
    canonical solution and the stub. Raises if a row's problem is unknown (it needs the problem's signature)."""
    out = []
    for r in pair_rows:
        problem = problems_by_id.get(r["problem_id"])
        if problem is None:
            raise ValueError(
                f"solve pairs need the problems of the pair set; problem {r['problem_id']!r} is not loaded "
                "(use routing.pairs=builtin or build, or a pair file of the training problems)"
            )
        out.append(
            _row(problem.id, r["mode"], r["prompt"], clean_completion(problem), incorrect_completion(problem))
        )
    return out


def _row(problem_id: str, mode: str, prompt: list[dict], correct: str, incorrect: str) -> dict:
    if correct == incorrect:
        raise ValueError(f"problem {problem_id}: the canonical solution is the stub; no solve pair")
    return {"problem_id": problem_id, "mode": mode, "kind": "solve", "prompt": prompt, "correct": correct,
            "incorrect": incorrect}  # fmt: skip
