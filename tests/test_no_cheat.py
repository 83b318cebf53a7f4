"""No-cheat invariant (docs/design.md §5): live routing never reads gt_pass, hack labels, the mode of a rollout
or any detector output; its only inputs are gradients and the fixed pair set.

Made structural and checked two ways:
  * statically: every module under `gradient_quarantine/routing/` is parsed with `ast`; none may import
    `gradient_quarantine.substrate` (absolute or relative) nor use a label/mode/reward name as a parameter,
    variable, attribute read, keyword argument or string key;
  * at runtime: importing every routing module in a fresh interpreter leaves `gradient_quarantine.substrate`
    out of `sys.modules` (so no transitive import through model/ or io either).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import gradient_quarantine

PKG_ROOT = Path(gradient_quarantine.__file__).parent
ROUTING = PKG_ROOT / "routing"
ROUTING_FILES = sorted(ROUTING.rglob("*.py"))

# Names that carry a label, a reward or a mode. The pair set's side assignment (`Pair.hack` / `Pair.clean`,
# `hack_cos`) is the one sanctioned supervision, so `hack` itself is allowed; the strict label of a rollout is
# not (`is_hack`, `hack_label`, `gt_pass`, ...).
FORBIDDEN = frozenset(
    {
        "reward", "rewards", "reward_fn", "reward_funcs",
        "gt_pass", "flawed_pass", "format_ok", "attempted", "attempt",
        "is_hack", "hack_label", "hack_labels", "label", "labels",
        "verdict", "Verdict", "grader", "detector",
        "Mode", "MODES", "mode", "modes", "problem_id",
        "advantages",  # the advantage is already folded into G_b; routing must not re-read it separately
    }
)  # fmt: skip

SUBSTRATE = "gradient_quarantine.substrate"


def _violations(path: Path, root: Path = PKG_ROOT) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    rel = path.relative_to(root.parent)
    # the package containing this module (for `x/__init__.py` that is `x` itself, same thing), to resolve
    # relative imports such as `from ..substrate import X`
    pkg_parts = list(rel.with_suffix("").parts)[:-1]
    out: list[str] = []

    def bad(node: ast.AST, what: str) -> None:
        out.append(f"{rel}:{getattr(node, 'lineno', '?')}: {what}")

    for node in ast.walk(tree):
        # --- imports -------------------------------------------------------------------------------------
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == SUBSTRATE or alias.name.startswith(SUBSTRATE + "."):
                    bad(node, f"imports {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg_parts[: len(pkg_parts) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module == SUBSTRATE or module.startswith(SUBSTRATE + "."):
                bad(node, f"imports from {module}")
            if module == "gradient_quarantine" and any(a.name == "substrate" for a in node.names):
                bad(node, "imports gradient_quarantine.substrate")
            for alias in node.names:
                if alias.name in FORBIDDEN or (alias.asname or "") in FORBIDDEN:
                    bad(node, f"imports the name {alias.name!r}")
        # --- names used as inputs --------------------------------------------------------------------------
        elif isinstance(node, ast.arg) and node.arg in FORBIDDEN:
            bad(node, f"parameter named {node.arg!r}")
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN:
            bad(node, f"name {node.id!r}")
        elif isinstance(node, ast.Attribute) and node.attr in FORBIDDEN:
            bad(node, f"attribute .{node.attr}")
        elif isinstance(node, ast.keyword) and node.arg in FORBIDDEN:
            bad(node, f"keyword argument {node.arg}=")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in FORBIDDEN:
            bad(node, f"string key {node.value!r}")  # row["reward"], getattr(x, "mode"), ...
        elif (
            isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name in FORBIDDEN
        ):
            bad(node, f"defines {node.name!r}")
    return out


def test_routing_package_has_modules():
    # guards against the walk silently checking nothing (e.g. a moved package)
    names = {p.name for p in ROUTING_FILES}
    assert {"__init__.py", "band.py", "direction.py", "pairs.py", "router.py"} <= names, names


@pytest.mark.parametrize("path", ROUTING_FILES, ids=lambda p: p.name)
def test_routing_module_reads_no_labels(path: Path):
    problems = _violations(path)
    assert not problems, "no-cheat invariant broken:\n" + "\n".join(problems)


def test_checker_catches_violations(tmp_path: Path):
    """The static checker itself must fire on each kind of violation (a checker that never fails proves nothing)."""
    fake_pkg = tmp_path / "gradient_quarantine" / "routing"
    fake_pkg.mkdir(parents=True)
    cases = {
        "abs_import.py": "import gradient_quarantine.substrate.grader\n",
        "from_import.py": "from gradient_quarantine.substrate import types\n",
        "pkg_import.py": "from gradient_quarantine import substrate\n",
        "rel_import.py": "from ..substrate.types import Problem\n",
        "param.py": "def route(grads, gt_pass):\n    return grads\n",
        "attr.py": "def f(r):\n    return r.mode\n",
        "key.py": "def f(row):\n    return row['reward']\n",
        "kw.py": "def f(g):\n    return g(mode=1)\n",
        "imported_name.py": "from somewhere import Mode\n",
    }
    root = tmp_path / "gradient_quarantine"
    for name, src in cases.items():
        p = fake_pkg / name
        p.write_text(src)
        assert _violations(p, root), f"checker missed: {name}: {src!r}"
    clean = fake_pkg / "clean.py"
    clean.write_text(
        "from .band import gate\n\ndef route(grads, pairs):\n    return [p.hack for p in pairs]\n"
    )
    assert not _violations(clean, root)


def test_importing_routing_does_not_load_substrate():
    mods = sorted(
        "gradient_quarantine."
        + ".".join(p.relative_to(PKG_ROOT).with_suffix("").parts).replace(".__init__", "")
        for p in ROUTING_FILES
    )
    code = (
        "import importlib, sys\n"
        f"for m in {mods!r}:\n"
        "    importlib.import_module(m)\n"
        f"bad = sorted(m for m in sys.modules if m == {SUBSTRATE!r} or m.startswith({SUBSTRATE!r} + '.'))\n"
        "print('LOADED', bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, f"importing routing loaded the substrate:\n{r.stdout}\n{r.stderr}"
