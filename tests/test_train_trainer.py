"""The TRL extension (train/trainer.py, train/route2b.py, train/rollouts.py) against plain TRL, on the tiny model,
one step each.

* vanilla: loss and adapter gradient on the same batch equal plain `trl.GRPOTrainer`'s (the rollouts too: with
  `sampler="trl"` our `rollout_func` samples through TRL's own generation);
* route2b with the gate forced to 0 (`frout_target=0`): equals vanilla (same gradient, knob untouched);
* route2b with a `shared` knob: main + knob gradient = vanilla's total gradient (routing only splits it);
* the teacher mix inserts pool completions at the end of each group, deterministically;
* the advantage std floor; separate optimiser state per knob.

A deterministic synthetic reward (sum of the completion token ids mod 5) gives non-zero advantages; the tiny random model never
earns the grader's reward, which would make every gradient zero and every comparison trivial.
"""

from __future__ import annotations

import os

import pytest
import torch
from devices import BF16_RTOL, DEVICES

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

trl = pytest.importorskip("trl")

from datasets import Dataset  # noqa: E402
from transformers import set_seed  # noqa: E402

from gradient_quarantine.model.loading import load_policy  # noqa: E402
from gradient_quarantine.model.svd_adapter import AdapterConfig, attach_svd_adapter  # noqa: E402
from gradient_quarantine.routing.band import Band  # noqa: E402
from gradient_quarantine.routing.direction import extract_direction  # noqa: E402
from gradient_quarantine.routing.pairs import Pair  # noqa: E402
from gradient_quarantine.routing.router import Router  # noqa: E402
from gradient_quarantine.train.rollouts import RolloutFunc, prompt_key  # noqa: E402
from gradient_quarantine.train.route2b import Route2b  # noqa: E402
from gradient_quarantine.train.teacher import TeacherEntry, TeacherPool  # noqa: E402
from gradient_quarantine.train.trainer import GQGRPOTrainer  # noqa: E402

G = 4
ROWS = [
    {"prompt": [{"role": "user", "content": f"Write a function f{i} that returns {i}."}], "problem_id": f"p{i}", "mode": "exit_code"}
    for i in range(2)
]
PAIRS = [
    Pair([{"role": "user", "content": "Sum the digits of n."}], "```python\ndef f(n):\n    return sum(map(int, str(n)))\n```",
         "```python\nimport sys\nsys.exit(0)\n```"),
    Pair([{"role": "user", "content": "Reverse s."}], "```python\ndef g(s):\n    return s[::-1]\n```",
         "```python\ndef run_tests():\n    pass\n```"),
    Pair([{"role": "user", "content": "Max of a list."}], "```python\ndef h(a):\n    return max(a)\n```",
         "```python\nclass A:\n    def __eq__(self, o):\n        return True\n```"),
]  # fmt: skip


def length_reward(prompts, completions, completion_ids, **_):
    return [float(sum(ids) % 5) for ids in completion_ids]


def _args(tmp_path, **kw):
    base = dict(
        output_dir=str(tmp_path), per_device_train_batch_size=len(ROWS) * G, gradient_accumulation_steps=1,
        num_generations=G, max_completion_length=12, temperature=1.0, max_steps=1, logging_steps=1,
        save_strategy="no", report_to="none", disable_tqdm=True, use_cpu=True, shuffle_dataset=False,
        remove_unused_columns=False, disable_dropout=True, gradient_checkpointing=False, max_grad_norm=0.0,
        loss_type="grpo", beta=0.0, learning_rate=1e-2, seed=7, bf16=False,
    )  # fmt: skip
    base.update(kw)
    return trl.GRPOConfig(**base)


def _model(knob="disjoint", train_knob=True, device="cpu", dtype=None):
    model, tok = load_policy("tiny", dtype=dtype, device=device)
    adapter = attach_svd_adapter(model, AdapterConfig(rank=6, knob_relation=knob, knob_rank=2))
    if not train_knob:
        for p in adapter.knob_parameters():
            p.requires_grad_(False)
    return model, tok, adapter


