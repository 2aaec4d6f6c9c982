"""The catalogue of headline metrics: what each row of the report's metrics table shows and how to read it.

``METRICS`` lists the rows (a dotted key into the metrics dict, a label, which direction is better, a definition
and the numbers to read it against); ``lookup`` reads a dotted key and ``headline`` flattens the rows' values.
The metric suite (``medgan.metrics.suite``) and the report (``medgan.report.html``) both read it.
``VOLUME_METRICS`` and ``VOLUME_TRANSLATION_METRICS`` are the rows of the 3D evaluations (``medgan.metrics.volumes``,
``medgan.metrics.volume_translation``); ``headline(metrics, rows)`` flattens either.

Intervals (metrics.json): a number keeps its key and stays a number; its 95% interval is a sibling with the same
parent and the leaf name plus ``_interval`` (``interval_key``), so old readers see nothing change and a dotted key
reads both::

    "distribution": {"fid": 41.2,
                     "fid_interval": {"low": 37.9, "high": 45.0, "confidence": 0.95, "method": "centred percentile",
                                      "scheme": "bootstrap", "resamples": 200, "resampled": "images",
                                      "n_real": 112, "n_fake": 500}, ...}
    "diversity": {"synthetic_ms_ssim": {"mean": 0.21, "mean_interval": {...}, ...}, ...}

``scheme`` is "bootstrap" (with replacement) or "half" (half-sampling without replacement); ``method`` is
"percentile", "centred percentile" or "normal" (few resamples); ``resampled`` says whether real subjects or real
images were drawn (``medgan.metrics.bootstrap``, ``medgan.metrics.intervals``). The evaluation-wide settings
(resamples, seed, why images rather than subjects) are the top-level ``resampling`` section.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MetricInfo:
    """One row of the report's metrics table."""

    key: str  # dotted path into metrics.json
    label: str
    better: str  # "lower", "higher", "≈ 1", "≈ real–real", ...
    definition: str
    context: tuple[tuple[str, str], ...] = ()  # (label, dotted key) of numbers shown beside the value


_RANDOM_PAIRS = "image_quality.random_pairs"
_NO_REFERENCE = "image_quality.no_reference"

