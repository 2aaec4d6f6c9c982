"""Radiomic features of 2D images and the Fréchet Radiomics Distance (FRD) between two image sets.

FRD (Osuala et al. 2024, FRD v0; Konz, Osuala et al., "Fréchet Radiomic Distance (FRD): A Versatile Metric for
Comparing Medical Imaging Datasets", arXiv:2412.01496, FRD v1; reference code: PyPI ``frd-score`` 1.0.1) is the
Fréchet distance between Gaussian fits of *radiomic* feature vectors, hand-crafted and interpretable, needing
no downloaded network weights. This module keeps frd-score's v1 *definition* and computes a smaller feature
set itself, in numpy/scipy:

1. features: per image, inside a region of interest (see ``medgan.metrics.texture`` for the ROI and the
   fixed-bin-width quantization), the 31 features of ``radiomic_feature_names()``;
2. normalization: every feature is z-scored with the mean and (population) standard deviation of the *real*
   set, frd-score v1's default (``norm_ref="d1"``, the paper's Eq. 3); features that are constant in the real
   set are dropped, which is what frd-score v1 does with the Inf columns this produces;
3. ``d2`` = the squared Fréchet distance of the two normalized sets (``medgan.metrics.fid.frechet_distance``);
4. FRD = ``log(d2)``, frd-score v1's reported value (its default ``use_paper_log=False``). frd-score applies
   no log to the features themselves, so neither does this module.

What differs from frd-score, so values are **not comparable with published FRD numbers**, only between
runs of medgan: frd-score v1 extracts about 464 pyradiomics features from the original image and from LoG
(sigma 2-5) and wavelet filtered images, after pyradiomics' per-image intensity normalization, resampling
to 2 mm pixels and a bin width of 5; here 31 features come from the original image only, in model units
(fixed bins of 1/16 over [-1, 1]; an image's brightness is kept, not normalized away). GLDM and NGTDM
features, most GLCM features and the shape features other than the ROI area are left out: each would add
a long vectorized implementation for little extra information at 64-256 px, and a smaller feature set
needs fewer images for a full-rank covariance. pyradiomics is not a dependency: its PyPI releases are
source-only (``pyradiomics`` 3.1.0 does not build on Python >= 3.10, ``pyradiomics-bhklab`` 3.1.4 needs a
C compiler) and frd-score also pulls in OpenCV and SimpleITK. Where pyradiomics is installed the tests
check that every feature but area_fraction equals pyradiomics' own (same ROI and bins; they agree to 1e-12
or better), and where frd-score is too, that this FRD ranks image sets as frd-score does.

Features (pyradiomics names in brackets), for the ROI's pixel values x (model units) and grey levels:

* first order (10): mean, std [StandardDeviation, population], skewness, kurtosis [Pearson, not excess;
  both 0 for a flat ROI], entropy [of the 32-level histogram, bits], energy [sum (x + 1)^2: the +1 shift
  plays pyradiomics' voxelArrayShift, making values non-negative; grows with ROI area], p10, p90,
  interquartile_range, robust_mean_absolute_deviation [of the values between p10 and p90];
* GLCM (6 x distances 1 and 2, pyradiomics' offsets: 4 at distance 1, 8 at distance 2): contrast,
  dissimilarity, homogeneity, asm, correlation, entropy (see ``texture.glcm_features``; energy = sqrt(asm)
  is left out of the vector: it would count asm twice);
* GLRLM (5): short/long run emphasis, run length and grey level non-uniformity (normalized), run percentage;
* GLSZM (3): small/large area emphasis, zone percentage;
* shape (1): area_fraction, ROI pixels / image pixels (constant, hence dropped, when every ROI is the whole
  image).
"""

from __future__ import annotations

import numpy as np
import torch

from medgan.errors import DataError
from medgan.metrics.fid import as_features, check_pair, feature_statistics, frechet_distance
from medgan.metrics.texture import (CHUNK, LEVELS, check_finite, glcm_features, glcm_statistics, glrlm_features,
                                    glszm_features, image_stack, quantize)

__all__ = ["frd", "glcm_statistics", "radiomic_feature_names", "radiomic_features"]

FIRST_ORDER = ("mean", "std", "skewness", "kurtosis", "entropy", "energy", "p10", "p90", "interquartile_range",
               "robust_mean_absolute_deviation")
GLCM_FEATURES = ("contrast", "dissimilarity", "homogeneity", "asm", "correlation", "entropy")
GLCM_DISTANCES = (1, 2)
GLRLM_FEATURES = ("short_run_emphasis", "long_run_emphasis", "run_length_nonuniformity",
                  "grey_level_nonuniformity", "run_percentage")
