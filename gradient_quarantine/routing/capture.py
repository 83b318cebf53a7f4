"""Exact per-rollout and per-token gradients in adapter coordinates, from the one ordinary backward pass.

For a targeted module ``y = W x + U diag(delta) V^T x`` and any loss ``L = sum_b L_b`` whose rows do not
interact (a causal LM over a padded batch), the gradient of ``L_b`` w.r.t. a scale on singular axis ``j``
is (docs/design.md §5, docs/architecture.md)

    G_bt = (U^T g_bt) * (V^T x_bt)        g_bt = dL/dy_bt, x_bt the layer input      (R,) per position
    G_b  = sum_t G_bt                      over every position of row b, prompt and padding included

:class:`GradCapture` gets both factors without a second backward: while installed, each
:class:`~gradient_quarantine.model.svd_adapter.SVDLinear` forward that builds a graph hands it
``b = V^T x`` (the tensor autograd already saves, so no copy) and ``zd = delta * b``, the branch's input to
``U``, on which a tensor hook receives ``dL/d zd = U^T g`` during the backward: autograd forms exactly that
tensor anyway (it needs it for ``d delta``), so the capture costs no matmul of its own. Per rollout,
``G_b = sum_t a_bt * b_bt`` is reduced right there (two kernels per module: a product in the model's dtype,
as autograd's own ``d delta`` forms it, and a float32 sum) and ``b`` is dropped; nothing changes the autograd
result.

Coordinates are each module's ``R`` axes (``SVDLinear.R``: rank, or rank + knob_rank for ``disjoint``). Map
them to parameter coordinates with ``SVDLinear.main_coords`` / ``knob_coords``. Padded positions need no
special care: ``G`` is exactly what autograd gives them (zero when their loss is masked and attention never
reads them; tests check this against per-sample autograd with left and right padding).

Memory. Per rollout: ``B*T*R`` floats per module held from forward to backward (shared with autograd), then
``B*R`` float32. Per token (``per_token=True``): ``B*T*2R`` floats per module kept until ``reset()``, e.g.
B=8, T=2048, R=20, 252 modules (Qwen3-4B, all projections) is 0.66 G floats = 2.6 GB in float32; use
``token_dtype=torch.bfloat16`` to halve it and ``token_device="cpu"`` to keep it off the GPU. Per-token
factors are stored per module and handed out per module (:meth:`GradCapture.per_token`,
:meth:`GradCapture.iter_per_token`): ``B x T x (all modules' coordinates)`` is never built.

Usage: install the capture around the forward *and* the backward (it must see the forward), one
``reset()`` per micro-batch under gradient accumulation:

    >>> with GradCapture(adapter) as cap:
    ...     for mb in micro_batches:
    ...         cap.reset()
    ...         loss = loss_fn(model(**mb))          # forward while installed
    ...         loss.backward()                      # .grad accumulates as usual
    ...         G = cap.per_rollout                  # {module: (B, R) float32}, this micro-batch only
    ...         a, b = cap.per_token(name)           # if per_token=True: (B, T, R) each, G_bt = a * b

Rows are in forward order: two forward calls between resets give ``B1 + B2`` rows. Forwards under
``torch.no_grad()`` (sampling, reference log-probs) are ignored. Not supported: a second backward
through the same forward (``retain_graph``) without ``per_token`` (raises).
Activation (gradient) checkpointing works, non-reentrant (transformers' default) or reentrant: the
capture records each graph-building forward once (tests cover both); with reentrant checkpointing and
several forward calls per reset the row order would follow the backward, so that raises.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from gradient_quarantine.model.svd_adapter import SVDAdapter, SVDLinear


@dataclass
class _Record:
    """One forward call of one module, between two resets."""

    b: Tensor | None  # (B, T, R) V^T x: held until the backward reaches this module (per-token: kept)
    G: Tensor | None = None  # (B, R) float32 after the backward
    a: Tensor | None = None  # (B, T, R) U^T g, per-token only
    fired: int = 0  # backward hooks seen
    in_backward: bool = False  # forward ran inside a backward (reentrant checkpoint recomputation)


def _in_backward() -> bool:
    """True while an autograd backward is executing on this thread (torch internal, pinned torch)."""
    return torch._C._current_graph_task_id() != -1


class GradCapture:
    """Capture per-rollout (and optionally per-token) gradients of every adapter module; see module doc.

    Args:
        adapter: the attached SVDAdapter.
        per_token: also keep the per-position factors (a, b) for the per-token gate.
        token_dtype: storage dtype of the per-token factors (float32 default; bfloat16 halves memory).
        token_device: where per-token factors live (None: where they were computed; "cpu": offload).
        modules: capture only these module names (default: all).
    """

    def __init__(
        self,
        adapter: SVDAdapter,
        per_token: bool = False,
        token_dtype: torch.dtype = torch.float32,
        token_device: torch.device | str | None = None,
        modules: Iterable[str] | None = None,
    ):
        self.adapter = adapter
        self.per_token_enabled = per_token
        self.token_dtype = token_dtype
        self.token_device = torch.device(token_device) if token_device is not None else None
        names = list(modules) if modules is not None else list(adapter.modules)
        unknown = [n for n in names if n not in adapter.modules]
        if unknown:
            raise KeyError(f"GradCapture: unknown module names {unknown[:3]} (see adapter.modules)")
        self.names = names
        self._records: dict[str, list[_Record]] = {n: [] for n in names}
        self._installed = False
        self._paused = False
        self._hooks_fired = 0
        self._cache: dict[str, Tensor] | None = None

    # ---- install / remove ------------------------------------------------------------------------------

    def install(self) -> GradCapture:
        if self._installed:
            return self
        for n in self.names:
            m = self.adapter.modules[n]
            if m._capture is not None:
                raise RuntimeError(f"module {n} already has a GradCapture installed (nested captures)")
            m._capture = self
        self._installed = True
        return self

    def remove(self) -> None:
        for n in self.names:
            m = self.adapter.modules[n]
            if m._capture is self:
                m._capture = None
        self._installed = False

    def __enter__(self) -> GradCapture:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def reset(self) -> None:
        """Forget everything captured (call once per micro-batch, before its forward)."""
        self._records = {n: [] for n in self.names}
        self._hooks_fired = 0
        self._cache = None

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Forwards inside are not captured (e.g. an extra forward with grad that is not part of the loss)."""
        prev, self._paused = self._paused, True
        try:
            yield
        finally:
            self._paused = prev

    # ---- hooks (called by SVDLinear.forward) ------------------------------------------------------------

    def _on_forward(self, module: SVDLinear, b: Tensor, zd: Tensor) -> None:
        if self._paused or module.name not in self._records:
            return
        recs = self._records[module.name]
        in_backward = _in_backward()
        if in_backward and any(not r.in_backward for r in recs):
            # Non-reentrant activation checkpointing recomputes this forward inside the backward only to
            # refill saved tensors; the hook on the original forward's zd is the one
            # that fires, so recording the recomputation would add phantom rows.
            return
        # (Reentrant checkpointing runs the first forward without grad and the only graph-building
        # forward inside the backward: that one is recorded.)
        rec = _Record(b=b.detach(), in_backward=in_backward)
        recs.append(rec)
        self._cache = None

        def hook(a: Tensor) -> None:  # a: (B, T, R) = dL/d zd = U^T g_t, g_t = dL/dy_t
            self._on_grad(module, rec, a)

        zd.register_hook(hook)

    @torch.no_grad()
    def _on_grad(self, module: SVDLinear, rec: _Record, a: Tensor) -> None:
        if rec.b is None:
            raise RuntimeError(
                f"GradCapture: a second backward through the same forward reached {module.name}; "
                "run the forward again after reset() (or use per_token=True)"
            )
        pos_dims = tuple(range(1, a.dim() - 1))  # every position dim between batch and R
        # (B, R): sum_t G_bt with G_bt = a_bt * b_bt; the product in the model's dtype (what autograd's own
        # d(delta) forms), summed in float32. Two launches, no casts of the (B, T, R) factors.
        G = torch.sum(a * rec.b, dim=pos_dims, dtype=torch.float32) if pos_dims else (a * rec.b).float()
        rec.G = G if rec.G is None else rec.G + G
        self._cache = None
        rec.fired += 1
        self._hooks_fired += 1
        if self.per_token_enabled:
            a_store = a.to(device=self.token_device or a.device, dtype=self.token_dtype)
            rec.a = a_store if rec.a is None else rec.a + a_store
            if rec.fired == 1:
                rec.b = rec.b.to(device=self.token_device or rec.b.device, dtype=self.token_dtype)
        else:
            rec.b = None  # let autograd free it; per-rollout needs only G

    # ---- results -------------------------------------------------------------------------------------------

    def _check_captured(self) -> None:
        if not any(self._records.values()):
            raise RuntimeError(
                "GradCapture saw no forward with grad since the last reset(): install it (enter the "
                "context) before the forward, and keep grad enabled"
            )
        if self._hooks_fired == 0:
            raise RuntimeError("GradCapture: the forward was captured but no backward has run through it yet")

    def _G(self, rec: _Record) -> Tensor:
        if rec.G is not None:
            return rec.G
        # The backward never reached this module: the loss does not depend on it, its gradient is 0.
        return torch.zeros(rec.b.shape[0], rec.b.shape[-1], dtype=torch.float32, device=rec.b.device)

    @property
    def per_rollout(self) -> dict[str, Tensor]:
        """{module: (B, R) float32}: ``G_b = dL_b/d(axis scales)``, rows in forward order since reset().

        Cached until the next forward, hook or reset, so reading it once per module is cheap.
        """
        self._check_captured()
        if self._cache is None:
            for n, recs in self._records.items():
                if len(recs) > 1 and any(r.in_backward for r in recs):
                    raise RuntimeError(
                        f"{n}: several forward calls per reset() under reentrant checkpointing: their row "
                        "order is unknown; reset() between forwards or use non-reentrant checkpointing"
                    )
            self._cache = {  # one record (the usual case): its G as is, no copy (one launch less per module)
                n: self._G(recs[0]) if len(recs) == 1 else torch.cat([self._G(r) for r in recs])
                for n, recs in self._records.items()
                if recs
            }
        return self._cache

    def total(self) -> dict[str, Tensor]:
        """{module: (R,)}: sum over rows = the batch gradient in capture coordinates."""
        return {n: G.sum(0) for n, G in self.per_rollout.items()}

    @property
    def batch_size(self) -> int:
        recs = next((r for r in self._records.values() if r), [])
        return sum((r.b if r.b is not None else r.G).shape[0] for r in recs)

    def per_token(self, name: str) -> tuple[Tensor, Tensor]:
        """(a, b) for one module, each (B, T, R) in token_dtype: ``a = U^T g``, ``b = V^T x``, ``G_bt = a * b``.

        Positions where the backward never arrived have ``a = 0``. Sum of ``a * b`` over t equals
        ``per_rollout[name]`` (up to token_dtype rounding).
        """
        if not self.per_token_enabled:
            raise RuntimeError("per-token factors were not kept: construct GradCapture(..., per_token=True)")
        self._check_captured()
        recs = self._records[name]
        if not recs:
            raise KeyError(f"no forward of {name} was captured")
        aa, bb = [], []
        for r in recs:
            b = r.b.to(device=self.token_device or r.b.device, dtype=self.token_dtype)
            aa.append(r.a if r.a is not None else torch.zeros_like(b))
            bb.append(b)
        if len({tuple(t.shape[1:]) for t in bb}) > 1:
            raise ValueError(
                f"{name}: forward calls since reset() had different sequence lengths "
                f"{[tuple(t.shape) for t in bb]}; reset() between them or pad to one length"
            )
        return torch.cat(aa), torch.cat(bb)

    def iter_per_token(self) -> Iterator[tuple[str, Tensor, Tensor]]:
        """Yield (name, a, b) one module at a time (peak memory: one module's factors)."""
        for n in self.names:
            if self._records[n]:
                a, b = self.per_token(n)
                yield n, a, b
