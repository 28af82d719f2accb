"""Inference benchmark: `genomenet embed` throughput, peak memory against genome size, and resume after SIGKILL.

    python benchmarks/inference.py                                # all three sections (the whole-chr20 run is long)
    python benchmarks/inference.py --only throughput --batch-sizes 8 32
    python benchmarks/inference.py --only resume --devices cpu

Every figure is of `genomenet embed --per tile` run as a child process, as a user runs it. The genomes are prepared
first into a cache in the work folder, so no figure includes `prepare`. "Startup" is a rerun of the same command on
its finished output (imports, model load, cache and FASTA checks, then "already complete"); throughput is the bases
over the wall time less that startup. Peak RSS is the child's own ru_maxrss (os.wait4). Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
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


@dataclass
class Run:
    """One finished child process: wall seconds and its peak resident set size."""

    seconds: float
    peak_mib: float


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=REPO / "runs" / "quickstart" / "model")
    parser.add_argument("--fasta", type=Path, default=CHR20, help="the whole genome of the memory section")
    parser.add_argument("--only", choices=("throughput", "memory", "resume"), action="append",
                        help="run this section (repeatable); default all")
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when available")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32], help="throughput section")
    parser.add_argument("--batch-size", type=int, default=8, help="memory and resume sections")
    parser.add_argument("--kill-at", type=float, default=0.5, help="resume: SIGKILL at this fraction of a run")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep inputs, cache and outputs here")
    return parser.parse_args(argv)


def machine(devices: list[str]) -> str:
    """The line that says where the figures came from."""
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    gpu = f", GPU {torch.cuda.get_device_name()}" if any(d.startswith("cuda") for d in devices) else ""
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads){gpu}"


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
    return [sys.executable, "-m", "genomenet.cli", "embed", "--model", str(model), "--fasta", str(fasta),
            "--out", str(out), "--per", "tile", "--quiet", "--cache-dir", str(cache), "--device", device,
            "--batch-size", str(batch)]


def start(command: list[str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as handle:
        return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)


def finish(child: subprocess.Popen, started: float, log: Path, check: bool = True) -> Run:
    """Reap the child with os.wait4: its own peak RSS, unlike RUSAGE_CHILDREN (the largest of all children)."""
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if check and child.returncode:
        lines = log.read_text().strip().splitlines() or ["(no output)"]
        sys.exit(f"{' '.join(child.args)} failed ({child.returncode}): {lines[-1]}")
    return Run(seconds, usage.ru_maxrss / 1024)  # ru_maxrss is in KiB on Linux


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
            rate = SLICE[2] - SLICE[1]
            rows.append((device, batch, f"{full.seconds:.1f}", f"{startup.seconds:.1f}",
                         f"{rate / (full.seconds - startup.seconds):,.0f}"))
    return table(("device", "batch", "wall s", "startup s", "bases/s (wall - startup)"), rows)


def memory(args: argparse.Namespace, work: Path, small: Path) -> str:
    """Peak RSS for 1 Mb and the whole genome: the chunked pipeline should make them equal within 10%."""
    from genomenet.data.cache import prepare

    rows, peaks = [], []
    for name, fasta in (("1 Mb slice", small), (f"{args.fasta.name} whole", args.fasta)):
        command = embed_command(args.model, fasta, work / f"memory-{fasta.stem}.h5", work / "cache",
                                args.devices[0], args.batch_size)
        full, startup = run(command, work / "log"), run(command, work / "log")
        bases = prepare(fasta, work / "cache").total_length
        peaks.append(full.peak_mib)
        rows.append((name, f"{bases:,}", f"{full.seconds:.0f}", f"{bases / (full.seconds - startup.seconds):,.0f}",
                     f"{startup.peak_mib:.0f}", f"{full.peak_mib:.0f}"))
    verdict = f"\nwhole / slice peak RSS: {peaks[1] / peaks[0]:.3f} (target within 10%: "
    verdict += f"{'yes' if abs(peaks[1] / peaks[0] - 1) <= 0.10 else 'NO'})"
    return table(("input", "bases", "wall s", "bases/s", "startup RSS MiB", "peak RSS MiB"), rows) + verdict


def resume(args: argparse.Namespace, work: Path, small: Path) -> str:
    """An uninterrupted run against one SIGKILLed at `--kill-at` of its time and rerun: same bytes, less time."""
    command = lambda out: embed_command(args.model, small, out, work / "cache", args.devices[0], args.batch_size)  # noqa: E731
    whole, resumed_out = work / "resume-whole.h5", work / "resume-killed.h5"
    full = run(command(whole), work / "log")
    started = time.perf_counter()
    child = start(command(resumed_out), work / "log")
    time.sleep(full.seconds * args.kill_at)
    child.send_signal(signal.SIGKILL)
    killed = finish(child, started, work / "log", check=False)
    parts = len(list((work / "resume-killed.h5.parts").glob("*.npz")))
    rerun = run(command(resumed_out), work / "log")
    same = sha256(whole) == sha256(resumed_out)
    row = (f"{full.seconds:.1f}", f"{killed.seconds:.1f}", parts, f"{rerun.seconds:.1f}",
           f"{killed.seconds + rerun.seconds:.1f}", "yes" if same else "NO")
    return table(("uninterrupted s", "killed after s", "parts saved", "resumed s", "killed + resumed s",
                  "identical"), [row])


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
    with tempfile.TemporaryDirectory(prefix="genomenet-bench-") as tmp:
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        small = write_slice(args.fasta, work / "cache", work / "chr20_1mb.fa")
        for name, section in (("throughput", throughput), ("memory", memory), ("resume", resume)):
            if not args.only or name in args.only:
                print(f"\n## {name} ({section.__doc__})\n\n{section(args, work, small)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
