"""Membership-inference attacks on a generator, and their statistics (AUC with a patient bootstrap, TPR at low FPR).

A membership-inference attack scores each real image; a higher score says "this image was in the training set".
Members are images of the training patients, non-members images of other patients. The attack's ROC AUC over
members (positive) and non-members is 0.5 when it cannot tell them apart (no measurable leakage) and 1.0 when it
separates them perfectly.

Attacks:

* distance (the full black-box attack of Chen et al. 2020, "GAN-Leaks"): the distance of each
  real image to its nearest synthetic image among N samples; closer means more likely a member. Three distances:
  SSIM of the most similar synthetic image (``medgan.metrics.memorization``: candidates from the pixel and feature
  searches, SSIM on the display scale), Euclidean distance in the evaluation feature space, and pixel L2.
* inversion (the reconstruction attack of Hilprecht et al. 2019 and GAN-Leaks' white-box variant, with
  ``medgan.inference.inversion``): each real image is inverted (its latent optimized to reproduce it) and scored
  by minus its reconstruction error ``(1 - SSIM) + L1`` (model units): a generator reconstructs what it was
  trained on better than what it never saw. Inversion costs optimizer steps per image, so the attack runs on a
  seeded subsample of each side (``INVERSION_IMAGES``) with a short search (``INVERSION_STEPS``).
* discriminator (LOGAN, Hayes et al. 2019): the run's discriminator logit D(x); D is trained to call its training
  images real, so an overfitted D scores members higher. Images are scored in batches that mix members and
  non-members in a seeded random order, so D's minibatch-stddev feature sees no set-level difference. Conditional
  discriminators get each image's class when it is known, else the highest logit over the classes.

Statistics: AUC by the rank (Mann-Whitney) formula; its interval is a percentile bootstrap that resamples
*patients* (with replacement, members and non-members separately) and keeps all images of a drawn patient, since
images of one patient are not independent. TPR at a target FPR uses the ROC point with the largest FPR at or
below the target (Carlini et al. 2022): the threshold is the (k+1)-th highest non-member score, k = floor(FPR x
non-members).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from medgan.evaluation.utility.statistics import rank_auc
from medgan.metrics.features import FeatureExtractor, extract_features
from medgan.metrics.memorization import TrainingIndex

BOOTSTRAP_ROUNDS = 1000  # patient-bootstrap resamples of the AUC interval
CONFIDENCE = 0.95  # two-sided level of the AUC interval
FPR_LEVELS = (0.01, 0.001)  # TPR is reported at these false-positive rates (when there are enough non-members)
DISCRIMINATOR_BATCH = 64  # images per discriminator call (mixed members and non-members)
PIXEL_CHUNK = 512  # query rows per pixel-distance block

ATTACKS = {  # name -> what a higher score means
    "distance_ssim": "SSIM to the most similar synthetic image",
    "distance_features": "minus the feature distance to the nearest synthetic image",
    "distance_pixels": "minus the pixel L2 distance to the nearest synthetic image",
    "discriminator": "the run's discriminator logit D(x) (LOGAN)",
    "inversion": "minus the reconstruction error (1 - SSIM + L1) after inverting the image",
}
INVERSION_IMAGES = 64  # images per side the inversion attack inverts (a seeded subsample; 0 switches it off)
INVERSION_STEPS = 100  # optimizer steps per start of the inversion attack
INVERSION_RESTARTS = 2  # starts per image of the inversion attack


@dataclass
class AuditSide:
    """Members or non-members: images in [-1, 1] with their patients (and classes, when known)."""

    images: torch.Tensor  # [N, 1, R, R]
    subjects: list[str]
    labels: torch.Tensor | None = None  # class index per image in the run's class order, or None
    attributes: torch.Tensor | None = None  # standardized attributes [N, A] in the run's order, or None

    @property
    def patients(self) -> int:
        return len(set(self.subjects))


def tpr_at_fpr(member_scores: np.ndarray, non_member_scores: np.ndarray, fpr: float) -> float:
    """True-positive rate at the ROC point with the largest false-positive rate <= ``fpr``.

    The threshold is the (k+1)-th highest non-member score, k = floor(fpr x non-members): at most k non-members
    score strictly above it, and the TPR is the fraction of members strictly above it (ties count as negative).
    """
    ordered = np.sort(np.asarray(non_member_scores, dtype=np.float64))[::-1]
    allowed = min(int(math.floor(fpr * len(ordered) + 1e-9)), len(ordered) - 1)
    return float(np.mean(np.asarray(member_scores, dtype=np.float64) > ordered[allowed]))


def membership_auc(member_scores: np.ndarray, non_member_scores: np.ndarray) -> float:
    """ROC AUC of members (positive) against non-members, by ranks (``utility.statistics.rank_auc``)."""
    scores = np.concatenate([member_scores, non_member_scores]).astype(np.float64)
    positive = np.arange(len(scores)) < len(member_scores)
    return rank_auc(positive, scores)


def _patient_groups(subjects: list[str]) -> list[np.ndarray]:
    """Image indices per patient (patients in sorted order)."""
    keys = np.asarray(subjects)
    return [np.flatnonzero(keys == key) for key in sorted(set(subjects))]


def patient_bootstrap_auc(member_scores: np.ndarray, member_subjects: list[str], non_member_scores: np.ndarray,
                          non_member_subjects: list[str], rounds: int = BOOTSTRAP_ROUNDS,
                          confidence: float = CONFIDENCE, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the AUC, resampling patients (all their images) on each side.

    Args:
        member_scores, non_member_scores: attack scores per image.
        member_subjects, non_member_subjects: patient key per image.
        rounds: resamples.
        confidence: two-sided level.
        seed: resampling seed.

    Returns:
        (low, high).
    """
    members, non_members = _patient_groups(member_subjects), _patient_groups(non_member_subjects)
    rng = np.random.default_rng(seed)
    values = np.empty(rounds)
    for round_index in range(rounds):
        drawn_members = np.concatenate([members[i] for i in rng.integers(0, len(members), len(members))])
        drawn_non = np.concatenate([non_members[i] for i in rng.integers(0, len(non_members), len(non_members))])
        values[round_index] = membership_auc(member_scores[drawn_members], non_member_scores[drawn_non])
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def attack_summary(member_scores: np.ndarray, member_subjects: list[str], non_member_scores: np.ndarray,
                   non_member_subjects: list[str], rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0) -> dict:
    """AUC, its patient-bootstrap interval, and TPR at the FPR levels that the non-member count resolves.

    TPR at a level is None when fewer than 1 / level non-member images exist (the ROC curve has no point there
    other than FPR 0; ``tpr_at_zero_fpr`` is always given).
    """
    auc = membership_auc(member_scores, non_member_scores)
    low, high = patient_bootstrap_auc(member_scores, member_subjects, non_member_scores, non_member_subjects,
                                      rounds=rounds, seed=seed)
    count = len(non_member_scores)
    return {
        "auc": auc, "auc_ci_low": low, "auc_ci_high": high, "leakage_detected": bool(low > 0.5),
        "tpr_at_fpr": {f"{level:g}": tpr_at_fpr(member_scores, non_member_scores, level) if count * level >= 1
                       else None for level in FPR_LEVELS},
        "tpr_at_zero_fpr": tpr_at_fpr(member_scores, non_member_scores, 0.0),
        "member_score_median": float(np.median(member_scores)),
        "non_member_score_median": float(np.median(non_member_scores)),
    }


