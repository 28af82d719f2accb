"""`genomenet score-variants`: a VCF in, the same records in the same order out, with the model's scores as INFO
fields (Number=A: one value per ALT) and, on request, a TSV beside it.

The output is written to a temporary name and renamed when complete (`.vcf.gz`: bgzipped, then tabix-indexed), so a
failure leaves nothing half-written. Every REF is checked against the FASTA first: a mismatch stops the run with one
line naming the record, or with `--keep-mismatches` is kept, flagged `GN_FLAG=REF_MISMATCH` and not scored.
"""

from __future__ import annotations

import contextlib
import csv
import os
import sys
import time
from pathlib import Path

import pysam
from tqdm import tqdm

from genomenet.baselines.markov_llr import fit_markov_baseline, markov_llr, markov_training_part
from genomenet.data.cache import prepare
from genomenet.data.variants import (
    ContigMatcher,
    Variant,
    allele_windows,
    info_label,
    label_of,
    open_vcf,
    read_label_tsv,
    read_variants,
    unused_label_rows,
)
from genomenet.downstream.variant_effects import ScoreOptions, VariantScorer
from genomenet.downstream.variant_eval import LabelledScores
from genomenet.errors import InputFileError
from genomenet.inference.runner import InferenceModel

CHUNK = 256
INFO = {
    "llr": ("GN_LLR", "Float", "genomenet: ln P(alt window) - ln P(ref window) under the causal LM, tokens from the "
            "variant to the window's end"),
    "log_odds": ("GN_LOGODDS", "Float", "genomenet: masked-LM sum of ln p(alt) - ln p(ref) over the masked variant "
                 "tokens"),
    "cosine": ("GN_COS", "Float", "genomenet: 1 - cosine similarity of mean-pooled embeddings, ref vs alt window"),
    "l2": ("GN_L2", "Float", "genomenet: Euclidean distance of mean-pooled embeddings, ref vs alt window"),
    "markov_llr": ("GN_MARKOV_LLR", "Float", "genomenet baseline: the same LLR under an order-k Markov model counted "
                   "outside the scored span"),
}
FLAG = ("GN_FLAG", "String", "genomenet: why an ALT was not scored (REF_MISMATCH, EDGE, SYMBOLIC, STAR, BREAKEND, "
        "MISSING, NON_ACGT)")


def ref_mismatch(genome, variant: Variant) -> bool:
    length = genome.chromosome(variant.chrom).length
    end = variant.start + len(variant.ref)
    return end > length or genome.sequence(variant.chrom, variant.start, end).upper() != variant.ref


def output_header(header: pysam.VariantHeader, scores: tuple[str, ...], window: int, model: str,
                  contigs: dict[str, int]) -> pysam.VariantHeader:
    """The input header with the score fields (and END) declared, and every contig the records use (htslib cannot
    write a record whose contig the header lacks)."""
    out = header.copy()
    for name, length in contigs.items():
        if name not in out.contigs:
            out.contigs.add(name, length=length)
    for name in scores:
        tag, kind, text = INFO[name]
        if tag not in out.info:
            out.add_line(f'##INFO=<ID={tag},Number=A,Type={kind},Description="{text} ({window}-base window)">')
    if FLAG[0] not in out.info:
        out.add_line(f'##INFO=<ID={FLAG[0]},Number=A,Type={FLAG[1]},Description="{FLAG[2]}">')
    if "END" not in out.info:  # pysam writes END into every record with a symbolic ALT (<DEL>), declared or not
        out.add_line('##INFO=<ID=END,Number=1,Type=Integer,Description="End position of the variant described in '
                     'this record">')
    out.add_line(f"##genomenet_model={model}")
    return out


