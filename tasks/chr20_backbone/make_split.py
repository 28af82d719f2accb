"""The held-out blocks of the GPU-trained chr20 backbone: every chr20 task's evaluation sequence, so one backbone
serves them all. test.bed = promoters/splice test blocks + the variants' scored span (both never trained on);
val.bed = promoters/splice validation blocks minus that span (segment_genes uses the same 1 Mb block split).

    python tasks/promoters_chr20/make_regions.py && python tasks/variants_1kg_chr20/make_labels.py
    python tasks/chr20_backbone/make_split.py
"""

from __future__ import annotations

from pathlib import Path

from genomenet.data.intervals import Interval, merge, read_bed, subtract

ROOT = Path(__file__).resolve().parents[2]
PROMOTERS, VARIANTS = ROOT / "runs/tasks/promoters_chr20", ROOT / "runs/tasks/variants_1kg_chr20"
OUT = ROOT / "runs/tasks/chr20_backbone"


def write_bed(path: Path, intervals: list[Interval]) -> None:
    path.write_text("".join(f"{iv.chrom}\t{iv.start}\t{iv.end}\n" for iv in intervals))


def main() -> None:
    heldout = read_bed(VARIANTS / "heldout.bed")
    test = merge(read_bed(PROMOTERS / "test.bed") + heldout)
    val = subtract(read_bed(PROMOTERS / "val.bed"), test)
    OUT.mkdir(parents=True, exist_ok=True)
    write_bed(OUT / "test.bed", test)
    write_bed(OUT / "val.bed", val)
    size = lambda rows: sum(iv.length for iv in rows) / 1e6
    print(f"{OUT}: test {size(test):.1f} Mb in {len(test)} blocks, val {size(val):.1f} Mb in {len(val)} blocks")


if __name__ == "__main__":
    main()
