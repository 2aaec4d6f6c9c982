"""An on-disk cache of reference-set features, keyed by image content and extractor fingerprint.

Evaluating many runs against one data set then extracts its features once. Entries are written atomically;
a corrupt, stale or unwritable cache only costs speed.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from medgan.metrics.features import FeatureExtractor, check_images, extract_features
from medgan.utils import atomic_path

CACHE_ENV = "MEDGAN_CACHE_DIR"  # overrides the feature cache folder (default ~/.cache/medgan/features)


def content_hash(images: torch.Tensor) -> str:
    """SHA-256 of a tensor's shape and float32 values: the identity of an image set."""
    array = np.ascontiguousarray(images.detach().cpu().float().numpy())
    digest = hashlib.sha256(str(array.shape).encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def cache_dir() -> Path:
    """The feature cache folder: ``$MEDGAN_CACHE_DIR`` or ``~/.cache/medgan/features``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "medgan" / "features")


def cached_features(images: torch.Tensor, extractor: FeatureExtractor, folder: Path | None = None,
                    progress: bool = False, what: str = "reference images") -> torch.Tensor:
    """``extract_features`` with an on-disk cache keyed by image content and extractor fingerprint.

    The cache file (``.npz``) holds the features and their mean and covariance (float64, the FID statistics).
    It is written atomically; a corrupt or stale file is ignored and rewritten.

    Args:
        images: [N, 1, H, W] in [-1, 1].
        extractor: the feature space.
        folder: cache folder (default ``cache_dir()``).
        progress: progress bar while extracting.
        what: name of the set for messages.

    Returns:
        [N, D] float32 features.
    """
    check_images(images, what)
    key = hashlib.sha256(f"{content_hash(images)}|{extractor.fingerprint()}".encode()).hexdigest()[:32]
    path = (folder or cache_dir()) / f"{extractor.name}-{key}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                features = torch.from_numpy(stored["features"])
            if features.shape[0] == images.shape[0]:
                return features
        except (OSError, ValueError, KeyError):
            pass  # unreadable cache entry: recompute and overwrite it
    features = extract_features(images, extractor, progress=progress, what=what)
    array = features.numpy()
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, features=array, mean=array.astype(np.float64).mean(0),
                         covariance=_covariance(array))
    except OSError:
        pass  # a read-only or full cache folder only costs speed
    return features


def _covariance(array: np.ndarray) -> np.ndarray:
    """Sample covariance (ddof 1) of [N, D] rows; zeros for a single row."""
    if array.shape[0] < 2:
        return np.zeros((array.shape[1], array.shape[1]))
    return np.cov(array.astype(np.float64), rowvar=False)
