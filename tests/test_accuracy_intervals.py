"""The region report's accuracy differences: which predictions count as right, the genomic stretches a bootstrap
resamples, and the paired interval's width against an independent computation."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score

from genomenet.evaluation.classification import correct, genomic_units, paired_bootstrap


def test_correct_agrees_with_scikit_learns_accuracy_for_every_kind() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=50)
    classes = rng.integers(0, 4, size=(50, 1))
    assert correct("multiclass", classes, probs).mean() == accuracy_score(classes[:, 0], probs.argmax(1))
    p = rng.random(50)
    labels = rng.integers(0, 2, size=(50, 1))
    assert correct("binary", labels, np.stack([1 - p, p], 1)).mean() == accuracy_score(labels[:, 0], p >= 0.5)
    multi, hot = rng.random((50, 3)), rng.integers(0, 2, size=(50, 3))
    assert correct("multilabel", hot, multi).mean() == accuracy_score(hot, (multi >= 0.5).astype(int))


def test_windows_in_one_stretch_of_one_chromosome_share_a_unit() -> None:
    units = genomic_units(["chr1", "chr1", "chr1", "chr2", "chr1"], np.array([10, 99_999, 100_000, 10, 250_000]),
                          100_000)
    assert units.tolist() == [0, 0, 1, 2, 3]


def test_the_interval_follows_the_units_not_the_windows() -> None:
    """Twenty stretches, each all right or all wrong for one model: resampling stretches gives the spread of a mean
    of twenty draws, far wider than resampling four hundred windows would."""
    rng = np.random.default_rng(1)
    per_unit = rng.random(20) < 0.5
    units = np.repeat(np.arange(20), 20)
    ours, theirs = per_unit[units], np.zeros(400, dtype=bool)
    difference, low, high = paired_bootstrap(ours, theirs, units, resamples=4000)
    assert difference == per_unit.mean()
    sd = per_unit.std() / np.sqrt(20)            # the standard error of a mean of 20 stretches
    assert 3.9 * sd * 0.85 < high - low < 3.9 * sd * 1.15
    assert low < difference < high


def test_identical_predictions_differ_by_nothing() -> None:
    rng = np.random.default_rng(2)
    right = rng.random(100) < 0.6
    assert paired_bootstrap(right, right, rng.integers(0, 12, 100) % 12) == (0.0, 0.0, 0.0)
