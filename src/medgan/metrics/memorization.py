"""Memorization audit: is any synthetic image a (near) copy of a training image?

For every synthetic image we find its nearest training image two ways:

* pixel SSIM (display scale, 11 px Gaussian window, as ``medgan.metrics.image.ssim``, after setting pixels
  below the foreground threshold -0.9 to -1, so an imperfect black background does not hide a copy): the highest SSIM
  over a candidate list, namely the training images nearest in pixel space (L2 at <= 32 x 32, robust to noise)
  and nearest in feature space. An exact or lightly perturbed copy is always among those candidates, since
  its pixel distance to the original is about 0; scoring all N x M pairs with SSIM would cost 10^8 SSIMs at
  10,000 x 10,000.
* feature distance: the Euclidean distance to the nearest training feature (exact, over all pairs).

The same search from real images gives the *real-to-real baseline*: held-out real images against the
training set when a separate training set is given, otherwise each training image against the others
(leave-one-out). A generator that copies has synthetic nearest-neighbour SSIMs above the baseline.

Near-copy rule (documented threshold): SSIM to the nearest training image >= 0.95. Measured on 64 px MNI
slices, an image still scores >= 0.99 against itself after added noise of 1.5% of the intensity range (std 0.03
in model units), a 3% intensity rescaling or a 2% brightness offset; slices of another orientation score
<= 0.75, and a slice 4 mm away about 0.82. Shifted or flipped copies can fall under it
(SSIM is not shift-invariant): the feature-distance columns are the check for those. Training sets that hold
near-duplicates themselves (adjacent 1 mm slices of one volume, such as the MNI template, have SSIM ~0.98)
show a high baseline near-copy fraction, and synthetic fractions must be read against it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from medgan.errors import DataError
from medgan.metrics.features import check_images
from medgan.metrics.image import FOREGROUND_THRESHOLD, SSIM_SIGMA, SSIM_WINDOW, summarize, to_display

NEAR_COPY_SSIM = 0.95  # SSIM to the nearest training image at or above which an image counts as a near copy
PIXEL_CANDIDATES = 4  # training images nearest in pixel space that get an SSIM score
FEATURE_CANDIDATES = 2  # training images nearest in feature space that get an SSIM score
SEARCH_SIDE = 32  # images are average-pooled to at most this side for the pixel search
MAX_BASELINE = 1000  # real images used for the real-to-real baseline
CHUNK = 1024  # query rows per distance block
SSIM_BATCH = 2048  # pairs per fast-SSIM block (bounds temporary memory)


class LocalMoments:
    """Gaussian-windowed local means and second moments of a set of images, computed once per image.

    SSIM of a pair needs mu_x, mu_y, E[x^2], E[y^2] (per image) and E[xy] (per pair). MONAI recomputes all five
    filtered maps for every pair with a dense 11 x 11 convolution; here the per-image maps are computed once
    and reused for every candidate pair, and filtering is separable (two small matrix products), which makes
    the audit's ~10^5 candidate SSIMs affordable. ``tests/test_metrics_memorization.py`` checks the values
    equal MONAI's ``compute_ssim_and_cs``.

    Args:
        images: [N, 1, H, W] in [-1, 1].
    """

    def __init__(self, images: torch.Tensor) -> None:
        # Near-black is made black first: SSIM's luminance term is very sensitive at 0 (a background of -0.98
        # instead of -1 halves it there), and generators rarely reach exactly -1 through tanh. Pixels below the
        # pipeline's foreground threshold carry no anatomy, so a copy with an imperfect black still scores ~1.
        cleaned = torch.where(images < FOREGROUND_THRESHOLD, torch.full_like(images, -1.0), images)
        display = to_display(cleaned)[:, 0]  # [N, H, W] in [0, 1]
        height, width = display.shape[-2:]
        self.rows = _valid_filter(height)  # [H - 10, H]
        self.columns = _valid_filter(width)  # [W - 10, W]
        self.images = display
        self.mean = self.filter(display)
        self.mean_square = self.mean * self.mean
        self.second = self.filter(display * display)

    def filter(self, maps: torch.Tensor) -> torch.Tensor:
        """Valid-region Gaussian filtering of [N, H, W] maps -> [N, H - 10, W - 10] (separable: two matrix products)."""
        return self.rows @ maps @ self.columns.T


def _valid_filter(size: int) -> torch.Tensor:
    """[size - window + 1, size] matrix whose rows are the shifted normalised Gaussian window (valid convolution)."""
    if size < SSIM_WINDOW:
        raise DataError(f"images of {size} px are too small for SSIM (window {SSIM_WINDOW} px)")
    offsets = torch.arange(SSIM_WINDOW, dtype=torch.float32) - (SSIM_WINDOW - 1) / 2
    window = torch.exp(-0.5 * (offsets / SSIM_SIGMA) ** 2)
    window = window / window.sum()
    matrix = torch.zeros(size - SSIM_WINDOW + 1, size)
    for row in range(matrix.shape[0]):
        matrix[row, row : row + SSIM_WINDOW] = window
    return matrix


def candidate_ssim(queries: LocalMoments, train: LocalMoments, candidates: torch.Tensor) -> torch.Tensor:
    """SSIM of each query image with each of its candidate training images (display scale, data range 1).

    Args:
        queries: moments of Q query images.
        train: moments of the training images.
        candidates: [Q, C] training indices per query.

    Returns:
        [Q, C] SSIM values.
    """
    c1, c2 = 0.01**2, 0.03**2
    block = max(1, SSIM_BATCH // max(1, candidates.shape[1]))
    values = []
    for start in range(0, candidates.shape[0], block):
        rows, chosen = slice(start, start + block), candidates[start : start + block]  # chosen: [B, C]
        # Query-side maps broadcast over the candidates ([B, 1, h, w]); only training-side maps are gathered.
        mean_product = queries.mean[rows].unsqueeze(1) * train.mean[chosen]
        square_sum = queries.mean_square[rows].unsqueeze(1) + train.mean_square[chosen]
        product = (queries.images[rows].unsqueeze(1) * train.images[chosen]).flatten(0, 1)  # [B * C, H, W]
        covariance = train.filter(product).view_as(mean_product).sub_(mean_product)
        # SSIM = (2 mu_q mu_t + c1)(2 cov + c2) / ((mu_q^2 + mu_t^2 + c1)(var_q + var_t + c2)), in place
        numerator = covariance.mul_(2.0).add_(c2).mul_(mean_product.mul_(2.0).add_(c1))
        variances = (queries.second[rows].unsqueeze(1) + train.second[chosen]).sub_(square_sum).add_(c2)
        values.append(numerator.div_(variances.mul_(square_sum.add_(c1))).mean((2, 3)))
    return torch.cat(values) if values else torch.zeros(candidates.shape)


def _search_pixels(images: torch.Tensor) -> torch.Tensor:
    """[N, P] pixel vectors for the candidate search: average-pooled to at most 32 px, display scale."""
    factor = max(1, images.shape[-1] // SEARCH_SIDE)
    pooled = F.avg_pool2d(to_display(images), factor) if factor > 1 else to_display(images)
    return pooled.flatten(1)


def _nearest(queries: torch.Tensor, references: torch.Tensor, k: int,
             exclude: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The k smallest Euclidean distances (and indices) from each query row to the reference rows, chunked.

    ``exclude`` [Q] names one reference per query that must not match (the query itself, for leave-one-out).
    """
    k = min(k, references.shape[0] - int(exclude is not None))
    distances, indices = [], []
    for start in range(0, queries.shape[0], CHUNK):
        block = torch.cdist(queries[start : start + CHUNK], references, compute_mode="use_mm_for_euclid_dist")
        if exclude is not None:
            block[torch.arange(block.shape[0]), exclude[start : start + CHUNK]] = float("inf")
        best = block.topk(k, dim=1, largest=False)
        distances.append(best.values)
        indices.append(best.indices)
    return torch.cat(distances), torch.cat(indices)


