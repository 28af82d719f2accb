"""Does reading every 4-mer frame lift what the frozen backbone's pooled states say about species? (session 32)

For each window of the task's split (run.sh's centres: split_context 32,768) this embeds the window in the 4 frames
(moved 0-3 bases) and as the reverse complement of each, mean-pools the backbone's final states, and fits logistic
regression (standardised features, C in 0.01..100, the best C on validation) on the training windows' vectors read
several ways. Prints one row per reading: validation and test accuracy at the chosen C, and test accuracy at every C.
About 12 minutes at 8K on two CPU threads.

    python tasks/drosophila_species/frames_probe.py [--length 8192] [--backbone runs/tasks/drosophila_k4/backbone]
        [--states STATES.npz]   # kept there, and read from there when it exists (the fits alone take seconds)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

from genomenet.data.region_datamodule import RegionDataModule
from genomenet.data.splits import SplitConfig
from genomenet.data.tokenizers import make_tokenizer
from genomenet.model.pretrained import load_pretrained

TASK = "runs/tasks/drosophila_species/"
C_GRID = (0.01, 0.1, 1, 10, 100)
READINGS = {  # (windows, frames, strands, d) -> (windows, features)
    "frame 0, forward": lambda a: a[:, 0, 0],
    "frame 0, both strands averaged": lambda a: a[:, 0].mean(1),
    "4 frames averaged, forward": lambda a: a[:, :, 0].mean(1),
    "4 frames x 2 strands averaged": lambda a: a.mean((1, 2)),
}


def pooled_states(net, data: RegionDataModule, split: str, length: int) -> np.ndarray:
    """(windows, 4 frames, 2 strands, d) mean-pooled final states."""
    bases, kmers = make_tokenizer(1), make_tokenizer(4)
    rc = torch.as_tensor(kmers.reverse_complement_ids)
    out = []
    for row in tqdm(data.window_tokens(split), desc=f"embedding {split} windows"):
        text = bases.decode(row)
        ids = torch.as_tensor(np.stack([kmers.encode(text[f:f + length]) for f in range(4)]))
        with torch.no_grad():
            forward = net.hidden_states(ids).mean(1)
            reverse = net.hidden_states(rc[ids.flip(1)]).mean(1)
        out.append(torch.stack([forward, reverse], 1).numpy())
    return np.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--length", type=int, default=8192)
    parser.add_argument("--backbone", default="runs/tasks/drosophila_k4/backbone")
    parser.add_argument("--states", type=Path, help="npz of the pooled states (written when absent)")
    args = parser.parse_args()
    data = RegionDataModule(TASK + "genome.fa", TASK + "regions.bed", context_length=args.length + 4, kmer_size=1,
                            split=SplitConfig(by="bed", blocks=TASK + "split_blocks.bed"), split_context=32768)
    data.setup("fit")
    if args.states and args.states.exists():
        saved = np.load(args.states)
        states = {s: saved[f"{s}_x"] for s in ("train", "val", "test")}
    else:
        net = load_pretrained(args.backbone).eval()
        states = {s: pooled_states(net, data, s, args.length) for s in ("train", "val", "test")}
        if args.states:
            np.savez(args.states, **{f"{s}_x": x for s, x in states.items()})
    labels = {s: data.splits[s].targets[:, 0].astype(int) for s in states}
    grid = ", ".join(map(str, C_GRID))
    print(f"| reading ({args.length:,} bases) | C | validation | test | test at C = {grid} |")
    print("|---|---:|---:|---:|---|")
    for name, read in READINGS.items():
        x = {s: read(states[s]) for s in states}
        scale = StandardScaler().fit(x["train"])
        scores = []
        for c in C_GRID:
            fit = LogisticRegression(C=c, max_iter=5000).fit(scale.transform(x["train"]), labels["train"])
            scores.append((c, *(fit.score(scale.transform(x[s]), labels[s]) for s in ("val", "test"))))
        c, val, test = max(scores, key=lambda r: r[1])
        print(f"| {name} | {c} | {val:.3f} | {test:.3f} | " + " ".join(f"{r[2]:.3f}" for r in scores) + " |")


if __name__ == "__main__":
    main()
