"""gradient_quarantine: route GRPO gradients that align with a weak-detector hack direction into a
deletable quarantine knob (route2b), and measure whether the deployed model hacks less.

Data flow, one package per stage:
    substrate -> model -> routing -> train -> experiments -> analysis
`routing` never imports `substrate` (the no-cheat invariant: routing sees gradients and the pair set only).
"""

__version__ = "0.1.0"
