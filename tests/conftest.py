"""Shared fixtures and the `slow` marker.

`slow` tests (e.g. converting the embedded 135M GGUF model, ~40 s on 2 cores) are skipped unless pytest
gets `--runslow` or the environment has `GQ_RUN_SLOW=1`:

    .venv/bin/python -m pytest tests -q                 # fast suite
    .venv/bin/python -m pytest tests -q --runslow       # everything
"""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: takes > 20 s (big model / end-to-end); needs --runslow or GQ_RUN_SLOW=1"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow") or os.environ.get("GQ_RUN_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: pass --runslow or set GQ_RUN_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one thread for a module (`pytestmark = pytest.mark.usefixtures("one_torch_thread")`): the tiny
    model's ops are too small to gain from threads, and on 2 shared cores 2 threads are about 10x slower."""
    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


@pytest.fixture
def tiny_model_and_tokenizer():
    """A fresh random-init tiny Qwen3-style model (seed 0, float32, eval mode) and its offline tokenizer.

    Function-scoped: tests attach adapters and change weights, so each gets its own copy (~0.1 s).
    """
    from gradient_quarantine.model.loading import load_policy

    return load_policy("tiny")
