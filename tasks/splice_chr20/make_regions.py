"""Splice donor vs acceptor vs decoy GT/AG on human chr20 (GRCh37): 2-base BED6 regions plus the split blocks.

Introns are the gaps between consecutive merged exons of one RefSeq gene (SAF, 1-based inclusive). A donor is the
intron's first two bases on the transcript strand, an acceptor its last two; only canonical GT..AG sites are kept.
Decoys are GT and AG dinucleotides inside the same genes that lie at least 50 bp from every annotated splice site,
so the motif alone never tells a class apart: the model has to read the context.

    python tasks/splice_chr20/make_regions.py [--out-dir runs/tasks/splice_chr20]
"""

from __future__ import annotations

import argparse
import gzip
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from genomenet.data.splits import SplitConfig, split_blocks, write_split_beds

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
FASTA = SHARED / "genomes" / "grch37_chr20.fa.gz"
SAF = SHARED / "annotations" / "hg19_refseq_exons_stranded.saf.gz"
CHROM = "20"
MIN_DECOY_DISTANCE = 50
SEED = 0
COMPLEMENT = bytes.maketrans(b"ACGTN", b"TGCAN")
Site = tuple[int, str, str]  # (0-based start of the dinucleotide, label, strand)


def read_chrom(path: Path, name: str) -> bytes:
    """The named FASTA record, uppercase; gzip reads bgzip, and no index is written beside the read-only file."""
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
    return b"".join(parts)


def read_exons(path: Path) -> dict[tuple[str, str], list[tuple[int, int]]]:
    """(GeneID, strand) -> the gene's chr20 exons as listed (all transcripts), 0-based half-open, sorted."""
    exons: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    with gzip.open(path, "rt") as handle:
        for line in handle:
            gene, chrom, start, end, strand = line.rstrip("\n").split("\t")[:5]
            if chrom.removeprefix("chr") == CHROM:
                exons[gene, strand].append((int(start) - 1, int(end)))
    return {key: sorted(spans) for key, spans in exons.items()}


def merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Union of sorted spans. Merging the exons of all of a gene's transcripts leaves only gaps that are introns of
    every transcript spanning them."""
    out: list[list[int]] = []
    for start, end in spans:
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(s, e) for s, e in out]


def exon_edges(exons: dict[tuple[str, str], list[tuple[int, int]]]) -> list[int]:
    """Where a splice dinucleotide would start next to every listed exon (2 bases before its start, right after its
    end), before merging: alternative sites inside merged exons are kept away from decoys too."""
    return sorted({p for spans in exons.values() for start, end in spans for p in (start - 2, end)})


def read_site(seq: bytes, start: int, strand: str) -> bytes:
    """The dinucleotide at [start, start+2) as read on `strand`."""
    pair = seq[start:start + 2]
    return pair.translate(COMPLEMENT)[::-1] if strand == "-" else pair


def splice_sites(genes: dict[tuple[str, str], list[tuple[int, int]]]) -> set[Site]:
    """Donor and acceptor dinucleotides of every intron (the 2 bases at each intron end); on '-' the donor is the
    intron's forward-strand end. Introns shorter than 4 bases have no separate donor and acceptor and are skipped."""
    sites = set()
    for (_, strand), exons in genes.items():
        for (_, intron_start), (intron_end, _) in zip(exons, exons[1:]):
            if intron_end - intron_start < 4:
                continue
            first, last = intron_start, intron_end - 2
            donor, acceptor = (first, last) if strand == "+" else (last, first)
            sites |= {(donor, "donor", strand), (acceptor, "acceptor", strand)}
    return sites


def canonical(sites: set[Site], seq: bytes) -> list[Site]:
    """Sites whose dinucleotide is GT (donor) or AG (acceptor) on the gene's strand; a position+strand annotated as
    both donor and acceptor (overlapping genes) is dropped as ambiguous."""
    motif = {"donor": b"GT", "acceptor": b"AG"}
    good = [s for s in sites if read_site(seq, s[0], s[2]) == motif[s[1]]]
    labels = Counter((pos, strand) for pos, _, strand in good)
    return sorted(s for s in good if labels[s[0], s[2]] == 1)


