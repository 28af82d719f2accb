"""Sequence-parallel dilated attention (LongNet section 3.1): one sequence in equal chunks over a process group.

Rank j of a group of P holds positions ``[j * n, (j + 1) * n)``. A branch whose segment fits the chunk (``w``
divides ``n``) is computed locally, exactly as on one device. A longer segment (a multiple of ``n``) spans
``g = w / n`` ranks: each sparsifies its keys and values first (dilation r), all-gathers them among those g ranks
only, and its queries attend to them; with ``causal`` only the blocks at or before its own are attended. The
gathered size per rank is about ``w / r``: constant in N and P when r grows with w. The backward of the all-gather is
a reduce-scatter among the same ranks, issued by hand in the autograd function below.
"""

from __future__ import annotations

import atexit
import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor
from torch.autograd.function import once_differentiable

from genomenet.attention.backends import AttentionBackend, select_backend
from genomenet.attention.merge import dilated_backward, dilated_forward, merge_pair
from genomenet.attention.sparsify import Branch

# torch 2.13 renamed the tensor collectives (the old names warn); older releases only have the old names
all_gather_into = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
"""``all_gather_into(out, x, group=...)``: ranks' ``x`` stacked along ``out``'s first dimension."""
_reduce_scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
_SEGMENT_GROUPS: dict[tuple[tuple[int, ...], int], object] = {}
_SEGMENT_GROUPS_WORLD: list = [None]
"""A weak reference to the default group the cached segment groups were created under."""
received_bytes: list[int] = [0]
"""Bytes this rank has received through sequence-parallel collectives (read by benchmarks/sequence_parallel.py)."""


@dataclass(frozen=True)
class LongBranch:
    """A branch whose segments span several chunks, seen from one rank of the sequence group."""

    segment: int
    dilation: int
    chunk: int
    num_heads: int
    rank: int
    world: int

    @property
    def ranks_per_segment(self) -> int:
        return self.segment // self.chunk

    @property
    def first_rank(self) -> int:
        return self.rank - self.rank % self.ranks_per_segment

    @property
    def group_size(self) -> int:
        """Ranks sharing this rank's segment (fewer for a shorter last segment)."""
        return min(self.ranks_per_segment, self.world - self.first_rank)

    @property
    def position(self) -> int:
        """This rank's place among the ranks of its segment."""
        return self.rank - self.first_rank

    @property
    def kept(self) -> int:
        """Rows per head each rank contributes (padded to the same count on every rank)."""
        return math.ceil(self.chunk / self.dilation)

    def rows(self, position: int) -> tuple[Tensor, Tensor]:
        """Chunk offsets ``(heads, kept)`` the heads keep on the rank at ``position`` in the segment, and validity."""
        heads = torch.arange(self.num_heads)
        start = (heads % self.dilation - position * self.chunk) % self.dilation
        offsets = start[:, None] + self.dilation * torch.arange(self.kept)
        return offsets.clamp(max=self.chunk - 1), offsets < self.chunk


class RowIndex:
    """The rows a long branch keeps on this rank: gathers ``(b, n, h, ...)`` into ``(b, h, kept, ...)`` blocks."""

    def __init__(self, branch: LongBranch, device: torch.device) -> None:
        offsets, valid = branch.rows(branch.position)
        heads = torch.arange(branch.num_heads)[:, None]
        self.flat = (offsets * branch.num_heads + heads).flatten().to(device)        # (h * kept,) rows of (n * h)
        self.valid = valid.to(device)                                                # (h, kept)
        self.selected = valid.flatten().nonzero().squeeze(1).to(device)              # valid rows of the blocks
        self.targets = self.flat[self.selected]
        self.shape = (branch.num_heads, branch.kept)

    def gather(self, x: Tensor) -> Tensor:
        b, n, h, *rest = x.shape
        return x.reshape(b, n * h, *rest).index_select(1, self.flat).view(b, *self.shape, *rest)

    def valid_rows(self, blocks: Tensor) -> Tensor:
        b, h, kept, *rest = blocks.shape
        return blocks.reshape(b, h * kept, *rest).index_select(1, self.selected)

    def merge_into(self, out: Tensor, lse: Tensor, block_out: Tensor, block_lse: Tensor) -> None:
        b, n, h, d = out.shape
        acc_out = out.view(b, n * h, d).index_select(1, self.targets)
        acc_lse = lse.view(b, n * h).index_select(1, self.targets)
        merge_pair(acc_out, acc_lse, self.valid_rows(block_out), self.valid_rows(block_lse))
        out.view(b, n * h, d).index_copy_(1, self.targets, acc_out)
        lse.view(b, n * h).index_copy_(1, self.targets, acc_lse)

    def add_into(self, grad: Tensor, block_grad: Tensor) -> None:
        b, n, h, d = grad.shape
        grad.view(b, n * h, d).index_add_(1, self.targets, self.valid_rows(block_grad).to(grad.dtype))


