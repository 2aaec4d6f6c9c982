"""Diversity and mode collapse: mean pairwise MS-SSIM within a set (Odena et al. 2017).

Random pairs of distinct images from the same set are scored with MS-SSIM (``medgan.metrics.image.ms_ssim``).
High mean MS-SSIM means the images look alike. The synthetic figure is read beside the real one:

    relative diversity = (1 - MS-SSIM_synthetic) / (1 - MS-SSIM_real)

is 1 when the generator is as varied as the data, above 1 when it is more varied (often noise), and near 0
when it produces one image. A generator that collapses onto a few modes keeps a fair mean dissimilarity but
repeats itself, so the share of *duplicate pairs* (MS-SSIM >= 0.95) is compared too.

``collapse`` is flagged when the relative diversity falls below 0.5 (the synthetic set keeps less than half the
real set's dissimilarity) or when the duplicate-pair share exceeds the real one by more than 0.1. The real
figures depend on the data (adjacent slices of one volume are much alike), which is why both tests are relative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from medgan.errors import DataError
from medgan.metrics.features import check_images
from medgan.metrics.image import ms_ssim, random_pairs, summarize

COLLAPSE_RATIO = 0.5  # relative diversity below this flags mode collapse
DUPLICATE_MS_SSIM = 0.95  # a pair at or above this MS-SSIM counts as a duplicate
DUPLICATE_EXCESS = 0.1  # duplicate-pair share above the real one by more than this flags collapse
DEFAULT_PAIRS = 500  # random pairs per set


@dataclass(frozen=True)
class PairValues:
    """MS-SSIM of random pairs of distinct images of one set: ``values[p]`` for images ``first[p]``, ``second[p]``.

    Kept so that intervals (``medgan.metrics.intervals``) resample images and re-weight their pairs instead of
    scoring new pairs.
    """

    first: np.ndarray  # [P] image index
    second: np.ndarray  # [P] image index, never equal to first
    values: np.ndarray  # [P] MS-SSIM
    count: int  # images in the set

    def summary(self) -> dict[str, float]:
        """Summary (mean, std, count) plus ``duplicate_fraction``: the share of pairs with MS-SSIM >= 0.95."""
        return {**summarize(self.values), "duplicate_fraction": float((self.values >= DUPLICATE_MS_SSIM).mean())}


def pair_values(images: torch.Tensor, pairs: int = DEFAULT_PAIRS, seed: int = 0) -> PairValues:
    """MS-SSIM of ``pairs`` random pairs of distinct images of one set ([N, 1, H, W], N >= 2)."""
    check_images(images)
    if images.shape[0] < 2:
        raise DataError(f"diversity needs at least 2 images, got {images.shape[0]}")
    first, second = random_pairs(images.shape[0], images.shape[0], pairs, seed, same_set=True)
    values = ms_ssim(images[first], images[second])
    return PairValues(first.numpy(), second.numpy(), values.detach().cpu().numpy(), int(images.shape[0]))


def pairwise_ms_ssim(images: torch.Tensor, pairs: int = DEFAULT_PAIRS, seed: int = 0) -> dict[str, float]:
    """MS-SSIM over random pairs of distinct images of one set ([N, 1, H, W], N >= 2).

    Returns:
        Summary (mean, std, count) plus ``duplicate_fraction``: the share of pairs with MS-SSIM >= 0.95.
    """
    return pair_values(images, pairs, seed).summary()


def diversity(real: torch.Tensor, fake: torch.Tensor, pairs: int = DEFAULT_PAIRS, seed: int = 0) -> dict:
    """Pairwise MS-SSIM of synthetic images beside real images, with a collapse flag.

    Args:
        real: [N_r, 1, R, R] in [-1, 1].
        fake: [N_f, 1, R, R] in [-1, 1].
        pairs: random pairs per set.
        seed: pair sampling seed (the synthetic set's pairs use ``seed + 1``).

    Returns:
        ``{"real_ms_ssim", "synthetic_ms_ssim"`` (summaries with duplicate fractions),
        ``"relative_diversity", "duplicate_excess", "collapse", ...}``.
    """
    return diversity_of_pairs(pair_values(real, pairs, seed), pair_values(fake, pairs, seed + 1))


def diversity_of_pairs(real_pairs: PairValues, fake_pairs: PairValues) -> dict:
    """``diversity`` from already scored pairs of each set."""
    real_summary, fake_summary = real_pairs.summary(), fake_pairs.summary()
    real_spread = max(1.0 - real_summary["mean"], 1e-6)  # a real set of identical images leaves nothing to compare
    relative = (1.0 - fake_summary["mean"]) / real_spread
    excess = fake_summary["duplicate_fraction"] - real_summary["duplicate_fraction"]
    return {
        "real_ms_ssim": real_summary,
        "synthetic_ms_ssim": fake_summary,
        "relative_diversity": float(relative),
        "duplicate_excess": float(excess),
        "collapse": bool(relative < COLLAPSE_RATIO or excess > DUPLICATE_EXCESS),
        "collapse_rule": f"relative diversity < {COLLAPSE_RATIO} or duplicate-pair excess > {DUPLICATE_EXCESS}",
    }
