"""Which *Drosophila* species is this piece of chromosome 4 from? Window centres on six species' chromosome 4 as a
BED6 (name = species), one FASTA that holds the six chromosomes under the species' names, and a split by locus.

The six chromosomes are written to `genome.fa` with each record renamed to its species (sequence unchanged, soft
mask kept, 60 bases per line), so that a BED row's chromosome *is* its label's source and one FASTA serves the
model. Regions are single bases (the window centres) every `STEP` bases from `MAX_HALF` to length - `MAX_HALF`, so a
`MAX_WINDOW`-base window centred on any of them lies inside the chromosome: the same regions serve 1K, 8K and 32K
models, and only the context changes. Centres whose `MAX_WINDOW` window is more than 10% N are skipped.

The split holds out loci, not stretches of one genome: the six chromosomes are near-copies of each other, so a test
window whose orthologue in a sister species sat in training would be recognised as that locus and called as the
sister (the per-genome block split did exactly that: every model at or below chance). Each species' chromosome is
placed on *D. melanogaster*'s by exact `ANCHOR`-mers that occur once there (the median offset of the anchors in each
`BIN`-base bin, smoothed over neighbouring bins); melanogaster's chromosome is cut into `BLOCK_SIZE` blocks drawn
into train / val / test, and every bin of every species takes the split of the block it lands in. The result is
`split_blocks.bed`, read with `data.split.by: bed`.

    python tasks/drosophila_species/make_regions.py [--out-dir runs/tasks/drosophila_species]
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from genomenet.data.intervals import Region
from genomenet.data.region_windows import WindowSpec
from genomenet.data.splits import (
    NO_SPLIT,
    Block,
    SplitConfig,
    blocks_by_chromosome,
    split_blocks,
    split_of,
    write_split_beds,
)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
GENOMES = SHARED / "genomes" / "drosophila_chr4"
SPECIES = ("mauritiana", "melanogaster", "santomea", "sechellia", "simulans", "teissieri")
STEP = 4000
MAX_WINDOW = 32_768
MAX_HALF = MAX_WINDOW // 2
MAX_N_FRACTION = 0.1
WINDOWS = (1024, 8192, 32_768)  # the context lengths the model is fine-tuned with; counted per split
BLOCK_SIZE = 100_000   # of melanogaster's chromosome 4: 14 blocks
SPLIT = SplitConfig(by="block", block_size=BLOCK_SIZE, val_fraction=0.15, test_fraction=0.2, seed=0)
REFERENCE = "melanogaster"
ANCHOR = 24            # bases of an anchor k-mer
BIN = 5000             # bases of a species' chromosome placed by one median anchor offset
MIN_ANCHORS = 20       # anchors a bin needs to be placed
SMOOTH_BINS = 5        # running median over this many placed bins (a repeat's stray anchors do not move a bin)
LINE = 60
Row = tuple[str, int, int, str, int, str]


def read_records(path: Path) -> dict[str, bytes]:
    """Record name (first header word) -> sequence as in the file (case kept), in file order."""
    records: dict[str, list[bytes]] = {}
    with gzip.open(path, "rb") as handle:
        for line in handle:
            if line.startswith(b">"):
                current = records.setdefault(line[1:].split()[0].decode(), [])
            else:
                current.append(line.strip())
    return {name: b"".join(parts) for name, parts in records.items()}


def chromosome_4(species: str) -> bytes:
    """The species' chromosome 4: the file's one record, or its longest (and a note) if the file holds several."""
    path = GENOMES / f"d_{species}_chr4.fna.gz"
    records = read_records(path)
    if not records:
        sys.exit(f"error: {path}: no FASTA record")
    name = max(records, key=lambda k: len(records[k]))
    if len(records) > 1:
        print(f"note: {path.name} holds {len(records)} records; kept the longest, {name} ({len(records[name]):,} bp)")
    return records[name]


def write_fasta(genome: dict[str, bytes], path: Path) -> None:
    """Plain FASTA, LINE bases per line, so pyfaidx indexes it in place; written whole under a temporary name and
    renamed, so a run reading the old file never sees half of the new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as out:
        for name, sequence in genome.items():
            out.write(b">" + name.encode() + b"\n")
            out.writelines(sequence[i:i + LINE] + b"\n" for i in range(0, len(sequence), LINE))
    os.replace(tmp, path)


def centres(species: str, sequence: bytes) -> tuple[list[Row], int]:
    """Single-base BED rows every STEP bases whose MAX_WINDOW window fits and is at most 10% N; and how many were
    skipped for N."""
    rows, skipped = [], 0
    for centre in range(MAX_HALF, len(sequence) - MAX_HALF + 1, STEP):
        window = sequence[centre - MAX_HALF:centre + MAX_HALF]
        if (window.count(b"N") + window.count(b"n")) / MAX_WINDOW > MAX_N_FRACTION:
            skipped += 1
            continue
        rows.append((species, centre, centre + 1, species, 0, "+"))
    return rows, skipped


def encode(sequence: bytes) -> np.ndarray:
    """Bases as 0-3 (case dropped), anything else 4."""
    table = np.full(256, 4, np.uint8)
    for code, base in enumerate(b"ACGT"):
        table[base] = table[base + 32] = code
    return table[np.frombuffer(sequence, np.uint8)]