def decoys(genes, avoid: list[int], seq: bytes, count: int, rng: np.random.Generator) -> list[Site]:
    """`count` GT/AG dinucleotides (half each, on the gene's strand) inside gene spans, at least
    MIN_DECOY_DISTANCE bp from every position in `avoid` (annotated sites and exon edges of any gene and strand)."""
    arr = np.frombuffer(seq, dtype=np.uint8)
    near = np.zeros(len(arr) + 1, dtype=np.int32)
    for pos in avoid:
        near[max(pos - MIN_DECOY_DISTANCE + 1, 0)] += 1
        near[min(pos + MIN_DECOY_DISTANCE, len(arr))] -= 1
    allowed = np.cumsum(near[:-1]) == 0
    in_gene = {}
    for strand in "+-":
        diff = np.zeros(len(arr) + 1, dtype=np.int32)
        for exons in (e for (_, st), e in genes.items() if st == strand):
            diff[exons[0][0]] += 1
            diff[exons[-1][1] - 1] -= 1  # the dinucleotide [p, p+2) must fit inside the span
        in_gene[strand] = np.cumsum(diff[:-1])[:-1] > 0
    chosen: list[Site] = []
    for motif, n in ((b"GT", count // 2), (b"AG", count - count // 2)):
        pools = []
        for strand in "+-":
            forward = motif if strand == "+" else motif.translate(COMPLEMENT)[::-1]
            hit = (arr[:-1] == forward[0]) & (arr[1:] == forward[1]) & allowed[:-1] & in_gene[strand]
            pools.append(np.flatnonzero(hit))
        pick = rng.choice(len(pools[0]) + len(pools[1]), size=n, replace=False)
        chosen += [(int(pools[0][i]), "decoy", "+") if i < len(pools[0]) else
                   (int(pools[1][i - len(pools[0])]), "decoy", "-") for i in pick]
    return chosen


def self_check(rows: list[Site], seq: bytes) -> None:
    """Every donor reads GT and every acceptor AG on its strand (reverse complement on '-'); decoys read one of the
    two. Guards the strand and off-by-one arithmetic above."""
    expected = {"donor": (b"GT",), "acceptor": (b"AG",), "decoy": (b"GT", b"AG")}
    for pos, label, strand in rows:
        assert read_site(seq, pos, strand) in expected[label], (pos, label, strand, read_site(seq, pos, strand))


def make_regions(out_dir: Path) -> Counter:
    """Write regions.bed and the split BEDs into `out_dir`; returns rows per label."""
    rng = np.random.default_rng(SEED)
    seq = read_chrom(FASTA, CHROM)
    exons = read_exons(SAF)
    genes = {key: merge(spans) for key, spans in exons.items()}
    annotated = splice_sites(genes)
    sites = canonical(annotated, seq)
    print(f"{len(genes)} genes, {len(annotated)} annotated intron-end sites, {len(sites)} canonical GT/AG kept")
    avoid = sorted({p for p, _, _ in annotated} | set(exon_edges(exons)))
    rows = sorted(sites + decoys(genes, avoid, seq, len(sites), rng))
    self_check(rows, seq)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "regions.bed").write_text("".join(f"{CHROM}\t{p}\t{p + 2}\t{label}\t0\t{s}\n" for p, label, s in rows))
    blocks = split_blocks({CHROM: len(seq)}, SplitConfig(by="block", block_size=1_000_000, val_fraction=0.1,
                                                         test_fraction=0.2, seed=0))
    write_split_beds(blocks, out_dir)
    return Counter(label for _, label, _ in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out-dir", type=Path, default=Path("runs/tasks/splice_chr20"),
                        help="folder for regions.bed, split_blocks.bed, val.bed, test.bed")
    args = parser.parse_args(argv)
    counts = make_regions(args.out_dir)
    print(f"{args.out_dir / 'regions.bed'}: " + ", ".join(f"{label} {n}" for label, n in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
