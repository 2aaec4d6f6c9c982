"""Segmentation utility of mask-to-image synthesis: do synthetic image/mask pairs help a segmentation model?

A mask-to-image GAN turns label maps into images, so every label map (a real one, or a deformed one with a new
layout) becomes an annotated training pair. This module measures whether that helps, with a small 2D
segmentation network (MONAI ``UNet``) trained with Dice + cross-entropy (MONAI ``DiceCELoss``) on three arms:

- ``real``: the real training image/mask pairs;
- ``real+synthetic``: the same plus synthetic pairs (images the run renders from training label maps);
- ``synthetic``: synthetic pairs only (train on synthetic, test on real).

Each arm is trained ``seeds`` times; runs with the same seed share the network's initial weights and the RNG
streams of shuffling and augmentation, so the arms are paired per seed. Every arm gets the same number of
optimizer steps (``epochs`` passes over the *real* training set), so arms differ in their data only. The
synthetic pairs are drawn anew for each seed (``synthesize(seed)``), so the intervals cover the layouts drawn too.

Dice is measured on held-out real subjects only: per subject, over all of its held-out slices at once (volume
Dice, MONAI ``DiceMetric``), for each target class the subject has (a subject without, e.g., a lesion does not
enter that class's mean: Dice is undefined on an empty reference). A seed's per-class Dice is the mean over
subjects, its ``mean_dice`` the mean over classes. Over seeds: mean with a t-interval, and paired differences
``real+synthetic - real`` and ``synthetic - real`` (``medgan.evaluation.utility.statistics.summarize``).

Which structures are segmented is an explicit choice (``LABEL_SETS``), not every label of the run's maps:

- ``phantom-abdomen`` (``ct-phantom``): liver (``liver`` + intrahepatic ``liver-vessel``, as clinical liver
  masks include the vessels inside the liver), kidney, spleen and liver lesion; the 19 organ labels of
  ``medgan.data.phantom.tissue.ORGANS`` are grouped into these four, everything else is background.
- ``mni152-tissue`` (``mni152``): grey and white matter.
- ``liver-tumour`` (LiTS / MSD Task03 folders): liver and tumour, the layouts' own classes.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from medgan.progress import progress_bar

from medgan.data.layouts.lits_msd import MASK_CLASSES
from medgan.data.phantom.tissue import LABEL
from medgan.data.transforms import aligned_augment
from medgan.errors import ConfigError, DataError
from medgan.evaluation.utility.classifier import _batch_count, _batch_stream  # one batching rule for both studies
from medgan.evaluation.utility.statistics import summarize
from medgan.utils import quiet_import, torch_threads

ARMS = ("real", "real+synthetic", "synthetic")
DIFFERENCES = (("real+synthetic", "real"), ("synthetic", "real"))
PREDICT_BATCH = 32  # slices per forward pass when predicting


# --------------------------------------------------------------------------------------------------------
# target label sets


@dataclass(frozen=True)
class LabelSet:
    """The structures a segmentation model learns, as groups of the run's label-map values.

    Attributes:
        name: key of ``LABEL_SETS``.
        classes: ``(class name, label values)`` per target class, in order (class index = position + 1; 0 is
            background, which takes every value not listed).
        description: what was chosen and why, for ``metrics.json`` and the table.
    """

    name: str
    classes: tuple[tuple[str, tuple[int, ...]], ...]
    description: str

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.classes)

    def group(self, labels: torch.Tensor) -> torch.Tensor:
        """Label maps (int64, the run's values) -> target class maps (int64, 0 background, 1..K the classes)."""
        table = torch.zeros(int(labels.max()) + 1 if labels.numel() else 1, dtype=torch.int64)
        for index, (_, values) in enumerate(self.classes, start=1):
            for value in values:
                if value < len(table):
                    table[value] = index
        return table[labels.clamp(min=0)]


LABEL_SETS: dict[str, LabelSet] = {
    "phantom-abdomen": LabelSet(
        "phantom-abdomen",
        (("liver", (LABEL["liver"], LABEL["liver-vessel"])), ("kidney", (LABEL["kidney"],)),
         ("spleen", (LABEL["spleen"],)), ("lesion", (LABEL["lesion"],))),
        "phantom organ labels grouped: liver (liver + intrahepatic liver-vessel), kidney, spleen, liver lesion; "
        "the other 15 labels are background"),
    "mni152-tissue": LabelSet("mni152-tissue", (("grey matter", (1,)), ("white matter", (2,))),
                              "MNI152 tissue: grey matter and white matter; background and CSF are background"),
    "brain-tumour": LabelSet("brain-tumour", (("oedema", (4,)), ("enhancing", (5,)), ("necrosis", (6,))),
                             "simulated brain tumour compartments (ANATOMY_LABELS 4-6); grey matter, white matter, "
                             "CSF and background are background"),
    "liver-tumour": LabelSet("liver-tumour", tuple((name, (index,)) for index, name in enumerate(MASK_CLASSES, 1)),
                             "LiTS / MSD segmentation classes: liver and tumour"),
}


def label_set_for(source: str) -> LabelSet:
    """The documented default label set of a mask-to-image run's ``data.source`` (module docstring)."""
    if source.startswith("brain-tumour-"):
        return LABEL_SETS["brain-tumour"]
    return LABEL_SETS[{"ct-phantom": "phantom-abdomen", "mni152": "mni152-tissue"}.get(source, "liver-tumour")]


def labels_from_one_hot(inputs: torch.Tensor) -> torch.Tensor:
    """The label maps ``[N, H, W]`` (int64) of one-hot label-map inputs ``[N, C, H, W]`` (channel ``k - 1`` is +1
    where the label is ``k``, -1 elsewhere; ``medgan.data.pairs.one_hot``); 0 where no channel is on."""
    on = inputs > 0
    return torch.where(on.any(dim=1), on.float().argmax(dim=1) + 1, 0).to(torch.int64)


@dataclass(frozen=True)
class SegmentationPairs:
    """Images with their target class maps.

    Attributes:
        images: float32 ``[N, 1, H, W]`` in [-1, 1].
        labels: int64 ``[N, H, W]``: 0 background, 1..K the target classes.
        subjects: per image, the subject (held-out Dice is per subject).
    """

    images: torch.Tensor
    labels: torch.Tensor
    subjects: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.images.shape[0])


