"""GradCapture against plain autograd: per-rollout gradients from one backward must equal one backward per
rollout, for every knob relation and padding layout (docs/design.md §5, docs/architecture.md).

The exactness tests run on every device in `devices.DEVICES` (CUDA when one is visible), in float32 with the same
tolerance as on the CPU, and the bf16 test on each device with `BF16_RTOL` (devices.py says why those bounds).
"""

from __future__ import annotations

import pytest
import torch
from devices import BF16_RTOL, DEVICES

from gradient_quarantine.model.svd_adapter import AdapterConfig, SVDAdapter, attach_svd_adapter
from gradient_quarantine.routing.capture import GradCapture, _in_backward

RELATIONS = ["shared", "disjoint", "vgrad_span"]


def _batch(tok, layout: str, seed: int = 0, B: int = 4) -> dict[str, torch.Tensor]:
    """Random prompt + completion rows of different lengths, padded like `layout`.

    left: all pads on the left; right: all on the right; both: prompt left-padded and completion
    right-padded (TRL's GRPO layout). Returns input_ids, attention_mask, completion_mask (B, T), adv (B,).
    """
    g = torch.Generator().manual_seed(seed)
    pad = tok.pad_token_id
    P, C = 7, 6  # max prompt / completion lengths
    rows = []
    for i in range(B):
        p_len, c_len = P - (i % 3), C - 2 * (i % 2)
        prompt = torch.randint(3, len(tok), (p_len,), generator=g).tolist()
        comp = torch.randint(3, len(tok), (c_len,), generator=g).tolist()
        rows.append((prompt, comp))
    ids, att, cm = [], [], []
    for prompt, comp in rows:
        if layout == "both":
            lp, rc = P - len(prompt), C - len(comp)
            seq = [pad] * lp + prompt + comp + [pad] * rc
            a = [0] * lp + [1] * (len(prompt) + len(comp)) + [0] * rc
            c = [0] * (lp + len(prompt)) + [1] * len(comp) + [0] * rc
        else:
            n = P + C - len(prompt) - len(comp)
            body = prompt + comp
            cbody = [0] * len(prompt) + [1] * len(comp)
            if layout == "left":
                seq, a, c = [pad] * n + body, [0] * n + [1] * len(body), [0] * n + cbody
            else:
                seq, a, c = body + [pad] * n, [1] * len(body) + [0] * n, cbody + [0] * n
        ids.append(seq)
        att.append(a)
        cm.append(c)
    adv = torch.randn(B, generator=g)
    return dict(
        input_ids=torch.tensor(ids),
        attention_mask=torch.tensor(att),
        completion_mask=torch.tensor(cm, dtype=torch.float32),
        adv=adv,
    )


