"""k-NN manifold estimates: precision and recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020).

Each real feature x_i gets a radius r_i, the distance to its k-th nearest other real feature; the union of
those balls estimates the real manifold. Likewise r'_j for synthetic features y_j.

* precision = fraction of synthetic y_j inside some real ball (d(y_j, x_i) <= r_i): fidelity.
* recall = fraction of real x_i inside some synthetic ball (d(x_i, y_j) <= r'_j): diversity.
* density = (1 / (k M)) sum_j #{i : d(y_j, x_i) <= r_i}: fidelity, robust to real outliers (about 1 when matched).
* coverage = fraction of real x_i whose nearest synthetic feature lies within r_i: diversity, robust to
  synthetic outliers.

Distances are computed in chunks, so 10,000 x 10,000 sets never hold a full distance matrix.
"""

from __future__ import annotations

import numpy as np
import torch

from medgan.errors import DataError
from medgan.metrics.fid import as_features, check_pair

CHUNK = 2048  # rows of a distance block


def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.cdist(a, b, compute_mode="use_mm_for_euclid_dist").clamp_min_(0.0)


def knn_radii(features: torch.Tensor, k: int) -> torch.Tensor:
    """Distance of each row to its k-th nearest *other* row (self excluded), chunked."""
    radii = []
    for start in range(0, features.shape[0], CHUNK):
        block = _distances(features[start : start + CHUNK], features)
        radii.append(block.topk(k + 1, dim=1, largest=False).values[:, k])  # column 0 is the point itself
    return torch.cat(radii)


def prdc(real_features: torch.Tensor | np.ndarray, fake_features: torch.Tensor | np.ndarray,
         k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage of synthetic features against real ones.

    Args:
        real_features: [N_r, D].
        fake_features: [N_f, D].
        k: neighbourhood size of the radii (5 as in both papers).

    Returns:
        ``{"precision", "recall", "density", "coverage"}``; all higher is better (density about 1 when matched).

    Raises:
        DataError: a set with k or fewer images, different D, NaN/Inf.
    """
    real_array = as_features(real_features, "real")
    fake_array = as_features(fake_features, "synthetic")
    check_pair(real_array, fake_array)
    if min(real_array.shape[0], fake_array.shape[0]) <= k:
        raise DataError(f"precision/recall with k={k} needs more than {k} images per set, got "
                        f"{real_array.shape[0]} real and {fake_array.shape[0]} synthetic")
    # Centring first keeps float32 distances accurate (errors scale with the squared norm), and float32
    # matrix products are several times faster than float64 ones on CPU.
    centre = real_array.mean(0)
    real = torch.from_numpy(real_array - centre).float()
    fake = torch.from_numpy(fake_array - centre).float()
    real_radii, fake_radii = knn_radii(real, k), knn_radii(fake, k)
    inside_count = torch.zeros(fake.shape[0], dtype=torch.int64)  # real balls containing each y_j
    recalled = torch.zeros(real.shape[0], dtype=torch.bool)
    covered = torch.zeros(real.shape[0], dtype=torch.bool)
    for start in range(0, real.shape[0], CHUNK):
        block = _distances(real[start : start + CHUNK], fake)  # [chunk, N_f]
        radius = real_radii[start : start + CHUNK, None]
        inside_count += (block <= radius).sum(0)
        recalled[start : start + CHUNK] = (block <= fake_radii[None, :]).any(1)
        covered[start : start + CHUNK] = block.min(1).values <= radius[:, 0]
    return {
        "precision": float((inside_count > 0).double().mean()),
        "recall": float(recalled.double().mean()),
        "density": float(inside_count.sum() / (k * fake.shape[0])),
        "coverage": float(covered.double().mean()),
    }


def prdc_of_distances(real_real: np.ndarray, fake_fake: np.ndarray, real_fake: np.ndarray,
                      k: int = 5) -> dict[str, float]:
    """``prdc`` from precomputed distance matrices ([N_r, N_r], [N_f, N_f], [N_r, N_f]; diagonals 0).

    For resampling (``medgan.metrics.intervals``): the distances of the full sets are computed once and each
    resample indexes them, which is far cheaper than ``prdc`` per resample for a few thousand images. Rows must
    not repeat an image (the radius would be 0): resample without replacement.
    """
    if min(real_real.shape[0], fake_fake.shape[0]) <= k:
        raise DataError(f"precision/recall with k={k} needs more than {k} images per set")
    real_radii = np.partition(real_real, k, axis=1)[:, k]  # column k of the sorted row: self is at 0
    fake_radii = np.partition(fake_fake, k, axis=1)[:, k]
    inside = real_fake <= real_radii[:, None]  # [N_r, N_f]: synthetic j inside real ball i
    return {
        "precision": float(inside.any(0).mean()),
        "recall": float((real_fake <= fake_radii[None, :]).any(1).mean()),
        "density": float(inside.sum() / (k * real_fake.shape[1])),
        "coverage": float((real_fake.min(1) <= real_radii).mean()),
    }
