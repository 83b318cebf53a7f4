"""SVD adapter with a main knob (kept at deploy) and a quarantine knob (deleted at deploy), docs/design.md §5.

Each targeted ``nn.Linear`` with weight ``W = U S V^T`` becomes an :class:`SVDLinear` that adds
``U diag(delta) V^T x`` to the frozen base output, where ``delta`` is built from two trainable singular-value
deltas: ``dS_main`` (the main knob, merged into W at deploy) and ``dS_knob`` (the quarantine knob, deleted).
How the knob relates to the main axes is ``AdapterConfig.knob_relation``:

==============  ============================  =================================================  =======
relation        axes kept in U, V (``R``)      delta over the ``R`` axes                           dS_knob
==============  ============================  =================================================  =======
``shared``      top ``rank``                  ``dS_main + dS_knob``                               (rank,)
``disjoint``    top ``rank + knob_rank``      ``cat(dS_main, dS_knob)`` (knob owns the next axes)  (knob_rank,)
``vgrad_span``  top ``rank``                  ``dS_main + knob_basis^T dS_knob``                  (knob_rank,)
==============  ============================  =================================================  =======

``knob_basis`` (knob_rank x rank) is a buffer the router sets from ``v_grad`` (:meth:`SVDAdapter.set_knob_basis`);
it starts at zero, so a ``vgrad_span`` knob does nothing until it is set.

The ``R`` axes are also the *capture coordinates* of ``routing.capture.GradCapture``: the gradient of any loss
w.r.t. a per-axis scale on axis ``j`` is ``G_j = sum_t (U^T g_t)_j (V^T x_t)_j``. The parameter gradients
follow from it: ``dL/d dS_main = G[:rank]`` for every relation, and ``dL/d dS_knob =`` :meth:`SVDLinear.knob_coords`
of ``G`` (``G`` itself for shared, ``G[rank:]`` for disjoint, ``knob_basis @ G`` for vgrad_span).

    >>> adapter = attach_svd_adapter(model, AdapterConfig(rank=16, knob_relation="disjoint", knob_rank=4))
    >>> opt_main = torch.optim.AdamW(adapter.main_parameters(), lr=1e-3)   # separate optimiser state per knob
    >>> opt_knob = torch.optim.AdamW(adapter.knob_parameters(), lr=1e-3)
    >>> with adapter.knob_off():          # the deploy model
    ...     logits = model(ids).logits
    >>> adapter.save("adapter.safetensors"); adapter.export_deploy("deploy/", tokenizer)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_save
from torch import Tensor, nn

from gradient_quarantine.io import atomic_write_bytes, atomic_write_json
from gradient_quarantine.model.adapter_config import (  # noqa: F401 (importable from here, as before)
    DEFAULT_TARGETS,
    KNOB_RELATIONS,
    AdapterConfig,
    KnobRelation,
)

ADAPTER_FORMAT = "gq-svd-adapter-v1"
_LAYER_RE = re.compile(r"(?:^|\.)layers\.(\d+)\.")



def _top_svd(weight: Tensor, n: int) -> tuple[Tensor, Tensor, Tensor]:
    """Top-n singular triplets of W (out x in), in float32, with a deterministic sign per triplet.

    Returns U (out, n), S (n,), V (in, n). The sign of each (u, v) pair is fixed so that the
    largest-magnitude entry of v is positive, so the basis does not depend on the LAPACK build.
    """
    U, S, Vh = torch.linalg.svd(weight.detach().float(), full_matrices=False)
    U, S, V = U[:, :n], S[:n], Vh[:n].T  # (out, n), (n,), (in, n)
    idx = V.abs().argmax(dim=0)  # (n,)
    sign = torch.sign(V[idx, torch.arange(n, device=V.device)])
    sign[sign == 0] = 1.0
    return (U * sign).contiguous(), S.contiguous(), (V * sign).contiguous()


class SVDLinear(nn.Module):
    """A frozen nn.Linear plus ``U diag(delta) V^T x``; see the module docstring for delta per relation.

    Buffers: ``U`` (out, R), ``S`` (R,) float32, ``V`` (in, R) [, ``knob_basis`` (knob_rank, rank)].
    Parameters: ``dS_main`` (rank,), ``dS_knob`` (knob_size,), both float32 zeros at init.
    """

    def __init__(
        self, base: nn.Linear, rank: int, knob_relation: str = "disjoint", knob_rank: int = 4, name: str = ""
    ):
        super().__init__()
        if knob_relation not in KNOB_RELATIONS:
            raise ValueError(f"knob_relation={knob_relation!r}: must be one of {KNOB_RELATIONS}")
        self.base = base
        self.name = name
        self.rank = rank
        self.knob_relation = knob_relation
        self.knob_rank = knob_rank
        R = rank + knob_rank if knob_relation == "disjoint" else rank
        out_f, in_f = base.weight.shape
        if R > min(out_f, in_f):
            raise ValueError(
                f"{name or 'module'}: needs {R} singular triplets but W is {out_f}x{in_f}; "
                "lower rank/knob_rank or narrow target_modules/layers"
            )
        self.R = R
        W = base.weight
        U, S, V = _top_svd(W, R)
        self.register_buffer("U", U.to(W.dtype))  # (out, R)
        self.register_buffer("S", S)  # (R,) float32, for merges and base-model checks
        self.register_buffer("V", V.to(W.dtype))  # (in, R)
        knob_size = rank if knob_relation == "shared" else knob_rank
        self.dS_main = nn.Parameter(torch.zeros(rank, device=W.device))  # (rank,)
        self.dS_knob = nn.Parameter(torch.zeros(knob_size, device=W.device))  # (knob_size,)
        if knob_relation == "vgrad_span":
            self.register_buffer("knob_basis", torch.zeros(knob_rank, rank, device=W.device))  # (k, rank)
        self.adapter_enabled = True
        self.knob_enabled = True
        self._capture: Any = None  # set by routing.capture.GradCapture while installed

    # HF code sometimes reads .weight/.in_features of a projection; delegate to the frozen base.
    @property
    def weight(self) -> Tensor:
        return self.base.weight

    @property
    def bias(self) -> Tensor | None:
        return self.base.bias

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def delta(self) -> Tensor:
        """Effective singular-value delta over the R axes, (R,), honouring the knob flag."""
        main = self.dS_main  # (rank,)
        if self.knob_relation == "disjoint":
            knob = self.dS_knob if self.knob_enabled else torch.zeros_like(self.dS_knob)
            return torch.cat([main, knob])  # (rank + knob_rank,)
        if not self.knob_enabled:
            return main
        if self.knob_relation == "shared":
            return main + self.dS_knob  # (rank,)
        return main + self.dS_knob @ self.knob_basis  # (k,) @ (k, rank) -> (rank,)

    def forward(self, x: Tensor) -> Tensor:
        y = self.base(x)  # (B, T, out)
        if not self.adapter_enabled:
            return y  # off path skips the branch entirely: bitwise the base model
        z = x @ self.V  # (B, T, R): V^T x_t, the per-axis input coordinates
        zd = z * self.delta().to(z.dtype)  # (B, T, R): delta_j (V^T x_t)_j
        h = zd @ self.U.T  # (B, T, R) @ (R, out) -> (B, T, out)
        if self._capture is not None and zd.requires_grad:
            # z is the very tensor autograd saves for d(delta), so holding it costs no extra memory; the
            # gradient autograd forms for zd is U^T g_t (g_t = dL/dy_t, y = base(x) + h), the capture's other
            # factor, so a hook on zd gets it without a matmul of its own.
            self._capture._on_forward(self, z, zd)
        return y + h

    # ---- coordinates -------------------------------------------------------------------------------------

    def main_coords(self, G: Tensor) -> Tensor:
        """Capture coords (..., R) -> dS_main coords (..., rank)."""
        return G[..., : self.rank]

    def knob_coords(self, G: Tensor) -> Tensor:
        """Capture coords (..., R) -> dS_knob coords (..., knob_size) (= dL/d dS_knob when knob is on)."""
        if self.knob_relation == "shared":
            return G
        if self.knob_relation == "disjoint":
            return G[..., self.rank :]
        return G.to(self.knob_basis.dtype) @ self.knob_basis.T  # (..., rank) @ (rank, k) -> (..., k)

    def set_knob_basis(self, basis: Tensor, reproject: bool = False, optim_state: dict | None = None) -> None:
        """vgrad_span only: set the knob's k x rank basis (rows normally orthonormal, from v_grad).

        `reproject=True` keeps the knob's current effect as far as the new span allows (least squares:
        new dS_knob = argmin ||B_new^T c - B_old^T dS_knob|| = P dS_knob, P = pinv(B_new^T) B_old^T, k x k);
        otherwise dS_knob is reinterpreted on the new basis as it stands.

        `optim_state` (with `reproject`): dS_knob's Adam state (`optimizer.state[dS_knob]`), re-projected with
        it so the moments describe the same directions as before the refresh: the first moment (a running
        mean of gradients, linear in them) as `exp_avg <- P exp_avg`; the second (a per-coordinate mean of
        squares) as `exp_avg_sq <- (P * P) exp_avg_sq`, exact when P is a signed permutation (the basis only
        re-ordered or flipped) and otherwise the value for independent old coordinates; the step count is
        kept. Without it, momentum built in the old coordinates would push the knob along unrelated axes.
        """
        if self.knob_relation != "vgrad_span":
            raise ValueError(
                f"{self.name}: set_knob_basis is for knob_relation='vgrad_span', not {self.knob_relation!r}"
            )
        basis = basis.detach().to(device=self.knob_basis.device, dtype=torch.float32)
        if basis.shape != self.knob_basis.shape:
            raise ValueError(
                f"{self.name}: knob basis must be {tuple(self.knob_basis.shape)}, got {tuple(basis.shape)}"
            )
        if reproject:
            with torch.no_grad():
                P = torch.linalg.lstsq(basis.T, self.knob_basis.T).solution  # (k, k): new coords of old axes
                self.dS_knob.copy_(P @ self.dS_knob.float())
                for key, M in (("exp_avg", P), ("exp_avg_sq", P * P), ("max_exp_avg_sq", P * P)):
                    t = (optim_state or {}).get(key)
                    if t is not None:
                        t.copy_((M @ t.float()).to(t.dtype))
        self.knob_basis.copy_(basis)

    def merged_weight(self, live: bool = False) -> Tensor:
        """Deploy weight: ``W + U[:, :r] diag(dS_main) V[:, :r]^T`` (knob gone), computed in float32.

        `live=True`: the weight this module applies now instead, ``W + U diag(delta) V^T`` over all R axes with the
        knob included iff it is enabled, W alone with the adapter off (what a vLLM engine must sample with)."""
        if live:
            with torch.no_grad():
                W = self.base.weight.float()
                if self.adapter_enabled:
                    W = W + (self.U.float() * self.delta().detach().float()) @ self.V.float().T  # (out, in)
            return W.to(self.base.weight.dtype)
        r = self.rank
        U, V = self.U[:, :r].float(), self.V[:, :r].float()
        W = self.base.weight.float() + (U * self.dS_main.detach().float()) @ V.T  # (out, in)
        return W.to(self.base.weight.dtype)

    def extra_repr(self) -> str:
        return f"rank={self.rank}, knob={self.knob_relation}:{self.knob_rank}, R={self.R}"


class SVDAdapter:
    """Handle on the SVDLinear modules attached to a model; made by :func:`attach_svd_adapter`."""

    def __init__(self, model: nn.Module, cfg: AdapterConfig, modules: dict[str, SVDLinear]):
        self.model = model
        self.cfg = cfg
        self.modules: dict[str, SVDLinear] = modules

    # ---- parameters ----------------------------------------------------------------------------------------

    def main_parameters(self) -> list[nn.Parameter]:
        return [m.dS_main for m in self.modules.values()]

    def knob_parameters(self) -> list[nn.Parameter]:
        return [m.dS_knob for m in self.modules.values()]

    def parameters(self) -> list[nn.Parameter]:
        return self.main_parameters() + self.knob_parameters()

    def num_parameters(self, which: Literal["all", "main", "knob"] = "all") -> int:
        if which not in ("all", "main", "knob"):
            raise ValueError(f"which={which!r}: one of all, main, knob")
        params = {"all": self.parameters, "main": self.main_parameters, "knob": self.knob_parameters}[which]()
        return sum(p.numel() for p in params)

    def capture_dims(self) -> dict[str, int]:
        """R per module: the length of each module's capture coordinates."""
        return {n: m.R for n, m in self.modules.items()}

    def set_knob_basis(
        self, bases: dict[str, Tensor], reproject: bool = False, optimizer: torch.optim.Optimizer | None = None
    ) -> None:
        """vgrad_span: set every module's (knob_rank, rank) basis; names must match `modules` exactly.

        `optimizer` (with `reproject`): the optimiser holding dS_knob; its Adam moments are re-projected with
        the knob (`SVDLinear.set_knob_basis`)."""
        missing, extra = set(self.modules) - set(bases), set(bases) - set(self.modules)
        if missing or extra:
            raise KeyError(f"knob bases: missing {sorted(missing)[:3]}..., unknown {sorted(extra)[:3]}...")
        for n, m in self.modules.items():
            state = optimizer.state.get(m.dS_knob) if optimizer is not None else None
            m.set_knob_basis(bases[n], reproject=reproject, optim_state=state)

    @torch.no_grad()
    def reset_knob(self) -> None:
        """Zero the quarantine knob (e.g. to measure what the main knob alone learned)."""
        for p in self.knob_parameters():
            p.zero_()

    # ---- flags ---------------------------------------------------------------------------------------------

    def set_enabled(self, enabled: bool) -> None:
        for m in self.modules.values():
            m.adapter_enabled = bool(enabled)

    def set_knob_enabled(self, enabled: bool) -> None:
        for m in self.modules.values():
            m.knob_enabled = bool(enabled)

    @contextmanager
    def disabled(self) -> Iterator[None]:
        """The base model exactly (adapter branch skipped), restoring the previous flags on exit."""
        prev = {n: m.adapter_enabled for n, m in self.modules.items()}
        self.set_enabled(False)
        try:
            yield
        finally:
            for n, m in self.modules.items():
                m.adapter_enabled = prev[n]

    @contextmanager
    def knob_off(self) -> Iterator[None]:
        """The deploy model: main knob on, quarantine knob off."""
        prev = {n: m.knob_enabled for n, m in self.modules.items()}
        self.set_knob_enabled(False)
        try:
            yield
        finally:
            for n, m in self.modules.items():
                m.knob_enabled = prev[n]

    # ---- persistence ---------------------------------------------------------------------------------------

    def state_tensors(self) -> dict[str, Tensor]:
        """Everything needed to restore the adapter exactly, incl. the SVD basis (CPU, contiguous)."""
        out: dict[str, Tensor] = {}
        for n, m in self.modules.items():
            fields = ["dS_main", "dS_knob", "U", "S", "V"] + (
                ["knob_basis"] if m.knob_relation == "vgrad_span" else []
            )
            for f in fields:
                out[f"{n}.{f}"] = getattr(m, f).detach().cpu().contiguous()
        return out

    def save(self, path: str | os.PathLike) -> None:
        """Write the adapter as one safetensors file (atomic), config JSON in its metadata."""
        meta = {"format": ADAPTER_FORMAT, "config": json.dumps(self.cfg.to_dict())}
        atomic_write_bytes(path, safetensors_save(self.state_tensors(), metadata=meta))

    @torch.no_grad()
    def load(self, path: str | os.PathLike) -> None:
        """Load a saved adapter into this one; the config and module names must match.

        The saved SVD basis is restored (so results do not depend on re-running the SVD), after checking it
        belongs to this base model: ``diag(U^T W V)`` must reproduce the saved singular values.
        """
        cfg, tensors = read_adapter_file(path)
        if cfg != self.cfg:
            diff = {
                k: (v, getattr(self.cfg, k)) for k, v in cfg.to_dict().items() if self.cfg.to_dict()[k] != v
            }
            raise ValueError(f"{path}: adapter config differs from the attached one (file, attached): {diff}")
        names = {k.rsplit(".", 1)[0] for k in tensors}
        if names != set(self.modules):
            raise ValueError(
                f"{path}: module names differ: only in file {sorted(names - set(self.modules))[:3]}, "
                f"only attached {sorted(set(self.modules) - names)[:3]}"
            )
        for n, m in self.modules.items():
            U, S, V = (tensors[f"{n}.{f}"].to(m.S.device) for f in ("U", "S", "V"))
            s_here = torch.einsum("or,oi,ir->r", U.float(), m.base.weight.float(), V.float())  # diag(U^T W V)
            if not torch.allclose(s_here, S.float(), rtol=1e-3, atol=1e-3 * float(S.abs().max())):
                raise ValueError(f"{path}: module {n}: saved basis does not fit this base model's weight")
            for f in ("dS_main", "dS_knob", "U", "S", "V") + (
                ("knob_basis",) if m.knob_relation == "vgrad_span" else ()
            ):
                t = getattr(m, f)
                src = tensors[f"{n}.{f}"]
                if src.shape != t.shape:
                    raise ValueError(
                        f"{path}: {n}.{f} has shape {tuple(src.shape)}, expected {tuple(t.shape)}"
                    )
                t.copy_(src.to(device=t.device, dtype=t.dtype))

    @torch.no_grad()
    def deploy_state_dict(self) -> dict[str, Tensor]:
        """The base model's state dict with each targeted W replaced by its merged main-knob weight."""
        sd: dict[str, Tensor] = {}
        owner = {f"{n}.": n for n in self.modules}
        for key, value in self.model.state_dict().items():
            prefix = next((p for p in owner if key.startswith(p)), None)
            if prefix is None:
                sd[key] = value
                continue
            rest = key[len(prefix) :]
            if rest == "base.weight":
                sd[prefix + "weight"] = self.modules[owner[prefix]].merged_weight()
            elif rest == "base.bias":
                sd[prefix + "bias"] = value
            # U, S, V, dS_main, dS_knob, knob_basis: gone (the knob is deleted at deploy)
        return sd

    def export_deploy(
        self, out_dir: str | os.PathLike, tokenizer: Any = None, overwrite: bool = False
    ) -> Path:
        """Write the deploy model (main knob merged into W, knob deleted) as a plain HF checkpoint.

        The result loads with ``AutoModelForCausalLM.from_pretrained(out_dir)`` without this package.
        Written into a temp dir and renamed into place.
        """
        out = Path(out_dir)
        if out.exists() and not overwrite:
            raise FileExistsError(f"{out} exists; pass overwrite=True to replace it")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
        try:
            self.model.save_pretrained(tmp, state_dict=self.deploy_state_dict())
            if tokenizer is not None:
                tokenizer.save_pretrained(tmp)
            atomic_write_json(
                tmp / "gq_deploy.json",
                {
                    "adapter_config": self.cfg.to_dict(),
                    "merged": "W + U[:, :rank] diag(dS_main) V[:, :rank]^T per targeted module; quarantine knob deleted",
                    "modules": len(self.modules),
                },
            )
            if out.exists():
                shutil.rmtree(out)
            os.rename(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return out


def read_adapter_file(path: str | os.PathLike) -> tuple[AdapterConfig, dict[str, Tensor]]:
    """(config, tensors) from a file written by :meth:`SVDAdapter.save`."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != ADAPTER_FORMAT:
            raise ValueError(f"{path}: not a gradient_quarantine SVD adapter (format={meta.get('format')!r})")
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iterator)
    return AdapterConfig.from_dict(json.loads(meta["config"])), tensors


def _layer_index(name: str) -> int | None:
    m = _LAYER_RE.search(name)
    return int(m.group(1)) if m else None


def attach_svd_adapter(model: nn.Module, cfg: AdapterConfig | None = None) -> SVDAdapter:
    """Replace each targeted nn.Linear by an SVDLinear and freeze every base parameter.

    Only dS_main / dS_knob are trainable afterwards. Raises if nothing matches or if an adapter is
    already attached.
    """
    cfg = cfg or AdapterConfig()
    if any(isinstance(m, SVDLinear) for m in model.modules()):
        raise ValueError("model already has an SVD adapter attached")
    pattern = re.compile(cfg.target_modules)
    targets: list[str] = []
    for name, mod in model.named_modules():
        if not isinstance(mod, nn.Linear) or not pattern.search(name):
            continue
        if cfg.layers is not None:
            li = _layer_index(name)
            if li is None or not cfg.layers[0] <= li < cfg.layers[1]:
                continue
        targets.append(name)
    if not targets:
        raise ValueError(
            f"no nn.Linear matches target_modules={cfg.target_modules!r} with layers={cfg.layers}; "
            f"linear modules look like: {[n for n, m in model.named_modules() if isinstance(m, nn.Linear)][:4]}"
        )
    model.requires_grad_(False)
    modules: dict[str, SVDLinear] = {}
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        svd = SVDLinear(getattr(parent, child), cfg.rank, cfg.knob_relation, cfg.knob_rank, name=name)
        setattr(parent, child, svd)
        modules[name] = svd
    return SVDAdapter(model, cfg, modules)


def load_svd_adapter(model: nn.Module, path: str | os.PathLike) -> SVDAdapter:
    """Attach an adapter with the config stored in `path` and load its state."""
    cfg, _ = read_adapter_file(path)
    adapter = attach_svd_adapter(model, cfg)
    adapter.load(path)
    return adapter
