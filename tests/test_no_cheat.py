"""No-cheat invariant (docs/design.md §5): live routing never reads gt_pass, hack labels, the mode of a rollout
or any detector output; its only inputs are gradients and the fixed pair set.

Made structural and checked three ways:
  * statically: every module under `gradient_quarantine/routing/` is parsed with `ast`; none may import
    `gradient_quarantine.substrate` or `gradient_quarantine.train` (absolute or relative; the trainer's step record
    holds the verdicts and the label-read gauges) nor use a label/mode/reward name as a parameter, variable,
    attribute read, keyword argument or string key, nor name a label-read metric (`detector/*`, `diag/*`: the
    trainer computes them from the strict labels after routing, for the logs only);
  * at runtime: importing every routing module in a fresh interpreter leaves `gradient_quarantine.substrate`
    and `gradient_quarantine.train` out of `sys.modules` (so no transitive import through model/ or io either);
  * at runtime, in a route2b run: every argument the `Router` is given (building it, installing a direction,
    gating, routing, applying, the gauges) is a gradient capture, a routing result, the direction, the band, the
    adapter or a number, never a verdict, a label, a mode or a label-read metric, while the same run logs
    `detector/*` from the labels.
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
        # the trainer's per-step record of the rows and their labels (train/step.py), read for the logs only
        "verdicts", "row_kind", "row_kinds", "gq_row_kind", "StepRollouts", "StepRecord", "RowScores",
    }
)  # fmt: skip
# metric names computed from the strict labels after routing (train/step.py), for the logs only
LABEL_METRICS = ("detector/", "diag/")

SUBSTRATE = "gradient_quarantine.substrate"
TRAIN = "gradient_quarantine.train"  # the step record: verdicts, row kinds, the label-read gauges
NO_IMPORT = (SUBSTRATE, TRAIN)


def _forbidden_module(module: str) -> str | None:
    return next((p for p in NO_IMPORT if module == p or module.startswith(p + ".")), None)


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
                if _forbidden_module(alias.name):
                    bad(node, f"imports {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg_parts[: len(pkg_parts) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if _forbidden_module(module):
                bad(node, f"imports from {module}")
            for a in node.names:
                if module == "gradient_quarantine" and a.name in {p.rpartition(".")[2] for p in NO_IMPORT}:
                    bad(node, f"imports gradient_quarantine.{a.name}")
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
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith(LABEL_METRICS)
        ):
            bad(node, f"label-read metric {node.value!r}")  # m["detector/auc"], f"diag/gate_{kind}", ...
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
        "train_import.py": "from gradient_quarantine.train.step import detector_gauges\n",
        "train_pkg_import.py": "from gradient_quarantine import train\n",
        "rel_train_import.py": "from ..train import step\n",
        "verdicts.py": "def route(grads, verdicts):\n    return grads\n",
        "row_kind.py": "def f(mb):\n    return mb.row_kind\n",
        "detector_metric.py": "def f(metrics):\n    return metrics['detector/auc']\n",
        "diag_fstring.py": "def f(m, kind):\n    return m[f'diag/gate_{kind}']\n",
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
        f"bad = sorted(m for m in sys.modules for p in {NO_IMPORT!r} if m == p or m.startswith(p + '.'))\n"
        "print('LOADED', bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, (
        f"importing routing loaded the substrate or the trainer:\n{r.stdout}\n{r.stderr}"
    )


# ----------------------------------------------------------------------------------------------------------
# at runtime: what the Router is given in a route2b run

# the Router's methods whose arguments are its inputs (`intercept` takes none)
ROUTER_INPUTS = ("__init__", "set_direction", "_gate", "route", "apply", "stats")


def _router_input_types() -> tuple[type, ...]:
    """What may reach the router: gradients (a capture, tensors, routing results), the direction and band the pair
    set gave, the adapter and its optimiser, numbers and settings."""
    import torch

    from gradient_quarantine.model.svd_adapter import SVDAdapter
    from gradient_quarantine.routing.band import Band
    from gradient_quarantine.routing.capture import GradCapture
    from gradient_quarantine.routing.direction import Direction
    from gradient_quarantine.routing.router import RouteResult

    return (GradCapture, RouteResult, torch.Tensor, Direction, Band, SVDAdapter, torch.optim.Optimizer, float, int,
            str, type(None))  # fmt: skip


def _label_inputs(obj, where: str, allowed: tuple[type, ...]) -> list[str]:
    """Why `obj`, given to the router, could carry a label (empty: it cannot): an object of the substrate (a
    verdict, a problem, a mode) or of the trainer (the step record, its rollouts), a string that names a label,
    a mode or a label-read metric, a sequence of flags, or anything outside `allowed`."""
    from gradient_quarantine.substrate.types import Mode

    if isinstance(obj, (list, tuple)):
        if any(isinstance(x, bool) for x in obj):
            return [f"{where}: a sequence of flags (labels?)"]
        return [v for i, x in enumerate(obj) for v in _label_inputs(x, f"{where}[{i}]", allowed)]
    if isinstance(obj, dict):
        return [v for k, x in obj.items()
                for v in _label_inputs(k, f"{where} key", allowed) + _label_inputs(x, f"{where}[{k!r}]", allowed)]  # fmt: skip
    module = type(obj).__module__
    if _forbidden_module(module):
        return [f"{where}: a {type(obj).__name__} ({module})"]
    if isinstance(obj, str):
        if obj in FORBIDDEN or obj in {m.value for m in Mode} or obj.startswith(LABEL_METRICS):
            return [f"{where}: the string {obj!r}"]
        return []
    if not isinstance(obj, allowed):
        return [f"{where}: a {type(obj).__name__}, not a gradient, the direction, the band or a setting"]
    return []


def test_runtime_checker_catches_label_inputs():
    """The run-time check fires on each way a label could reach the router."""
    from gradient_quarantine.substrate.types import Verdict
    from gradient_quarantine.train.step import StepRollouts

    allowed = _router_input_types()
    v = Verdict(
        format_ok=True, gt_pass=False, flawed_pass=True, hack=True, attempted=True, reward=3.5, reason="ok"
    )
    rollouts = StepRollouts(["p"], ["exit_code"], ["q"], ["c"], [None], [v])
    for label in (v, [v], rollouts, "exit_code", "gt_pass", {"detector/auc": 0.5}, "diag/gate_policy_hack",
                  [True, False], object()):  # fmt: skip
        assert _label_inputs(label, "arg", allowed), f"checker missed: {label!r}"
    assert not _label_inputs([0.1, 2, "rollout", None], "arg", allowed)


def test_router_sees_gradients_only_in_a_route2b_run(tmp_path, monkeypatch):
    """A route2b run with two micro-batches a step: every argument any Router method gets is label-free, while
    the same run reads the labels after routing (its metrics have detector/*)."""
    import os

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from gradient_quarantine.experiments.presets import build_config
    from gradient_quarantine.io import read_jsonl
    from gradient_quarantine.routing.router import Router
    from gradient_quarantine.train.run import train

    calls: list[tuple[str, tuple, dict]] = []
    for name in ROUTER_INPUTS:

        def spy(self, *args, _orig=getattr(Router, name), _name=name, **kwargs):
            calls.append((_name, args, kwargs))
            return _orig(self, *args, **kwargs)

        monkeypatch.setattr(Router, name, spy)
    cfg = build_config("smoke", ["steps=2", "grpo.micro_batch=4", "run.progress=false",
                                 f"run.cache_dir={tmp_path / 'cache'}"]).resolved()  # fmt: skip
    run = train(cfg, runs_dir=tmp_path)
    seen = {name for name, _, _ in calls}
    assert set(ROUTER_INPUTS) <= seen, f"the spies saw only {sorted(seen)}"  # the check is not vacuous
    assert sum(name == "route" for name, _, _ in calls) == cfg.steps * 2  # two micro-batches a step
    allowed = _router_input_types()
    problems = []
    for (
        name,
        args,
        kwargs,
    ) in calls:  # each argument on its own (a lone flag, e.g. `reproject_knob`, is a setting)
        for key, arg in [*enumerate(args), *kwargs.items()]:
            problems += _label_inputs(arg, f"Router.{name}({key})", allowed)
    assert not problems, "a label reached the router:\n" + "\n".join(problems[:20])
    rows = read_jsonl(run.path / "metrics.jsonl")
    assert rows and all("detector/n_clean" in r for r in rows)  # the labels were read, after routing
