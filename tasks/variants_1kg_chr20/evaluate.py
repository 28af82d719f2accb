"""AUROC and AUPRC of every score in a `genomenet score-variants --tsv` table against labels.tsv, overall and
stratified by RefSeq exon vs the rest; scores oriented higher = more disruptive (genomenet.downstream.variant_eval).

    python tasks/variants_1kg_chr20/evaluate.py runs/tasks/variants_1kg_chr20/scores.tsv
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from genomenet.downstream.variant_eval import EFFECT_SIGN, LabelledScores

NAMES = {"GN_LLR": "llr", "GN_LOGODDS": "log_odds", "GN_COS": "cosine", "GN_L2": "l2", "GN_MARKOV_LLR": "markov_llr"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scores", type=Path)
    parser.add_argument("--labels", type=Path, default=Path("runs/tasks/variants_1kg_chr20/labels.tsv"))
    args = parser.parse_args()
    labels = {(r["chrom"], r["pos"], r["ref"], r["alt"]): r for r in csv.DictReader(open(args.labels), delimiter="\t")}
    strata = {"all": LabelledScores(), "RefSeq exon": LabelledScores(), "outside exons": LabelledScores()}
    for row in csv.DictReader(open(args.scores), delimiter="\t"):
        label = labels.get((row["chrom"], row["pos"], row["ref"], row["alt"]))
        if label is None or row["flag"] != ".":
            continue
        values = {NAMES[k]: (None if v == "." else float(v)) for k, v in row.items() if k in NAMES}
        strata["all"].add(int(label["label"]), values)
        strata["RefSeq exon" if label["exon"] == "1" else "outside exons"].add(int(label["label"]), values)
    for name, scores in strata.items():
        print(f"## {name}")
        print(scores.table() if scores.labels else "no labelled variants")
    assert set(EFFECT_SIGN) >= set(NAMES.values()), "every score has an orientation"


if __name__ == "__main__":
    main()