METRICS: tuple[MetricInfo, ...] = (
    MetricInfo("distribution.fid", "FID", "lower",
               "Fréchet distance between Gaussians fitted to real and synthetic features (means and covariances)."),
    MetricInfo("distribution.kid_mean", "KID", "lower",
               "Unbiased MMD² with kernel (x·y/D + 1)³, mean over random subsets of min(1000, N/2) images; about 0 "
               "when distributions match.",
               (("± std over subsets", "distribution.kid_std"), ("subset size", "distribution.kid_subset_size"))),
    MetricInfo("distribution.precision", "Precision", "higher",
               "Fraction of synthetic features inside the real k-NN manifold (k = 5): fidelity."),
    MetricInfo("distribution.recall", "Recall", "higher",
               "Fraction of real features inside the synthetic k-NN manifold (k = 5): diversity."),
    MetricInfo("distribution.density", "Density", "higher (≈ 1 when matched)",
               "Mean number of real k-NN balls holding a synthetic feature, divided by k: outlier-robust fidelity."),
    MetricInfo("distribution.coverage", "Coverage", "higher",
               "Fraction of real features whose k-NN ball holds a synthetic feature: outlier-robust diversity."),
    MetricInfo(f"{_RANDOM_PAIRS}.ssim.real_synthetic.mean", "SSIM real–synthetic", "≈ real–real",
               "Mean SSIM (11 px Gaussian window, σ 1.5) over random real–synthetic pairs; the two sets have no "
               "true pairs, so it is read against random real–real pairs.",
               (("real–real", f"{_RANDOM_PAIRS}.ssim.real_real.mean"),)),
    MetricInfo(f"{_RANDOM_PAIRS}.ms_ssim.real_synthetic.mean", "MS-SSIM real–synthetic", "≈ real–real",
               "Mean multi-scale SSIM over random real–synthetic pairs (3 scales at 64 px, 5 from 176 px).",
               (("real–real", f"{_RANDOM_PAIRS}.ms_ssim.real_real.mean"),)),
    MetricInfo(f"{_RANDOM_PAIRS}.psnr.real_synthetic.mean", "PSNR real–synthetic (dB)", "≈ real–real",
               "Mean 10·log10(1/MSE) on the [0, 1] display scale over random real–synthetic pairs.",
               (("real–real", f"{_RANDOM_PAIRS}.psnr.real_real.mean"),)),
    MetricInfo(f"{_NO_REFERENCE}.snr.wasserstein", "SNR distribution gap", "lower",
               "1-D Wasserstein distance between per-image SNR (foreground mean / std, display scale) of real and "
               "synthetic images.",
               (("real", f"{_NO_REFERENCE}.snr.real.mean"), ("synthetic", f"{_NO_REFERENCE}.snr.synthetic.mean"))),
    MetricInfo(f"{_NO_REFERENCE}.rms_contrast.wasserstein", "RMS-contrast distribution gap", "lower",
               "1-D Wasserstein distance between per-image RMS contrast (std of display intensities).",
               (("real", f"{_NO_REFERENCE}.rms_contrast.real.mean"),
                ("synthetic", f"{_NO_REFERENCE}.rms_contrast.synthetic.mean"))),
    MetricInfo(f"{_NO_REFERENCE}.cnr.wasserstein", "CNR distribution gap", "lower",
               "1-D Wasserstein distance between per-image CNR |μfg − μbg| / √(σfg² + σbg²) (foreground: x > −0.9).",
               (("real", f"{_NO_REFERENCE}.cnr.real.mean"), ("synthetic", f"{_NO_REFERENCE}.cnr.synthetic.mean"))),
    MetricInfo("intensity.wasserstein", "Intensity W1, all pixels", "lower",
               "1-D Wasserstein distance between real and synthetic pixel-intensity histograms, in physical units.",
               (("unit", "intensity.unit"),)),
    MetricInfo("intensity.wasserstein_foreground", "Intensity W1, foreground", "lower",
               "The same over foreground pixels only (model value > −0.9), in physical units.",
               (("real mean", "intensity.real_foreground.mean"),
                ("synthetic mean", "intensity.synthetic_foreground.mean"))),
    MetricInfo("diversity.synthetic_ms_ssim.mean", "Pairwise MS-SSIM, synthetic", "≈ real (higher = less diverse)",
               "Mean MS-SSIM over random pairs of distinct synthetic images.",
               (("real", "diversity.real_ms_ssim.mean"),)),
    MetricInfo("diversity.relative_diversity", "Relative diversity", "≈ 1 (< 0.5 flags collapse)",
               "(1 − pairwise MS-SSIM synthetic) / (1 − pairwise MS-SSIM real): the share of real dissimilarity kept.",
               (("collapse", "diversity.collapse"),)),
    MetricInfo("diversity.synthetic_ms_ssim.duplicate_fraction", "Duplicate pairs, synthetic", "≈ real (lower)",
               "Share of random synthetic pairs with MS-SSIM ≥ 0.95; more than 0.1 above the real share flags "
               "collapse onto a few modes.",
               (("real", "diversity.real_ms_ssim.duplicate_fraction"),)),
    MetricInfo("memorization.near_copy_fraction", "Near-copy fraction", "lower (read against baseline)",
               "Fraction of synthetic images whose nearest training image has SSIM ≥ 0.95.",
               (("baseline", "memorization.baseline_near_copy_fraction"),)),
    MetricInfo("memorization.nearest_ssim.median", "Nearest-training SSIM, median", "≈ baseline (higher = copying)",
               "Median over synthetic images of the SSIM to their nearest training image.",
               (("baseline", "memorization.baseline_nearest_ssim.median"),)),
    MetricInfo("memorization.nearest_feature_distance.median", "Nearest-training feature distance, median",
               "≈ baseline (lower = copying)",
               "Median over synthetic images of the feature distance to the nearest training image.",
               (("baseline", "memorization.baseline_nearest_feature_distance.median"),)),
    MetricInfo("frd.value", "FRD (radiomics)", "lower",
               "Fréchet Radiomics Distance: log of the Fréchet distance between Gaussian fits of 31 radiomic "
               "features (first order, GLCM, GLRLM, GLSZM, ROI area), z-scored with the real set's statistics; no "
               "network weights. Comparable between medgan runs only, not with published FRD values."),
    MetricInfo("spectrum.high_frequency_ratio", "Spectrum ratio, top band", "≈ 1 (> 1.15 grain, < 0.85 blur)",
               "Synthetic / real mean power in the highest radial frequency band (up to Nyquist, with the corners "
               "beyond it): excess fine-scale energy (grain, checkerboard) above 1, blur below."),
    MetricInfo("spectrum.max_deviation", "Spectrum ratio, largest band deviation", "lower (≤ 0.15 matches)",
               "Largest |synthetic / real power − 1| over the 8 radial frequency bands.",
               (("worst band", "spectrum.worst_band"),)),
)


