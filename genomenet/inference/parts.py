"""Resumable work: each finished chunk of a job is one file in `OUT.parts/`, written whole or not at all.

A job (an `embed` or `track` run) is a fixed list of chunks that depends only on its inputs and options, so a rerun
of the same command sees the same chunks, skips the ones whose part file exists and computes the rest. Parts are
written to a temporary name, synced and renamed, so a process killed at any moment (SIGKILL, power loss) leaves
whole parts or none. `manifest.json` records what the job is (model checksum, FASTA checksum, options): a rerun with
anything different is refused instead of mixed in. The final output is assembled from the parts in chunk order,
which makes it the same file whether the run was interrupted or not, and whichever process computed which chunk.

Several processes (torchrun, or any launcher that sets RANK and WORLD_SIZE) split the chunks round robin; rank 0
waits for all parts and assembles the output.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from genomenet.errors import InputFileError

MANIFEST = "manifest.json"


def parts_dir(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves the old file or the new one, never a part of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def manifest_mismatch(found: dict, wanted: dict, prefix: str = "") -> str:
    """The first entry that differs between two manifests, said for a person (`options.layer was 4, now 2`)."""
    for key in sorted(set(found) | set(wanted)):
        old, new = found.get(key), wanted.get(key)
        if old != new:
            if isinstance(old, dict) and isinstance(new, dict):
                return manifest_mismatch(old, new, f"{prefix}{key}.")
            return f"{prefix}{key} was {old!r}, now {new!r}"
    return ""


class PartStore:
    """The parts folder of one output file."""

    def __init__(self, out: Path, manifest: dict):
        self.out, self.dir, self.manifest = Path(out), parts_dir(Path(out)), manifest

    def open(self) -> None:
        """Create the folder with its manifest, or check that an existing one is of the same job."""
        path = self.dir / MANIFEST
        if path.is_file():
            found = json.loads(path.read_text())
            if found != self.manifest:
                raise InputFileError(
                    f"{self.out}: an unfinished run with other inputs or options is in {self.dir} "
                    f"({manifest_mismatch(found, self.manifest)}); rerun it as it was, or delete that folder"
                )
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(self.manifest, indent=1, sort_keys=True).encode())

    def path(self, index: int) -> Path:
        return self.dir / f"{index:07d}.npz"

    def done(self, index: int) -> bool:
        return self.path(index).is_file()

    def save(self, index: int, arrays: dict[str, np.ndarray]) -> None:
        import io

        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        write_atomic(self.path(index), buffer.getvalue())

    def load(self, index: int) -> dict[str, np.ndarray]:
        with np.load(self.path(index), allow_pickle=False) as data:
            return {key: data[key] for key in data.files}

    def wait_for(self, count: int, timeout_s: float = 7 * 24 * 3600.0) -> None:
        """Block until all `count` parts exist (rank 0, while other ranks finish theirs)."""
        deadline = time.monotonic() + timeout_s
        while not all(self.done(i) for i in range(count)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.dir}: parts still missing after {timeout_s:.0f}s")
            time.sleep(0.5)

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes sharing the job (torch.distributed, else RANK/WORLD_SIZE)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def my_chunks(count: int, rank: int, world: int) -> list[int]:
    """The chunks this rank computes: every world-th one, from its rank."""
    return list(range(rank, count, world))
