"""Devices the device-parametrised tests run on: the CPU always, CUDA when a device is visible (skipped, and
shown as skipped, where none is: CI has no GPU, so the CUDA cases run when the suite is run on a GPU node).

    @pytest.mark.parametrize("device", DEVICES)
    def test_x(device): ...

Tolerances. float32 on either device: the capture and the per-sample reference do the same float32 arithmetic
in a different order (batch vs one row, other GEMM tilings), so they agree to ~1e-6 relative; the tests allow
1e-4. TF32 is off for float32 matmuls (PyTorch's default, `torch.backends.cuda.matmul.allow_tf32 = False`), which
is what keeps CUDA's float32 at float32 precision. bfloat16: see BF16_RTOL.
"""

from __future__ import annotations

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device visible"))]

# bfloat16 keeps 8 significant bits: one rounding is off by up to u = 2^-8 ~ 0.4 % of the value. Two bf16
# computations of the same gradient (batched vs one row, capture vs autograd) round at different points: the
# bf16 outputs of GEMMs with different shapes or reduction orders, autograd's d(delta) which is a bf16 tensor
# (the backward of `delta.to(bf16)` rounds its sum over positions before casting back to float32), and the
# gradient g itself, rounded at every op of the backward through the layers above. A handful of such roundings
# compound to a few u relative to the largest entry, so bf16 comparisons allow 2 % of max |value| (~5 u)
# absolute and 2 % relative. Anything wrong in the capture (a missed row, a wrong axis, a padding position that
# leaks) is an O(1) error, far above this.
BF16_RTOL = 0.02