# --------------------------------------------------------------------------------------------------------
# settings, network, training, Dice


@dataclass(frozen=True)
class SegmentationConfig:
    """How the segmentation networks are trained, which synthetic pairs they get and how scores are summarised."""

    seeds: int = 5  # runs per arm, seeds seed, seed+1, ...; paired across arms
    epochs: int = 80  # passes over the real training set per run; every arm gets as many optimizer steps
    batch_size: int = 8  # slices per optimizer step
    lr: float = 2e-3  # Adam learning rate, cosine-decayed to 0 over the run
    channels: tuple[int, ...] = (16, 32, 64)  # U-Net widths per level (len - 1 stride-2 downsamplings)
    augment: bool = True  # rotation +/-10 deg and zoom +/-10% of image and mask in every arm (no flips: anatomy)
    synthetic_factor: int = 1  # synthetic pairs per real training pair
    layouts: bool = True  # deform the label maps before translating them, so synthetic pairs add new layouts
    layout_flip: bool = False  # also flip layouts left-right (off: a mirrored abdomen puts the liver on the left)
    layout_rotate_degrees: float = 10.0  # layout rotation range (+/- degrees)
    layout_scale: float = 0.1  # layout zoom range (+/- fraction)
    layout_elastic: float = 2.0  # elastic displacement of the control points (px per 64 px of image side; 0 = off)
    seed: int = 0  # first seed
    confidence: float = 0.95  # two-sided level of the intervals over seeds
    threads: int = 0  # torch CPU threads during the experiment (0 = leave torch's setting); 1 suits busy CPUs

    def validate(self) -> None:
        """Raises ConfigError naming the first invalid field."""
        checks = {
            "seeds": self.seeds >= 1,
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0,
            "channels": len(self.channels) >= 2 and all(width >= 1 for width in self.channels),
            "synthetic_factor": self.synthetic_factor >= 1,
            "layout_rotate_degrees": 0 <= self.layout_rotate_degrees <= 180,
            "layout_scale": 0 <= self.layout_scale < 1,
            "layout_elastic": self.layout_elastic >= 0,
            "confidence": 0 < self.confidence < 1,
            "threads": 0 <= self.threads <= 1024,
        }
        for key, valid in checks.items():
            if not valid:
                raise ConfigError(f"segmentation.{key}: invalid value {getattr(self, key)!r}")


