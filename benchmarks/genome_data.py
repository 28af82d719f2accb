"""Genome data layer benchmark: prepare time and memory, window access, tokenization throughput.

    python benchmarks/genome_data.py [--fasta ../shared/data/genomes/grch37_chr20.fa.gz]

Prints a markdown table (the figures recorded in docs/data.md). Preparing runs in a child process into a fresh
temporary cache, so its peak RSS is measured alone.
"""

from __future__ import annotations

import argparse
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FASTA = REPO.parent / "shared" / "data" / "genomes" / "grch37_chr20.fa.gz"
MB = 1 << 20


def prepare_in_child(fasta: Path, cache: Path, import_only: bool = False) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of `prepare` in a fresh interpreter (VmHWM: ru_maxrss can carry the parent's)."""
    code = "import genomenet.data.cache as c, sys, time; t = time.perf_counter(); "
    code += "" if import_only else "c.prepare(sys.argv[1], sys.argv[2]); "
    code += "print(time.perf_counter() - t); import re; "
    code += r"print(re.search(r'VmHWM:\s+(\d+)', open('/proc/self/status').read())[1])"  # peak RSS, kB
    out = subprocess.run([sys.executable, "-c", code, str(fasta), str(cache)], check=True, capture_output=True,
                         text=True).stdout.split()
    return float(out[0]), int(out[1]) / 1024


def best_time(fn, repeats: int) -> float:
    """Best of `repeats` timings (seconds): the steady state, not the first page fault."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def window_access(genome, chrom: str, rng: np.random.Generator) -> tuple[float, float]:
    """Mean seconds for a random 1 Mb window: the O(1) view, and the view read into a new array."""
    starts = rng.integers(0, genome.lengths[chrom] - MB, size=200)
    t = time.perf_counter()
    for s in starts:
        genome.window(chrom, int(s), int(s) + MB)
    view = (time.perf_counter() - t) / len(starts)
    t = time.perf_counter()
    for s in starts:
        np.array(genome.window(chrom, int(s), int(s) + MB))
    copy = (time.perf_counter() - t) / len(starts)
    return view, copy


def throughput(genome, chrom: str, fn, window: int, rng: np.random.Generator) -> float:
    """Bases per second through `fn(packed window)` over random windows of the (page-cached) cache."""
    starts = rng.integers(0, genome.lengths[chrom] - window, size=64)
    packed = [genome.window(chrom, int(s), int(s) + window) for s in starts]
    for p in packed:
        fn(p)  # warm the page cache
    seconds = best_time(lambda: [fn(p) for p in packed], repeats=3)
    return len(packed) * window / seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fasta", type=Path, default=DEFAULT_FASTA)
    args = parser.parse_args(argv)
    if not args.fasta.exists():
        print(f"{args.fasta} not found; pass --fasta", file=sys.stderr)
        return 2
    from genomenet.data.cache import prepare
    from genomenet.data.tokenizers import KmerTokenizer, NucleotideTokenizer
    from genomenet.data.windows import GenomeWindows

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as cache:
        _, base_rss = prepare_in_child(args.fasta, Path(cache), import_only=True)
        seconds, rss = prepare_in_child(args.fasta, Path(cache))
        genome = prepare(args.fasta, cache)
        chrom = max(genome.lengths, key=genome.lengths.get)
        if genome.lengths[chrom] < 2 * MB:   # the rows read random 1 Mb windows of the longest record
            print(f"{args.fasta}: the longest record is {genome.lengths[chrom]:,} bp; this benchmark needs one of at "
                  "least 2 Mb", file=sys.stderr)
            return 2
        view, copy = window_access(genome, chrom, rng)
        nuc, k6 = NucleotideTokenizer(), KmerTokenizer(6)
        rows = [
            ("prepare (fresh cache)", f"{seconds:.2f} s", f"{genome.total_length / seconds / 1e6:.0f} Mbp/s"),
            ("peak RSS while preparing", f"{rss:.0f} MiB", f"{base_rss:.0f} MiB of it is the interpreter + imports"),
            ("random 1 Mb window, O(1) view", f"{view * 1e6:.1f} us", "memmap slice"),
            ("random 1 Mb window, read into memory", f"{copy * 1e6:.0f} us", "page-cached"),
        ]
        for name, fn, window in [
            ("nucleotide encode from cache", nuc.encode_packed, MB),
            ("nucleotide encode + soft mask from cache", lambda p: (nuc.encode_packed(p), p >= 0x80), MB),
            ("6-mer encode from cache", k6.encode_packed, MB),
            ("nucleotide encode from ASCII text", nuc.encode, MB),
        ]:
            if "ASCII" in name:
                start = min(10 * MB, genome.lengths[chrom] - MB)  # 10 Mb in, or the last Mb of a shorter record
                text = np.frombuffer(genome.sequence(chrom, start, start + MB).encode(), np.uint8)
                rate = MB / best_time(lambda t=text, f=fn: f(t), 20)
            else:
                rate = throughput(genome, chrom, fn, window, rng)
            rows.append((name, f"{rate / 1e9:.2f} GB/s", "bases per second, 1 Mb windows, one core"))
        ds = GenomeWindows(genome, [_whole(genome, chrom)], 65536, nuc, max_n_fraction=1.0, reverse_complement_prob=0.5)
        rate = 200 * 65536 / best_time(lambda: [ds[k] for k in range(200)], 3)
        rows.append(("dataset item (64 kb window -> int64 tensor + mask)", f"{rate / 1e9:.2f} GB/s", "with RC 50%"))
    print(f"genome: {args.fasta.name}, {genome.total_length:,} bp; machine: {platform.machine()}, {_cpu()}")
    print("| measure | value | note |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"(this process's peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")
    return 0


def _whole(genome, chrom):
    from genomenet.data.intervals import Interval

    return Interval(chrom, 0, genome.lengths[chrom])


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