@dataclass
class NearestNeighbours:
    """Nearest training image of each query image.

    Attributes:
        ssim_index: [Q] index of the training image with the highest SSIM among the candidates.
        ssim: [Q] that SSIM.
        feature_index: [Q] index of the training image nearest in feature space.
        feature_distance: [Q] that distance.
    """

    ssim_index: np.ndarray
    ssim: np.ndarray
    feature_index: np.ndarray
    feature_distance: np.ndarray


class TrainingIndex:
    """Everything the search needs about the training set, computed once and shared by all queries.

    Args:
        train: [M, 1, H, W] training images in [-1, 1].
        features: [M, D] their features.
    """

    def __init__(self, train: torch.Tensor, features: torch.Tensor) -> None:
        self.images = train
        self.centre = features.double().mean(0)  # centred float32 distances are accurate and fast (see prdc)
        self.features = self.centred(features)
        self.pixels = _search_pixels(train)
        self.moments = LocalMoments(train)

    def centred(self, features: torch.Tensor) -> torch.Tensor:
        """Features relative to the training mean, float32."""
        return (features.double() - self.centre).float()

    def nearest(self, queries: torch.Tensor, query_features: torch.Tensor,
                exclude: torch.Tensor | None = None) -> NearestNeighbours:
        """Each query's nearest training image by SSIM (over candidates) and by feature distance.

        Args:
            queries: [Q, 1, H, W] in [-1, 1], same size as the training images.
            query_features: [Q, D].
            exclude: [Q] training index each query must not match (leave-one-out), or None.
        """
        feature_distance, feature_index = _nearest(self.centred(query_features), self.features, FEATURE_CANDIDATES,
                                                   exclude)
        _, pixel_index = _nearest(_search_pixels(queries), self.pixels, PIXEL_CANDIDATES, exclude)
        candidates = torch.cat([pixel_index, feature_index], 1)  # [Q, C]
        scores = candidate_ssim(LocalMoments(queries), self.moments, candidates)
        if exclude is not None:  # a feature candidate list may still hold the query when k reached M - 1
            scores[candidates == exclude[:, None]] = -float("inf")
        best = scores.argmax(1)
        picked = torch.arange(queries.shape[0])
        return NearestNeighbours(
            ssim_index=candidates[picked, best].numpy(),
            ssim=scores[picked, best].double().numpy(),
            feature_index=feature_index[:, 0].numpy(),
            feature_distance=feature_distance[:, 0].numpy(),
        )


