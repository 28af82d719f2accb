"""Which reading of a frozen backbone carries the promoter signal? Linear probes on the task's windows (same split and
windows as `finetune.yaml`) read at every layer, one strand or both, beside k-mer spectra, each with C chosen on the
validation split from a finer grid than the report's. A diagnostic for README.md, not part of the task's run.

    python tasks/promoters_chr20/probe_readings.py runs/tasks/chr20/backbone     # about 8 min on 2 CPU cores
    python tasks/promoters_chr20/probe_readings.py runs/tasks/tair10_chr1_k4/backbone --context-length 2000 \
        --regions runs/tasks/genes_tair10_chr1/regions.bed \
        --fasta ../shared/data/genomes/tair10_chr1.fna.gz                     # genes_tair10_chr1's windows
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from genomenet.baselines.kmer import kmer_spectrum, logistic_regression  # noqa: E402
from genomenet.data.region_datamodule import RegionDataModule  # noqa: E402
from genomenet.data.splits import SplitConfig  # noqa: E402
from genomenet.downstream.regions import window_codes  # noqa: E402
from genomenet.model.pretrained import load_pretrained  # noqa: E402

C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


@torch.no_grad()
def layer_means(backbone, datamodule, split: str, batch_size: int = 32) -> np.ndarray:
    """(windows, 2 strands, layers + 1, d_model): each layer's states averaged over the window's real tokens, read
    as the window stands and on its reverse complement."""
    tokenizer = datamodule.tokenizer
    rc = torch.as_tensor(tokenizer.reverse_complement_ids)
    tokens = torch.from_numpy(datamodule.window_tokens(split)).long()
    out = []
    for start in range(0, len(tokens), batch_size):
        ids = tokens[start:start + batch_size]
        real = ids != tokenizer.pad_id
        strands = []
        for x, mask in ((ids, real), (rc[ids.flip(1)], real.flip(1))):
            weight = mask.float().unsqueeze(-1)
            strands.append([((backbone.hidden_states(x, key_padding_mask=~mask, layer=layer) * weight).sum(1)
                             / weight.sum(1)).numpy() for layer in range(backbone.cfg.n_layers + 1)])
        out.append(np.asarray(strands).transpose(2, 0, 1, 3))
    return np.concatenate(out)


def probe(features: dict[str, np.ndarray], targets: dict[str, np.ndarray]) -> tuple[float, float, float]:
    """(C, validation accuracy, test accuracy) of the standardised logistic regression best on validation."""
    best = None
    for c in C_GRID:
        model = logistic_regression("binary", c)
        model.fit(features["train"], targets["train"])
        val = model.score(features["val"], targets["val"])
        if best is None or val > best[1]:
            best = (c, val, model.score(features["test"], targets["test"]))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("backbone", help="an exported model (the task's pre-trained backbone)")
    parser.add_argument("--regions", default="runs/tasks/promoters_chr20/regions.bed")
    parser.add_argument("--fasta", default="../shared/data/genomes/grch37_chr20.fa.gz")
    parser.add_argument("--context-length", type=int, default=1000, help="the task's window (finetune.yaml)")
    args = parser.parse_args()

    backbone = load_pretrained(args.backbone).float().eval()
    split = SplitConfig(by="block", block_size=1_000_000, val_fraction=0.1, test_fraction=0.2, seed=0)
    datamodule = RegionDataModule(args.fasta, args.regions, context_length=args.context_length,
                                  kmer_size=backbone.info.kmer_size, split=split)   # windows in the backbone's tokens
    datamodule.setup("fit")
    splits = ("train", "val", "test")
    t0 = time.perf_counter()
    means = {s: layer_means(backbone, datamodule, s) for s in splits}
    targets = {s: datamodule.splits[s].targets.ravel() for s in splits}
    print(f"windows: {', '.join(f'{s} {len(means[s])}' for s in splits)}; features in "
          f"{time.perf_counter() - t0:.0f} s")

    last = backbone.cfg.n_layers
    readings = {f"layer {layer} (0 = token embeddings), one strand": lambda m, la=layer: m[:, 0, la]
                for layer in range(last + 1)}
    readings["last layer, both strands"] = lambda m: m[:, :, last].reshape(len(m), -1)
    readings["every layer, one strand"] = lambda m: m[:, 0].reshape(len(m), -1)
    readings["every layer, both strands"] = lambda m: m.reshape(len(m), -1)
    codes = {s: window_codes(datamodule, s) for s in splits}
    print("| features | C (on val) | val accuracy | test accuracy |\n|---|---:|---:|---:|")
    for name, read in readings.items():
        c, val, test = probe({s: read(means[s]) for s in splits}, targets)
        print(f"| probe: {name} | {c} | {val:.3f} | {test:.3f} |", flush=True)
    for k in (2, 3, 4, 5):
        c, val, test = probe({s: kmer_spectrum(codes[s], k) for s in splits}, targets)
        print(f"| {k}-mer spectrum | {c} | {val:.3f} | {test:.3f} |", flush=True)


if __name__ == "__main__":
    main()
