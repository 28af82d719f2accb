"""Where one dilated branch looks, and the strided copies that move its rows to and from dense blocks.

A branch ``(w, r)`` cuts positions ``0..n-1`` into segments of ``w`` (the last may be shorter; ``w >= n`` is one
segment) and head ``h`` keeps the positions whose offset in their segment is ``h % r`` (docs/attention.md, "The
contract"). Viewed as ``(batch, segments, kept, r, heads, ...)``, head ``h``'s rows are the slice
``[..., h % r, h, ...]``: one strided copy per offset gathers them into dense
``(batch * segments, heads, kept, ...)`` blocks for a fused kernel.

Ragged geometry (``n % w != 0`` or ``w % r != 0``) is padded so that every segment holds ``kept * r`` positions; the
padding sits after the real positions of each (segment, head) row, so a causal kernel never lets a real query see it
and a non-causal one masks it (see ``key_mask``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Branch:
    """Geometry of one ``(segment length, dilation rate)`` branch over ``seq_len`` positions."""

    seq_len: int
    segment: int
    """Effective segment length, ``min(w, seq_len)``."""
    dilation: int
    num_heads: int

    @classmethod
    def build(cls, seq_len: int, segment_length: int, dilation_rate: int, num_heads: int) -> Branch:
        return cls(seq_len, min(segment_length, seq_len), dilation_rate, num_heads)

    @property
    def num_segments(self) -> int:
        return math.ceil(self.seq_len / self.segment)

    @property
    def kept(self) -> int:
        """Rows a (segment, head) pair keeps, counting the padding of ragged geometry."""
        return math.ceil(self.segment / self.dilation)

    @property
    def padded_segment(self) -> int:
        return self.kept * self.dilation

    @property
    def padded_len(self) -> int:
        return self.num_segments * self.padded_segment

    @property
    def ragged(self) -> bool:
        return self.seq_len % self.segment != 0 or self.segment % self.dilation != 0

    def run_order(self) -> tuple[bool, int, int]:
        """Sort key: a plain branch (r = 1, unpadded) first, so its result becomes the running one without a merge."""
        return (self.dilation != 1 or self.ragged, self.dilation, self.segment)


def pad(x: Tensor, branch: Branch, value: float = 0.0) -> Tensor:
    """``(b, n, ...) -> (b, padded_len, ...)``: each segment padded at its end to ``kept * r`` positions."""
    if not branch.ragged:
        return x
    b, n, *rest = x.shape
    w, s = branch.segment, branch.num_segments
    out = x.new_full((b, s, branch.padded_segment, *rest), value)
    full = (s - 1) * w
    out[:, : s - 1, :w] = x[:, :full].reshape(b, s - 1, w, *rest)
    out[:, s - 1, : n - full] = x[:, full:]
    return out.view(b, branch.padded_len, *rest)


def unpad(xp: Tensor, branch: Branch) -> Tensor:
    """Inverse of ``pad``: ``(b, padded_len, ...) -> (b, n, ...)``."""
    if not branch.ragged:
        return xp
    b, _, *rest = xp.shape
    w, s, n = branch.segment, branch.num_segments, branch.seq_len
    segments = xp.view(b, s, branch.padded_segment, *rest)
    full = (s - 1) * w
    out = xp.new_empty((b, n, *rest))
    out[:, :full].view(b, s - 1, w, *rest).copy_(segments[:, : s - 1, :w])
    out[:, full:] = segments[:, s - 1, : n - full]
    return out


def _offset_views(xp: Tensor, branch: Branch) -> Iterator[tuple[int, Tensor]]:
    """For each offset t: ``(t, view (b, segments, kept, heads_t, ...))`` of the rows heads ``t, t+r, ...`` keep."""
    b, _, h, *rest = xp.shape
    grid = xp.reshape(b, branch.num_segments, branch.kept, branch.dilation, h, *rest)  # a view when contiguous
    for t in range(min(branch.dilation, h)):
        yield t, grid[:, :, :, t, t :: branch.dilation]


def gather(xp: Tensor, branch: Branch, workspace: Workspace | None = None, name: str = "",
           heads_first: bool = True) -> Tensor:
    """Padded ``(b, padded_len, heads, ...) -> (b * segments, heads, kept, ...)`` dense blocks.

    ``heads_first`` stores them heads-major (contiguous; what fused kernels read q, k, v from fastest), else
    rows-major under a transposed view (what the CPU kernel wants for grad_out: it would copy it otherwise).
    With a workspace the blocks live in its buffer ``name``, which the next branch's gather reuses.
    """
    b, _, h, *rest = xp.shape
    s, kept, r = branch.num_segments, branch.kept, branch.dilation
    shape = (b, s, h, kept, *rest) if heads_first else (b, s, kept, h, *rest)
    blocks = xp.new_empty(shape) if workspace is None else workspace.take(name, shape, xp)
    for t, rows in _offset_views(xp, branch):
        if heads_first:
            blocks[:, :, t::r].copy_(rows.transpose(2, 3))
        else:
            blocks[:, :, :, t::r].copy_(rows)
    if heads_first:
        return blocks.view(b * s, h, kept, *rest)
    return blocks.view(b * s, kept, h, *rest).transpose(1, 2)


def plain_blocks(x: Tensor, branch: Branch) -> Tensor:
    """For a plain branch (r = 1, unpadded): ``(b, n, heads, ...)`` as ``(b * segments, heads, w, ...)`` blocks,
    a strided view, no copy (fused kernels read grad_out, out and lse from it about as fast as from a copy)."""
    assert branch.dilation == 1 and not branch.ragged
    b, n, h, *rest = x.shape
    return x.reshape(b * branch.num_segments, branch.segment, h, *rest).transpose(1, 2)


class Workspace:
    """Buffers that successive branches reuse for their gathered blocks.

    Large CPU allocations are fresh pages from the kernel every time (glibc maps them and unmaps them on free), and
    touching fresh pages costs about as much as the copy itself; reusing one buffer per tensor across branches pays
    that once per call instead of once per branch.
    """

    def __init__(self) -> None:
        self.buffers: dict[str, Tensor] = {}

    def take(self, name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
        numel = math.prod(shape)
        buffer = self.buffers.get(name)
        if buffer is None or buffer.numel() < numel or buffer.dtype != like.dtype:
            buffer = self.buffers[name] = like.new_empty(numel)
        return buffer[:numel].view(shape)


def paired_views(xp: Tensor, blocks: Tensor, branch: Branch) -> Iterator[tuple[Tensor, Tensor]]:
    """Matching views of padded ``(b, padded_len, heads, ...)`` and ``(b * segments, heads, kept, ...)`` blocks.

    Both views are ``(b, segments, kept, heads_t, ...)`` for one offset t; writing through them scatters a branch's
    rows back to their positions without an intermediate full-size tensor.
    """
    assert xp.is_contiguous(), "scatter targets must be contiguous so that the views write through"
    b, _, h, *rest = xp.shape
    by_row = blocks.transpose(1, 2).reshape(b, branch.num_segments, branch.kept, h, *rest)
    for t, rows in _offset_views(xp, branch):
        yield rows, by_row[:, :, :, t :: branch.dilation]


def valid_keys(branch: Branch, batch: int, key_padding_mask: Tensor | None, device: torch.device) -> Tensor:
    """``(b * segments, heads, kept)`` bool: the block rows that are real, unpadded keys."""
    if key_padding_mask is None:
        real = torch.ones(batch, branch.seq_len, branch.num_heads, dtype=torch.bool, device=device)
    else:
        real = ~key_padding_mask.unsqueeze(-1).expand(batch, branch.seq_len, branch.num_heads)
    return gather(pad(real, branch, value=False), branch)


def key_mask(valid: Tensor, dtype: torch.dtype) -> Tensor:
    """Additive ``(b * segments, heads, 1, kept)`` mask that removes invalid keys from every query."""
    mask = torch.zeros(valid.shape, dtype=dtype, device=valid.device).masked_fill_(~valid, -math.inf)
    return mask.unsqueeze(2)


def rows_with_keys(valid: Tensor, causal: bool) -> Tensor:
    """``(b * segments, heads, kept)`` bool: queries that see at least one valid key (a query sees itself first)."""
    if causal:
        return valid.cumsum(-1) > 0
    return valid.any(-1, keepdim=True).expand_as(valid)


@dataclass(frozen=True)
class PreviousBlock(Branch):
    """The half of a causal sliding window that a plain branch lacks: block ``j``'s queries (``w`` positions) attend
    to the keys of block ``j - 1`` at or after their own offset, so that with the plain branch ``(w, 1)`` every query
    sees itself and the ``w`` positions before it (``dilated_attention``'s ``sliding_window``). Its blocks and
    padding are the plain branch's (a ``Branch`` with ``r = 1``).

    Reversing the rows of both blocks turns "key offset >= query offset" into the kernel's plain causal mask, so no
    query-by-key mask is built.
    """

    @classmethod
    def build(cls, seq_len: int, window: int, num_heads: int) -> PreviousBlock:
        return cls(seq_len, min(window, seq_len), 1, num_heads)

    def run_order(self) -> tuple[bool, float, int]:
        """After every segment branch: never the first, plain result."""
        return (True, math.inf, self.segment)


def block_view(xp: Tensor, branch: PreviousBlock) -> Tensor:
    """Padded ``(b, padded_len, ...) -> (b, blocks, w, ...)``, a view."""
    return xp.view(xp.shape[0], branch.num_segments, branch.segment, *xp.shape[2:])


def previous_rows(xp: Tensor, branch: PreviousBlock, side: str) -> Tensor:
    """The rows of a padded ``(b, padded_len, ...)`` tensor that the previous-block call reads, ``(b, blocks - 1, w,
    ...)``: blocks ``1..`` for the ``"queries"`` side, blocks ``..-2`` for the ``"keys"`` side."""
    blocks = block_view(xp, branch)
    return blocks[:, 1:] if side == "queries" else blocks[:, :-1]


def gather_previous(xp: Tensor, branch: PreviousBlock, side: str, heads_first: bool = True) -> Tensor:
    """``(b, padded_len, heads, ...) -> (b * (blocks - 1), heads, w, ...)`` blocks of one side, rows reversed."""
    rows = previous_rows(xp, branch, side).flip(2)           # (b, B-1, w, h, ...), a copy
    b, blocks, w, h, *rest = rows.shape
    if heads_first:
        return rows.transpose(2, 3).reshape(b * blocks, h, w, *rest)
    return rows.reshape(b * blocks, w, h, *rest).transpose(1, 2)


def scatter_previous(blocks: Tensor, branch: PreviousBlock, batch: int) -> Tensor:
    """Inverse of ``gather_previous``'s layout: ``(b * (B-1), heads, w, ...) -> (b, B-1, w, heads, ...)``, rows in
    sequence order."""
    _, h, w, *rest = blocks.shape
    return blocks.view(batch, -1, h, w, *rest).transpose(2, 3).flip(2)


def previous_valid_keys(branch: PreviousBlock, key_padding_mask: Tensor) -> Tensor:
    """``(b * (B-1), 1, w)`` bool: the previous-block keys that are real (reversed, as gathered)."""
    real = pad(~key_padding_mask, branch, value=False).unsqueeze(-1)   # (b, padded_len, 1)
    return gather_previous(real, branch, "keys")