# Attacks -------------------------------------------------------------------------------------------------


def _nearest_pixel_distance(queries: torch.Tensor, references: torch.Tensor) -> np.ndarray:
    """[Q] Euclidean pixel distance (model units) from each query image to its nearest reference image."""
    flat = references.flatten(1).float()
    distances = [torch.cdist(queries[start : start + PIXEL_CHUNK].flatten(1).float(), flat).min(1).values
                 for start in range(0, queries.shape[0], PIXEL_CHUNK)]
    return torch.cat(distances).double().numpy()


def distance_scores(real: torch.Tensor, synthetic: torch.Tensor, extractor: FeatureExtractor,
                    progress: bool = False) -> dict[str, np.ndarray]:
    """Distance-attack scores of real images against synthetic ones (higher = closer = more likely member).

    Args:
        real: [Q, 1, R, R] in [-1, 1] (members and non-members together).
        synthetic: [N, 1, R, R] in [-1, 1], N >= 2.
        extractor: the feature space of the feature distance and of the SSIM candidate search.
        progress: progress bars during feature extraction.

    Returns:
        ``{"distance_ssim", "distance_features", "distance_pixels"}``, each [Q].
    """
    synthetic_features = extract_features(synthetic, extractor, progress=progress, what="synthetic")
    real_features = extract_features(real, extractor, progress=progress, what="real")
    nearest = TrainingIndex(synthetic, synthetic_features).nearest(real, real_features)
    return {
        "distance_ssim": np.asarray(nearest.ssim, dtype=np.float64),
        "distance_features": -np.asarray(nearest.feature_distance, dtype=np.float64),
        "distance_pixels": -_nearest_pixel_distance(real, synthetic),
    }


