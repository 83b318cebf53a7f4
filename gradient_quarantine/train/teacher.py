"""Teacher mix (docs/design.md §6 and §8): a cached pool of teacher completions, part of each GRPO group.

The embedded model almost never solves a problem and rarely samples a hack on its own, so GRPO gets little
signal; the lever is to put known completions into the groups: each problem's canonical solution and the hack
of its mode, written as the policy is asked to write them (one ```python block), tokenised with the policy's
tokenizer and followed by EOS as a sampled completion ends. They are graded and rewarded like any rollout and go
through the same gate as the policy's own (routing never sees the teacher flag; the trainer only logs it).

Which rows of a group are teacher rows, and whether each is the canonical solution or the hack, is a pure
function of (seed, step, group index), so a resumed run draws exactly what the uninterrupted run drew.

    >>> pool = TeacherPool.build(problems, modes_of, tokenizer, hack_modes=None, cache_dir="out/cache")
    >>> draw = pool.draw(problem_id, seed=41, step=3, group=0, n=2, hack_share=0.5)   # [("hack", ids), ...]
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gradient_quarantine.io import atomic_write_json
from gradient_quarantine.seeding import teacher_rng
from gradient_quarantine.substrate.hacks import hack_completion
from gradient_quarantine.substrate.pairs import clean_completion
from gradient_quarantine.substrate.types import Mode, Problem


@dataclass(frozen=True)
class TeacherEntry:
    """One problem's teacher completions as token ids (EOS included); `hack` is None if its mode is excluded."""

    canonical: tuple[int, ...]
    hack: tuple[int, ...] | None


class TeacherPool:
    """Token ids of the canonical solution and the mode's hack for every problem."""

    def __init__(self, entries: Mapping[str, TeacherEntry]):
        self.entries = dict(entries)

    @classmethod
    def build(
        cls,
        problems: Sequence[Problem],
        modes_of: Mapping[str, Mode],
        tokenizer,
        hack_modes: Sequence[str] | None = None,
        cache_dir: str | Path | None = None,
        hack_forms: str = "template",
    ) -> TeacherPool:
        """Render and tokenise (or read the cached token ids of) every problem's teacher completions.

        `hack_forms`: "template" (the pair set's own hack template) or "warmstart" (one of the mode's warm-start
        forms, substrate/hack_forms.py, chosen per problem: hack text the pair set does not contain). A
        no-loophole problem has no hack."""
        allowed = {str(m) for m in hack_modes} if hack_modes is not None else None
        texts: dict[str, tuple[str, str | None]] = {}
        for p in problems:
            mode = modes_of[p.id]
            hackable = mode is not Mode.NO_LOOPHOLE and (allowed is None or str(mode) in allowed)
            texts[p.id] = (clean_completion(p), _hack_text(p, mode, hack_forms) if hackable else None)
        eos = tokenizer.eos_token_id
        key = _pool_key(texts, tokenizer)
        path = Path(cache_dir) / "teacher" / f"{key}.json" if cache_dir else None
        if path is not None and path.is_file():
            raw = json.loads(path.read_text(encoding="utf-8"))
            return cls({pid: TeacherEntry(tuple(e["canonical"]), _opt_tuple(e["hack"])) for pid, e in raw.items()})

        def ids(text: str) -> tuple[int, ...]:
            out = tokenizer(text, add_special_tokens=False).input_ids
            return tuple(out) + ((eos,) if eos is not None else ())

        entries = {pid: TeacherEntry(ids(c), ids(h) if h is not None else None) for pid, (c, h) in texts.items()}
        if path is not None:
            atomic_write_json(
                path, {pid: {"canonical": list(e.canonical), "hack": _opt_list(e.hack)} for pid, e in entries.items()},
                indent=None,
            )
        return cls(entries)

    def draw(
        self, problem_id: str, seed: int, step: int, group: int, n: int, hack_share: float
    ) -> list[tuple[str, tuple[int, ...]]]:
        """`n` teacher completions for one group: [(kind, token ids)], kind "hack" or "canonical".

        Each is the hack with probability `hack_share` (when the problem has one), else the canonical solution;
        drawn from a generator seeded by (seed, step, group) only, so resuming redraws the same.
        """
        entry = self.entries[problem_id]
        rng = teacher_rng(seed, step, group)
        out = []
        for _ in range(n):
            if entry.hack is not None and rng.random() < hack_share:
                out.append(("hack", entry.hack))
            else:
                out.append(("canonical", entry.canonical))
        return out


def _hack_text(problem: Problem, mode: Mode, hack_forms: str) -> str:
    if hack_forms == "template":
        return hack_completion(problem, mode)
    if hack_forms == "warmstart":
        from gradient_quarantine.substrate.hack_forms import forms_of, hack_form_completion

        forms = forms_of(mode)
        index = int(hashlib.sha256(problem.id.encode()).hexdigest(), 16) % len(forms)  # fixed per problem
        return hack_form_completion(problem, mode, forms[index])
    raise ValueError(f"teacher.hack_forms must be 'template' or 'warmstart', got {hack_forms!r}")


def _pool_key(texts: Mapping[str, tuple[str, str | None]], tokenizer) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(sorted(texts.items()), ensure_ascii=False).encode())
    h.update(json.dumps([getattr(tokenizer, "name_or_path", ""), len(tokenizer), tokenizer.eos_token_id]).encode())
    # the vocabulary itself, so two tokenizers that share a name but not their merges do not share a cache entry
    h.update(hashlib.sha256(json.dumps(sorted(tokenizer.get_vocab().items())).encode()).digest())
    return h.hexdigest()[:20]


def _opt_tuple(x):
    return None if x is None else tuple(x)


def _opt_list(x):
    return None if x is None else list(x)
