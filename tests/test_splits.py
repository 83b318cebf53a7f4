"""Problem roles (substrate/splits.py, train/roles.py): disjoint, stratified by mode, seeded, recorded and
reused; the overlap error; the no-loophole share; the warm start's data, cache key and CLI (train/warmstart.py)."""

from __future__ import annotations

import json

import pytest

from gradient_quarantine.substrate.modes import assign_modes
from gradient_quarantine.substrate.splits import ROLES, RoleOverlapError, split_problems
from gradient_quarantine.substrate.types import MODES, Mode

SIZES = {"warmstart": 0.4, "pairs": 0.1, "train": 0.25, "eval": 0.25}


@pytest.fixture(scope="module")
def builtin():
    from gradient_quarantine.substrate.problems import load_problems

    problems = load_problems("builtin")
    return problems, assign_modes([p.id for p in problems], seed=0)


def test_roles_are_disjoint_cover_and_stratified(builtin):
    problems, modes_of = builtin
    split = split_problems(modes_of, SIZES, seed=3)
    ids = [pid for role in ROLES for pid in split.ids(role)]
    assert len(ids) == len(set(ids)) == len(problems)  # every problem in exactly one role
    counts = split.counts(modes_of)
    for role in ROLES:
        for mode in MODES:
            assert counts[role].get(mode.value, 0) >= 1, (role, mode)  # each mode present in every role
    n_mode = len([p for p in problems if modes_of[p.id] is Mode.EXIT_CODE])
    assert counts["train"]["exit_code"] == round(0.25 * n_mode)


def test_split_is_deterministic_and_seeded(builtin):
    _, modes_of = builtin
    a = split_problems(modes_of, SIZES, seed=3)
    b = split_problems(dict(reversed(list(modes_of.items()))), SIZES, seed=3)  # input order does not matter
    c = split_problems(modes_of, SIZES, seed=4)
    assert a.role_of == b.role_of
    assert a.role_of != c.role_of


def test_counts_and_forced_roles(builtin):
    _, modes_of = builtin
    some = sorted(modes_of)[:3]
    split = split_problems(modes_of, {"warmstart": 8, "pairs": 4, "train": 12, "eval": 12}, seed=0,
                           forced={pid: "pairs" for pid in some})  # fmt: skip
    assert all(split.role_of[pid] == "pairs" for pid in some)
    assert {r: len(split.ids(r)) for r in ROLES} == {"warmstart": 8, "pairs": 4, "train": 12, "eval": 12}


def test_overlap_error_names_the_problems(builtin):
    _, modes_of = builtin
    split = split_problems(modes_of, SIZES, seed=0)
    clash = split.ids("train")[:2]
    with pytest.raises(RoleOverlapError) as e:
        split.check_disjoint({"pairs": split.ids("pairs") + clash})
    for pid in clash:
        assert pid in str(e.value)
    assert "data.allow_overlap" in str(e.value)
    split.check_disjoint({"pairs": split.ids("pairs")})  # the pairs role's own problems are fine


def test_no_loophole_share_only_in_train_and_eval(builtin):
    _, modes_of = builtin
    split = split_problems(modes_of, SIZES, seed=0)
    out = split.apply_no_loophole(modes_of, share=0.5, seed=0)
    for role in ("warmstart", "pairs"):
        assert all(out[pid] is modes_of[pid] for pid in split.ids(role))
    for role in ("train", "eval"):
        ids = split.ids(role)
        nl = [pid for pid in ids if out[pid] is Mode.NO_LOOPHOLE]
        assert 0.35 * len(ids) <= len(nl) <= 0.65 * len(ids)
        for mode in MODES:  # per mode: each loophole mode keeps problems
            assert any(out[pid] is mode for pid in ids), (role, mode)