@torch.no_grad()
def discriminator_scores(discriminator: nn.Module, images: torch.Tensor, labels: torch.Tensor | None,
                         attributes: torch.Tensor | None, num_classes: int, seed: int = 0,
                         batch_size: int = DISCRIMINATOR_BATCH) -> np.ndarray:
    """LOGAN scores: D's logit per image, in seeded shuffled batches (see the module docstring).

    Args:
        discriminator: the run's D (its forward takes images, labels, attributes).
        images: [Q, C, R, R] in [-1, 1].
        labels: [Q] class indices, or None (for a conditional D: the maximum logit over the classes).
        attributes: [Q, A] standardized attributes, or None.
        num_classes: classes D is conditioned on (0: unconditional).
        seed: seed of the batch order.
        batch_size: images per call.

    Returns:
        [Q] logits as float64.
    """
    discriminator.eval()
    order = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(seed))
    scores = torch.empty(images.shape[0], dtype=torch.float64)
    for start in range(0, images.shape[0], batch_size):
        picked = order[start : start + batch_size]
        part = images[picked].float()
        values = None if attributes is None else attributes[picked].float()
        if num_classes and labels is None:
            logits = torch.stack([discriminator(part, torch.full((len(picked),), c, dtype=torch.long), values)
                                  for c in range(num_classes)]).amax(0)
        else:
            logits = discriminator(part, None if labels is None else labels[picked].long(), values)
        scores[picked] = logits.reshape(-1).double()
    return scores.numpy()


def subsample(count: int, limit: int, seed: int) -> np.ndarray:
    """Sorted indices of at most ``limit`` of ``count`` items, drawn without replacement with ``seed``."""
    if count <= limit:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, size=limit, replace=False))


def inversion_scores(model, images: torch.Tensor, labels: torch.Tensor | None, features=None,
                     steps: int = INVERSION_STEPS, restarts: int = INVERSION_RESTARTS, seed: int = 0) -> np.ndarray:
    """Inversion-attack scores: minus ``(1 - SSIM) + L1`` of each image's reconstruction (higher = better
    reconstructed = more likely a member).

    Args:
        model: the run's ``NoiseToImage`` (2D).
        images: [Q, C, R, R] in [-1, 1].
        labels: [Q] classes for a conditional run (None: every class is tried).
        features: the run's ``DiscriminatorFeatures`` for the objective, or None.
        steps: optimizer steps per start.
        restarts: starts per image.
        seed: seed of the starts.

    Returns:
        [Q] float64 scores.
    """
    from medgan.inference.inversion import InversionConfig, invert
    from medgan.metrics.image import ssim

    config = InversionConfig(steps=steps, restarts=restarts, seed=seed)
    result = invert(model, images.float(), config, labels, features)
    error = (1 - ssim(result.images, images.float())) + (result.images - images.float()).abs().flatten(1).mean(1)
    return -error.double().numpy()
