"""gradient_quarantine/seeding.py: each purpose's stream is the one runs have always drawn (the salts are frozen:
a resumed run, or a comparison with a recorded one, must redraw the same numbers), no two purposes share a
stream, the docstring's table lists every function, and no other module derives a salted stream of its own."""

from __future__ import annotations

import hashlib
import inspect
import json
import random
import re
from pathlib import Path

import numpy as np

import gradient_quarantine
from gradient_quarantine import seeding

SEEDS = (0, 41, 12345)


def _np(*words):
    return np.random.default_rng(list(words))


def test_each_stream_is_the_one_runs_have_always_drawn():
    """The expressions the modules wrote before the streams had names, value for value."""
    for s in SEEDS:
        assert seeding.mode_partition_rng(s).random() == random.Random(s).random()
        assert seeding.split_rng(s).random() == random.Random(f"split:{s}").random()
        assert seeding.no_loophole_rng(s).random() == random.Random(f"no_loophole:{s}").random()
        assert seeding.warmstart_hacks_rng(s).random() == random.Random(f"warmstart-hacks:{s}").random()
        assert seeding.warmstart_order_rng(s).random() == random.Random(f"warmstart-order:{s}").random()
        assert (seeding.eval_holdout_rng(s).permutation(50) == _np(s, 0x40D).permutation(50)).all()
        assert (seeding.eval_prompts_rng(s).permutation(50) == _np(s, 0xE7A1).permutation(50)).all()
        assert (seeding.prompt_order_rng(s).permutation(50) == _np(s, 0x5A3).permutation(50)).all()
        assert seeding.random_v_seed(s) == s + 7919
        for step in (0, 1, 17):
            assert seeding.eval_sampling_seed(s, step) == int(_np(s, step, 0xDE91).integers(0, 2**62))
            for group in (0, 3):
                assert (seeding.teacher_rng(s, step, group).random(8) == _np(s, step, group, 0x7EAC).random(8)).all()
        key = (3, 0, "p1", "def f(): pass")
        blob = json.dumps(["gq-monitor", s, *key], ensure_ascii=False, default=str).encode()
        want = int.from_bytes(hashlib.blake2b(blob, digest_size=8).digest(), "big") / 2.0**64
        assert seeding.monitor_uniform(s, key) == want


def test_purposes_do_not_share_a_stream():
    s = 41
    firsts = {
        "mode_partition": seeding.mode_partition_rng(s).random(),
        "split": seeding.split_rng(s).random(),
        "no_loophole": seeding.no_loophole_rng(s).random(),
        "warmstart_hacks": seeding.warmstart_hacks_rng(s).random(),
        "warmstart_order": seeding.warmstart_order_rng(s).random(),
        "eval_holdout": float(seeding.eval_holdout_rng(s).random()),
        "eval_prompts": float(seeding.eval_prompts_rng(s).random()),
        "prompt_order": float(seeding.prompt_order_rng(s).random()),
        "teacher": float(seeding.teacher_rng(s, 0, 0).random()),
        "monitor": seeding.monitor_uniform(s, (0,)),
    }
    assert len(set(firsts.values())) == len(firsts), firsts
    assert seeding.eval_sampling_seed(s, 1) != seeding.eval_sampling_seed(s, 2)
    assert seeding.teacher_rng(s, 1, 0).random() != seeding.teacher_rng(s, 1, 1).random()


def test_the_docstring_table_lists_every_stream():
    public = [n for n, f in inspect.getmembers(seeding, inspect.isfunction) if f.__module__ == seeding.__name__
              and not n.startswith("_")]  # fmt: skip
    assert len(public) >= 12
    rows = [line for line in seeding.__doc__.splitlines() if line.startswith("| `")]
    for name in public:
        assert any(row.startswith(f"| `{name}(") for row in rows), f"{name} is missing from seeding.py's table"


# Seeded uses that are not a purpose's stream: a seed handed in by the caller (already derived), or fixed ones.
NOT_SALTS = (
    ("model/loading.py", "torch.manual_seed(seed)"),  # the tiny test model's init: its own `seed` argument
    ("routing/direction.py", "torch.Generator().manual_seed(int(seed))"),  # random-V: the caller's seed
    ("train/deploy_eval.py", "torch.manual_seed(int(seed))"),  # an eval's sampling: eval_sampling_seed's value
    ("substrate/_sandbox_worker.py", '.seed(0)'),  # every sandboxed program (imports nothing from the package)
    ("substrate/sandbox.py", "random.seed(0)"),  # the docstring that says so
)
_STREAM = re.compile(r"default_rng\(|random\.Random\(|manual_seed\(|\.seed\(|blake2b|seed\s*[-+*^]\s*\d|0x[0-9A-Fa-f]{3,}.*\]")


def test_no_module_derives_a_stream_of_its_own():
    root = Path(gradient_quarantine.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel == "seeding.py":
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not _STREAM.search(line):
                continue
            if any(rel == f and snippet in line for f, snippet in NOT_SALTS):
                continue
            found.append(f"{rel}:{i}: {line.strip()}")
    assert not found, "derive seeded streams in gradient_quarantine/seeding.py (one named function per purpose):\n" + (
        "\n".join(found)
    )
