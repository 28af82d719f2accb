"""Sequence-parallel dilated attention equals the single-device result, slice for slice (gloo, 2 and 4 processes)."""

import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from genomenet.attention import dilated_attention
from genomenet.attention.sequence_parallel import segment_group

# (sequence length, heads, segment lengths, dilation rates): local-only, segments longer than a chunk,
# dilations that do not divide the chunk, a segment as long as the whole sequence (or longer)
CONFIGS = [
    (96, 4, (8, 24), (1, 2)),
    (96, 4, (12, 48, 96), (1, 2, 4)),
    (96, 6, (24, 48, 1000), (1, 5, 7)),
    (96, 12, (12, 24, 48, 96), (1, 2, 4, 6)),
    (144, 3, (12, 72), (1, 3)),
]
# four chunks of 24: the segment of 72 spans ranks 0-2, and rank 3 holds a shorter last segment alone
FOUR_RANK_CONFIGS = [(96, 3, (12, 72), (1, 5))]


def _check_rank(rank: int, world: int, store: str, configs) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        for n, heads, segments, dilations in configs:
            for causal in (False, True):
                _compare_with_single_device(rank, world, n, heads, segments, dilations, causal)
    finally:
        dist.destroy_process_group()


def _compare_with_single_device(rank, world, n, heads, segments, dilations, causal):
    gen = torch.Generator().manual_seed(n * 1000 + heads + causal)
    q, k, v, grad = (torch.randn(2, n, heads, 8, dtype=torch.float64, generator=gen) for _ in range(4))
    full = [x.clone().requires_grad_() for x in (q, k, v)]
    want = dilated_attention(*full, segments, dilations, causal)
    want.backward(grad)
    chunk = slice(rank * n // world, (rank + 1) * n // world)
    local = [x[:, chunk].clone().requires_grad_() for x in (q, k, v)]
    got = dilated_attention(*local, segments, dilations, causal, group=dist.group.WORLD)
    got.backward(grad[:, chunk])
    where = f"rank {rank}/{world}, n={n}, w={segments}, r={dilations}, causal={causal}"
    torch.testing.assert_close(got, want[:, chunk], rtol=1e-9, atol=1e-11, msg=lambda m: f"out, {where}: {m}")
    for name, a, b in zip("qkv", local, full):
        torch.testing.assert_close(a.grad, b.grad[:, chunk], rtol=1e-9, atol=1e-11,
                                   msg=lambda m, name=name: f"d{name}, {where}: {m}")


def run_spawned(fn, world: int, *args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(fn, args=(world, os.path.join(tmp, "store"), *args), nprocs=world, join=True)


@pytest.mark.parametrize("world", [2, 4])
def test_sequence_parallel_matches_single_device_outputs_and_gradients(world):
    run_spawned(_check_rank, world, CONFIGS + (FOUR_RANK_CONFIGS if world == 4 else []))


def _check_unsplittable(rank: int, world: int, store: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        q = torch.randn(1, 30, 2, 4)
        with pytest.raises(ValueError, match="cannot be split"):
            dilated_attention(q, q, q, (20,), (1,), group=dist.group.WORLD)
    finally:
        dist.destroy_process_group()


def test_segment_that_neither_divides_nor_spans_whole_chunks_is_refused():
    run_spawned(_check_unsplittable, 2)


def _check_unequal_chunks(rank: int, world: int, store: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        # 61 positions over 2 ranks: 31 and 30; each would plan its branches for its own length
        for segments, dilations in (((1000,), (2,)), ((31, 62), (1, 2)), ((10, 62), (1, 2))):
            q = torch.randn(1, 31 - rank, 2, 4)
            with pytest.raises(ValueError, match=r"equal chunks .* hold \[31, 30\] positions"):
                dilated_attention(q, q, q, segments, dilations, causal=True, group=dist.group.WORLD)
    finally:
        dist.destroy_process_group()


def test_chunks_of_different_lengths_are_refused_on_every_rank():
    """Not one rank's ValueError and a gloo abort ("Connection reset by peer", SIGABRT) on the other."""
    run_spawned(_check_unequal_chunks, 2)


def _check_after_reinit(rank: int, world: int, store: str) -> None:
    torch.set_num_threads(1)
    for attempt in range(2):      # a second default group must not reuse the first one's (destroyed) segment groups
        dist.init_process_group("gloo", init_method=f"file://{store}.{attempt}", rank=rank, world_size=world)
        try:
            _compare_with_single_device(rank, world, 96, 3, (12, 48), (1, 2), causal=True)
            pair = segment_group(dist.group.WORLD, ranks_per_segment=2, first_rank=rank - rank % 2)
            assert dist.get_process_group_ranks(pair) == [rank - rank % 2, rank - rank % 2 + 1]
        finally:
            dist.destroy_process_group()


def test_sequence_parallel_attention_works_again_after_the_process_group_is_recreated():
    run_spawned(_check_after_reinit, 4)
