"""Genomic intervals: strict BED reading (errors give file and line) and the set operations splits need."""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

from genomenet.errors import InputFileError


@dataclass(frozen=True, order=True)
class Interval:
    """A 0-based half-open interval [start, end) on one record, as in BED."""

    chrom: str
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


def read_bed(path: str | os.PathLike, lengths: dict[str, int] | None = None) -> list[Interval]:
    """Intervals of a BED file (plain or gzip; extra columns ignored; header, track and browser lines skipped).

    With `lengths`, an interval on an unknown record or past its record's end is an error naming the line.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such BED file")
    with open(path, "rb") as handle:
        opener = gzip.open if handle.read(2) == b"\x1f\x8b" else open
    with opener(path, "rt") as handle:
        intervals = [
            _parse_line(path, number, line, lengths)
            for number, line in enumerate(handle, start=1)
            if line.strip() and not line.startswith(("#", "track", "browser"))
        ]
    return intervals


def _parse_line(path: Path, number: int, line: str, lengths: dict[str, int] | None) -> Interval:
    fields = line.rstrip("\r\n").split("\t")
    where = f"{path}: line {number}"
    if len(fields) < 3:
        raise InputFileError(f"{where}: expected tab-separated 'chrom start end', got {line.strip()!r}")
    try:
        start, end = int(fields[1]), int(fields[2])
    except ValueError:
        raise InputFileError(f"{where}: start and end must be integers, got {fields[1]!r} {fields[2]!r}") from None
    chrom = fields[0]
    if not 0 <= start < end:
        raise InputFileError(f"{where}: interval {chrom}:{start}-{end} needs 0 <= start < end")
    if lengths is not None:
        if chrom not in lengths:
            raise InputFileError(f"{where}: chromosome '{chrom}' is not in the FASTA")
        if end > lengths[chrom]:
            raise InputFileError(
                f"{where}: interval {chrom}:{start}-{end} is outside its chromosome (length {lengths[chrom]})"
            )
    return Interval(chrom, start, end)


def merge(intervals: list[Interval]) -> list[Interval]:
    """Sorted, with overlapping or touching intervals joined."""
    merged: list[Interval] = []
    for iv in sorted(intervals):
        if merged and merged[-1].chrom == iv.chrom and iv.start <= merged[-1].end:
            last = merged.pop()
            iv = Interval(iv.chrom, last.start, max(last.end, iv.end))
        merged.append(iv)
    return merged


def subtract(regions: list[Interval], holes: list[Interval]) -> list[Interval]:
    """Parts of `regions` outside every hole (used to keep held-out intervals out of training)."""
    by_chrom: dict[str, list[Interval]] = {}
    for hole in merge(holes):
        by_chrom.setdefault(hole.chrom, []).append(hole)
    out = []
    for region in merge(regions):
        start = region.start
        for hole in by_chrom.get(region.chrom, []):
            if hole.end <= start or hole.start >= region.end:
                continue
            if hole.start > start:
                out.append(Interval(region.chrom, start, hole.start))
            start = max(start, hole.end)
        if start < region.end:
            out.append(Interval(region.chrom, start, region.end))
    return out
