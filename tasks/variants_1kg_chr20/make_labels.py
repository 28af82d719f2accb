"""Rare vs common 1000 Genomes variants on human chr20 1-4 Mb, labelled for `genomenet score-variants --labels`.

Label 1 (rare): allele frequency below 0.5% among the file's 300 samples (600 haplotypes, so AC <= 2); label 0
(common): above 5%. Variants in between, and multi-allelic records, are left out. A seeded subset of `--per-class`
variants per class keeps the CPU run short; `--per-class 0` keeps them all. Each label row also says whether the
variant lies in a RefSeq exon (hg19_refseqexon.bed.gz), for the stratified table.

Writes into --out-dir: `subset.vcf.gz` (+ .tbi; the chosen records, unchanged), `labels.tsv` (chrom pos ref alt label
exon), `heldout.bed` (the scored span widened by 100 kb: the backbone's pre-training leaves it out).

    python tasks/variants_1kg_chr20/make_labels.py
"""

from __future__ import annotations

import argparse
import gzip
import random
from pathlib import Path

import numpy as np
import pysam

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
VCF = SHARED / "variants" / "1kg_phase3_chr20_1-4Mb.vcf.gz"
EXONS = SHARED / "annotations" / "hg19_refseqexon.bed.gz"
RARE, COMMON, MARGIN = 0.005, 0.05, 100_000


def exon_mask(chrom: str, length: int) -> np.ndarray:
    """True on bases inside any RefSeq exon of `chrom` (annotation names carry a 'chr' prefix)."""
    mask = np.zeros(length, dtype=bool)
    with gzip.open(EXONS, "rt") as handle:
        for line in handle:
            fields = line.split("\t")
            if fields[0].removeprefix("chr") == chrom:
                mask[int(fields[1]):min(int(fields[2]), length)] = True
    return mask


def labelled_records(vcf: pysam.VariantFile) -> list[tuple[pysam.VariantRecord, int]]:
    chosen = []
    for record in vcf:
        if len(record.alts) != 1:
            continue
        af = record.info["AF"][0]
        if af < RARE or af > COMMON:
            chosen.append((record, int(af < RARE)))
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=Path("runs/tasks/variants_1kg_chr20"))
    parser.add_argument("--per-class", type=int, default=1500, help="variants per class (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    vcf = pysam.VariantFile(str(VCF))
    records = labelled_records(vcf)
    rng = random.Random(args.seed)
    keep = []
    for label in (0, 1):
        group = [i for i, (_, y) in enumerate(records) if y == label]
        keep += group if args.per_class == 0 else rng.sample(group, min(args.per_class, len(group)))
    keep.sort()
    chrom = records[0][0].chrom
    last = max(r.stop for r, _ in records)
    exons = exon_mask(chrom, last + 1)
    plain = args.out_dir / "subset.vcf"
    with pysam.VariantFile(str(plain), "w", header=vcf.header) as out:
        for i in keep:
            out.write(records[i][0])
    pysam.tabix_index(str(plain), preset="vcf", force=True)  # bgzips to subset.vcf.gz, removes subset.vcf
    with open(args.out_dir / "labels.tsv", "w") as handle:
        handle.write("chrom\tpos\tref\talt\tlabel\texon\n")
        for i in keep:
            r, y = records[i]
            handle.write(f"{r.chrom}\t{r.pos}\t{r.ref}\t{r.alts[0]}\t{y}\t{int(exons[r.start:r.stop].any())}\n")
    first = min(r.start for r, _ in records)
    (args.out_dir / "heldout.bed").write_text(f"{chrom}\t{max(0, first - MARGIN)}\t{last + MARGIN}\n")
    rare = sum(records[i][1] for i in keep)
    in_exon = sum(int(exons[records[i][0].start:records[i][0].stop].any()) for i in keep)
    print(f"labelled: {len(records)} records ({sum(y for _, y in records)} rare, "
          f"{sum(1 - y for _, y in records)} common); kept {len(keep)} ({rare} rare, {len(keep) - rare} common), "
          f"{in_exon} in RefSeq exons; held out of pre-training: {chrom}:{max(0, first - MARGIN)}-{last + MARGIN}")


if __name__ == "__main__":
    main()
