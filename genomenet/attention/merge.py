"""The dilated-attention autograd function: branches attended one at a time and merged online.

Forward keeps one output and one log-sum-exp for the whole sequence and folds each branch into them at the rows the
branch keeps (LongNet eq. 10), so no full-size tensor exists per branch. Backward runs each branch's fused backward
with the *merged* output and log-sum-exp: the softmax over the union of a query's keys then factorises over branches,
and the per-branch gradients sum to the exact gradient, merge weights included.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from genomenet.attention import sparsify
from genomenet.attention.backends import AttentionBackend, compute_dtype
from genomenet.attention.sparsify import Branch, PreviousBlock


def merge_into(out: Tensor, lse: Tensor, block_out: Tensor, block_lse: Tensor, branch: Branch) -> None:
    """Fold one branch's ``(out, lse)`` blocks into the padded running ``out`` / ``lse`` in place."""
    pairs = zip(sparsify.paired_views(out, block_out, branch), sparsify.paired_views(lse, block_lse, branch))
    for (acc_out, new_out), (acc_lse, new_lse) in pairs:
        merge_pair(acc_out, acc_lse, new_out, new_lse)


def merge_pair(acc_out: Tensor, acc_lse: Tensor, new_out: Tensor, new_lse: Tensor) -> None:
    """``acc <- softmax-denominator-weighted mean of acc and new`` in place (LongNet eq. 10, two at a time)."""
    merged = torch.logaddexp(acc_lse, new_lse)
    weight = torch.exp(new_lse - merged.clamp_min(-1e30))   # 0 where neither has a key
    acc_out.lerp_(new_out.to(acc_out.dtype), weight.unsqueeze(-1).to(acc_out.dtype))
    acc_lse.copy_(merged)


def add_into(grad: Tensor, block_grad: Tensor, branch: Branch) -> None:
    """Add a branch's gradient blocks to the padded gradient of the whole sequence in place."""
    for acc, new in sparsify.paired_views(grad, block_grad, branch):
        acc.add_(new)


def _branch_mask(branch: Branch, batch: int, causal: bool, key_padding_mask: Tensor | None, device, dtype):
    """The additive key mask a branch needs (None if none) and the rows that see no key at all (None if none)."""
    needs_validity = key_padding_mask is not None or (branch.ragged and not causal)
    if not needs_validity:
        return None, None
    valid = sparsify.valid_keys(branch, batch, key_padding_mask, device)
    empty_rows = None if key_padding_mask is None else ~sparsify.rows_with_keys(valid, causal)
    return sparsify.key_mask(valid, dtype), empty_rows


def branch_forward(q, k, v, branch: Branch, causal: bool, key_padding_mask, backend: AttentionBackend,
                   workspace: sparsify.Workspace | None = None):
    """One branch: gather its rows into blocks, attend, return ``(out, lse)`` blocks."""
    mask, empty_rows = _branch_mask(branch, q.shape[0], causal, key_padding_mask, q.device, q.dtype)
    q_b, k_b, v_b = (sparsify.gather(sparsify.pad(x, branch), branch, workspace, name)
                     for x, name in ((q, "q"), (k, "k"), (v, "v")))
    out_b, lse_b = backend.forward(q_b, k_b, v_b, causal, mask)   # (b*s, h, kept, d), (b*s, h, kept)
    if empty_rows is not None:
        lse_b = lse_b.masked_fill(empty_rows, -math.inf)
        out_b = out_b.masked_fill(empty_rows.unsqueeze(-1), 0.0)
    return out_b, lse_b


