"""A problem's tests split into what the sandbox may see (the call) and what only the trusted parent sees (the
expected value), and the plain-data form both sides are compared in (docs/design.md §4, strict grader).

Test forms understood (all asserts of the public schema and of LeetCodeDataset):

    assert Solution().f(a = 1, b = [2]) == expected       ("eq": `==`, either side may hold the call)
    assert is_same_list(Solution().f(head = list_node([1, 2])), list_node([2, 1]))     ("same_list")
    assert is_same_tree(Solution().f(root = tree_node([1, None, 2])), tree_node([2, 1]))  ("same_tree")

    >>> cases = parse_tests(problem)                # cached per problem
    >>> cases[0].call, cases[0].expected_src
    ('Solution().sumOfDigits(n = 123)', '6')
    >>> expected_values(problem)[0]                 # evaluated here, with the problem's setup code
    6

`to_plain` is the single definition of "the value a test compares": builtins stay as they are (so `==` keeps
Python's semantics: `[1] != (1,)`, `1 == 1.0`), a linked list becomes `LinkedList(vals)`, a binary tree
`BinaryTree(level_order)`. The sandbox worker encodes outputs into exactly these shapes (`loads_output` reads them back).
"""

from __future__ import annotations

import ast
import hashlib
import json
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from gradient_quarantine.substrate.types import Problem

MAX_NODES = 1_000_000  # a longer linked list / tree is treated as not plain data (cycle or runaway)


class TestFormatError(ValueError):
    """A problem's test is not in a form the strict grader can split into call and expected value."""

    __test__ = False  # not a pytest test class


@dataclass(frozen=True)
class LinkedList:
    """A ListNode chain as plain data: the values head to tail."""

    vals: tuple


@dataclass(frozen=True)
class BinaryTree:
    """A TreeNode as plain data: LeetCode's level order with None for missing children, trailing Nones cut."""

    level_order: tuple


@dataclass(frozen=True)
class TestCase:
    __test__ = False  # not a pytest test class

    index: int  # 0-based position in problem.tests (the first 3 are the visible ones)
    source: str  # the assert as written (the eq_override grader runs exactly this)
    call: str  # source of the expression that calls the solution: the only part the strict sandbox sees
    expected_src: str  # source of the expected value: evaluated in the trusted parent only
    compare: str  # "eq" | "same_list" | "same_tree"
    args: tuple[tuple[str, str], ...]  # (keyword, value source) of the solution call, for hack templates


# ------------------------------------------------------------------------------------------------- parsing


def _is_solution_call(node: ast.AST, method: str) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == method
    )


def _contains_call(node: ast.AST, method: str) -> bool:
    return any(_is_solution_call(n, method) for n in ast.walk(node))


def _solution_call(node: ast.AST, method: str) -> ast.Call:
    for n in ast.walk(node):
        if _is_solution_call(n, method):
            return n  # type: ignore[return-value]
    raise AssertionError("unreachable: caller checked _contains_call")


def parse_test(source: str, method: str, index: int = 0) -> TestCase:
    """Split one assert string into call and expected expression (see the module docstring for the forms)."""
    try:
        tree = ast.parse(source.strip())
    except SyntaxError as e:
        raise TestFormatError(f"test {index + 1} is not valid Python: {e.msg}") from None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assert):
        raise TestFormatError(f"test {index + 1} is not a single assert statement: {source[:80]!r}")
    test = tree.body[0].test
    text = source.strip()

    def seg(node: ast.AST) -> str:
        return ast.get_source_segment(text, node) or ast.unparse(node)

    call_node: ast.AST
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq):
        left, right = test.left, test.comparators[0]
        in_left, in_right = _contains_call(left, method), _contains_call(right, method)
        if in_left == in_right:
            raise TestFormatError(
                f"test {index + 1}: exactly one side of == must call {method!r}: {source[:120]!r}"
            )
        call_node, expected_node = (left, right) if in_left else (right, left)
        compare = "eq"
    elif (
        isinstance(test, ast.Call)
        and isinstance(test.func, ast.Name)
        and test.func.id in ("is_same_list", "is_same_tree")
        and len(test.args) == 2
        and not test.keywords
    ):
        a, b = test.args
        if _contains_call(a, method) == _contains_call(b, method):
            raise TestFormatError(f"test {index + 1}: one argument of {test.func.id} must call {method!r}")
        call_node, expected_node = (a, b) if _contains_call(a, method) else (b, a)
        compare = "same_list" if test.func.id == "is_same_list" else "same_tree"
    else:
        raise TestFormatError(
            f"test {index + 1}: unsupported form (expected `assert <call> == <value>` or is_same_list/"
            f"is_same_tree): {source[:120]!r}"
        )
    inner = _solution_call(call_node, method)
    args = tuple((kw.arg or "**", seg(kw.value)) for kw in inner.keywords)
    args = tuple((f"_{i}", seg(a)) for i, a in enumerate(inner.args)) + args
    return TestCase(index, text, seg(call_node), seg(expected_node), compare, args)


def problem_key(problem: Problem) -> str:
    """A content hash of everything the grader uses from a problem (ids can repeat across sources)."""
    h = hashlib.sha1()
    for part in (problem.id, problem.func_name, problem.setup_code, *problem.tests):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


def setup_key(setup_code: str) -> str:
    return hashlib.sha1(setup_code.encode("utf-8", "surrogatepass")).hexdigest()[:16]


_lock = threading.Lock()
_parsed: dict[str, tuple[TestCase, ...]] = {}
_expected: dict[str, tuple[Any, ...]] = {}
_setup_ns: dict[str, dict] = {}