GLSZM_FEATURES = ("small_area_emphasis", "large_area_emphasis", "zone_percentage")
SHAPE_FEATURES = ("area_fraction",)
ENERGY_SHIFT = 1.0  # x + 1 >= 0 on [-1, 1]: pyradiomics' voxelArrayShift, so dark pixels add little energy
CONSTANT_STD = 1e-12  # relative standard deviation below which a real-set feature counts as constant
# log floor: identical sets give log(1e-6) = -13.8 instead of -inf. In z-score units (total variance about F)
# a squared distance below 1e-6 is rounding noise of the eigenvalue square roots, not a difference.
SMALLEST_DISTANCE = 1e-6


def radiomic_feature_names() -> list[str]:
    """Names of the columns of ``radiomic_features``, in order (``group_feature[_dDISTANCE]``)."""
    names = [f"firstorder_{name}" for name in FIRST_ORDER]
    names += [f"glcm_{name}_d{distance}" for distance in GLCM_DISTANCES for name in GLCM_FEATURES]
    names += [f"glrlm_{name}" for name in GLRLM_FEATURES]
    names += [f"glszm_{name}" for name in GLSZM_FEATURES]
    names += [f"shape_{name}" for name in SHAPE_FEATURES]
    return names


def _percentiles(values: np.ndarray, counts: np.ndarray, quantiles: tuple[float, ...]) -> np.ndarray:
    """Linear-interpolation percentiles (numpy's default) of each row's first ``counts`` sorted values."""
    position = (counts[:, None] - 1) * np.asarray(quantiles)[None, :]  # [N, Q]
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, counts[:, None] - 1)
    below, above = np.take_along_axis(values, low, 1), np.take_along_axis(values, high, 1)
    return below + (above - below) * (position - low)


def first_order_features(images: np.ndarray, rois: np.ndarray, levels: np.ndarray) -> dict[str, np.ndarray]:
    """First-order features of each image's ROI pixel values (definitions in the module docstring).

    Args:
        images: ``[N, H, W]`` float64 in model units.
        rois: ``[N, H, W]`` boolean, at least one pixel each.
        levels: ``quantize(images)``, for the histogram entropy.

    Returns:
        name -> ``[N]`` float64, names as ``FIRST_ORDER``.
    """
    count = images.shape[0]
    values, inside = images.reshape(count, -1), rois.reshape(count, -1)
    pixels = inside.sum(1).astype(np.float64)
    mean = np.where(inside, values, 0.0).sum(1) / pixels
    centred = np.where(inside, values - mean[:, None], 0.0)
    second, third, fourth = ((centred**power).sum(1) / pixels for power in (2, 3, 4))
    flat = second < 1e-20  # pyradiomics: skewness and kurtosis are 0 when the ROI has one value
    safe = np.where(flat, 1.0, second)
    binned = np.where(inside, levels.reshape(count, -1), LEVELS)  # LEVELS: an extra bin for pixels outside the ROI
    rows = np.arange(count)[:, None] * (LEVELS + 1)
    histogram = np.bincount((rows + binned).ravel(), minlength=count * (LEVELS + 1)).reshape(count, -1)
    histogram = histogram[:, :LEVELS] / pixels[:, None]
    ordered = np.sort(np.where(inside, values, np.inf), axis=1)  # ROI values first in every row
    p10, p25, p75, p90 = _percentiles(ordered, inside.sum(1), (0.10, 0.25, 0.75, 0.90)).T
    middle = inside & (values >= p10[:, None]) & (values <= p90[:, None])  # never empty: p10 <= some x <= p90
    middle_count = middle.sum(1)
    middle_mean = np.where(middle, values, 0.0).sum(1) / middle_count
    return {
        "mean": mean,
        "std": np.sqrt(second),
        "skewness": np.where(flat, 0.0, third / safe**1.5),
        "kurtosis": np.where(flat, 0.0, fourth / safe**2),
        "entropy": -(histogram * np.log2(histogram + np.finfo(np.float64).eps)).sum(1),
        "energy": np.where(inside, (values + ENERGY_SHIFT) ** 2, 0.0).sum(1),
        "p10": p10,
        "p90": p90,
        "interquartile_range": p75 - p25,
        "robust_mean_absolute_deviation": np.where(middle, np.abs(values - middle_mean[:, None]), 0.0).sum(1)
        / middle_count,
    }


