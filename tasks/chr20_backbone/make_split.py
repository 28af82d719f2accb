"""The held-out blocks of the GPU-trained chr20 backbone: every chr20 task's evaluation sequence, so one backbone
serves them all. test.bed = promoters/splice test blocks + the variants' scored span (both never trained on);
val.bed = promoters/splice validation blocks minus that span (segment_genes uses the same 1 Mb block split).

    python tasks/promoters_chr20/make_regions.py && python tasks/variants_1kg_chr20/make_labels.py
    python tasks/chr20_backbone/make_split.py
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROMOTERS, VARIANTS = ROOT / "runs/tasks/promoters_chr20", ROOT / "runs/tasks/variants_1kg_chr20"
OUT = ROOT / "runs/tasks/chr20_backbone"


def read_bed(path: Path) -> list[tuple[str, int, int]]:
    rows = [line.split("\t")[:3] for line in path.read_text().splitlines() if line.strip()]
    return [(chrom, int(start), int(end)) for chrom, start, end in rows]


def merged(intervals: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    out: list[list] = []
    for chrom, start, end in sorted(intervals):
        if out and out[-1][0] == chrom and start <= out[-1][2]:
            out[-1][2] = max(out[-1][2], end)
        else:
            out.append([chrom, start, end])
    return [tuple(row) for row in out]


def minus(intervals: list[tuple[str, int, int]], cut: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    out = []
    for chrom, start, end in intervals:
        pieces = [(start, end)]
        for c_chrom, c_start, c_end in cut:
            if c_chrom != chrom:
                continue
            pieces = [(s, e) for a, b in pieces for s, e in ((a, min(b, c_start)), (max(a, c_end), b)) if s < e]
        out += [(chrom, s, e) for s, e in pieces]
    return out


def write_bed(path: Path, intervals: list[tuple[str, int, int]]) -> None:
    path.write_text("".join(f"{chrom}\t{start}\t{end}\n" for chrom, start, end in intervals))


def main() -> None:
    heldout = read_bed(VARIANTS / "heldout.bed")
    test = merged(read_bed(PROMOTERS / "test.bed") + heldout)
    val = minus(merged(read_bed(PROMOTERS / "val.bed")), test)
    OUT.mkdir(parents=True, exist_ok=True)
    write_bed(OUT / "test.bed", test)
    write_bed(OUT / "val.bed", val)
    size = lambda rows: sum(e - s for _, s, e in rows) / 1e6
    print(f"{OUT}: test {size(test):.1f} Mb in {len(test)} blocks, val {size(val):.1f} Mb in {len(val)} blocks")


if __name__ == "__main__":
    main()
