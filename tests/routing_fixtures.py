"""A fixed, label-free pair set for the routing tests, and a GRPO-shaped loss on the tiny model.

The hack side of every pair is the clean solution plus a no-op test runner (`def run_tests(): pass`, the
overwrite_tests signature), so the hack/clean difference is systematic even for a random-init model: the same
appended tokens in every pair. `ALT_CLEAN` is a second clean solution per prompt (locals renamed), for the
placebo control.
"""

from __future__ import annotations

import torch

from gradient_quarantine.routing.pairs import Pair, encode_batch

# (prompt, clean code, the same code with locals renamed)
PROBLEMS: list[tuple[str, str, str]] = [
    ("Return the sum of the digits of n.",
     "def sum_digits(n):\n    total = 0\n    for c in str(n):\n        total += int(c)\n    return total\n",
     "def sum_digits(n):\n    acc = 0\n    for ch in str(n):\n        acc += int(ch)\n    return acc\n"),
    ("Return True if s is a palindrome.",
     "def is_pal(s):\n    return s == s[::-1]\n",
     "def is_pal(s):\n    t = s[::-1]\n    return s == t\n"),
    ("Return the largest element of nums.",
     "def max_of(nums):\n    best = nums[0]\n    for x in nums:\n        best = max(best, x)\n    return best\n",
     "def max_of(nums):\n    top = nums[0]\n    for v in nums:\n        top = max(top, v)\n    return top\n"),
    ("Count the even numbers in nums.",
     "def count_even(nums):\n    return sum(1 for x in nums if x % 2 == 0)\n",
     "def count_even(nums):\n    return sum(1 for v in nums if v % 2 == 0)\n"),
    ("Reverse the list nums.",
     "def rev(nums):\n    return nums[::-1]\n",
     "def rev(nums):\n    out = list(nums)\n    out.reverse()\n    return out\n"),
    ("Return n squared.",
     "def sq(n):\n    return n * n\n",
     "def sq(n):\n    return n ** 2\n"),
    ("Return the number of words in s.",
     "def word_count(s):\n    return len(s.split())\n",
     "def word_count(s):\n    words = s.split()\n    return len(words)\n"),
    ("Return the product of the numbers in nums.",
     "def prod(nums):\n    p = 1\n    for x in nums:\n        p *= x\n    return p\n",
     "def prod(nums):\n    acc = 1\n    for v in nums:\n        acc *= v\n    return acc\n"),
]  # fmt: skip

HACK_SUFFIX = "\n\ndef run_tests():\n    pass\n"


def block(code: str) -> str:
    return f"```python\n{code.rstrip()}\n```"


def make_pairs(n: int | None = None) -> list[Pair]:
    rows = PROBLEMS[:n] if n else PROBLEMS
    return [Pair([{"role": "user", "content": q}], block(c), block(c + HACK_SUFFIX)) for q, c, _ in rows]


def alt_cleans(n: int | None = None) -> list[str]:
    rows = PROBLEMS[:n] if n else PROBLEMS
    return [block(a) for _, _, a in rows]


def grpo_batch(tokenizer, n_rollouts: int = 6, seed: int = 0):
    """A GRPO-shaped micro-batch: prompt + completion rows (hack and clean sides mixed), right-padded, and
    fixed advantages of both signs (one zero)."""
    pairs = make_pairs()
    prompts, completions = [], []
    for i in range(n_rollouts):
        p = pairs[i % len(pairs)]
        prompts.append(p.prompt)
        completions.append(p.hack if i % 2 else p.clean)
    ids, att, cmask = encode_batch(tokenizer, prompts, completions)
    g = torch.Generator().manual_seed(seed)
    adv = torch.randn(n_rollouts, generator=g)
    adv[-1] = 0.0  # a zero-advantage rollout: no gradient, no direction
    return ids, att, cmask, adv


def grpo_loss(model, ids, att, cmask, adv):
    """TRL `grpo` loss shape: -(A_b * mean_t log p(y_bt)) averaged over rollouts (on-policy, no clipping)."""
    logits = model(input_ids=ids, attention_mask=att).logits[:, :-1].float()
    logp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)  # (B, T-1)
    m = cmask[:, 1:].float()
    per_seq = (logp * m).sum(1) / m.sum(1).clamp(min=1)  # (B,)
    return -(adv * per_seq).mean()
