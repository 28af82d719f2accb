"""Attention kernels that return the log-sum-exp, behind one interface.

Dilated attention merges its branches by their softmax denominators, so every kernel here returns ``(out, lse)``
and takes the *merged* ``out`` and ``lse`` in its backward (the identity ring attention uses): with those, each
branch's backward gives exact gradients although the kernels' own log-sum-exp carries none.

Layout everywhere in this file: ``q, k, v, out, grad_out`` are ``(batch, heads, len, head_dim)``, ``lse`` is
``(batch, heads, len)`` in float32 (float64 for float64 inputs), ``mask`` is an additive float mask broadcastable to
``(batch, heads, len_q, len_k)`` or None. Queries and keys of a call are the same set, so ``causal`` is top-left.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

ENV_OVERRIDE = "GENOMENET_ATTENTION_BACKEND"


class AttentionBackend(Protocol):
    name: str

    def supports(self, device: torch.device, dtype: torch.dtype, has_mask: bool) -> bool: ...

    def forward(self, q: Tensor, k: Tensor, v: Tensor, causal: bool, mask: Tensor | None) -> tuple[Tensor, Tensor]: ...

    def backward(
        self, grad_out: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, causal: bool,
        mask: Tensor | None,
    ) -> tuple[Tensor, Tensor, Tensor]: ...


class TorchCPUFlash:
    """PyTorch's fused flash-attention kernel for CPU (float32/64, bfloat16, float16; additive masks)."""

    name = "torch-cpu-flash"

    def supports(self, device: torch.device, dtype: torch.dtype, has_mask: bool) -> bool:
        return device.type == "cpu"

    def forward(self, q, k, v, causal, mask):
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            q, k, v, 0.0, causal, attn_mask=_as_dtype(mask, q.dtype)
        )
        return out, lse

    def backward(self, grad_out, q, k, v, out, lse, causal, mask):
        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
            grad_out, q, k, v, out, lse, 0.0, causal, attn_mask=_as_dtype(mask, q.dtype)
        )


class TorchCUDAEfficient:
    """PyTorch's fused memory-efficient kernel on CUDA (float32, bfloat16, float16; additive masks)."""

    name = "torch-cuda-efficient"

    def supports(self, device: torch.device, dtype: torch.dtype, has_mask: bool) -> bool:
        return device.type == "cuda" and dtype in (torch.float32, torch.float16, torch.bfloat16)

    def forward(self, q, k, v, causal, mask):
        if not bias_fits(mask, q, k):
            return Chunked().forward(q, k, v, causal, mask)
        out, lse, _, _ = torch.ops.aten._scaled_dot_product_efficient_attention(
            q, k, v, kernel_bias(mask, q, k), True, 0.0, causal
        )
        return out, lse[..., : q.shape[-2]]

    def backward(self, grad_out, q, k, v, out, lse, causal, mask):
        if not bias_fits(mask, q, k):
            return Chunked().backward(grad_out, q, k, v, out, lse, causal, mask)
        philox = torch.zeros(2, dtype=torch.int64, device=q.device)
        dq, dk, dv, _ = torch.ops.aten._scaled_dot_product_efficient_attention_backward(
            grad_out, q, k, v, kernel_bias(mask, q, k), kernel_out(out), kernel_lse(lse), philox, philox, 0.0,
            [True, True, True, False], causal
        )
        return dq, dk, dv


MAX_KERNEL_BIAS_BYTES = 256 * 2**20
"""The largest materialised mask (`kernel_bias`) the memory-efficient kernel is given; a masked call whose mask would
be larger runs on `Chunked` instead (a mask is (batch, heads, queries, keys): quadratic in the segment)."""


def bias_fits(mask: Tensor | None, q: Tensor, k: Tensor) -> bool:
    """Whether a call can use the memory-efficient kernel: no mask, or one whose materialised form is small."""
    if mask is None:
        return True
    return q.shape[:-1].numel() * (k.shape[-2] + 16) * q.element_size() <= MAX_KERNEL_BIAS_BYTES


def kernel_bias(mask: Tensor | None, q: Tensor, k: Tensor) -> Tensor | None:
    """The additive mask as the memory-efficient kernel reads it: materialised to (batch, heads, queries, keys) (it
    rejects a broadcast query dimension, "attn_bias: wrong shape (seqlenQ dimension)") in rows padded to a multiple of
    16 keys (it rejects a row stride that is not a multiple of 8, "attn_bias is not correctly aligned")."""
    if mask is None:
        return None
    keys = k.shape[-2]
    bias = torch.empty(*q.shape[:-1], keys + (-keys % 16), device=q.device, dtype=q.dtype)[..., :keys]
    return bias.copy_(mask.expand(*q.shape[:-1], keys))


def kernel_out(out: Tensor) -> Tensor:
    """The output in the memory layout the kernel's forward writes, (batch, queries, heads, dim) under a
    (batch, heads, queries, dim) view: in bfloat16 the backward reads a contiguous (batch, heads, ...) output wrongly
    (garbage dq and dk; seen on an H200 with torch 2.11)."""
    return out.transpose(1, 2).contiguous().transpose(1, 2)