def parse_tests(problem: Problem) -> tuple[TestCase, ...]:
    """All tests of `problem`, parsed (cached by content). Raises TestFormatError for a malformed problem."""
    key = problem_key(problem)
    with _lock:
        if key in _parsed:
            return _parsed[key]
    if not problem.tests:
        raise TestFormatError(f"problem {problem.id} has no tests")
    cases = tuple(parse_test(t, problem.method_name, i) for i, t in enumerate(problem.tests))
    with _lock:
        _parsed[key] = cases
    return cases


def setup_namespace(setup_code: str) -> dict:
    """A fresh copy of the namespace the trusted setup code builds (helpers such as list_node, tree_node)."""
    key = setup_key(setup_code)
    with _lock:
        ns = _setup_ns.get(key)
    if ns is None:
        ns = {"__name__": "__gq_setup__"}
        exec(compile(setup_code, "<setup>", "exec"), ns)  # trusted: it comes with the dataset
        with _lock:
            _setup_ns[key] = ns
    return dict(ns)


def expected_values(problem: Problem) -> tuple[Any, ...]:
    """The expected value of every test in plain form (`to_plain`), evaluated in this (trusted) process."""
    key = problem_key(problem)
    with _lock:
        if key in _expected:
            return _expected[key]
    ns = None
    values = []
    for case in parse_tests(problem):
        try:
            value = ast.literal_eval(case.expected_src)  # fast path: almost every expected value is a literal
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            if ns is None:
                ns = setup_namespace(problem.setup_code)
            try:
                value = eval(case.expected_src, ns)  # -inf, list_node([...]), tree_node([...])
            except Exception as e:
                raise TestFormatError(
                    f"problem {problem.id} test {case.index + 1}: expected value {case.expected_src[:60]!r} "
                    f"does not evaluate ({type(e).__name__}: {e})"
                ) from None
        try:
            values.append(to_plain(value, case.compare))
        except TypeError as e:
            raise TestFormatError(f"problem {problem.id} test {case.index + 1}: {e}") from None
    out = tuple(values)
    with _lock:
        _expected[key] = out
    return out


# ------------------------------------------------------------------------------------------- plain values


def _linked_vals(node: Any) -> tuple:
    vals, seen = [], set()
    while node is not None:
        if id(node) in seen or len(vals) >= MAX_NODES:
            raise TypeError("linked list is cyclic or too long")
        seen.add(id(node))
        vals.append(to_plain(node.val))
        node = node.next
    return tuple(vals)


def _tree_level_order(root: Any) -> tuple:
    out: list = []
    queue = deque([root])
    count = 0
    while queue:
        node = queue.popleft()
        if node is None:
            out.append(None)
            continue
        count += 1
        if count > MAX_NODES:
            raise TypeError("tree is too large")
        out.append(to_plain(node.val))
        queue.append(node.left)
        queue.append(node.right)
    while out and out[-1] is None:
        out.pop()
    return tuple(out)


def to_plain(value: Any, compare: str = "eq") -> Any:
    """The comparable form of a trusted value (see the module docstring). TypeError for anything else."""
    t = type(value)
    if value is None or t in (bool, int, float, str):
        return value
    if t is list:
        return [to_plain(v) for v in value]
    if t is tuple:
        return tuple(to_plain(v) for v in value)
    if t is dict:
        return {to_plain(k): to_plain(v) for k, v in value.items()}
    if t in (set, frozenset):
        return t(to_plain(v) for v in value)
    if t.__name__ == "ListNode":
        return LinkedList(_linked_vals(value))
    if t.__name__ == "TreeNode":
        return BinaryTree(_tree_level_order(value))
    raise TypeError(f"expected value of type {t.__name__} is not plain data")


# Encoded output (what the worker writes, see _sandbox_worker.encode): JSON where arrays are lists and every
# object is a tag: {"t": [...]} tuple, {"d": [[k, v], ...]} dict, {"s": [...]} set, {"f": [...]} frozenset,
# {"L": [...]} linked list, {"T": [...]} tree level order. Numbers and strings are JSON's own
# (floats round-trip exactly; Infinity/NaN allowed as Python's json writes them).


class MalformedOutput(ValueError):
    """The sandbox sent something that is not a valid encoded output (only a tampering program does this)."""


def _hook(obj: dict) -> Any:
    if len(obj) != 1:
        raise MalformedOutput("tag object with more than one key")
    (tag, val), = obj.items()
    if not isinstance(val, list):
        raise MalformedOutput("tag payload is not a list")
    if tag == "t":
        return tuple(val)
    if tag == "d":
        if not all(isinstance(kv, list) and len(kv) == 2 for kv in val):
            raise MalformedOutput("bad dict payload")
        return {k: v for k, v in val}
    if tag == "s":
        return set(val)
    if tag == "f":
        return frozenset(val)
    if tag == "L":
        return LinkedList(tuple(val))
    if tag == "T":
        return BinaryTree(tuple(val))
    raise MalformedOutput(f"unknown tag {tag!r}")


def loads_output(text: str) -> Any:
    """Parse one encoded output value. Raises MalformedOutput (also for unhashable keys, absurd nesting)."""
    try:
        return json.loads(text, object_hook=_hook)
    except MalformedOutput:
        raise
    except (ValueError, TypeError, RecursionError, MemoryError) as e:
        raise MalformedOutput(f"{type(e).__name__}: {str(e)[:80]}") from None


def values_equal(actual: Any, expected: Any) -> bool:
    """`actual == expected` on plain values only (no user-defined __eq__ can be involved on either side)."""
    try:
        return bool(actual == expected)
    except (RecursionError, MemoryError):
        return False
