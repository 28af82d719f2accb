"""Do the model's embeddings separate CDS, introns, mobile elements and intergenic DNA better than k-mer counts?

Labelled 300-base windows of D. melanogaster chr4 (make_regions.py) are embedded with `genomenet embed` (one
mean-pooled row per window), projected to 2-D by PCA beside the same picture of their 4-mer frequencies, and scored
against k-mer frequencies (k = 2..6) and GC by logistic regression cross-validated over 100 kb blocks of the
chromosome (GroupKFold), so that neighbouring windows of one element never sit on both sides of a split. Needs a
trained model:

    bash scripts/quickstart.sh                  # trains runs/quickstart/model
    python tasks/embedding_pca/run.py           # writes runs/embedding_pca/
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np
from make_regions import CLASSES, FASTA, make_regions, read_fasta

BLOCK = 100_000
"""Bases per cross-validation group: windows closer than this mostly share a fold."""
COLOURS = {"cds": "tab:red", "intron": "tab:blue", "mobile_element": "tab:green", "intergenic": "tab:gray"}
COMPLEMENT = str.maketrans("ACGT", "TGCA")


def kmer_frequencies(sequences: list[str], k: int) -> np.ndarray:
    """(n, 4**k) frequencies of the overlapping k-mers of each sequence; k-mers with a non-ACGT base are skipped."""
    index = {"".join(kmer): i for i, kmer in enumerate(itertools.product("ACGT", repeat=k))}
    counts = np.zeros((len(sequences), len(index)))
    for row, seq in enumerate(sequences):
        for i in range(len(seq) - k + 1):
            column = index.get(seq[i : i + k])
            if column is not None:
                counts[row, column] += 1
    return counts / counts.sum(1, keepdims=True).clip(min=1)


def window_sequences(coords: np.ndarray, fasta: Path) -> list[str]:
    """Each row's bases as the model read them: reverse complemented on the minus strand, uppercase."""
    genome = read_fasta(fasta)
    out = []
    for row in coords:
        seq = genome[row["chrom"]][row["start"] : row["end"]]
        out.append(seq.translate(COMPLEMENT)[::-1] if row["strand"] == "-" else seq)
    return out


def embed_regions(model: Path, bed: Path, out: Path, layer: int, reverse_complement: str) -> Path:
    """`genomenet embed --per region` through its library function; a previous file is replaced, not resumed."""
    from genomenet.inference.embed import EmbedOptions, embed

    out.unlink(missing_ok=True)
    options = EmbedOptions(per="region", layer=layer, reverse_complement=reverse_complement)
    print(f"genomenet embed --model {model} --fasta {FASTA} --regions {bed} --out {out} --per region "
          f"--layer {layer} --reverse-complement {reverse_complement} --quiet")
    return embed(model, FASTA, out, bed, options, device="cpu", progress=False)


def cross_validated(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, folds: int) -> dict[str, np.ndarray]:
    """Per-fold accuracy and macro-F1 of standardised logistic regression; the folds are genomic blocks, the same
    for every feature set (GroupKFold is deterministic), so feature sets can be compared fold by fold."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_validate
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    scores = cross_validate(model, features, labels, groups=groups, cv=GroupKFold(n_splits=folds),
                            scoring=("accuracy", "f1_macro"))
    return {"accuracy": scores["test_accuracy"], "macro-F1": scores["test_f1_macro"]}


def results_table(scores: dict[str, dict[str, np.ndarray]], dims: dict[str, int], n: int, folds: int) -> str:
    """A markdown table of the scores (mean +- sd over folds), one row per feature set."""
    lines = [f"{n} windows, {len(CLASSES)} balanced classes (chance 0.25); logistic regression, GroupKFold "
             f"({folds} folds) over {BLOCK // 1000} kb blocks; mean +- sd over folds", "",
             "| features | dims | accuracy | macro-F1 |", "|---|---:|---:|---:|"]
    for name, s in scores.items():
        cells = " | ".join(f"{s[m].mean():.3f} +- {s[m].std():.3f}" for m in ("accuracy", "macro-F1"))
        lines.append(f"| {name} | {dims[name]} | {cells} |")
    return "\n".join(lines)


def verdict(model: dict[str, np.ndarray], baseline: dict[str, np.ndarray], baseline_name: str) -> str:
    """One plain sentence: do the embeddings beat the baseline on macro-F1, fold by fold?"""
    gap = model["macro-F1"] - baseline["macro-F1"]  # (folds,), paired: the same test blocks
    wins, folds = int((gap > 0).sum()), len(gap)
    side = "beat" if gap.mean() > 0 else "LOSE TO"
    clear = "clearly" if abs(gap.mean()) > gap.std() else "not clearly (the gap is within one sd of its folds)"
    return (f"The model embeddings {side} the {baseline_name} baseline, {clear}: macro-F1 {gap.mean():+.3f} +- "
            f"{gap.std():.3f} per fold, better in {wins} of {folds} folds.")


def zoom(ax, xy: np.ndarray, keep: float = 0.98) -> int:
    """Limit the view to the central `keep` of the points on each axis (a few tandem-repeat windows lie far out and
    would squeeze the rest into a corner); returns how many points are left outside."""
    lo, hi = np.quantile(xy, [(1 - keep) / 2, (1 + keep) / 2], axis=0)  # (2,) each
    pad = 0.08 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    return int(((xy < lo) | (xy > hi)).any(1).sum())


def pca_panel(ax, name: str, features: np.ndarray, labels: np.ndarray, f1: float) -> None:
    """Scatter of the first two principal components of the standardised features (as the classifier sees them: no
    dimension dominates), coloured by class; axis labels give the variance each component explains."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    scaled = StandardScaler().fit_transform(features)
    pca = PCA(n_components=2).fit(scaled)
    xy = pca.transform(scaled)  # (n, 2)
    for label in CLASSES:
        keep = labels == label
        ax.scatter(xy[keep, 0], xy[keep, 1], s=7, alpha=0.6, c=COLOURS[label], label=label, linewidths=0)
    pc1, pc2 = 100 * pca.explained_variance_ratio_
    outside = zoom(ax, xy)
    note = f"; {outside} points beyond the view" if outside else ""
    ax.set(xlabel=f"PC1 ({pc1:.1f}% of variance)", ylabel=f"PC2 ({pc2:.1f}% of variance)",
           title=f"{name}\nblock-CV macro-F1 {f1:.2f}{note}")