def kernel_lse(lse: Tensor) -> Tensor:
    """The log-sum-exp in the layout the memory-efficient backward reads: rows padded to a multiple of 32, as its
    forward returns them (the kernel rejects a head stride that is not a multiple of 8, "LSE is not correctly aligned
    (strideH)", as a row count such as 77 gives). The padding rows are never read."""
    rows = lse.shape[-1]
    return torch.nn.functional.pad(lse, (0, -rows % 32)).contiguous()


class FlashAttn:
    """The flash-attn package on CUDA (bfloat16, float16; no masks): the fastest source when installed."""

    name = "flash-attn"

    def supports(self, device: torch.device, dtype: torch.dtype, has_mask: bool) -> bool:
        if device.type != "cuda" or dtype not in (torch.float16, torch.bfloat16) or has_mask:
            return False
        return flash_attn_version() >= FLASH_ATTN_MIN_VERSION


FLASH_ATTN_MIN_VERSION = (2, 6, 3)
"""The first flash-attn release whose private `_flash_attn_forward` / `_flash_attn_backward` take separate left and
right window sizes and a softcap, the signature called below (pyproject's `gpu` extra asks for it)."""


def flash_attn_version() -> tuple[int, ...]:
    """The installed flash-attn's version as a tuple; (0,) when it is not installed."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        text = version("flash-attn")
    except (ImportError, PackageNotFoundError):
        return (0,)
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])

    def forward(self, q, k, v, causal, mask):
        from flash_attn.flash_attn_interface import _flash_attn_forward

        scale = q.shape[-1] ** -0.5
        qt, kt, vt = (x.transpose(1, 2) for x in (q, k, v))  # flash-attn wants (b, len, h, d)
        result = _flash_attn_forward(qt, kt, vt, 0.0, scale, causal=causal, window_size_left=-1,
                                     window_size_right=-1, softcap=0.0, alibi_slopes=None, return_softmax=False)
        return result[0].transpose(1, 2), result[1]

    def backward(self, grad_out, q, k, v, out, lse, causal, mask):
        from flash_attn.flash_attn_interface import _flash_attn_backward

        scale = q.shape[-1] ** -0.5
        qt, kt, vt, ot, gt = (x.transpose(1, 2) for x in (q, k, v, out, grad_out))
        dq, dk, dv = torch.empty_like(qt), torch.empty_like(kt), torch.empty_like(vt)
        _flash_attn_backward(gt.contiguous(), qt, kt, vt, ot, lse.contiguous(), dq, dk, dv, 0.0, scale, causal,
                             -1, -1, 0.0, None, False)
        return dq.transpose(1, 2), dk.transpose(1, 2), dv.transpose(1, 2)


@dataclass
class Chunked:
    """Pure PyTorch, any device and dtype: scores for ``chunk`` queries at a time, never a full score matrix."""

    chunk: int = 1024
    name: str = "chunked"

    def supports(self, device: torch.device, dtype: torch.dtype, has_mask: bool) -> bool:
        return True

    def _scores(self, q: Tensor, k: Tensor, start: int, causal: bool, mask: Tensor | None) -> Tensor:
        stop = min(start + self.chunk, q.shape[-2])
        dtype = compute_dtype(q.dtype)
        scores = (q[..., start:stop, :].to(dtype) @ k.to(dtype).transpose(-1, -2)) * (q.shape[-1] ** -0.5)
        if mask is not None:
            scores = scores + (mask if mask.shape[-2] == 1 else mask[..., start:stop, :]).to(dtype)
        if causal:
            rows = torch.arange(start, stop, device=q.device).unsqueeze(-1)
            scores = scores.masked_fill(torch.arange(k.shape[-2], device=q.device) > rows, -math.inf)
        return scores  # (b, h, stop - start, len_k)

    def forward(self, q, k, v, causal, mask):
        outs, lses = [], []
        for start in range(0, q.shape[-2], self.chunk):
            scores = self._scores(q, k, start, causal, mask)      # (b, h, chunk, len_k)
            lse = torch.logsumexp(scores, dim=-1)
            probs = torch.exp(scores - lse.clamp_min(-1e30).unsqueeze(-1))
            outs.append((probs @ v.to(probs.dtype)).to(v.dtype))
            lses.append(lse)
        return torch.cat(outs, dim=-2), torch.cat(lses, dim=-1)

    def backward(self, grad_out, q, k, v, out, lse, causal, mask):
        dq = torch.empty_like(q)
        dk = torch.zeros_like(k, dtype=compute_dtype(q.dtype))
        dv = torch.zeros_like(dk)
        scale = q.shape[-1] ** -0.5
        for start in range(0, q.shape[-2], self.chunk):
            stop = min(start + self.chunk, q.shape[-2])
            scores = self._scores(q, k, start, causal, mask)
            probs = torch.exp(scores - lse[..., start:stop].unsqueeze(-1).to(scores.dtype))
            g = grad_out[..., start:stop, :].to(probs.dtype)
            dv += probs.transpose(-1, -2) @ g
            delta = (g * out[..., start:stop, :].to(probs.dtype)).sum(-1, keepdim=True)
            dscores = probs * (g @ v.to(probs.dtype).transpose(-1, -2) - delta) * scale
            dq[..., start:stop, :] = (dscores @ k.to(probs.dtype)).to(q.dtype)
            dk += dscores.transpose(-1, -2) @ q[..., start:stop, :].to(probs.dtype)
        return dq, dk.to(k.dtype), dv.to(v.dtype)


_BACKENDS: dict[str, AttentionBackend] = {
    b.name: b for b in (FlashAttn(), TorchCUDAEfficient(), TorchCPUFlash(), Chunked())
}
_last_used: list[str] = []


def available_backends() -> list[str]:
    """Names of all backends, best first (whether each can run depends on device, dtype and mask)."""
    return list(_BACKENDS)


def select_backend(device: torch.device, dtype: torch.dtype, has_mask: bool, name: str | None = None):
    """The named backend (argument, else ``$GENOMENET_ATTENTION_BACKEND``), else the best one that supports the call."""
    name = name or os.environ.get(ENV_OVERRIDE) or None
    if name is not None:
        if name not in _BACKENDS:
            raise ValueError(f"unknown attention backend {name!r}; choose one of {available_backends()}")
        backend = _BACKENDS[name]
        if not backend.supports(device, dtype, has_mask):
            raise ValueError(f"attention backend {name!r} cannot run on {device.type} with {dtype}"
                             + (" and a mask" if has_mask else ""))
    else:
        backend = next(b for b in _BACKENDS.values()
                       if b.supports(device, dtype, has_mask) and agrees_with_reference(b, device, dtype, has_mask))
    _last_used[:] = [backend.name]
    return backend


_checked: dict[tuple[str, str, torch.dtype, bool], bool] = {}
_UNCHECKED = ("torch-cpu-flash", "chunked")   # tested in the suite on every CI run


def agrees_with_reference(backend, device: torch.device, dtype: torch.dtype, has_mask: bool) -> bool:
    """Once per (backend, device type, dtype, mask): do its forward and merged-lse backward match ``Chunked``?

    Private kernel entry points change between releases; a GPU backend that disagrees (or fails) is skipped with a
    warning instead of training on wrong gradients.
    """
    key = (backend.name, device.type, dtype, has_mask)
    if backend.name in _UNCHECKED:
        return True
    if key not in _checked:
        try:
            _checked[key] = _compare_with_chunked(backend, device, dtype, has_mask)
        except Exception as err:  # noqa: BLE001 - any failure means: do not use this kernel
            warnings.warn(f"attention backend {backend.name} failed its self-check ({err}); not used", stacklevel=3)
            _checked[key] = False
        else:
            if not _checked[key]:
                warnings.warn(f"attention backend {backend.name} disagrees with the reference on {device.type} "
                              f"{dtype}; not used", stacklevel=3)
    return _checked[key]


SELF_CHECK_SHAPES = ((80, 64), (77, 32), (77, 128), (33, 64))
"""(kept rows, head size) the self-check runs: even and uneven kept lengths (ragged blocks), head sizes 32, 64, 128."""


def _compare_with_chunked(backend, device: torch.device, dtype: torch.dtype, has_mask: bool) -> bool:
    gen = torch.Generator(device="cpu").manual_seed(0)
    tol = 1e-4 if dtype in (torch.float32, torch.float64) else 3e-2
    for rows, head_dim in SELF_CHECK_SHAPES:
        q, k, v, grad = (torch.randn(2, 3, rows, head_dim, generator=gen).to(device, dtype) for _ in range(4))
        mask = None
        if has_mask:
            mask = torch.zeros(2, 3, 1, rows, device=device, dtype=dtype)
            mask[..., rows - rows // 8:] = -math.inf
        for causal in (False, True):
            out, lse = backend.forward(q, k, v, causal, mask)
            ref_out, ref_lse = Chunked().forward(q, k, v, causal, mask)
            grads = backend.backward(grad, q, k, v, ref_out, ref_lse, causal, mask)
            ref_grads = Chunked().backward(grad, q, k, v, ref_out, ref_lse, causal, mask)
            pairs = [(out, ref_out), (lse, ref_lse), *zip(grads, ref_grads)]
            if any(not torch.allclose(a.float(), b.float(), rtol=tol, atol=tol * 4) for a, b in pairs):
                return False
    return True


def last_backend() -> str | None:
    """Which backend the most recent dilated-attention call ran (None before the first)."""
    return _last_used[0] if _last_used else None


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Where scores and log-sum-exps live: float64 for float64 inputs, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _as_dtype(mask: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    return None if mask is None else mask.to(dtype)
