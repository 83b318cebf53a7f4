"""route2b: per-rollout / per-token gradient capture in adapter coordinates, the hack direction `v_grad`
from a pair set, the calibrated band and gate, and routing into main and quarantine knobs.

No-cheat invariant: this package sees gradients and the fixed pair set only. It must never import
`gradient_quarantine.substrate` nor read rewards, labels or modes (tests/test_no_cheat.py enforces it).
"""
