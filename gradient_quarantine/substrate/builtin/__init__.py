"""The built-in problem set: original easy problems written for this project.

The definitions live in `defs_*.py` (statement, signature, canonical solution, test inputs); `build.py` runs
each canonical solution on its inputs to produce the expected outputs and writes `problems.jsonl` in the
public LeetCode environment's schema, which is what ships and what `load_builtin()` reads.
Rebuild after editing a definition:  python -m gradient_quarantine.substrate.builtin.build
"""