def test_config_rejects_bad_splits():
    from gradient_quarantine.train.config import TrainConfig

    with pytest.raises(ValueError, match="unknown roles"):
        TrainConfig(data={"split": {"train": 0.5, "eval": 0.3, "test": 0.1}})
    with pytest.raises(ValueError, match="sum to"):
        TrainConfig(data={"split": {"train": 0.7, "eval": 0.5}})
    with pytest.raises(ValueError, match="warmstart"):
        TrainConfig(warmstart={"enabled": True})  # no split: the warm start would train on eval problems


def _cfg(**data):
    from gradient_quarantine.train.config import TrainConfig

    return TrainConfig(model="tiny", method="route2b", routing={"pairs": "build"}, data={"split": SIZES, **data})


def test_run_problems_records_and_reuses_the_split():
    from gradient_quarantine.train.roles import run_problems

    rp = run_problems(_cfg(no_loophole=0.25))
    record = json.loads(json.dumps(rp.record()))  # what split.json holds
    assert record["overlap"] is False and set(record["split"]["roles"]) == set(ROLES)
    # a resumed run reads the recorded split: even a config whose split seed differs gets the same problems
    again = run_problems(_cfg(no_loophole=0.25, split_seed=99), recorded=record)
    assert [p.id for p in again.train] == [p.id for p in rp.train]
    assert again.modes_of == rp.modes_of
    assert [p.id for p in run_problems(_cfg(no_loophole=0.25, split_seed=99)).train] != [p.id for p in rp.train]


def test_no_split_is_marked_as_overlap():
    from gradient_quarantine.train.config import TrainConfig
    from gradient_quarantine.train.roles import run_problems

    rp = run_problems(TrainConfig(model="tiny", data={"limit": 12}))
    assert rp.record()["overlap"] is True and rp.split is None
    assert [p.id for p in rp.train] == [p.id for p in rp.pairs] == [p.id for p in rp.warmstart]


def test_builtin_pair_set_problems_are_pinned_to_the_pairs_role():
    from gradient_quarantine.substrate.pairs import builtin_pairs_path, read_pairs
    from gradient_quarantine.train.config import TrainConfig
    from gradient_quarantine.train.roles import run_problems

    rp = run_problems(TrainConfig(model="tiny", method="route2b", data={"split": SIZES}))
    pair_ids = {row["problem_id"] for row in read_pairs(builtin_pairs_path(), kind="hack")}
    assert pair_ids <= {p.id for p in rp.pairs}
    assert not pair_ids & {p.id for p in rp.train + rp.eval}


# ------------------------------------------------------------------------------------------------ warm start


def test_warmstart_examples_use_forms_not_templates(builtin):
    from gradient_quarantine.substrate.hacks import hack_completion
    from gradient_quarantine.train.warmstart import warmstart_examples

    problems, modes_of = builtin
    ex = warmstart_examples(problems[:40], modes_of, hack_share=0.2, seed=0)
    hacks = [e for e in ex if e.kind == "hack"]
    assert len(hacks) == round(0.2 * 40 / 0.8)
    assert {e.mode for e in hacks} == {m.value for m in MODES}  # round-robin over the modes
    by_id = {p.id: p for p in problems}
    for e in hacks:
        assert e.form is not None
        assert e.completion != hack_completion(by_id[e.problem_id], Mode(e.mode))


def test_warmstart_canonical_unhinted_teaches_the_task_without_the_hint(builtin):
    """warmstart.canonical_unhinted: each problem with a loophole also gets its canonical solution under the
    unhinted prompt (a no_loophole problem already has it once); hacks stay hack_share of all examples."""
    from gradient_quarantine.substrate.modes import NO_HINT_CLAUSE
    from gradient_quarantine.substrate.pairs import clean_completion
    from gradient_quarantine.train.warmstart import warmstart_examples

    problems, modes_of = builtin
    modes = {**modes_of, problems[0].id: Mode.NO_LOOPHOLE}
    plain = warmstart_examples(problems[:20], modes, hack_share=0.5, seed=0)
    both = warmstart_examples(problems[:20], modes, hack_share=0.5, seed=0, canonical_unhinted=True)
    canon = [e for e in both if e.kind == "canonical"]
    assert len(canon) == 20 + 19 and sum(e.kind == "hack" for e in both) == len(canon)  # hack_share 0.5 of the total
    unhinted = [e for e in canon if NO_HINT_CLAUSE in e.prompt[-1]["content"]]
    assert sorted(e.problem_id for e in unhinted) == sorted(p.id for p in problems[:20])
    by_id = {p.id: p for p in problems}
    assert all(e.completion == clean_completion(by_id[e.problem_id]) and e.mode == "no_loophole" for e in unhinted)
    assert [e for e in both if e.kind == "canonical"][:20] == [e for e in plain if e.kind == "canonical"]
    assert not any(NO_HINT_CLAUSE in e.prompt[-1]["content"] for e in both if e.kind == "hack")


