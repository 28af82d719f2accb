"""One training step (forward and backward) of a small LongNet on one 1,048,576-base window, split over 4 gloo ranks
with the project's sequence parallelism (262,144 tokens each), and the same window on one process.

    OMP_NUM_THREADS=1 python benchmarks/million_base.py                  # CPU, gloo: 4 ranks, then 1 process
    python benchmarks/million_base.py --length 65536 --segments 1024 16384 65536 --dilations 1 4 16   # quick

Each run is its own process(es), so `ru_maxrss` is that run's peak resident memory. Prints per rank the resident
memory before the step and its peak, and the step's wall time (forward + backward; the gradient all-reduce that DDP
would add is left out); then compares the loss and every parameter gradient of the two runs: the sequence-parallel
gradients are summed over ranks (what DDP's average does with the loss normalised by the global token count, as
`GenomeLM.training_step` does). The longest segment spans every rank's chunk (it is all-gathered after dilation);
the shorter ones stay inside a chunk.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from genomenet.attention.module import apply_sequence_parallel
from genomenet.model.longnet import LongNetConfig
from genomenet.model.objectives import ObjectiveConfig
from genomenet.training.module import GenomeLM
from genomenet.training.strategy import global_sum


def build(args: argparse.Namespace, ranks: int) -> GenomeLM:
    torch.manual_seed(0)  # the same weights in every process
    backbone = LongNetConfig(n_layers=args.layers, d_model=args.d_model, n_heads=args.heads, attention="dilated",
                             segment_lengths=args.segments, dilation_rates=args.dilations)
    return GenomeLM(backbone, ObjectiveConfig("causal"), sequence_parallel_size=ranks)


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run(rank: int, world: int, store: str, args: argparse.Namespace, out: str) -> None:
    """One process: rank `rank` of `world` (1: the whole window here). Rank 0 saves the results to `out`."""
    torch.set_num_threads(args.threads)
    group = None
    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
        group = dist.group.WORLD
    module = build(args, world)
    if group is not None:
        apply_sequence_parallel(module, group)
        module.sequence_group = group
    window = torch.randint(0, 4, (1, args.length), generator=torch.Generator().manual_seed(1))  # (1, N) bases
    n = args.length // world
    ids = window[:, rank * n : (rank + 1) * n]  # (1, N / world): this rank's chunk
    before = resident_bytes()
    if group is not None:
        dist.barrier()
    start = time.perf_counter()
    nll, count = module.nll(ids)
    total = global_sum(count, group)
    (nll / total).backward()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kilobytes
    loss = float(global_sum(nll.detach(), group) / total)
    grads = {name: p.grad for name, p in module.named_parameters()}
    figures = [(before, peak, seconds)]
    if group is not None:
        for g in grads.values():
            dist.all_reduce(g, group=group)
        figures = [None] * world
        dist.all_gather_object(figures, (before, peak, seconds), group=group)
        dist.destroy_process_group()
    if rank == 0:
        torch.save({"loss": loss, "grads": grads, "figures": figures}, out)


def measure(world: int, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.pt")
        mp.spawn(run, args=(world, os.path.join(tmp, "store"), args, out), nprocs=world)
        return torch.load(out, weights_only=True)


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--length", type=int, default=1 << 20, help="bases (tokens) in the window")
    parser.add_argument("--ranks", type=int, default=4)
    parser.add_argument("--segments", type=int, nargs="+", default=[4096, 65536, 1 << 20])
    parser.add_argument("--dilations", type=int, nargs="+", default=[1, 16, 256])
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--d-model", type=int, default=32)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    args = parser.parse_args()
    print(f"# {args.length:,}-base window, causal LM, {args.layers} layer(s), d_model {args.d_model}, {args.heads} "
          f"heads, segments {args.segments}, dilations {args.dilations}, float32, CPU ({os.cpu_count()} cores), "
          f"{args.threads} thread(s) per process, gloo")
    runs = {f"{args.ranks} ranks": measure(args.ranks, args), "1 process": measure(1, args)}
    print(f"{'run':>10} {'rank':>4} {'tokens':>9} {'RSS before MiB':>14} {'peak RSS MiB':>12} {'step s':>8} "
          f"{'loss':>10}")
    for name, result in runs.items():
        world = len(result["figures"])
        for rank, (before, peak, seconds) in enumerate(result["figures"]):
            print(f"{name:>10} {rank:>4} {args.length // world:>9,} {before / 2**20:>14,.0f} {peak / 2**20:>12,.0f} "
                  f"{seconds:>8.1f} {result['loss']:>10.6f}")
    split, single = runs[f"{args.ranks} ranks"], runs["1 process"]
    worst = max(relative_error(split["grads"][k], single["grads"][k]) for k in single["grads"])
    print(f"loss: {split['loss']:.7f} ({args.ranks} ranks) vs {single['loss']:.7f} (1 process), relative difference "
          f"{abs(split['loss'] - single['loss']) / abs(single['loss']):.1e}; gradients: largest difference "
          f"{worst:.1e} of the gradient's largest entry, over {len(single['grads'])} parameters")


if __name__ == "__main__":
    main()