def _row_losses(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """GRPO-style per-row loss L_b = -A_b * mean_{t in completion} log p(y_t), (B,); rows are independent."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits  # (B, T, V)
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    logp = logp.gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1)  # (B, T-1)
    cm = batch["completion_mask"][:, 1:]
    return -batch["adv"] * (logp * cm).sum(1) / cm.sum(1).clamp(min=1)


def _rows(batch: dict[str, torch.Tensor], i: int) -> dict[str, torch.Tensor]:
    return {k: v[i : i + 1] for k, v in batch.items()}


def _on(device: str, model, batch: dict[str, torch.Tensor] | None = None):
    """The model (and a batch) moved to `device`; the adapter is attached afterwards, so U, V live there too."""
    model = model.to(device)
    return model if batch is None else (model, {k: v.to(device) for k, v in batch.items()})


def _capture_coord_grad(adapter: SVDAdapter, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    """Reference: autograd w.r.t. the parameters, mapped to capture coordinates (knob on).

    shared / vgrad_span: dL/d dS_main is the capture gradient itself (R = rank);
    disjoint: cat(dL/d dS_main, dL/d dS_knob) over the rank + knob_rank axes.
    """
    names = list(adapter.modules)
    if adapter.cfg.knob_relation == "disjoint":
        params = [p for n in names for p in (adapter.modules[n].dS_main, adapter.modules[n].dS_knob)]
        grads = torch.autograd.grad(loss, params)
        return {n: torch.cat([grads[2 * i], grads[2 * i + 1]]) for i, n in enumerate(names)}
    grads = torch.autograd.grad(loss, [adapter.modules[n].dS_main for n in names])
    return dict(zip(names, grads, strict=True))


def _setup(model, relation: str, seed: int = 1) -> SVDAdapter:
    """Adapter with non-zero knobs, so the test covers the general case and not only dS = 0."""
    adapter = attach_svd_adapter(model, AdapterConfig(rank=6, knob_relation=relation, knob_rank=3))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in adapter.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g))
        if relation == "vgrad_span":
            adapter.set_knob_basis(
                {
                    n: torch.linalg.qr(torch.randn(m.rank, m.knob_rank, generator=g)).Q.T
                    for n, m in adapter.modules.items()
                }
            )
    return adapter


def _assert_close(got: torch.Tensor, want: torch.Tensor) -> None:
    scale = want.abs().max().clamp(min=1e-12)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * float(scale))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("relation", RELATIONS)
@pytest.mark.parametrize("layout", ["left", "right", "both"])
def test_per_rollout_equals_per_sample_autograd(tiny_model_and_tokenizer, relation, layout, device):
    model, tok = tiny_model_and_tokenizer
    model, batch = _on(device, model, _batch(tok, layout))
    adapter = _setup(model, relation)
    with GradCapture(adapter, per_token=True) as cap:
        _row_losses(model, batch).sum().backward()
    G = cap.per_rollout
    assert set(G) == set(adapter.modules)
    B = batch["input_ids"].shape[0]
    for n, m in adapter.modules.items():
        assert G[n].shape == (B, m.R) and G[n].dtype == torch.float32 and G[n].device.type == device
    # one separate forward + backward per rollout, each on its own padded row
    for i in range(B):
        ref = _capture_coord_grad(adapter, _row_losses(model, _rows(batch, i))[0])
        for n in adapter.modules:
            _assert_close(G[n][i], ref[n])
    # sum over rollouts = the batch gradient autograd accumulated into .grad, in each knob's coordinates
    for n, m in adapter.modules.items():
        total = G[n].sum(0)
        _assert_close(m.dS_main.grad, m.main_coords(total))
        _assert_close(m.dS_knob.grad, m.knob_coords(total))
    # per-token factors: a*b summed over positions = per-rollout; padded positions contribute exactly 0
    pad = batch["attention_mask"] == 0
    for n, a, b in cap.iter_per_token():
        assert a.shape == b.shape == (B, batch["input_ids"].shape[1], adapter.modules[n].R)
        _assert_close((a * b).sum(1), G[n])
        assert torch.count_nonzero((a * b)[pad]) == 0


def test_knob_off_capture_still_covers_knob_axes(tiny_model_and_tokenizer):
    """With the knob off (disjoint) dS_knob gets no .grad, but the capture still reports its axes: the
    router needs the knob-axis gradient whichever knob is live."""
    model, tok = tiny_model_and_tokenizer
    adapter = _setup(model, "disjoint")
    batch = _batch(tok, "both")
    with adapter.knob_off(), GradCapture(adapter) as cap:
        _row_losses(model, batch).sum().backward()
    for n, m in adapter.modules.items():
        assert m.dS_knob.grad is None
        assert cap.per_rollout[n].shape[1] == m.rank + m.knob_rank
        assert cap.per_rollout[n][:, m.rank :].abs().sum() > 0
        _assert_close(m.dS_main.grad, m.main_coords(cap.total()[n]))


@pytest.mark.parametrize("device", DEVICES)
def test_capture_does_not_change_autograd(tiny_model_and_tokenizer, device):
    model, tok = tiny_model_and_tokenizer
    model, batch = _on(device, model, _batch(tok, "both"))
    adapter = _setup(model, "disjoint")
    _row_losses(model, batch).sum().backward()
    plain = [p.grad.clone() for p in adapter.parameters()]
    for p in adapter.parameters():
        p.grad = None
    with GradCapture(adapter, per_token=True):
        loss = _row_losses(model, batch).sum()
        loss.backward()
    for p, want in zip(adapter.parameters(), plain, strict=True):
        assert torch.equal(p.grad, want)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("relation", RELATIONS)
def test_gradient_accumulation_two_micro_batches(tiny_model_and_tokenizer, relation, device):
    model, tok = tiny_model_and_tokenizer
    model = _on(device, model)
    adapter = _setup(model, relation)
    mbs = [_batch(tok, "both", seed=10), _batch(tok, "left", seed=11, B=3)]
    mbs = [{k: v.to(device) for k, v in mb.items()} for mb in mbs]
    totals: dict[str, torch.Tensor] = {}
    per_mb = []
    with GradCapture(adapter) as cap:
        for mb in mbs:
            cap.reset()
            _row_losses(model, mb).sum().backward()  # .grad accumulates across micro-batches
            G = cap.per_rollout
            assert cap.batch_size == mb["input_ids"].shape[0]
            per_mb.append(G)
            for n, g in G.items():
                totals[n] = totals.get(n, 0) + g.sum(0)
    for n, m in adapter.modules.items():
        _assert_close(m.dS_main.grad, m.main_coords(totals[n]))
        _assert_close(m.dS_knob.grad, m.knob_coords(totals[n]))
    # each micro-batch's capture is its own (not the running sum): check rollout 0 of micro-batch 2
    ref = _capture_coord_grad(adapter, _row_losses(model, _rows(mbs[1], 0))[0])
    for n in adapter.modules:
        _assert_close(per_mb[1][n][0], ref[n])


def test_two_forwards_between_resets_concatenate_rows(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    adapter = _setup(model, "shared")
    b1, b2 = _batch(tok, "left", seed=3, B=2), _batch(tok, "right", seed=4, B=3)
    with GradCapture(adapter) as cap:
        (_row_losses(model, b1).sum() + _row_losses(model, b2).sum()).backward()
    n = next(iter(adapter.modules))
    assert cap.per_rollout[n].shape[0] == 5
    ref = _capture_coord_grad(adapter, _row_losses(model, _rows(b2, 2))[0])
    _assert_close(cap.per_rollout[n][4], ref[n])


def test_token_storage_bf16_and_cpu(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    adapter = _setup(model, "disjoint")
    batch = _batch(tok, "both")
    with GradCapture(adapter, per_token=True, token_dtype=torch.bfloat16, token_device="cpu") as cap:
        _row_losses(model, batch).sum().backward()
    for n, a, b in cap.iter_per_token():
        assert a.dtype == b.dtype == torch.bfloat16 and a.device.type == "cpu"
        G = cap.per_rollout[n]
        torch.testing.assert_close(
            (a.float() * b.float()).sum(1), G, rtol=0.05, atol=0.02 * float(G.abs().max())
        )


def test_no_grad_forward_is_ignored_and_errors_are_clear(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    adapter = _setup(model, "disjoint")
    batch = _batch(tok, "both")
    with GradCapture(adapter) as cap:
        with torch.no_grad():
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        with pytest.raises(RuntimeError, match="before the forward"):
            _ = cap.per_rollout
        loss = _row_losses(model, batch).sum()
        with pytest.raises(RuntimeError, match="no backward"):
            _ = cap.per_rollout
        with pytest.raises(RuntimeError, match="per_token=True"):
            cap.per_token(next(iter(adapter.modules)))
        loss.backward(retain_graph=True)
        assert cap.batch_size == batch["input_ids"].shape[0]
        with pytest.raises(RuntimeError, match="second backward"):
            loss.backward()
    # removed on exit: a forward now is not captured
    assert all(m._capture is None for m in adapter.modules.values())


def test_paused_and_subset(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    adapter = _setup(model, "disjoint")
    batch = _batch(tok, "both")
    first = list(adapter.modules)[:2]
    with GradCapture(adapter, modules=first) as cap:
        with cap.paused():
            extra = _row_losses(model, batch).sum()
        loss = _row_losses(model, batch).sum()
        (loss + 0 * extra).backward()
    assert set(cap.per_rollout) == set(first)
    assert cap.batch_size == batch["input_ids"].shape[0]
    with pytest.raises(KeyError):
        GradCapture(adapter, modules=["nope"])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reentrant", [False, True])
def test_activation_checkpointing(tiny_model_and_tokenizer, reentrant, device):
    """Checkpointing recomputes each layer's forward inside the backward; the capture must count every
    rollout once (non-reentrant: the original forward; reentrant: the recomputed one) and stay exact. This is
    the code path that reads torch's autograd internals (`_in_backward`), so it runs on every device and, on a
    GPU node, under that node's torch (`test_in_backward_reads_the_autograd_engine` pins the internal itself)."""
    model, tok = tiny_model_and_tokenizer
    model, batch = _on(device, model, _batch(tok, "both"))
    adapter = _setup(model, "disjoint")
    refs = [_capture_coord_grad(adapter, _row_losses(model, _rows(batch, i))[0]) for i in range(4)]
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable(activation_checkpointing_kwargs={"use_reentrant": reentrant})
    if reentrant:
        model.enable_input_require_grads()  # frozen embeddings: reentrant checkpoints need a grad input
    model.train()  # HF checkpoints only in training mode (the tiny model has no dropout)
    calls = {n: 0 for n in adapter.modules}
    for m in adapter.modules.values():
        m.register_forward_pre_hook(lambda mod, args: calls.__setitem__(mod.name, calls[mod.name] + 1))
    with GradCapture(adapter, per_token=True) as cap:
        _row_losses(model, batch).sum().backward()
    assert set(calls.values()) == {2}  # forward + recomputation in the backward: checkpointing is active
    assert all(len(r) == 1 and r[0].in_backward == reentrant for r in cap._records.values())
    G = cap.per_rollout
    for n, m in adapter.modules.items():
        assert G[n].shape == (4, m.R)
        for i in range(4):
            _assert_close(G[n][i], refs[i][n])
        _assert_close(m.dS_main.grad, m.main_coords(G[n].sum(0)))
        a, b = cap.per_token(n)
        _assert_close((a * b).sum(1), G[n])


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_model_capture_matches_autograd(device):
    """bf16 weights (U, V in bf16, dS kept float32), as the paper preset runs on a GPU: the capture still equals
    autograd's dS gradient, per rollout and summed, up to bf16 rounding (BF16_RTOL, devices.py), and generation
    with the adapter attached runs (no-grad forwards are not captured)."""
    from gradient_quarantine.model.loading import load_policy

    model, tok = load_policy("tiny", dtype="bfloat16")
    model, batch = _on(device, model, _batch(tok, "both"))
    adapter = _setup(model, "disjoint")
    m0 = next(iter(adapter.modules.values()))
    assert m0.U.dtype == torch.bfloat16 and m0.dS_main.dtype == torch.float32
    with GradCapture(adapter) as cap:
        model.generate(input_ids=batch["input_ids"][:, :5], max_new_tokens=2, do_sample=False)
        _row_losses(model, batch).sum().backward()
    assert cap.batch_size == batch["input_ids"].shape[0]  # the generate forwards were ignored
    for _, m in adapter.modules.items():
        total = cap.total()[m.name]
        scale = float(total.abs().max())
        torch.testing.assert_close(m.dS_main.grad, m.main_coords(total), rtol=BF16_RTOL, atol=BF16_RTOL * scale)
    G = {n: g.clone() for n, g in cap.per_rollout.items()}
    for i in (0, 3):  # per rollout: against one bf16 backward of that row alone
        ref = _capture_coord_grad(adapter, _row_losses(model, _rows(batch, i))[0])
        for n in adapter.modules:
            scale = float(G[n].abs().max())
            torch.testing.assert_close(G[n][i], ref[n], rtol=BF16_RTOL, atol=BF16_RTOL * scale)


def test_in_backward_reads_the_autograd_engine():
    """`_in_backward` reads a torch internal (`torch._C._current_graph_task_id`), the one capture path that could
    differ across the supported torch range: False outside a backward, True inside one (on this torch)."""
    seen = []
    x = torch.ones(2, requires_grad=True)
    y = x * 2
    y.register_hook(lambda g: seen.append(_in_backward()))
    assert not _in_backward()
    y.sum().backward()
    assert seen == [True] and not _in_backward()
