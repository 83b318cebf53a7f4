"""Code extraction from a completion: the usual fenced-block convention (docs/design.md §4).

All ```python blocks are joined in order (an unterminated last block is accepted: generation often stops
mid-block at the token limit). `format_ok` = at least one block and the joined code parses (`ast.parse`).
This is the `0.5 * format_ok` part of the reward, so it must be cheap, total and never raise.

    >>> ex = extract_code("Here:\\n```python\\nclass Solution:\\n    pass\\n```\\nDone.")
    >>> ex.format_ok, ex.n_blocks, ex.code
    (True, 1, 'class Solution:\\n    pass')
    >>> extract_code("no code here").reason
    'no code block'
"""

from __future__ import annotations

import ast
import re
import warnings
from dataclasses import dataclass

# An opening fence: three backticks and "python"/"py"/"python3" (any case), then the end of that line; as in
# the public environment, the block runs to the next three backticks anywhere (or to the end of the text).
_OPEN = re.compile(r"```[ \t]*(?:python3?|py)[ \t]*\n", re.IGNORECASE)
_CLOSE = "```"


@dataclass(frozen=True)
class Extraction:
    """What the grader needs from a completion's text."""

    code: str  # all python blocks joined by a blank line ("" when there is none)
    n_blocks: int
    format_ok: bool  # n_blocks >= 1 and `code` parses
    reason: str  # "ok", "no code block", "empty code block", "syntax error (line 3: ...)", "null byte in code"
    tree: ast.Module | None = None  # the parsed code when format_ok (for signatures; never sent anywhere)


def code_blocks(text: str) -> list[str]:
    """The bodies of all ```python fenced blocks, in order; the last may be unterminated."""
    blocks: list[str] = []
    pos = 0
    while True:
        m = _OPEN.search(text, pos)
        if m is None:
            return blocks
        start = m.end()
        close = text.find(_CLOSE, start)
        if close < 0:
            blocks.append(text[start:])
            return blocks
        blocks.append(text[start:close])
        pos = close + len(_CLOSE)


def extract_code(completion: str | None) -> Extraction:
    """Extract and syntax-check the code of a completion. Never raises (a non-str counts as no block)."""
    if not isinstance(completion, str):
        return Extraction("", 0, False, "no code block")
    blocks = code_blocks(completion.replace("\r\n", "\n"))
    if not blocks:
        return Extraction("", 0, False, "no code block")
    code = "\n\n".join(b.strip("\n") for b in blocks).strip("\n")
    if not code.strip():
        return Extraction(code, len(blocks), False, "empty code block")
    if "\x00" in code:
        # CPython refuses source with NUL bytes ("source code string cannot contain null bytes").
        return Extraction(code, len(blocks), False, "syntax error (null byte in code)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences etc. warn but still parse
            tree = ast.parse(code)
    except SyntaxError as e:
        msg = (e.msg or "invalid syntax").split("\n")[0][:80]
        return Extraction(code, len(blocks), False, f"syntax error (line {e.lineno}: {msg})")
    except (ValueError, RecursionError, MemoryError) as e:  # NUL bytes on old versions, absurd nesting
        return Extraction(code, len(blocks), False, f"syntax error ({type(e).__name__})")
    return Extraction(code, len(blocks), True, "ok", tree)