class Evaluation:
    """Labels of the scored ALTs (a TSV, or an INFO field: a Flag, or 0/1) and the Markov baseline's LLR beside
    every model score."""

    def __init__(self, scorer: VariantScorer, genome, vcf_path: str, spans: dict[str, tuple[int, int]],
                 labels_tsv: str | None, label_info: str | None, markov_max_order: int, progress: bool) -> None:
        self.scorer, self.genome, self.label_info, self.vcf_path = scorer, genome, label_info, vcf_path
        self.labels = read_label_tsv(labels_tsv) if labels_tsv else None
        self.labels_tsv, self.matched = labels_tsv, set()
        training = markov_training_part(genome, spans, scorer.options.window)
        if progress:
            print(f"Markov baseline: counting orders 0..{markov_max_order} on {sum(iv.length for iv in training):,} "
                  "bases outside the scored spans", file=sys.stderr)
        self.markov = fit_markov_baseline(genome, scorer.runner.tokenizer, training, markov_max_order)
        self.results = LabelledScores()

    def label(self, record, chrom: str, a: int) -> int | None:
        if self.labels is not None:
            label, key = label_of(self.labels, record, chrom, a)
            if key is not None:
                self.matched.add(key)
            return label
        return info_label(record, a, self.label_info, self.vcf_path)

    def unmatched_note(self) -> str | None:
        """How many rows of the labels TSV named no ALT of the VCF, as a note line (None when every row was used)."""
        what = unused_label_rows(self.labels, self.matched, self.labels_tsv, self.vcf_path) if self.labels else None
        return f"genomenet: note: {what}; they are not used" if what else None

    def add(self, record, variant: Variant, values: dict, marks: list) -> None:
        """Put the Markov LLR beside the model's scores (in `values`, so it is written too); keep labelled ALTs."""
        values["markov_llr"] = [None] * len(variant.alts)
        for a, alt in enumerate(variant.alts):
            label = self.label(record, variant.chrom, a)
            if marks[a] is not None:
                continue
            pair = allele_windows(self.genome, variant, alt, self.scorer.options.window, self.scorer.runner.tokenizer,
                                  "+")
            values["markov_llr"][a] = markov_llr(self.markov, pair) if not isinstance(pair, str) else None
            if label is not None:
                self.results.add(label, {s: values[s][a] for s in values})


def scan_vcf(vcf_path: str, match: ContigMatcher, genome, need_sorted: bool = False) -> tuple[
        dict[str, int], dict[str, tuple[int, int]]]:
    """One cheap pass before scoring: each contig name the records use (as written) -> its FASTA length, and each
    FASTA contig -> (first variant start, last variant end). `need_sorted` (a tabix-indexed output): the first
    record out of order (an earlier position, or a contig seen before another) is a one-line error."""
    contigs: dict[str, int] = {}
    spans: dict[str, tuple[int, int]] = {}
    last: tuple[str, int] | None = None
    for record, v in read_variants(open_vcf(vcf_path), vcf_path, match):
        if need_sorted and last is not None and (
                (record.chrom == last[0] and record.pos < last[1]) or (record.chrom != last[0] and record.chrom in
                                                                        contigs)):
            raise InputFileError(f"{vcf_path}: record {v.number} ({record.chrom}:{record.pos}) comes after "
                                 f"{last[0]}:{last[1]}: a .vcf.gz output is tabix-indexed, which needs a sorted VCF; "
                                 "sort it (bcftools sort) or write .vcf")
        last = (record.chrom, record.pos)
        contigs.setdefault(record.chrom, genome.chromosome(v.chrom).length)
        a, b = spans.get(v.chrom, (v.start, v.start + len(v.ref)))
        spans[v.chrom] = (min(a, v.start), max(b, v.start + len(v.ref)))
    return contigs, spans


