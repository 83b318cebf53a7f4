"""train/leakage.py: the step's main-axis gradient before and after routing is what autograd and the router give,
the leakage ratio is 1 with nothing routed and the kept share of the hack-ward part otherwise, and a route2b run
logs it every `run.leakage_every` steps (vanilla: 1)."""

from __future__ import annotations

import os

import pytest
import torch
from routing_fixtures import grpo_batch, grpo_loss, make_pairs

from gradient_quarantine.model.svd_adapter import AdapterConfig, attach_svd_adapter
from gradient_quarantine.routing.band import Band
from gradient_quarantine.routing.capture import GradCapture
from gradient_quarantine.routing.detector import DetectorRecipe, build_detector
from gradient_quarantine.routing.router import Router
from gradient_quarantine.train.leakage import StepGradient, leakage, step_gradient


def test_leakage_is_the_kept_share_of_the_hack_ward_part():
    u = {"a": torch.tensor([1.0, 0.0]), "b": torch.tensor([0.0, 2.0])}
    whole = {"a": torch.tensor([-2.0, 5.0]), "b": torch.tensor([1.0, -1.0])}  # <whole, u> = -2 - 2 = -4: hack-ward
    same = leakage(StepGradient(whole, whole), u)
    assert same["leak/leakage"] == pytest.approx(1.0)
    assert same["leak/hackward"] == pytest.approx(4.0 / (float(torch.cat(list(whole.values())).norm()) * 5**0.5))
    kept = {"a": torch.tensor([-0.5, 5.0]), "b": torch.tensor([1.0, -0.5])}  # <kept, u> = -0.5 - 1 = -1.5
    assert leakage(StepGradient(kept, whole), u)["leak/leakage"] == pytest.approx(1.5 / 4.0)
    flat = leakage(StepGradient(whole, {"a": torch.zeros(2), "b": torch.zeros(2)}), u)
    assert flat == {"leak/leakage": None, "leak/hackward": None}


@pytest.mark.parametrize("relation", ["disjoint", "shared"])
def test_step_gradient_is_autograds_whole_gradient_and_what_main_kept(tiny_model_and_tokenizer, relation):
    model, tok = tiny_model_and_tokenizer
    adapter = attach_svd_adapter(model, AdapterConfig(rank=8, knob_relation=relation, knob_rank=4))
    det = build_detector(model, adapter, tok, make_pairs(), DetectorRecipe())
    batch = grpo_batch(tok)
    for p in adapter.parameters():
        p.grad = None
    grpo_loss(model, *batch).backward()  # plain autograd: the whole gradient
    plain = {n: m.dS_main.grad.clone() for n, m in adapter.modules.items()}
    for p in adapter.parameters():
        p.grad = None
    router = Router(adapter, det.direction, Band(lower=-0.05, upper=0.05))  # routes part of the batch
    with GradCapture(adapter) as cap, router.intercept():
        grpo_loss(model, *batch).backward()
        result = router.route(cap)
        router.apply(result)
    g = step_gradient(adapter, [result])
    assert 0.0 < float(result.f.mean()) < 1.0
    for n in plain:
        torch.testing.assert_close(g.whole[n], plain[n].float(), atol=1e-6, rtol=1e-4)
        torch.testing.assert_close(g.main[n], adapter.modules[n].dS_main.grad.float())
    assert any(not torch.allclose(g.main[n], g.whole[n]) for n in plain)  # routing took some of it


@pytest.mark.parametrize("method", ["route2b", "vanilla"])
def test_a_run_logs_leakage_on_its_probe_steps(tmp_path, method):
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from typer.testing import CliRunner

    from gradient_quarantine.cli import app
    from gradient_quarantine.io import read_jsonl

    res = CliRunner().invoke(app, ["train", "--preset", "smoke", "--runs-dir", str(tmp_path / "runs"), "--quiet",
                                   "--set", f"run.cache_dir={tmp_path / 'cache'}", "--set", "steps=3",
                                   "--set", f"method={method}", "--set", "run.leakage_every=2"])  # fmt: skip
    assert res.exit_code == 0, res.output
    run = tmp_path / "runs" / res.stdout.strip().splitlines()[-1].split("/")[-1]
    rows = read_jsonl(run / "metrics.jsonl")
    assert [r["step"] for r in rows if "leak/leakage" in r] == [1, 2]  # step 1 and every 2nd
    for r in rows:
        if "leak/leakage" in r and r["leak/leakage"] is not None:
            assert -1.0 <= r["leak/hackward"] <= 1.0
            if method == "vanilla":
                assert r["leak/leakage"] == pytest.approx(1.0)
