"""Throughput of `genomenet score-variants`: SNVs per second at a given window and batch size, end to end (VCF read,
REF check, scoring, VCF written), on the 1000 Genomes chr20 variants.

    python benchmarks/variants.py --model runs/quickstart/model --records 400 --windows 1024 --batch-sizes 8 16 32
    python benchmarks/variants.py --model runs/quickstart/model --records 200 --spacing 2048   # one SNV per tile

Prints one table row per (window, batch size, scores). The genome is prepared before timing.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

import pysam
import torch

from genomenet.data.cache import prepare
from genomenet.downstream.score_variants import score_variants
from genomenet.downstream.variant_effects import ScoreOptions

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def snv_subset(records: int, out: Path, spacing: int = 1) -> Path:
    """The first `records` bi-allelic SNVs of the 1000 Genomes chr20 file at least `spacing` bases apart, as a plain
    VCF (a spacing of a window or more gives every SNV a reference pass of its own)."""
    vcf = pysam.VariantFile(str(SHARED / "variants" / "1kg_phase3_chr20_1-4Mb.vcf.gz"))
    with pysam.VariantFile(str(out), "w", header=vcf.header) as writer:
        kept, last = 0, -spacing
        for record in vcf:
            if len(record.alts) == 1 and len(record.ref) == 1 and len(record.alts[0]) == 1 \
                    and record.start - last >= spacing:
                writer.write(record)
                kept, last = kept + 1, record.start
                if kept == records:
                    break
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--fasta", default=str(SHARED / "genomes" / "grch37_chr20.fa.gz"))
    parser.add_argument("--records", type=int, default=400)
    parser.add_argument("--windows", type=int, nargs="+", default=[1024])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16])
    parser.add_argument("--scores", nargs="+", default=["llr", "llr,cosine"])
    parser.add_argument("--spacing", type=int, default=1, help="keep SNVs at least this many bases apart")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    prepare(args.fasta)
    cpu = platform.processor() or platform.machine()
    device = "cuda: " + torch.cuda.get_device_name() if torch.cuda.is_available() and args.device != "cpu" else (
        f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads, {cpu})")
    print(f"machine: {device}; model {args.model}; {args.records} SNVs of 1000 Genomes chr20, at least {args.spacing} "
          "bases apart")
    print("| window | batch | scores | seconds | SNVs per second |")
    print("|---:|---:|---|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        vcf = snv_subset(args.records, Path(tmp) / "snvs.vcf", args.spacing)
        for window in args.windows:
            for batch in args.batch_sizes:
                for scores in args.scores:
                    options = ScoreOptions(window, tuple(scores.split(",")))
                    _, n, seconds, _ = score_variants(args.model, args.fasta, str(vcf), str(Path(tmp) / "o.vcf"),
                                                      options, device=args.device, batch_size=batch, progress=False)
                    print(f"| {window} | {batch} | {scores} | {seconds:.1f} | {n / seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
