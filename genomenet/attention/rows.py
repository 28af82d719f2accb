"""Causal dilated attention at some rows of a sequence: the cached-prefix path of inference.

A causal model's output at position i depends on positions <= i only. Two sequences that share a prefix (a reference
window, and the same window with a variant spliced in) therefore differ from the first changed position on: the
second needs its rows from there only, the positions before them taken from the first one's cached q, k, v. This is
``dilated_attention(..., causal=True)`` (docs/attention.md, "The contract") evaluated at those rows; the segment
pattern of a causal query never depends on the sequence's length, so the rows equal the whole sequence's rows.

Per branch, each segment a sequence's rows touch is one block: the head's kept positions from the segment's start to
the last row, attended with the fused kernel's plain causal mask (the rows are the block's last ones). No
query-by-key mask is built; the price is recomputing the block's earlier rows, at most ``w / r`` per head.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from genomenet.attention.backends import select_backend
from genomenet.attention.merge import merge_pair


def dilated_attention_rows(
    rows: tuple[Tensor, Tensor, Tensor],
    starts: Tensor,
    lengths: Tensor,
    past: tuple[Tensor, Tensor, Tensor],
    past_index: Tensor,
    segment_lengths: Sequence[int],
    dilation_rates: Sequence[int],
) -> Tensor:
    """Causal dilated attention at rows ``starts[b] .. starts[b] + lengths[b] - 1`` of b sequences; returns
    ``(b, s, h, d)``, zeros past a sequence's length.

    ``rows``: q, k, v ``(b, s, h, d)`` of those rows. ``past``: q, k, v ``(t, n, h, d)`` of t earlier sequences;
    sequence b reads its positions before ``starts[b]`` from ``past[past_index[b]]`` (the cached prefix it shares),
    and nothing after its last row. A dense causal attention is the one branch ``w >= n, r = 1``.
    """
    b, s, h, d = rows[0].shape
    n = past[0].shape[1]
    device = rows[0].device
    dtype = torch.float64 if rows[0].dtype == torch.float64 else torch.float32
    kernel = select_backend(device, dtype, has_mask=False)
    starts, lengths = starts.to(device=device, dtype=torch.long), lengths.to(device=device, dtype=torch.long)
    past_index = past_index.to(device=device, dtype=torch.long)
    if bool((starts > n).any()) or bool((starts < 0).any()) or bool((lengths > s).any()):
        raise ValueError(f"rows must start within the {n} cached positions and hold at most {s} rows")
    ends = starts + lengths
    heads = torch.arange(h, device=device)
    # one table of head_dim rows: the past's (sequence, position, head), then the rows' (sequence, row, head)
    table = [torch.cat([old.to(dtype).reshape(-1, d), new.to(dtype).reshape(-1, d)]) for old, new in
             zip(past, rows, strict=True)]
    out = torch.zeros(b, h, s + 1, d, dtype=dtype, device=device)   # row s: where padding slots are sent
    lse = torch.full((b, h, s + 1), -math.inf, dtype=dtype, device=device)
    for w, r in zip(segment_lengths, dilation_rates, strict=True):
        w = max(1, min(w, int(ends.max()) if b else 1))
        seq, seg_start = _blocks(starts, ends, w)                    # one block per (sequence, segment touched)
        positions = seg_start[:, None] + torch.arange(w, device=device)           # (blocks, w)
        valid = positions < ends[seq][:, None]
        kept = valid[:, None, :] & ((positions % w) % r)[:, None, :].eq((heads % r)[None, :, None])
        count = max(int(kept.sum(-1).max()), 1)
        slot = torch.sort((~kept).to(torch.uint8), dim=-1, stable=True).indices[..., :count]   # (blocks, h, m)
        real = kept.gather(2, slot)
        pos = seg_start[:, None, None] + slot                                      # the position in each slot
        row = pos - starts[seq][:, None, None]                                     # its row, if it is one
        from_past = ((past_index[seq][:, None, None] * n + pos.clamp_max(n - 1)) * h + heads[:, None])
        from_rows = len(table[0]) - b * s * h + ((seq[:, None, None] * s + row.clamp(0, s - 1)) * h
                                                 + heads[:, None])
        index = torch.where(row < 0, from_past, from_rows).flatten()
        q_b, k_b, v_b = (x.index_select(0, index).view(*slot.shape, d) for x in table)
        block_out, block_lse = kernel.forward(q_b, k_b, v_b, True, None)  # real slots first: causal is enough
        row = torch.where(real & (row >= 0), row, s)                               # earlier rows: recomputed only
        branch_out = torch.zeros_like(out)
        branch_lse = torch.full_like(lse, -math.inf)
        target = ((seq[:, None, None] * h + heads[:, None]) * (s + 1) + row).flatten()
        branch_out.view(-1, d).index_copy_(0, target, block_out.reshape(-1, d))
        branch_lse.view(-1).index_copy_(0, target, block_lse.to(dtype).flatten())
        branch_lse[..., s] = -math.inf
        merge_pair(out, lse, branch_out, branch_lse)
    rows_ok = torch.arange(s, device=device)[None, :] < lengths[:, None]
    return (out[:, :, :s].transpose(1, 2) * rows_ok[..., None, None]).to(rows[0].dtype)


def _blocks(starts: Tensor, ends: Tensor, w: int) -> tuple[Tensor, Tensor]:
    """(sequence, segment start) of every segment of length ``w`` that rows ``[start, end)`` touch."""
    first, last = starts // w, (ends - 1).clamp_min(starts) // w
    touched = (last - first + 1)
    seq = torch.repeat_interleave(torch.arange(len(starts), device=starts.device), touched)
    offset = torch.arange(int(touched.sum()), device=starts.device) - torch.repeat_interleave(
        torch.cumsum(touched, 0) - touched, touched)
    return seq, (first[seq] + offset) * w
