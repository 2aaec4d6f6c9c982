"""Intervals on the image-level headline numbers: random-pair SSIM/MS-SSIM/PSNR, the SNR/contrast/CNR distribution
gaps and the intensity Wasserstein distances, in the scheme of ``medgan.metrics.intervals`` (centred bootstrap,
real images by subject where known).

Everything per image or per pair is computed once; a resample only re-weights:

* random pairs: images are resampled and a pair weighs count(first) x count(second), as the diversity pairs
  (``medgan.metrics.intervals``); real-real pairs are of distinct images.
* SNR, RMS contrast, CNR: the 1-D Wasserstein distance between the resampled per-image values of the two sets
  (an empirical distribution with repeated values is still one); bounded below by 0.
* intensity: per-image histograms are summed over the resample, then the two Wasserstein distances of
  ``medgan.metrics.intensity`` are taken; bounded below by 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.stats import wasserstein_distance

from medgan.metrics.intensity import bin_centres, histogram_distances, image_histograms
from medgan.metrics.intervals import Resampling, entry, one_thread
from medgan.metrics.bootstrap import bootstrap

PAIR_METRICS = ("ssim", "ms_ssim", "psnr")
NO_REFERENCE = ("snr", "rms_contrast", "cnr")


def _weighted_mean(pairs: tuple[np.ndarray, np.ndarray, np.ndarray], left: np.ndarray, right: np.ndarray) -> float:
    first, second, values = pairs
    weights = left[first] * right[second]
    finite = np.isfinite(values)
    total = weights[finite].sum()
    return float(weights[finite] @ values[finite] / total) if total > 0 else float("nan")


def _centred_on(result: dict, index: int, value: float, floor: float | None = None) -> dict[str, Any]:
    """An entry moved onto the reported ``value`` (the resampled statistic may be computed another way)."""
    found = entry(result, index)
    shift = value - result["value"][index]
    found["low"], found["high"] = found["low"] + shift, found["high"] + shift
    if floor is not None:
        found["low"] = max(floor, found["low"])
    return found


def random_pair_intervals(scores: dict, n_real: int, n_fake: int, how: Resampling,
                          summaries: dict) -> dict[str, dict]:
    """Intervals of the mean real-synthetic and real-real SSIM, MS-SSIM and PSNR (``image.random_pair_scores``)."""

    def statistic(real_index: np.ndarray, fake_index: np.ndarray) -> list[float]:
        real_counts = np.bincount(real_index, minlength=n_real).astype(np.float64)
        fake_counts = np.bincount(fake_index, minlength=n_fake).astype(np.float64)
        return ([_weighted_mean(scores[name]["real_synthetic"], real_counts, fake_counts) for name in PAIR_METRICS]
                + [_weighted_mean(scores[name]["real_real"], real_counts, real_counts) for name in PAIR_METRICS])

    with one_thread():
        result = bootstrap(statistic, n_real, n_fake, resamples=how.resamples, seed=how.seed,
                           real_groups=how.real_groups, centred=True)
    found = {}
    for index, side in enumerate(("real_synthetic", "real_real")):
        for offset, name in enumerate(PAIR_METRICS):
            position = index * len(PAIR_METRICS) + offset
            found[f"image_quality.random_pairs.{name}.{side}.mean"] = _centred_on(
                result, position, summaries[name][side]["mean"])
    return found


def no_reference_intervals(real_values: dict[str, np.ndarray], fake_values: dict[str, np.ndarray],
                           how: Resampling, summaries: dict) -> dict[str, dict]:
    """Intervals of the SNR, RMS-contrast and CNR Wasserstein gaps (``image.no_reference_values`` of each set)."""

    def statistic(real_index: np.ndarray, fake_index: np.ndarray) -> list[float]:
        gaps = []
        for name in NO_REFERENCE:
            real, fake = real_values[name][real_index], fake_values[name][fake_index]
            real, fake = real[np.isfinite(real)], fake[np.isfinite(fake)]
            gaps.append(float(wasserstein_distance(real, fake)) if real.size and fake.size else float("nan"))
        return gaps

    with one_thread():
        result = bootstrap(statistic, len(real_values["snr"]), len(fake_values["snr"]), resamples=how.resamples,
                           seed=how.seed, real_groups=how.real_groups, centred=True)
    return {f"image_quality.no_reference.{name}.wasserstein": _centred_on(
        result, index, summaries[name]["wasserstein"], floor=0.0) for index, name in enumerate(NO_REFERENCE)}


def intensity_intervals(real: torch.Tensor, fake: torch.Tensor, mapping: Any, how: Resampling,
                        values: dict) -> dict[str, dict]:
    """Intervals of the all-pixel and foreground intensity Wasserstein distances (per-image histograms resampled)."""
    centres = bin_centres(mapping)
    real_histograms, fake_histograms = image_histograms(real), image_histograms(fake)

    def statistic(real_index: np.ndarray, fake_index: np.ndarray) -> list[float]:  # counts @ rows: one BLAS call
        real_counts = np.bincount(real_index, minlength=len(real_histograms)).astype(np.float64)
        fake_counts = np.bincount(fake_index, minlength=len(fake_histograms)).astype(np.float64)
        return list(histogram_distances(centres, real_counts @ real_histograms, fake_counts @ fake_histograms))

    with one_thread():
        result = bootstrap(statistic, len(real_histograms), len(fake_histograms), resamples=how.resamples,
                           seed=how.seed, real_groups=how.real_groups, centred=True)
    return {f"intensity.{name}": _centred_on(result, index, values[name], floor=0.0)
            for index, name in enumerate(("wasserstein", "wasserstein_foreground"))}