# 3D: the rows of a volume evaluation (``medgan.metrics.volumes.volume_metrics``) and of a volumetric translation
# evaluation (``medgan.metrics.volume_translation``, stored under ``volume_translation``).
def _per_plane(leaf: str) -> tuple[tuple[str, str], ...]:
    """The "read against" pairs of a three-plane row: each plane's own value of ``leaf``."""
    return tuple((plane, f"volume_distribution.planes.{plane}.{leaf}") for plane in ("axial", "coronal", "sagittal"))


VOLUME_METRICS: tuple[MetricInfo, ...] = (
    MetricInfo("volume_distribution.fid", "Three-plane FID", "lower",
               "Mean over the axial, coronal and sagittal planes of the slice-wise FID between real and synthetic "
               "volumes (central half of each axis; MAISI's protocol); intervals resample whole volumes.",
               _per_plane("fid")),
    MetricInfo("volume_distribution.kid_mean", "Three-plane KID", "lower",
               "Mean over the three planes of the slice-wise KID; about 0 when distributions match.",
               _per_plane("kid_mean")),
    MetricInfo("volume_diversity.synthetic.mean", "Pairwise 3D MS-SSIM, synthetic", "≈ real (higher = less diverse)",
               "Mean 3D MS-SSIM over pairs of distinct synthetic volumes (3D SSIM where volumes hold one scale).",
               (("real", "volume_diversity.real.mean"), ("measure", "volume_diversity.measure"))),
    MetricInfo("volume_diversity.relative_diversity", "Relative 3D diversity", "≈ 1 (< 0.5 flags collapse)",
               "(1 − pairwise 3D MS-SSIM synthetic) / (1 − pairwise 3D MS-SSIM real).",
               (("collapse", "volume_diversity.collapse"),)),
    MetricInfo("volume_memorization.near_copy_fraction", "Near-copy fraction, volumes", "lower (read against baseline)",
               "Fraction of synthetic volumes whose nearest training volume has 3D SSIM ≥ 0.95.",
               (("baseline", "volume_memorization.baseline_near_copy_fraction"),)),
    MetricInfo("volume_memorization.nearest_ssim.median", "Nearest-training 3D SSIM, median",
               "≈ baseline (higher = copying)",
               "Median over synthetic volumes of the 3D SSIM to their nearest training volume.",
               (("baseline", "volume_memorization.baseline_nearest_ssim.median"),)),
)

_TRANSLATION = "volume_translation"

