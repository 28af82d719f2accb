"""Labelled, fixed-length windows of a genome from its GFF3 annotation, as a BED6 (name = class, strand from the GFF).

Classes are made mutually exclusive base by base, so a window's label is never ambiguous:

- `cds`: coding exon bases on one strand, not coding on the other strand, not in a mobile element;
- `intron`: between consecutive exons of one transcript, in no exon of any transcript, not in a mobile element;
- `mobile_element`: inside an annotated transposon or repeat, in no exon;
- `intergenic`: at least `margin` bases from any gene feature and in no mobile element (strand '.').

Windows of `length` bases are tiled, without overlap, inside runs of bases of one class (and without N), then the
same number per class (at most `cap`) is drawn with a fixed seed. GFF3 is 1-based inclusive; BED and everything here
is 0-based half-open.

    python tasks/embedding_pca/make_regions.py --out regions.bed   # D. melanogaster chr4 from ../shared/data
"""

from __future__ import annotations

import argparse
import gzip
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import numpy as np

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
GFF = SHARED / "annotations" / "dm6_chr4.gff.gz"
FASTA = SHARED / "genomes" / "drosophila_chr4" / "d_melanogaster_chr4.fna.gz"
REPEAT_TYPES = {"mobile_genetic_element", "transposable_element", "repeat_region", "dispersed_repeat"}
NOT_GENIC = REPEAT_TYPES | {"region", "chromosome", "gap", "sequence_feature"}
CLASSES = ("cds", "intron", "mobile_element", "intergenic")


@dataclass(frozen=True)
class Feature:
    """One GFF3 line, in 0-based half-open coordinates."""

    seqid: str
    type: str
    start: int
    end: int
    strand: str
    attributes: dict[str, str]


def open_text(path: Path):
    """Plain or gzip/bgzip text, told apart by the magic bytes rather than the file name."""
    with open(path, "rb") as handle:
        gzipped = handle.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt") if gzipped else open(path)


def parse_feature(line: str) -> Feature:
    """A GFF3 feature line; attribute values are percent-decoded (GFF3 escapes ';', '=', ',' that way)."""
    seqid, _, ftype, start, end, _, strand, _, attributes = line.rstrip("\n").split("\t")
    pairs = (item.split("=", 1) for item in attributes.split(";") if "=" in item)
    return Feature(unquote(seqid), ftype, int(start) - 1, int(end), strand, {k: unquote(v) for k, v in pairs})


def read_gff(path: Path) -> list[Feature]:
    """The features of a GFF3 file; comments and an embedded ##FASTA section are skipped."""
    features = []
    with open_text(path) as handle:
        for line in handle:
            if line.startswith("##FASTA"):
                break
            if line.strip() and not line.startswith("#"):
                features.append(parse_feature(line))
    return features


def read_fasta(path: Path) -> dict[str, str]:
    """Record name (first word of the header) -> uppercase sequence; small genomes only (held in memory)."""
    records: dict[str, list[str]] = {}
    with open_text(path) as handle:
        for line in handle:
            if line.startswith(">"):
                current = records.setdefault(line[1:].split()[0], [])
            elif line.strip():
                current.append(line.strip().upper())
    return {name: "".join(parts) for name, parts in records.items()}


def paint(length: int, spans: list[tuple[int, int]]) -> np.ndarray:
    """Boolean mask (length,) that is True on the union of the spans."""
    diff = np.zeros(length + 1, dtype=np.int32)
    for start, end in spans:
        diff[max(start, 0)] += 1
        diff[min(end, length)] -= 1
    return np.cumsum(diff[:-1]) > 0


def intron_spans(features: list[Feature]) -> list[tuple[int, int, str]]:
    """Gaps between consecutive exons of each transcript (exons grouped by their Parent)."""
    exons = defaultdict(list)
    for f in features:
        if f.type == "exon":
            exons[f.attributes.get("Parent", f.attributes.get("ID", ""))].append(f)
    spans = []
    for group in exons.values():
        group.sort(key=lambda f: f.start)
        reach = group[0].end
        for f in group[1:]:
            if f.start > reach:
                spans.append((reach, f.start, f.strand))
            reach = max(reach, f.end)
    return spans


def strand_mask(length: int, spans: list[tuple[int, int, str]], strand: str) -> np.ndarray:
    return paint(length, [(s, e) for s, e, st in spans if st == strand])


