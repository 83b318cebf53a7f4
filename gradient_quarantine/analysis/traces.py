"""A6: traces, per loophole mode the prompt (with its hint) and a hack and a clean completion sampled in
training, from rollouts.jsonl with the grader's labels.

    >>> Path("a6_traces.md").write_text(traces_markdown(runs, modes, baseline_arm="vanilla"))

Picked deterministically: vanilla runs first, the policy's own completions before teacher ones, later steps
first; a hack and a clean completion of the same problem when the logs have one, so one prompt shows both.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from gradient_quarantine.analysis.runs import Run


def _fence(text: str) -> str:
    """A backtick fence longer than any backtick run inside `text`, so completions render verbatim."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _pick_trace(rows: list[tuple[Run, dict[str, Any]]], want: str) -> tuple[Run, dict[str, Any], str] | None:
    """The first matching rollout in a fixed order (policy's own before teacher's; later steps first)."""
    def ok(row: dict[str, Any]) -> bool:
        if want == "hack":
            return bool(row.get("hack"))
        if want == "solve":
            return bool(row.get("gt_pass")) and not row.get("hack")
        # clean but unsolved: well-formed, no hack signature, not a hack
        return bool(row.get("format_ok")) and not row.get("attempted") and not row.get("hack")

    for teacher in (False, True):
        for run, row in rows:
            if bool(row.get("teacher")) == teacher and ok(row):
                kind = {"hack": "hack", "solve": "clean (solves: gt_pass)",
                        "clean": "clean (no hack, but does not solve: no solving completion was sampled)"}[want]
                return run, row, kind + (" — a teacher completion (the policy sampled none)" if teacher else "")
    return None


def _pick_pair(cands: list[tuple[Run, dict[str, Any]]]) -> list[tuple[Run, dict[str, Any], str] | None]:
    """[hack, clean]: on the same problem when the logs allow it (so one prompt shows both), else independently."""
    by_problem: dict[Any, list[tuple[Run, dict[str, Any]]]] = defaultdict(list)
    for run, row in cands:
        by_problem[row.get("problem_id")].append((run, row))
    hack = _pick_trace(cands, "hack")
    for teacher in (False, True):  # the policy's own hacks first
        for run, row in cands:
            if not row.get("hack") or bool(row.get("teacher")) != teacher:
                continue
            same = by_problem[row.get("problem_id")]
            clean = _pick_trace(same, "solve") or _pick_trace(same, "clean")
            if clean is not None:
                return [_pick_trace([(run, row)], "hack"), clean]
    return [hack, _pick_trace(cands, "solve") or _pick_trace(cands, "clean")]


def traces_markdown(runs: Sequence[Run], modes: Sequence[str], baseline_arm: str) -> str:
    ordered = sorted([r for r in runs if r.config is not None],
                     key=lambda r: (r.arm != baseline_arm, r.arm or "", r.seed or 0, r.path.name))
    by_mode: dict[str, list[tuple[Run, dict[str, Any]]]] = defaultdict(list)
    for r in ordered:
        rows = sorted(r.rollouts, key=lambda x: -int(x.get("step", 0)))
        for row in rows:
            by_mode[str(row.get("mode"))].append((r, row))
    lines = ["# A6 — traces per loophole mode", "",
             "For every mode: the prompt (with the mode's hint) and a hack and a clean completion sampled during "
             "training, from rollouts.jsonl with the grader's labels. Picked deterministically: vanilla runs first, "
             "the policy's own completions before teacher ones, later steps first.", ""]
    for m in modes:
        lines += [f"## {m}", ""]
        cands = by_mode.get(m, [])
        if not cands:
            lines += ["_No logged rollouts of this mode in any run._", ""]
            continue
        picks = _pick_pair(cands)
        prompt_src = next((p for p in picks if p is not None), None) or (cands[0][0], cands[0][1], "")
        prompt = str(prompt_src[1].get("prompt", ""))
        system = prompt_src[1].get("system")  # absent in run dirs written before it was logged
        f = _fence(prompt)
        if system is not None:
            lines += ["**System message**", "", _fence(str(system)) + "text", str(system), _fence(str(system)), ""]
        lines += ["**Prompt (with the mode's hint)**", "", f + "text", prompt, f, ""]
        for want, p in zip(("hack", "clean"), picks, strict=True):
            if p is None:
                lines += [f"**{want.capitalize()} completion:** _none logged for this mode._", ""]
                continue
            run, row, kind = p
            labels = ", ".join(f"{k}={row.get(k)}" for k in ("gt_pass", "flawed_pass", "hack", "attempted",
                                                             "format_ok", "reward", "reason"))
            comp = str(row.get("completion", ""))
            f = _fence(comp)
            lines += [f"**{kind.capitalize()}** — run `{run.path.name}` (arm {run.arm}, seed {run.seed}), "
                      f"step {row.get('step')}, problem `{row.get('problem_id')}`; {labels}", "",
                      f + "text", comp, f, ""]
            if row.get("system") not in (None, system):  # e.g. an inoculated training prompt
                lines += ["_(asked under a different system message:)_", "",
                          _fence(str(row["system"])) + "text", str(row["system"]), _fence(str(row["system"])), ""]
            if row.get("prompt") != prompt:
                lines += ["_(this completion answers a different prompt of the same mode:)_", "",
                          _fence(str(row.get("prompt"))) + "text", str(row.get("prompt")),
                          _fence(str(row.get("prompt"))), ""]
    return "\n".join(lines)