VOLUME_TRANSLATION_METRICS: tuple[MetricInfo, ...] = (
    MetricInfo(f"{_TRANSLATION}.mae", "3D MAE", "lower",
               "Mean absolute error between output and truth volumes in physical units (inside the mask), mean over "
               "volumes.", (("unit", f"{_TRANSLATION}.unit"),)),
    MetricInfo(f"{_TRANSLATION}.psnr", "3D PSNR (dB)", "higher",
               "10·log10(range² / MSE) over each volume's mask voxels, range the intensity window."),
    MetricInfo(f"{_TRANSLATION}.ssim", "3D SSIM", "higher",
               "Mean of the 3D SSIM map (11-voxel Gaussian window, σ 1.5) over the mask voxels."),
    MetricInfo(f"{_TRANSLATION}.through_plane_mae", "Through-plane error", "lower (≈ 0 for no flicker)",
               "Mean |(O[z+1] − O[z]) − (T[z+1] − T[z])| over adjacent slices in physical units: how much the error "
               "changes from slice to slice (slice-wise flicker).",
               (("÷ MAE", f"{_TRANSLATION}.through_plane_ratio"),)),
)


def interval_key(key: str) -> str:
    """The dotted key of the interval of the number at ``key``: ``distribution.fid`` -> ``distribution.fid_interval``."""
    return key + "_interval"


def interval(metrics: dict, key: str) -> dict | None:
    """The interval entry of the number at ``key``, or None when it has none."""
    found = lookup(metrics, interval_key(key))
    if not isinstance(found, dict):
        return None
    bounds = found.get("low"), found.get("high")
    return found if all(isinstance(bound, (int, float)) and math.isfinite(bound) for bound in bounds) else None


_SHARES = ("distribution.precision", "distribution.recall", "distribution.coverage")
_NON_NEGATIVE = ("distribution.fid", "distribution.density", "diversity.relative_diversity", "volume_distribution.fid",
                 "volume_diversity.relative_diversity", "volume_translation.mae", "volume_translation.through_plane_mae",
                 "volume_translation.through_plane_ratio")


def bounds_of(key: str) -> tuple[float | None, float | None]:
    """The values the number at ``key`` can take (None: unbounded): shares and fractions lie in [0, 1]; distances,
    Wasserstein gaps, densities and power ratios are >= 0."""
    leaf = key.rsplit(".", 1)[-1]
    if key in _SHARES or "fraction" in leaf:
        return 0.0, 1.0
    if key in _NON_NEGATIVE or "wasserstein" in key or "distance" in key or key.startswith("spectrum."):
        return 0.0, None
    return None, None


def set_interval(metrics: dict, key: str, entry: dict) -> None:
    """Stores ``entry`` as the interval of the number at ``key`` (its parent must exist), cut to the values the
    number can take: an interval placed around the value (centred) can otherwise reach past them, e.g. a precision
    of 0.1 with a spread of 0.12 would read [-0.02, 0.22]."""
    *parents, leaf = interval_key(key).split(".")
    node = metrics
    for part in parents:
        node = node[part]
    node[leaf] = clipped(entry, *bounds_of(key))


def clipped(entry: dict, low: float | None, high: float | None) -> dict:
    """A copy of the interval ``entry`` cut to [``low``, ``high``] (None: unbounded on that side)."""
    entry = dict(entry)
    if low is not None and entry.get("low") is not None:
        entry["low"] = max(low, entry["low"])
    if high is not None and entry.get("high") is not None:
        entry["high"] = min(high, entry["high"])
    return entry


def lookup(metrics: dict, key: str) -> Any:
    """The value at a dotted ``key`` of a nested dict, or None."""
    node: Any = metrics
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def headline(metrics: dict, rows: tuple[MetricInfo, ...] = METRICS) -> dict[str, float | None]:
    """Flat ``{dotted key: value}`` of the metrics table ``rows`` (``METRICS``, or a 3D table; they hold the labels
    and definitions)."""
    return {info.key: lookup(metrics, info.key) for info in rows}
