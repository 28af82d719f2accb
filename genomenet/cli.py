"""The `genomenet` command: one entry point that only wires library functions together.

`genomenet fit | validate | test | predict --config configs/NAME.yaml [--key value ...]` is a LightningCLI over
`GenomeLM` and `GenomeDataModule`; `prepare`, `export` and `demo` are plain subcommands dispatched before it.
Errors a user causes end as one line on stderr, `genomenet: error: ...`, and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from genomenet.errors import GenomenetError, InputFileError

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")
USAGE = """usage: genomenet {fit,validate,test,predict} --config configs/NAME.yaml [--key value ...]
       genomenet prepare FASTA [--cache-dir DIR]
       genomenet export CHECKPOINT OUT_DIR
       genomenet embed --model PATH --fasta FASTA [--regions BED] --out OUT.h5 [options]
       genomenet track --model PATH --fasta FASTA [--regions BED] --out OUT.bedGraph [options]
       genomenet annotate --model SEGMENTER --fasta FASTA [--regions BED] --out OUT.gff3 [options]
       genomenet score-variants --model PATH --fasta FASTA --vcf VCF --out OUT.vcf[.gz] [options]
       genomenet mutagenize --model PATH --fasta FASTA --region CHROM:START-END --out PREFIX [options]
       genomenet classify --model CLASSIFIER --fasta FASTA --regions BED --out OUT.tsv|OUT.bed [options]
       genomenet demo [--seq-len N]

Train and evaluate long-context genomic language models. `genomenet fit --help` lists every option."""


def _fail(message: str, code: int = 2) -> int:
    print(f"genomenet: error: {message}", file=sys.stderr)
    return code


# plain subcommands ----------------------------------------------------------------------------------------------


def demo_main(argv: list[str]) -> int:
    """`genomenet demo`: time exact dilated attention against dense attention at one sequence length."""
    parser = argparse.ArgumentParser(prog="genomenet demo", description=demo_main.__doc__)
    parser.add_argument("--seq-len", type=int, default=16384, help="tokens in the one sequence timed (default 16384)")
    args = parser.parse_args(argv)
    if args.seq_len < 1:
        return _fail(f"--seq-len must be a positive number of tokens, got {args.seq_len}")
    from genomenet.attention.timing import time_dilated_vs_dense

    t = time_dilated_vs_dense(seq_len=args.seq_len)
    print(f"dilated attention, w={t.segment_lengths}, r={t.dilation_rates}: {t.seq_len} tokens forward+backward in "
          f"{t.dilated_s:.2f} s on the {t.backend} backend")
    print(f"dense causal attention: {t.dense_s:.2f} s, {t.dense_s / t.dilated_s:.1f}x the dilated time (dense grows "
          "as N^2, dilated as N)")
    return 0


def export_main(argv: list[str]) -> int:
    """`genomenet export CHECKPOINT OUT_DIR`: write model.safetensors + config.json, loadable without Lightning."""
    parser = argparse.ArgumentParser(prog="genomenet export", description=export_main.__doc__)
    parser.add_argument("checkpoint", help="a training checkpoint (.ckpt) or an exported model directory")
    parser.add_argument("out_dir", help="directory to write model.safetensors and config.json into")
    args = parser.parse_args(argv)
    print(f"model: {export_any_checkpoint(args.checkpoint, args.out_dir)}")
    return 0


def export_any_checkpoint(checkpoint: str, out_dir: str) -> Path:
    """A language model's, region classifier's or segmenter's training checkpoint (or exported folder) exported
    as the loaders read it; a fine-tune's best checkpoint can so be exported without re-running `fit`."""
    from genomenet.data.tokenizers import make_tokenizer
    from genomenet.model import classifier, segmenter
    from genomenet.model.pretrained import export_checkpoint, read_checkpoint

    if not Path(checkpoint).is_file():
        return export_checkpoint(checkpoint, out_dir)
    ckpt = read_checkpoint(checkpoint, mmap=True)
    if classifier.CHECKPOINT_KEY in ckpt:
        net = classifier.load_classifier(checkpoint, make_tokenizer)
        return classifier.export_classifier(net, net.info, out_dir)
    if segmenter.CHECKPOINT_KEY in ckpt:
        net = segmenter.load_segmenter(checkpoint, make_tokenizer)
        print("thresholds: 0.5 for every class (the report of `genomenet fit` picks them on validation data)")
        return segmenter.export_segmenter(net, net.info, out_dir)
    kind = str(ckpt.get("hyper_parameters", {}).get("class_path", ""))
    if kind.endswith("VariantEffectClassifier"):
        raise InputFileError(f"{checkpoint}: a variant-effect classifier's checkpoint: `genomenet fit` exports it "
                             "at the end of its run; `genomenet export` takes language models, region classifiers "
                             "and segmenters")
    return export_checkpoint(checkpoint, out_dir)