def kmer_codes(codes: np.ndarray) -> np.ndarray:
    """The ANCHOR-mer starting at each position as one integer (-1 when it holds a non-ACGT base)."""
    n = len(codes) - ANCHOR + 1
    values, bad = np.zeros(n, np.int64), np.zeros(n, bool)
    for j in range(ANCHOR):
        window = codes[j:j + n]
        values = values * 4 + np.minimum(window, 3)
        bad |= window == 4
    values[bad] = -1
    return values


def reference_positions(codes: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """For each BIN of a chromosome, the reference position its centre lands on (NaN where too few anchors): the
    median offset of the ANCHOR-mers it shares with the reference where they occur once there, smoothed."""
    ref_kmers = kmer_codes(reference)
    unique, first, counts = np.unique(ref_kmers, return_index=True, return_counts=True)
    keep = (counts == 1) & (unique >= 0)
    unique, first = unique[keep], first[keep]
    kmers = kmer_codes(codes)
    at = np.minimum(np.searchsorted(unique, kmers), len(unique) - 1)
    hit = np.nonzero(unique[at] == kmers)[0]
    offsets = first[at[hit]] - hit
    n_bins = -(-len(codes) // BIN)
    placed = np.full(n_bins, np.nan)
    bins = hit // BIN
    for b in np.unique(bins):
        chosen = offsets[bins == b]
        if len(chosen) >= MIN_ANCHORS:
            placed[b] = b * BIN + BIN / 2 + np.median(chosen)
    good = np.nonzero(~np.isnan(placed))[0]
    half = SMOOTH_BINS // 2
    smoothed = placed.copy()
    for i, b in enumerate(good):
        smoothed[b] = np.median(placed[good[max(0, i - half):i + half + 1]])
    return smoothed


def locus_split(genome: dict[str, bytes]) -> list[Block]:
    """Blocks of every species' chromosome labelled with the split of the reference block they land in; bins with
    no anchors take their neighbours' split when both agree, else no split."""
    reference = encode(genome[REFERENCE])
    ref_blocks = split_blocks({REFERENCE: len(reference)}, SPLIT)
    blocks = []
    for species, sequence in genome.items():
        landed = reference_positions(encode(sequence), reference)
        labels = [ref_blocks[min(int(p // BLOCK_SIZE), len(ref_blocks) - 1)].split if not np.isnan(p) and p >= 0
                  else None for p in landed]
        for i, label in enumerate(labels):
            if label is None:
                before = next((x for x in labels[i::-1] if x is not None), None)
                after = next((x for x in labels[i:] if x is not None), None)
                labels[i] = before if before == after or after is None else (after if before is None else NO_SPLIT)
        for i, label in enumerate(labels):
            start, end = i * BIN, min((i + 1) * BIN, len(sequence))
            if blocks and blocks[-1].chrom == species and blocks[-1].split == label:
                blocks[-1] = Block(species, blocks[-1].start, end, label)
            else:
                blocks.append(Block(species, start, end, label or NO_SPLIT))
    return blocks


def split_counts(rows: list[Row], blocks, length: int) -> Counter:
    """(species, split) -> centres whose `length`-base model window lies in one split ('dropped' if in two)."""
    grouped, spec = blocks_by_chromosome(blocks), WindowSpec(length, "centered")
    counts: Counter = Counter()
    for row in rows:
        window = spec.interval(Region(row[0], row[1], row[2], row[3], row[5]))
        counts[row[3], split_of(window, grouped) or "dropped"] += 1
    return counts


def report(rows: list[Row], blocks) -> None:
    """Per species and window length: centres in train / val / test, and dropped for touching two splits."""
    splits = ("train", "val", "test", "dropped")
    for length in WINDOWS:
        counts = split_counts(rows, blocks, length)
        print(f"window {length:,} bases:")
        for species in SPECIES:
            print(f"  {species:<13}" + "  ".join(f"{s} {counts[species, s]:>4}" for s in splits))
        print(f"  {'all':<13}" + "  ".join(f"{s} {sum(counts[sp, s] for sp in SPECIES):>4}" for s in splits))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out-dir", type=Path, default=Path("runs/tasks/drosophila_species"), help="output folder")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    genome = {species: chromosome_4(species) for species in SPECIES}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_fasta(genome, args.out_dir / "genome.fa")
    rows: list[Row] = []
    for species, sequence in genome.items():
        kept, skipped = centres(species, sequence)
        print(f"{species}: {len(sequence):,} bp, {len(kept)} centres ({skipped} skipped for >10% N)")
        rows += kept
    rows.sort(key=lambda r: (r[0], r[1]))
    tmp = args.out_dir / ".regions.bed.tmp"
    tmp.write_text("".join("\t".join(map(str, r)) + "\n" for r in rows))
    os.replace(tmp, args.out_dir / "regions.bed")
    blocks = locus_split(genome)
    write_split_beds(blocks, args.out_dir)
    for species in SPECIES:
        share = Counter()
        for b in blocks:
            share[b.split] += (b.end - b.start) * (b.chrom == species)
        total = sum(share.values())
        print(f"{species}: " + ", ".join(f"{s} {share[s] / total:.0%}" for s in ("train", "val", "test", NO_SPLIT)))
    report(rows, blocks)
    print(f"wrote {args.out_dir}/genome.fa, regions.bed and split beds in {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
