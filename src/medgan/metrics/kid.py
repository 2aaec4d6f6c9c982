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


def subset_size_for(n_real: int, n_fake: int, largest: int = 1000) -> int:
    """KID's subset size for two sets: ``min(largest, min(n_real, n_fake) // 2)``, at least 2.

    Bińkowski et al. and torch-fidelity draw subsets of 1000, which needs well over 1000 images per set: with
    fewer, a subset capped at the set size is the whole set every time and the spread over subsets is 0. Half
    the smaller set keeps the subsets different (each is an unbiased estimate, so their mean is too) down to a
    few dozen images; from 2000 images per set on, this is the standard 1000.
    """
    return max(2, min(largest, min(n_real, n_fake) // 2))


class KernelBlocks:
    """Sums of the polynomial kernel between blocks of images, for exact unbiased MMD^2 of any union of blocks.

    Every real image belongs to one real block and every synthetic image to one synthetic block (a block is an
    image, a subject, or a random group of either). The kernel is evaluated once over all pairs (in chunks);
    afterwards the unbiased MMD^2 of the images of any chosen real and synthetic blocks costs O(blocks^2), which
    makes hundreds of half-sample resamples of KID (``medgan.metrics.intervals``) as cheap as one estimate.

    Args:
        real: [N_r, D] features.
        fake: [N_f, D] features.
        real_blocks: [N_r] block index per real image (0 .. B_r - 1).
        fake_blocks: [N_f] block index per synthetic image.
        degree: polynomial kernel degree.
    """

    def __init__(self, real: torch.Tensor, fake: torch.Tensor, real_blocks: np.ndarray, fake_blocks: np.ndarray,
                 degree: int = 3, chunk: int = 2048) -> None:
        self.dim, self.degree, self.chunk = real.shape[1], degree, chunk
        real_index, fake_index = _index(real_blocks), _index(fake_blocks)
        self.real_sums, self.real_pairs = self._sums(real, real, real_index, real_index, exclude_self=True)
        self.fake_sums, self.fake_pairs = self._sums(fake, fake, fake_index, fake_index, exclude_self=True)
        self.cross_sums, self.cross_pairs = self._sums(real, fake, real_index, fake_index, exclude_self=False)

    def _sums(self, a: torch.Tensor, b: torch.Tensor, index_a: torch.Tensor, index_b: torch.Tensor,
              exclude_self: bool) -> tuple[np.ndarray, np.ndarray]:
        """[B_a, B_b] kernel sums between blocks (self pairs left out within one set) and the pair counts."""
        count_a, count_b = int(index_a.max()) + 1, int(index_b.max()) + 1
        sums = torch.zeros(count_a, count_b, dtype=torch.float64)
        a, b = a.float(), b.float()
        for start in range(0, a.shape[0], self.chunk):
            block = ((a[start:start + self.chunk] @ b.T).double() / self.dim + 1.0) ** self.degree
            if exclude_self:
                rows = torch.arange(block.shape[0])
                block[rows, rows + start] = 0.0
            by_column = torch.zeros(block.shape[0], count_b, dtype=torch.float64).index_add_(1, index_b, block)
            sums.index_add_(0, index_a[start:start + self.chunk], by_column)
        sizes_a = torch.bincount(index_a, minlength=count_a).double()
        sizes_b = torch.bincount(index_b, minlength=count_b).double()
        pairs = torch.outer(sizes_a, sizes_b)
        if exclude_self:
            pairs -= torch.diag(sizes_a)
        return sums.numpy(), pairs.numpy()

    def mmd(self, real_weights: np.ndarray, fake_weights: np.ndarray) -> float:
        """Unbiased MMD^2 of the images of the blocks with weight 1 (0 leaves a block out).

        Weights above 1 count a block several times but never pair an image with itself.
        """
        def mean(sums: np.ndarray, pairs: np.ndarray, left: np.ndarray, right: np.ndarray) -> float:
            count = left @ pairs @ right
            if count <= 0:
                raise DataError("KID needs at least 2 images per set")
            return float(left @ sums @ right / count)

        return (mean(self.real_sums, self.real_pairs, real_weights, real_weights)
                + mean(self.fake_sums, self.fake_pairs, fake_weights, fake_weights)
                - 2.0 * mean(self.cross_sums, self.cross_pairs, real_weights, fake_weights))


def _index(blocks: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(blocks), dtype=torch.int64)
