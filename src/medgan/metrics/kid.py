"""Kernel Inception Distance: unbiased MMD^2 with a cubic polynomial kernel, averaged over subsets.

k(x, y) = (x . y / D + 1)^3 (Bińkowski et al. 2018). For subsets X, Y of m features each,

MMD^2_u = sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (m (m - 1))
          - 2 sum_{i, j} k(x_i, y_j) / m^2

KID is the mean of MMD^2_u over random subsets (drawn without replacement within a subset), reported with
the standard deviation across subsets. It is unbiased, so it can be slightly negative when the sets match.
"""

from __future__ import annotations

import numpy as np
import torch

from medgan.errors import DataError
from medgan.metrics.fid import as_features, check_pair


def polynomial_mmd(x: torch.Tensor, y: torch.Tensor, degree: int = 3, coef0: float = 1.0) -> float:
    """Unbiased MMD^2 between two [m, D] tensors with the polynomial kernel (x . y / D + coef0)^degree.

    Dot products run in float32 (small float64 matrix products are 100x slower on a busy multi-core CPU);
    the kernel values and sums are float64, which keeps the result within ~1e-4 of an all-float64 computation.
    """
    dim = x.shape[1]
    x, y = x.float(), y.float()

    def kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return ((a @ b.T).double() / dim + coef0) ** degree

    k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
    m, n = x.shape[0], y.shape[0]
    within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * k_xy.mean())


def kid(real_features: torch.Tensor | np.ndarray, fake_features: torch.Tensor | np.ndarray, subsets: int = 100,
        subset_size: int = 1000, degree: int = 3, seed: int = 0) -> tuple[float, float]:
    """KID between two feature sets.

    Args:
        real_features: [N_r, D].
        fake_features: [N_f, D].
        subsets: number of random subset pairs.
        subset_size: images per subset (capped at the smaller set size).
        degree: polynomial kernel degree.
        seed: subset sampling seed.

    Returns:
        (mean, standard deviation) of MMD^2_u over the subsets; lower is better, 0 for matching distributions.

    Raises:
        DataError: fewer than 2 images in a set, different D, NaN/Inf.
    """
    real_array, fake_array = as_features(real_features, "real"), as_features(fake_features, "synthetic")
    check_pair(real_array, fake_array)
    real, fake = torch.from_numpy(real_array).float(), torch.from_numpy(fake_array).float()
    size = min(subset_size, real.shape[0], fake.shape[0])
    if size < 2:
        raise DataError(f"KID needs at least 2 images per set, got {real.shape[0]} real and {fake.shape[0]} synthetic")
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(subsets):
        real_subset = real[torch.randperm(real.shape[0], generator=generator)[:size]]
        fake_subset = fake[torch.randperm(fake.shape[0], generator=generator)[:size]]
        values.append(polynomial_mmd(real_subset, fake_subset, degree))
    return float(np.mean(values)), float(np.std(values))
