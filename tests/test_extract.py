"""Code extraction: fenced ```python blocks, joined; unterminated last block; format_ok = parses."""

from __future__ import annotations

from gradient_quarantine.substrate.extract import code_blocks, extract_code


def test_single_block_with_prose():
    ex = extract_code("Sure.\n```python\nclass Solution:\n    pass\n```\nThat is all.")
    assert ex.format_ok and ex.n_blocks == 1 and ex.reason == "ok"
    assert ex.code == "class Solution:\n    pass"


def test_all_python_blocks_are_joined_in_order():
    text = "```python\nimport math\n```\nthen\n```Python\nx = math.pi\n```\n```py\ny = 1\n```"
    ex = extract_code(text)
    assert ex.n_blocks == 3 and ex.format_ok
    assert ex.code == "import math\n\nx = math.pi\n\ny = 1"


def test_non_python_blocks_are_ignored():
    ex = extract_code("```bash\nrm -rf /\n```\n```\nplain\n```\n```python\nx = 1\n```")
    assert ex.code == "x = 1" and ex.n_blocks == 1


def test_unterminated_last_block_is_accepted():
    ex = extract_code("```python\ndef f():\n    return 1\n```\n```python\ndef g():\n    return 2\n")
    assert ex.n_blocks == 2 and ex.format_ok
    assert ex.code.endswith("def g():\n    return 2")


def test_unterminated_block_cut_mid_statement_is_not_format_ok():
    ex = extract_code("```python\ndef f(:\n")
    assert ex.n_blocks == 1 and not ex.format_ok and ex.reason.startswith("syntax error (line 1")


def test_no_block_and_empty_block():
    assert extract_code("just text").reason == "no code block"
    assert not extract_code("just text").format_ok
    assert extract_code("```python\n\n```").reason == "empty code block"
    assert extract_code(None).reason == "no code block"  # never raises on a non-string
    assert code_blocks("```python\n") == [""]


def test_nul_bytes_and_crlf():
    ex = extract_code("```python\nx = 1\x00\n```")
    assert not ex.format_ok and "null byte" in ex.reason
    ex = extract_code("```python\r\nx = 1\r\ny = 2\r\n```")
    assert ex.format_ok and ex.code == "x = 1\ny = 2"


def test_absurd_nesting_does_not_raise():
    ex = extract_code("```python\nx = " + "(" * 5000 + ")" * 5000 + "\n```")
    assert not ex.format_ok and ex.reason.startswith("syntax error")


def test_tree_is_the_parsed_code():
    ex = extract_code("```python\ndef run_tests():\n    pass\n```")
    assert ex.tree is not None and ex.tree.body[0].name == "run_tests"
