"""Classification metrics from scikit-learn, one function for binary, multi-class and multi-label predictions.

`targets` are what `LabelSet.target` gives, stacked: (n, 1) 0/1 (binary), (n, 1) class index (multi-class) or (n, C)
multi-hot; `probs` are (n, C) class probabilities (binary: [1 - p, p]). Multi-label accuracy is exact-match accuracy
and its MCC the mean over labels.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, matthews_corrcoef, roc_auc_score

METRICS = ("accuracy", "mcc", "f1", "auroc", "auprc")


def classification_metrics(kind: str, targets: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """accuracy, MCC, F1 (binary: of the positive class; else macro), AUROC and AUPRC (macro one-vs-rest)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        pred = predicted(kind, probs)
        if kind == "binary":
            y, p = targets[:, 0].astype(int), probs[:, 1]
            return {"accuracy": accuracy_score(y, pred), "mcc": matthews_corrcoef(y, pred),
                    "f1": f1_score(y, pred, zero_division=0), "auroc": _safe(roc_auc_score, y, p),
                    "auprc": _safe(average_precision_score, y, p)}
        if kind == "multiclass":
            y = targets[:, 0].astype(int)
            hot = np.eye(probs.shape[1], dtype=int)[y]
            return {"accuracy": accuracy_score(y, pred), "mcc": matthews_corrcoef(y, pred),
                    "f1": f1_score(y, pred, average="macro", labels=range(probs.shape[1]), zero_division=0),
                    "auroc": _macro(roc_auc_score, hot, probs), "auprc": _macro(average_precision_score, hot, probs)}
        y = targets.astype(int)
        mcc = np.mean([matthews_corrcoef(y[:, c], pred[:, c]) for c in range(y.shape[1])])
        return {"accuracy": accuracy_score(y, pred), "mcc": float(mcc),
                "f1": f1_score(y, pred, average="macro", zero_division=0),
                "auroc": _macro(roc_auc_score, y, probs), "auprc": _macro(average_precision_score, y, probs)}


def per_class_metrics(kind: str, classes: list[str], targets: np.ndarray, probs: np.ndarray) -> dict[str, dict]:
    """One-vs-rest F1, AUROC, AUPRC and support of every class (multi-class and multi-label)."""
    if kind == "binary":
        return {}
    hot = np.eye(len(classes), dtype=int)[targets[:, 0].astype(int)] if kind == "multiclass" else targets.astype(int)
    pred = np.eye(len(classes), dtype=int)[probs.argmax(1)] if kind == "multiclass" else (probs >= 0.5).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return {c: {"f1": f1_score(hot[:, i], pred[:, i], zero_division=0),
                    "auroc": _safe(roc_auc_score, hot[:, i], probs[:, i]),
                    "auprc": _safe(average_precision_score, hot[:, i], probs[:, i]),
                    "support": int(hot[:, i].sum())} for i, c in enumerate(classes)}


def _safe(metric, y: np.ndarray, score: np.ndarray) -> float:
    """NaN where the metric is undefined (one class only among the targets)."""
    return float(metric(y, score)) if 0 < y.sum() < len(y) else float("nan")


def _macro(metric, hot: np.ndarray, probs: np.ndarray) -> float:
    values = [_safe(metric, hot[:, c], probs[:, c]) for c in range(hot.shape[1])]
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def predicted(kind: str, probs: np.ndarray) -> np.ndarray:
    """Predicted labels: (n,) 0/1 at probability 0.5 (binary), (n,) the likeliest class (multi-class), (n, C) 0/1 per
    class at 0.5 (multi-label)."""
    if kind == "binary":
        return (probs[:, 1] >= 0.5).astype(int)
    if kind == "multiclass":
        return probs.argmax(1)
    return (probs >= 0.5).astype(int)


def correct(kind: str, targets: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(n,) bool: which predictions `classification_metrics`' accuracy counts as right (multi-label: every label)."""
    truth = targets.astype(int) if kind == "multilabel" else targets[:, 0].astype(int)
    right = predicted(kind, probs) == truth
    return right.all(1) if kind == "multilabel" else right


def genomic_units(chroms: list[str], centres: np.ndarray, unit_bases: int) -> np.ndarray:
    """(n,) int: the stretch of `unit_bases` each window's centre lies in (chromosome and position), the unit a
    bootstrap resamples: neighbouring windows overlap, so they are not independent draws."""
    keys = [(c, int(p) // unit_bases) for c, p in zip(chroms, centres, strict=True)]
    index = {key: i for i, key in enumerate(dict.fromkeys(keys))}
    return np.array([index[key] for key in keys], dtype=np.int64)


def paired_bootstrap(ours: np.ndarray, theirs: np.ndarray, units: np.ndarray, resamples: int = 2000,
                     seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """Accuracy difference (ours - theirs) of two models' per-window correctness on the same windows, and its
    percentile interval when whole units (genomic stretches) are resampled with replacement: how far the difference
    could move on another draw of test loci of the same kind."""
    ours, theirs = ours.astype(np.float64), theirs.astype(np.float64)
    n_units = int(units.max()) + 1
    diff_sum = np.bincount(units, ours - theirs, minlength=n_units)
    count = np.bincount(units, minlength=n_units).astype(np.float64)
    draws = np.random.default_rng(seed).integers(0, n_units, size=(resamples, n_units))
    diffs = diff_sum[draws].sum(1) / count[draws].sum(1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return float(ours.mean() - theirs.mean()), float(low), float(high)
