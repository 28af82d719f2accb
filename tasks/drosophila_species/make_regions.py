"""Which *Drosophila* species is this piece of chromosome 4 from? Window centres on six species' chromosome 4 as a
BED6 (name = species), one FASTA that holds the six chromosomes under the species' names, and the block split.

The six chromosomes are written to `genome.fa` with each record renamed to its species (sequence unchanged, soft
mask kept, 60 bases per line), so that a BED row's chromosome *is* its label's source and one FASTA serves the
model. Regions are single bases (the window centres) every `STEP` bases from `MAX_HALF` to length - `MAX_HALF`, so a
`MAX_WINDOW`-base window centred on any of them lies inside the chromosome: the same regions serve 1K, 8K and 32K
models, and only the context changes. Centres whose `MAX_WINDOW` window is more than 10% N are skipped.

    python tasks/drosophila_species/make_regions.py [--out-dir runs/tasks/drosophila_species]
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from collections import Counter
from pathlib import Path

from genomenet.data.intervals import Region
from genomenet.data.region_windows import WindowSpec
from genomenet.data.splits import SplitConfig, blocks_by_chromosome, split_blocks, split_of, write_split_beds

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
GENOMES = SHARED / "genomes" / "drosophila_chr4"
SPECIES = ("mauritiana", "melanogaster", "santomea", "sechellia", "simulans", "teissieri")
STEP = 4000
MAX_WINDOW = 32_768
MAX_HALF = MAX_WINDOW // 2
MAX_N_FRACTION = 0.1
WINDOWS = (1024, 8192, 32_768)  # the context lengths the model is fine-tuned with; counted per split
BLOCK_SIZE = 100_000
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
    """Plain FASTA, LINE bases per line, so pyfaidx indexes it in place."""
    with open(path, "wb") as out:
        for name, sequence in genome.items():
            out.write(b">" + name.encode() + b"\n")
            out.writelines(sequence[i:i + LINE] + b"\n" for i in range(0, len(sequence), LINE))


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
    (args.out_dir / "regions.bed").write_text("".join("\t".join(map(str, r)) + "\n" for r in rows))
    lengths = {species: len(sequence) for species, sequence in genome.items()}
    cfg = SplitConfig(by="block", block_size=BLOCK_SIZE, val_fraction=0.1, test_fraction=0.2, seed=0)
    blocks = split_blocks(lengths, cfg)
    write_split_beds(blocks, args.out_dir)
    report(rows, blocks)
    print(f"wrote {args.out_dir}/genome.fa, regions.bed and split beds in {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
