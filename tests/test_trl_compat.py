"""TRL / transformers compatibility (train/trl_compat.py): every private name the project relies on is pinned by its
signature, an upgrade that moves one fails with a message naming it, no other module of the package touches those
names, and what replaced a private call does the same job (checkpoint files, the merged weights vLLM gets)."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from gradient_quarantine.train import trl_compat  # noqa: E402
from gradient_quarantine.train.trl_compat import PINNED, Pinned, TRLCompatError  # noqa: E402

PACKAGE = Path(trl_compat.__file__).resolve().parents[1]


@pytest.mark.parametrize("pin", PINNED, ids=[p.path for p in PINNED])
def test_pinned_signature(pin):
    """The installed signature starts with the pinned parameters, and any further one has a default."""
    params = list(inspect.signature(pin.resolve()).parameters.values())
    assert [p.name for p in params[: len(pin.params)]] == list(pin.params)
    assert all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
               for p in params[len(pin.params) :])  # fmt: skip
    assert pin.problem() is None


def test_a_moved_name_fails_with_a_message_naming_it():
    resigned = dataclasses.replace(PINNED[0], params=("self", "inputs", "num_items"))
    gone = Pinned("trl.GRPOTrainer._no_such_method", ("self",), "nothing")
    rewritten = dataclasses.replace(PINNED[0], source_has=("a call that is not there",))
    with pytest.raises(TRLCompatError) as e:
        trl_compat.check((resigned, gone, rewritten))
    msg = str(e.value)
    assert "trl.GRPOTrainer._generate_and_score_completions" in msg and "(self, inputs, num_items)" in msg
    assert "trl.GRPOTrainer._no_such_method is gone" in msg
    assert "'a call that is not there'" in msg and "trl_compat.py" in msg
    trl_compat.check()  # the installed versions match every pin


def _private_uses(path: Path, names: set[str]) -> list[str]:
    """`obj.<name>` attribute reads and `"<name>"` string keys (kwargs) of `names` in one source file's code."""
    tree = ast.parse(path.read_text())
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name in names:  # an override
            hits.append(f"{path.name}:{node.lineno} def {node.name}")
        elif isinstance(node, ast.Attribute) and node.attr in names:
            hits.append(f"{path.name}:{node.lineno} .{node.attr}")
        elif isinstance(node, ast.keyword) and node.arg in names:
            hits.append(f"{path.name}:{node.lineno} {node.arg}=")
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and node.slice.value in names:
            hits.append(f"{path.name}:{node.lineno} [{node.slice.value!r}]")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
              and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value in names):  # fmt: skip
            hits.append(f"{path.name}:{node.lineno} .get({node.args[0].value!r})")
    return hits


def test_no_other_module_touches_the_pinned_names():
    names = {p.name for p in PINNED} - {"forward"} | {  # forward: pinned for its source, a name every module has
        "_save_optimizer_and_scheduler", "_save_rng_state", "_tokenizer", "fused_lm_head",
        "_CHUNKED_LOGPROB_CHUNK_SIZE", "TOKEN_CHUNK_SIZE", "_use_triton",
    }  # fmt: skip
    offenders = [
        hit
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "trl_compat.py"
        for hit in _private_uses(path, names)
    ]
    assert offenders == [], "reach these through gradient_quarantine/train/trl_compat.py"


def test_checkpoint_files_restore_what_transformers_restores(tmp_path):
    """save_checkpoint writes, with torch.save, what `train(resume_from_checkpoint=...)` reads back: optimizer and
    scheduler state, the RNG streams and the trainer state."""
    import random

    import numpy as np
    import trl
    from datasets import Dataset

    from gradient_quarantine.model.loading import load_policy

    model, tok = load_policy("tiny")
    args = trl.GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=4, max_steps=3,
                          report_to="none", use_cpu=True, save_strategy="no", learning_rate=1e-3)  # fmt: skip
    rows = [{"prompt": [{"role": "user", "content": "hi"}]}]
    trainer = trl.GRPOTrainer(model=model, reward_funcs=[lambda completions, **_: [0.0] * len(completions)],
                              args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)  # fmt: skip
    trainer.create_optimizer_and_scheduler(num_training_steps=3)
    p = next(model.parameters())
    p.grad = torch.ones_like(p)
    trainer.optimizer.step()
    trainer.lr_scheduler.step()
    trainer.state.global_step = 1
    torch.manual_seed(5), random.seed(5), np.random.seed(5)
    trl_compat.save_checkpoint(trainer, tmp_path / "ckpt")
    want = (torch.rand(3), random.random(), np.random.rand())
    opt_state = {k: v.clone() for k, v in trainer.optimizer.state[p].items()}
    lr = trainer.lr_scheduler.get_last_lr()

    trainer.optimizer.state.clear()
    trainer.lr_scheduler.step()
    torch.manual_seed(0), random.seed(0), np.random.seed(0)
    trainer._load_optimizer_and_scheduler(str(tmp_path / "ckpt"))  # transformers' own readers
    trainer._load_rng_state(str(tmp_path / "ckpt"))
    got = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(got[0], want[0]) and got[1:] == want[1:]
    assert all(torch.equal(trainer.optimizer.state[p][k], v) for k, v in opt_state.items())
    assert trainer.lr_scheduler.get_last_lr() == lr
    assert type(trainer.state).load_from_json(str(tmp_path / "ckpt" / "trainer_state.json")).global_step == 1


