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

import contextlib
import dataclasses
import html
import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as functional
from scipy import stats as scipy_stats
from torch import nn
from tqdm.auto import tqdm

from medgan.data.datasets import split_by_subject
from medgan.data.transforms import acquisition_augment, classic_augment
from medgan.errors import ConfigError, DataError

try:  # scikit-learn arrives with nilearn; the rank formula below is the same statistic without it
    from sklearn.metrics import roc_auc_score as _sklearn_roc_auc
except ImportError:  # pragma: no cover - depends on the environment
    _sklearn_roc_auc = None

ARMS = ("real", "real+synthetic", "synthetic")
ARM_TITLES = {"real": "real", "real+synthetic": "real+synthetic", "synthetic": "synthetic (TSTR)"}
SUMMARY_METRICS = ("balanced_accuracy", "accuracy", "macro_auc", "macro_sensitivity", "macro_specificity")
CLASS_METRICS = ("sensitivity", "specificity", "auc")
DIFFERENCE_METRICS = ("balanced_accuracy", "macro_auc")
DIFFERENCES = (("real+synthetic", "real"), ("synthetic", "real"))
METRIC_TITLES = {
    "balanced_accuracy": "balanced accuracy",
    "accuracy": "accuracy",
    "macro_auc": "macro AUC",
    "macro_sensitivity": "sensitivity (macro)",
    "macro_specificity": "specificity (macro)",
    "sensitivity": "sensitivity",
    "specificity": "specificity",
    "auc": "AUC",
}
METRIC_DEFINITIONS = {
    "balanced_accuracy": "mean over classes of per-class sensitivity (recall)",
    "accuracy": "fraction of test images whose predicted class is right",
    "macro_auc": "mean over classes of the one-vs-rest ROC AUC of the class probability",
    "macro_sensitivity": "mean over classes of TP / (TP + FN), one-vs-rest on the predicted class",
    "macro_specificity": "mean over classes of TN / (TN + FP), one-vs-rest on the predicted class",
}


@dataclass(frozen=True)
class UtilityConfig:
    """How the downstream classifier is trained and how its scores are summarised."""

    seeds: int = 5  # classifier runs per arm, each with its own seed (seed, seed+1, ...), paired across arms
    epochs: int = 30  # training epochs per run, counted over the real training set (every arm gets as many steps)
    min_steps: int = 200  # at least this many optimizer steps per run: tiny data sets give few steps per epoch
    batch_size: int = 64  # images per optimizer step
    lr: float = 1e-3  # AdamW learning rate (cosine-decayed to 0 over the run)
    synthetic_per_class: int = 0  # synthetic images per class; 0 = as many as real training images of that class
    test_fraction: float = 0.3  # held-out real subjects when no explicit test set is given
    confidence: float = 0.95  # two-sided confidence level of the intervals over seeds
    seed: int = 0  # first seed; run i uses seed + i
    width: int = 16  # channels of the classifier's first block (doubled per block)
    augment: bool = True  # classic augmentation (flip, +/-10 degree rotation, +/-10% zoom) in every arm
    acquisition: bool = True  # also random blur and noise (acquisition_augment), so the noise texture is not a cue
    precision: str = "fp32"  # "fp32" or "bf16" (autocast); bf16 is slower on CPUs without native bf16 (AVX2)
    channels_last: bool = True  # NHWC memory format for the convolutions
    threads: int = 0  # torch CPU threads while training/predicting (0 = leave torch's setting); 1 suits busy CPUs

    def validate(self) -> None:
        """Raises ConfigError naming the first invalid field."""
        checks = {
            "seeds": self.seeds >= 1,
            "epochs": self.epochs >= 1,
            "min_steps": self.min_steps >= 0,
            "batch_size": self.batch_size >= 2,
            "lr": self.lr > 0,
            "synthetic_per_class": self.synthetic_per_class >= 0,
            "test_fraction": 0 < self.test_fraction < 1,
            "confidence": 0 < self.confidence < 1,
            "width": self.width >= 1,
            "precision": self.precision in ("fp32", "bf16"),
            "threads": self.threads >= 0,
        }
        for key, valid in checks.items():
            if not valid:
                raise ConfigError(f"utility.{key}: invalid value {getattr(self, key)!r}")


# --------------------------------------------------------------------------------------------------------
# classifier


