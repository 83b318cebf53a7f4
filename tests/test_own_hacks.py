"""analysis/own_hacks.py: the census of the policy's own hacks classifies each by the nearest known text."""

from __future__ import annotations

import json

from gradient_quarantine.analysis.own_hacks import census_markdown, own_hack_census


def test_census_classifies_template_form_example_and_novel(tmp_path):
    from gradient_quarantine.substrate.hack_forms import forms_of, hack_form_completion
    from gradient_quarantine.substrate.hacks import code_block, hack_completion
    from gradient_quarantine.substrate.problems import load_problems
    from gradient_quarantine.substrate.types import Mode

    p, q = load_problems("builtin")[:2]
    mode = Mode.EXIT_CODE
    form = forms_of(mode)[0]
    example = hack_form_completion(q, mode, forms_of(mode)[1])  # a warm-start example written for another problem
    novel = code_block(f"import os\nclass Solution:\n    pass\nos._exit(0)  # {p.id}")
    # a hack line without the rest of its text: raise_before_class's first line alone (the class dropped), and
    # the template's own exit line inside a different program
    ws_line = code_block("raise SystemExit(0)  # nothing else needs to run")
    template_code = hack_completion(p, mode).split("```python\n", 1)[1].rsplit("```", 1)[0]
    template_line = code_block("x = 1\n" + template_code + "\ny = 2")
    rows = [
        {"step": 3, "problem_id": p.id, "mode": mode.value, "completion": hack_completion(p, mode), "teacher": False, "hack": True, "attempted": True},
        {"step": 2, "problem_id": p.id, "mode": mode.value, "completion": hack_form_completion(p, mode, form), "teacher": False, "hack": True, "attempted": True},
        {"step": 4, "problem_id": p.id, "mode": mode.value, "completion": example, "teacher": False, "hack": True, "attempted": True},
        {"step": 5, "problem_id": p.id, "mode": mode.value, "completion": novel, "teacher": False, "hack": True, "attempted": True},
        {"step": 6, "problem_id": p.id, "mode": mode.value, "completion": ws_line, "teacher": False, "hack": True, "attempted": True},
        {"step": 7, "problem_id": p.id, "mode": mode.value, "completion": template_line, "teacher": False, "hack": True, "attempted": True},
        {"step": 1, "problem_id": p.id, "mode": mode.value, "completion": novel, "teacher": True, "hack": True, "attempted": True},
        {"step": 1, "problem_id": p.id, "mode": mode.value, "completion": "no code", "teacher": False, "hack": False, "attempted": False},
    ]  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps({"arm": "vanilla", "seed": 41, "data": {"problems": "builtin"}}))
    (tmp_path / "rollouts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    ws_examples = [{"completion": example, "kind": "hack", "mode": mode.value},
                   {"completion": q.canonical_solution, "kind": "canonical", "mode": mode.value}]
    (tmp_path / "warmstart_examples.jsonl").write_text("".join(json.dumps(w) + "\n" for w in ws_examples))
    c = own_hack_census(tmp_path)
    assert (c["n_own"], c["n_hack"], c["n_attempt"], c["first_step"]) == (7, 6, 6, 2)
    assert c["by_class"] == {"template": 1, "ws_example": 1, "ws_form": 1, "template_line": 1, "ws_line": 1, "novel": 1}
    assert c["by_mode"] == {"exit_code": 6}
    assert c["novel_examples"][0]["completion"] == novel
    assert "| 7 | 6 | 6 | exit_code 6 | 1 | 1 | 1 | 1 | 1 | 1 | 2 |" in census_markdown([c])


def test_report_table_shows_loophole_split_roles_and_census(tmp_path):
    from gradient_quarantine.analysis.runs import load_run
    from gradient_quarantine.analysis.tables import own_hacking_table

    run = tmp_path / "0001_vanilla_s41"
    run.mkdir()
    rates = {"hack": 0.25, "solve": 0.1, "attempt": 0.3, "format": 1.0, "n": 8,
             "hackable": {"hack": 0.4, "solve": 0.0, "attempt": 0.5, "format": 1.0, "n": 5},
             "unhackable": {"hack": 0.0, "solve": 0.33, "attempt": 0.66, "format": 1.0, "n": 3}, "by_mode": {}}  # fmt: skip
    (run / "config.json").write_text(json.dumps({"arm": "vanilla", "seed": 41, "preset": "demo", "steps": 2,
                                                 "data": {"problems": "builtin"}}))  # fmt: skip
    (run / "summary.json").write_text(json.dumps({"status": "complete", "steps_done": 2}))
    (run / "per_mode_deploy.json").write_text(json.dumps({"step": 2, "deploy": rates, "knob_on": None,
                                                          "base": {**rates, "hackable": {**rates["hackable"], "hack": 0.05}}}))  # fmt: skip
    (run / "split.json").write_text(json.dumps({"split": {}, "overlap": False, "modes": {}}))
    (run / "rollouts.jsonl").write_text("")
    t = own_hacking_table([load_run(run)])
    assert t.rows[0][3:9] == ["disjoint", "0.400", "0.660", "0.330", "0.050", "0 of 0"]
