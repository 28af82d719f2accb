"""Promoter vs GC-matched background on human chr20 (GRCh37): single-base BED6 regions plus the split blocks.

Positives (`promoter`) are RefSeq TSSs, one base `[pos, pos+1)` on the TSS strand; the TSS file is 0-based (checked:
the TSS base is a purine on the transcript strand in 67% of sites and `CA`, the initiator motif, is the commonest
-1/+1 pair; both vanish if the positions are read as 1-based). Negatives (`background`) are random bases at least
5 kb from every RefSeq TSS, with a random strand, drawn per GC bin so that their GC content matches the positives'.

    python tasks/promoters_chr20/make_regions.py [--out-dir runs/tasks/promoters_chr20]
"""

from __future__ import annotations

import argparse
import gzip
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from genomenet.data.splits import SplitConfig, split_blocks, write_split_beds

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
FASTA = SHARED / "genomes" / "grch37_chr20.fa.gz"
TSS = SHARED / "annotations" / "hg19_refseq_tss_stranded.txt.gz"
CHROM = "20"
FLANK_N, FLANK_GC = 1_000, 500  # N check on [pos-1000, pos+1000), GC on [pos-500, pos+500)
MAX_N, MIN_SPACING, MIN_TSS_DISTANCE, GC_BINS = 0.05, 1_000, 5_000, 10
CANDIDATES = 2_000_000  # random bases drawn before filtering; enough for the GC-rich bins
SEED = 0


def read_chrom(path: Path, name: str) -> np.ndarray:
    """The named FASTA record as uppercase ASCII codes (uint8); gzip reads bgzip, and no index is written beside the
    read-only shared file."""
    parts: list[bytes] = []
    keep = False
    with gzip.open(path, "rb") as handle:
        for line in handle:
            if line.startswith(b">"):
                keep = line[1:].split()[0].decode() == name
            elif keep:
                parts.append(line.strip().upper())
    if not parts:
        raise SystemExit(f"{path}: no record named {name!r}")
    return np.frombuffer(b"".join(parts), dtype=np.uint8)


def read_tss(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """chr20 TSS positions (0-based) and strands, sorted by position then strand, exact duplicates removed."""
    rows = set()
    with gzip.open(path, "rt") as handle:
        for line in handle:
            chrom, pos, strand = line.split()[:3]
            if chrom.removeprefix("chr") == CHROM:
                rows.add((int(pos), strand))
    ordered = sorted(rows)
    return np.array([p for p, _ in ordered], dtype=np.int64), np.array([s for _, s in ordered])


def window_fraction(cum: np.ndarray, pos: np.ndarray, flank: int) -> np.ndarray:
    """Share of flagged bases in [pos-flank, pos+flank); `cum` is the flag's cumulative sum with a leading 0. Bases
    past either chromosome end count as flagged (used with N, so edge windows are rejected)."""
    lo, hi = np.clip(pos - flank, 0, len(cum) - 1), np.clip(pos + flank, 0, len(cum) - 1)
    outside = 2 * flank - (hi - lo)
    return (cum[hi] - cum[lo] + outside) / (2 * flank)


def space_out(pos: np.ndarray, spacing: int) -> np.ndarray:
    """Indices of the TSSs kept when walking in sorted order and dropping any within `spacing` bp of the last kept
    one, so that no two positives share most of their context."""
    kept, last = [], -(10**12)
    for i, p in enumerate(pos):
        if p - last > spacing:
            kept.append(i)
            last = p
    return np.array(kept, dtype=np.int64)


def distance_to_nearest(pos: np.ndarray, sites: np.ndarray) -> np.ndarray:
    """Distance of each position to the nearest of the sorted `sites` (any strand)."""
    right = np.clip(np.searchsorted(sites, pos), 0, len(sites) - 1)
    left = np.clip(right - 1, 0, len(sites) - 1)
    return np.minimum(np.abs(pos - sites[right]), np.abs(pos - sites[left]))


def gc_matched(cand_gc: np.ndarray, pos_gc: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of candidates drawn bin by bin (10 equal-width GC bins) as often as positives fall in each bin; a bin
    that runs out takes the rest from the nearest bins with candidates left. Matching GC keeps a k-mer model from
    winning on GC content alone (promoters are CpG-island rich)."""
    edges = np.linspace(0, 1, GC_BINS + 1)[1:-1]
    cand_bin, need = np.digitize(cand_gc, edges), np.bincount(np.digitize(pos_gc, edges), minlength=GC_BINS)
    pools = [list(rng.permutation(np.flatnonzero(cand_bin == b))) for b in range(GC_BINS)]
    chosen: list[int] = []
    for b in range(GC_BINS):
        for _ in range(need[b]):
            nearest = sorted((abs(c - b), c) for c in range(GC_BINS) if pools[c])
            if not nearest:
                raise SystemExit("ran out of background candidates; raise CANDIDATES")
            chosen.append(pools[nearest[0][1]].pop())
    return np.array(chosen, dtype=np.int64)


def make_regions(out_dir: Path) -> Counter:
    """Write regions.bed and the split BEDs into `out_dir`; returns rows per label."""
    rng = np.random.default_rng(SEED)
    seq = read_chrom(FASTA, CHROM)
    n_cum = np.concatenate([[0], np.cumsum(seq == ord("N"), dtype=np.int32)])
    gc_cum = np.concatenate([[0], np.cumsum((seq == ord("G")) | (seq == ord("C")), dtype=np.int32)])
    tss_pos, tss_strand = read_tss(TSS)
    clean = window_fraction(n_cum, tss_pos, FLANK_N) <= MAX_N
    keep = np.flatnonzero(clean)[space_out(tss_pos[clean], MIN_SPACING)]
    pos_pos, pos_strand = tss_pos[keep], tss_strand[keep]

    cand = np.unique(rng.integers(FLANK_N, len(seq) - FLANK_N, size=CANDIDATES))
    far = distance_to_nearest(cand, tss_pos) >= MIN_TSS_DISTANCE
    cand = cand[far & (window_fraction(n_cum, cand, FLANK_N) <= MAX_N)]
    gc = lambda p: window_fraction(gc_cum, p, FLANK_GC)
    neg_pos = np.sort(cand[gc_matched(gc(cand), gc(pos_pos), rng)])
    neg_strand = rng.choice(np.array(["+", "-"]), size=len(neg_pos))

    rows = [(int(p), "promoter", s) for p, s in zip(pos_pos, pos_strand)]
    rows += [(int(p), "background", s) for p, s in zip(neg_pos, neg_strand)]
    rows.sort()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "regions.bed").write_text("".join(f"{CHROM}\t{p}\t{p + 1}\t{label}\t0\t{s}\n" for p, label, s in rows))
    blocks = split_blocks({CHROM: len(seq)}, SplitConfig(by="block", block_size=1_000_000, val_fraction=0.1,
                                                         test_fraction=0.2, seed=0))
    write_split_beds(blocks, out_dir)
    print(f"GC (±{FLANK_GC} bp) mean: promoter {gc(pos_pos).mean():.3f}, background {gc(neg_pos).mean():.3f}")
    return Counter(label for _, label, _ in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out-dir", type=Path, default=Path("runs/tasks/promoters_chr20"),
                        help="folder for regions.bed, split_blocks.bed, val.bed, test.bed")
    args = parser.parse_args(argv)
    counts = make_regions(args.out_dir)
    print(f"{args.out_dir / 'regions.bed'}: " + ", ".join(f"{label} {n}" for label, n in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
