"""Downstream diagnostic utility of synthetic images: does a classifier trained with them do better on real data?

Follows the protocol of Frid-Adar et al. 2018 (liver lesion CT: a small CNN trained with classic augmentation,
then with classic + synthetic DCGAN augmentation; sensitivity 78.6% -> 85.7%, specificity 88.4% -> 92.4%) and adds
train-on-synthetic-test-on-real (TSTR). Three arms, each trained ``seeds`` times and tested on held-out real data:

- ``real``: real training images with classic augmentation (flip, rotation, zoom);
- ``real+synthetic``: the same plus synthetic images (same augmentation);
- ``synthetic``: synthetic images only (TSTR).

Runs with the same seed share the classifier's initial weights and RNG streams, so arms are paired per seed and
the differences between arms get paired confidence intervals (t-distribution over seeds). Every arm gets the same
number of optimizer steps (``epochs`` over the real training set, at least ``min_steps``), so that arms differ in
their data only, not in how long they trained.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from medgan.progress import progress_bar

from medgan.data import split_by_subject
from medgan.errors import ConfigError, DataError
from medgan.evaluation.utility.classifier import (augmentation_text, predict_probabilities, train_classifier,
                                                  training_steps)
from medgan.evaluation.utility.config import UtilityConfig
from medgan.evaluation.utility.statistics import AUC_METHOD, classification_metrics, summarize

ARMS = ("real", "real+synthetic", "synthetic")
SUMMARY_METRICS = ("balanced_accuracy", "accuracy", "macro_auc", "macro_sensitivity", "macro_specificity")
CLASS_METRICS = ("sensitivity", "specificity", "auc")
DIFFERENCE_METRICS = ("balanced_accuracy", "macro_auc")
DIFFERENCES = (("real+synthetic", "real"), ("synthetic", "real"))


# --------------------------------------------------------------------------------------------------------
# inputs: labels, class names, splits


def _subset(images: Any, indices: np.ndarray) -> Any:
    """A SliceSet holding only ``indices`` (images, labels and per-image lists); other fields are shared."""
    index_tensor = torch.as_tensor(indices, dtype=torch.long)
    changes: dict[str, Any] = {"images": images.images[index_tensor]}
    if images.labels is not None:
        changes["labels"] = images.labels[index_tensor]
    for name in ("subjects", "sources"):
        values = getattr(images, name, None)
        if values is not None and len(values) == len(images.images):
            changes[name] = [values[int(index)] for index in indices]
    return dataclasses.replace(images, **changes)


def _names_and_labels(images: Any, role: str) -> tuple[tuple[str, ...], torch.Tensor]:
    """Class names and int64 labels of a SliceSet, checked; ``role`` names the set in errors."""
    if images.labels is None:
        raise DataError(f"the {role} set has no class labels; downstream utility needs labelled images")
    labels = torch.as_tensor(images.labels).long().reshape(-1)
    if len(labels) != len(images.images):
        raise DataError(f"the {role} set has {len(labels)} labels for {len(images.images)} images")
    if len(labels) == 0:
        raise DataError(f"the {role} set is empty")
    names = tuple(str(name) for name in images.class_names) or tuple(
        str(index) for index in range(int(labels.max()) + 1)
    )
    if int(labels.min()) < 0 or int(labels.max()) >= len(names):
        raise DataError(f"the {role} set has labels outside 0..{len(names) - 1} ({len(names)} class names)")
    return names, labels


def _aligned_labels(
    reference: tuple[str, ...], names: tuple[str, ...], labels: torch.Tensor, role: str
) -> torch.Tensor:
    """``labels`` re-indexed into ``reference``'s class order; different class name sets raise DataError."""
    if names == reference:
        return labels
    only_real = [name for name in reference if name not in names]
    only_other = [name for name in names if name not in reference]
    if only_real or only_other:
        raise DataError(
            f"class names differ between the real and {role} sets: only in real: {only_real or 'none'}; "
            f"only in {role}: {only_other or 'none'}"
        )
    mapping = torch.tensor([reference.index(name) for name in names])
    return mapping[labels]


