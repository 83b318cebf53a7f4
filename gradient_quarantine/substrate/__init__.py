"""The coding substrate: problems, the four loophole modes with their hints and flawed graders, and a
sandboxed strict grader. Nothing here knows about models or gradients."""

from gradient_quarantine.substrate.types import MODES, Mode, Problem, Verdict

__all__ = ["MODES", "Mode", "Problem", "Verdict"]
