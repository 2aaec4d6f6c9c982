"""Honesty at small N: FID extrapolated to infinitely many synthetic images, and the small-set warning.

FID is biased upward at a finite number of images N, and the bias is not a constant: it depends on the generator,
so two generators' FIDs at N = 500 can rank them differently from their FIDs at N = 50,000 (Chong & Forsyth 2020,
"Effectively Unbiased FID and Inception Score and where to find them", CVPR). They show that FID is linear in
1/N to a good approximation, FID(N) = FID_inf + k / N, with the real statistics fixed, and estimate FID_inf as the
intercept of a least-squares line through FID at several N of the synthetic set (15 values evenly spaced from
5,000 to 50,000 images, for 2048-D Inception features).

``fid_infinity`` does the same at the sizes the synthetic set allows: ``SIZES`` values evenly spaced in N from
max(2 D, N / 5) to N (below about 2 D the covariance estimate is too poor for the 1/N law), each FID the mean over
random subsets of that size, drawn without replacement. It needs N >= 4 D, so that the sizes span at least a
factor of 2 in 1/N; with fewer images, or with real images no more than D (FID undefined), it is omitted and
``fid_infinity_plan`` says why. The real set's own small-N bias is not removed (Chong & Forsyth assume a large
real set); the slope k says how strongly this generator's FID still depends on N.

``small_n_warning`` flags sets at which FID should not be read on its own: at or below the feature dimension, or
under ``MIN_IMAGES`` (1,000) images.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from medgan.metrics.fid import psd_sqrt, as_features, check_pair, feature_statistics

MIN_IMAGES = 1000  # sets smaller than this get the small-N warning
SIZES = 8  # synthetic set sizes in the fit
DRAWS = 5  # random subsets per size (2 above 2000 images; 1 above LARGE_DIM, where each FID costs seconds)
LARGE_DIM = 512


def fid_infinity_plan(n_real: int, n_fake: int, dim: int, sizes: int = SIZES) -> tuple[list[int], str | None]:
    """The synthetic set sizes of the fit, or ``([], why not)``."""
    if n_real <= dim:
        return [], (f"FID-infinity not computed: the real set has {n_real} images for {dim} features (FID needs more "
                    "images than features)")
    low = max(2 * dim, n_fake // 5)
    if n_fake < 2 * low or n_fake < 4 * dim:
        return [], (f"FID-infinity not computed: it fits FID over synthetic set sizes from 2 x {dim} features up to "
                    f"N and needs N >= {4 * dim} synthetic images (4 x the feature dimension) to span a factor of 2 "
                    f"in 1/N; there are {n_fake}")
    return sorted({int(round(size)) for size in np.linspace(low, n_fake, sizes)}), None


def fid_infinity(real_features: torch.Tensor | np.ndarray, fake_features: torch.Tensor | np.ndarray,
                 sizes: int = SIZES, draws: int | None = None, seed: int = 0) -> dict[str, Any] | None:
    """FID extrapolated to N -> infinity synthetic images (Chong & Forsyth 2020), or None where N is too small.

    Args:
        real_features: [N_r, D]; their statistics stay fixed.
        fake_features: [N_f, D].
        sizes: synthetic set sizes in the fit.
        draws: random subsets per size (default ``DRAWS``; 2 above 2000 synthetic images, 1 above ``LARGE_DIM``
            features); the full set is used once.
        seed: subset seed.

    Returns:
        ``{"value": FID_inf, "slope": k, "sizes": [N...], "fid": [mean FID at each N], "draws", "residual_rms"}``
        (FID(N) ~ value + slope / N), or None when ``fid_infinity_plan`` finds too few images.
    """
    real, fake = as_features(real_features, "real"), as_features(fake_features, "synthetic")
    check_pair(real, fake)
    grid, _ = fid_infinity_plan(real.shape[0], fake.shape[0], real.shape[1], sizes)
    if not grid:
        return None
    if draws is None:  # large subsets vary less; 2048-D eigensolvers cost seconds each
        draws = 1 if real.shape[1] > LARGE_DIM else 2 if fake.shape[0] > 2000 else DRAWS
    mean_real, cov_real = feature_statistics(real)
    root_real, trace_real = psd_sqrt(cov_real), float(np.trace(cov_real))

    def distance(rows: np.ndarray) -> float:  # FID against the fixed real statistics: one eigensolver per subset
        mean = rows.mean(0)
        centred = rows - mean
        cov = centred.T @ centred / (rows.shape[0] - 1.0)
        middle = root_real @ cov @ root_real
        trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2.0), 0.0, None)).sum()
        return float(np.sum((mean_real - mean) ** 2) + trace_real + np.trace(cov) - 2.0 * trace_root)

    rng = np.random.default_rng(seed)
    means = []
    for size in grid:
        repeats = 1 if size == fake.shape[0] else draws
        means.append(float(np.mean([distance(fake[rng.choice(fake.shape[0], size, replace=False)])
                                    for _ in range(repeats)])))
    design = np.stack([np.ones(len(grid)), 1.0 / np.asarray(grid, np.float64)], axis=1)
    (intercept, slope), *_ = np.linalg.lstsq(design, np.asarray(means), rcond=None)
    residual = np.asarray(means) - design @ np.array([intercept, slope])
    return {"value": float(intercept), "slope": float(slope), "sizes": grid, "fid": means, "draws": draws,
            "residual_rms": float(np.sqrt(np.mean(residual**2)))}


def small_n_warning(n_real: int, n_fake: int, dim: int, minimum: int = MIN_IMAGES) -> str | None:
    """The warning for sets too small to read FID on its own, or None.

    Raised when either set has at most ``dim`` images (FID undefined or nearly singular) or fewer than
    ``minimum`` images.
    """
    smallest = min(n_real, n_fake)
    if smallest > dim and smallest >= minimum:
        return None
    why = "at or below the feature dimension" if smallest <= dim else f"under {minimum:,} images"
    return (f"small sets: {n_real} real and {n_fake} synthetic images for {dim}-D features ({why}). FID is biased "
            "upward at this size, by an amount that depends on the generator: compare FIDs only between evaluations "
            "at the same N (or FID-infinity where given), and read KID (unbiased) and the 95% intervals before "
            "ranking runs")
