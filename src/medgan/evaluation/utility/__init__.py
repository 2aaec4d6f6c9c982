"""medgan.evaluation.utility: downstream diagnostic utility of synthetic images (``medgan utility``).

Does a classifier trained with synthetic images do better on real data? The modules, lowest first:

* ``config``: ``UtilityConfig`` (classifier training and summary settings).
* ``classifier``: ``SmallClassifier``, ``train_classifier``, ``predict_probabilities``, ``training_steps``,
  ``augmentation_text``.
* ``statistics``: ``classification_metrics`` (per-class sensitivity, specificity, AUC), ``rank_auc``,
  ``summarize`` (mean, std and t-interval over seeds), ``AUC_METHOD``.
* ``protocol``: ``run_utility`` (real / real+synthetic / synthetic-only arms over paired seeds), ``split_real``
  (patient-level split), ``class_fidelity`` (a judge trained on real images labels the synthetic ones).
* ``selection``: ``select_consistent`` (keep the conditional samples a real-trained judge assigns to their
  requested class), ``acceptance_rate``.
* ``report``: ``format_utility`` (terminal text), ``utility_html`` (HTML fragment).
* ``app``: ``run_utility_app`` (the ``medgan utility`` command: run directory in, metrics.json, utility.html
  and the judge.pt classifier out) and ``synthetic_set`` (labelled samples of every class of a conditional run).
"""

from __future__ import annotations

from medgan.evaluation.utility.app import run_utility_app, synthetic_set
from medgan.evaluation.utility.classifier import (SmallClassifier, augmentation_text, predict_probabilities,
                                                  train_classifier, training_steps)
from medgan.evaluation.utility.config import UtilityConfig
from medgan.evaluation.utility.protocol import class_fidelity, run_utility, split_real
from medgan.evaluation.utility.report import format_utility, utility_html
from medgan.evaluation.utility.selection import acceptance_rate, select_consistent
from medgan.evaluation.utility.statistics import AUC_METHOD, classification_metrics, rank_auc, summarize

__all__ = [
    "AUC_METHOD",
    "acceptance_rate",
    "SmallClassifier",
    "UtilityConfig",
    "augmentation_text",
    "class_fidelity",
    "classification_metrics",
    "format_utility",
    "predict_probabilities",
    "rank_auc",
    "run_utility",
    "run_utility_app",
    "select_consistent",
    "split_real",
    "summarize",
    "synthetic_set",
    "train_classifier",
    "training_steps",
    "utility_html",
]
