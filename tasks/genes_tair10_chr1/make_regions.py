"""Gene-body vs intergenic 2,000-base windows of *Arabidopsis thaliana* TAIR10 chromosome 1, as a BED6, plus the
train / val / test blocks of the project's block split.

- `gene`: the window lies wholly inside one protein-coding gene (GFF type `gene`, gene_biotype=protein_coding; the
  whole body: exons, introns, UTRs) and in no other annotated gene or pseudogene, so its strand is unambiguous; strand
  is the gene's.
- `intergenic`: the window lies at least `MARGIN` bases from every annotated feature (genes of any biotype,
  pseudogenes, transcripts, exons, ...; only the whole-chromosome `region` line is ignored); strand '.'.

Windows are tiled without overlap inside each run of eligible bases (centred in the run), windows with more than 5%
N are skipped, then the same number per class (at most `CAP`) is drawn with numpy seed `SEED`. GFF3 is 1-based
inclusive; BED and everything here is 0-based half-open.

    python tasks/genes_tair10_chr1/make_regions.py [--out-dir runs/tasks/genes_tair10_chr1]
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

import numpy as np

from genomenet.data.intervals import Region
from genomenet.data.region_windows import WindowSpec
from genomenet.data.splits import SplitConfig, blocks_by_chromosome, split_blocks, split_of, write_split_beds

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
GFF = SHARED / "annotations" / "tair10_chr1.gff.gz"
FASTA = SHARED / "genomes" / "tair10_chr1.fna.gz"
WINDOW = 2000
MARGIN = 500
MAX_N_FRACTION = 0.05
CAP = 2500
SEED = 0
BLOCK_SIZE = 1_000_000
CLASSES = ("gene", "intergenic")
GENE_LEVEL = {"gene", "pseudogene"}  # the features whose overlaps make a window's gene ambiguous
Row = tuple[str, int, int, str, int, str]


def read_fasta(path: Path) -> dict[str, bytes]:
    """Record name (first header word) -> uppercase sequence, in file order; the whole chromosome fits in memory."""
    records: dict[str, list[bytes]] = {}
    with gzip.open(path, "rb") as handle:
        for line in handle:
            if line.startswith(b">"):
                current = records.setdefault(line[1:].split()[0].decode(), [])
            else:
                current.append(line.strip().upper())
    return {name: b"".join(parts) for name, parts in records.items()}


def read_gff(path: Path) -> list[tuple[str, str, int, int, str, dict[str, str]]]:
    """(seqid, type, start, end, strand, attributes) per feature line, 0-based half-open; ##FASTA ends the features."""
    features = []
    with gzip.open(path, "rt") as handle:
        for line in handle:
            if line.startswith("##FASTA"):
                break
            if not line.strip() or line.startswith("#"):
                continue
            seqid, _, ftype, start, end, _, strand, _, attributes = line.rstrip("\n").split("\t")
            pairs = (item.split("=", 1) for item in attributes.split(";") if "=" in item)
            attrs = {key: unquote(value) for key, value in pairs}
            features.append((unquote(seqid), ftype, int(start) - 1, int(end), strand, attrs))
    return features


def coverage(length: int, spans: list[tuple[int, int]]) -> np.ndarray:
    """How many spans cover each base (spans are clipped to the chromosome)."""
    diff = np.zeros(length + 1, dtype=np.int32)
    for start, end in spans:
        diff[max(start, 0)] += 1
        diff[min(end, length)] -= 1
    return np.cumsum(diff[:-1], dtype=np.int32)


def tile(mask: np.ndarray, offset: int = 0) -> list[int]:
    """Starts of non-overlapping WINDOW-base windows inside each run of True, centred in the run (+ `offset`)."""
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
    starts: list[int] = []
    for run_start, run_end in zip(edges[::2], edges[1::2]):
        count = (run_end - run_start) // WINDOW
        first = run_start + (run_end - run_start - count * WINDOW) // 2
        starts.extend(offset + int(first) + WINDOW * i for i in range(count))
    return starts