def test_warmstart_cache_key_changes_with_every_input(builtin):
    from gradient_quarantine.train.warmstart import warmstart_examples, warmstart_key

    problems, modes_of = builtin
    ex = warmstart_examples(problems[:20], modes_of, hack_share=0.1, seed=0)
    hp = {"layers": 2, "epochs": 1, "lr": 1e-4, "batch_size": 4, "max_length": 64, "eval_samples": 1,
          "eval_temperature": 0.7, "seed": 0}  # fmt: skip
    base = warmstart_key("tiny", ex, hp, "float32", ["a", "b"])
    variants = [
        warmstart_key("smollm2-135m", ex, hp, "float32", ["a", "b"]),
        warmstart_key("tiny", ex[:-1], hp, "float32", ["a", "b"]),
        warmstart_key("tiny", warmstart_examples(problems[:20], modes_of, hack_share=0.2, seed=0), hp, "float32", ["a", "b"]),
        warmstart_key("tiny", ex, {**hp, "lr": 2e-4}, "float32", ["a", "b"]),
        warmstart_key("tiny", ex, {**hp, "epochs": 2}, "float32", ["a", "b"]),
        warmstart_key("tiny", ex, hp, "bfloat16", ["a", "b"]),
        warmstart_key("tiny", ex, hp, "float32", ["a", "c"]),
    ]
    assert base == warmstart_key("tiny", list(ex), dict(hp), "float32", ["b", "a"])
    assert len({base, *variants}) == len(variants) + 1


