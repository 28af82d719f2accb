"""AUROC and AUPRC of every score in a `genomenet score-variants --tsv` table against labels.tsv, overall and
stratified by RefSeq exon vs the rest; scores oriented higher = more disruptive (genomenet.downstream.variant_eval).
With `--bootstrap N`, each score's AUROC minus the Markov LLR's on the same variants, with a 95% interval from N
paired bootstrap resamples (the two scores are correlated, so their separate intervals would overstate the noise).
`--exclude` drops the variants of another label file (e.g. the ones used to choose the span).

    python tasks/variants_1kg_chr20/evaluate.py runs/tasks/variants_1kg_chr20/scores.tsv
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from genomenet.downstream.variant_eval import EFFECT_SIGN, LabelledScores

NAMES = {"GN_LLR": "llr", "GN_LOGODDS": "log_odds", "GN_COS": "cosine", "GN_L2": "l2", "GN_MARKOV_LLR": "markov_llr"}


def variant_key(row: dict) -> tuple[str, str, str, str]:
    return row["chrom"], row["pos"], row["ref"], row["alt"]


def auroc_difference(y: np.ndarray, score: np.ndarray, baseline: np.ndarray, resamples: int,
                     seed: int = 0) -> tuple[float, float, float]:
    """AUROC(score) - AUROC(baseline) on the same variants, and the 2.5% / 97.5% quantiles over paired resamples."""
    ok = ~(np.isnan(score) | np.isnan(baseline))
    y, score, baseline = y[ok], score[ok], baseline[ok]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        i = rng.integers(0, len(y), len(y))
        if 0 < y[i].sum() < len(i):
            draws.append(roc_auc_score(y[i], score[i]) - roc_auc_score(y[i], baseline[i]))
    low, high = np.quantile(draws, [0.025, 0.975])
    return roc_auc_score(y, score) - roc_auc_score(y, baseline), float(low), float(high)


def difference_table(scores: LabelledScores, resamples: int) -> str:
    y = np.asarray(scores.labels)
    oriented = scores.oriented()
    lines = [f"| score | AUROC minus the Markov LLR's | 95% interval ({resamples} paired resamples) |",
             "|---|---:|---|"]
    for name, values in oriented.items():
        if name != "markov_llr":
            diff, low, high = auroc_difference(y, values, oriented["markov_llr"], resamples)
            lines.append(f"| {name} | {diff:+.3f} | {low:+.3f} to {high:+.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scores", type=Path)
    parser.add_argument("--labels", type=Path, default=Path("runs/tasks/variants_1kg_chr20/labels.tsv"))
    parser.add_argument("--exclude", type=Path, help="a label TSV whose variants are left out")
    parser.add_argument("--bootstrap", type=int, default=0, help="paired resamples for the AUROC differences")
    args = parser.parse_args()
    labels = {variant_key(r): r for r in csv.DictReader(open(args.labels), delimiter="\t")}
    if args.exclude:
        for r in csv.DictReader(open(args.exclude), delimiter="\t"):
            labels.pop(variant_key(r), None)
    strata = {"all": LabelledScores(), "RefSeq exon": LabelledScores(), "outside exons": LabelledScores()}
    for row in csv.DictReader(open(args.scores), delimiter="\t"):
        label = labels.get(variant_key(row))
        if label is None or row["flag"] != ".":
            continue
        values = {NAMES[k]: (None if v == "." else float(v)) for k, v in row.items() if k in NAMES}
        strata["all"].add(int(label["label"]), values)
        strata["RefSeq exon" if label["exon"] == "1" else "outside exons"].add(int(label["label"]), values)
    for name, scores in strata.items():
        print(f"## {name}")
        print(scores.table() if scores.labels else "no labelled variants")
        if args.bootstrap and scores.labels and "markov_llr" in scores.scores:
            print(difference_table(scores, args.bootstrap))
    assert set(EFFECT_SIGN) >= set(NAMES.values()), "every score has an orientation"


if __name__ == "__main__":
    main()