def dilated_forward(q, k, v, branches: list[Branch], causal: bool, key_padding_mask, backend, running: bool = False):
    """Merged ``out (b, n, h, d)`` in q's dtype and ``lse (b, n, h)`` in ``compute_dtype``; rows no branch keeps:
    0 and -inf.

    The running output and log-sum-exp stay in ``compute_dtype`` (float32 for half inputs) while the branches are
    folded in; only the final output is rounded to q's dtype (no copy at all when q is float32 or float64), unless
    ``running``: then the output stays the float32 accumulator, for the caller to fold more branches into.
    """
    out = lse = None
    workspace = sparsify.Workspace()
    for branch in branches:
        if isinstance(branch, PreviousBlock):
            out, lse = (out, lse) if out is not None else _empty_result(q)
            out, lse = previous_forward_into(out, lse, q, k, v, branch, key_padding_mask, backend)
            continue
        out_b, lse_b = branch_forward(q, k, v, branch, causal, key_padding_mask, backend, workspace)
        if out is None and branch.dilation == 1 and not branch.ragged:
            b, n, h, d = q.shape    # the first plain branch *is* the running result: no merge
            out = _running(out_b.transpose(1, 2).reshape(b, n, h, d), q.dtype)  # a view unless the kernel chose bhld
            lse = _running(lse_b.transpose(1, 2).reshape(b, n, h), q.dtype)
            continue
        if out is None:
            out, lse = _empty_result(q)
        out_p, lse_p = sparsify.pad(out, branch), sparsify.pad(lse, branch, value=-math.inf)
        merge_into(out_p, lse_p, out_b, lse_b, branch)
        if branch.ragged:
            out, lse = sparsify.unpad(out_p, branch), sparsify.unpad(lse_p, branch)
    out, lse = (out, lse) if out is not None else _empty_result(q)
    return (out if running else out.to(q.dtype)), lse   # running: more branches follow (sequence parallelism)


def _running(x: Tensor, dtype: torch.dtype) -> Tensor:
    """``x`` as a contiguous ``compute_dtype(dtype)`` accumulator: ``x`` itself when it already is one."""
    # .to returns x as it is when the dtype matches (whatever its strides), hence .contiguous()
    return x.to(compute_dtype(dtype), memory_format=torch.contiguous_format).contiguous()


def _empty_result(q: Tensor) -> tuple[Tensor, Tensor]:
    """What no branch has reached yet: output 0, log-sum-exp -inf (both in ``compute_dtype``)."""
    lse = torch.full(q.shape[:3], -math.inf, dtype=compute_dtype(q.dtype), device=q.device)
    return torch.zeros_like(q, dtype=lse.dtype), lse


def dilated_backward(grad_out, q, k, v, out, lse, branches, causal, key_padding_mask, backend):
    """Exact ``dq, dk, dv``: each branch's fused backward run with the merged ``out`` and ``lse``.

    ``out`` is the output as returned (q's dtype, what the fused kernels take); the per-branch gradients are summed in
    ``compute_dtype`` and rounded to q's dtype once at the end.
    """
    grads = None
    acc_dtype = compute_dtype(q.dtype)
    # rows without any key have lse = -inf; +inf makes their probabilities 0 instead of inf * 0
    lse = lse.masked_fill(lse == -math.inf, math.inf)
    workspace = sparsify.Workspace()
    for branch in branches:
        if isinstance(branch, PreviousBlock):
            grads = grads or [torch.zeros_like(x, dtype=acc_dtype) for x in (q, k, v)]
            previous_backward_into(grads, grad_out, q, k, v, out, lse, branch, key_padding_mask, backend)
            continue
        mask, _ = _branch_mask(branch, q.shape[0], causal, key_padding_mask, q.device, q.dtype)
        blocks = [_backward_blocks(x, name, branch, workspace)
                  for x, name in zip((grad_out, q, k, v, out, lse), ("grad_out", "q", "k", "v", "out", "lse"))]
        block_grads = backend.backward(*blocks, causal, mask)
        if grads is None and branch.dilation == 1 and not branch.ragged:
            grads = [_running(g.transpose(1, 2).reshape(q.shape), q.dtype) for g in block_grads]
            continue
        if not branch.ragged:
            grads = grads or [torch.zeros_like(x, dtype=acc_dtype) for x in (q, k, v)]
            for acc, block_grad in zip(grads, block_grads):
                add_into(acc, block_grad, branch)
            continue
        padded = [q.new_zeros((q.shape[0], branch.padded_len, *q.shape[2:]), dtype=acc_dtype) for _ in range(3)]
        for acc, block_grad in zip(padded, block_grads):
            add_into(acc, block_grad, branch)
        unpadded = [sparsify.unpad(p, branch) for p in padded]
        grads = unpadded if grads is None else [g.add_(u) for g, u in zip(grads, unpadded)]
    if grads is None:
        return tuple(torch.zeros_like(x) for x in (q, k, v))
    return tuple(g.to(x.dtype) for g, x in zip(grads, (q, k, v)))


def _backward_blocks(x: Tensor, name: str, branch: Branch, workspace: sparsify.Workspace) -> Tensor:
    """q, k, v gathered heads-major; grad_out, out, lse rows-major (a mere view for a plain branch)."""
    if name in ("q", "k", "v"):
        return sparsify.gather(sparsify.pad(x, branch), branch, workspace, name)
    if branch.dilation == 1 and not branch.ragged:
        return sparsify.plain_blocks(x, branch)
    return sparsify.gather(sparsify.pad(x, branch), branch, workspace, name, heads_first=False)


