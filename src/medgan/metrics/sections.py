"""The sections of ``compute_metrics`` built on images rather than network features: the power spectrum
(``medgan.metrics.spectrum``), GLCM texture and the Fréchet Radiomics Distance (``medgan.metrics.radiomics``),
each with 95% intervals in the scheme of ``medgan.metrics.catalog``.

* ``spectrum``: ``spectrum_ratio`` with the real subjects as resampling groups (its own percentile bootstrap: a
  ratio of means, which repeated images do not bias).
* ``texture``: per-image GLCM statistics (distance 1, 32 levels) of each set; their means, each with a bootstrap
  interval over images (real images by subject), centred on the value.
* ``frd``: FRD of the radiomic feature vectors, computed once per set; the bootstrap resamples rows with
  replacement (a Fréchet distance of means and covariances, like FID) and is centred on the value.

A section that cannot be computed (images too small for 8 frequency bands, an ROI without pixel pairs, fewer images
than radiomic features) is None, with a note saying why; the rest of the evaluation stands.

Radiomic features cost a few milliseconds per image, so texture and FRD use at most ``RADIOMIC_IMAGES`` images per
set (a seeded random subset, with their subjects; the sections say how many): FRD's 31-D Gaussian fits and the
texture means are well estimated from 1,000 images, and 10,000-image evaluations stay within their time budget.
"""

from __future__ import annotations

import hashlib
import inspect
from typing import Any

import numpy as np
import torch

from medgan.errors import DataError
from medgan.metrics import radiomics, texture
from medgan.metrics.bootstrap import bootstrap
from medgan.metrics.feature_cache import cache_dir, content_hash
from medgan.metrics.intervals import Resampling, entry, one_thread
from medgan.metrics.radiomics import frd, radiomic_features
from medgan.metrics.spectrum import spectrum_ratio
from medgan.metrics.texture import glcm_statistics
from medgan.utils import atomic_path

RADIOMIC_IMAGES = 1000  # texture and FRD use at most this many images per set (a seeded random subset)


def spectrum_section(real: torch.Tensor, fake: torch.Tensor, how: Resampling, notes: list[str]) -> dict | None:
    """``spectrum_ratio`` of the two sets (None, with a note, for images too small for its bands)."""
    try:
        with one_thread():
            return spectrum_ratio(real, fake, resamples=how.resamples, seed=how.seed, real_groups=how.real_groups)
    except DataError as error:
        notes.append(f"power spectrum not computed: {error.message}")
        return None


def texture_section(real: torch.Tensor, fake: torch.Tensor, how: Resampling) -> dict[str, Any]:
    """Mean GLCM statistics of each set with intervals, and their synthetic / real ratio."""
    real_values, fake_values = glcm_statistics(real), glcm_statistics(fake)
    names = list(real_values)
    real_table = np.stack([real_values[name].numpy() for name in names], axis=1)  # [N_r, S]
    fake_table = np.stack([fake_values[name].numpy() for name in names], axis=1)

    def means(real_index: np.ndarray, fake_index: np.ndarray) -> np.ndarray:
        return np.concatenate([real_table[real_index].mean(0), fake_table[fake_index].mean(0)])

    with one_thread():
        result = bootstrap(means, len(real_table), len(fake_table), resamples=how.resamples, seed=how.seed,
                           real_groups=how.real_groups, centred=True)
    statistics = {}
    for index, name in enumerate(names):
        real_mean, fake_mean = result["value"][index], result["value"][len(names) + index]
        statistics[name] = {
            "real": real_mean, "real_interval": entry(result, index),
            "synthetic": fake_mean, "synthetic_interval": entry(result, len(names) + index),
            "ratio": fake_mean / real_mean if real_mean else None,
        }
    return {"statistics": statistics, "glcm": "symmetric, distance 1, 4 directions averaged, 32 grey levels over "
                                              "[-1, 1], inside the foreground ROI (medgan.metrics.texture)"}


def cached_radiomics(images: torch.Tensor) -> np.ndarray:
    """``radiomic_features`` of a reference set, float64, through the feature cache (``medgan.metrics.feature_cache``).

    Real sets are scored again for every run evaluated against them, and radiomic features cost a few ms per image.
    The key is the images' content and the source of the modules that compute the features, so any change to
    them recomputes; an unreadable or unwritable cache only costs the time.
    """
    code = hashlib.sha256((inspect.getsource(radiomics) + inspect.getsource(texture)).encode()).hexdigest()
    key = hashlib.sha256(f"{content_hash(images)}|{code}".encode()).hexdigest()[:32]
    path = cache_dir() / f"radiomics-{key}.npy"
    try:
        stored = np.load(path, allow_pickle=False)
        if stored.ndim == 2 and stored.shape[0] == images.shape[0]:
            return stored
    except (OSError, ValueError):
        pass
    features = radiomic_features(images).double().numpy()
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, features)
    except OSError:
        pass
    return features


def frd_section(real: torch.Tensor, fake: torch.Tensor, how: Resampling) -> dict[str, Any]:
    """FRD with its interval; radiomic features are computed once per set and their rows resampled."""
    real_features = cached_radiomics(real)
    fake_features = radiomic_features(fake).double().numpy()
    with one_thread():
        result = bootstrap(lambda r, f: frd(real_features[r], fake_features[f]), len(real_features),
                           len(fake_features), resamples=how.resamples, seed=how.seed, real_groups=how.real_groups,
                           centred=True)
    return {"value": result["value"], "value_interval": entry(result), "features": int(real_features.shape[1]),
            "definition": "log of the squared Fréchet distance of radiomic features z-scored with the real set's "
                          "statistics (frd-score v1); comparable between medgan runs only"}


def _subset(count: int, seed: int) -> np.ndarray | None:
    """Sorted indices of at most ``RADIOMIC_IMAGES`` of ``count`` images (None: all of them)."""
    if count <= RADIOMIC_IMAGES:
        return None
    return np.sort(np.random.default_rng(seed).choice(count, RADIOMIC_IMAGES, replace=False))


def radiomic_sections(real: torch.Tensor, fake: torch.Tensor, how: Resampling, notes: list[str]) -> dict[str, Any]:
    """``{"texture": ..., "frd": ...}`` on at most ``RADIOMIC_IMAGES`` images per set; a section that cannot be
    computed is None, with a note."""
    real_pick, fake_pick = _subset(len(real), how.seed), _subset(len(fake), how.seed + 1)
    if real_pick is not None:
        real = real[torch.from_numpy(real_pick)]
        groups = None if how.real_groups is None else how.real_groups[real_pick]
        how = Resampling(how.resamples, how.seed, groups, how.note)
    if fake_pick is not None:
        fake = fake[torch.from_numpy(fake_pick)]
    sections: dict[str, Any] = {}
    for name, build in (("texture", texture_section), ("frd", frd_section)):
        try:
            sections[name] = build(real, fake, how)
            sections[name]["images"] = {"real": len(real), "synthetic": len(fake)}
        except DataError as error:
            notes.append(f"{'GLCM texture' if name == 'texture' else 'FRD'} not computed: {error.message}")
            sections[name] = None
    return sections