def build_segmenter(classes: int, config: SegmentationConfig) -> torch.nn.Module:
    """MONAI's 2D ``UNet``: 1 input channel -> ``classes + 1`` logits (background first), one residual unit per
    level, instance norm (eval mode needs no running statistics, which short runs on small data lack)."""
    return quiet_import("monai.networks.nets").UNet(spatial_dims=2, in_channels=1, out_channels=classes + 1, channels=tuple(config.channels),
                strides=(2,) * (len(config.channels) - 1), num_res_units=1)


def training_steps(count: int, config: SegmentationConfig) -> int:
    """Optimizer steps of every run: ``config.epochs`` passes over ``count`` real training slices."""
    return config.epochs * _batch_count(count, config.batch_size)


def train_segmenter(data: SegmentationPairs, classes: int, config: SegmentationConfig, seed: int,
                    steps: int) -> torch.nn.Module:
    """Trains a segmenter from scratch with Dice + cross-entropy; the same seed gives the same weights.

    Args:
        data: training images and class maps.
        classes: number of target classes (without background).
        config: batch size, learning rate, widths, augmentation.
        seed: seeds weight initialization, shuffling and augmentation.
        steps: optimizer steps.

    Returns:
        The trained network, in eval mode.
    """
    generator = torch.Generator().manual_seed(seed)
    # Dice over the whole batch (batch=True): small structures absent from a slice do not make its Dice 0/0.
    loss_function = quiet_import("monai.losses").DiceCELoss(include_background=False, to_onehot_y=True, softmax=True, batch=True)
    # Weight init draws from the global RNG: fork it so that the caller's stream stays intact.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_segmenter(classes, config)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1))
        model.train()
        for batch in _batch_stream(len(data), config.batch_size, generator, steps):
            images, labels = data.images[batch].float(), data.labels[batch, None].float()
            if config.augment:
                moved = aligned_augment({"image": images, "labels": labels}, False, 10.0, 0.1, generator,
                                        nearest={"labels"})
                images, labels = moved["image"], moved["labels"].clamp(min=0)  # outside the slice: background
            loss = loss_function(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


@torch.no_grad()
def predict_labels(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Predicted class maps ``[N, H, W]`` (int64, argmax of the logits) of images ``[N, 1, H, W]``."""
    model.eval()
    return torch.cat([model(chunk.float()).argmax(dim=1) for chunk in images.split(PREDICT_BATCH)])


def subject_dice(predicted: torch.Tensor, truth: torch.Tensor, subjects: list[str], classes: int) -> np.ndarray:
    """Dice per subject and class ``[S, K]`` (subjects sorted), each subject's slices taken as one volume.

    A class absent from a subject's reference is NaN there (MONAI ``DiceMetric`` with ``ignore_empty``).

    Args:
        predicted: predicted class maps ``[N, H, W]`` (int64, 0 background).
        truth: reference class maps ``[N, H, W]``.
        subjects: subject per slice.
        classes: number of target classes K (without background).
    """
    metric = quiet_import("monai.metrics").DiceMetric(include_background=False, reduction="none", ignore_empty=True, num_classes=classes + 1)
    rows = []
    for subject in sorted(set(subjects)):
        members = torch.as_tensor([i for i, name in enumerate(subjects) if name == subject])
        # [1, 1, slices, H, W]: one 3D volume per subject, class indices (DiceMetric one-hot encodes them)
        rows.append(metric(predicted[members][None, None], truth[members][None, None])[0])
    return torch.stack(rows).double().numpy()


# --------------------------------------------------------------------------------------------------------
# the experiment


def _check_classes(data: SegmentationPairs, names: tuple[str, ...], role: str) -> None:
    present = torch.bincount(data.labels.flatten(), minlength=len(names) + 1)[1:]
    missing = [name for name, count in zip(names, present.tolist()) if count == 0]
    if missing:
        raise DataError(f"the {role} set has no {', '.join(missing)} pixels; Dice of a class needs it in the "
                        "training and held-out data")


def _summaries(values: list[np.ndarray], names: tuple[str, ...], confidence: float,
               bounds: tuple[float, float]) -> dict[str, Any]:
    """``{"mean_dice": summary, "per_class": {name: summary}}`` of per-seed per-class Dice rows ``[K]``."""
    return {"mean_dice": summarize([float(np.mean(row)) for row in values], confidence, bounds),
            "per_class": {name: summarize([float(row[k]) for row in values], confidence, bounds)
                          for k, name in enumerate(names)}}


def run_segmentation(train: SegmentationPairs, test: SegmentationPairs,
                     synthesize: Callable[[int], SegmentationPairs], class_names: tuple[str, ...],
                     config: SegmentationConfig = SegmentationConfig(), progress: bool = True) -> dict[str, Any]:
    """Trains the three arms ``config.seeds`` times and measures Dice on the held-out real subjects.

    Args:
        train: real training pairs.
        test: held-out real pairs, with subjects.
        synthesize: ``seed -> synthetic pairs`` (drawn once per seed, shared by the two synthetic arms).
        class_names: the K target classes (class maps hold 0..K).
        config: training and summary settings.
        progress: a progress bar over the runs.

    Returns:
        JSON-ready: ``arms`` (arm -> ``{"mean_dice", "per_class"}`` summaries), ``differences`` ("arm - real"
        -> paired summaries), ``per_seed`` (arm -> list of per-class Dice), ``config``, sizes and ``seconds``.
        A summary is ``summarize``'s ``{"mean", "std", "ci_low", "ci_high", "n", "values"}``.

    Raises:
        DataError: a target class missing from the training or held-out pairs, or mismatched image sizes.
        ConfigError: an invalid config value.
    """
    config.validate()
    started = time.perf_counter()
    _check_classes(train, class_names, "real training")
    _check_classes(test, class_names, "held-out")
    if train.images.shape[1:] != test.images.shape[1:]:
        raise DataError(f"training and held-out slices differ in size: {tuple(train.images.shape[1:])} and "
                        f"{tuple(test.images.shape[1:])}")
    classes, steps = len(class_names), training_steps(len(train), config)
    per_seed: dict[str, list[np.ndarray]] = {arm: [] for arm in ARMS}
    synthetic_count = 0
    with torch_threads(config.threads):
        bar = progress_bar(total=len(ARMS) * config.seeds, desc="segmentation utility", unit="run",
                           disable=not progress)
        for seed in range(config.seed, config.seed + config.seeds):
            synthetic = synthesize(seed)
            synthetic_count = len(synthetic)
            arms = {"real": train, "synthetic": synthetic,
                    "real+synthetic": SegmentationPairs(torch.cat([train.images, synthetic.images]),
                                                        torch.cat([train.labels, synthetic.labels]))}
            for arm in ARMS:
                bar.set_postfix_str(f"{arm} seed {seed}")
                model = train_segmenter(arms[arm], classes, config, seed, steps)
                dice = subject_dice(predict_labels(model, test.images), test.labels, test.subjects, classes)
                per_seed[arm].append(np.nanmean(dice, axis=0))  # every class occurs in some held-out subject
                bar.update(1)
        bar.close()
    confidence = config.confidence
    return {
        "arms": {arm: _summaries(rows, class_names, confidence, (0.0, 1.0)) for arm, rows in per_seed.items()},
        "differences": {f"{arm} - {base}": _summaries([a - b for a, b in zip(per_seed[arm], per_seed[base])],
                                                      class_names, confidence, (-1.0, 1.0))
                        for arm, base in DIFFERENCES},
        "per_seed": {arm: [row.tolist() for row in rows] for arm, rows in per_seed.items()},
        "class_names": list(class_names),
        "config": asdict(config),
        "steps_per_run": steps,
        "n_train": len(train),
        "n_synthetic": synthetic_count,
        "n_test": len(test),
        "n_test_subjects": len(set(test.subjects)),
        "dice": "per held-out subject over its slices (MONAI DiceMetric), mean over subjects having the class",
        "seconds": round(time.perf_counter() - started, 2),
    }