@dataclass
class KernelCall:
    """One fused-kernel call of a long branch: the gathered keys ``keys`` (a slice), causal or not, key mask."""

    keys: slice
    causal: bool
    mask: Tensor | None       # additive (1, h, 1, len_k)
    empty_heads: Tensor | None  # (1, h, 1) heads with no valid key in this call


def kernel_calls(branch: LongBranch, causal: bool, device, dtype) -> list[KernelCall]:
    """Non-causal: all gathered blocks at once; causal: earlier blocks (no mask needed within) plus the own block."""
    valid = torch.cat([branch.rows(p)[1] for p in range(branch.group_size)], dim=1).to(device)   # (h, g * kept)
    m = branch.kept
    spans = [(slice(0, branch.position * m), False), (slice(branch.position * m, (branch.position + 1) * m), True)]
    if not causal:
        spans = [(slice(0, branch.group_size * m), False)]
    calls = []
    for keys, is_causal in spans:
        if keys.stop == keys.start:
            continue
        call_valid = valid[:, keys]
        mask = empty = None
        if not is_causal and not call_valid.all():   # the own causal block keeps its padding at the end
            mask = torch.zeros(call_valid.shape, dtype=dtype, device=device).masked_fill_(~call_valid, -math.inf)
            mask = mask[None, :, None, :]
            empty = ~call_valid.any(-1)[None, :, None]
        calls.append(KernelCall(keys, is_causal, mask, empty))
    return calls


def attend(q_rows, k_all, v_all, calls: list[KernelCall], backend: AttentionBackend) -> tuple[Tensor, Tensor]:
    """Merged ``(out, lse)`` of this rank's kept queries over all calls of one long branch."""
    out = lse = None
    for call in calls:
        o, s = backend.forward(q_rows, k_all[:, :, call.keys], v_all[:, :, call.keys], call.causal, call.mask)
        if call.empty_heads is not None:      # fused kernels report lse 0 for rows without keys
            s = s.masked_fill(call.empty_heads, -math.inf)
            o = o.masked_fill(call.empty_heads.unsqueeze(-1), 0.0)
        if out is None:
            out, lse = o.contiguous(), s.contiguous()
        else:
            merge_pair(out, lse, o, s)
    return out, lse


def segment_group(group, ranks_per_segment: int, first_rank: int):
    """The process group of the ranks sharing a segment, created once for every sequence group of the world."""
    world = _SEGMENT_GROUPS_WORLD[0]
    if world is None or world() is not dist.group.WORLD:      # first call, or the default group was re-created
        forget_segment_groups()
        _SEGMENT_GROUPS_WORLD[0] = weakref.ref(dist.group.WORLD)
    ranks = tuple(dist.get_process_group_ranks(group))
    key = (ranks, ranks_per_segment)
    if key not in _SEGMENT_GROUPS:
        if ranks_per_segment >= len(ranks):
            _SEGMENT_GROUPS[key] = {0: group}
        else:
            _SEGMENT_GROUPS[key] = _create_segment_groups(ranks, ranks_per_segment)
    return _SEGMENT_GROUPS[key][first_rank]


@atexit.register
def forget_segment_groups() -> None:
    """Drop the cached segment groups. Run at exit too: a gloo group still alive when the interpreter shuts down
    is destroyed too late and aborts the process (``terminate called without an active exception``)."""
    _SEGMENT_GROUPS.clear()
    _SEGMENT_GROUPS_WORLD[0] = None