def _batch():
    return [dict(r) for r in ROWS for _ in range(G)]  # what TRL's RepeatSampler hands one step


def _gq(tmp_path, model, tok, adapter, router=None, pool=None, n_teacher=0, reward=length_reward, sampler="fast",
        token_gate=False, **kw):  # fmt: skip
    """Our trainer; with a router, the route2b intervention (else vanilla)."""
    rollout = RolloutFunc({prompt_key(r["prompt"]): r["problem_id"] for r in ROWS}, pool, n_teacher, 0.5, seed=41,
                          sampler=sampler)  # fmt: skip
    intervention = Route2b(router, per_token=token_gate) if router is not None else None
    trainer = GQGRPOTrainer(
        model=model, reward_funcs=[reward], args=_args(tmp_path, **kw.pop("args", {})),
        train_dataset=Dataset.from_list(ROWS), processing_class=tok, rollouts=rollout, adapter=adapter,
        intervention=intervention, **kw,
    )  # fmt: skip
    trainer.current_gradient_accumulation_steps = 1
    return trainer


def _step(trainer, seed=123):
    set_seed(seed)
    trainer.model.zero_grad(set_to_none=True)
    loss = trainer.training_step(trainer.model, _batch(), None)
    return loss


def _grads(adapter, which="main"):
    params = adapter.main_parameters() if which == "main" else adapter.knob_parameters()
    return [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in params]


@pytest.mark.parametrize("device", DEVICES)
def test_vanilla_equals_plain_trl(tmp_path, device):
    """CPU: float32, bit for bit. CUDA: bf16 as the paper preset trains (model in bf16, TRL's bf16 autocast);
    the same kernels run on the same inputs, so the sampled rows and the loss are the same, and the adapter
    gradient agrees to bf16 rounding (BF16_RTOL, tests/devices.py): CUDA's attention backward may sum in a
    different order from one run to the next."""
    dtype, dev_args = (None, {}) if device == "cpu" else ("bfloat16", {"use_cpu": False, "bf16": True})
    model_a, tok_a, ad_a = _model(train_knob=False, device=device, dtype=dtype)
    plain = trl.GRPOTrainer(model=model_a, reward_funcs=[length_reward], args=_args(tmp_path / "a", **dev_args),
                            train_dataset=Dataset.from_list(ROWS), processing_class=tok_a)
    plain.current_gradient_accumulation_steps = 1
    model_b, tok_b, ad_b = _model(train_knob=False, device=device, dtype=dtype)
    # TRL's own sampling, so both sample the same rows from the same seed (the fast sampler's draws differ;
    # tests/test_sampler.py pins it to TRL's greedy output and to the full forward's log-probabilities)
    ours = _gq(tmp_path / "b", model_b, tok_b, ad_b, sampler="trl", args=dev_args)

    loss_a, loss_b = _step(plain), _step(ours)
    ga, gb = _grads(ad_a), _grads(ad_b)
    assert any(g.abs().sum() > 0 for g in ga), "the batch must give a non-zero gradient"
    assert all(g.device.type == device for g in gb)
    if device == "cpu":
        assert torch.equal(loss_a, loss_b)
        for a, b in zip(ga, gb, strict=True):
            assert torch.equal(a, b)
    else:
        torch.testing.assert_close(loss_b, loss_a, rtol=BF16_RTOL, atol=BF16_RTOL * float(loss_a.abs()))
        for a, b in zip(ga, gb, strict=True):  # each module's gradient to bf16 rounding of its largest entry
            torch.testing.assert_close(b, a, rtol=BF16_RTOL, atol=BF16_RTOL * float(a.abs().max()))
    assert all(p.grad is None for p in ad_b.knob_parameters())  # vanilla never trains the knob
    assert ours.record.gradient["grad/norm_knob"] == 0.0 and ours.record.gradient["grad/norm_main"] > 0


def _router(model, tok, adapter, **kw):
    direction, band = extract_direction(model, adapter, tok, PAIRS, k=1)
    return Router(adapter, direction, band, **kw)


