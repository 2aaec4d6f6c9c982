"""Fréchet distance between Gaussian fits of two feature sets (FID when the features are Inception's).

FID = ||mu_r - mu_f||^2 + tr(S_r) + tr(S_f) - 2 tr((S_r S_f)^(1/2))   (Heusel et al. 2017)

The trace of the matrix square root is computed as the sum of square roots of the eigenvalues of the
symmetric PSD matrix S_r^(1/2) S_f S_r^(1/2), which has the same spectrum as S_r S_f. Symmetric eigensolvers
are stable where ``scipy.linalg.sqrtm`` of the non-symmetric product can return complex noise on nearly
singular covariances; the tests check both agree.
"""

from __future__ import annotations

import numpy as np
import torch

from medgan.errors import DataError


def as_features(features: torch.Tensor | np.ndarray, what: str) -> np.ndarray:
    """A float64 [N, D] array; raises DataError for an empty, non-2D or non-finite input."""
    array = features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
    if array.ndim != 2:
        raise DataError(f"{what} features must be [N, D], got shape {array.shape}")
    if array.shape[0] == 0:
        raise DataError(f"{what}: empty set (0 images)")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise DataError(f"{what} features contain NaN or Inf values")
    return array


def check_pair(real: np.ndarray, fake: np.ndarray) -> None:
    """Raises DataError when two feature sets have different dimensions."""
    if real.shape[1] != fake.shape[1]:
        raise DataError(f"feature dimensions differ: real {real.shape[1]}, synthetic {fake.shape[1]}")


def feature_statistics(features: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and sample covariance [D, D] (ddof 1), float64."""
    array = as_features(features, "input")
    if array.shape[0] < 2:
        raise DataError(f"statistics need at least 2 images, got {array.shape[0]}")
    return array.mean(0), np.cov(array, rowvar=False)


def psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix (negative eigenvalues clipped)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray) -> float:
    """Fréchet distance between N(mean_a, cov_a) and N(mean_b, cov_b).

    Args:
        mean_a, mean_b: [D] means.
        cov_a, cov_b: [D, D] symmetric positive semi-definite covariances.

    Returns:
        The squared Fréchet (2-Wasserstein) distance, >= 0.
    """
    mean_a, mean_b = np.asarray(mean_a, np.float64), np.asarray(mean_b, np.float64)
    cov_a, cov_b = np.asarray(cov_a, np.float64), np.asarray(cov_b, np.float64)
    if mean_a.shape != mean_b.shape or cov_a.shape != cov_b.shape or cov_a.shape != mean_a.shape * 2:
        raise DataError(f"statistics shapes differ: {mean_a.shape}/{cov_a.shape} vs {mean_b.shape}/{cov_b.shape}")
    root_a = psd_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2.0), 0.0, None)).sum()
    distance = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_root
    return float(max(distance, 0.0))  # rounding can leave -1e-12 for identical sets


def fid(real_features: torch.Tensor | np.ndarray, fake_features: torch.Tensor | np.ndarray) -> float:
    """FID between two feature sets.

    Args:
        real_features: [N_r, D].
        fake_features: [N_f, D].

    Returns:
        The Fréchet distance of their Gaussian fits (lower is better; 0 for identical statistics).

    Raises:
        DataError: empty sets, different D, NaN/Inf, or fewer images than feature dimensions (the covariance
            would be singular and the value meaningless).
    """
    real = as_features(real_features, "real")
    fake = as_features(fake_features, "synthetic")
    check_pair(real, fake)
    dim = real.shape[1]
    for name, array in (("real", real), ("synthetic", fake)):
        if array.shape[0] <= dim:
            raise DataError(
                f"FID needs more images than feature dimensions: the {name} set has {array.shape[0]} images for "
                f"{dim} features; use more images or a smaller feature space (--features offline has 64)"
            )
    return frechet_distance(*feature_statistics(real), *feature_statistics(fake))


def fid_of_rows(real: np.ndarray, fake: np.ndarray) -> float:
    """FID of two float64 ``[n, D]`` arrays without ``fid``'s checks, by the cheaper of two exact routes.

    For bootstrap resamples (``medgan.metrics.intervals``): rows may repeat. With centred rows X_r, X_f and
    S = X^T X / (n - 1), the eigenvalues of S_r S_f other than 0 are those of M M^T / ((n_r - 1)(n_f - 1)) with
    M = X_r X_f^T ([n_r, n_f]), so tr((S_r S_f)^(1/2)) is the sum of M's singular values over
    sqrt((n_r - 1)(n_f - 1)). That Gram route costs about n_r n_f (D + 4 min(n_r, n_f)) and is taken when it is
    cheaper than the D x D route (two D x D covariances, a Cholesky factor and one symmetric eigensolver, about
    (n_r + n_f) D^2 + 10 D^3): near n = D, as at 2048-D Inception features with a few thousand images. The tests
    check that both routes agree with ``fid``.
    """
    (n_real, dim), n_fake = real.shape, fake.shape[0]
    mean_real, mean_fake = real.mean(0), fake.mean(0)
    centred_real, centred_fake = real - mean_real, fake - mean_fake
    scale_real, scale_fake = n_real - 1.0, n_fake - 1.0
    gram_cost = n_real * n_fake * (dim + 4 * min(n_real, n_fake))
    if gram_cost < (n_real + n_fake) * dim**2 + 10 * dim**3:
        trace_root = np.linalg.svd(centred_real @ centred_fake.T, compute_uv=False).sum() / np.sqrt(scale_real
                                                                                                   * scale_fake)
    else:
        cov_real = centred_real.T @ centred_real / scale_real
        cov_fake = centred_fake.T @ centred_fake / scale_fake
        trace_root = _trace_sqrt_product(cov_real, cov_fake)
    distance = (np.sum((mean_real - mean_fake) ** 2) + np.sum(centred_real**2) / scale_real
                + np.sum(centred_fake**2) / scale_fake - 2.0 * trace_root)
    return float(max(distance, 0.0))


def _trace_sqrt_product(cov_a: np.ndarray, cov_b: np.ndarray) -> float:
    """tr((A B)^(1/2)) for PSD A, B: with A = L L^T (Cholesky), A B has the eigenvalues of L^T B L, one symmetric
    eigensolver without eigenvectors (about 3x cheaper than ``frechet_distance``'s route); a singular A (repeated
    rows) falls back to that route."""
    try:
        lower = np.linalg.cholesky(cov_a)
    except np.linalg.LinAlgError:
        root = psd_sqrt(cov_a)
        middle = root @ cov_b @ root
    else:
        middle = lower.T @ cov_b @ lower
    return float(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2.0), 0.0, None)).sum())