def class_masks(features: list[Feature], sequence: str, margin: int) -> dict[tuple[str, str], np.ndarray]:
    """(class, strand) -> mask of the chromosome's bases in that class; the masks do not overlap."""
    n = len(sequence)
    spans = {t: [(f.start, f.end, f.strand) for f in features if f.type == t] for t in ("CDS", "exon")}
    repeats = [(f.start, f.end, f.strand) for f in features if f.type in REPEAT_TYPES]
    genic = paint(n, [(f.start - margin, f.end + margin) for f in features if f.type not in NOT_GENIC])
    exon_any, repeat_any = paint(n, [s[:2] for s in spans["exon"]]), paint(n, [s[:2] for s in repeats])
    usable = np.frombuffer(sequence.encode(), dtype=np.uint8) != ord("N")
    introns = intron_spans(features)
    masks = {("intergenic", "."): ~genic & ~repeat_any}
    for strand, other in (("+", "-"), ("-", "+")):
        cds, cds_other = strand_mask(n, spans["CDS"], strand), strand_mask(n, spans["CDS"], other)
        masks["cds", strand] = cds & ~cds_other & ~repeat_any
        masks["intron", strand] = strand_mask(n, introns, strand) & ~exon_any & ~repeat_any
        masks["mobile_element", strand] = strand_mask(n, repeats, strand) & ~strand_mask(n, repeats, other) & ~exon_any
    return {key: mask & usable for key, mask in masks.items()}


def tile_runs(mask: np.ndarray, length: int) -> np.ndarray:
    """Starts of non-overlapping `length`-base windows inside the runs of True, each run's windows centred in it."""
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
    starts = []
    for run_start, run_end in zip(edges[::2], edges[1::2]):
        count = (run_end - run_start) // length
        offset = run_start + (run_end - run_start - count * length) // 2
        starts.extend(offset + length * np.arange(count))
    return np.asarray(starts, dtype=np.int64)


def labelled_windows(features, genome: dict[str, str], length: int, cap: int, margin: int, seed: int) -> list[tuple]:
    """BED6 rows (chrom, start, end, class, 0, strand): the same number of windows per class (at most `cap`),
    drawn with `seed` from all the windows that fit."""
    rng = np.random.default_rng(seed)
    pool: dict[str, list[tuple]] = defaultdict(list)
    for chrom, sequence in genome.items():
        mine = [f for f in features if f.seqid == chrom]
        for (label, strand), mask in class_masks(mine, sequence, margin).items():
            pool[label].extend((chrom, int(s), int(s) + length, label, 0, strand) for s in tile_runs(mask, length))
    size = min([cap] + [len(pool[label]) for label in CLASSES])  # balanced: as many of each as the rarest has
    if size == 0:
        raise ValueError(f"no {length}-base window for some class ({', '.join(CLASSES)}); try a smaller --length")
    rows = []
    for label in CLASSES:
        chosen = rng.choice(len(pool[label]), size=size, replace=False)
        rows.extend(pool[label][i] for i in sorted(chosen))
    return sorted(rows, key=lambda r: (r[0], r[1], r[3]))


def matched_genome(features: list[Feature], fasta: Path) -> dict[str, str]:
    """The FASTA's records that the GFF annotates; a ValueError when the two share no sequence name."""
    genome, seqids = read_fasta(fasta), {f.seqid for f in features}
    shared = {name: seq for name, seq in genome.items() if name in seqids}
    if not shared:
        raise ValueError(f"{fasta}: no record is named like the GFF's sequences ({', '.join(sorted(seqids)[:5])}); "
                         "rename one side so the names match")
    return shared


def make_regions(out: Path, gff: Path = GFF, fasta: Path = FASTA, length: int = 300, cap: int = 300,
                 margin: int = 500, seed: int = 0) -> dict[str, int]:
    """Write the labelled BED6 to `out`; returns windows per class."""
    features = read_gff(gff)
    rows = labelled_windows(features, matched_genome(features, fasta), length, cap, margin, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join("\t".join(map(str, row)) + "\n" for row in rows))
    return {label: sum(row[3] == label for row in rows) for label in CLASSES}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="BED6 file to write")
    parser.add_argument("--gff", type=Path, default=GFF, help="GFF3 annotation (plain or gzip)")
    parser.add_argument("--fasta", type=Path, default=FASTA, help="genome FASTA whose record names the GFF uses")
    parser.add_argument("--length", type=int, default=300, help="bases per window")
    parser.add_argument("--cap", type=int, default=300, help="most windows per class")
    parser.add_argument("--margin", type=int, default=500, help="least distance of an intergenic base from a gene")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-class draw")
    args = parser.parse_args(argv)
    counts = make_regions(args.out, args.gff, args.fasta, args.length, args.cap, args.margin, args.seed)
    print(f"{args.out}: " + ", ".join(f"{label} {n}" for label, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
