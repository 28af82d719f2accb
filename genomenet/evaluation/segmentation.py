"""Base-level metrics of per-base multi-label predictions: MCC, F1 and AUPRC per class, and their mean.

`targets` are (n, C) 0/1 labels of n scored bases, `probs` (n, C) sigmoid outputs; a base has a class when its
probability is at least `threshold`. MCC and F1 are counted from the confusion table (vectorised over classes, equal
to scikit-learn's `matthews_corrcoef` and `f1_score(zero_division=0)`); AUPRC is scikit-learn's
`average_precision_score`. A class with no positive (or no negative) base among the scored ones has an undefined
AUPRC (NaN) and an MCC of 0 whatever the model does, so means are taken over the classes that have both.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score

SEGMENT_METRICS = ("mcc", "f1", "auprc")


def confusion(targets: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, ...]:
    """(tp, fp, fn, tn) per class, float64 (C,) each."""
    y, p = targets.astype(bool), predicted.astype(bool)
    tp = (y & p).sum(0).astype(np.float64)
    fp = (~y & p).sum(0).astype(np.float64)
    fn = (y & ~p).sum(0).astype(np.float64)
    return tp, fp, fn, len(y) - tp - fp - fn


def mcc_per_class(targets: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Matthews correlation (C,) of 0/1 predictions; 0 where it is undefined (a constant row or column)."""
    tp, fp, fn, tn = confusion(targets, predicted)
    denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return np.where(denominator > 0, (tp * tn - fp * fn) / np.maximum(denominator, 1e-300), 0.0)


def f1_per_class(targets: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """F1 (C,) of the positive class; 0 where nothing is positive in either."""
    tp, fp, fn, _ = confusion(targets, predicted)
    return np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)


def scored_classes(targets: np.ndarray) -> np.ndarray:
    """(C,) bool: classes with at least one positive and one negative base, the ones a mean is taken over."""
    positives = targets.sum(0)
    return (positives > 0) & (positives < len(targets))


def mean_mcc(targets: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> float:
    """Mean MCC over the scored classes (0 when none is)."""
    keep = scored_classes(targets)
    mcc = mcc_per_class(targets, probs >= threshold)
    return float(mcc[keep].mean()) if keep.any() else 0.0


def base_metrics(classes: list[str], targets: np.ndarray, probs: np.ndarray,
                 threshold: float = 0.5) -> dict[str, dict[str, float]]:
    """Per class: mcc, f1, auprc (NaN without positives) and positives (bases)."""
    predicted = probs >= threshold
    mcc, f1 = mcc_per_class(targets, predicted), f1_per_class(targets, predicted)
    keep = scored_classes(targets)
    out = {}
    for c, name in enumerate(classes):
        auprc = float(average_precision_score(targets[:, c], probs[:, c])) if keep[c] else float("nan")
        out[name] = {"mcc": float(mcc[c]), "f1": float(f1[c]), "auprc": auprc,
                     "positives": int(targets[:, c].sum())}
    return out


def mean_metrics(per_class: dict[str, dict[str, float]], classes: list[str]) -> dict[str, float]:
    """Mean of each metric over `classes` (the scored ones)."""
    return {m: float(np.mean([per_class[c][m] for c in classes])) if classes else float("nan")
            for m in SEGMENT_METRICS}
