"""Resumable work: each finished chunk of a job is one file in `OUT.parts/`, written whole or not at all.

A job (an `embed` or `track` run) is a fixed list of chunks that depends only on its inputs and options, so a rerun
of the same command sees the same chunks, skips the ones whose part file exists and computes the rest. Parts are
written to a temporary name, synced and renamed, so a process killed at any moment (SIGKILL, power loss) leaves
whole parts or none. `manifest.json` records what the job is (model checksum, FASTA checksum, options): a rerun with
anything different is refused instead of mixed in. The final output is assembled from the parts in chunk order,
which makes it the same file whether the run was interrupted or not, and whichever process computed which chunk.

Several processes (torchrun, or any launcher that sets RANK and WORLD_SIZE) split the chunks round robin; rank 0
waits for all parts and assembles the output. With sequence parallelism, groups of processes share each window and
the groups split the chunks.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from genomenet.errors import ConfigError, InputFileError

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


@dataclass
class Workers:
    """How the processes of a job share it: each worker is one process, or a sequence group of processes that run
    every window split among them (its first rank saves the worker's parts)."""

    rank: int
    index: int
    count: int
    group: Any = None

    @property
    def leader(self) -> bool:
        import torch.distributed as dist

        return self.group is None or dist.get_rank(self.group) == 0

    def barrier(self) -> None:
        import torch.distributed as dist

        if self.group is not None:
            dist.barrier()


def join_workers(sequence_parallel: int, device) -> Workers:
    """This process's place in the job; with sequence_parallel > 1, the process group (gloo on CPU, NCCL on GPUs)
    is set up from torchrun's environment and consecutive ranks form sequence groups."""
    rank, world = rank_and_world()
    if sequence_parallel < 1 or world % sequence_parallel:
        raise ConfigError(f"--sequence-parallel {sequence_parallel} must divide the {world} processes "
                          "(launch with torchrun --nproc-per-node N)")
    if sequence_parallel == 1:
        return Workers(rank, rank, world)
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://")
    groups = [dist.new_group(list(range(g, g + sequence_parallel))) for g in range(0, world, sequence_parallel)]
    return Workers(rank, rank // sequence_parallel, world // sequence_parallel, groups[rank // sequence_parallel])


def run_chunks(parts: PartStore, sizes: list[int], workers: Workers, compute, desc: str, progress: bool) -> bool:
    """Compute and save this worker's missing chunks (`compute(i)` -> arrays of part i; `sizes[i]`: its bases, for
    the progress bar). Returns True on the rank that then assembles the output, once every part is there."""
    mine = [i for i in my_chunks(len(sizes), workers.index, workers.count) if not parts.done(i)]
    workers.barrier()  # the ranks of a group agree on the chunks before any is saved
    shown = progress and workers.leader
    label = desc + (f" (worker {workers.index + 1}/{workers.count})" if workers.count > 1 else "")
    with tqdm(total=sum(sizes[i] for i in mine), unit="bp", unit_scale=True, desc=label, disable=not shown,
              file=sys.stderr) as bar:
        for i in mine:
            arrays = compute(i)
            if workers.leader:
                parts.save(i, arrays)
            bar.update(sizes[i])
    if workers.rank != 0:
        return False
    parts.wait_for(len(sizes))
    return True
