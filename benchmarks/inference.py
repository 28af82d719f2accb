"""Inference benchmark: `genomenet embed` throughput, peak memory against genome size, and resume after SIGKILL.

    python benchmarks/inference.py                     # all three sections; whole chr20 is ~30 min on 2 cores
    python benchmarks/inference.py --only throughput --batch-sizes 8 32
    python benchmarks/inference.py --only resume --devices cpu

Every figure is of `genomenet embed --per tile` run as a child process, as a user runs it. The genomes are prepared
first into a cache in the work folder, so no figure includes `prepare`. "Startup" is a rerun of the same command on
its finished output (imports, model load, cache and FASTA checks, then "already complete"); throughput is the bases
over the wall time less that startup. Peak RSS is the child's own ru_maxrss (os.wait4); peak anonymous RSS (the
heap, without file pages such as the memmapped genome) is sampled from /proc. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHR20 = REPO.parent / "shared" / "data" / "genomes" / "grch37_chr20.fa.gz"
SLICE = ("20", 30_000_000, 31_000_000)
"""1 Mb of chr20 without N runs: the small input of every section."""
POLL_S = 0.1


@dataclass
class Run:
    """One finished child process: wall seconds, CPU seconds (user + system), peak resident set size, and the
    1-minute load average when it ended (other work on the machine inflates wall time, CPU time less so)."""

    seconds: float
    cpu_seconds: float
    peak_mib: float
    load: float
    peak_anon_mib: float = 0.0
    """Largest anonymous RSS (heap, not the memmapped genome) seen by sampling /proc every POLL_S seconds."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=REPO / "runs" / "quickstart" / "model")
    parser.add_argument("--fasta", type=Path, default=CHR20, help="the memory section's whole genome; "
                        "must hold record 20, which the 1 Mb slice is cut from")
    parser.add_argument("--only", choices=("throughput", "memory", "resume"), action="append",
                        help="run this section (repeatable); default all")
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when available")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32], help="throughput section")
    parser.add_argument("--batch-size", type=int, default=8, help="memory and resume sections")
    parser.add_argument("--kill-at", type=float, default=0.5, help="resume: SIGKILL at this fraction of a run")
    parser.add_argument("--trials", type=int, default=3, help="resume: kill-and-rerun trials, one row each")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep inputs, cache and outputs here")
    return parser.parse_args(argv)


def machine(devices: list[str]) -> str:
    """The line that says where the figures came from."""
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    gpu = f", GPU {torch.cuda.get_device_name()}" if any(d.startswith("cuda") for d in devices) else ""
    threads = f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    return f"{cpu}, {os.cpu_count()} cores, {threads}{gpu}; genomenet at {commit()}"


def commit() -> str:
    """The code the figures are of: HEAD, marked when genomenet/ has uncommitted changes."""
    git = ["git", "-C", str(REPO)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "genomenet"], capture_output=True, text=True).stdout
    return (head or "unknown commit") + (" + uncommitted changes" if dirty.strip() else "")


def write_slice(fasta: Path, cache: Path, out: Path) -> Path:
    """The SLICE of `fasta` as its own FASTA file, read through the prepared cache (no index beside shared data)."""
    from genomenet.data.cache import prepare

    chrom, start, end = SLICE
    bases = prepare(fasta, cache).sequence(chrom, start, end)
    lines = [f">{chrom}_{start}_{end}"] + [bases[i : i + 60] for i in range(0, len(bases), 60)]
    out.write_text("\n".join(lines) + "\n")
    prepare(out, cache)
    return out


def embed_command(model: Path, fasta: Path, out: Path, cache: Path, device: str, batch: int) -> list[str]:
    """The command line of a fresh run into `out`: an earlier output and its parts are removed first."""
    out.unlink(missing_ok=True)
    shutil.rmtree(out.with_name(out.name + ".parts"), ignore_errors=True)
    return [sys.executable, "-m", "genomenet.cli", "embed", "--model", str(model), "--fasta", str(fasta),
            "--out", str(out), "--per", "tile", "--quiet", "--cache-dir", str(cache), "--device", device,
            "--batch-size", str(batch)]


