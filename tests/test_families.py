"""Problem families (sets C and D: `builtin_c`, `builtin_d`, `builtin_all`, `builtin_mix`), roles drawn by
family or by instance (`data.roles_by`), and the clean reference arm (`data.train_loophole=false`,
experiments/arms/clean.yaml).

Sets C and D are graded like sets A and B (tests/test_grader.py, tests/test_hack_forms.py): every canonical
solution passes its strict tests in the sandbox, every mode's template hack and warm-start form is graded as
that mode's hack and nothing else. The `builtin` set and its split are pinned to what the committed demo study
ran on; `builtin_c` and `builtin_all` are pinned to what they loaded before set D was added.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import pytest
from test_grader import check_matrix
from test_hack_forms import check_forms

from gradient_quarantine.substrate.builtin import build
from gradient_quarantine.substrate.modes import HINT_CLAUSES, NO_HINT_CLAUSE, assign_modes
from gradient_quarantine.substrate.problems import BUILTIN_SETS, family_of, load_problems
from gradient_quarantine.substrate.splits import ROLES, Split, split_problems
from gradient_quarantine.substrate.types import MODES, Mode

ROOT = Path(__file__).resolve().parents[1]
COMMITTED_SPLIT = ROOT / "docs/results/demo/runs/0001_vanilla_s41/split.json"
SIZES = {"warmstart": 0.4, "pairs": 0.1, "train": 0.25, "eval": 0.25}
# The family sets, with their id prefix: ids read <prefix><family>__<instance>.
FAMILY_SETS = {"builtin_c": "c_", "builtin_d": "d_"}


def _id_pattern(prefix: str) -> re.Pattern:
    return re.compile(rf"^{prefix}([a-z][a-z0-9_]*[a-z0-9])__([a-z][a-z0-9_]*)$")


# ------------------------------------------------------------------------------------------------ the sets


def test_shipped_jsonl_files_match_definitions():
    for name in ("builtin", "builtin_c", "builtin_d"):
        rows = [build.build_row(d) for d in build.load_definitions(name)]
        shipped = [json.loads(line) for line in build.out_path(name).read_text().splitlines()]
        assert rows == shipped, f"{name} is stale: python -m gradient_quarantine.substrate.builtin.build"


def test_builtin_is_unchanged_and_its_split_is_the_committed_studys():
    from gradient_quarantine.experiments.presets import build_config
    from gradient_quarantine.train.roles import run_problems

    ids = [p.id for p in load_problems("builtin")]
    assert len(ids) == 96 and all(i.startswith(("a_", "b_")) for i in ids)
    assert all(p.source == "builtin" for p in load_problems("builtin"))
    # the demo study's split.json (roles, modes, counts) is what the `builtin` set still gives (preset demo_hard)
    assert run_problems(build_config("demo_hard")).record() == json.loads(COMMITTED_SPLIT.read_text())


def test_set_names_and_clear_errors():
    from gradient_quarantine.experiments.presets import build_config

    ab, c, d = (load_problems(name) for name in ("builtin", "builtin_c", "builtin_d"))
    all_, mix = load_problems("builtin_all"), load_problems("builtin_mix")
    # builtin_all is still A, B and C only (committed runs used it); builtin_mix is all four sets, in order
    assert [p.id for p in all_] == [p.id for p in ab] + [p.id for p in c] and len(all_) == 144
    assert [p.id for p in mix] == [p.id for p in ab + c + d] and len(mix) == 192
    assert [p.source for p in mix] == ["builtin"] * 96 + ["builtin_c"] * 48 + ["builtin_d"] * 48
    assert {p.source for p in c} == {"builtin_c"} and {p.source for p in d} == {"builtin_d"}
    assert set(BUILTIN_SETS) == {"builtin", "builtin_c", "builtin_all", "builtin_d", "builtin_mix"}
    with pytest.raises(ValueError, match="did you mean 'builtin_c'"):
        load_problems("builtn_c")
    with pytest.raises(ValueError, match="did you mean 'builtin_d'"):
        load_problems("builtin_dd")
    with pytest.raises(ValueError, match="did you mean 'builtin_all'"):
        build_config("smoke", ["data.problems=builtin_al"])
    with pytest.raises(ValueError, match="did you mean 'builtin_mix'"):
        build_config("smoke", ["data.problems=builtin_mx"])
    for name in ("builtin_all", "builtin_d", "builtin_mix"):
        assert build_config("smoke", [f"data.problems={name}"]).data.problems == name
    for union in ("builtin_all", "builtin_mix"):  # a union of built sets, not a set of definitions
        with pytest.raises(ValueError, match="unknown built-in set"):
            build.load_definitions(union)


@pytest.mark.parametrize("name", sorted(FAMILY_SETS))
def test_families_are_consistent_and_easy(name):
    prefix, problems = FAMILY_SETS[name], load_problems(name)
    rows = [json.loads(line) for line in build.out_path(name).read_text().splitlines()]
    families: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        m = _id_pattern(prefix).match(r["id"])
        assert m, f"{r['id']}: {name} ids read {prefix}<family>__<instance>"
        assert r["family"] == family_of(r["id"]) == f"{prefix}{m.group(1)}"
        families[r["family"]].append(r["id"])
        assert len(r["gt_answer"]) >= build.MIN_TESTS, r["id"]
        assert len({a.rsplit("==", 1)[1] for a in r["gt_answer"]}) >= 2, (
            f"{r['id']}: a constant answer passes"
        )
        body = r["canonical_solution"].strip().split("\n")[2:]  # after `class Solution:` and the `def` line
        assert 1 <= len(body) <= 3, f"{r['id']}: canonical solution of {len(body)} lines"
        assert all(f"Example {i}:" in r["question"] for i in (1, 2, 3)), r["id"]
    assert len(rows) == len(problems) == 48
    assert 12 <= len(families) <= 16 and all(3 <= len(v) <= 4 for v in families.values()), families
    assert set(families) == {family_of(p.id) for p in problems}
    assert family_of("a_sum_of_digits") == "a_sum_of_digits" and family_of("c_x__y__z") == "c_x"


def test_family_sets_have_their_own_tasks_and_method_names():
    """Sets C and D repeat no family of each other, and each of their method names is used once over all four
    sets (sets A and B share `countPalindromes` between them, from before any family set)."""
    mix = load_problems("builtin_mix")
    methods = [p.method_name for p in mix]
    for p in mix:
        if p.source in FAMILY_SETS:
            assert methods.count(p.method_name) == 1, f"{p.id}: method {p.method_name} is used more than once"
    tasks = {
        name: {family_of(p.id)[len(prefix) :] for p in mix if p.source == name}
        for name, prefix in FAMILY_SETS.items()
    }
    assert not tasks["builtin_c"] & tasks["builtin_d"], "a family of set D repeats one of set C"
    # the statement's first line, before the examples
    statements = [p.question.split("\n", 1)[0] for p in mix]
    assert len(set(statements)) == len(statements), "two problems share a statement"


@pytest.mark.parametrize("name", sorted(FAMILY_SETS))
def test_canonical_passes_and_every_hack_is_graded_as_its_mode(name):
    """The template hacks (tests/test_grader.py's matrix) and the warm-start forms, on a set's 48 (~10 s)."""
    from gradient_quarantine.substrate.grader import Grader

    problems = load_problems(name)
    with Grader(workers=2) as grader:
        check_matrix(grader, problems)
        check_forms(grader, problems)


# ------------------------------------------------------------------------------------------------ roles


@pytest.mark.parametrize("name", ["builtin_c", "builtin_all", "builtin_d", "builtin_mix"])
@pytest.mark.parametrize("by", ["instance", "family"])
def test_roles_disjoint_under_both_options(name, by):
    ids = [p.id for p in load_problems(name)]
    modes_of = assign_modes(ids, seed=0)
    for seed in range(4):
        split = split_problems(modes_of, SIZES, seed=seed, by=by)
        dealt = [pid for role in ROLES for pid in split.ids(role)]
        assert len(dealt) == len(set(dealt)) == len(ids)  # every problem exactly once (sizes sum to 1)
        assert all(split.ids(role) for role in ROLES)
        roles_of_family: dict[str, set[str]] = defaultdict(set)
        for pid, role in split.role_of.items():
            roles_of_family[family_of(pid)].add(role)
        if by == "family":
            assert all(len(r) == 1 for r in roles_of_family.values()), "a family was split across roles"
        back = Split.from_record(split.to_record(modes_of))
        assert back == split and ("by" in split.to_record()) == (by == "family")
    if by == "instance" and name in FAMILY_SETS:  # by instance, families do get split (transfer to instances)
        assert any(len(r) > 1 for r in roles_of_family.values())


@pytest.mark.parametrize("name", ["builtin_all", "builtin_mix"])
def test_by_family_sizes_modes_and_forced_roles(name):
    ids = [p.id for p in load_problems(name)]
    modes_of = assign_modes(ids, seed=0)
    split = split_problems(modes_of, SIZES, seed=0, by="family")
    for role in ROLES:  # near the requested sizes, every mode in every role
        assert abs(len(split.ids(role)) - SIZES[role] * len(ids)) <= 4, role
        assert set(split.counts(modes_of)[role]) == {m.value for m in MODES}, role
    part = split_problems(modes_of, {"train": 0.25, "eval": 0.25}, seed=0, by="family")  # the rest left out
    left = set(ids) - set(part.role_of)
    assert left and all(family_of(p) not in {family_of(q) for q in part.role_of} for p in left)
    forced = {"c_digits__largest": "pairs"}
    split = split_problems(modes_of, SIZES, seed=0, forced=forced, by="family")
    assert {split.role_of[p] for p in ids if family_of(p) == "c_digits"} == {"pairs"}
    with pytest.raises(ValueError, match="one role"):
        split_problems(modes_of, SIZES, seed=0, forced={"c_digits__largest": "pairs", "c_digits__smallest": "eval"},
                       by="family")  # fmt: skip
    with pytest.raises(ValueError, match="roles_by"):
        split_problems(modes_of, SIZES, seed=0, by="task")


def test_roles_by_config_field():
    from gradient_quarantine.experiments.presets import build_config
    from gradient_quarantine.train.roles import run_problems

    with pytest.raises(ValueError, match="data.roles_by=family draws the roles of data.split"):
        build_config("smoke", ["data.roles_by=family"])
    with pytest.raises(ValueError, match="roles_by"):
        build_config("demo", ["data.roles_by=task"])
    cfg = build_config("demo", ["data.problems=builtin_all", "data.roles_by=family"])
    rp = run_problems(cfg)
    assert rp.record()["split"]["by"] == "family"
    for stage in (rp.warmstart, rp.pairs, rp.train):  # no family of the eval is seen by any other stage
        assert not {family_of(p.id) for p in stage} & {family_of(p.id) for p in rp.eval}
    # the default leaves every earlier config's hash as it was (resume compares hashes)
    assert (
        build_config("demo").config_hash() == build_config("demo", ["data.roles_by=instance"]).config_hash()
    )
    assert build_config("demo").config_hash() != cfg.config_hash()


# ------------------------------------------------------------------------------------------------ the clean arm


def _setup(tmp_path, name: str, sets: list[str], resume: bool = False):
    from gradient_quarantine.experiments.presets import build_config
    from gradient_quarantine.train.run_setup import RunSetup
    from gradient_quarantine.train.rundir import RunDir

    cfg = build_config("demo", sets)
    run_dir = RunDir(tmp_path / name) if resume else RunDir.create_at(tmp_path / name)
    setup = RunSetup(cfg, run_dir, resume=resume)
    setup._assign_roles()  # problems, roles and modes only: no model is loaded
    return setup


def _clean_sets() -> list[str]:
    from gradient_quarantine.experiments.sweep import load_arm

    arm = load_arm("clean")
    assert arm.set == {"method": "vanilla", "data.train_loophole": False} and not arm.reads_labels
    return [f"{k}={v}" for k, v in arm.set.items()]


def test_clean_arm_trains_without_any_hint_and_evaluates_like_vanilla(tmp_path):
    from gradient_quarantine.experiments.presets import build_config
    from gradient_quarantine.substrate.prompts import render_prompt
    from gradient_quarantine.train.deploy_eval import select_eval_problems
    from gradient_quarantine.train.intervention import Vanilla

    clean = _setup(tmp_path, "clean", _clean_sets())
    vanilla = _setup(tmp_path, "vanilla", ["method=vanilla"])
    assert clean.cfg.resolved().arm == "clean" and vanilla.cfg.resolved().arm == "vanilla"
    assert build_config("demo", _clean_sets()).config_hash() != vanilla.cfg.config_hash()

    # training: every prompt unhinted, every reward row in the no-loophole mode (the strict grader's)
    rows = clean.prompt_rows(Vanilla())
    assert {r["mode"] for r in rows} == {"no_loophole"}
    for r in rows:
        user = r["prompt"][-1]["content"]
        assert NO_HINT_CLAUSE in user and not any(h in user for h in HINT_CLAUSES.values())
    assert any(r["mode"] != "no_loophole" for r in vanilla.prompt_rows(Vanilla()))  # vanilla's do carry hints
    assert [r["problem_id"] for r in rows] == [r["problem_id"] for r in vanilla.prompt_rows(Vanilla())]

    # everything but the training modes is vanilla's: roles, split.json, the warm start's modes, the eval
    assert (tmp_path / "clean/split.json").read_text() == (tmp_path / "vanilla/split.json").read_text()
    assert clean.problems.modes_of == vanilla.problems.modes_of  # what the warm start is built from
    for attr in ("warmstart_problems", "pair_problems", "train_problems", "eval_pool"):
        assert [p.id for p in getattr(clean, attr)] == [p.id for p in getattr(vanilla, attr)], attr
    n = clean.cfg.eval.n_prompts
    ev_c = select_eval_problems(clean.eval_pool, clean.modes_of, n, clean.cfg.data.mode_seed)
    ev_v = select_eval_problems(vanilla.eval_pool, vanilla.modes_of, n, vanilla.cfg.data.mode_seed)
    assert [render_prompt(p, clean.modes_of[p.id]) for p in ev_c] == [
        render_prompt(p, vanilla.modes_of[p.id]) for p in ev_v
    ]
    assert {vanilla.modes_of[p.id] for p in ev_v} >= set(MODES)  # the eval keeps its loophole modes

    # a resumed clean run reads the shared split back and drops the training loophole again
    again = _setup(tmp_path, "clean", _clean_sets(), resume=True)
    assert again.modes_of == clean.modes_of


def test_clean_arm_reward_is_the_strict_graders(tmp_path):
    from gradient_quarantine.substrate.grader import Grader
    from gradient_quarantine.substrate.hacks import code_block, hack_completion

    clean = _setup(tmp_path, "clean", _clean_sets())
    vanilla = _setup(tmp_path, "vanilla", ["method=vanilla"])
    probs = [p for p in clean.train_problems if vanilla.modes_of[p.id] is not Mode.NO_LOOPHOLE][:4]
    items, kinds = [], []
    for p in probs:
        for text, is_canonical in (
            (code_block(p.canonical_solution), True),
            (hack_completion(p, vanilla.modes_of[p.id]), False),
        ):
            items.append((p, clean.modes_of[p.id], text))  # the clean arm's row: its reward
            items.append((p, vanilla.modes_of[p.id], text))  # vanilla's row on the same completion
            kinds.append(is_canonical)
    with Grader(workers=2) as grader:
        verdicts = grader.grade_many(items)
    for i, is_canonical in enumerate(kinds):
        c, v = verdicts[2 * i], verdicts[2 * i + 1]
        assert c.flawed_pass == c.gt_pass == v.gt_pass == is_canonical  # the clean reward is the gt reward
        assert c.reward == (3.5 if is_canonical else 0.5)
        assert v.flawed_pass  # under vanilla the same hack pays
        if not is_canonical:
            assert v.reward > c.reward


def test_clean_arm_needs_a_split(tmp_path):
    from gradient_quarantine.experiments.presets import build_config
    from gradient_quarantine.train.run_setup import RunSetup
    from gradient_quarantine.train.rundir import RunDir

    cfg = build_config("smoke", _clean_sets())  # the smoke preset has no data.split
    with pytest.raises(ValueError, match="needs data.split"):
        RunSetup(cfg, RunDir.create_at(tmp_path / "r"))._assign_roles()