def _create_segment_groups(ranks: tuple[int, ...], ranks_per_segment: int) -> dict[int, object]:
    """``new_group`` must be called by every rank of the world for every group, in one order: learn all sequence
    groups, then create each one's segment groups; keep this group's, keyed by their first rank in the group."""
    every = [ranks]
    if len(ranks) != dist.get_world_size():
        gathered: list = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, ranks)
        every = sorted(set(map(tuple, gathered)))
    mine = {}
    for sequence_ranks in every:
        for first in range(0, len(sequence_ranks), ranks_per_segment):
            members = list(sequence_ranks[first : first + ranks_per_segment])
            created = dist.new_group(members)
            if sequence_ranks == ranks:
                mine[first] = created
    return mine


def all_gather_blocks(x: Tensor, branch: LongBranch, group) -> Tensor:
    """``(b, h, kept, d)`` from each rank of the segment -> ``(b, h, g * kept, d)`` in rank order."""
    if branch.group_size == 1:
        return x
    x = x.contiguous()
    b, h, kept, d = x.shape
    out = x.new_empty((branch.group_size * b, h, kept, d))      # ranks stacked along the first dimension
    all_gather_into(out, x, group=group)
    received_bytes[0] += (branch.group_size - 1) * x.nbytes
    return out.view(branch.group_size, b, h, kept, d).permute(1, 2, 0, 3, 4).reshape(b, h, -1, d)


def reduce_scatter_blocks(x: Tensor, branch: LongBranch, group) -> Tensor:
    """Backward of ``all_gather_blocks``: sum ``(b, h, g * kept, d)`` over the ranks, keep this rank's block."""
    if branch.group_size == 1:
        return x
    b, h, _, d = x.shape
    parts = x.view(b, h, branch.group_size, branch.kept, d).permute(2, 0, 1, 3, 4).reshape(-1, h, branch.kept, d)
    out = x.new_empty((b, h, branch.kept, d))
    _reduce_scatter(out, parts, op=dist.ReduceOp.SUM, group=group)
    received_bytes[0] += (branch.group_size - 1) * out.nbytes
    return out


class SequenceParallelDilatedAttention(torch.autograd.Function):
    """Local branches as on one device, long branches through segment all-gathers; exact merged gradients."""

    @staticmethod
    def forward(ctx, q, k, v, local_branches, long_branches, causal, backends, groups):
        local_backend, backend = backends
        out, lse = dilated_forward(q, k, v, local_branches, causal, None, local_backend, running=True)
        gathered = []
        for branch, group in zip(long_branches, groups):
            rows = RowIndex(branch, q.device)
            k_all = all_gather_blocks(rows.gather(k), branch, group)
            v_all = all_gather_blocks(rows.gather(v), branch, group)
            calls = kernel_calls(branch, causal, q.device, q.dtype)
            block_out, block_lse = attend(rows.gather(q), k_all, v_all, calls, backend)
            rows.merge_into(out, lse, block_out, block_lse)
            gathered += [k_all, v_all]
        out = out.to(q.dtype)   # merged in float32 (compute_dtype) across local and long branches, rounded once
        ctx.save_for_backward(q, k, v, out, lse, *gathered)
        ctx.setup = (local_branches, long_branches, causal, backends, groups)
        return out

    @staticmethod
    @once_differentiable   # the backward uses out and lse as constants: a second derivative would be wrong
    def backward(ctx, grad_out):
        q, k, v, out, lse, *gathered = ctx.saved_tensors
        local_branches, long_branches, causal, (local_backend, backend), groups = ctx.setup
        grad_out = grad_out.contiguous()
        dq, dk, dv = dilated_backward(grad_out, q, k, v, out, lse, local_branches, causal, None, local_backend)
        lse = lse.masked_fill(lse == -math.inf, math.inf)   # rows without keys: probabilities 0, not inf * 0
        for i, (branch, group) in enumerate(zip(long_branches, groups)):
            k_all, v_all = gathered[2 * i], gathered[2 * i + 1]
            rows = RowIndex(branch, q.device)
            valid = rows.valid[None, :, :, None]
            g_rows = rows.gather(grad_out).masked_fill(~valid, 0.0)
            l_rows = rows.gather(lse).masked_fill(~valid[..., 0], math.inf)
            q_rows, o_rows = rows.gather(q), rows.gather(out)
            dq_rows = torch.zeros_like(q_rows)
            dk_all, dv_all = torch.zeros_like(k_all), torch.zeros_like(v_all)
            for call in kernel_calls(branch, causal, q.device, q.dtype):
                dq_c, dk_c, dv_c = backend.backward(g_rows, q_rows, k_all[:, :, call.keys], v_all[:, :, call.keys],
                                                    o_rows, l_rows, call.causal, call.mask)
                dq_rows += dq_c
                dk_all[:, :, call.keys] += dk_c
                dv_all[:, :, call.keys] += dv_c
            rows.add_into(dq, dq_rows)
            rows.add_into(dk, reduce_scatter_blocks(dk_all, branch, group))
            rows.add_into(dv, reduce_scatter_blocks(dv_all, branch, group))
        return dq, dk, dv, None, None, None, None, None