def plot_pca(panels: dict[str, np.ndarray], labels: np.ndarray, scores: dict[str, dict], out: Path) -> None:
    """One PCA panel per feature set, side by side in one PNG (small enough for the docs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.8), squeeze=False)
    for ax, (name, features) in zip(axes[0], panels.items()):
        pca_panel(ax, name, features, labels, scores[name]["macro-F1"].mean())
    axes[0, 0].legend(title="annotation class", markerscale=2, fontsize=8)
    fig.suptitle("D. melanogaster chr4, 300-base windows: PCA of standardised features", fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def model_missing(model: Path) -> str | None:
    """Why `model` cannot be used, in one line, or None."""
    if (model / "config.json").is_file() or (model.suffix == ".ckpt" and model.is_file()):
        return None
    return f"{model}: no trained model there; run `bash scripts/quickstart.sh` first (it writes runs/quickstart/model)"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=Path("runs/quickstart/model"), help="exported model directory")
    parser.add_argument("--out-dir", type=Path, default=Path("runs/embedding_pca"), help="where outputs go")
    parser.add_argument("--k", type=int, default=4, help="k-mer size of the baseline in the picture")
    parser.add_argument("--ks", type=int, nargs="+", default=[2, 3, 4, 5, 6], help="k-mer sizes scored in the table")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds (groups: 100 kb blocks)")
    parser.add_argument("--layer", type=int, default=-1, help="hidden states after this many blocks (-1: last)")
    parser.add_argument("--reverse-complement", choices=("none", "average"), default="none",
                        help="average the embeddings of both strands")
    return parser.parse_args(argv)


def evaluate(emb, ks: list[int], folds: int) -> tuple[dict, dict, np.ndarray]:
    """Feature sets of the embedded rows (embeddings, k-mer frequencies for each k, GC), their cross-validated
    scores, and the rows' labels."""
    labels, groups = emb.coords["name"].astype(str), emb.coords["start"] // BLOCK
    sequences = window_sequences(emb.coords, FASTA)
    features = {"model embeddings": emb.embeddings.astype(np.float64)}
    features |= {f"{k}-mer frequencies": kmer_frequencies(sequences, k) for k in ks}
    features["GC fraction"] = kmer_frequencies(sequences, 1)[:, [1, 2]].sum(1, keepdims=True)
    scores = {name: cross_validated(x, labels, groups, folds) for name, x in features.items()}
    return features, scores, labels


def report(scores: dict, dims: dict[str, int], n: int, args: argparse.Namespace, timing: str) -> str:
    """The table, the verdicts against the declared k-mer baseline and the best k, and how long it took; also
    written to results.md. The best k is picked on the test folds, which flatters the baseline, not the model."""
    kmers = [name for name in scores if name.endswith("-mer frequencies")]
    best = max(kmers, key=lambda name: scores[name]["macro-F1"].mean())
    chosen, model = f"{args.k}-mer frequencies", scores["model embeddings"]
    lines = [results_table(scores, dims, n, args.folds), "", verdict(model, scores[chosen], chosen)]
    if best != chosen:
        lines.append(verdict(model, scores[best], f"best k-mer ({best})"))
    text = "\n".join(lines + ["", timing])
    (args.out_dir / "results.md").write_text(text + "\n")
    return text


def main(argv: list[str] | None = None) -> int:
    args, began = parse_args(argv), time.perf_counter()
    if problem := model_missing(args.model):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    bed, png = args.out_dir / "regions.bed", args.out_dir / "embedding_pca.png"
    counts = make_regions(bed)
    print("regions: " + ", ".join(f"{label} {n}" for label, n in counts.items()))
    h5 = embed_regions(args.model, bed, args.out_dir / "embeddings.h5", args.layer, args.reverse_complement)
    embedded = time.perf_counter()
    from genomenet.inference import read_embeddings

    features, scores, labels = evaluate(read_embeddings(h5), sorted(set(args.ks) | {args.k}), args.folds)
    plot_pca({name: features[name] for name in ("model embeddings", f"{args.k}-mer frequencies")}, labels, scores,
             png)
    timing = f"run time {time.perf_counter() - began:.0f} s (embedding {embedded - began:.0f} s); figure {png}"
    print(report(scores, {name: x.shape[1] for name, x in features.items()}, len(labels), args, timing))
    return 0


if __name__ == "__main__":
    sys.exit(main())
