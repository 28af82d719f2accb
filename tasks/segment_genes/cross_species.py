"""Cross-species: a segmenter trained on one genome, scored at base level on another genome's annotation.

Every window of the other genome is read (forward strand, tiled end to end), and MCC / F1 / AUPRC are computed over
its known bases for the classes both annotations have. The other genome was never seen, so all of it is held out.

    python tasks/segment_genes/cross_species.py MODEL FASTA ANNOTATION [--window 4096] [--max-bases 2000000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from sklearn.metrics import average_precision_score  # noqa: E402

from genomenet.data.annotation import read_annotation  # noqa: E402
from genomenet.data.cache import prepare  # noqa: E402
from genomenet.data.segment_datamodule import read_window  # noqa: E402
from genomenet.data.tokenizers import make_tokenizer  # noqa: E402
from genomenet.evaluation.segmentation import f1_per_class, mcc_per_class  # noqa: E402
from genomenet.model.segmenter import load_segmenter  # noqa: E402


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("fasta")
    parser.add_argument("annotation")
    parser.add_argument("--window", type=int, default=0, help="bases per window (default: the model's)")
    parser.add_argument("--max-bases", type=int, default=2_000_000, help="score every s-th known base beyond this")
    args = parser.parse_args()
    torch.manual_seed(0)
    net = load_segmenter(args.model, make_tokenizer)
    window = args.window or net.info.context_length
    genome = prepare(args.fasta)
    labels = read_annotation(args.annotation, genome.lengths)
    shared = [c for c in net.info.classes if c in labels.classes]
    model_cols = [net.info.classes.index(c) for c in shared]
    label_cols = [labels.classes.index(c) for c in shared]
    tokenizer = make_tokenizer(net.info.kmer_size)
    probs, targets = [], []
    tiles = [(c, s) for c, n in genome.lengths.items() for s in range(0, n, window)]
    for chrom, start in tqdm(tiles, desc="scoring windows", unit="window"):
        item = read_window(genome, labels, tokenizer, chrom, start, window)
        known = item["known"].numpy()
        if not known.any():
            continue
        logits = net(item["input_ids"][None])[0].float()
        probs.append(torch.sigmoid(logits).numpy()[known][:, model_cols])
        targets.append(item["labels"].numpy()[known][:, label_cols])
    p, t = np.concatenate(probs), np.concatenate(targets).astype(bool)
    stride = max(1, -(-len(p) // args.max_bases))
    p, t = p[::stride], t[::stride]
    mcc, f1 = mcc_per_class(t, p >= 0.5), f1_per_class(t, p >= 0.5)
    print(f"{args.model} on {args.fasta} ({args.annotation}): {len(p):,} bases scored (every {stride}th known "
          f"base), window {window:,}; MCC / F1 / AUPRC at base level, threshold 0.5")
    print("| class | positive bases | MCC | F1 | AUPRC |\n|---|---:|---:|---:|---:|")
    for i, c in enumerate(shared):
        auprc = average_precision_score(t[:, i], p[:, i]) if t[:, i].any() else float("nan")
        print(f"| {c} | {int(t[:, i].sum()):,} | {mcc[i]:.3f} | {f1[i]:.3f} | {auprc:.3f} |")
    present = t.any(0)
    print(f"| mean over {int(present.sum())} classes present | | {np.mean(mcc[present]):.3f} | "
          f"{np.mean(f1[present]):.3f} | |")


if __name__ == "__main__":
    main()