def split_branches(chunk: int, world: int, rank: int, segment_lengths: Sequence[int], dilation_rates: Sequence[int],
                   num_heads: int) -> tuple[list[Branch], list[LongBranch]]:
    """Branches computed locally and branches spanning ranks; ``ValueError`` for a segment that cannot be split."""
    seq_len = chunk * world
    local, long = [], []
    for w, r in zip(segment_lengths, dilation_rates):
        w = min(w, seq_len)
        if w <= chunk and chunk % w == 0:
            local.append(Branch.build(chunk, w, r, num_heads))
        elif w > chunk and w % chunk == 0:
            long.append(LongBranch(w, r, chunk, num_heads, rank, world))
        else:
            raise ValueError(f"segment length {w} cannot be split over {world} ranks of {chunk} positions each: "
                             f"it must divide the local length {chunk} or be a multiple of it")
    return sorted(local, key=Branch.run_order), long


def check_equal_chunks(chunk: int, world: int, group, device: torch.device) -> None:
    """``ValueError`` on every rank unless all ranks hold ``chunk`` positions: otherwise they would plan different
    branches and issue collectives of different sizes (gloo aborts the process, NCCL hangs)."""
    if world == 1:
        return
    mine = torch.tensor([chunk], dtype=torch.int64, device=device)
    lengths = mine.new_empty(world)
    all_gather_into(lengths, mine, group=group)
    if (lengths != chunk).any():
        raise ValueError(f"sequence parallelism needs equal chunks on every rank, but the {world} ranks hold "
                         f"{lengths.tolist()} positions: split a sequence whose length the number of ranks divides")


def sequence_parallel_dilated_attention(q, k, v, segment_lengths, dilation_rates, causal, group, key_padding_mask,
                                        backend):
    """``dilated_attention`` with ``group``: this rank's ``(b, n, h, d)`` chunk in, its output chunk out."""
    if key_padding_mask is not None:
        raise ValueError("key_padding_mask is not supported with sequence parallelism (genomic windows carry no "
                         "padding); pass group=None")
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    check_equal_chunks(q.shape[1], world, group, q.device)
    local, long = split_branches(q.shape[1], world, rank, segment_lengths, dilation_rates, q.shape[2])
    groups = tuple(segment_group(group, b.ranks_per_segment, b.first_rank) for b in long)
    # long branches mask the gathered keys; local ones need a mask only for a ragged bidirectional branch, so they
    # may run on a mask-less kernel (flash-attn on a GPU)
    local_kernel = select_backend(q.device, q.dtype, has_mask=not causal and any(b.ragged for b in local),
                                  name=backend)
    kernel = select_backend(q.device, q.dtype, has_mask=True, name=backend)
    q, k, v = (x.contiguous() for x in (q, k, v))
    return SequenceParallelDilatedAttention.apply(q, k, v, local, long, causal, (local_kernel, kernel), groups)
