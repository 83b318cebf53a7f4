"""docs/architecture.md, "One step": every function, method, record field and config key it names exists in the
code, so the section cannot drift from the step it describes."""

from __future__ import annotations

import importlib
import inspect
import os
import re
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
MODULES = [f"gradient_quarantine.train.{m}" for m in (
    "trainer", "step", "rollouts", "intervention", "route2b", "baselines", "run", "run_callbacks", "run_setup",
    "run_eval", "run_trainer", "trl_compat", "sampler", "teacher", "rundir", "health", "tracking",
)] + ["gradient_quarantine.routing.router", "gradient_quarantine.routing.capture", "gradient_quarantine.substrate.grader",
      "trl", "transformers"]  # fmt: skip
# lower-case handles the section uses for objects: `record.X` (the step's record), `trainer.X`, config keys
HANDLES = {"record": "StepRecord", "trainer": "GQGRPOTrainer"}


def _section() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("\n## One step\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else len(text)]


def _names() -> list[str]:
    tokens = re.findall(r"`([^`]+)`", _section())
    names = [t.removesuffix("()") for t in tokens]
    return sorted({n for n in names if re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", n) and n != "t"})


def _find(name: str):
    for mod in MODULES:
        obj = getattr(importlib.import_module(mod), name, None)
        if obj is not None:
            return obj
    return None


def _has(owner, attr: str) -> bool:
    if hasattr(owner, attr):
        return True
    if is_dataclass(owner) and attr in {f.name for f in fields(owner)}:
        return True
    return inspect.isclass(owner) and f"self.{attr} =" in inspect.getsource(owner)  # an instance attribute


def _config_key(name: str) -> bool:
    from gradient_quarantine.train.config import TrainConfig

    model = TrainConfig
    for part in name.split("."):
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return False
        model = field.annotation
    return True


def test_the_section_names_things():
    assert len(_names()) > 40


@pytest.mark.parametrize("name", _names())
def test_every_name_in_one_step_exists(name):
    head, _, rest = name.partition(".")
    if not rest:
        assert _find(head) is not None, f"{name}: not defined in {MODULES}"
        return
    if _config_key(name):
        return
    owner = _find(HANDLES.get(head, head))
    if owner is None and head == "trl_compat":
        owner = importlib.import_module("gradient_quarantine.train.trl_compat")
    assert owner is not None, f"{name}: {head} is not defined in {MODULES}"
    for attr in rest.split("."):
        assert _has(owner, attr), f"{name}: {owner!r} has no {attr}"
        owner = getattr(owner, attr, None)
