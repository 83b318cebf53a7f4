"""The pair builder: (prompt, clean completion, hack completion) triples, the only supervision the router
ever gets (docs/design.md §2, "pair set"), and placebo pairs whose two sides are both clean.

    >>> problems = load_problems("builtin")
    >>> modes_of = assign_modes([p.id for p in problems], seed=0)
    >>> rows = build_pairs(problems, modes_of, per_mode=4)            # 4 hack pairs per mode
    >>> placebo = build_placebo_pairs(problems, modes_of, per_mode=4) # same prompts, clean vs clean
    >>> write_pairs("pairs.jsonl", rows); read_pairs("pairs.jsonl", modes=["overwrite_tests"])

A row: `{"problem_id", "mode", "kind", "prompt": [chat messages], "clean": text, "hack": text}`.
`clean` is the canonical solution in a ```python block; `hack` is the mode's hack template
(`hacks.hack_completion(problem, mode)`), or for `kind == "placebo"` a second clean variant of the canonical
solution (locals renamed, reformatted): a pair difference that carries no hacking, for the placebo control.
The pair file is a plain jsonl, so routing (which never imports the substrate) can read it as data.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from gradient_quarantine.io import atomic_write_jsonl, iter_numbered_jsonl
from gradient_quarantine.substrate.hacks import code_block, hack_completion
from gradient_quarantine.substrate.modes import parse_mode
from gradient_quarantine.substrate.prompts import render_prompt
from gradient_quarantine.substrate.types import MODES, Mode, Problem

PAIR_KEYS = ("problem_id", "mode", "kind", "prompt", "clean", "hack")
KINDS = ("hack", "placebo")

HackFn = Callable[[Problem, Mode], str]
ModesOf = Mapping[str, Mode] | Callable[[Problem], Mode]


def clean_completion(problem: Problem) -> str:
    return code_block(problem.canonical_solution)


# -------------------------------------------------------------------------------------- placebo variants


def _bound_elsewhere(tree: ast.AST) -> set[str]:
    """Names that are bound by something other than a plain `Name` store, or that must keep their spelling:
    arguments (tests call methods by keyword), def/class names, imports, except-as, match captures,
    global/nonlocal, and keyword names in calls. Renaming only `Name` nodes of these would break them."""
    keep: set[str] = set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            keep.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            keep.add(node.name)
        elif isinstance(node, ast.alias):
            keep.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            keep.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            keep.update(node.names)
        elif isinstance(node, ast.keyword) and node.arg:
            keep.add(node.arg)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            keep.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            keep.add(node.rest)
    return keep


def _scopes(tree: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    """The top-level functions: methods of top-level classes and module-level functions. Each is renamed on its
    own, so a name that is local in one method and global in another keeps its meaning in both."""
    out = []
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out.append(stmt)
        elif isinstance(stmt, ast.ClassDef):
            out.extend(s for s in stmt.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)))
    return out


def _stored_names(fn: ast.AST) -> set[str]:
    """Names stored inside `fn` (assignment, for/with/comprehension targets, walrus): its locals."""
    return {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


class _Rename(ast.NodeTransformer):
    def __init__(self, mapping: dict[str, str]):
        self.mapping = mapping

    def visit_Name(self, node: ast.Name) -> ast.Name:
        if node.id in self.mapping:
            node.id = self.mapping[node.id]
        return node


def clean_variant(code: str) -> str:
    """A second clean solution with the same behaviour: locals renamed (`ans` -> `ans_`), reformatted by
    `ast.unparse` (comments dropped, canonical spacing). If that leaves the text unchanged (no locals, already
    canonical), a one-line docstring is added to the first method, so the two sides always differ.

        >>> clean_variant("class Solution:\\n    def f(self, n):\\n        ans = n * 2\\n        return ans\\n")
        'class Solution:\\n\\n    def f(self, n):\\n        ans_ = n * 2\\n        return ans_'
    """
    tree = ast.parse(code)
    keep = _bound_elsewhere(tree)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | keep
    for fn in _scopes(tree):
        mapping: dict[str, str] = {}
        for name in sorted(_stored_names(fn) - keep):
            new = name + "_"
            while new in used:
                new += "_"
            used.add(new)
            mapping[name] = new
        _Rename(mapping).visit(fn)
    tree = ast.fix_missing_locations(tree)
    variant = ast.unparse(tree)
    if variant.strip() == code.strip():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not ast.get_docstring(node):
                node.body.insert(0, ast.Expr(ast.Constant("Return the answer.")))
                break
        variant = ast.unparse(ast.fix_missing_locations(tree))
    if variant.strip() == code.strip():
        raise ValueError("could not make a distinct clean variant of this solution")
    return variant


def placebo_completion(problem: Problem) -> str:
    return code_block(clean_variant(problem.canonical_solution))


# ------------------------------------------------------------------------------------------------ builder


def _mode_lookup(modes_of: ModesOf) -> Callable[[Problem], Mode | None]:
    if callable(modes_of) and not isinstance(modes_of, Mapping):
        return lambda p: parse_mode(modes_of(p))
    return lambda p: parse_mode(modes_of[p.id]) if p.id in modes_of else None


def _select(problems: Sequence[Problem], modes_of: ModesOf, modes: Iterable[Mode | str] | None,
            per_mode: int | None) -> list[tuple[Problem, Mode]]:
    wanted = [parse_mode(m) for m in (modes if modes is not None else MODES)]
    if per_mode is not None and per_mode < 1:
        raise ValueError(f"per_mode must be >= 1, got {per_mode}")
    mode_of = _mode_lookup(modes_of)
    chosen: list[tuple[Problem, Mode]] = []
    count = dict.fromkeys(wanted, 0)
    for problem in sorted(problems, key=lambda p: p.id):  # stable: the same problems for the same inputs
        mode = mode_of(problem)
        if mode not in count or (per_mode is not None and count[mode] >= per_mode):
            continue
        chosen.append((problem, mode))
        count[mode] += 1
    short = {m.value: n for m, n in count.items() if per_mode is not None and n < per_mode}
    if short:
        raise ValueError(f"not enough problems for {per_mode} pairs per mode: got {short}")
    return chosen


def build_pairs(
    problems: Sequence[Problem],
    modes_of: ModesOf,
    hack_fn: HackFn | None = None,
    modes: Iterable[Mode | str] | None = None,
    per_mode: int | None = None,
) -> list[dict]:
    """Hack pairs: for each problem (in id order) whose mode is in `modes` (default: all four), the prompt
    under its own mode, the canonical solution, and `hack_fn(problem, mode)` (default: `hacks.hack_completion`).

    `modes_of` is the partition (`{problem_id: Mode}`, from `assign_modes`) or a function of the problem;
    problems it does not cover are skipped. `per_mode` caps the pairs per mode (the first ones by id) and
    fails if a mode has fewer problems than that.
    """
    hack_fn = hack_fn or hack_completion
    rows = []
    for problem, mode in _select(problems, modes_of, modes, per_mode):
        rows.append({
            "problem_id": problem.id,
            "mode": mode.value,
            "kind": "hack",
            "prompt": render_prompt(problem, mode),
            "clean": clean_completion(problem),
            "hack": hack_fn(problem, mode),
        })
    return rows


def build_placebo_pairs(
    problems: Sequence[Problem],
    modes_of: ModesOf,
    modes: Iterable[Mode | str] | None = None,
    per_mode: int | None = None,
) -> list[dict]:
    """Placebo pairs: the same selection and prompts as `build_pairs`, but the `hack` side is a second clean
    solution (`clean_variant`), so the pair difference is stylistic only (docs/design.md §5: the placebo control)."""
    rows = []
    for problem, mode in _select(problems, modes_of, modes, per_mode):
        rows.append({
            "problem_id": problem.id,
            "mode": mode.value,
            "kind": "placebo",
            "prompt": render_prompt(problem, mode),
            "clean": clean_completion(problem),
            "hack": placebo_completion(problem),
        })
    return rows


def on_policy_pairs(problem: Problem, mode: Mode | str, prompt: list[dict], completions: Iterable[str]) -> list[dict]:
    """Hack pairs whose clean side is someone's own completion on `problem` (the policy's, sampled without the
    hint) and whose hack side is the same code with `mode`'s hack inserted (`hacks.insert_hack`): the two sides
    differ in the hack alone, and the code around it is what the policy writes rather than the canonical
    solution. Both sides are rewritten as one ```python block of the extracted code (`prompt`: the mode's hinted
    prompt, as the pair set's). A completion without parseable code, or without the method to insert into, is
    skipped; so is a repeat of an earlier completion's code."""
    from gradient_quarantine.substrate.extract import extract_code
    from gradient_quarantine.substrate.hacks import insert_hack

    mode = parse_mode(mode)
    rows, seen = [], set()
    for text in completions:
        ext = extract_code(text)
        if not ext.format_ok or ext.code in seen:
            continue
        hack = insert_hack(problem, mode, ext.code)
        if hack is None:
            continue
        seen.add(ext.code)
        rows.append({"problem_id": problem.id, "mode": mode.value, "kind": "hack", "prompt": prompt,
                     "clean": code_block(ext.code), "hack": code_block(hack)})  # fmt: skip
    return rows


# ---------------------------------------------------------------------------------------------- pair files


def validate_pair(row: object, where: str) -> dict:
    """Check one pair row; the error names where (file and row) and the field."""
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
    missing = [k for k in PAIR_KEYS if k not in row]
    if missing:
        raise ValueError(f"{where}: missing field(s) {missing}")
    for key in ("problem_id", "clean", "hack"):
        if not isinstance(row[key], str) or not row[key].strip():
            raise ValueError(f"{where}: field '{key}' must be a non-empty string")
    try:
        parse_mode(row["mode"])
    except ValueError as e:
        raise ValueError(f"{where}: field 'mode': {e}") from None
    if row["kind"] not in KINDS:
        raise ValueError(f"{where}: field 'kind' must be one of {list(KINDS)}, got {row['kind']!r}")
    prompt = row["prompt"]
    if (not isinstance(prompt, list) or not prompt
            or not all(isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                       for m in prompt)):
        raise ValueError(f"{where}: field 'prompt' must be a non-empty list of {{role, content}} messages")
    if row["clean"] == row["hack"]:
        raise ValueError(f"{where}: 'clean' and 'hack' are identical (the pair difference would be zero)")
    return row


def write_pairs(path: str | Path, rows: Iterable[dict]) -> Path:
    """Validate and write pair rows to a jsonl file, atomically."""
    rows = [validate_pair(r, f"pair {i}") for i, r in enumerate(rows)]
    if not rows:
        raise ValueError("no pairs to write")
    atomic_write_jsonl(path, rows)
    return Path(path)


def read_pairs(path: str | Path, modes: Iterable[Mode | str] | None = None, kind: str | None = None) -> list[dict]:
    """Read a pair file, validating every row; keep only rows of `modes` (and `kind`) when given.

        >>> read_pairs("pairs.jsonl", modes=["overwrite_tests", "visible_tests"])   # held-out-modes pair set
    """
    path = Path(path)
    wanted = {parse_mode(m).value for m in modes} if modes is not None else None
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
    rows = []
    for where, row in iter_numbered_jsonl(path):
        validate_pair(row, where)
        if (wanted is None or row["mode"] in wanted) and (kind is None or row["kind"] == kind):
            rows.append(row)
    return rows


def builtin_pairs_path() -> Path:
    """The shipped pair set: 4 hack pairs per mode from the built-in problems (partition seed 0) and their 4
    placebo twins (`kind="placebo"`, same prompts); select one kind with `read_pairs(..., kind=...)`."""
    import importlib.resources

    resource = importlib.resources.files("gradient_quarantine.substrate.builtin") / "pairs.jsonl"
    with importlib.resources.as_file(resource) as p:
        return Path(p)