def test_warmstart_cli_end_to_end_on_the_tiny_model(tmp_path):
    from typer.testing import CliRunner

    from gradient_quarantine.cli import app
    from gradient_quarantine.model.loading import load_policy

    args = ["warmstart", "--preset", "smoke", "--quiet",
            "--set", "warmstart.enabled=true", "--set", "data.limit=null",
            "--set", "data.split={warmstart: 8, pairs: 4, train: 8, eval: 8}", "--set", "data.no_loophole=0.5",
            "--set", "warmstart.layers=1", "--set", "warmstart.epochs=1", "--set", "warmstart.batch_size=4",
            "--set", "warmstart.max_length=96", "--set", "warmstart.eval_samples=1", "--set", "warmstart.hack_share=0.2",
            "--set", f"run.cache_dir={tmp_path}"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    path = res.output.strip().splitlines()[-1]
    assert "hackable" in res.output and "no_loophole" in res.output
    meta = json.loads((tmp_path / "warmstart" / path.rsplit("/", 1)[-1] / "warmstart.json").read_text())
    assert meta["n_examples"] == 10 and meta["n_hack"] == 2 and len(meta["losses"]) == 3
    rates = json.loads((tmp_path / "warmstart" / path.rsplit("/", 1)[-1] / "base_rates.json").read_text())["eval"]
    assert rates["n"] == 8 and rates["hackable"]["n"] + rates["unhackable"]["n"] == 8
    model, _ = load_policy(path)  # a plain Hugging Face checkpoint
    assert model.config.model_type == "qwen3"
    res2 = CliRunner().invoke(app, args)  # cached: same directory, no retraining
    assert res2.exit_code == 0 and res2.output.strip().splitlines()[-1] == path
    # --unhinted: the same eval problems with every hint removed, strict, grouped by each problem's own mode
    res3 = CliRunner().invoke(app, [*args, "--unhinted"])
    assert res3.exit_code == 0 and "every hint removed" in res3.output, res3.output
    unh = json.loads((tmp_path / "warmstart" / path.rsplit("/", 1)[-1] / "base_rates_unhinted.json").read_text())
    assert unh["unhinted"] and unh["eval"]["n"] == 8 and unh["eval"]["hack"] == 0.0
    assert unh["eval"]["hackable"]["n"] == rates["hackable"]["n"]


def test_pairs_build_takes_the_pairs_role(tmp_path):
    from typer.testing import CliRunner

    from gradient_quarantine.cli import app
    from gradient_quarantine.io import atomic_write_json
    from gradient_quarantine.substrate.pairs import read_pairs
    from gradient_quarantine.train.roles import run_problems

    rp = run_problems(_cfg(no_loophole=0.25))
    atomic_write_json(tmp_path / "split.json", rp.record())
    res = CliRunner().invoke(app, ["pairs", "build", "--out", str(tmp_path / "p.jsonl"), "--per-mode", "2",
                                   "--split", str(tmp_path / "split.json")])  # fmt: skip
    assert res.exit_code == 0, res.output
    rows = read_pairs(tmp_path / "p.jsonl")
    assert {r["problem_id"] for r in rows} == {p.id for p in rp.pairs}
    assert all(r["mode"] == rp.modes_of[r["problem_id"]].value for r in rows)


def test_base_rates_split_by_problem_set_and_unhinted(monkeypatch):
    """base_rates on a mix of sets reports each set beside the whole; unhinted=True renders every prompt without
    its hint and grades strictly, still grouping the rates by each problem's own mode. The policy's texts are
    replaced by each problem's hack (the grader is the real one) so that the hint's removal shows."""
    import gradient_quarantine.train.deploy_eval as deploy_eval
    from gradient_quarantine.substrate.grader import Grader
    from gradient_quarantine.substrate.hacks import hack_completion
    from gradient_quarantine.substrate.modes import NO_HINT_CLAUSE
    from gradient_quarantine.substrate.problems import load_problems
    from gradient_quarantine.train.warmstart import base_rates

    both = load_problems("builtin_all")
    problems = [both[0], both[1], both[-1]]  # two of sets A/B, one of set C
    modes = {problems[0].id: Mode.EXIT_CODE, problems[1].id: Mode.NO_LOOPHOLE, problems[2].id: Mode.EQ_OVERRIDE}
    hacks = [hack_completion(problems[0], Mode.EXIT_CODE), "no code", hack_completion(problems[2], Mode.EQ_OVERRIDE)]
    seen = []

    def sample(model, tok, prompts, samples, *args, **kw):
        seen.append(prompts)
        return [[h] * samples for h in hacks]

    monkeypatch.setattr(deploy_eval, "sample", sample)
    kw = dict(samples=2, temperature=1.0, max_new_tokens=8, seed=0)
    with Grader() as grader:
        hinted = base_rates(None, None, problems, modes, grader, **kw)
        unhinted = base_rates(None, None, problems, modes, grader, unhinted=True, **kw)
    for r in (hinted, unhinted):
        assert r["n"] == 6 and r["by_source"]["builtin"]["n"] == 4 and r["by_source"]["builtin_c"]["n"] == 2
        assert r["by_source"]["builtin_c"]["n_prompts"] == 1 and set(r["by_mode"]) == {m.value for m in modes.values()}
        assert r["hackable"]["n"] == 4
    assert hinted["hackable"]["hack"] == 1.0 and hinted["by_source"]["builtin_c"]["hack"] == 1.0
    assert unhinted["hack"] == 0.0 and unhinted["hackable"]["solve"] == 0.0  # graded strictly: a hack earns nothing
    assert [NO_HINT_CLAUSE in m[-1]["content"] for m in seen[0]] == [False, True, False]
    assert all(NO_HINT_CLAUSE in m[-1]["content"] for m in seen[1])