@pytest.mark.parametrize("knob_on", [True, False])
def test_merged_weights_for_vllm_are_the_adapter_models_weights(knob_on):
    """What TRL's vLLM sync gets (rollouts.merged_named_weights, SVDLinear.merged_weight(live=True)) loaded into a
    plain copy of the base model gives the adapter model's logits, knob on or off."""
    from gradient_quarantine.model.loading import load_policy
    from gradient_quarantine.model.svd_adapter import AdapterConfig, attach_svd_adapter
    from gradient_quarantine.train.rollouts import merged_named_weights

    model, _ = load_policy("tiny")
    plain, _ = load_policy("tiny")
    adapter = attach_svd_adapter(model, AdapterConfig(rank=6, knob_relation="disjoint", knob_rank=2))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in adapter.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g))
    adapter.set_knob_enabled(knob_on)
    weights = dict(merged_named_weights(model, adapter))
    assert set(weights) == set(dict(plain.named_parameters()))  # the plain model's names, nothing of the adapter
    plain.load_state_dict(weights, strict=False)
    ids = torch.randint(3, 100, (2, 9), generator=g)
    with torch.no_grad():
        torch.testing.assert_close(plain(input_ids=ids).logits, model(input_ids=ids).logits, rtol=1e-4, atol=1e-5)


@pytest.fixture
def trl_head_settings():
    """Whatever a test sets, TRL's own fused-head settings afterwards."""
    yield
    trl_compat.tile_cpu_fused_head(False)


def test_tiled_cpu_head_gives_trls_log_probs_entropy_and_gradients(trl_head_settings):
    """The fused head on completion positions only, in 512 x 4096 tiles, is TRL's full-position 4096 x 32768 head to
    float32 rounding: log-probs, entropy and every parameter's gradient. The vocabulary (10,000) and the scored
    positions (3 rows x 230) each span several of the project's tiles, so tile edges are crossed."""
    import trl.kernels.chunked_logprob as kernel
    import trl.trainer.utils as utils
    from trl.trainer.utils import add_fused_lm_head

    from gradient_quarantine.model.loading import build_tiny_model, build_tiny_tokenizer

    model = build_tiny_model(build_tiny_tokenizer(), vocab_size=10_000)
    add_fused_lm_head(model, temperature=0.7, outputs=("log_probs", "entropy"))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 10_000, (3, 400), generator=g)
    attn = torch.ones_like(ids)
    attn[1, :40] = 0  # left padding, as TRL's batches have
    labels = ids.masked_fill(attn == 0, -100)
    labels[:, :170] = -100  # the prompt: not scored
    labels[2, 330:] = -100  # a shorter completion

    def run():
        model.zero_grad()
        out = model(input_ids=ids, attention_mask=attn, labels=labels, fused_lm_head=True)
        (out.log_probs.sum() + 0.1 * out.entropy.sum()).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return out.log_probs.detach(), out.entropy.detach(), grads

    trl_compat.tile_cpu_fused_head(False)
    assert utils._CHUNKED_LOGPROB_CHUNK_SIZE == 32768 and kernel.TOKEN_CHUNK_SIZE == 4096  # TRL's own
    lp_trl, ent_trl, g_trl = run()
    trl_compat.tile_cpu_fused_head(True)
    assert utils._CHUNKED_LOGPROB_CHUNK_SIZE == trl_compat.CPU_VOCAB_TILE < 10_000
    assert kernel.TOKEN_CHUNK_SIZE == trl_compat.CPU_TOKEN_TILE < int((labels[:, 1:] != -100).sum())
    lp, ent, grads = run()
    mask = labels[:, 1:] != -100
    assert bool((lp[~mask] == 0).all()) and bool((ent[~mask] == 0).all())
    torch.testing.assert_close(lp, lp_trl, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ent, ent_trl, atol=1e-5, rtol=1e-5)
    assert grads.keys() == g_trl.keys() and grads
    for name in grads:
        scale = float(g_trl[name].abs().max())  # float32 sums of ~700 rows in another order: rounding at 1e-6 of it
        torch.testing.assert_close(grads[name], g_trl[name], atol=1e-5 * scale, rtol=1e-4,
                                   msg=lambda m, n=name: f"{n}: {m}")  # fmt: skip
    trl_compat.tile_cpu_fused_head(False)
    assert utils._CHUNKED_LOGPROB_CHUNK_SIZE == 32768 and kernel.TOKEN_CHUNK_SIZE == 4096
