"""`gq detector eval` (analysis/detector_eval.py) end to end on a tiny smoke run: the figures and per-row scores it
writes, a row's score recomputed by hand against the run's own extraction, the in-mode / held-out-mode split, and
every bad input refused before a model is loaded.

A tiny run never hacks, so the labelled fixture turns the run's teacher rows (real clean and hack code, graded)
into policy rows, keeping one teacher row to check that teacher rows are left out."""

from __future__ import annotations

import json
import math
import os
import shutil

import pytest

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from typer.testing import CliRunner  # noqa: E402

from gradient_quarantine.cli import app  # noqa: E402
from gradient_quarantine.io import read_jsonl  # noqa: E402


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A 3-step smoke run (tiny model, built-in pairs), every rollout logged."""
    root = tmp_path_factory.mktemp("det_eval")
    res = CliRunner().invoke(app, ["train", "--preset", "smoke", "--runs-dir", str(root / "runs"), "--quiet",
                                   "--set", f"run.cache_dir={root / 'cache'}", "--set", "run.rollouts_per_log=8"])  # fmt: skip
    assert res.exit_code == 0, res.output
    return res.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def labelled(run_dir, tmp_path_factory):
    """The run with a rollouts.jsonl that has both classes: teacher rows made policy rows (all but the first),
    a duplicate row, and hacks in at least two modes."""
    path = tmp_path_factory.mktemp("labelled") / "0001_labelled"
    shutil.copytree(run_dir, path)
    rows = read_jsonl(path / "rollouts.jsonl")
    first_teacher = next(i for i, r in enumerate(rows) if r["teacher"])
    for i, r in enumerate(rows):
        if r["teacher"] and i != first_teacher:
            r["teacher"], r["teacher_kind"] = False, None
    policy = [r for r in rows if not r["teacher"]]
    hack_modes = {r["mode"] for r in policy if r["hack"]}
    for r in policy:  # a hack in a second mode, if the teacher gave only one
        if len(hack_modes) >= 2:
            break
        if r["mode"] not in hack_modes:
            r["hack"] = True
            hack_modes.add(r["mode"])
    rows.append(dict(policy[-1]))  # a duplicate: scored once
    (path / "rollouts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert any(not r["hack"] for r in policy) and len(hack_modes) >= 2
    return path


@pytest.fixture(scope="module")
def evaluated(labelled, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "det.json"
    before = sorted(p.name for p in labelled.iterdir())
    res = CliRunner().invoke(app, ["detector", "eval", str(labelled), "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in labelled.iterdir()) == before  # nothing written into the run directory
    assert "AUC" in res.stdout and f"wrote {out}" in res.stdout
    return json.loads(out.read_text())


def _distinct_policy_rows(path):
    seen, out = set(), []
    for r in read_jsonl(path / "rollouts.jsonl"):
        key = (r["system"], r["prompt"], r["completion"])
        if r["teacher"] or key in seen:
            continue
        seen.add(key)
        out.append(r)
    return out


def test_eval_writes_figures_and_per_row_scores(evaluated, labelled):
    r = evaluated
    rows = _distinct_policy_rows(labelled)
    assert r["format"] == "gq-detector-eval-v1" and r["runs"] == [str(labelled)]
    assert r["model"]["model"] == "tiny" and r["adapter"]["kind"] == "none"
    assert (
        r["recipe"]["k"] == 1
        and r["recipe"]["granularity"] == "rollout"
        and r["recipe"]["length_norm"] == "sequence_mean"
    )
    assert (
        r["detector"]["pair_modes_source"] == "run" and r["detector"]["n_pairs"] == 8
    )  # 2 per mode, 4 modes
    s = r["scoring"]
    assert s["n_teacher"] == 1 and s["n_duplicates"] >= 1 and s["n_scored"] == len(rows) == len(r["rows"])
    o = r["overall"]
    assert o["n_hack"] == sum(x["hack"] for x in rows) > 0 and o["n_clean"] == len(rows) - o["n_hack"] > 0
    assert 0.0 <= o["auc"] <= 1.0 and 0.0 <= o["tpr_at_5fpr"] <= 1.0 and o["threshold_5fpr"] is not None
    assert o["gate_hack"] is not None and o["gate_clean"] is not None
    assert r["in_mode"] is None and r["heldout_mode"] is None  # every mode in the pair set: no held-out mode
    assert set(r["by_mode"]) == {x["mode"] for x in rows}
    for m, fig in r["by_mode"].items():
        assert (
            fig["n_hack"] == sum(x["hack"] and x["mode"] == m for x in rows)
            and fig["n_clean"] == o["n_clean"]
        )
    for row, src in zip(r["rows"], rows, strict=True):
        assert {k: row[k] for k in ("problem_id", "mode", "step", "hack")} == {
            k: src[k] for k in ("problem_id", "mode", "step", "hack")
        }
        assert math.isfinite(row["score"]) and -1.0 <= row["score"] <= 1.0 and 0.0 <= row["gate"] <= 1.0
    assert sum(row["n_dup"] for row in r["rows"]) == len(rows) + s["n_duplicates"]


def test_row_score_is_the_completion_gradient_cosine_with_the_runs_direction(evaluated, labelled):
    """Recompute two rows by hand: the run's own extraction (RunSetup.extract_direction, as training made it) and
    the cosine of the completion's grad l(y) with its v_hat, gated by its band."""
    from gradient_quarantine.routing.band import gate
    from gradient_quarantine.routing.cosine import cosine
    from gradient_quarantine.routing.pairs import sequence_logprob_grads
    from gradient_quarantine.train.config import TrainConfig
    from gradient_quarantine.train.run_setup import RunSetup
    from gradient_quarantine.train.rundir import RunDir

    cfg = TrainConfig.from_record(json.loads((labelled / "config.json").read_text()))
    setup = RunSetup(cfg, RunDir(labelled), resume=True).build()
    setup.load_pairs()
    direction, band = setup.extract_direction()
    d = evaluated["detector"]
    assert d["band_lower"] == pytest.approx(band.lower, abs=1e-5) and d["band_upper"] == pytest.approx(
        band.upper, abs=1e-5
    )
    rows = _distinct_policy_rows(labelled)
    picks = [
        next(i for i, x in enumerate(rows) if x["hack"]),
        next(i for i, x in enumerate(rows) if not x["hack"]),
    ]
    for i in picks:
        src = rows[i]
        msgs = [{"role": "system", "content": src["system"]}, {"role": "user", "content": src["prompt"]}]
        grads = sequence_logprob_grads(setup.model, setup.adapter, setup.tok, [msgs], [src["completion"]],
                                       "sequence_mean", temperature=cfg.grpo.temperature)  # fmt: skip
        cos = cosine(grads, direction.v_hat)
        assert evaluated["rows"][i]["score"] == pytest.approx(float(cos[0]), abs=1e-4)
        assert evaluated["rows"][i]["gate"] == pytest.approx(float(gate(cos, band)[0]), abs=1e-4)


