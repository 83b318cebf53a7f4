"""train/knob_optim.py: SplitAdamW's two updates add up to AdamW's update of the summed gradient, the knob's share
follows its share of the gradient, it is AdamW itself when nothing is routed, its state survives a checkpoint; and
the config accepts it only for a shared knob with one learning rate."""

from __future__ import annotations

import copy

import pytest
import torch

from gradient_quarantine.train.knob_optim import SplitAdamW, clip_split_


def _params(n: int = 3, seed: int = 0) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    g = torch.Generator().manual_seed(seed)
    main = [torch.nn.Parameter(torch.randn(5, generator=g)) for _ in range(n)]
    knob = [torch.nn.Parameter(torch.randn(5, generator=g)) for _ in range(n)]
    return main, knob


def _grads(steps: int, n: int, seed: int = 1) -> list[list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(5, generator=g) for _ in range(n)] for _ in range(steps)]


def test_updates_add_up_to_adamw_on_the_summed_gradient():
    """Routed shares f (per coordinate, changing every step): main gets (1 - f) G, knob f G. main + knob follows
    AdamW on G exactly (same weight decay on both), whatever the split."""
    main, knob = _params()
    ref = [torch.nn.Parameter((a + b).detach().clone()) for a, b in zip(main, knob, strict=True)]
    opt = SplitAdamW(main, knob, lr=0.05, weight_decay=0.1, weight_decay_knob=0.1)
    opt_ref = torch.optim.AdamW(ref, lr=0.05, weight_decay=0.1)
    gen = torch.Generator().manual_seed(2)
    for G in _grads(6, 3):
        for a, b, r, gi in zip(main, knob, ref, G, strict=True):
            f = torch.rand(5, generator=gen)
            a.grad, b.grad, r.grad = (1 - f) * gi, f * gi, gi.clone()
        opt.step()
        opt_ref.step()
        for a, b, r in zip(main, knob, ref, strict=True):
            torch.testing.assert_close(a + b, r, atol=1e-6, rtol=1e-6)


def test_knob_keeps_its_share_and_nothing_routed_is_adamw():
    """A constant routed share c: the knob moves c of the whole update and the main knob 1 - c (no weight decay);
    c = 0: the main knob's trajectory is AdamW's and the knob never moves."""
    for c in (0.0, 0.3, 1.0):
        main, knob = _params(seed=3)
        start_m = [p.detach().clone() for p in main]
        start_k = [p.detach().clone() for p in knob]
        ref = [torch.nn.Parameter(p.detach().clone()) for p in main]
        opt, opt_ref = SplitAdamW(main, knob, lr=0.1), torch.optim.AdamW(ref, lr=0.1, weight_decay=0.0)
        for G in _grads(5, 3, seed=4):
            for a, b, r, gi in zip(main, knob, ref, G, strict=True):
                a.grad, b.grad, r.grad = (1 - c) * gi, c * gi, gi.clone()
            opt.step()
            opt_ref.step()
        for a, b, r, a0, b0 in zip(main, knob, ref, start_m, start_k, strict=True):
            total = r - a0  # AdamW's whole update
            torch.testing.assert_close(b - b0, c * total, atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(a - a0, (1 - c) * total, atol=1e-6, rtol=1e-5)


def test_state_survives_a_checkpoint_and_groups_are_named():
    main, knob = _params()
    opt = SplitAdamW(main, knob, lr=0.1)
    assert [g["name"] for g in opt.param_groups] == ["main", "knob"]
    for G in _grads(2, 3):
        for a, b, gi in zip(main, knob, G, strict=True):
            a.grad, b.grad = 0.5 * gi, 0.5 * gi
        opt.step()
    main2 = [torch.nn.Parameter(p.detach().clone()) for p in main]
    knob2 = [torch.nn.Parameter(p.detach().clone()) for p in knob]
    opt2 = SplitAdamW(main2, knob2, lr=0.1)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))  # as a checkpoint's torch.save / torch.load would
    for G in _grads(1, 3, seed=9):
        for a, b, a2, b2, gi in zip(main, knob, main2, knob2, G, strict=True):
            a.grad, b.grad, a2.grad, b2.grad = gi, 0 * gi, gi.clone(), 0 * gi
        opt.step()
        opt2.step()
    for a, a2 in zip(main + knob, main2 + knob2, strict=True):
        torch.testing.assert_close(a, a2)


def test_clip_keeps_the_split_and_bad_pairs_fail():
    main, knob = _params()
    for a, b in zip(main, knob, strict=True):
        a.grad, b.grad = torch.full((5,), 3.0), torch.full((5,), 1.0)
    norm = clip_split_(main, knob, max_norm=1.0)
    assert norm == pytest.approx(float(torch.full((15,), 4.0).norm()), rel=1e-6)
    total = torch.cat([a.grad + b.grad for a, b in zip(main, knob, strict=True)]).norm()
    assert float(total) == pytest.approx(1.0, rel=1e-4)
    assert all(torch.allclose(a.grad, 3 * b.grad) for a, b in zip(main, knob, strict=True))
    with pytest.raises(ValueError, match="equally shaped"):
        SplitAdamW(main, knob[:2], lr=0.1)
    with pytest.raises(ValueError, match="overlap"):
        SplitAdamW(main, main, lr=0.1)


def test_config_takes_split_only_for_a_shared_knob_with_one_lr():
    from gradient_quarantine.experiments.presets import build_config

    cfg = build_config("smoke", ["adapter.knob=shared", "grpo.knob_optimizer=split"])
    assert "_shared_split" in cfg.derived_arm()
    with pytest.raises(ValueError, match="needs adapter.knob=shared"):
        build_config("smoke", ["grpo.knob_optimizer=split"])
    with pytest.raises(ValueError, match="one learning rate"):
        build_config("smoke", ["adapter.knob=shared", "grpo.knob_optimizer=split", "grpo.lr_knob=0.5"])


def test_a_routed_smoke_run_with_a_split_shared_knob_keeps_every_routed_gradient(tmp_path):
    """End to end on the tiny model: route2b with a shared knob and SplitAdamW trains, checkpoints and evaluates;
    every routed step's capture is 1 (nothing dropped) and the knob moved."""
    import os

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from safetensors.torch import load_file
    from typer.testing import CliRunner

    from gradient_quarantine.cli import app
    from gradient_quarantine.io import read_jsonl

    res = CliRunner().invoke(app, ["train", "--preset", "smoke", "--runs-dir", str(tmp_path / "runs"), "--quiet",
                                   "--set", f"run.cache_dir={tmp_path / 'cache'}", "--set", "steps=2",
                                   "--set", "adapter.knob=shared", "--set", "grpo.knob_optimizer=split"])  # fmt: skip
    assert res.exit_code == 0, res.output
    run = tmp_path / "runs" / res.stdout.strip().splitlines()[-1].split("/")[-1]
    rows = read_jsonl(run / "metrics.jsonl")
    routed = [r for r in rows if r.get("routing/frout")]
    assert routed and all(r["routing/capture"] == pytest.approx(1.0) for r in routed)
    knob = [t for k, t in load_file(run / "train.safetensors").items() if "knob" in k]
    assert knob and any(float(t.abs().sum()) > 0 for t in knob)
