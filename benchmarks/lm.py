"""LongNet against dense, local and strided (fixed sparse) attention on byte-level text, at equal parameters and
tokens seen.

Each model is trained by `genomenet fit --config configs/text_lm.yaml` (the user's command, nothing bespoke), with
only the attention switched, for every seed; the table gives held-out bits per byte at evaluation windows of 1x, 4x
and 16x the training length (mean over seeds, +- half the spread), beside gzip, bzip2 and xz on the same test bytes,
and the plot draws one line per model.

    python benchmarks/lm.py                                  # Wikipedia sample, 4 models x 2 seeds, CPU budget
    python benchmarks/lm.py --corpus shakespeare --seeds 0   # Shakespeare + Canterbury texts
    python benchmarks/lm.py --accelerator gpu --steps 3000 --context 2048 --jobs 3   # a longer run on a GPU
    python benchmarks/lm.py --attention local --set local_window=32      # a variant: backbone fields overridden
    python benchmarks/lm.py --attention dense --lr 0.001 0.004           # a learning-rate sweep, chosen on validation

Each run also scores the validation split (as many bytes as the test span, at the training length), so a setting
(a learning rate, a shape) is chosen on validation bytes, never on the test bytes the table reports.
"""

from __future__ import annotations

import argparse
import bz2
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from genomenet.text.report import length_table, save_length_plot  # noqa: E402

TEXT = REPO.parent / "shared" / "data" / "text"
ATTENTIONS = ("dilated", "dense", "local", "strided", "sliding")
"""`local` is sliding-window attention over context/4 bytes; `strided` is Sparse Transformer's strided pattern with
stride sqrt(context) (the backbone's default); `sliding` (not run by default) is LongNet with its shortest branch
made a sliding window: w = context/2, context with r = 2, 4, plus each byte's context/4 predecessors."""
CHOSEN_LR = {"dense": 0.004}
"""Learning rates other than the config's (0.002), each chosen on validation bytes at the CPU budget: dense attention
scores 2.588 / 2.453 / 2.434 / 2.460 validation bits per byte at 0.001 / 0.002 / 0.004 / 0.008 (docs/text.md)."""


def corpus_file(name: str, out: Path, text: Path = TEXT) -> Path:
    """The corpus as one file of bytes: the Wikipedia export unpacked, or the Shakespeare and Canterbury texts
    concatenated (sorted by name, Shakespeare first)."""
    out.mkdir(parents=True, exist_ok=True)
    if name == "wiki":
        path = out / "enwiki_sample.xml"
        if not path.exists():
            path.write_bytes(bz2.open(text / "enwiki_sample.xml.bz2").read())
        return path
    path = out / "shakespeare_canterbury.txt"
    if not path.exists():
        files = sorted((text / "shakespeare").glob("*.txt")) + sorted((text / "canterbury").glob("*.txt"))
        path.write_bytes(b"".join(f.read_bytes() for f in files))
    return path