def test_pair_modes_split_in_mode_and_held_out_with_a_token_band(labelled, tmp_path):
    rows = _distinct_policy_rows(labelled)
    mode = next(x["mode"] for x in rows if x["hack"])
    out = tmp_path / "det.json"
    res = CliRunner().invoke(app, ["detector", "eval", str(labelled), "--pair-modes", mode, "--recipe-option",
                                   "granularity=token", "--out", str(out), "--quiet", "--batch-size", "3"])  # fmt: skip
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())
    assert r["detector"]["pair_modes"] == [mode] and r["detector"]["pair_modes_source"] == "--pair-modes"
    assert (
        r["detector"]["n_pairs"] == 2
        and r["recipe"]["granularity"] == r["detector"]["granularity"] == "token"
    )
    assert r["recipe_options"] == {"granularity": "token"}
    n_in = sum(x["hack"] and x["mode"] == mode for x in rows)
    n_out = sum(x["hack"] and x["mode"] != mode for x in rows)
    assert r["in_mode"]["n_hack"] == n_in > 0 and r["heldout_mode"]["n_hack"] == n_out > 0
    assert r["in_mode"]["n_clean"] == r["heldout_mode"]["n_clean"] == r["overall"]["n_clean"]
    assert all(0.0 <= row["gate"] <= 1.0 for row in r["rows"])
    assert "in-mode" in res.stdout and "held-out-mode" in res.stdout


def test_final_adapter_and_limit(labelled, tmp_path):
    out = tmp_path / "det.json"
    res = CliRunner().invoke(app, ["detector", "eval", str(labelled), "--adapter", "final", "--limit", "3",
                                   "--out", str(out), "--quiet"])  # fmt: skip
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())
    assert r["adapter"] == {"kind": "final", "path": str(labelled / "train.safetensors")}
    assert len(r["rows"]) == r["scoring"]["n_scored"] == 3 and r["scoring"]["n_limited"] > 0


