"""FID and KID against closed forms and independent reference computations (scipy sqrtm, numpy MMD)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from medgan.errors import DataError
from medgan.metrics.fid import feature_statistics, fid, frechet_distance
from medgan.metrics.kid import kid, polynomial_mmd


pytestmark = pytest.mark.usefixtures("one_thread")


def reference_fid(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook computation: scipy.linalg.sqrtm of the covariance product."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def reference_mmd(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3, written out with explicit off-diagonal masks."""
    d = x.shape[1]
    k_xx, k_yy, k_xy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
    m, n = len(x), len(y)
    off_x, off_y = ~np.eye(m, dtype=bool), ~np.eye(n, dtype=bool)
    return float(k_xx[off_x].mean() + k_yy[off_y].mean() - 2 * k_xy.mean())


def random_covariance(rng: np.random.Generator, dim: int) -> np.ndarray:
    factor = rng.standard_normal((dim, dim))
    return factor @ factor.T / dim + 0.1 * np.eye(dim)


def test_frechet_distance_equals_closed_form_for_diagonal_gaussians():
    mean_a, mean_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    var_a, var_b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = ((mean_a - mean_b) ** 2).sum() + ((np.sqrt(var_a) - np.sqrt(var_b)) ** 2).sum()  # = 5 + 1 + 1 + 4
    assert frechet_distance(mean_a, np.diag(var_a), mean_b, np.diag(var_b)) == pytest.approx(expected, abs=1e-10)
    assert expected == pytest.approx(11.0)


def test_frechet_distance_equals_sqrtm_formula_for_general_covariances():
    rng = np.random.default_rng(0)
    cov_a, cov_b = random_covariance(rng, 6), random_covariance(rng, 6)
    mean_a, mean_b = rng.standard_normal(6), rng.standard_normal(6)
    expected = ((mean_a - mean_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * scipy.linalg.sqrtm(cov_a @ cov_b).real)
    assert frechet_distance(mean_a, cov_a, mean_b, cov_b) == pytest.approx(expected, rel=1e-9)


def test_fid_of_sampled_gaussians_approaches_closed_form():
    rng = np.random.default_rng(1)
    a = rng.normal(0.0, 1.0, size=(20000, 4))
    b = rng.normal(0.5, 2.0, size=(20000, 4))
    closed_form = 4 * 0.5**2 + 4 * (2.0 - 1.0) ** 2  # 5.0
    assert fid(a, b) == pytest.approx(closed_form, rel=0.03)


def test_fid_matches_scipy_reference_on_the_same_features():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((300, 16)) @ rng.standard_normal((16, 16))
    b = rng.standard_normal((250, 16)) @ rng.standard_normal((16, 16)) + 0.3
    assert fid(torch.from_numpy(a).float(), torch.from_numpy(b).float()) == pytest.approx(
        reference_fid(a.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64)), rel=1e-6)


def test_fid_of_identical_sets_is_zero_and_nonnegative():
    features = np.random.default_rng(3).standard_normal((100, 8))
    assert fid(features, features) == pytest.approx(0.0, abs=1e-9)
    mean, covariance = feature_statistics(features)
    assert mean.shape == (8,) and covariance.shape == (8, 8)


@pytest.mark.parametrize(
    "real, fake, message",
    [
        (np.zeros((0, 4)), np.ones((10, 4)), "empty"),
        (np.ones((10, 4)), np.ones((10, 5)), "dimensions differ"),
        (np.ones(10), np.ones((10, 4)), "must be"),
        (np.full((10, 4), np.nan), np.ones((10, 4)), "NaN"),
        (np.random.default_rng(0).standard_normal((8, 16)), np.random.default_rng(1).standard_normal((50, 16)),
         "more images than feature dimensions"),
    ],
)
def test_fid_rejects_bad_inputs_with_clear_errors(real, fake, message):
    with pytest.raises(DataError, match=message):
        fid(real, fake)


def test_polynomial_mmd_matches_reference():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((60, 10)), rng.standard_normal((50, 10)) + 0.4
    assert polynomial_mmd(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(reference_mmd(x, y), rel=1e-4)


def test_kid_on_whole_sets_equals_reference_and_detects_shift():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((80, 12)), rng.standard_normal((80, 12)) + 0.5
    mean, std = kid(x, y, subsets=3, subset_size=1000)  # subsets are whole sets, only reordered
    assert mean == pytest.approx(reference_mmd(x, y), rel=1e-4)
    assert std == pytest.approx(0.0, abs=1e-6 * abs(mean))
    same_mean, _ = kid(x, rng.standard_normal((80, 12)), subsets=20, subset_size=40)
    assert abs(same_mean) < 0.2 * mean


def test_kid_is_averaged_over_subsets_with_a_spread():
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((200, 8)), rng.standard_normal((200, 8)) + 0.3
    mean, std = kid(x, y, subsets=30, subset_size=50, seed=1)
    assert std > 0
    assert mean == pytest.approx(reference_mmd(x, y), rel=0.3)
    assert kid(x, y, subsets=30, subset_size=50, seed=1) == (mean, std)  # seeded


def test_kid_rejects_bad_inputs():
    with pytest.raises(DataError, match="at least 2"):
        kid(np.ones((1, 3)), np.ones((5, 3)))
    with pytest.raises(DataError, match="dimensions differ"):
        kid(np.ones((5, 3)), np.ones((5, 4)))
