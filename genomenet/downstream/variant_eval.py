"""Variant scores against labels: AUROC and AUPRC of every score beside an order-k Markov model's own LLR.

Labels are 1 for the class a score should rank first (e.g. rare, pathogenic) and 0 otherwise. Each score is oriented
as an effect size, higher = more disruptive: -llr, -log_odds, cosine, l2 (and -LLR for the Markov baseline). The
Markov model is counted on the FASTA outside every scored contig's variant span (first to last variant, widened by
the window), its order chosen on the tail of that training part; it scores each allele in a window centred on it
(a Markov LLR changes only within the model's order of the variant, so the model's readings would give the same).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

EFFECT_SIGN = {"llr": -1.0, "log_odds": -1.0, "cosine": 1.0, "l2": 1.0, "markov_llr": -1.0}


@dataclass
class LabelledScores:
    """Per scored ALT: its label and its scores (NaN where not scored)."""

    labels: list[int] = field(default_factory=list)
    scores: dict[str, list[float]] = field(default_factory=dict)

    def add(self, label: int, values: dict[str, float | None]) -> None:
        self.labels.append(label)
        for name, value in values.items():
            self.scores.setdefault(name, []).append(np.nan if value is None else value)

    def oriented(self) -> dict[str, np.ndarray]:
        """Each score as an effect size, higher = more disruptive."""
        return {name: EFFECT_SIGN.get(name, 1.0) * np.asarray(values) for name, values in self.scores.items()}

    def table(self) -> str:
        y = np.asarray(self.labels)
        lines = [f"labelled ALTs: {len(y)} ({int(y.sum())} positive); scores oriented higher = more disruptive",
                 "| score | scored | AUROC | AUPRC |", "|---|---:|---:|---:|"]
        for name, x in self.oriented().items():
            ok = ~np.isnan(x)
            both = 0 < y[ok].sum() < ok.sum()
            auroc = roc_auc_score(y[ok], x[ok]) if both else float("nan")
            auprc = average_precision_score(y[ok], x[ok]) if both else float("nan")
            shown = "Markov LLR (baseline)" if name == "markov_llr" else name
            lines.append(f"| {shown} | {int(ok.sum())} | {auroc:.3f} | {auprc:.3f} |")
        return "\n".join(lines)
