"""Subject-level splits: no patient has images on both sides of a train/test split."""

from __future__ import annotations

import numpy as np

from medgan.errors import ConfigError, DataError


def split_by_subject(subjects: list[str], test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Splits image indices so that no subject has images on both sides.

    Args:
        subjects: subject key per image.
        test_fraction: fraction of *subjects* (not images) for the test side, in [0, 1); at least one subject
            goes to each side when the fraction is positive.
        seed: seed of the subject shuffle (the split depends only on the set of subjects and the seed).

    Returns:
        ``(train_indices, test_indices)``, sorted int64 arrays.

    Raises:
        DataError: a positive ``test_fraction`` with fewer than two subjects (e.g. the single MNI template).
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ConfigError(f"test fraction must be in [0, 1), got {test_fraction!r}")
    unique = sorted(set(subjects))
    count = 0
    if test_fraction > 0:
        if len(unique) < 2:
            raise DataError(f"cannot split by subject: all {len(subjects)} images come from {len(unique)} subject(s)")
        count = min(max(1, round(test_fraction * len(unique))), len(unique) - 1)
    order = np.random.default_rng(seed).permutation(len(unique))
    test_subjects = {unique[i] for i in order[:count]}
    is_test = np.array([subject in test_subjects for subject in subjects], dtype=bool)
    return np.flatnonzero(~is_test).astype(np.int64), np.flatnonzero(is_test).astype(np.int64)