def _require_every_class(labels: torch.Tensor, names: tuple[str, ...], role: str, hint: str = "") -> None:
    counts = torch.bincount(labels, minlength=len(names))
    missing = [names[index] for index in range(len(names)) if counts[index] == 0]
    if missing:
        raise DataError(f"class {', '.join(repr(name) for name in missing)} has no images in the {role} set{hint}")


def split_real(real: Any, test_fraction: float, seed: int = 0) -> tuple[Any, Any]:
    """Splits a labelled SliceSet into train and test by subject (no patient on both sides).

    Args:
        real: labelled SliceSet with per-image ``subjects``.
        test_fraction: fraction of subjects held out for testing, in (0, 1).
        seed: seed of the subject shuffle.

    Returns:
        (train, test) SliceSets.

    Raises:
        DataError: no labels, fewer than two subjects, or a class absent from one side of the split.
    """
    if not 0 < test_fraction < 1:
        raise ConfigError(f"utility.test_fraction: invalid value {test_fraction!r}; must be in (0, 1)")
    names, labels = _names_and_labels(real, "real")
    subjects = [str(subject) for subject in real.subjects]
    if len(set(subjects)) < 2:
        raise DataError("the real set has fewer than 2 subjects; a patient-level test split needs at least 2")
    train_indices, test_indices = split_by_subject(subjects, test_fraction, seed)
    hint = f" (test_fraction={test_fraction}, seed={seed}); try another test fraction or seed, or give a test set"
    _require_every_class(labels[torch.as_tensor(train_indices)], names, "training split", hint)
    _require_every_class(labels[torch.as_tensor(test_indices)], names, "test split", hint)
    return _subset(real, train_indices), _subset(real, test_indices)


@dataclass(frozen=True)
class _Prepared:
    """Checked inputs, labels aligned to the real class order."""

    class_names: tuple[str, ...]
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    synthetic_images: torch.Tensor
    synthetic_labels: torch.Tensor
    shared_subjects: int


def _prepare(real_train: Any, real_test: Any, synthetic: Any) -> _Prepared:
    """Checks labels, class names, class coverage and image shapes of the three sets; aligns label indices."""
    names, train_labels = _names_and_labels(real_train, "real training")
    test_names, test_labels = _names_and_labels(real_test, "real test")
    synthetic_names, synthetic_labels = _names_and_labels(synthetic, "synthetic")
    if len(names) < 2:
        raise DataError(f"downstream utility needs at least 2 classes; found {len(names)} ({', '.join(names)})")
    test_labels = _aligned_labels(names, test_names, test_labels, "real test")
    synthetic_labels = _aligned_labels(names, synthetic_names, synthetic_labels, "synthetic")
    _require_every_class(train_labels, names, "real training")
    _require_every_class(test_labels, names, "real test")
    _require_every_class(synthetic_labels, names, "synthetic")
    shapes = {tuple(s.images.shape[1:]) for s in (real_train, real_test, synthetic)}
    if len(shapes) != 1:
        raise DataError(
            "image shapes differ: real training "
            f"{tuple(real_train.images.shape[1:])}, real test {tuple(real_test.images.shape[1:])}, "
            f"synthetic {tuple(synthetic.images.shape[1:])}"
        )
    shared = set(map(str, getattr(real_train, "subjects", []) or [])) & set(
        map(str, getattr(real_test, "subjects", []) or [])
    )
    return _Prepared(
        names,
        real_train.images.float(),
        train_labels,
        real_test.images.float(),
        test_labels,
        synthetic.images.float(),
        synthetic_labels,
        len(shared),
    )


