"""The SVD adapter's settings and their checks, written once (no torch: the training config imports it).

`AdapterConfig` says which linear layers get an adapter (`model/svd_adapter.py`) and how the quarantine knob
relates to the main knob; its `__post_init__` is the one place adapter settings are validated. The training
config's `adapter` section (`train/config.py`) builds one from its keys, so `gq train --set adapter.rank=0` and
`AdapterConfig(rank=0)` fail with the same message.

    >>> cfg = AdapterConfig(rank=16, target_modules=targets_regex(["q_proj", "v_proj"]), knob_rank=4)
    >>> cfg.capture_rank, cfg.knob_size                 # (20, 4): R axes captured, dS_knob's length
    >>> AdapterConfig(rank=4, knob_relation="vgrad_span", knob_rank=5)   # -> ValueError: ... k <= rank ...
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

KnobRelation = Literal["shared", "disjoint", "vgrad_span"]
KNOB_RELATIONS: tuple[str, ...] = ("shared", "disjoint", "vgrad_span")
# every attention and MLP projection of a llama/qwen-style decoder layer
DEFAULT_TARGET_NAMES: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def targets_regex(names: Sequence[str]) -> str:
    """`AdapterConfig.target_modules` for layer-name suffixes: a linear layer is targeted when its full module
    name is one of `names` or ends in `.<name>`; e.g. `["q_proj", "v_proj"]` -> `(?:^|\\.)(q_proj|v_proj)$`."""
    return r"(?:^|\.)(" + "|".join(re.escape(n) for n in names) + r")$"


DEFAULT_TARGETS = targets_regex(DEFAULT_TARGET_NAMES)


@dataclass
class AdapterConfig:
    """Which layers get an SVD adapter and how the quarantine knob relates to the main knob."""

    rank: int = 16
    """r: top-r singular triplets per module scaled by the main knob ("basis width")."""
    target_modules: str = DEFAULT_TARGETS
    """Regex searched in each nn.Linear's full module name; default: all attention and MLP projections."""
    layers: tuple[int, int] | None = None
    """Optional half-open decoder-layer range [start, end); None = every layer."""
    knob_relation: KnobRelation = "disjoint"
    """shared | disjoint | vgrad_span (docs/design.md §5; `shared` is the known placebo-tie diagnostic arm)."""
    knob_rank: int = 4
    """Axes the knob owns (disjoint: the next knob_rank singular triplets) or k (vgrad_span); unused for shared."""

    def __post_init__(self) -> None:
        if self.knob_relation not in KNOB_RELATIONS:
            raise ValueError(
                f"knob_relation={self.knob_relation!r}: must be one of {', '.join(KNOB_RELATIONS)}"
            )
        if not isinstance(self.rank, int) or self.rank < 1:
            raise ValueError(f"rank={self.rank!r}: must be a positive int (number of singular triplets)")
        if not isinstance(self.knob_rank, int) or self.knob_rank < 1:
            raise ValueError(f"knob_rank={self.knob_rank!r}: must be a positive int")
        if self.knob_relation == "vgrad_span" and self.knob_rank > self.rank:
            raise ValueError(
                f"knob_rank={self.knob_rank} > rank={self.rank}: a vgrad_span knob is a subspace of the main "
                "adapter's r axes, so k <= rank; lower knob_rank or raise rank"
            )
        try:
            re.compile(self.target_modules)
        except re.error as e:
            raise ValueError(f"target_modules={self.target_modules!r} is not a valid regex: {e}") from e
        if self.layers is not None:
            if len(self.layers) != 2:
                raise ValueError(f"layers={self.layers!r}: give (start, end), a half-open layer range")
            start, end = (int(v) for v in self.layers)
            if not 0 <= start < end:
                raise ValueError(f"layers={self.layers!r}: need 0 <= start < end")
            self.layers = (start, end)

    @property
    def capture_rank(self) -> int:
        """R: axes kept per module = capture coordinates (rank + knob_rank for disjoint, else rank)."""
        return self.rank + self.knob_rank if self.knob_relation == "disjoint" else self.rank

    @property
    def knob_size(self) -> int:
        """Length of dS_knob per module."""
        return self.rank if self.knob_relation == "shared" else self.knob_rank

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["layers"] = list(self.layers) if self.layers is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AdapterConfig:
        d = dict(d)
        if d.get("layers") is not None:
            d["layers"] = tuple(d["layers"])
        return cls(**d)
