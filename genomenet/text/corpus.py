"""A text corpus as train / validation / test byte ranges of memory-mapped files, split by the standard conventions.

- enwik8 and text8 (any file of exactly 100,000,000 bytes): the first 90M bytes train, the next 5M validate, the last
  5M test (the convention of the character-level language-modelling literature).
- Any other file: the first 90% of its bytes train, the next 5% validate, the last 5% test.
- A directory: WikiText's own split files (`wiki.train.raw`, `wiki.valid.raw`, `wiki.test.raw`, as in
  WikiText-103 raw and WikiText-2 raw).

Compressed files (`.gz`, `.bz2`, `.xz`, and a `.zip` holding one file, as enwik8 is distributed) are unpacked once
into the cache (`$GENOMENET_CACHE` or ~/.cache/genomenet, under `text/`) and memory-mapped from there.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genomenet.errors import InputFileError

STANDARD_SIZE = 100_000_000
"""enwik8 and text8: 90M / 5M / 5M."""
WIKITEXT_FILES = {"train": "wiki.train.raw", "val": "wiki.valid.raw", "test": "wiki.test.raw"}
SPLITS = ("train", "val", "test")
_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


@dataclass(frozen=True)
class ByteRange:
    """Bytes [offset, offset + length) of a file; opened lazily, so a DataLoader worker maps it itself."""

    path: Path
    offset: int
    length: int

    def array(self) -> np.ndarray:
        """The bytes as a read-only uint8 memory map (an empty array for an empty range)."""
        if self.length == 0:
            return np.zeros(0, dtype=np.uint8)
        return np.memmap(self.path, dtype=np.uint8, mode="r", offset=self.offset, shape=(self.length,))


@dataclass(frozen=True)
class TextCorpus:
    """The three splits of a corpus and the convention that made them (printed at the start of a run)."""

    source: Path
    splits: dict[str, ByteRange]
    convention: str

    def summary(self) -> str:
        sizes = ", ".join(f"{name} {self.splits[name].length:,}" for name in SPLITS)
        return f"text {self.source}: {self.convention}; bytes: {sizes}"


def open_corpus(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> TextCorpus:
    """The corpus at `path` (a file of bytes, possibly compressed, or a WikiText directory)."""
    path = Path(path)
    if path.is_dir():
        return _wikitext(path)
    if not path.is_file():
        raise InputFileError(f"data.path: {path}: no such file or directory")
    raw = unpacked(path, cache_dir)
    size = raw.stat().st_size
    if size == 0:
        raise InputFileError(f"data.path: {path}: the file is empty")
    if size == STANDARD_SIZE:
        cuts, convention = (90_000_000, 95_000_000), "enwik8/text8 convention: first 90M / next 5M / last 5M bytes"
    else:
        cuts, convention = (size * 90 // 100, size * 95 // 100), "first 90% / next 5% / last 5% of the bytes"
    bounds = (0, *cuts, size)
    splits = {name: ByteRange(raw, bounds[i], bounds[i + 1] - bounds[i]) for i, name in enumerate(SPLITS)}
    return TextCorpus(path, splits, convention)


def _wikitext(directory: Path) -> TextCorpus:
    missing = [name for name in WIKITEXT_FILES.values() if not (directory / name).is_file()]
    if missing:
        raise InputFileError(f"data.path: {directory}: a directory must hold WikiText's split files "
                             f"{', '.join(WIKITEXT_FILES.values())}; missing {', '.join(missing)}")
    splits = {split: ByteRange(directory / name, 0, (directory / name).stat().st_size)
              for split, name in WIKITEXT_FILES.items()}
    return TextCorpus(directory, splits, "WikiText's own train / valid / test files")


def text_cache(cache_dir: str | os.PathLike | None) -> Path:
    if cache_dir is None:
        cache_dir = os.environ.get("GENOMENET_CACHE") or Path.home() / ".cache" / "genomenet"
    return Path(cache_dir) / "text"


def unpacked(path: Path, cache_dir: str | os.PathLike | None = None) -> Path:
    """`path` itself when it is not compressed, else its unpacked copy in the cache (written once, atomically;
    keyed by the compressed file's name, size and modification time)."""
    suffix = path.suffix.lower()
    if suffix not in _OPENERS and suffix != ".zip":
        return path
    stat = path.stat()
    key = hashlib.sha1(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    out = text_cache(cache_dir) / f"{path.stem}-{key}"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with _open_compressed(path) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 22)
        os.replace(tmp, out)
    except (OSError, EOFError, lzma.LZMAError, zipfile.BadZipFile) as err:
        raise InputFileError(f"data.path: {path}: cannot unpack it ({type(err).__name__}: {err})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _open_compressed(path: Path):
    if path.suffix.lower() != ".zip":
        return _OPENERS[path.suffix.lower()](path, "rb")
    archive = zipfile.ZipFile(path)
    members = [info for info in archive.infolist() if not info.is_dir()]
    if len(members) != 1:
        raise InputFileError(f"data.path: {path}: a zip archive must hold exactly one file, it holds {len(members)}")
    return archive.open(members[0])
