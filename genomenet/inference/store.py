"""The embedding file: one HDF5 file (h5py; chunked, gzip) that any HDF5 reader opens without genomenet.

Layout (`genomenet-embeddings/1`); rows are the output units, regions the input intervals:

| path | shape, type | what |
|---|---|---|
| `/embeddings` | (rows, d) float32 or float16 | pooled hidden states; NaN for a row with no real (non-N) base |
| `/rows/region` | (rows,) int64 | index into `/regions` |
| `/rows/start`, `/rows/end` | (rows,) int64 | the row's bases on the genome, 0-based half-open (BED) |
| `/rows/bases` | (rows,) int64 | real bases pooled into the row |
| `/regions/chrom`, `/regions/strand`, `/regions/name` | (regions,) UTF-8 strings | the input intervals |
| `/regions/start`, `/regions/end` | (regions,) int64 | 0-based half-open |
| `/regions/row_start`, `/regions/row_count` | (regions,) int64 | the region's rows, `row_start` onwards |

Root attributes: `format`, `genomenet_version`, `model_sha256` (weights), `model_config` (JSON: backbone, objective,
k-mer size, training window), `fasta_name`, `fasta_sha256`, `regions_name`, `regions_sha256`, `options` (JSON), and
`manifest` (JSON of all of these: what a rerun into the same file must match). A region's rows follow its reading
direction: on the minus strand the first row holds its last bases.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from genomenet.data.intervals import Region
from genomenet.errors import InputFileError

FORMAT = "genomenet-embeddings/1"
CHUNK_ELEMENTS = 1 << 18
"""Values per HDF5 chunk of /embeddings (1 MiB in float32)."""


class Embeddings(NamedTuple):
    """What `read_embeddings` returns: the rows' vectors, their coordinate table, and the file's metadata."""

    embeddings: np.ndarray
    """(rows, d)."""
    coords: np.ndarray
    """Structured (rows,): chrom, start, end, strand, name (the region's), region (its index), bases."""
    metadata: dict
    """Root attributes, with the JSON ones decoded."""


def read_embeddings(path: str | os.PathLike, rows: slice | None = None) -> Embeddings:
    """Embeddings, coordinates and metadata of an embedding file (all rows, or a slice of them)."""
    import h5py

    rows = rows or slice(None)
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise InputFileError(f"{path}: not a genomenet embedding file (format {f.attrs.get('format')!r})")
            values = f["embeddings"][rows]
            region = f["rows/region"][rows]
            regions = {key: f[f"regions/{key}"][:] for key in ("chrom", "strand", "name")}
            coords = np.zeros(len(region), dtype=[("chrom", object), ("start", np.int64), ("end", np.int64),
                                                  ("strand", "U1"), ("name", object), ("region", np.int64),
                                                  ("bases", np.int64)])
            for key in ("chrom", "strand", "name"):
                coords[key] = np.array([s.decode() for s in regions[key]], dtype=object)[region]
            for key in ("start", "end", "bases"):
                coords[key] = f[f"rows/{key}"][rows]
            coords["region"] = region
            metadata = {key: _decode(key, value) for key, value in f.attrs.items()}
    except OSError as err:
        raise InputFileError(f"{path}: cannot read it as HDF5 ({err})") from None
    return Embeddings(values, coords, metadata)


def _decode(key: str, value):
    if key in ("manifest", "model_config", "options") and isinstance(value, str):
        return json.loads(value)
    return value


def is_finished(out: Path, manifest: dict) -> bool:
    """True when `out` is this job's finished file; a one-line error when `out` holds something else."""
    if not out.exists():
        return False
    import h5py

    try:
        with h5py.File(out, "r") as f:
            found = f.attrs.get("manifest")
    except OSError:
        raise InputFileError(f"{out}: exists and is not an HDF5 file; delete it or choose another --out") from None
    if found is None:
        raise InputFileError(f"{out}: exists and is not a genomenet output; delete it or choose another --out")
    if json.loads(found) != manifest:
        from genomenet.inference.parts import manifest_mismatch

        diff = manifest_mismatch(json.loads(found), manifest)
        raise InputFileError(f"{out}: exists and was made with other inputs or options ({diff}); "
                             "delete it or choose another --out")
    return True


class RowWriter:
    """Writes rows in order into chunk-aligned blocks of the HDF5 datasets, so compressed chunks are written once."""

    def __init__(self, embeddings, bases, block_rows: int, dtype):
        self.embeddings, self.bases, self.block, self.dtype = embeddings, bases, block_rows, dtype
        self.next, self.values, self.counts = 0, [], []

    def add(self, values: np.ndarray, counts: np.ndarray) -> None:
        self.values.append(values.astype(self.dtype))
        self.counts.append(counts)
        if sum(len(c) for c in self.counts) >= self.block:
            self._flush(final=False)

    def close(self) -> None:
        self._flush(final=True)

    def _flush(self, final: bool) -> None:
        if not self.counts:
            return
        values, counts = np.concatenate(self.values), np.concatenate(self.counts)
        n = len(counts) if final else len(counts) // self.block * self.block
        self.embeddings[self.next : self.next + n] = values[:n]
        self.bases[self.next : self.next + n] = counts[:n]
        self.next += n
        self.values, self.counts = ([values[n:]], [counts[n:]]) if n < len(counts) else ([], [])


def write(out: Path, parts, n_chunks: int, regions: list[Region], row_starts: np.ndarray, options, d: int,
          attrs: dict) -> None:
    """Assemble the parts (in chunk order) into `out`, via a temporary file renamed at the end."""
    import h5py

    tmp = out.with_name(f".{out.name}.tmp")
    n_rows = int(row_starts[-1])
    block = max(1, CHUNK_ELEMENTS // d)
    dtype = np.float16 if options.dtype == "float16" else np.float32
    with h5py.File(tmp, "w") as f:
        dataset = dict(compression="gzip", compression_opts=4, shuffle=True, track_times=False)
        emb = f.create_dataset("embeddings", (n_rows, d), dtype=dtype, chunks=(min(block, max(n_rows, 1)), d),
                               **dataset)
        bases = f.create_dataset("rows/bases", (n_rows,), dtype=np.int64, chunks=(max(1, min(n_rows, 1 << 16)),),
                                 **dataset)
        writer = RowWriter(emb, bases, block, dtype)
        _combine_parts(parts, n_chunks, n_rows, options.pooling, writer)
        _write_row_coords(f, regions, row_starts, options, dataset)
        _write_regions(f, regions, row_starts, dataset)
        meta = json.loads(attrs["manifest"])
        for key in ("model_sha256", "fasta_name", "fasta_sha256"):
            f.attrs[key] = meta[key]
        f.attrs["regions_name"] = meta["regions_name"] or ""
        f.attrs["regions_sha256"] = meta["regions_sha256"] or ""
        f.attrs["model_config"] = json.dumps(meta["model_config"], sort_keys=True)
        f.attrs["options"] = json.dumps(meta["options"], sort_keys=True)
        for key, value in attrs.items():
            f.attrs[key] = value
    os.replace(tmp, out)


def _combine_parts(parts, n_chunks: int, n_rows: int, pooling: str, writer: RowWriter) -> None:
    """Add up partial rows part by part; a row is written once no later part touches it (rows only grow)."""
    pending: dict[int, tuple[np.ndarray, int]] = {}
    nxt = parts.load(0) if n_chunks else None
    for i in range(n_chunks):
        part, nxt = nxt, parts.load(i + 1) if i + 1 < n_chunks else None
        for row, pooled, count in zip(part["rows"].tolist(), part["pooled"], part["counts"].tolist()):
            if row in pending:
                old, old_count = pending[row]
                pooled = old + pooled if pooling == "mean" else np.maximum(old, pooled)
                count += old_count
            pending[row] = (pooled, count)
        limit = int(nxt["rows"].min()) if nxt is not None and len(nxt["rows"]) else n_rows
        _emit(pending, writer, limit, pooling)
    _emit(pending, writer, n_rows, pooling)
    writer.close()


def _emit(pending: dict, writer: RowWriter, limit: int, pooling: str) -> None:
    """Write every row before `limit`, NaN for rows no part filled."""
    d = writer.embeddings.shape[1]
    done = sorted(r for r in pending if r < limit)
    start = writer.next + sum(len(c) for c in writer.counts)
    for row in done + [limit]:
        if row > start:  # rows no chunk touched (bases past a chromosome's last whole k-mer)
            gap = min(row, limit) - start
            writer.add(np.full((gap, d), np.nan), np.zeros(gap, dtype=np.int64))
        if row == limit:
            break
        pooled, count = pending.pop(row)
        value = (pooled / count if pooling == "mean" else pooled) if count else np.full(d, np.nan)
        writer.add(value[None], np.array([count], dtype=np.int64))
        start = row + 1


def _write_row_coords(f, regions: list[Region], row_starts: np.ndarray, options, dataset: dict) -> None:
    n_rows = int(row_starts[-1])
    chunks = (max(1, min(n_rows, 1 << 16)),)
    names = ("region", "start", "end")
    out = {key: f.create_dataset(f"rows/{key}", (n_rows,), dtype=np.int64, chunks=chunks, **dataset) for key in names}
    for index, region in enumerate(regions):
        first = int(row_starts[index])
        count = int(row_starts[index + 1]) - first
        for lo in range(0, count, 1 << 20):  # blocks of rows: a per-base chromosome is not one array
            hi = min(count, lo + (1 << 20))
            starts, ends = row_bounds(region, options, np.arange(lo, hi))
            out["region"][first + lo : first + hi] = index
            out["start"][first + lo : first + hi] = starts
            out["end"][first + lo : first + hi] = ends


def row_bounds(region: Region, options, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Genomic [start, end) of a region's rows (numbered in its reading direction)."""
    if options.per == "region":
        return np.full(len(rows), region.start), np.full(len(rows), region.end)
    lo = rows * options.bin_size
    hi = np.minimum(lo + options.bin_size, region.length)
    if region.strand == "-":
        return region.end - hi, region.end - lo
    return region.start + lo, region.start + hi


def _write_regions(f, regions: list[Region], row_starts: np.ndarray, dataset: dict) -> None:
    import h5py

    text = h5py.string_dtype("utf-8")
    columns = {
        "chrom": ([r.chrom for r in regions], text),
        "strand": ([r.strand for r in regions], text),
        "name": ([r.name for r in regions], text),
        "start": ([r.start for r in regions], np.int64),
        "end": ([r.end for r in regions], np.int64),
        "row_start": (row_starts[:-1], np.int64),
        "row_count": (np.diff(row_starts), np.int64),
    }
    for key, (values, dtype) in columns.items():
        f.create_dataset(f"regions/{key}", data=np.asarray(values, dtype=object if dtype is text else dtype),
                         dtype=dtype, track_times=False)
