"""The one-time self-check that guards GPU kernels: it covers uneven kept lengths and head sizes 32, 64 and 128,
passes a correct kernel and rejects a wrong one."""

from __future__ import annotations

import pytest
import torch

from genomenet.attention import backends
from genomenet.attention.backends import (
    SELF_CHECK_SHAPES,
    Chunked,
    TorchCPUFlash,
    _compare_with_chunked,
    bias_fits,
    kernel_bias,
    kernel_lse,
    kernel_out,
)


def test_the_self_check_covers_uneven_lengths_and_head_sizes_32_64_128() -> None:
    assert {d for _, d in SELF_CHECK_SHAPES} >= {32, 64, 128}
    assert any(rows % 8 for rows, _ in SELF_CHECK_SHAPES)


def test_a_correct_kernel_passes_the_self_check_in_float32_and_bfloat16_with_and_without_a_mask() -> None:
    for dtype in (torch.float32, torch.bfloat16):
        for has_mask in (False, True):
            assert _compare_with_chunked(TorchCPUFlash(), torch.device("cpu"), dtype, has_mask)


class WrongOnWideHeads(Chunked):
    """Right for head size 64, wrong (scale off) for 128: what a kernel built for fewer head sizes might do."""

    def forward(self, q, k, v, causal, mask):
        out, lse = super().forward(q, k, v, causal, mask)
        return (out * 1.01, lse) if q.shape[-1] == 128 else (out, lse)


class WrongOnRaggedRows(Chunked):
    """Right when the kept length is a multiple of 8, wrong gradients otherwise."""

    def backward(self, grad_out, q, k, v, out, lse, causal, mask):
        dq, dk, dv = super().backward(grad_out, q, k, v, out, lse, causal, mask)
        return (dq * 1.01, dk, dv) if q.shape[-2] % 8 else (dq, dk, dv)


def test_a_kernel_wrong_only_for_some_shapes_fails_the_self_check() -> None:
    assert not _compare_with_chunked(WrongOnWideHeads(), torch.device("cpu"), torch.float32, False)
    assert not _compare_with_chunked(WrongOnRaggedRows(), torch.device("cpu"), torch.float32, False)


def test_flash_attn_is_used_only_from_the_version_whose_interface_is_called(monkeypatch) -> None:
    monkeypatch.setattr(backends, "flash_attn_version", lambda: (2, 5, 9))
    assert not backends.FlashAttn().supports(torch.device("cuda"), torch.bfloat16, False)
    monkeypatch.setattr(backends, "flash_attn_version", lambda: backends.FLASH_ATTN_MIN_VERSION)
    assert backends.FlashAttn().supports(torch.device("cuda"), torch.bfloat16, False)
    assert not backends.FlashAttn().supports(torch.device("cuda"), torch.bfloat16, True)   # no masks


@pytest.mark.parametrize("rows", [1, 33, 77, 80, 1024])
def test_the_efficient_backward_gets_its_lse_padded_to_the_kernels_row_layout(rows: int) -> None:
    """The CUDA memory-efficient backward rejects a head stride that is not a multiple of 8 (uneven row counts);
    its forward pads rows to a multiple of 32, and the backward gets the same layout with the values unchanged."""
    lse = torch.randn(2, 3, rows)
    padded = kernel_lse(lse[..., :rows])
    assert padded.shape[-1] % 32 == 0 and padded.shape[-1] - rows < 32
    assert padded.stride(1) % 8 == 0 and padded.is_contiguous()
    torch.testing.assert_close(padded[..., :rows], lse)


@pytest.mark.parametrize("keys", [33, 77, 80])
def test_the_efficient_kernel_gets_its_mask_materialised_in_rows_aligned_to_16_keys(keys: int) -> None:
    """The CUDA memory-efficient kernel rejects a broadcast query dimension ("wrong shape (seqlenQ dimension)") and
    a bias row stride that is not a multiple of 8 ("not correctly aligned"): both seen on an H200, torch 2.11."""
    q, k = torch.randn(2, 3, 50, 16), torch.randn(2, 3, keys, 16)
    mask = torch.zeros(2, 3, 1, keys)
    mask[..., keys - keys // 8:] = -torch.inf
    bias = kernel_bias(mask, q, k)
    assert bias.shape == (2, 3, 50, keys) and bias.stride(-2) % 16 == 0 and bias.stride(-1) == 1
    assert torch.equal(bias, mask.expand(2, 3, 50, keys))
    assert kernel_bias(None, q, k) is None


def test_the_efficient_backward_gets_the_output_in_its_forwards_memory_layout() -> None:
    """In bfloat16 the kernel's backward misreads a contiguous (batch, heads, rows, dim) output (garbage dq and dk on
    an H200); it gets the (batch, rows, heads, dim) memory its forward writes, values unchanged."""
    out = torch.randn(2, 3, 77, 32)
    laid_out = kernel_out(out)
    assert laid_out.shape == out.shape and laid_out.transpose(1, 2).is_contiguous()
    assert torch.equal(laid_out, out)


def test_a_mask_too_large_to_materialise_sends_the_call_to_the_chunked_backend() -> None:
    """kernel_bias is quadratic in the segment: past MAX_KERNEL_BIAS_BYTES the efficient backend runs Chunked."""
    small, big = torch.empty(1, 8, 256, 64), torch.empty(4, 8, 8192, 64, device="meta")
    mask_small, mask_big = torch.zeros(1, 8, 1, 256), torch.zeros(4, 8, 1, 8192, device="meta")
    assert bias_fits(None, big, big) and bias_fits(mask_small, small, small)
    assert not bias_fits(mask_big, big, big)
