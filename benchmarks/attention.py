"""Dilated attention against dense attention and one local window: time, peak memory, log-log slope.

    python benchmarks/attention.py                      # CPU: N = 4K .. 128K, 2 threads, float32, causal
    python benchmarks/attention.py --lengths 8192 32768 --dense-max 8192

Each (method, N) runs in a fresh subprocess so that its peak memory (resident set on CPU, allocator peak on CUDA)
is its own. Methods:
  floor      one window (w=2048, r=1) as PyTorch's fused SDPA on ready-made (N/w, heads, w, dim) blocks: the least
             any dilated attention can cost (it is the first branch of every configuration here)
  dilated    genomenet's dilated_attention with the configuration below, from (batch, N, heads, dim) tensors
  dense      full causal scaled_dot_product_attention (quadratic; only up to --dense-max)
TFLOP/s counts the matrix work of forward+backward (4 d FLOPs per attended pair forward, 2.5x that backward); on a
GPU compare it with the card's bf16 matrix rate (an H100 SXM: about 990 dense TFLOP/s).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time

SEGMENTS = (2048, 4096, 8192, 16384)
DILATIONS = (1, 2, 4, 8)
HEADS, HEAD_DIM = 8, 64


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _make_call(method: str, n: int, device, dtype):
    import torch
    import torch.nn.functional as F

    from genomenet.attention import dilated_attention

    if method == "floor":
        w = min(2048, n)
        shape = (n // w, HEADS, w, HEAD_DIM)
        call = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)
    elif method == "dense":
        shape = (1, HEADS, n, HEAD_DIM)
        call = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)
    else:
        shape = (1, n, HEADS, HEAD_DIM)
        call = lambda q, k, v: dilated_attention(q, k, v, SEGMENTS, DILATIONS, causal=True)
    tensors = [torch.randn(shape, device=device, dtype=dtype, requires_grad=True) for _ in range(3)]
    return call, tensors


def measure_one(method: str, n: int, repeats: int) -> dict:
    """Best-of-``repeats`` forward and forward+backward seconds and peak memory above the inputs, in MiB."""
    import torch

    cuda = torch.cuda.is_available()
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    call, (q, k, v) = _make_call(method, n, device, dtype)
    grad = torch.randn_like(q)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    call(q, k, v).backward(grad) if cuda else None  # warm-up kernels on a GPU
    base = torch.cuda.memory_allocated() / 2**20 if cuda else _rss_mib()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    fwd, total = math.inf, math.inf
    for _ in range(repeats):
        q.grad = k.grad = v.grad = None
        sync()
        start = time.perf_counter()
        out = call(q, k, v)
        sync()
        mid = time.perf_counter()
        out.backward(grad)
        sync()
        end = time.perf_counter()
        fwd, total = min(fwd, mid - start), min(total, end - start)
        del out
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"method": method, "n": n, "fwd_s": fwd, "total_s": total, "peak_mib": peak - base}


def run_in_subprocess(method: str, n: int, repeats: int, threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    cmd = [sys.executable, __file__, "--one", method, str(n), "--repeats", str(repeats), "--threads", str(threads)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def attention_flops(method: str, n: int) -> float:
    """Matrix FLOPs of causal forward+backward: 4 d per (query, key) pair forward, 2.5x that backward (flash)."""
    pairs = 0.0
    if method == "dense":
        pairs = n * n / 2
    else:
        branches = [(2048, 1)] if method == "floor" else list(zip(SEGMENTS, DILATIONS))
        for w, r in branches:
            w = min(w, n)
            pairs += (n / r) * (w / r) / 2      # per head: n/r kept queries, each sees about half of w/r keys
    return 3.5 * 4 * HEAD_DIM * HEADS * pairs


def loglog_slope(ns: list[int], times: list[float]) -> float:
    xs, ys = [math.log(n) for n in ns], [math.log(t) for t in times]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=None,
                        help="sequence lengths (default 4K..128K on CPU, 4K..2M on a GPU)")
    parser.add_argument("--dense-max", type=int, default=32768, help="longest N for the quadratic dense baseline")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--one", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(measure_one(args.one[0], int(args.one[1]), args.repeats)))
        return
    if args.lengths is None:
        top = 21 if torch.cuda.is_available() else 17
        args.lengths = [2**e for e in range(12, top + 1)]
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads, "
          f"{'cuda bf16' if torch.cuda.is_available() else 'cpu float32'}; batch 1, {HEADS} heads of {HEAD_DIM}, "
          f"causal, w={SEGMENTS}, r={DILATIONS}")
    print(f"{'N':>8} {'method':>8} {'fwd s':>8} {'fwd+bwd s':>10} {'peak MiB':>9} {'x floor':>8} {'mem x floor':>12} "
          f"{'TFLOP/s':>8}")
    rows: dict[tuple[str, int], dict] = {}
    for n in args.lengths:
        for method in ("floor", "dilated", "dense"):
            if method == "dense" and n > args.dense_max:
                continue
            row = rows[method, n] = run_in_subprocess(method, n, args.repeats, args.threads)
            floor = rows["floor", n]
            print(f"{n:>8} {method:>8} {row['fwd_s']:>8.3f} {row['total_s']:>10.3f} {row['peak_mib']:>9.0f} "
                  f"{row['total_s'] / floor['total_s']:>8.2f} {row['peak_mib'] / max(floor['peak_mib'], 1):>12.2f} "
                  f"{attention_flops(method, n) / row['total_s'] / 1e12:>8.3f}", flush=True)
    for method in ("floor", "dilated", "dense"):
        ns = [n for n in args.lengths if (method, n) in rows and n >= 8192]
        if len(ns) >= 2:
            slope = loglog_slope(ns, [rows[method, n]["total_s"] for n in ns])
            print(f"log-log slope of fwd+bwd time, {method}, N = {ns[0]}..{ns[-1]}: {slope:.2f}")


if __name__ == "__main__":
    main()