def _synthetic_counts(prepared: _Prepared, config: UtilityConfig) -> list[int]:
    """Synthetic images per class: as requested (or the real count), capped by what the synthetic set holds."""
    classes = len(prepared.class_names)
    real_counts = torch.bincount(prepared.train_labels, minlength=classes).tolist()
    available = torch.bincount(prepared.synthetic_labels, minlength=classes).tolist()
    wanted = [config.synthetic_per_class or count for count in real_counts]
    return [min(want, have) for want, have in zip(wanted, available)]


def _draw_synthetic(prepared: _Prepared, counts: list[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded per-class random subset of the synthetic images (all of them when the count asks for all)."""
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for index, count in enumerate(counts):
        members = torch.nonzero(prepared.synthetic_labels == index).flatten()
        chosen.append(members[torch.randperm(len(members), generator=generator)[:count]])
    indices = torch.cat(chosen)
    return prepared.synthetic_images[indices], prepared.synthetic_labels[indices]


# --------------------------------------------------------------------------------------------------------
# the experiment


def _arm_data(
    prepared: _Prepared, arm: str, synthetic: tuple[torch.Tensor, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Training images and labels of one arm."""
    if arm == "real":
        return prepared.train_images, prepared.train_labels
    if arm == "synthetic":
        return synthetic
    return torch.cat([prepared.train_images, synthetic[0]]), torch.cat([prepared.train_labels, synthetic[1]])


def _aggregate(runs: dict[str, list[dict[str, Any]]], names: tuple[str, ...], confidence: float) -> dict[str, Any]:
    """Per-arm, per-class and paired-difference summaries of the per-seed metrics."""
    arms = {
        arm: {metric: summarize([run[metric] for run in results], confidence, (0, 1)) for metric in SUMMARY_METRICS}
        for arm, results in runs.items()
    }
    per_class = {
        arm: {
            name: {
                metric: summarize([run["per_class"][name][metric] for run in results], confidence, (0, 1))
                for metric in CLASS_METRICS
            }
            for name in names
        }
        for arm, results in runs.items()
    }
    differences = {
        f"{arm} - {baseline}": {
            metric: summarize(
                [run[metric] - base[metric] for run, base in zip(runs[arm], runs[baseline])], confidence, (-1, 1)
            )
            for metric in DIFFERENCE_METRICS
        }
        for arm, baseline in DIFFERENCES
    }
    return {"arms": arms, "per_class": per_class, "differences": differences}


def run_utility(
    real_train: Any,
    real_test: Any | None,
    synthetic: Any,
    config: UtilityConfig = UtilityConfig(),
    progress: bool = True,
    on_model: Callable[[str, int, nn.Module, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Trains the three arms (real, real+synthetic, synthetic-only) ``config.seeds`` times and scores them on real data.

    Args:
        real_train: labelled real SliceSet to train on.
        real_test: labelled real SliceSet to test on; None splits ``real_train`` by subject with
            ``config.test_fraction`` (seed ``config.seed``).
        synthetic: labelled synthetic SliceSet with the same class names as the real data.
        config: training and summary settings.
        progress: show a progress bar over the runs.
        on_model: called as ``on_model(arm, seed, model, metrics)`` after each classifier is trained and tested (e.g.
            to keep the real arm's first classifier as a judge).

    Returns:
        A JSON-serialisable dict: ``arms`` (arm -> metric -> summary), ``per_class`` (arm -> class -> metric ->
        summary), ``differences`` ("arm - real" -> metric -> paired summary), plus ``config``, ``class_names``,
        sizes, ``auc_method``, ``augmentation`` and ``seconds``. A summary is ``{"mean", "std", "ci_low",
        "ci_high", "n", "values"}``.

    Raises:
        DataError: missing labels, differing class names, a class with no images, fewer than 2 classes, or
            differing image shapes.
        ConfigError: an invalid config value.
    """
    config.validate()
    start = time.perf_counter()
    if real_test is None:
        real_train, real_test = split_real(real_train, config.test_fraction, config.seed)
    prepared = _prepare(real_train, real_test, synthetic)
    names = prepared.class_names
    counts = _synthetic_counts(prepared, config)
    test_labels = prepared.test_labels.numpy()
    # Same optimizer steps for every arm, set by the real training set: arms then differ in data, not training time.
    steps = training_steps(len(prepared.train_labels), config)
    runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm in ARMS}
    bar = progress_bar(total=len(ARMS) * config.seeds, desc="utility", unit="run", disable=not progress)
    for offset in range(config.seeds):
        seed = config.seed + offset
        drawn = _draw_synthetic(prepared, counts, seed)
        for arm in ARMS:
            bar.set_postfix_str(f"{arm} seed {seed}")
            images, labels = _arm_data(prepared, arm, drawn)
            model = train_classifier(images, labels, len(names), config, seed, steps)
            probabilities = predict_probabilities(model, prepared.test_images, config)
            runs[arm].append(classification_metrics(test_labels, probabilities, names))
            if on_model is not None:
                on_model(arm, seed, model, runs[arm][-1])
            bar.update(1)
    bar.close()
    result = _aggregate(runs, names, config.confidence)
    result.update(
        {
            "config": asdict(config),
            "class_names": list(names),
            "steps_per_run": steps,
            "n_train": len(prepared.train_labels),
            "n_test": len(prepared.test_labels),
            "n_synthetic": int(sum(counts)),
            "n_synthetic_available": len(prepared.synthetic_labels),
            "n_train_per_class": dict(zip(names, torch.bincount(prepared.train_labels, minlength=len(names)).tolist())),
            "n_test_per_class": dict(zip(names, torch.bincount(prepared.test_labels, minlength=len(names)).tolist())),
            "n_synthetic_per_class": dict(zip(names, counts)),
            "shared_subjects": prepared.shared_subjects,
            "auc_method": AUC_METHOD,
            "augmentation": augmentation_text(config),
            "seconds": round(time.perf_counter() - start, 2),
        }
    )
    return result


# --------------------------------------------------------------------------------------------------------
# class fidelity


def class_fidelity(real: Any, synthetic: Any, config: UtilityConfig = UtilityConfig(), seed: int = 0) -> dict[str, Any]:
    """How recognisable conditional samples are: a classifier trained on real images only labels the synthetic ones.

    Args:
        real: labelled real SliceSet (all of it trains the judge).
        synthetic: labelled synthetic SliceSet (labels = the class each image was generated for).
        config: classifier settings (epochs, width, augmentation...).
        seed: classifier seed.

    Returns:
        ``{"accuracy", "balanced_accuracy", "chance", "per_class": {name: accuracy}, "confusion": [[...]],
        "class_names", "n_synthetic"}``; rows of ``confusion`` are requested classes, columns predicted ones.
    """
    names, real_labels = _names_and_labels(real, "real")
    synthetic_names, synthetic_labels = _names_and_labels(synthetic, "synthetic")
    synthetic_labels = _aligned_labels(names, synthetic_names, synthetic_labels, "synthetic")
    _require_every_class(real_labels, names, "real")
    model = train_classifier(real.images.float(), real_labels, len(names), config, seed)
    predicted = predict_probabilities(model, synthetic.images.float(), config).argmax(axis=1)
    truth = synthetic_labels.numpy()
    confusion = np.zeros((len(names), len(names)), dtype=int)
    np.add.at(confusion, (truth, predicted), 1)
    per_class = {name: float(confusion[i, i] / max(confusion[i].sum(), 1)) for i, name in enumerate(names)}
    present = [per_class[name] for i, name in enumerate(names) if confusion[i].sum() > 0]
    return {
        "accuracy": float((predicted == truth).mean()),
        "balanced_accuracy": float(np.mean(present)),
        "chance": 1.0 / len(names),
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "class_names": list(names),
        "n_synthetic": int(len(truth)),
    }
