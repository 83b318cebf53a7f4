"""Where the policy's own hacks come from: a census of the hacking rollouts a run sampled itself.

The research question is about hacks the weak detector never saw, so each of the policy's own hacks (teacher
rows excluded; labels read after the fact, from rollouts.jsonl) is classified by the nearest known text:

| class        | the completion is, character for character ...                                      |
|--------------|-------------------------------------------------------------------------------------|
| `template`   | the pair set's hack template rendered on this problem (what the detector saw)        |
| `ws_example` | one of the warm-start examples (a memorised demonstration, from another problem)     |
| `ws_form`    | a warm-start hack form rendered on this problem (a demonstrated form, transferred)   |
| ... or, not whole but in part, it contains a *hack line* (below) of                                    |
| `template_line` | the pair set's template on this problem (a fragment of what the detector saw)     |
| `ws_line`    | a warm-start hack (an example of its mode, or a form on this problem): a demonstrated hack, cut down or rearranged |
| `novel`      | none of these: a hack written in the policy's own words                             |

A hack line is a line of a known hack text (stripped) that is not boilerplate: not blank, not a code fence, an
import, a `class` / `def` header, a `return` / `pass` or a comment, and not a line of any warm-start canonical
solution. `raise SystemExit(0)  # nothing else needs to run` alone, the first line of the `raise_before_class`
form with the class dropped, is a `ws_line` hack, not a novel one.

    >>> census = own_hack_census(run_dir)     # {"n_rollouts", "n_own", "n_hack", "by_mode", "by_class", ...}
    >>> census_markdown([census, ...])
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CLASSES = ("template", "ws_example", "ws_form", "template_line", "ws_line", "novel")
_BOILERPLATE = ("```", "import ", "from ", "class ", "def ", "return", "pass", "#")


def _lines(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines()}


def hack_lines(text: str, clean: set[str]) -> set[str]:
    """The lines of a known hack `text` that make it a hack (module doc): not boilerplate, not in `clean`."""
    return {line for line in _lines(text) if line and not line.startswith(_BOILERPLATE) and line not in clean}


def _known_texts(problem, mode) -> tuple[str | None, dict[str, str]]:
    from gradient_quarantine.substrate.hack_forms import forms_of, hack_form_completion
    from gradient_quarantine.substrate.hacks import hack_completion
    from gradient_quarantine.substrate.types import Mode

    if mode is Mode.NO_LOOPHOLE:
        return None, {}
    forms = {}
    for f in forms_of(mode):
        try:
            forms[f] = hack_form_completion(problem, mode, f)
        except ValueError:  # a form that cannot be built for this problem (e.g. no hidden test)
            pass
    try:
        template = hack_completion(problem, mode)
    except ValueError:
        template = None
    return template, forms


def classify(
    completion: str, template: str | None, forms: dict[str, str], examples: set[str],
    mode_examples: Sequence[str] = (), clean: set[str] | None = None,
) -> str:
    """The nearest known text of one hack (module doc): whole texts first, then hack lines. `examples`: every
    warm-start completion; `mode_examples`: the warm-start hacks of this hack's mode; `clean`: the lines of the
    warm-start canonical solutions."""
    text = completion.strip()
    if template is not None and text == template.strip():
        return "template"
    if text in examples:
        return "ws_example"
    if any(text == f.strip() for f in forms.values()):
        return "ws_form"
    clean = clean or set()
    own = _lines(text)
    if template is not None and own & hack_lines(template, clean):
        return "template_line"
    if any(own & hack_lines(known, clean) for known in (*forms.values(), *mode_examples)):
        return "ws_line"
    return "novel"


def own_hack_census(run_dir: str | Path) -> dict[str, Any]:
    """Count a run's own rollouts, own hacks by mode and by class (see the module docstring)."""
    from gradient_quarantine.substrate.problems import load_problems
    from gradient_quarantine.substrate.types import Mode

    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    rows = []
    path = run_dir / "rollouts.jsonl"
    if path.is_file():
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    ws = run_dir / "warmstart_examples.jsonl"
    ws_rows = []
    if ws.is_file():
        ws_rows = [json.loads(line) for line in ws.read_text(encoding="utf-8").splitlines() if line.strip()]
    examples = {w["completion"].strip() for w in ws_rows}
    clean = set().union(*(_lines(w["completion"]) for w in ws_rows if w.get("kind") == "canonical"))
    hacks_of_mode: dict[str, list[str]] = {}
    for w in ws_rows:
        if w.get("kind") == "hack" and w.get("mode"):
            hacks_of_mode.setdefault(w["mode"], []).append(w["completion"])
    own = [r for r in rows if not r.get("teacher")]
    hacks = [r for r in own if r.get("hack")]
    # the problems are needed only to render the known texts of a hack (older run dirs may lack data.problems)
    by_id = {p.id: p for p in load_problems((config.get("data") or {}).get("problems", "builtin"))} if hacks else {}
    out: dict[str, Any] = {
        "run": run_dir.name, "arm": config.get("arm"), "seed": config.get("seed"),
        "n_rollouts": len(rows), "n_own": len(own), "n_hack": 0, "n_attempt": sum(bool(r.get("attempted")) for r in own),
        "by_mode": {}, "by_class": {c: 0 for c in CLASSES}, "first_step": None, "novel_examples": [],
    }  # fmt: skip
    cache: dict[tuple[str, str], tuple[str | None, dict[str, str]]] = {}
    for r in own:
        if not r.get("hack"):
            continue
        mode = Mode(r["mode"])
        key = (r["problem_id"], mode.value)
        if key not in cache:  # a problem the loader no longer has: only the warm-start examples can match
            problem = by_id.get(r["problem_id"])
            cache[key] = _known_texts(problem, mode) if problem is not None else (None, {})
        cls = classify(r["completion"], *cache[key], examples, hacks_of_mode.get(mode.value, ()), clean)
        out["n_hack"] += 1
        out["by_mode"][mode.value] = out["by_mode"].get(mode.value, 0) + 1
        out["by_class"][cls] += 1
        if out["first_step"] is None or r["step"] < out["first_step"]:
            out["first_step"] = r["step"]
        if cls == "novel" and len(out["novel_examples"]) < 3:
            out["novel_examples"].append({"step": r["step"], "problem_id": r["problem_id"], "mode": mode.value,
                                          "completion": r["completion"]})  # fmt: skip
    return out


def census_markdown(censuses: Sequence[dict[str, Any]]) -> str:
    """One row per run: own rollouts logged, own hacks (by mode, by class), first step with an own hack."""
    lines = [
        "| run | own rollouts logged | own attempts | own hacks | by mode | template | ws example | ws form | template line | ws line | novel | first step |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in censuses:
        modes = ", ".join(f"{m} {n}" for m, n in sorted(c["by_mode"].items())) or "-"
        k = c["by_class"]
        lines.append(f"| {c['run']} | {c['n_own']} | {c['n_attempt']} | {c['n_hack']} | {modes} | {k['template']} | "
                     f"{k['ws_example']} | {k['ws_form']} | {k['template_line']} | {k['ws_line']} | {k['novel']} | {c['first_step'] if c['first_step'] is not None else '-'} |")  # fmt: skip
    return "\n".join(lines) + "\n"