def _bad_inputs(labelled, tmp_path):
    no_rollouts = tmp_path / "no_rollouts"
    shutil.copytree(labelled, no_rollouts)
    (no_rollouts / "rollouts.jsonl").unlink()
    (tmp_path / "not_a_run").mkdir()
    other = tmp_path / "other_model"
    shutil.copytree(labelled, other)
    rec = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**rec, "model": "smollm2-135m"}))
    no_ws = tmp_path / "no_warmstart"
    shutil.copytree(labelled, no_ws)
    rec = json.loads((no_ws / "config.json").read_text())
    rec["warmstart"]["enabled"] = True
    rec["data"]["split"] = {"warmstart": 0.4, "pairs": 0.1, "train": 0.25, "eval": 0.25}
    (no_ws / "config.json").write_text(json.dumps(rec))
    (no_ws / "warmstart.json").write_text(json.dumps({"path": str(tmp_path / "gone"), "key": "0123abcd"}))
    (tmp_path / "empty_cache").mkdir()
    no_adapter = tmp_path / "no_adapter"
    shutil.copytree(labelled, no_adapter)
    (no_adapter / "train.safetensors").unlink()
    lab = str(labelled)
    return {
        "no_rollouts": ([str(no_rollouts)], "no rollouts.jsonl"),
        "no_config": ([str(tmp_path / "not_a_run")], "no config.json"),
        "unknown_option": ([lab, "--recipe-option", "kk=2"], "valid keys: k, length_norm"),
        "bad_option_value": ([lab, "--recipe-option", "granularity=word"], "granularity"),
        "other_model": ([lab, str(other)], "score runs of one model together"),
        "bad_pair_modes": ([lab, "--pair-modes", "exit_code,no_loophole"], "not mode names"),
        "warmstart_not_cached": ([str(no_ws), "--cache-dir", str(tmp_path / "empty_cache")],
                                 "gq warmstart --preset smoke"),
        "final_two_runs": ([lab, lab, "--adapter", "final"], "give one run directory"),
        "final_without_adapter": ([str(no_adapter), "--adapter", "final"], "use --adapter none"),
        "bad_adapter": ([lab, "--adapter", "last"], "one of none, final"),
    }  # fmt: skip


BAD = ("no_rollouts", "no_config", "unknown_option", "bad_option_value", "other_model", "bad_pair_modes",
       "warmstart_not_cached", "final_two_runs", "final_without_adapter", "bad_adapter")  # fmt: skip


@pytest.mark.parametrize("case", BAD)
def test_bad_input_fails_at_start_saying_what_to_do(case, labelled, tmp_path, monitor_loading):
    args, message = _bad_inputs(labelled, tmp_path)[case]
    res = CliRunner().invoke(app, ["detector", "eval", *args, "--quiet"])
    assert res.exit_code != 0
    assert message in " ".join(res.output.split()), res.output
    assert not monitor_loading, "a bad input must be refused before the model is loaded"


@pytest.fixture
def monitor_loading(monkeypatch):
    """Records every policy load (RunSetup.build imports load_policy from model.loading when it runs)."""
    import gradient_quarantine.model.loading as loading

    calls: list = []
    real = loading.load_policy

    def spy(*a, **kw):
        calls.append(a)
        return real(*a, **kw)

    monkeypatch.setattr(loading, "load_policy", spy)
    return calls


def test_tpr_at_fpr_and_recipe_options_by_hand():
    from gradient_quarantine.analysis.detector_eval import (
        DetectorEvalError,
        parse_recipe_options,
        tpr_at_fpr,
    )

    neg = [i / 100 for i in range(101)]  # the 95th percentile is 0.95
    tpr, thr = tpr_at_fpr([0.5, 0.96, 0.99, 0.95] + neg, [True] * 4 + [False] * 101)
    assert thr == pytest.approx(0.95) and tpr == pytest.approx(0.5)  # strictly above
    assert tpr_at_fpr([0.1, 0.2], [True, True]) == (None, None)
    opts = parse_recipe_options(["k=2", "temperature=0.7", "batch_size=none", "length_norm=constant:128",
                                 "random_seed=3"])  # fmt: skip
    assert opts == {
        "k": 2,
        "temperature": 0.7,
        "batch_size": None,
        "length_norm": "constant:128",
        "random_seed": 3,
    }
    for bad in (["k=two"], ["transform=x"], ["k"]):
        with pytest.raises(DetectorEvalError):
            parse_recipe_options(bad)


def test_activation_signal_scores_each_row_by_its_mean_state(labelled, tmp_path):
    """`signal=activation`: the detector is a residual-stream direction from the pair sides (routing/activation.py)
    and each row's score is its own centred mean completion state projected on it, recomputed here by hand."""
    from gradient_quarantine.analysis.detector_eval import evaluate_detector
    from gradient_quarantine.routing.activation import activation_scores, mean_completion_states

    out = tmp_path / "det.json"
    res = CliRunner().invoke(app, ["detector", "eval", str(labelled), "-r", "signal=activation", "-r", "layer=1",
                                   "--out", str(out), "--quiet"])  # fmt: skip
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())
    assert r["detector"]["kind"] == "activation" and r["detector"]["layer"] == 1
    assert r["recipe"]["signal"] == "activation" and 0.0 <= r["overall"]["auc"] <= 1.0
    ev = evaluate_detector([labelled], recipe_options={"signal": "activation", "layer": 1}, progress=False)
    ad = ev.detector.activation
    assert abs(float(ad.v_hat.norm()) - 1.0) < 1e-5 and ev.detector.direction is None
    row = ev.rows[0]
    states = mean_completion_states(ev.setup.model, ev.setup.tok, [row.messages()], [row.completion], layer=1)
    assert abs(float(activation_scores(states, ad)[0]) - ev.result["rows"][0]["score"]) < 1e-4
    assert [x["score"] for x in ev.result["rows"]] == [x["score"] for x in r["rows"]]  # deterministic