def start(command: list[str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as handle:
        return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)


def rss_anon_mib(pid: int) -> float:
    """Anonymous resident memory of a live process: ru_maxrss also counts the genome's memmapped pages."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    return next((int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("RssAnon:")), 0.0)


def finish(child: subprocess.Popen, started: float, log: Path, check: bool = True) -> Run:
    """Reap the child with os.wait4: its own peak RSS, unlike RUSAGE_CHILDREN (the largest of all children)."""
    anon = 0.0
    while not (reaped := os.wait4(child.pid, os.WNOHANG))[0]:
        anon = max(anon, rss_anon_mib(child.pid))
        time.sleep(POLL_S)
    _, status, usage = reaped
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if check and child.returncode:
        why = f"killed by signal {-child.returncode}" if child.returncode < 0 else f"exit {child.returncode}, see {log}"
        sys.exit(f"{' '.join(child.args)}: {why}")
    cpu = usage.ru_utime + usage.ru_stime
    return Run(seconds, cpu, usage.ru_maxrss / 1024, os.getloadavg()[0], anon)  # ru_maxrss is in KiB on Linux


def run(command: list[str], log: Path) -> Run:
    started = time.perf_counter()
    return finish(start(command, log), started, log)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def table(header: tuple[str, ...], rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def throughput(args: argparse.Namespace, work: Path, small: Path) -> str:
    """Bases per second of the embedding itself, per device and batch size, on the 1 Mb slice."""
    rows = []
    for device in args.devices:
        for batch in args.batch_sizes:
            out = work / f"throughput-{device.replace(':', '')}-{batch}.h5"
            command = embed_command(args.model, small, out, work / "cache", device, batch)
            full, startup = run(command, work / "log"), run(command, work / "log")
            bases = SLICE[2] - SLICE[1]
            rows.append((device, batch, f"{full.seconds:.1f}", f"{startup.seconds:.1f}",
                         f"{bases / (full.seconds - startup.seconds):,.0f}", f"{full.cpu_seconds:.0f}",
                         f"{bases / (full.cpu_seconds - startup.cpu_seconds):,.0f}", f"{full.load:.1f}"))
    return table(("device", "batch", "wall s", "startup s", "bases/s (wall - startup)", "CPU s",
                  "bases per CPU s", "load avg"), rows)


def memory(args: argparse.Namespace, work: Path, small: Path) -> str:
    """Peak RSS for 1 Mb and the whole genome: the chunked pipeline should make them equal within 10%."""
    from genomenet.data.cache import prepare

    rows, runs = [], []
    for name, fasta in (("1 Mb slice", small), (f"{args.fasta.name} whole", args.fasta)):
        command = embed_command(args.model, fasta, work / f"memory-{fasta.stem}.h5", work / "cache",
                                args.devices[0], args.batch_size)
        full, startup = run(command, work / "log"), run(command, work / "log")
        bases = prepare(fasta, work / "cache").total_length
        runs.append(full)
        rate = bases / (full.seconds - startup.seconds)
        rows.append((name, f"{bases:,}", f"{full.seconds:.0f}", f"{rate:,.0f}", f"{full.load:.1f}",
                     f"{startup.peak_mib:.0f}", f"{full.peak_mib:.0f}", f"{full.peak_anon_mib:.0f}"))
    header = ("input", "bases", "wall s", "bases/s", "load avg", "startup RSS MiB", "peak RSS MiB", "peak anon MiB")
    return table(header, rows) + "\n\n" + verdict(runs[0], runs[1])


def verdict(small: Run, whole: Run) -> str:
    """Whole genome over slice, for all resident memory and for the heap alone (without memmapped genome pages)."""
    total, anon = whole.peak_mib / small.peak_mib, whole.peak_anon_mib / small.peak_anon_mib
    ok = "yes" if abs(total - 1) <= 0.10 else "NO"
    return f"whole / slice peak RSS: {total:.3f} (target within 10%: {ok}); peak anonymous RSS: {anon:.3f}"


def resume(args: argparse.Namespace, work: Path, small: Path) -> str:
    """An uninterrupted run against one SIGKILLed at `--kill-at` of its time and rerun: same bytes, less time."""
    rows = [resume_trial(args, work, small) for _ in range(args.trials)]
    return table(("uninterrupted s", "killed after s", "parts saved", "resumed s", "killed + resumed s",
                  "identical"), rows)


def resume_trial(args: argparse.Namespace, work: Path, small: Path) -> tuple:
    """One row of the table. Trials repeat because nondeterminism, where there is some, shows in some runs only."""
    whole, killed_out = work / "resume-whole.h5", work / "resume-killed.h5"
    full = run(embed_command(args.model, small, whole, work / "cache", args.devices[0], args.batch_size), work / "log")
    command = embed_command(args.model, small, killed_out, work / "cache", args.devices[0], args.batch_size)
    started = time.perf_counter()
    child = start(command, work / "log")
    time.sleep(full.seconds * args.kill_at)
    child.send_signal(signal.SIGKILL)
    killed = finish(child, started, work / "log", check=False)
    parts = len(list((work / "resume-killed.h5.parts").glob("*.npz")))
    rerun = run(command, work / "log")
    same = "yes" if sha256(whole) == sha256(killed_out) else difference(whole, killed_out)
    return (f"{full.seconds:.1f}", f"{killed.seconds:.1f}", parts, f"{rerun.seconds:.1f}",
            f"{killed.seconds + rerun.seconds:.1f}", same)


def difference(a: Path, b: Path) -> str:
    """How two outputs of one job differ when their bytes do: which rows of /embeddings, and by how much."""
    import h5py
    import numpy as np

    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        x, y = fa["embeddings"][()], fb["embeddings"][()]
    rows = np.flatnonzero(~((x == y) | (np.isnan(x) & np.isnan(y))).all(axis=1))
    if not len(rows):
        return "NO (same /embeddings; other bytes differ)"
    largest = np.nanmax(np.abs(x[rows] - y[rows]))
    return f"NO ({len(rows)} rows of /embeddings differ, rows {rows[0]}-{rows[-1]}, max abs {largest:.1e})"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.model.exists():
        print(f"{args.model}: no model; train one with `bash scripts/quickstart.sh` or pass --model", file=sys.stderr)
        return 2
    if not args.fasta.exists():
        print(f"{args.fasta}: not found; pass --fasta", file=sys.stderr)
        return 2
    import torch

    args.devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"machine: {machine(args.devices)}", flush=True)
    keep = contextlib.nullcontext(args.work_dir) if args.work_dir else None
    with keep or tempfile.TemporaryDirectory(prefix="genomenet-bench-") as folder:
        work = Path(folder)
        work.mkdir(parents=True, exist_ok=True)
        small = write_slice(args.fasta, work / "cache", work / "chr20_1mb.fa")
        for name, section in (("throughput", throughput), ("memory", memory), ("resume", resume)):
            if not args.only or name in args.only:
                print(f"\n## {name} ({section.__doc__})\n\n{section(args, work, small)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