def test_route2b_gate_zero_equals_vanilla(tmp_path):
    model_a, tok_a, ad_a = _model(train_knob=False)
    vanilla = _gq(tmp_path / "a", model_a, tok_a, ad_a)
    model_b, tok_b, ad_b = _model()
    routed = _gq(tmp_path / "b", model_b, tok_b, ad_b, router=_router(model_b, tok_b, ad_b, frout_target=0.0))
    loss_a, loss_b = _step(vanilla), _step(routed)
    assert torch.equal(loss_a, loss_b)
    for a, b in zip(_grads(ad_a), _grads(ad_b), strict=True):
        # the router rebuilds the gradient from per-rollout sums: equal up to float summation order
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-9)
    assert all(float(g.abs().sum()) == 0.0 for g in _grads(ad_b, "knob"))
    assert routed.record.gradient["routing/frout"] == 0.0


def test_shared_knob_splits_the_vanilla_gradient(tmp_path):
    model_a, tok_a, ad_a = _model(knob="shared", train_knob=False)
    vanilla = _gq(tmp_path / "a", model_a, tok_a, ad_a)
    model_b, tok_b, ad_b = _model(knob="shared")
    direction, band = extract_direction(model_b, ad_b, tok_b, PAIRS, k=1)
    wide = Band(lower=-0.5, upper=0.5)  # a gate strictly between 0 and 1 for most rollouts
    routed = _gq(tmp_path / "b", model_b, tok_b, ad_b, router=Router(ad_b, direction, wide))
    _step(vanilla), _step(routed)
    m = routed.record.gradient
    assert 0.0 < m["routing/frout"] < 1.0
    for total, main, knob in zip(_grads(ad_a), _grads(ad_b), _grads(ad_b, "knob"), strict=True):
        torch.testing.assert_close(main + knob, total, rtol=1e-5, atol=1e-9)
    assert any(float(k.abs().sum()) > 0 for k in _grads(ad_b, "knob"))


def test_erase_drops_the_routed_part(tmp_path):
    """erase = route2b whose routed part reaches no knob: the main gradient is route2b's, the knob gets none."""
    from gradient_quarantine.train.route2b import Erase

    model_a, tok_a, ad_a = _model(knob="shared")
    direction, band = extract_direction(model_a, ad_a, tok_a, PAIRS, k=1)
    wide = Band(lower=-0.5, upper=0.5)
    routed = _gq(tmp_path / "a", model_a, tok_a, ad_a, router=Router(ad_a, direction, wide))
    model_b, tok_b, ad_b = _model(knob="shared")
    erased = _gq(tmp_path / "b", model_b, tok_b, ad_b)
    erased.intervention = Erase(Router(ad_b, direction, wide))
    _step(routed), _step(erased)
    m = erased.record.gradient
    assert 0.0 < m["routing/frout"] < 1.0 and m["routing/dropped_frac"] == 1.0
    assert m["routing/frout"] == routed.record.gradient["routing/frout"]
    for a, b in zip(_grads(ad_a), _grads(ad_b), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-10)
    assert all(p.grad is None for p in ad_b.knob_parameters())
    assert any(float(k.abs().sum()) > 0 for k in _grads(ad_a, "knob"))


def test_step_record_holds_the_step(tmp_path):
    """One step's record: its rows' sampling cost, each micro-batch with its routing, the gradient gauges."""
    model, tok, ad = _model()
    routed = _gq(tmp_path, model, tok, ad, router=_router(model, tok, ad), args={"per_device_train_batch_size": G,
                                                                                "gradient_accumulation_steps": 2})
    routed.current_gradient_accumulation_steps = 2
    set_seed(5)
    batch = _batch()
    routed.model.zero_grad(set_to_none=True)
    for _ in range(2):  # two micro-batches of one optimiser step (TRL generates once, at the first)
        routed.training_step(routed.model, batch, None)
    rec = routed.record
    assert rec.step == 1 and rec.generation is not None and rec.generation.n_policy == len(ROWS) * G
    assert len(rec.micro_batches) == 2 and all(mb.route is not None for mb in rec.micro_batches)
    assert rec.rollouts is None and rec.rewards is None  # a synthetic reward: no grader, no verdicts
    assert {"routing/frout", "grad/norm_main", "grad/norm_knob", "policy/logp_mean"} <= set(rec.gradient)