class SmallClassifier(nn.Module):
    """A few conv-BN-ReLU-maxpool blocks, global average pooling and a linear head; 28 to 128+ pixel inputs.

    Args:
        num_classes: number of output logits.
        resolution: input side in pixels; 64 and above get a fourth block.
        channels: input channels.
        width: channels of the first block, doubled in each following block.
    """

    def __init__(self, num_classes: int, resolution: int, channels: int = 1, width: int = 16) -> None:
        super().__init__()
        blocks = 3 if resolution < 64 else 4
        layers: list[nn.Module] = []
        in_channels = channels
        for index in range(blocks):
            out_channels = width * 2**index
            layers += [
                nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),  # out_channels x R/2^i x R/2^i
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),  # out_channels x R/2^(i+1) x R/2^(i+1)
            ]
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)  # (width * 2^(blocks-1)) x 1 x 1
        self.dropout = nn.Dropout(0.2)  # small data: a little regularization on the pooled features
        self.head = nn.Linear(in_channels, num_classes)  # num_classes logits

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits [N, num_classes] for images [N, C, H, W] in [-1, 1]."""
        features = self.pool(self.features(images)).flatten(1)
        return self.head(self.dropout(features))


def augmentation_text(config: UtilityConfig) -> str:
    """What augmentation the classifiers were trained with, in words (for metrics.json and the report)."""
    if not config.augment:
        return "none"
    text = "flip, rotation +/-10 deg, zoom +/-10% (classic_augment)"
    return text + "; blur sigma 0-1.2 px and noise 0-0.06 (acquisition_augment)" if config.acquisition else text


def _augment(images: torch.Tensor, generator: torch.Generator, acquisition: bool) -> torch.Tensor:
    """Classic augmentation of the Frid-Adar protocol (random flip, +/-10 degree rotation, +/-10% zoom), then
    optionally random blur and noise (see ``acquisition_augment``)."""
    images = classic_augment(images, flip=True, rotate_degrees=10.0, scale=0.1, generator=generator)
    return acquisition_augment(images, generator=generator) if acquisition else images


@contextlib.contextmanager
def _threads(count: int) -> Iterator[None]:
    """Runs the block with ``count`` torch CPU threads (0 = unchanged), restoring the previous setting after.

    The classifier's convolutions are tiny; on a shared or busy CPU, extra threads mostly wait on each other
    (measured here: 60 images x 6 epochs at 32 px took 0.3 s on 1 thread and 4 s on 2 under load).
    """
    previous = torch.get_num_threads()
    if count > 0:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _batches(count: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Shuffled index batches; a trailing batch of one image is dropped (BatchNorm needs two)."""
    order = torch.randperm(count, generator=generator)
    return list(order.split(batch_size))[: _batch_count(count, batch_size)]


def _batch_stream(count: int, batch_size: int, generator: torch.Generator, steps: int) -> Iterator[torch.Tensor]:
    """``steps`` index batches, reshuffling after each pass over the data."""
    made = 0
    while made < steps:
        for batch in _batches(count, batch_size, generator)[: steps - made]:
            made += 1
            yield batch


def _batch_count(count: int, batch_size: int) -> int:
    """Batches per epoch as ``_batches`` makes them."""
    batches = math.ceil(count / batch_size)
    return batches - 1 if batches > 1 and count % batch_size == 1 else batches