def first_rank() -> bool:
    """Whether this process prints a command's final lines: rank 0 of a torchrun job (it writes the output), or the
    only process."""
    from genomenet.inference.parts import rank_and_world

    return rank_and_world()[0] == 0


def add_inference_arguments(parser: argparse.ArgumentParser, out_help: str) -> None:
    """The options every command that runs a trained model over a genome shares."""
    parser.add_argument("--model", required=True, help="an exported model directory or a training checkpoint")
    parser.add_argument("--fasta", required=True, help="FASTA file (plain, gzip or bgzip)")
    parser.add_argument("--regions", default=None, help="BED file of regions (name in column 4, strand in column "
                        "6); default: every chromosome whole")
    parser.add_argument("--out", required=True, help=out_help)
    parser.add_argument("--window", type=int, default=0, help="bases per model window (default: the model's "
                        "training window)")
    parser.add_argument("--context", type=int, default=-1, help="least context per base: bases to its left "
                        "(causal model) or on each side (masked); default window/4 (causal), window/8 (masked)")
    parser.add_argument("--batch-size", type=int, default=8, help="windows per forward pass (default 8)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: a GPU if any)")
    parser.add_argument("--precision", default="auto", choices=("auto", "32", "bf16", "16"),
                        help="autocast: auto is bf16 on a GPU and float32 on the CPU")
    parser.add_argument("--cache-dir", default=None, help="prepared-genome cache (default: $GENOMENET_CACHE or "
                        "~/.cache/genomenet)")
    parser.add_argument("--sequence-parallel", type=int, default=1, help="under torchrun: split each window over "
                        "groups of this many processes (for windows longer than one device holds)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def embed_main(argv: list[str]) -> int:
    """`genomenet embed`: embeddings of whole chromosomes or BED regions into one HDF5 file, resumable."""
    parser = argparse.ArgumentParser(prog="genomenet embed", description=embed_main.__doc__)
    add_inference_arguments(parser, "output HDF5 file (.h5); rerun the same command to resume an interrupted run")
    parser.add_argument("--per", choices=("region", "tile", "position"), default=None,
                        help="one row per region (default with --regions), per tile of --window bases (default "
                        "without), or per position")
    parser.add_argument("--bin-size", type=int, default=1, help="with --per position: average in bins of N bases")
    parser.add_argument("--pooling", choices=("mean", "max"), default="mean", help="how a row's bases are pooled")
    parser.add_argument("--layer", type=int, default=-1, help="hidden states after this many blocks (0: token "
                        "embeddings; -1, the default: the last block, after the final norm)")
    parser.add_argument("--reverse-complement", choices=("none", "average"), default="none",
                        help="average: mean of the per-base outputs read on both strands")
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32", help="stored precision")
    parser.add_argument("--flank", type=int, default=0, help="bases on each side of a region the model reads as "
                        "context, not pooled (default 0: the region alone)")
    args = parser.parse_args(argv)
    from genomenet.inference.embed import EmbedOptions, embed

    per = args.per or ("region" if args.regions else "tile")
    options = EmbedOptions(per, args.bin_size, args.pooling, args.layer, args.reverse_complement, args.window,
                           args.context, args.dtype, args.flank)
    out = embed(args.model, args.fasta, args.out, args.regions, options, args.device, args.precision,
                args.batch_size, args.cache_dir, progress=not args.quiet, sequence_parallel=args.sequence_parallel)
    if first_rank():
        print(f"embeddings: {out}")
    return 0


def track_main(argv: list[str]) -> int:
    """`genomenet track`: the model's per-base information content (and entropy) as bedGraph or bigWig."""
    parser = argparse.ArgumentParser(prog="genomenet track", description=track_main.__doc__)
    add_inference_arguments(parser, "output .bedGraph (or .bw / .bigWig with pyBigWig installed)")
    parser.add_argument("--entropy", action="store_true", help="also write the entropy of the model's prediction "
                        "per base, to OUT with .entropy before its extension")
    parser.add_argument("--strand", choices=("+", "-", "both"), default="+",
                        help="read the forward strand, the reverse complement, or average both (default +)")
    parser.add_argument("--flank", type=int, default=0, help="bases on each side of a region read as context only")
    args = parser.parse_args(argv)
    from genomenet.inference.tracks import TrackOptions, track

    options = TrackOptions(args.strand, args.entropy, args.window, args.context, args.flank)
    outs = track(args.model, args.fasta, args.out, args.regions, options, args.device, args.precision,
                 args.batch_size, args.cache_dir, progress=not args.quiet, sequence_parallel=args.sequence_parallel)
    for out in outs if first_rank() else []:
        print(f"track: {out}")
    return 0


def annotate_main(argv: list[str]) -> int:
    """`genomenet annotate`: run a segmentation model over whole chromosomes (or BED regions) and write the genes,
    mRNAs, exons and CDS it calls as GFF3, and each class's per-base probability as a track; resumable."""
    parser = argparse.ArgumentParser(prog="genomenet annotate", description=annotate_main.__doc__)
    add_inference_arguments(parser, "output GFF3, e.g. run/a.gff3; the tracks go beside it, one per class, as "
                            "run/a.<class>.bedGraph (run/a.<class>.bw with --bigwig). Rerun the same command to "
                            "resume an interrupted run")
    parser.add_argument("--threshold", type=float, help="a base has a class at this probability or more, for every "
                        "class (default: each class's threshold picked on validation when the model was fitted, "
                        "0.5 for a model exported without them)")
    parser.add_argument("--min-exon", type=int, default=10, help="shortest exon call kept, bases (default 10)")
    parser.add_argument("--min-gene", type=int, default=100, help="shortest gene call kept, bases (default 100)")
    parser.add_argument("--max-gap", type=int, default=0, help="bridge gaps of up to this many bases in a gene call "
                        "(default 0)")
    parser.add_argument("--max-gene-length", type=int, default=5_000_000, help="longest gene call decoded whole; "
                        "longer ones are cut, to bound memory (default 5000000)")
    parser.add_argument("--no-tracks", action="store_true", help="write only the GFF3")
    parser.add_argument("--classes", default="", help="comma-separated classes to write tracks of (default: all)")
    parser.add_argument("--bigwig", action="store_true", help="tracks as OUT.<class>.bw (needs pyBigWig)")
    args = parser.parse_args(argv)
    from genomenet.downstream.annotate import AnnotateOptions, annotate
    from genomenet.downstream.gene_decoding import DecodeOptions
    from genomenet.errors import ConfigError

    if args.sequence_parallel != 1:
        raise ConfigError("annotate runs each window on one device: --sequence-parallel is not supported")
    decode = DecodeOptions(threshold=0.5 if args.threshold is None else args.threshold, min_exon=args.min_exon,
                           min_gene=args.min_gene, max_gap=args.max_gap)
    classes = tuple(c.strip() for c in args.classes.split(",") if c.strip())
    options = AnnotateOptions(window=args.window, context=args.context, decode=decode,
                              model_thresholds=args.threshold is None, tracks=not args.no_tracks, classes=classes,
                              bigwig=args.bigwig, max_gene=args.max_gene_length)
    outs = annotate(args.model, args.fasta, args.out, args.regions, options, args.device, args.precision,
                    args.batch_size, args.cache_dir, progress=not args.quiet)
    print(f"annotation: {outs[0]}")
    for out in outs[1:]:
        print(f"track: {out}")
    return 0


def classify_main(argv: list[str]) -> int:
    """`genomenet classify`: apply an exported region classifier (from fine-tuning) to the regions of a BED."""
    parser = argparse.ArgumentParser(prog="genomenet classify", description=classify_main.__doc__)
    parser.add_argument("--model", required=True, help="an exported classifier directory (the `model:` line of a "
                        "fine-tuning run) or a fine-tuning checkpoint")
    parser.add_argument("--fasta", required=True, help="FASTA file (plain, gzip or bgzip)")
    parser.add_argument("--regions", required=True, help="BED file of regions (strand in column 6)")
    parser.add_argument("--out", required=True, help="output: .tsv (class probabilities per region) or .bed "
                        "(predicted class as name, 1000 x its probability as score)")
    parser.add_argument("--batch-size", type=int, default=16, help="windows per forward pass (default 16)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--cache-dir", default=None, help="prepared-genome cache")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    from genomenet.downstream.regions import classify_main as run

    return run(args)


def score_variants_main(argv: list[str]) -> int:
    """`genomenet score-variants`: the VCF's records, in order, with the model's scores as INFO fields."""
    parser = argparse.ArgumentParser(prog="genomenet score-variants", description=score_variants_main.__doc__)
    parser.add_argument("--model", required=True, help="an exported model directory or a training checkpoint")
    parser.add_argument("--fasta", required=True, help="the reference FASTA the VCF was called against")
    parser.add_argument("--vcf", required=True, help="VCF or BCF, plain or bgzipped")
    parser.add_argument("--out", required=True, help="output VCF; .vcf.gz is bgzipped and tabix-indexed")
    parser.add_argument("--tsv", default=None, help="also write the scores as a TSV, one row per ALT")
    parser.add_argument("--window", type=int, default=1024, help="bases per tile (causal models) or window centred "
                        "on a variant (masked models), default 1024; docs/variants.md")
    parser.add_argument("--scores", default="", help="comma-separated of llr (causal LM), log_odds (masked LM), "
                        "cosine, l2; default: the model's own (llr or log_odds) and cosine")
    parser.add_argument("--reverse-complement", action="store_true", help="average each score over both strands")
    parser.add_argument("--span", type=int, default=None, help="causal models: bases after the allele that its "
                        "scores cover (default window/4)")
    parser.add_argument("--keep-mismatches", action="store_true", help="keep records whose REF differs from the "
                        "FASTA, flagged GN_FLAG=REF_MISMATCH and unscored (default: stop with an error)")
    parser.add_argument("--labels", default=None, help="TSV `chrom pos ref alt label` (label 0/1): print AUROC and "
                        "AUPRC of every score beside a Markov model's LLR")
    parser.add_argument("--label-info", default=None, help="as --labels, from an INFO field of the VCF (a Flag, or "
                        "0/1 per ALT)")
    parser.add_argument("--markov-max-order", type=int, default=8, help="with labels: the Markov baseline's order "
                        "is chosen in 0..this (default 8)")
    parser.add_argument("--batch-size", type=int, default=8, help="windows (causal models: tiles) per forward pass "
                        "(default 8)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--precision", default="auto", choices=("auto", "32", "bf16", "16"))
    parser.add_argument("--cache-dir", default=None, help="prepared-genome cache")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    from genomenet.downstream.score_variants import score_variants
    from genomenet.downstream.variant_effects import ScoreOptions
    from genomenet.errors import ConfigError, InputFileError

    if args.window < 2:
        raise ConfigError(f"--window {args.window} must be >= 2")
    for path, what in ((args.fasta, "FASTA"), (args.vcf, "VCF")):
        if not os.path.isfile(path):
            raise InputFileError(f"{path}: {'a folder, not a' if os.path.isdir(path) else 'no such'} {what} file")
    scores = tuple(s.strip() for s in args.scores.split(",") if s.strip())
    options = ScoreOptions(args.window, scores, args.reverse_complement, args.span)
    out, records, seconds, table = score_variants(
        args.model, args.fasta, args.vcf, args.out, options, args.tsv, args.keep_mismatches, args.device,
        args.precision, args.batch_size, args.cache_dir, progress=not args.quiet, labels_tsv=args.labels,
        label_info=args.label_info, markov_max_order=args.markov_max_order)
    print(f"scored {records} records in {seconds:.1f}s ({records / max(seconds, 1e-9):.1f} records/s)")
    if table:
        print(table)
    print(f"variants: {out}")
    return 0


def mutagenize_main(argv: list[str]) -> int:
    """`genomenet mutagenize`: every alternative base at every position of a region scored (TSV, heatmap PNG,
    bedGraph of the per-position maximum effect)."""
    parser = argparse.ArgumentParser(prog="genomenet mutagenize", description=mutagenize_main.__doc__)
    parser.add_argument("--model", required=True, help="an exported model directory or a training checkpoint")
    parser.add_argument("--fasta", required=True, help="FASTA file")
    parser.add_argument("--region", required=True, help="chrom:start-end, 1-based inclusive")
    parser.add_argument("--out", required=True, help="output prefix: PREFIX.tsv, PREFIX.png, PREFIX.bedGraph")
    parser.add_argument("--window", type=int, default=1024, help="bases per tile (causal models) or window centred "
                        "on each variant (masked models), default 1024")
    parser.add_argument("--score", default="", help="llr (causal), log_odds (masked), cosine or l2; default the "
                        "model's own")
    parser.add_argument("--reverse-complement", action="store_true", help="average over both strands")
    parser.add_argument("--span", type=int, default=None, help="causal models: bases after the allele that its "
                        "scores cover (default window/4)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    from genomenet.downstream.mutagenesis import mutagenize
    from genomenet.downstream.variant_effects import ScoreOptions

    options = ScoreOptions(args.window, (args.score,) if args.score else (), args.reverse_complement, args.span)
    for path in mutagenize(args.model, args.fasta, args.region, args.out, options, args.device, args.batch_size,
                           args.cache_dir, progress=not args.quiet):
        print(f"wrote {path}")
    return 0


def prepare_main(argv: list[str]) -> int:
    """`genomenet prepare FASTA [--cache-dir DIR]`: build (or reuse) the prepared cache and say where it is."""
    parser = argparse.ArgumentParser(prog="genomenet prepare", description=prepare_main.__doc__)
    parser.add_argument("fasta", help="FASTA file: plain, gzip or bgzip; IUPAC nucleotides, soft mask kept")
    parser.add_argument("--cache-dir", default=None, help="cache folder (default: $GENOMENET_CACHE or "
                        "~/.cache/genomenet)")
    args = parser.parse_args(argv)
    from genomenet.data.cache import prepare

    try:
        genome = prepare(args.fasta, args.cache_dir, progress=True)
    except GenomenetError as err:
        return _fail(str(err), err.exit_code)
    except OSError as err:  # e.g. a cache folder that cannot be written
        return _fail(f"{err.filename or args.fasta}: {err.strerror or err}")
    print(f"{args.fasta}: {len(genome.chromosomes)} records, {genome.total_length:,} bp -> {genome.directory}")
    return 0


def os_error_line(err: OSError) -> str:
    """The path and what is wrong with it; a file standing where a folder must be (an output path inside it) is
    said so (mkdir's own words are 'File exists' or 'Not a directory')."""
    if not err.filename:
        return " ".join(str(err).split())
    path = Path(err.filename)
    blocking = next((p for p in (path, *path.parents) if p.is_file()), None)
    if isinstance(err, (FileExistsError, NotADirectoryError)) and blocking is not None:
        return f"{blocking}: a file, where a folder is needed"
    return f"{err.filename}: {err.strerror}"


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "prepare": prepare_main,
    "export": export_main,
    "embed": embed_main,
    "track": track_main,
    "annotate": annotate_main,
    "classify": classify_main,
    "score-variants": score_variants_main,
    "mutagenize": mutagenize_main,
    "demo": demo_main,
}


# entry point -----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand; user errors become one line on stderr and exit code 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] not in COMMANDS and argv[0] not in LIGHTNING_COMMANDS:
        return _fail(f"unknown command '{argv[0]}'; choose from {', '.join(LIGHTNING_COMMANDS + tuple(COMMANDS))}")
    try:
        if argv[0] in COMMANDS:
            return COMMANDS[argv[0]](argv[1:])
        from genomenet.training.cli import run_lightning_cli

        return run_lightning_cli(argv)
    except GenomenetError as err:
        return _fail(str(err), err.exit_code)
    except OSError as err:  # a path the user gave that cannot be read or written: missing, a file for a folder, ...
        return _fail(os_error_line(err))
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
