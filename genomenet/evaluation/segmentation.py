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
MIN_THRESHOLD = 1e-6
"""The lowest threshold picked: a probability of exactly 0 is never a call (and decoding wants t in (0, 1])."""


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
                 threshold: float | np.ndarray = 0.5) -> dict[str, dict[str, float]]:
    """Per class: mcc, f1, auprc (NaN without positives) and positives (bases); `threshold` one for every class or
    (C,) one per class."""
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


def mcc_thresholds(targets: np.ndarray, probs: np.ndarray, default: float = 0.5) -> np.ndarray:
    """Per class, the threshold t that maximises the MCC of `probs >= t` on these bases (C,): every distinct
    probability is tried, by one sort per class. A class without positive and negative bases keeps `default`.

    Picked on validation bases and applied to the test bases (scikit-learn's TunedThresholdClassifierCV, per class),
    it fits each class's calls to the model: 0.5 on a sigmoid trained with a capped pos_weight over-calls some
    classes and under-calls others."""
    n, n_classes = probs.shape
    out = np.full(n_classes, default, dtype=np.float64)
    for c in np.flatnonzero(scored_classes(targets)):
        order = np.argsort(-probs[:, c], kind="stable")
        p, y = probs[order, c].astype(np.float64), targets[order, c].astype(bool)
        last = np.flatnonzero(np.r_[p[1:] != p[:-1], True])         # calls = the first last[i] + 1 bases
        tp = np.cumsum(y, dtype=np.float64)[last]
        fp = (last + 1) - tp
        positives = tp[-1]
        fn, tn = positives - tp, (n - positives) - fp
        denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        mcc = np.where(denominator > 0, (tp * tn - fp * fn) / np.maximum(denominator, 1e-300), -np.inf)
        out[c] = max(p[last[int(np.argmax(mcc))]], MIN_THRESHOLD)
    return out