def _chunk_features(images: np.ndarray, rois: np.ndarray) -> np.ndarray:
    """``[n, F]`` features of one chunk of images, columns in ``radiomic_feature_names`` order."""
    levels = quantize(images)
    first_order = first_order_features(images, rois, levels)
    columns = [first_order[name] for name in FIRST_ORDER]
    for distance in GLCM_DISTANCES:
        texture = glcm_features(levels, rois, distance)
        check_finite({f"glcm_{name}_d{distance}": texture[name] for name in GLCM_FEATURES})
        columns += [texture[name] for name in GLCM_FEATURES]
    runs = glrlm_features(levels, rois)
    columns += [runs[name] for name in GLRLM_FEATURES]
    zones = glszm_features(levels, rois)
    columns += [zones[name] for name in GLSZM_FEATURES]
    columns.append(rois.reshape(rois.shape[0], -1).mean(1))
    return np.stack(columns, axis=1)


def radiomic_features(images: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
    """Radiomic feature vectors of 2D images (the input of ``frd``).

    Args:
        images: ``[N, 1, H, W]`` in [-1, 1] (model units).
        masks: optional ``[N, 1, H, W]`` boolean ROIs (body or organ masks); default: the pixels above the
            -1 background, or the whole image where it has almost none (see ``medgan.metrics.texture``).

    Returns:
        ``[N, F]`` float64 features, columns named by ``radiomic_feature_names()`` (F = 31). Pixels outside
        the ROI never change them. Each row depends only on its own image.

    Raises:
        DataError: not ``[N, 1, H, W]``, no images, NaN/Inf, a mask of the wrong shape or type, a mask with
            fewer than 16 pixels, or an ROI without pixel pairs at distance 2.
    """
    array, rois = image_stack(images, masks)
    parts = [_chunk_features(array[start : start + CHUNK], rois[start : start + CHUNK])
             for start in range(0, array.shape[0], CHUNK)]
    return torch.from_numpy(np.concatenate(parts))


def normalize_to_reference(real: np.ndarray, fake: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both sets z-scored with the real set's per-feature mean and population std (frd-score v1's ``d1``).

    Features whose real-set std is at most ``CONSTANT_STD`` times max(1, |mean|) are dropped: a z-score
    cannot be formed for them (frd-score v1 drops the Inf columns that arise). The rule depends only on the
    rows given, so a bootstrap resample decides it the same way every time it is run.

    Raises:
        DataError: every feature is constant in the real set.
    """
    mean, std = real.mean(0), real.std(0)
    keep = std > CONSTANT_STD * np.maximum(1.0, np.abs(mean))
    if not keep.any():
        raise DataError("FRD: every radiomic feature is constant across the real images; nothing to compare")
    return (real[:, keep] - mean[keep]) / std[keep], (fake[:, keep] - mean[keep]) / std[keep]


def frd(real_features: torch.Tensor, fake_features: torch.Tensor) -> float:
    """Fréchet Radiomics Distance between real and synthetic radiomic features (frd-score v1 definition).

    Args:
        real_features: ``[N_r, F]`` from ``radiomic_features`` of the real (reference) images.
        fake_features: ``[N_f, F]`` from ``radiomic_features`` of the synthetic images.

    Returns:
        ``log(d2)``, the natural log of the squared Fréchet distance between Gaussian fits of the two sets
        after z-scoring every feature with the real set's statistics (features constant in the real set are
        dropped). Lower is better; it is negative when d2 < 1 and floored at ``log(1e-6)`` = -13.8, where
        d2 is rounding noise (identical sets; frd-score returns -inf or a noisy large negative value there).
        Comparable between medgan runs only (see the module docstring).

    Raises:
        DataError: empty sets, different F, NaN/Inf, every feature constant in the real set, or a set with
            no more images than the retained features (the covariance would be singular; the same rule as
            ``fid``; with all 31 features, at least 32 images per set).
    """
    real = as_features(real_features, "real")
    fake = as_features(fake_features, "synthetic")
    check_pair(real, fake)
    real, fake = normalize_to_reference(real, fake)
    dim = real.shape[1]
    for name, array in (("real", real), ("synthetic", fake)):
        if array.shape[0] <= dim:
            raise DataError(f"FRD needs more images than radiomic features: the {name} set has {array.shape[0]} "
                            f"images for {dim} features; use at least {dim + 1} images per set")
    distance = frechet_distance(*feature_statistics(real), *feature_statistics(fake))
    return float(np.log(max(distance, SMALLEST_DISTANCE)))
