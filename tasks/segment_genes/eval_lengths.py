"""Input length at inference only: trained segmenters, each scored on the same test blocks tiled at several window
lengths, so the weights are fixed and only the context a base is read with changes (the context study's training
runs change both).

Every test base is scored once at every length (tiles end to end, the last one shifted back; the held-out report's
rule), MCC / F1 at threshold 0.5 and AUPRC per class, means over the classes with positive and negative test bases.

    python tasks/segment_genes/eval_lengths.py FASTA ANNOTATION MODEL [MODEL ...] --block-size 100000 \
        --lengths 1024 4096 16384 [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from genomenet.data.segment_datamodule import SegmentDataModule  # noqa: E402
from genomenet.data.splits import SplitConfig  # noqa: E402
from genomenet.data.tokenizers import make_tokenizer  # noqa: E402
from genomenet.downstream.segment_report import test_scores  # noqa: E402
from genomenet.evaluation.segmentation import base_metrics, mean_metrics, scored_classes  # noqa: E402
from genomenet.model.segmenter import load_segmenter  # noqa: E402


def test_module(fasta: str, annotation: str, length: int, kmer_size: int, split: SplitConfig,
                max_windows: int | None = None) -> SegmentDataModule:
    """The test tiles of the training run's split at one window length (at most `max_windows`, evenly spaced)."""
    module = SegmentDataModule(fasta=fasta, annotation=annotation, context_length=length, kmer_size=kmer_size,
                               split=split, batch_size=max(1, 16384 // length), val_windows=None,
                               test_windows=max_windows)
    module.setup()
    return module


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("fasta")
    parser.add_argument("annotation")
    parser.add_argument("models", nargs="+", help="exported segmenter directories")
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384])
    parser.add_argument("--block-size", type=int, default=100_000, help="the training runs' data.split.block_size")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write {model: {length: mean metrics}} here")
    parser.add_argument("--stride", type=int, default=1, help="score every stride-th known base (the report's rule)")
    parser.add_argument("--max-windows", type=int, help="score at most this many test tiles per length (smoke runs)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    split = SplitConfig(by="block", block_size=args.block_size, seed=args.split_seed)
    device = torch.device(args.device)
    nets = {m: load_segmenter(m, make_tokenizer).float().eval().to(device) for m in args.models}
    results: dict[str, dict[int, dict[str, float]]] = {m: {} for m in args.models}
    kmer = next(iter(nets.values())).info.kmer_size
    for length in args.lengths:
        module = test_module(args.fasta, args.annotation, length, kmer, split, args.max_windows)
        classes = list(module.labels.classes)
        for name, net in nets.items():
            if net.info.classes != classes:
                raise SystemExit(f"{name}: classes {net.info.classes} differ from the annotation's {classes}")
            targets, probs = test_scores(net, module.dataloader("test"), args.stride, device,
                                         desc=f"{Path(name).parent.name} at {length:,}")
            scored = [c for c, keep in zip(classes, scored_classes(targets), strict=True) if keep]
            results[name][length] = {**mean_metrics(base_metrics(classes, targets, probs), scored),
                                     "bases": int(len(targets))}
    print("mean over classes, MCC / AUPRC, by the window length the test blocks are read with:")
    print("| model (trained at) | " + " | ".join(f"read at {n:,}" for n in args.lengths) + " |")
    print("|---|" + "---:|" * len(args.lengths))
    for name, net in nets.items():
        cells = [f"{results[name][n]['mcc']:.3f} / {results[name][n]['auprc']:.3f}" for n in args.lengths]
        print(f"| {Path(name).parent.name} ({net.info.context_length:,}) | " + " | ".join(cells) + " |")
    print("bases scored: " + ", ".join(f"{n:,}: {results[args.models[0]][n]['bases']:,}" for n in args.lengths))
    if args.json:
        args.json.write_text(json.dumps({k: {str(n): v for n, v in r.items()} for k, r in results.items()}, indent=1))


if __name__ == "__main__":
    main()
