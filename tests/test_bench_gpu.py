"""bench/bench_gpu.py on the CPU with the tiny shape: the command the GPU node runs, end to end, so that it is
ready to run as is. Checks what the table is made of: every scheduled step ran in its variant (the router
only where routed), sampled completions were forced to full length, and the JSON and markdown agree."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_gpu.py"


def _bench():
    if "bench_gpu" in sys.modules:
        return sys.modules["bench_gpu"]
    spec = importlib.util.spec_from_file_location("bench_gpu", BENCH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_gpu"] = mod  # its dataclasses look their module up while being defined
    spec.loader.exec_module(mod)
    return mod


def test_bench_gpu_runs_on_cpu_with_the_tiny_shape(tmp_path):
    bench = _bench()
    out = tmp_path / "out"
    args = ["--device", "cpu", "--shapes", "tiny", "--prompts", "2", "--generations", "2", "--prompt-len", "16",
            "--completion-len", "4", "--micro-batch", "2", "--repeats", "1", "--threads", "1", "--out", str(out)]  # fmt: skip
    result = bench.main(args)
    saved = json.loads((out / "bench_gpu.json").read_text())
    assert [s["shape"] for s in saved["shapes"]] == ["tiny"]
    s = saved["shapes"][0]
    assert "error" not in s, s.get("error")
    plan = bench.schedule(1)
    assert s["complete"] and s["steps_run"] == len(plan)
    assert [(r["variant"], r["kind"], r["timed"]) for r in s["steps"]] == plan
    for r in s["steps"]:
        assert r["seconds"] > 0
        assert (r["route_ms"] > 0) == (r["variant"] != "vanilla")  # the router ran exactly in the routed steps
        if r["kind"] == "fresh":  # sampled: 4 rollouts, each forced to the full 4 new tokens
            assert r["policy_tokens"] == 2 * 2 * 4 and r["generate_s"] > 0
        else:
            assert r["generate_s"] is None
    for v in ("vanilla", "rollout", "token"):
        assert s["cached_s"][v] > 0
    for key in ("rollout_x_vanilla_cached", "token_x_vanilla_cached", "rollout_x_vanilla_step_est",
                "rollout_x_vanilla_step_measured", "rollout_overhead_ms_per_rollout", "sampling_tok_s"):  # fmt: skip
        assert isinstance(s[key], float), key
    assert s["modules"] == 14 and s["rank"] == 16 and s["knob_rank"] == 4
    assert result["meta"]["device"] == "cpu" and saved["meta"]["torch"]
    md = (out / "bench_gpu.md").read_text()
    assert "| tiny |" in md and f"{s['rollout_x_vanilla_step_est']:.3f}" in md


def test_lowrank_basis_has_the_adapter_contract():
    """The bench's randomised top-R SVD returns what svd_adapter._top_svd returns: orthonormal U and V, the top
    singular values, the same sign convention (largest |v| entry positive)."""
    import torch

    from gradient_quarantine.model.svd_adapter import _top_svd

    bench = _bench()
    g = torch.Generator().manual_seed(0)
    spectrum = 3 * 0.8 ** torch.arange(40.0)  # separated singular values, as a trained weight's top axes are
    W = torch.linalg.qr(torch.randn(96, 40, generator=g)).Q @ torch.diag(spectrum) @ torch.linalg.qr(
        torch.randn(40, 40, generator=g)).Q  # fmt: skip
    U, S, V = bench._lowrank_top_svd(W, 6)
    U0, S0, V0 = _top_svd(W, 6)
    assert U.shape == U0.shape and V.shape == V0.shape and S.shape == S0.shape
    torch.testing.assert_close(S, S0, rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(U.T @ U, torch.eye(6), atol=1e-4, rtol=0)
    torch.testing.assert_close(V, V0, atol=1e-3, rtol=1e-3)  # same axes, same signs
