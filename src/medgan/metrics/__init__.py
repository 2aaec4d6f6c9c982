"""medgan.metrics: pure functions, features -> statistics -> scores (no sampling, no report, no files but the
feature cache). The ``medgan evaluate`` application that uses them lives in ``medgan.evaluation``.

Public API:

* ``training_score(real, fake)``: fast FID/KID/precision/recall/density/coverage for use during training.
* ``compute_metrics(real, fake, mapping, extractor, train=None)``: every metric on tensors, no files.
* ``METRICS``: the catalogue of headline metrics (label, direction, definition) that the report renders.
* features: ``EXTRACTORS``, ``get_extractor``, ``extract_features``, ``cached_features``, ``OfflineFeatures``.
* scores: ``fid``, ``frechet_distance``, ``feature_statistics``, ``kid``, ``prdc``, ``ssim``, ``ms_ssim``,
  ``psnr``, ``snr``, ``rms_contrast``, ``cnr``, ``diversity``, ``intensity_fidelity``, ``memorization_audit``.
* intervals and small N: ``bootstrap``, ``paired_bootstrap`` (``medgan.metrics.intervals`` says which resampling
  each headline metric gets), ``fid_infinity``, ``small_n_warning``.
* volumes (3D): ``volume_metrics`` (all of the below, rows in ``VOLUME_METRICS``), ``three_plane_fid`` (slice-wise
  FID/KID in three planes), ``volume_diversity``, ``volume_memorization``, ``volume_ssim``, ``volume_ms_ssim``;
  translation: ``volume_errors``, ``volume_translation_metrics`` (3D MAE/PSNR/SSIM and through-plane consistency,
  rows in ``VOLUME_TRANSLATION_METRICS``).
"""

from __future__ import annotations

from medgan.metrics.bootstrap import bootstrap, paired_bootstrap
from medgan.metrics.catalog import METRICS, VOLUME_METRICS, VOLUME_TRANSLATION_METRICS
from medgan.metrics.diversity import diversity, pairwise_ms_ssim
from medgan.metrics.feature_cache import cached_features
from medgan.metrics.features import (DEFAULT_FEATURES, EXTRACTORS, FeatureExtractor, OfflineFeatures,
                                     extract_features, get_extractor)
from medgan.metrics.fid import feature_statistics, fid, frechet_distance
from medgan.metrics.fid_infinity import fid_infinity, small_n_warning
from medgan.metrics.image import cnr, ms_ssim, paired_quality, psnr, rms_contrast, snr, ssim, random_pair_similarity
from medgan.metrics.intensity import intensity_fidelity
from medgan.metrics.kid import kid
from medgan.metrics.memorization import NEAR_COPY_SSIM, memorization_audit
from medgan.metrics.prdc import prdc
from medgan.metrics.suite import compute_metrics, training_score
from medgan.metrics.volume_memorization import volume_memorization
from medgan.metrics.volume_similarity import volume_diversity, volume_ms_ssim, volume_ssim
from medgan.metrics.volume_translation import volume_errors, volume_translation_metrics
from medgan.metrics.volumes import three_plane_fid, volume_metrics

__all__ = [
    "DEFAULT_FEATURES",
    "EXTRACTORS",
    "METRICS",
    "NEAR_COPY_SSIM",
    "VOLUME_METRICS",
    "VOLUME_TRANSLATION_METRICS",
    "FeatureExtractor",
    "OfflineFeatures",
    "bootstrap",
    "cached_features",
    "cnr",
    "compute_metrics",
    "diversity",
    "extract_features",
    "feature_statistics",
    "fid",
    "fid_infinity",
    "frechet_distance",
    "get_extractor",
    "intensity_fidelity",
    "kid",
    "memorization_audit",
    "ms_ssim",
    "paired_bootstrap",
    "paired_quality",
    "pairwise_ms_ssim",
    "prdc",
    "psnr",
    "random_pair_similarity",
    "rms_contrast",
    "small_n_warning",
    "snr",
    "ssim",
    "three_plane_fid",
    "training_score",
    "volume_diversity",
    "volume_errors",
    "volume_memorization",
    "volume_metrics",
    "volume_ms_ssim",
    "volume_ssim",
    "volume_translation_metrics",
]