def candidates(features: list, chrom: str, sequence: bytes) -> dict[str, list[Row]]:
    """Every window that fits each class on one chromosome, before the N filter and the draw."""
    n = len(sequence)
    mine = [f for f in features if f[0] == chrom and f[1] != "region"]
    annotated = coverage(n, [(f[2] - MARGIN, f[3] + MARGIN) for f in mine]) > 0
    gene_depth = coverage(n, [(f[2], f[3]) for f in mine if f[1] in GENE_LEVEL])
    pool: dict[str, list[Row]] = {"gene": [], "intergenic": []}
    for _, ftype, start, end, strand, attrs in mine:
        if ftype == "gene" and attrs.get("gene_biotype") == "protein_coding":
            alone = gene_depth[start:end] == 1  # inside this gene and no other: label and strand unambiguous
            pool["gene"] += [(chrom, s, s + WINDOW, "gene", 0, strand) for s in tile(alone, start)]
    pool["intergenic"] = [(chrom, s, s + WINDOW, "intergenic", 0, ".") for s in tile(~annotated)]
    return pool


def n_fraction(sequence: bytes, row: Row) -> float:
    """Share of N in a window (the sequence is uppercased), for the 5% N limit."""
    return sequence[row[1]:row[2]].count(b"N") / WINDOW


def draw(pool: dict[str, list[Row]], seed: int) -> list[Row]:
    """The same number of windows per class (the rarest class's count, at most CAP), drawn with `seed`, sorted."""
    rng = np.random.default_rng(seed)
    size = min([CAP] + [len(pool[label]) for label in CLASSES])
    rows: list[Row] = []
    for label in CLASSES:
        chosen = rng.choice(len(pool[label]), size=size, replace=False)
        rows += [pool[label][i] for i in sorted(chosen)]
    return sorted(rows, key=lambda r: (r[0], r[1], r[3]))


def matched_names(features: list, genome: dict[str, bytes]) -> list[str]:
    """FASTA records the GFF annotates; stop with a message when the names do not match (nothing is renamed here)."""
    seqids = {f[0] for f in features}
    shared = [name for name in genome if name in seqids]
    if not shared:
        sys.exit(f"error: GFF seqids {sorted(seqids)[:5]} match no FASTA record {list(genome)}; map the names first")
    return shared


def split_counts(rows: list[Row], blocks) -> Counter:
    """(label, split) -> windows, split as the model decides it from its window (centred, WINDOW bases: the region
    itself); 'dropped' = the window touches blocks of two splits."""
    grouped, spec = blocks_by_chromosome(blocks), WindowSpec(WINDOW, "centered")
    return Counter((r[3], split_of(spec.interval(Region(*r[:4], r[5])), grouped) or "dropped") for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out-dir", type=Path, default=Path("runs/tasks/genes_tair10_chr1"), help="output folder")
    parser.add_argument("--seed", type=int, default=SEED, help="seed of the per-class draw")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    genome, features = read_fasta(FASTA), read_gff(GFF)
    pool: dict[str, list[Row]] = {label: [] for label in CLASSES}
    for chrom in matched_names(features, genome):
        for label, rows in candidates(features, chrom, genome[chrom]).items():
            kept = [r for r in rows if n_fraction(genome[chrom], r) <= MAX_N_FRACTION]
            print(f"{chrom} {label}: {len(rows)} candidate windows, {len(rows) - len(kept)} skipped for N")
            pool[label] += kept
    rows = draw(pool, args.seed)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "regions.bed").write_text("".join("\t".join(map(str, r)) + "\n" for r in rows))
    lengths = {name: len(seq) for name, seq in genome.items()}
    cfg = SplitConfig(by="block", block_size=BLOCK_SIZE, val_fraction=0.1, test_fraction=0.2, seed=0)
    blocks = split_blocks(lengths, cfg)
    write_split_beds(blocks, args.out_dir)
    counts = split_counts(rows, blocks)
    for label in CLASSES:
        per = ", ".join(f"{s} {counts[label, s]}" for s in ("train", "val", "test", "dropped"))
        print(f"{label}: {sum(r[3] == label for r in rows)} windows ({per})")
    print(f"wrote {args.out_dir}/regions.bed and split beds in {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
