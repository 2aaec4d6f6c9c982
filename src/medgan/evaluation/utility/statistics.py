"""Statistics of the utility experiment: per-class sensitivity, specificity and ROC AUC of a classifier's
predictions, and mean / std / t-interval summaries over seeds (paired differences are summaries of per-seed
differences).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from scipy import stats as scipy_stats

def rank_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney U statistic from mid-ranks (ties count one half).

    Used instead of ``sklearn.metrics.roc_auc_score``, which gives the same number (a test checks it, ties
    included): importing scikit-learn sets ``KMP_DUPLICATE_LIB_OK``/``KMP_INIT_AT_FORK`` in the process
    environment, and the library must not change process-wide state.

    Args:
        positive: boolean [N], True for the positive class; both classes must occur.
        scores: [N], higher means more likely positive.
    """
    ranks = scipy_stats.rankdata(scores)
    positives = int(positive.sum())
    negatives = len(positive) - positives
    return float((ranks[positive].sum() - positives * (positives + 1) / 2) / (positives * negatives))


AUC_METHOD = "rank (Mann-Whitney) formula"


def classification_metrics(
    labels: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    """Per-class one-vs-rest sensitivity, specificity and AUC, plus overall summaries.

    The predicted class is the argmax of ``probabilities``; class c's sensitivity is TP / (TP + FN) and its
    specificity TN / (TN + FP) with "positive" meaning "class c"; its AUC ranks images by the probability of c.

    Args:
        labels: true class indices [N]; every class must occur, and at least two classes.
        probabilities: class probabilities (or scores) [N, K].
        class_names: K names, used as keys of ``per_class``.

    Returns:
        ``{"accuracy", "balanced_accuracy", "macro_auc", "macro_sensitivity", "macro_specificity", "per_class":
        {name: {"sensitivity", "specificity", "auc"}}}``, all floats in [0, 1].
    """
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    predicted = probabilities.argmax(axis=1)
    per_class: dict[str, dict[str, float]] = {}
    for index, name in enumerate(class_names):
        positive = labels == index
        hits = predicted == index
        per_class[name] = {
            "sensitivity": float((hits & positive).sum() / positive.sum()),
            "specificity": float((~hits & ~positive).sum() / (~positive).sum()),
            "auc": rank_auc(positive, probabilities[:, index]),
        }
    sensitivities = [value["sensitivity"] for value in per_class.values()]
    return {
        "accuracy": float((predicted == labels).mean()),
        "balanced_accuracy": float(np.mean(sensitivities)),
        "macro_auc": float(np.mean([value["auc"] for value in per_class.values()])),
        "macro_sensitivity": float(np.mean(sensitivities)),
        "macro_specificity": float(np.mean([value["specificity"] for value in per_class.values()])),
        "per_class": per_class,
    }


def summarize(
    values: Sequence[float], confidence: float = 0.95, bounds: tuple[float, float] | None = None
) -> dict[str, Any]:
    """Mean, sample std and t-distribution confidence interval of the mean over seeds.

    The interval is mean +/- t_{(1+confidence)/2, n-1} * std / sqrt(n); with one value it is undefined (None).

    Args:
        values: one number per seed.
        confidence: two-sided confidence level.
        bounds: the metric's range; the interval is clipped to it (with few seeds, t intervals of a score near
            1 otherwise reach past 1).

    Returns:
        ``{"mean", "std", "ci_low", "ci_high", "n", "values"}``.
    """
    array = np.asarray(values, dtype=np.float64)
    count = len(array)
    mean = float(array.mean())
    if count < 2:
        return {"mean": mean, "std": 0.0, "ci_low": None, "ci_high": None, "n": count, "values": array.tolist()}
    std = float(array.std(ddof=1))
    half_width = float(scipy_stats.t.ppf((1 + confidence) / 2, count - 1)) * std / math.sqrt(count)
    low, high = mean - half_width, mean + half_width
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return {"mean": mean, "std": std, "ci_low": low, "ci_high": high, "n": count, "values": array.tolist()}
