"""Region classification after fine-tuning: the held-out report beside its baselines, and applying an exported
classifier to new regions (`genomenet classify`).

The report scores the test split with the fine-tuned model, a k-mer spectrum logistic regression (k and C chosen on
validation data) and a linear probe (logistic regression) on the frozen pre-trained backbone's mean-pooled
embeddings, all on the same windows; says plainly when the model loses; exports the classifier.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from genomenet.baselines.kmer import C_GRID, FittedBaseline, choose_and_fit, kmer_spectrum, predict_probs
from genomenet.data.cache import prepare
from genomenet.data.intervals import read_bed_regions
from genomenet.data.region_windows import WindowSpec, region_frame_spans, region_frames, window_bases
from genomenet.data.tokenizers import CODE_MASK, make_tokenizer
from genomenet.errors import InputFileError
from genomenet.evaluation.classification import (
    METRICS,
    classification_metrics,
    correct,
    genomic_units,
    paired_bootstrap,
    per_class_metrics,
)
from genomenet.evaluation.lm_report import scoring_device
from genomenet.model.classifier import export_classifier, load_classifier
from genomenet.model.heads import RegionClassifierNet, probabilities
from genomenet.model.pretrained import load_pretrained

MODEL_ROW = "fine-tuned LongNet"
MIN_UNITS = 10            # fewer test stretches than this give no interval worth printing
UNIT_MIN_BASES = 100_000  # a bootstrap unit spans at least this, and at least ten windows' length


@torch.no_grad()
def window_outputs(net: RegionClassifierNet, tokens: np.ndarray, spans: np.ndarray, what: str, kind: str = "",
                   batch_size: int = 16, desc: str | None = None) -> np.ndarray:
    """Class probabilities (`what="probs"`, (n, C)) or pooled features (`"features"`, (n, d)) of token windows and
    their regions' token spans (n, 2)."""
    device = next(net.parameters()).device
    out = []
    for start in tqdm(range(0, len(tokens), batch_size), desc=desc, disable=desc is None, leave=False):
        ids = torch.from_numpy(tokens[start:start + batch_size]).to(device)
        span = torch.from_numpy(spans[start:start + batch_size]).to(device)
        result = net.features(ids, span) if what == "features" else probabilities(net(ids, span).float(), kind)
        out.append(result.float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def window_codes(datamodule, split: str) -> np.ndarray:
    """Base codes (n, L) of a split's windows as the model reads them (strand included); 5 after a short region."""
    data, length = datamodule.splits[split], datamodule.spec.length
    codes = np.full((len(data.regions), length), 5, dtype=np.uint8)
    for i, (region, window) in enumerate(zip(data.regions, data.windows, strict=True)):
        bases = window_bases(datamodule.genome, window, region.reading_strand) & CODE_MASK
        codes[i, :len(bases)] = bases
    return codes


def kmer_baseline(datamodule, kmer_sizes: list[int]) -> tuple[FittedBaseline, np.ndarray]:
    """The k-mer spectrum baseline fitted on train (k and C chosen on val) and its test probabilities."""
    kind, splits = datamodule.labels.kind, datamodule.splits
    codes = {s: window_codes(datamodule, s) for s in ("train", "val", "test")}
    spectra = {k: (kmer_spectrum(codes["train"], k), kmer_spectrum(codes["val"], k)) for k in kmer_sizes}
    options = [(f"k={k}, C={c}", *spectra[k], c) for k in kmer_sizes for c in C_GRID]
    fitted, best = choose_and_fit(kind, "k-mer spectrum", options, splits["train"].targets, splits["val"].targets)
    k = kmer_sizes[best // len(C_GRID)]
    n = len(datamodule.labels.classes)
    return fitted, predict_probs(kind, fitted.model, kmer_spectrum(codes["test"], k), n)


def linear_probe(datamodule, init_weights: str, batch_size: int, max_bases: int | None = None,
                 pool_over: str = "window", strands: str = "one", device: torch.device | str = "cpu"
                 ) -> tuple[FittedBaseline, np.ndarray]:
    """Logistic regression on the frozen pre-trained backbone's mean-pooled embeddings (C chosen on val), read where
    the fine-tuned model reads (pool_over, strands), fitted on every training window or a seeded subset of at most
    `max_bases` bases; the embeddings are computed on `device`."""
    backbone = load_pretrained(init_weights).float()
    tokenizer = datamodule.tokenizer
    net = RegionClassifierNet(backbone, 1, "mean", tokenizer.pad_id, pool_over=pool_over, strands=strands,
                              reverse_complement_ids=tokenizer.reverse_complement_ids).to(device).eval()
    kind, splits = datamodule.labels.kind, datamodule.splits
    train = np.arange(len(splits["train"].regions))
    read = datamodule.spec.length * datamodule.spec.num_frames(datamodule.kmer_size)   # bases read per window
    if max_bases is not None and len(train) * read > max_bases:
        keep = max(max_bases // read, 2)
        print(f"linear probe: fitted on {keep} of {len(train)} training windows "
              f"(report.probe_max_bases={max_bases})", flush=True)
        train = stratified_subset(splits["train"].targets, keep)
    tokens = {"train": datamodule.window_tokens("train")[train], "val": datamodule.window_tokens("val"),
              "test": datamodule.window_tokens("test")}
    spans = {"train": datamodule.window_spans("train")[train], "val": datamodule.window_spans("val"),
             "test": datamodule.window_spans("test")}
    feats = {s: window_outputs(net, tokens[s], spans[s], "features", batch_size=batch_size,
                               desc=f"embedding {s} windows (linear probe)") for s in ("train", "val", "test")}
    options = [(f"C={c}", feats["train"], feats["val"], c) for c in C_GRID]
    fitted, _ = choose_and_fit(kind, "linear probe", options, splits["train"].targets[train], splits["val"].targets)
    return fitted, predict_probs(kind, fitted.model, feats["test"], len(datamodule.labels.classes))


def stratified_subset(targets: np.ndarray, size: int) -> np.ndarray:
    """Sorted indices of a seeded subset of about `size` rows, each target pattern kept in proportion (at least one
    row of each), so no class goes missing from a subsampled training set."""
    rng = np.random.default_rng(0)
    _, group = np.unique(targets, axis=0, return_inverse=True)
    group = np.ravel(group)
    share = size / len(targets)
    picked = [rng.choice(np.flatnonzero(group == g), max(1, round(share * int((group == g).sum()))), replace=False)
              for g in np.unique(group)]
    return np.sort(np.concatenate(picked))


@dataclass
class RegionReport:
    rows: dict[str, dict[str, float]]
    """Row name -> metrics on the test split."""
    per_class: dict[str, dict]
    kmer_choice: str
    model_dir: Path | None
    differences: dict[str, dict[str, float]] = field(default_factory=dict)
    """Baseline row name -> the fine-tuned model's accuracy minus the baseline's, with its bootstrap interval."""


def region_report(module, datamodule, kmer_sizes: list[int], out_dir: Path, export: bool = True,
                  batch_size: int = 16, probe_max_bases: int | None = None) -> RegionReport:
    """Score the test split with the fine-tuned model and both baselines, on the device the trainer ran on (a GPU
    run is not scored on the CPU); print the table; export the model."""
    datamodule.setup()
    device = scoring_device(module)
    net, kind = module.net.to(device).float().eval(), datamodule.labels.kind
    test = datamodule.splits["test"]
    probs = window_outputs(net, datamodule.window_tokens("test"), datamodule.window_spans("test"), "probs", kind,
                           batch_size, desc="scoring test windows")
    predictions = {MODEL_ROW: probs}
    # exported before anything else can fail, from a CPU copy (the scoring net may sit on a GPU)
    model_dir = export_classifier(copy.deepcopy(net).cpu(), module.info(), out_dir) if export else None
    kmer, kmer_probs = kmer_baseline(datamodule, kmer_sizes)
    predictions[f"k-mer spectrum ({kmer.choice}) + logistic regression"] = kmer_probs
    if module.init_weights:
        probe, probe_probs = linear_probe(datamodule, module.init_weights, batch_size, probe_max_bases,
                                          module.pool_over, module.strands, device)
        predictions[f"linear probe ({probe.choice}) on frozen pre-trained embeddings"] = probe_probs
    rows = {name: classification_metrics(kind, test.targets, p) for name, p in predictions.items()}
    per_class = per_class_metrics(kind, list(datamodule.labels.classes), test.targets, probs)
    report = RegionReport(rows, per_class, kmer.choice, model_dir, accuracy_differences(datamodule, predictions))
    print(report_table(report, datamodule), flush=True)
    return report


def accuracy_differences(datamodule, predictions: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """The fine-tuned model's accuracy minus each baseline's on the test windows, with a 95% paired bootstrap
    interval that resamples genomic stretches (at least UNIT_MIN_BASES and ten windows long), not windows: windows
    near one another overlap or share a locus, and a one-window lead is within noise."""
    test, kind = datamodule.splits["test"], datamodule.labels.kind
    unit_bases = max(UNIT_MIN_BASES, 10 * datamodule.spec.length)
    units = genomic_units([w.chrom for w in test.windows], np.array([(w.start + w.end) // 2 for w in test.windows]),
                          unit_bases)
    n_units = int(units.max()) + 1 if len(units) else 0
    ours = correct(kind, test.targets, predictions[MODEL_ROW])
    out = {}
    for name, probs in predictions.items():
        if name == MODEL_ROW:
            continue
        theirs = correct(kind, test.targets, probs)
        if n_units >= MIN_UNITS:
            difference, low, high = paired_bootstrap(ours, theirs, units)
        else:
            difference, low, high = float(ours.mean() - theirs.mean()), float("nan"), float("nan")
        out[name] = {"difference": difference, "low": low, "high": high, "units": n_units, "unit_bases": unit_bases}
    return out


def difference_lines(differences: dict[str, dict[str, float]]) -> list[str]:
    """One line per baseline: the accuracy difference and its interval (or why there is none)."""
    lines = []
    for name, d in differences.items():
        stretches = f"{d['units']} test stretches of {d['unit_bases']:,} bases"
        interval = (f"95% bootstrap interval over {stretches}: {d['low']:+.3f} to {d['high']:+.3f}"
                    if not np.isnan(d["low"]) else f"no interval: {stretches}, fewer than {MIN_UNITS}")
        lines.append(f"accuracy, fine-tuned minus {name}: {d['difference']:+.3f} ({interval})")
    return lines


def report_table(report: RegionReport, datamodule) -> str:
    """The held-out table (markdown), per-class rows, and what the model loses to."""
    test = datamodule.splits["test"]
    classes = datamodule.labels.classes
    counts = test.targets.sum(0) if datamodule.labels.kind == "multilabel" else np.bincount(
        test.targets[:, 0].astype(int), minlength=len(classes))
    positive = f"; positive class for F1: {classes[1]}" if datamodule.labels.kind == "binary" else ""
    lines = [f"held-out test split: {len(test.regions)} regions ("
             + ", ".join(f"{c} {int(n)}" for c, n in zip(classes, counts, strict=True)) + f"){positive}",
             "| model | " + " | ".join("accuracy" if m == "accuracy" else m.upper() for m in METRICS) + " |",
             "|---|" + "---:|" * len(METRICS)]
    lines += [f"| {name} | " + " | ".join(f"{m[k]:.3f}" for k in METRICS) + " |" for name, m in report.rows.items()]
    if report.per_class:
        lines.append("per class (fine-tuned LongNet, one vs rest): " + "; ".join(
            f"{c}: F1 {m['f1']:.3f}, AUROC {m['auroc']:.3f}, AUPRC {m['auprc']:.3f}, n={m['support']}"
            for c, m in report.per_class.items()))
    lines += losses(report.rows)
    lines += difference_lines(report.differences)
    return "\n".join(lines)


def losses(rows: dict[str, dict[str, float]]) -> list[str]:
    """Plain sentences where the fine-tuned model does not beat a baseline on accuracy or MCC (loses or ties)."""
    model = rows[MODEL_ROW]
    said = [f"the fine-tuned model {'TIES with' if model[metric] == m[metric] else 'LOSES to'} the {name} on {metric} "
            f"({pair(model[metric], m[metric])})"
            for name, m in rows.items() if name != MODEL_ROW for metric in ("accuracy", "mcc")
            if not model[metric] > m[metric]]
    return said or ["the fine-tuned model beats every baseline on accuracy and MCC"]


def pair(ours: float, theirs: float) -> str:
    """`ours vs theirs` at three decimals, or more where three would print a loss as a tie (0.2530 vs 0.2531)."""
    digits = 3
    while digits < 6 and f"{ours:.{digits}f}" == f"{theirs:.{digits}f}" and ours != theirs:
        digits += 1
    return f"{ours:.{digits}f} vs {theirs:.{digits}f}"


def write_report_json(report: RegionReport, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"test": report.rows, "per_class": report.per_class,
                               "accuracy_differences": report.differences}, indent=2) + "\n")
    os.replace(tmp, path)


def final_lines(report: RegionReport) -> str:
    kmer = next(m for name, m in report.rows.items() if name.startswith("k-mer"))
    lines = [f"held-out accuracy: {report.rows[MODEL_ROW]['accuracy']:.3f} (k-mer baseline: {kmer['accuracy']:.3f})"]
    if report.model_dir is not None:
        lines.append(f"model: {report.model_dir}")
    return "\n".join(lines)


# applying a classifier -----------------------------------------------------------------------------------------


def prediction(kind: str, classes: list[str], p: np.ndarray) -> tuple[str, float]:
    """The predicted label and its probability: the likeliest class (binary, multi-class), or every class at 0.5 or
    above, comma-separated, with the lowest of their probabilities (multi-label; `.` and 1 minus the highest
    probability when none is)."""
    if kind != "multilabel":
        best = int(p.argmax())
        return classes[best], float(p[best])
    chosen = [i for i in range(len(classes)) if p[i] >= 0.5]
    if not chosen:
        return ".", float(1 - p.max())
    return ",".join(classes[i] for i in chosen), float(min(p[i] for i in chosen))


CLASSIFY_CHUNK_TOKENS = 1 << 22
"""Tokens of windows built at once by `classify` (32 MB of ids): a genome-wide BED is read, scored and written a
chunk at a time, so memory does not grow with the number of regions."""


def classify_regions(model: str, fasta: str, regions: str, out: str, batch_size: int = 16, device: str = "cpu",
                     cache_dir: str | None = None, quiet: bool = False) -> Path:
    """One row per BED region with its class probabilities: TSV (`chrom start end name strand predicted p_<class>`)
    or, for an `.bed` output, BED6 with the predicted class as name and 1000 x its probability as score."""
    net = load_classifier(model, make_tokenizer).to(device)
    info = net.info
    genome = prepare(fasta, cache_dir, progress=not quiet)
    records = read_bed_regions(regions, genome.lengths)
    tokenizer, spec = make_tokenizer(info.kmer_size), WindowSpec(**info.window, min_length=info.kmer_size)
    kind, classes = info.labels["kind"], info.labels["classes"]
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    as_bed = out_path.suffix.lower() == ".bed"
    unknown: list[int] = []
    try:   # nothing half-written: the rows go to a hidden file, renamed when every region is scored
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
            if not as_bed:
                writer.writerow(["chrom", "start", "end", "name", "strand", "predicted", *(f"p_{c}" for c in classes)])
            for region, p in scored_in_chunks(net, genome, records, spec, tokenizer, batch_size, unknown, quiet):
                predicted, score = prediction(kind, classes, p)
                if as_bed:
                    writer.writerow([region.chrom, region.start, region.end, predicted, round(1000 * score),
                                     region.strand])
                else:
                    writer.writerow([region.chrom, region.start, region.end, region.name, region.strand, predicted,
                                     *(f"{x:.6f}" for x in p)])
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    if unknown:
        first = records[unknown[0]]
        print(f"classify: warning: {len(unknown)} of {len(records)} regions read windows more than half N (first: "
              f"{first.chrom}:{first.start}-{first.end}); their probabilities reflect no sequence", file=sys.stderr)
    return out_path


def scored_in_chunks(net: RegionClassifierNet, genome, records: list, spec: WindowSpec, tokenizer, batch_size: int,
                     unknown: list[int], quiet: bool = False) -> Iterator[tuple]:
    """(region, class probabilities) in BED order, its windows built `CLASSIFY_CHUNK_TOKENS` at a time; the indices
    of mostly-N windows are appended to `unknown`."""
    per_chunk = max(batch_size, CLASSIFY_CHUNK_TOKENS // (tokenizer.num_tokens(spec.length)
                                                          * spec.num_frames(tokenizer.k)))
    with tqdm(total=len(records), desc=f"classifying {len(records)} regions", disable=quiet, unit="region") as bar:
        for first in range(0, len(records), per_chunk):
            chunk = records[first:first + per_chunk]
            tokens = np.stack([region_frames(genome, r, spec, tokenizer) for r in chunk])  # (n, [frames,] tokens)
            spans = np.stack([region_frame_spans(r, spec, tokenizer) for r in chunk])  # (n, [frames,] 2)
            first_frame = tokens[:, 0] if tokens.ndim == 3 else tokens
            unknown.extend(first + int(i) for i in np.flatnonzero(mostly_unknown(first_frame, tokenizer)))
            yield from zip(chunk, window_outputs(net, tokens, spans, "probs", net.info.labels["kind"], batch_size),
                           strict=True)
            bar.update(len(chunk))


def mostly_unknown(tokens: np.ndarray, tokenizer, most: float = 0.5) -> np.ndarray:
    """Which windows are more than `most` N: their rows are still written (one per region), but their probabilities
    say nothing about sequence (training drops such windows)."""
    real = (tokens != tokenizer.pad_id).sum(axis=1)
    return (tokens == tokenizer.n_id).sum(axis=1) / np.maximum(real, 1) > most


def check_classify_args(args) -> None:
    """The arguments' errors, each one line, before any model is loaded or region scored."""
    if not Path(args.fasta).is_file():
        raise InputFileError(f"{args.fasta}: no such FASTA file")
    if Path(args.out).is_dir():
        raise InputFileError(f"--out {args.out}: is a folder; give a file name ending in .tsv or .bed")
    if Path(args.out).suffix.lower() not in (".tsv", ".bed"):
        raise InputFileError(f"--out {args.out}: give a name ending in .tsv (class probabilities) or .bed (BED6); "
                             "the output is written uncompressed")
    if args.batch_size < 1:
        raise InputFileError(f"--batch-size {args.batch_size}: must be at least 1")
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise InputFileError(f"--device {args.device}: not a device (cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputFileError(f"--device {args.device}: this PyTorch sees no CUDA device; use --device cpu")


def classify_main(args) -> int:
    """`genomenet classify`: see classify_regions."""
    check_classify_args(args)
    path = classify_regions(args.model, args.fasta, args.regions, args.out, args.batch_size, args.device,
                            args.cache_dir, args.quiet)
    print(f"wrote {path}", file=sys.stderr if args.quiet else sys.stdout)
    return 0
