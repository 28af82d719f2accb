"""Sequence-parallel dilated attention: communication and time per rank at a fixed per-rank length (weak scaling).

    python benchmarks/sequence_parallel.py                    # CPU, gloo, 1 / 2 / 4 processes, 1 thread each

For each world size P the sequence is P * n positions, split in P chunks of n. Per rank and per attention layer it
prints the bytes received through the collectives (counted on the tensors sent: all-gather of k and v forward,
reduce-scatter of their gradients backward) beside the formula

    bytes = sum over branches with w > n of 4 * (g - 1) * batch * heads * ceil(n / r) * head_dim * itemsize,
    g = min(w, P * n) / n ranks sharing a segment,

and the forward+backward time of one layer's attention per rank, wall clock and CPU (processes beyond the core count
share cores, so the CPU seconds are the weak-scaling figure there). g = w / n does not depend on P once the sequence
is as long as the longest segment (P * n >= max w; shorter sequences cap w at P * n), so from then on the bytes per
rank stay constant as P grows; with r growing like w each long branch gathers about w / r rows per head.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

SEGMENTS = (2048, 4096, 8192)
DILATIONS = (1, 2, 4)
HEADS, HEAD_DIM, BATCH = 8, 64, 1


def formula_bytes(n: int, world: int, itemsize: int = 4) -> int:
    total = 0
    for w, r in zip(SEGMENTS, DILATIONS):
        w = min(w, n * world)
        if w > n:
            g = w // n
            total += 4 * (g - 1) * BATCH * HEADS * math.ceil(n / r) * HEAD_DIM * itemsize
    return total


def _rank_main(rank: int, world: int, store: str, n: int, repeats: int, results) -> None:
    from genomenet.attention import dilated_attention
    from genomenet.attention import sequence_parallel as sp

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    q, k, v = (torch.randn(BATCH, n, HEADS, HEAD_DIM, requires_grad=True) for _ in range(3))
    grad = torch.randn(BATCH, n, HEADS, HEAD_DIM)
    group = dist.group.WORLD if world > 1 else None
    best, best_cpu = math.inf, math.inf
    for _ in range(repeats):
        sp.received_bytes[0] = 0
        dist.barrier()
        start, start_cpu = time.perf_counter(), time.process_time()
        dilated_attention(q, k, v, SEGMENTS, DILATIONS, causal=True, group=group).backward(grad)
        best, best_cpu = min(best, time.perf_counter() - start), min(best_cpu, time.process_time() - start_cpu)
    results[rank] = (sp.received_bytes[0], best, best_cpu)
    dist.barrier()
    dist.destroy_process_group()


def measure(world: int, n: int, repeats: int) -> list[tuple[int, float, float]]:
    with tempfile.TemporaryDirectory() as tmp, mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_rank_main, args=(world, os.path.join(tmp, "store"), n, repeats, results), nprocs=world)
        return [results[r] for r in range(world)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunk", type=int, default=2048, help="positions per rank")
    parser.add_argument("--worlds", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(f"# gloo on CPU, 1 thread per rank, {os.cpu_count()} cores; batch {BATCH}, {HEADS} heads of {HEAD_DIM}, "
          f"float32, causal, w={SEGMENTS}, r={DILATIONS}, {args.chunk} positions per rank")
    print(f"{'ranks':>5} {'N':>8} {'MiB/rank measured':>18} {'MiB/rank formula':>17} {'wall s/rank':>12} "
          f"{'CPU s/rank':>11}")
    for world in args.worlds:
        per_rank = measure(world, args.chunk, args.repeats)
        measured = max(b for b, _, _ in per_rank)
        print(f"{world:>5} {world * args.chunk:>8} {measured / 2**20:>18.2f} "
              f"{formula_bytes(args.chunk, world) / 2**20:>17.2f} {max(t for _, t, _ in per_rank):>12.3f} "
              f"{max(c for _, _, c in per_rank):>11.3f}", flush=True)


if __name__ == "__main__":
    main()
