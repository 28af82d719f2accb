"""Trained segmenters re-scored with per-class thresholds picked on validation: each model reads its run's validation
tiles (the ones its checkpoint was picked on) and every test base at its own window length; for each class the
threshold with the best validation MCC (`mcc_thresholds`) is applied to the test bases, beside the fixed 0.5.

For models exported before the held-out report picked thresholds itself; the baselines, trained in memory by the
report, are not kept, so only the model is re-scored here.

    python tasks/segment_genes/rescore_thresholds.py FASTA ANNOTATION RUN [RUN ...] --block-size 1000000 \
        --val-bases 262144 [--json OUT.json]       # RUN: a run folder holding model/
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from genomenet.data.segment_datamodule import SegmentDataModule  # noqa: E402
from genomenet.data.splits import SplitConfig  # noqa: E402
from genomenet.data.tokenizers import make_tokenizer  # noqa: E402
from genomenet.downstream.segment_report import test_scores  # noqa: E402
from genomenet.evaluation.segmentation import base_metrics, mcc_thresholds, mean_metrics, scored_classes  # noqa: E402
from genomenet.model.segmenter import load_segmenter  # noqa: E402


@torch.no_grad()
def rescore(run: Path, fasta: str, annotation: str, split: SplitConfig, val_bases: int,
            device: torch.device) -> dict:
    """Mean test MCC / F1 at 0.5 and at the validation thresholds, and the thresholds, of the run's model."""
    net = load_segmenter(run / "model", make_tokenizer).float().eval().to(device)
    length = net.info.context_length
    data = SegmentDataModule(fasta=fasta, annotation=annotation, context_length=length, kmer_size=net.info.kmer_size,
                             split=split, batch_size=max(1, 16384 // length), val_windows=max(1, val_bases // length),
                             test_windows=None)
    data.setup()
    validation = test_scores(net, data.dataloader("val"), 1, device)
    test = test_scores(net, data.dataloader("test"), 1, device, desc=f"{run.name} test")
    return {"context_length": length, **summary(list(data.labels.classes), validation, test)}


def summary(classes: list[str], validation: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> dict:
    """Test means at 0.5 and at the thresholds picked on the (targets, probs) of `validation`."""
    thresholds = mcc_thresholds(*validation)
    targets, probs = test
    scored = [c for c, keep in zip(classes, scored_classes(targets), strict=True) if keep]
    tuned = base_metrics(classes, targets, probs, thresholds)
    return {"test_bases": int(len(targets)), "mean_at_0.5": mean_metrics(base_metrics(classes, targets, probs), scored),
            "mean_at_validation_thresholds": mean_metrics(tuned, scored),
            "mcc_at_validation_thresholds": {c: tuned[c]["mcc"] for c in scored},
            "validation_thresholds": dict(zip(classes, thresholds.tolist(), strict=True))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("fasta")
    parser.add_argument("annotation")
    parser.add_argument("runs", nargs="+", type=Path, help="run folders, each with the exported model/")
    parser.add_argument("--block-size", type=int, default=1_000_000, help="the runs' data.split.block_size")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--val-bases", type=int, default=262_144, help="the runs' validation bases (VAL_BASES)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    split = SplitConfig(by="block", block_size=args.block_size, seed=args.split_seed)
    results = {}
    print("| run (window) | mean MCC at 0.5 | mean MCC at validation thresholds | test bases |")
    print("|---|---:|---:|---:|")
    for run in args.runs:
        r = results[str(run)] = rescore(run, args.fasta, args.annotation, split, args.val_bases,
                                        torch.device(args.device))
        print(f"| {run.name} ({r['context_length']:,}) | {r['mean_at_0.5']['mcc']:.3f} | "
              f"{r['mean_at_validation_thresholds']['mcc']:.3f} | {r['test_bases']:,} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
