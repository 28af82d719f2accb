"""Which stretches of a genome an inference command reads: the regions of a BED file, or every chromosome whole,
checked against the FASTA before any model runs."""

from __future__ import annotations

import hashlib
from pathlib import Path

from genomenet.data.cache import PreparedGenome
from genomenet.data.intervals import Region, read_bed_regions
from genomenet.errors import InputFileError


def target_regions(genome: PreparedGenome, bed: str | Path | None, k: int = 1) -> list[Region]:
    """The BED's records (checked against the FASTA's chromosomes and lengths), or one region per chromosome,
    named after it, on '+'. Chromosomes and regions shorter than one k-mer token are refused."""
    if bed is None:
        regions = [Region(name, 0, length, name, "+") for name, length in genome.lengths.items()]
    else:
        regions = read_bed_regions(bed, genome.lengths)
    for number, region in enumerate(regions, start=1):
        if genome.lengths[region.chrom] < k:
            where = f"{bed}: record {number}" if bed else f"{genome.source['path']}: record '{region.chrom}'"
            raise InputFileError(f"{where}: chromosome '{region.chrom}' is shorter than one {k}-mer token")
    return regions


def regions_sha256(regions: list[Region]) -> str:
    """SHA-256 of the regions' records (chrom, start, end, name, strand), whatever file they came from (plain, gzip
    or a pipe, which cannot be read twice): what a resumed job must match."""
    digest = hashlib.sha256()
    for r in regions:
        digest.update(f"{r.chrom}\t{r.start}\t{r.end}\t{r.name}\t{r.strand}\n".encode())
    return digest.hexdigest()


def file_sha256(path: str | Path, block: int = 1 << 22) -> str:
    """SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()