@dataclass
class MemorizationAudit:
    """Result of ``memorization_audit``: per-image nearest neighbours of synthetic and baseline images."""

    synthetic: NearestNeighbours
    baseline: NearestNeighbours
    baseline_kind: str  # "held-out real images" or "leave-one-out within the training set"
    threshold: float
    baseline_queries: np.ndarray | None = None  # [Q] index of each baseline query in the held-out (or training) set

    @property
    def near_copies(self) -> np.ndarray:
        """[N_f] bool: synthetic images whose nearest training SSIM reaches the threshold."""
        return self.synthetic.ssim >= self.threshold

    def closest_pairs(self, count: int = 8) -> list[tuple[int, int, float]]:
        """(synthetic index, training index, SSIM) of the ``count`` most similar pairs, most similar first."""
        order = np.argsort(-self.synthetic.ssim, kind="stable")[:count]
        return [(int(i), int(self.synthetic.ssim_index[i]), float(self.synthetic.ssim[i])) for i in order]

    def summary(self) -> dict:
        """JSON-ready numbers: near-copy fractions and nearest-neighbour distributions against the baseline."""
        return {
            "near_copy_threshold_ssim": self.threshold,
            "near_copies": int(self.near_copies.sum()),
            "near_copy_fraction": float(self.near_copies.mean()),
            "baseline_near_copy_fraction": float((self.baseline.ssim >= self.threshold).mean()),
            "baseline": self.baseline_kind,
            "nearest_ssim": _quantiles(self.synthetic.ssim),
            "baseline_nearest_ssim": _quantiles(self.baseline.ssim),
            "nearest_feature_distance": _quantiles(self.synthetic.feature_distance),
            "baseline_nearest_feature_distance": _quantiles(self.baseline.feature_distance),
        }


def _quantiles(values: np.ndarray) -> dict[str, float]:
    summary = summarize(values)
    if summary["count"]:
        for name, q in (("median", 0.5), ("p05", 0.05), ("p95", 0.95), ("max", 1.0), ("min", 0.0)):
            summary[name] = float(np.quantile(values, q))
    return summary


def memorization_audit(train: torch.Tensor, train_features: torch.Tensor, fake: torch.Tensor,
                       fake_features: torch.Tensor, heldout: torch.Tensor | None = None,
                       heldout_features: torch.Tensor | None = None, threshold: float = NEAR_COPY_SSIM,
                       max_baseline: int = MAX_BASELINE, seed: int = 0) -> MemorizationAudit:
    """Nearest training image of every synthetic image, against the real-to-real baseline.

    Args:
        train: [M, 1, H, W] training images in [-1, 1] (at least 2).
        train_features: [M, D] their features.
        fake: [N, 1, H, W] synthetic images.
        fake_features: [N, D].
        heldout: optional real images not used for training (the baseline queries); without them the baseline
            is leave-one-out within ``train``.
        heldout_features: their features.
        threshold: near-copy SSIM threshold.
        max_baseline: at most this many baseline queries (a random subset, ``seed``).
        seed: subset seed.

    Returns:
        The audit.
    """
    check_images(train, "training images")
    check_images(fake, "synthetic images")
    if train.shape[1:] != fake.shape[1:]:
        raise DataError(f"training and synthetic images differ in shape: {tuple(train.shape[1:])} vs "
                        f"{tuple(fake.shape[1:])}")
    if train.shape[0] < 2:
        raise DataError("the memorization audit needs at least 2 training images")
    index = TrainingIndex(train, train_features)
    synthetic = index.nearest(fake, fake_features)
    generator = torch.Generator().manual_seed(seed)
    if heldout is not None and heldout_features is not None:
        check_images(heldout, "held-out images")
        pick = torch.randperm(heldout.shape[0], generator=generator)[:max_baseline]
        baseline = index.nearest(heldout[pick], heldout_features[pick])
        kind = "held-out real images"
    else:
        pick = torch.randperm(train.shape[0], generator=generator)[:max_baseline].sort().values
        baseline = index.nearest(train[pick], train_features[pick], exclude=pick)
        kind = "leave-one-out within the training set"
    return MemorizationAudit(synthetic, baseline, kind, threshold, pick.numpy())