def training_steps(count: int, config: UtilityConfig) -> int:
    """Optimizer steps of a run: ``config.epochs`` passes over ``count`` images, at least ``config.min_steps``."""
    return max(config.min_steps, config.epochs * _batch_count(count, config.batch_size))


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    config: UtilityConfig,
    seed: int,
    steps: int | None = None,
) -> SmallClassifier:
    """Trains a SmallClassifier from scratch; the same seed gives the same weights.

    Args:
        images: training images [N, C, R, R] in [-1, 1].
        labels: int64 class indices [N].
        num_classes: number of classes (some may be absent from ``labels``).
        config: epochs, batch size, learning rate, augmentation and precision.
        seed: seeds weight initialization, dropout, shuffling and augmentation.
        steps: optimizer steps; None = ``training_steps(len(labels), config)``.

    Returns:
        The trained model, in eval mode.
    """
    generator = torch.Generator().manual_seed(seed)
    # Inverse-frequency class weights: balanced accuracy and per-class sensitivity are what we report.
    counts = torch.bincount(labels, minlength=num_classes).float()
    weights = torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp(min=1)), torch.zeros(()))
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    # Init and dropout draw from the global RNG: fork it so that the caller's stream stays intact.
    with torch.random.fork_rng(devices=[]), _threads(config.threads):
        torch.manual_seed(seed)
        model = SmallClassifier(num_classes, images.shape[-1], images.shape[1], config.width)
        model = model.to(memory_format=memory_format)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
        total_steps = training_steps(len(labels), config) if steps is None else steps
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
        model.train()
        for batch in _batch_stream(len(labels), config.batch_size, generator, total_steps):
            inputs = images[batch]
            if config.augment:
                inputs = _augment(inputs, generator, config.acquisition)
            inputs = inputs.contiguous(memory_format=memory_format)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.precision == "bf16"):
                logits = model(inputs)
            loss = functional.cross_entropy(logits.float(), labels[batch], weight=weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        _recalibrate_batch_norm(model, images, memory_format)
    return model.eval()


@torch.no_grad()
def _recalibrate_batch_norm(model: nn.Module, images: torch.Tensor, memory_format: torch.memory_format) -> None:
    """Replaces BatchNorm running statistics by exact averages over the (unaugmented) training images.

    Short runs on small data take few optimizer steps, too few for the momentum-0.1 running averages to forget
    their initial values; eval-mode predictions then collapse onto one class. One extra forward pass fixes that.
    """
    norms = [module for module in model.modules() if isinstance(module, nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative moving average: equal weight for every batch
    model.train()
    for chunk in images.split(256):
        model(chunk.contiguous(memory_format=memory_format))
    for norm in norms:
        norm.momentum = 0.1


@torch.no_grad()
def predict_probabilities(model: nn.Module, images: torch.Tensor, config: UtilityConfig) -> np.ndarray:
    """Softmax class probabilities [N, K] (float64) of ``model`` in eval mode, computed in batches of 256."""
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model.eval()
    outputs = []
    with _threads(config.threads):
        for chunk in images.split(256):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.precision == "bf16"):
                logits = model(chunk.contiguous(memory_format=memory_format))
            outputs.append(torch.softmax(logits.float(), dim=1))
    return torch.cat(outputs).double().numpy()


# --------------------------------------------------------------------------------------------------------
# metrics


def rank_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney U statistic from mid-ranks (ties count one half).

    Args:
        positive: boolean [N], True for the positive class; both classes must occur.
        scores: [N], higher means more likely positive.
    """
    ranks = scipy_stats.rankdata(scores)
    positives = int(positive.sum())
    negatives = len(positive) - positives
    return float((ranks[positive].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _auc(positive: np.ndarray, scores: np.ndarray) -> float:
    if _sklearn_roc_auc is not None:
        return float(_sklearn_roc_auc(positive, scores))
    return rank_auc(positive, scores)


AUC_METHOD = "sklearn.metrics.roc_auc_score" if _sklearn_roc_auc is not None else "rank (Mann-Whitney) formula"


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
            "auc": _auc(positive, probabilities[:, index]),
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
) -> dict[str, Any]:
    """Trains the three arms (real, real+synthetic, synthetic-only) ``config.seeds`` times and scores them on real data.

    Args:
        real_train: labelled real SliceSet to train on.
        real_test: labelled real SliceSet to test on; None splits ``real_train`` by subject with
            ``config.test_fraction`` (seed ``config.seed``).
        synthetic: labelled synthetic SliceSet with the same class names as the real data.
        config: training and summary settings.
        progress: show a progress bar over the runs.

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
    bar = tqdm(total=len(ARMS) * config.seeds, desc="utility", unit="run", disable=not progress)
    for offset in range(config.seeds):
        seed = config.seed + offset
        drawn = _draw_synthetic(prepared, counts, seed)
        for arm in ARMS:
            bar.set_postfix_str(f"{arm} seed {seed}")
            images, labels = _arm_data(prepared, arm, drawn)
            model = train_classifier(images, labels, len(names), config, seed, steps)
            probabilities = predict_probabilities(model, prepared.test_images, config)
            runs[arm].append(classification_metrics(test_labels, probabilities, names))
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
# presentation


def _cell(summary: dict[str, Any], signed: bool = False, std: bool = True) -> str:
    """``mean ± std [low, high]``; the std is left out when ``std`` is False, the interval when undefined."""
    number = "{:+.3f}" if signed else "{:.3f}"
    text = number.format(summary["mean"]) + (f" ± {summary['std']:.3f}" if std else "")
    if summary["ci_low"] is not None:
        text += f" [{number.format(summary['ci_low'])}, {number.format(summary['ci_high'])}]"
    return text


def _verdict(summary: dict[str, Any]) -> str:
    """Whether the paired interval excludes zero."""
    if summary["ci_low"] is None:
        return "n/a (1 seed)"
    if summary["ci_low"] > 0:
        return "better"
    if summary["ci_high"] < 0:
        return "worse"
    return "no clear difference"


def _header(result: dict[str, Any], std: bool = True) -> str:
    config = result["config"]
    return (
        f"Downstream utility: small CNN, {config['seeds']} seeds x {result['steps_per_run']} steps, "
        f"{len(result['class_names'])} classes ({', '.join(result['class_names'])}); real train {result['n_train']}, "
        f"real test {result['n_test']}, synthetic {result['n_synthetic']} images. "
        f"mean{' ± std' if std else ''} [{config['confidence']:.0%} CI over seeds, clipped to the metric's range]"
    )


def format_utility(result: dict[str, Any]) -> str:
    """A plain-text report of ``run_utility``'s result for the terminal.

    Args:
        result: the dict returned by ``run_utility``.

    Returns:
        Multi-line text: summary table, per-class table and paired differences.
    """
    rows = [_header(result, std=False)]
    if result.get("shared_subjects"):
        rows.append(f"warning: {result['shared_subjects']} subjects appear in both real train and test sets")
    width = 24
    # Room for "<class> specificity", capped so that a very long class name is cut rather than the table.
    name_width = min(40, max(22, 2 + max(len(name) for name in result["class_names"]) + len(" specificity")))
    rows.append("")
    rows.append(f"{'metric':<{name_width}}" + "".join(f"{ARM_TITLES[arm]:<{width}}" for arm in ARMS))
    for metric in SUMMARY_METRICS:
        cells = "".join(f"{_cell(result['arms'][arm][metric], std=False):<{width}}" for arm in ARMS)
        rows.append(f"{METRIC_TITLES[metric]:<{name_width}}{cells}")
    rows.append("")
    rows.append(f"{'class / metric':<{name_width}}" + "".join(f"{ARM_TITLES[arm]:<{width}}" for arm in ARMS))
    for name in result["class_names"]:
        for metric in CLASS_METRICS:
            cells = "".join(f"{_cell(result['per_class'][arm][name][metric], std=False):<{width}}" for arm in ARMS)
            rows.append(f"{(name + ' ' + METRIC_TITLES[metric])[: name_width - 1]:<{name_width}}{cells}")
    rows.append("")
    rows.append("paired differences (same seed, same initial weights)")
    for label, metrics in result["differences"].items():
        for metric, summary in metrics.items():
            cell = _cell(summary, signed=True, std=False)
            rows.append(f"  {label:<24}{METRIC_TITLES[metric]:<20}{cell:<27}{_verdict(summary)}")
    return "\n".join(rows)


def utility_html(result: dict[str, Any]) -> str:
    """An HTML fragment (heading, tables, definitions) of ``run_utility``'s result for the evaluation report.

    Args:
        result: the dict returned by ``run_utility``.

    Returns:
        Self-contained HTML (no scripts, no external resources); class names are escaped.
    """
    escape = html.escape
    head = "<tr><th>metric</th>" + "".join(f"<th>{escape(ARM_TITLES[arm])}</th>" for arm in ARMS) + "</tr>"
    parts = ['<section class="utility">', "<h3>Downstream diagnostic utility</h3>", f"<p>{escape(_header(result))}</p>"]
    if result.get("shared_subjects"):
        shared = result["shared_subjects"]
        parts.append(f"<p><strong>warning:</strong> {shared} subjects are in both train and test.</p>")
    summary_rows = "".join(
        f'<tr><th title="{escape(METRIC_DEFINITIONS[metric])}">{escape(METRIC_TITLES[metric])}</th>'
        + "".join(f"<td>{escape(_cell(result['arms'][arm][metric]))}</td>" for arm in ARMS)
        + "</tr>"
        for metric in SUMMARY_METRICS
    )
    parts.append(f"<table>{head}{summary_rows}</table>")
    class_rows = "".join(
        f"<tr><th>{escape(name)} {escape(METRIC_TITLES[metric])}</th>"
        + "".join(f"<td>{escape(_cell(result['per_class'][arm][name][metric]))}</td>" for arm in ARMS)
        + "</tr>"
        for name in result["class_names"]
        for metric in CLASS_METRICS
    )
    parts.append(f"<table>{head.replace('metric', 'class')}{class_rows}</table>")
    difference_rows = "".join(
        f"<tr><td>{escape(label)}</td><td>{escape(METRIC_TITLES[metric])}</td>"
        f"<td>{escape(_cell(summary, signed=True))}</td><td>{escape(_verdict(summary))}</td></tr>"
        for label, metrics in result["differences"].items()
        for metric, summary in metrics.items()
    )
    parts.append(
        "<table><tr><th>paired difference</th><th>metric</th><th>mean ± std [CI]</th><th>verdict</th></tr>"
        f"{difference_rows}</table>"
    )
    definitions = "".join(
        f"<dt>{escape(METRIC_TITLES[key])}</dt><dd>{escape(text)}</dd>" for key, text in METRIC_DEFINITIONS.items()
    )
    parts.append(
        f"<dl>{definitions}<dt>arms</dt><dd>real: real images with classic augmentation; real+synthetic: plus "
        "synthetic images; synthetic (TSTR): trained on synthetic only. All tested on held-out real images.</dd></dl>"
    )
    parts.append("</section>")
    return "\n".join(parts)


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