def score_variants(model: str, fasta: str, vcf_path: str, out: str, options: ScoreOptions, tsv: str | None = None,
                   keep_mismatches: bool = False, device: str = "auto", precision: str = "auto", batch_size: int = 8,
                   cache_dir: str | None = None, progress: bool = True, labels_tsv: str | None = None,
                   label_info: str | None = None, markov_max_order: int = 8) -> tuple[Path, int, float, str | None]:
    """Score every record; returns (output path, records, seconds, the labelled evaluation table or None)."""
    for path, option in ((out, "--out"), (tsv, "--tsv")):
        check_output(path, option)
    if not str(out).endswith((".vcf", ".vcf.gz")):
        raise InputFileError(f"--out {out}: give a .vcf or .vcf.gz name (the scored VCF is written as text, or "
                             "bgzipped and indexed)")
    runner = InferenceModel.load(model, device, precision, batch_size)
    genome = prepare(fasta, cache_dir, progress=progress)
    scorer = VariantScorer(runner, genome, options)
    match = ContigMatcher(vcf_path, genome.names)  # one matcher: a chr-prefix note is said once
    contigs, spans = scan_vcf(vcf_path, match, genome, need_sorted=Path(out).name.endswith(".gz"))
    evaluation = Evaluation(scorer, genome, vcf_path, spans, labels_tsv, label_info, markov_max_order, progress) \
        if labels_tsv or label_info else None
    vcf = open_vcf(vcf_path)
    for name, length in contigs.items():  # declared before any record is read, or htslib cannot translate it
        if name not in vcf.header.contigs:
            vcf.header.contigs.add(name, length=length)
    header = output_header(vcf.header, scorer.scores + (("markov_llr",) if evaluation else ()), options.window, model,
                           contigs)
    out_path = Path(out)
    gz = out_path.name.endswith(".gz")
    tmp = out_path.with_name(f".{out_path.name}.tmp{'.gz' if gz else ''}")
    tsv_tmp = Path(tsv).with_name(f".{Path(tsv).name}.tmp") if tsv else None
    t0, records = time.perf_counter(), 0
    try:
        with pysam.VariantFile(str(tmp), "wz" if gz else "w", header=header) as writer, \
                (open(tsv_tmp, "w", newline="") if tsv_tmp else contextlib.nullcontext()) as tsv_handle:
            table = csv.writer(tsv_handle, delimiter="\t", lineterminator="\n") if tsv_handle else None
            if table:
                names = scorer.scores + (("markov_llr",) if evaluation else ())
                table.writerow(["chrom", "pos", "id", "ref", "alt", *(INFO[s][0] for s in names), "flag"])
            bar = tqdm(desc="scoring variants", unit=" variants", disable=not progress)
            chunk: list = []
            for pair in read_variants(vcf, vcf_path, match):
                chunk.append(pair)
                if len(chunk) == CHUNK:
                    records += write_chunk(chunk, scorer, genome, keep_mismatches, vcf_path, writer, table, evaluation)
                    bar.update(len(chunk))
                    chunk = []
            records += write_chunk(chunk, scorer, genome, keep_mismatches, vcf_path, writer, table, evaluation)
            bar.update(len(chunk))
            bar.close()
        if gz:
            try:
                pysam.tabix_index(str(tmp), preset="vcf", force=True)
            except OSError as err:
                raise InputFileError(f"{vcf_path}: the scored VCF cannot be tabix-indexed ({err}); is the input "
                                     "sorted? Sort it (bcftools sort) or write .vcf") from None
        os.replace(tmp, out_path)
        if gz:
            os.replace(f"{tmp}.tbi", f"{out_path}.tbi")
        if tsv_tmp:
            os.replace(tsv_tmp, tsv)
    finally:
        for leftover in (tmp, Path(f"{tmp}.tbi"), tsv_tmp):
            if leftover is not None and Path(leftover).exists():
                Path(leftover).unlink()
    note = evaluation.unmatched_note() if evaluation else None
    if note:
        print(note, file=sys.stderr)
    return out_path, records, time.perf_counter() - t0, evaluation.results.table() if evaluation else None


def check_output(path: str | Path | None, option: str) -> None:
    """A one-line error, before any work, for an output in a missing folder or that is a folder."""
    if path is None:
        return
    path = Path(path)
    if not path.parent.is_dir():
        raise InputFileError(f"{option} {path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise InputFileError(f"{option} {path}: is a folder; give a file name")


def write_chunk(chunk: list, scorer: VariantScorer, genome, keep_mismatches: bool, vcf_path: str, writer,
                table, evaluation: Evaluation | None = None) -> int:
    """Check, score and write one chunk of (record, Variant) pairs; returns how many."""
    flags = {}
    for record, variant in chunk:
        if ref_mismatch(genome, variant):
            if not keep_mismatches:
                length = genome.chromosome(variant.chrom).length
                what = (f"REF {variant.ref} does not match the FASTA" if variant.start + len(variant.ref) <= length
                        else f"REF {variant.ref} runs past the end of the FASTA's '{variant.chrom}' ({length:,} bp)")
                raise InputFileError(f"{vcf_path}: record {variant.number} ({record.chrom}:{record.pos}): {what}; "
                                     "--keep-mismatches keeps such records, flagged and unscored")
            flags[variant.number] = "REF_MISMATCH"
    results = scorer.score([v for _, v in chunk], flags)
    for (record, variant), (values, marks) in zip(chunk, results, strict=True):
        record.translate(writer.header)  # the writer holds its own copy of the header
        for key in [k for k in record.info if k.startswith("GN_")]:  # scores of an earlier run
            del record.info[key]
        if evaluation:
            evaluation.add(record, variant, values, marks)
        for name, per_alt in values.items():
            if any(v is not None for v in per_alt):
                record.info[INFO[name][0]] = tuple(per_alt)
        if any(m is not None for m in marks):
            record.info[FLAG[0]] = tuple(m or "." for m in marks)
        writer.write(record)
        if table:
            for a, alt in enumerate(variant.alts):
                table.writerow([record.chrom, record.pos, record.id or ".", record.ref, alt,
                                *("." if values[s][a] is None else f"{values[s][a]:.6g}" for s in values),
                                marks[a] or "."])
    return len(chunk)
