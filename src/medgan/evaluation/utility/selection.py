"""Class-consistency selection of conditional samples: keep the ones a classifier trained on real images agrees with.

A conditional GAN trained for minutes on a few dozen ROIs per class makes a share of samples that look like
another class (its class fidelity, ``class_fidelity``, was 0.78 on the hard lesion phantom). Added to a classifier's
training set they are label noise. Rejection by a real-trained judge is the usual remedy: generate more samples
than needed, let a classifier trained on the real training images (only those: the test patients stay unseen)
label them, and keep, per class, a random subset of the samples it assigns to the requested class with at least
``min_confidence``. A random subset rather than the most confident ones, so that the kept samples are not all the
easy, prototypical ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medgan.errors import DataError
from medgan.evaluation.utility.classifier import predict_probabilities, train_classifier
from medgan.evaluation.utility.config import UtilityConfig
from medgan.evaluation.utility.protocol import _aligned_labels, _names_and_labels, _require_every_class, _subset


def select_consistent(
    real: Any,
    synthetic: Any,
    per_class: int,
    config: UtilityConfig = UtilityConfig(),
    seed: int = 0,
    min_confidence: float = 0.5,
) -> tuple[Any, dict[str, Any]]:
    """The synthetic images a judge trained on ``real`` assigns to their requested class, ``per_class`` of each.

    Args:
        real: labelled real training SliceSet (all of it trains the judge; never the test set).
        synthetic: labelled synthetic SliceSet, typically several times ``per_class`` images of every class.
        per_class: images to keep per class (fewer when fewer pass).
        config: the judge's classifier settings.
        seed: the judge's seed, and the seed of the random choice among the accepted images.
        min_confidence: the judge's probability of the requested class that a sample needs (and it must be the
            judge's top class).

    Returns:
        ``(kept, info)``: the kept SliceSet (the synthetic set's class names and order of classes) and
        ``{"class_names", "generated", "accepted", "kept"}``, per-class counts.

    Raises:
        DataError: missing labels, differing class names, or a class with no accepted image.
    """
    if per_class < 1:
        raise DataError(f"per_class must be at least 1, got {per_class}")
    names, real_labels = _names_and_labels(real, "real")
    synthetic_names, synthetic_labels = _names_and_labels(synthetic, "synthetic")
    aligned = _aligned_labels(names, synthetic_names, synthetic_labels, "synthetic")
    _require_every_class(real_labels, names, "real")
    judge = train_classifier(real.images.float(), real_labels, len(names), config, seed)
    probabilities = predict_probabilities(judge, synthetic.images.float(), config)
    requested = aligned.numpy()
    confidence = probabilities[np.arange(len(requested)), requested]
    accepted = (probabilities.argmax(axis=1) == requested) & (confidence >= min_confidence)
    rng = np.random.default_rng(seed)
    chosen, info = [], {"class_names": list(names), "generated": [], "accepted": [], "kept": []}
    for index in range(len(names)):
        members = np.flatnonzero(requested == index)
        passed = members[accepted[members]]
        keep = rng.permutation(passed)[:per_class]
        info["generated"].append(int(len(members)))
        info["accepted"].append(int(len(passed)))
        info["kept"].append(int(len(keep)))
        chosen.append(keep)
    empty = [names[index] for index, count in enumerate(info["kept"]) if count == 0]
    if empty:
        raise DataError(f"no synthetic image of class {', '.join(map(repr, empty))} passed the real-trained judge; "
                        "train the GAN longer or lower min_confidence")
    indices = np.sort(np.concatenate(chosen))
    return _subset(synthetic, indices), info


def acceptance_rate(info: dict[str, Any]) -> float:
    """Share of the generated samples that the judge accepted (over all classes)."""
    return float(sum(info["accepted"]) / max(sum(info["generated"]), 1))


__all__ = ["acceptance_rate", "select_consistent"]