def _previous_mask(branch: PreviousBlock, key_padding_mask: Tensor | None, dtype):
    """The additive key mask of the previous-block call and its rows without keys (None, None without padding)."""
    if key_padding_mask is None:
        return None, None
    valid = sparsify.previous_valid_keys(branch, key_padding_mask)          # (b * (B-1), 1, w), reversed
    return sparsify.key_mask(valid, dtype), ~sparsify.rows_with_keys(valid, causal=True)


def previous_forward_into(out, lse, q, k, v, branch: PreviousBlock, key_padding_mask, backend):
    """Fold the previous-block half of a sliding window into the running ``out`` / ``lse``; returns them."""
    if branch.num_segments < 2:
        return out, lse
    q_b = sparsify.gather_previous(sparsify.pad(q, branch), branch, "queries")
    k_b, v_b = (sparsify.gather_previous(sparsify.pad(x, branch), branch, "keys") for x in (k, v))
    mask, empty_rows = _previous_mask(branch, key_padding_mask, q.dtype)
    out_b, lse_b = backend.forward(q_b, k_b, v_b, True, mask)    # reversed rows: "key offset >= query's" is causal
    if empty_rows is not None:
        lse_b = lse_b.masked_fill(empty_rows, -math.inf)
        out_b = out_b.masked_fill(empty_rows.unsqueeze(-1), 0.0)
    out_p, lse_p = sparsify.pad(out, branch), sparsify.pad(lse, branch, value=-math.inf)
    batch = q.shape[0]
    merge_pair(sparsify.previous_rows(out_p, branch, "queries"), sparsify.previous_rows(lse_p, branch, "queries"),
               sparsify.scatter_previous(out_b, branch, batch), sparsify.scatter_previous(lse_b, branch, batch))
    if branch.ragged:
        return sparsify.unpad(out_p, branch), sparsify.unpad(lse_p, branch)
    return out_p, lse_p


def previous_backward_into(grads, grad_out, q, k, v, out, lse, branch: PreviousBlock, key_padding_mask, backend):
    """Add the previous-block call's ``dq, dk, dv`` (with the merged ``out`` and ``lse``) into ``grads`` in place."""
    if branch.num_segments < 2:
        return

    def rows(x, side, heads_first=True, value=0.0):
        return sparsify.gather_previous(sparsify.pad(x, branch, value), branch, side, heads_first)

    q_b, k_b, v_b = rows(q, "queries"), rows(k, "keys"), rows(v, "keys")
    # padded query rows get lse = +inf: their probabilities are 0, never inf * 0
    g_b, o_b, l_b = (rows(x, "queries", False, value) for x, value in ((grad_out, 0.0), (out, 0.0), (lse, math.inf)))
    mask, _ = _previous_mask(branch, key_padding_mask, q.dtype)
    dq_b, dk_b, dv_b = backend.backward(g_b, q_b, k_b, v_b, o_b, l_b, True, mask)
    batch = q.shape[0]
    padded = grads
    if branch.ragged:
        padded = [g.new_zeros((g.shape[0], branch.padded_len, *g.shape[2:])) for g in grads]
    for acc, block_grad, side in zip(padded, (dq_b, dk_b, dv_b), ("queries", "keys", "keys")):
        sparsify.previous_rows(acc, branch, side).add_(sparsify.scatter_previous(block_grad, branch, batch))
    if branch.ragged:
        for g, p in zip(grads, padded):
            g.add_(sparsify.unpad(p, branch))


class DilatedAttentionFunction(torch.autograd.Function):
    """Autograd wrapper: saves the merged output and log-sum-exp, recomputes branch gathers in backward."""

    @staticmethod
    def forward(ctx, q, k, v, branches, causal, key_padding_mask, backend):
        out, lse = dilated_forward(q, k, v, branches, causal, key_padding_mask, backend)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.branches, ctx.causal, ctx.key_padding_mask, ctx.backend = branches, causal, key_padding_mask, backend
        return out

    @staticmethod
    @once_differentiable   # the backward uses out and lse as constants: a second derivative would be wrong
    def backward(ctx, grad_out):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = dilated_backward(grad_out, q, k, v, out, lse, ctx.branches, ctx.causal,
                                      ctx.key_padding_mask, ctx.backend)
        return dq, dk, dv, None, None, None, None