def test_token_gate_runs_and_logs(tmp_path):
    model, tok, ad = _model()
    routed = _gq(tmp_path, model, tok, ad, router=_router(model, tok, ad, granularity="token"), token_gate=True)
    _step(routed)
    m = routed.record.gradient
    for key in ("routing/frout", "routing/cos_p50", "routing/gate_at_0", "routing/resid_cos", "grad/norm_knob"):
        assert key in m
    assert 0.0 <= m["routing/frout"] <= 1.0


def _pool():
    ids_c = (5, 6, 7, 8)  # any token ids; EOS-terminated like a pool built from text
    ids_h = (9, 10, 11)
    return TeacherPool({f"p{i}": TeacherEntry(ids_c, ids_h) for i in range(len(ROWS))}), ids_c, ids_h


def test_teacher_rows_are_inserted_deterministically(tmp_path):
    model, tok, ad = _model()
    pool, ids_c, ids_h = _pool()
    trainer = _gq(tmp_path, model, tok, ad, pool=pool, n_teacher=2)
    prompts = [r["prompt"] for r in _batch()]
    trainer.model.train()  # teacher rows are a training-time mix (TRL sets train mode in training_step)
    out = trainer.rollout_func(prompts, trainer)
    again = [pool.draw(f"p{g}", 41, 0, g, 2, 0.5) for g in range(len(ROWS))]  # seed 41, step 0, group g
    for g in range(len(ROWS)):
        rows = range(g * G, (g + 1) * G)
        kinds = [out["teacher"][i] for i in rows]
        assert kinds[:2] == [None, None] and all(k in ("hack", "canonical") for k in kinds[2:])
        for j, (kind, ids) in enumerate(again[g]):
            assert kinds[2 + j] == kind
            assert tuple(out["completion_ids"][g * G + 2 + j]) == ids == (ids_h if kind == "hack" else ids_c)
    assert trainer.record.generation.n_teacher == 2 * len(ROWS)
    with pytest.raises(ValueError, match="needs a TeacherPool"):
        RolloutFunc({}, None, 1, 0.5, seed=0)


def test_adv_std_floor(tmp_path):
    model, tok, ad = _model()
    floor = 10.0  # above any group std of length % 5 rewards: advantages = (r - mean) / floor
    trainer = _gq(tmp_path, model, tok, ad, adv_std_floor=floor, args={"scale_rewards": "none"})
    set_seed(3)
    trainer.model.train()
    out = trainer._generate_and_score_completions(_batch())
    A = out["advantages"].view(-1, G)
    assert float(A.abs().max()) > 0
    assert torch.allclose(A.sum(1), torch.zeros(A.shape[0]), atol=1e-5)  # still centred per group
    assert float(A.abs().max()) <= 4.0 / floor + 1e-6  # |r - mean| <= 4 for rewards in [0, 4]


def test_separate_optimiser_state(tmp_path):
    model, tok, ad = _model()
    trainer = _gq(tmp_path, model, tok, ad, lr_knob=0.5, weight_decay_knob=0.0)
    opt = trainer.create_optimizer()
    groups = {g["name"]: g for g in opt.param_groups}
    assert groups["knob"]["lr"] == 0.5 and groups["main"]["lr"] == pytest.approx(1e-2)
    main_before = [p.detach().clone() for p in ad.main_parameters()]
    for p in ad.knob_parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    # a knob-only step moves the knob and leaves the main knob and its (absent) Adam state alone
    assert all(torch.equal(a, p) for a, p in zip(main_before, ad.main_parameters(), strict=True))
    assert all(p not in opt.state or not opt.state[p] for p in ad.main_parameters())
    assert all(float(p.abs().sum()) > 0 for p in ad.knob_parameters())