def segments(context: int) -> list[int]:
    """Three branches ending at the training length: w = context/4, context/2, context with r = 1, 2, 4."""
    return [context // 4, context // 2, context]


def attention_arguments(attention: str, context: int) -> list[str]:
    """The `genomenet fit` flags that switch the attention (everything else is the config's)."""
    w = segments(context)
    if attention == "sliding":
        return ["--model.backbone.attention", "dilated", "--model.backbone.segment_lengths", str(w[1:]),
                "--model.backbone.dilation_rates", "[2, 4]", "--model.backbone.sliding_window", str(w[0])]
    return ["--model.backbone.attention", attention, "--model.backbone.segment_lengths", str(w),
            "--model.backbone.dilation_rates", "[1, 2, 4]"]


def backbone_overrides(settings: list[str]) -> list[str]:
    """`--set field=value` pairs as `genomenet fit` flags on the backbone (after the attention's, so they win)."""
    flags = []
    for setting in settings:
        field, _, value = setting.partition("=")
        flags += [f"--model.backbone.{field}", value]
    return flags


def run_name(attention: str, seed: int, settings: list[str], lr: float | None = None) -> str:
    """The run folder of one model: its attention, its overrides (if any), its learning rate (if not the config's)
    and its seed."""
    tag = "".join("_" + re.sub(r"[^A-Za-z0-9]+", "-", s).strip("-") for s in settings)
    if lr is not None:
        tag += f"_lr{lr:g}"
    return f"{attention}{tag}_seed{seed}"


def validation_bits(model_dir: Path, corpus: Path, context: int, span: int, device: str = "cpu") -> float:
    """Bits per byte of an exported model on the first `span` bytes of the validation split, in training-length
    windows: the figure a setting is chosen by."""
    import torch

    from genomenet.model.pretrained import load_pretrained
    from genomenet.text.corpus import open_corpus
    from genomenet.text.report import bits_per_byte

    model = load_pretrained(model_dir, map_location=device).float()
    val = open_corpus(corpus).splits["val"].array()
    span = min(span, len(val)) // context * context
    return bits_per_byte(model, val[:span], context, torch.device(device))


def fit(attention: str, seed: int, lr: float | None, corpus: Path, run: Path, args: argparse.Namespace) -> dict:
    """One `genomenet fit` (at learning rate `lr`, None = the config's), unless its report exists; returns its
    held_out_report.json with the validation figure added."""
    report = run / "held_out_report.json"
    if args.rerun or not report.exists():
        train(attention, seed, lr, corpus, run, args)
    result = json.loads(report.read_text())
    if "val_bits_per_byte" not in result:
        result["val_bits_per_byte"] = validation_bits(run / "model", corpus, args.context, result["scored_bytes"],
                                                      device="cuda" if args.accelerator == "gpu" else "cpu")
        report.write_text(json.dumps(result, indent=2) + "\n")
    return result


def train(attention: str, seed: int, lr: float | None, corpus: Path, run: Path, args: argparse.Namespace) -> None:
    """Run `genomenet fit` into `run` and add its wall time to the report it writes."""
    command = [
        sys.executable, "-m", "genomenet", "fit", "--config", str(REPO / "configs" / "text_lm.yaml"),
        "--data.path", str(corpus), "--data.context_length", str(args.context),
        "--data.batch_size", str(args.batch_size), "--data.seed", str(seed), "--seed_everything", str(seed),
        *attention_arguments(attention, args.context), *backbone_overrides(args.set),
        "--model.backbone.n_layers", str(args.layers), "--model.backbone.d_model", str(args.width),
        "--trainer.accelerator", args.accelerator, "--trainer.max_steps", str(args.steps),
        "--trainer.val_check_interval", str(max(1, args.steps // 3)), "--trainer.logger", "false",
        "--trainer.enable_progress_bar", "false",
        "--checkpoint.dirpath", str(run / "checkpoints"), "--report.export_dir", str(run / "model"),
    ]
    if args.precision:
        command += ["--trainer.precision", args.precision]
    if lr is not None:
        command += ["--model.optimizer.lr", str(lr)]
    run.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(run / "log.txt", "w") as log:
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if done.returncode != 0:
        raise SystemExit(f"{attention} seed {seed} failed; see {run / 'log.txt'}")
    report = run / "held_out_report.json"
    result = json.loads(report.read_text())
    result["seconds"] = time.perf_counter() - t0
    report.write_text(json.dumps(result, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", choices=("wiki", "shakespeare"), default="wiki")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--attention", nargs="+", choices=ATTENTIONS, default=list(ATTENTIONS[:4]))
    parser.add_argument("--steps", type=int, default=600, help="optimizer steps per model (default 600)")
    parser.add_argument("--context", type=int, default=1024, help="training window in bytes (default 1024)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--precision", default=None, help="trainer precision (default: the config's 32-true)")
    parser.add_argument("--jobs", type=int, default=1, help="models trained at once (a GPU takes several)")
    parser.add_argument("--text-dir", type=Path, default=TEXT, help="where the corpora are (default "
                        "../shared/data/text)")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "benchmarks" / "lm")
    parser.add_argument("--rerun", action="store_true", help="train again even where a report exists")
    parser.add_argument("--lr", type=float, nargs="+", default=None, help="learning rates to train every model at "
                        "(default: the config's, or the one chosen for the attention in CHOSEN_LR); with several, the "
                        "table has one row per model and rate")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a backbone field for every model trained, e.g. local_window=32 or "
                        "segment_lengths=[32,256,1024] (repeatable; the run folders are named after it)")
    args = parser.parse_args()

    out = args.out / f"{args.corpus}_{args.context}_{args.steps}steps"
    corpus = corpus_file(args.corpus, args.out, args.text_dir)
    def rates(attention: str) -> list[float | None]:
        return args.lr or [CHOSEN_LR.get(attention)]

    jobs = [(a, s, lr) for a in args.attention for lr in rates(a) for s in args.seeds]
    def fit_job(job: tuple[str, int, float | None]) -> dict:
        attention, seed, lr = job
        return fit(attention, seed, lr, corpus, out / run_name(attention, seed, args.set, lr), args)

    with ThreadPoolExecutor(args.jobs) as pool:
        results = dict(zip(jobs, pool.map(fit_job, jobs)))

    rows, spread, curves, compressors, validation = {}, {}, {}, {}, {}
    for attention in args.attention:
        for lr in rates(attention):
            runs = [results[(attention, s, lr)] for s in args.seeds]
            rate = "" if lr is None else f", lr {lr:g}"
            for name in runs[0]["curves"]:
                lengths = sorted(int(n) for n in runs[0]["curves"][name])
                values = np.array([[r["curves"][name][str(n)] for n in lengths] for r in runs])
                label = (f"{name} [{attention}]" if name.startswith("LongNet, branches") else name) + rate
                curves[label] = dict(zip(lengths, values.mean(0)))
                rows[label] = (args.context, curves[label])
                spread[label] = dict(zip(lengths, (values.max(0) - values.min(0)) / 2))
            validation[next(iter(runs[0]["curves"])) + rate] = [r["val_bits_per_byte"] for r in runs]
            compressors = runs[0]["compressors"]
    seconds = [r.get("seconds", float("nan")) for r in results.values()]
    print(f"corpus {corpus.name}: {results[jobs[0]]['scored_bytes']:,} test bytes scored; {len(args.seeds)} seed(s) "
          f"{args.seeds}; {args.steps} steps x {args.batch_size} windows x {args.context} bytes per model "
          f"({args.steps * args.batch_size * args.context:,} bytes seen); {args.layers} layers, width {args.width}; "
          f"{args.accelerator}; {np.nanmean(seconds) / 60:.1f} min per model")
    print("held-out bits per byte (mean over seeds):")
    print(length_table(rows, compressors))
    print("half the spread between seeds:")
    print(length_table({k: (args.context, v) for k, v in spread.items()}, {}))
    print(f"validation bits per byte at {args.context:,} (what a setting is chosen by), by seed:")
    for label, values in validation.items():
        print(f"  {label}: " + " / ".join(f"{v:.3f}" for v in values) + f"  (mean {np.mean(values):.3f})")
    plot = save_length_plot(curves, compressors, out / "bits_per_byte_by_length.png",
                            title=f"{corpus.name}: bits per byte by evaluation length")
    (out / "table.json").write_text(json.dumps({"curves": {k: {str(n): b for n, b in v.items()}
                                                           for k, v in curves.items()},
                                                "spread": {k: {str(n): b for n, b in v.items()}
                                                           for k, v in spread.items()},
                                                "validation": validation, "compressors": compressors,
                                                "seconds": seconds}, indent=2) + "\n")
    print(f"plot: {plot}")


if __name__ == "__main__":
    main()
