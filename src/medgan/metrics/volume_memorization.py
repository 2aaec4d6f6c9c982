"""The 3D memorization audit: each synthetic volume's nearest training volume by 3D SSIM, against real volumes'.

As the 2D audit (``medgan.metrics.memorization``), for volumes ``[N, 1, D, H, W]`` in [-1, 1]:

* nearest training volume by 3D SSIM (``medgan.metrics.volume_similarity``: display scale, 11-voxel Gaussian window,
  valid region), after setting voxels below the foreground threshold -0.9 to -1, so an imperfect black background
  does not hide a copy; the highest SSIM over candidates, the training volumes nearest in voxel space (L2 of volumes
  average-pooled to at most 16 voxels per axis). An exact or lightly perturbed copy is always among them, since its
  voxel distance is about 0. There is no feature side: no 3D feature space ships with medgan.
* the *real-to-real baseline*: held-out real volumes against the training set when given, otherwise each training
  volume against the others (leave-one-out). A generator that copies has synthetic nearest-neighbour SSIMs above it.

The near-copy gate is the 2D audit's ``NEAR_COPY_SSIM`` (0.95), the gate of ``medgan sample --privacy-filter``. It
was measured on 64 px slices; in 3D an SSIM averages over far more windows, so small local differences weigh less,
and the baseline is the yardstick to read a synthetic fraction against.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from medgan.errors import DataError
from medgan.metrics.bootstrap import RESAMPLES, bootstrap
from medgan.metrics.catalog import clipped
from medgan.metrics.image import to_display
from medgan.metrics.intervals import entry, one_thread
from medgan.metrics.memorization import NEAR_COPY_SSIM, _quantiles
from medgan.metrics.volume_similarity import (
    VolumeMoments,
    check_volumes,
    pair_similarity,
    volume_resampling,
    volume_scale_weights,
)

CANDIDATES = 8  # training volumes nearest in voxel space that get a 3D SSIM score (all of them when fewer)
SEARCH_SIDE = 16  # volumes are average-pooled to at most this many voxels per axis for the candidate search
MAX_BASELINE = 200  # real volumes queried for the real-to-real baseline
CLOSEST = 8  # most similar (synthetic, training) pairs listed


@dataclass
class VolumeNeighbours:
    """Nearest training volume of each query volume by 3D SSIM: ``index`` [Q] and ``ssim`` [Q]."""

    index: np.ndarray
    ssim: np.ndarray


class VolumeIndex:
    """What the nearest-volume search needs about a training set, computed once (also for a 3D privacy filter).

    Candidates are the ``CANDIDATES`` training volumes nearest in voxel space (L2 of volumes average-pooled to at
    most 16 voxels per axis, display scale); each gets a 3D SSIM score and the highest wins. An exact or lightly
    perturbed copy is always a candidate (its voxel distance is about 0). Voxels below the foreground threshold are
    set to -1 first, as the 2D audit does (``medgan.metrics.memorization``).

    Args:
        train: [M, 1, D, H, W] training volumes in [-1, 1] (at least 2).
    """

    def __init__(self, train: torch.Tensor) -> None:
        check_volumes(train, "training volumes")
        volume_scale_weights(train.shape[2:])  # raises for volumes too small for SSIM
        self.shape = tuple(train.shape[1:])
        self.pixels = _search_voxels(train)
        self.moments = VolumeMoments(train, clean=True)

    def nearest(self, queries: torch.Tensor, exclude: torch.Tensor | None = None) -> VolumeNeighbours:
        """Each query's nearest training volume by 3D SSIM; ``exclude`` [Q] names a training index each query must
        not match (itself, for leave-one-out)."""
        check_volumes(queries, "query volumes")
        if tuple(queries.shape[1:]) != self.shape:
            raise DataError(f"training and query volumes differ in shape: {self.shape} vs {tuple(queries.shape[1:])}")
        distances = torch.cdist(_search_voxels(queries), self.pixels)  # [Q, M]
        if exclude is not None:
            distances[torch.arange(len(queries)), exclude] = float("inf")
        count = min(CANDIDATES, distances.shape[1] - int(exclude is not None))
        candidates = distances.topk(count, dim=1, largest=False).indices  # [Q, C]
        rows = torch.arange(len(queries)).repeat_interleave(count)
        scores = torch.from_numpy(pair_similarity(VolumeMoments(queries, clean=True), self.moments, rows,
                                                  candidates.flatten())).view(len(queries), count)
        best = scores.argmax(1)
        picked = torch.arange(len(queries))
        return VolumeNeighbours(candidates[picked, best].numpy(), scores[picked, best].numpy())


def _search_voxels(volumes: torch.Tensor) -> torch.Tensor:
    """[N, P] display-scale voxels average-pooled to at most ``SEARCH_SIDE`` per axis, for the candidate search."""
    size = tuple(min(side, SEARCH_SIDE) for side in volumes.shape[2:])
    return F.adaptive_avg_pool3d(to_display(volumes), size).flatten(1)


def volume_memorization(train: torch.Tensor, fake: torch.Tensor, heldout: torch.Tensor | None = None,
                        heldout_subjects: Sequence | None = None, threshold: float = NEAR_COPY_SSIM,
                        max_baseline: int = MAX_BASELINE, resamples: int = RESAMPLES, seed: int = 0) -> dict[str, Any]:
    """Each synthetic volume's nearest training volume by 3D SSIM, against the real-to-real baseline.

    Args:
        train: [M, 1, D, H, W] training volumes in [-1, 1] (at least 2).
        fake: [N, 1, D, H, W] synthetic volumes, same shape.
        heldout: real volumes not used for training: the baseline queries. Without them the baseline is each
            training volume against the others (leave-one-out).
        heldout_subjects: one subject label per held-out volume (intervals resample subjects; see
            ``volume_resampling``).
        threshold: the near-copy 3D SSIM (the 2D audit's and the privacy filter's gate).
        max_baseline: at most this many baseline queries (a random subset, ``seed``).
        resamples: bootstrap resamples per interval.
        seed: subset and resampling seed.

    Returns:
        ``{"near_copy_threshold_ssim", "near_copies", "near_copy_fraction", "baseline_near_copy_fraction",
        "baseline", "nearest_ssim", "baseline_nearest_ssim"`` (mean, std, count, median, p05, p95, min, max),
        ``"closest_pairs"`` (up to 8 ``[synthetic, training, ssim]``, most similar first), ``"nearest_index"`` (the
        nearest training volume of each synthetic one)``}``; the fractions and medians have ``_interval`` entries
        (synthetic and baseline volumes resampled, the training set fixed).
    """
    check_volumes(train, "training volumes")
    check_volumes(fake, "synthetic volumes")
    if train.shape[0] < 2:
        raise DataError("the memorization audit needs at least 2 training volumes")
    index = VolumeIndex(train)
    synthetic = index.nearest(fake)
    generator = torch.Generator().manual_seed(seed)
    if heldout is not None:
        pick = torch.randperm(heldout.shape[0], generator=generator)[:max_baseline].sort().values
        baseline, kind = index.nearest(heldout[pick]), "held-out real volumes"
        groups = None if heldout_subjects is None else np.asarray([str(heldout_subjects[i]) for i in pick.tolist()])
    else:
        pick = torch.randperm(train.shape[0], generator=generator)[:max_baseline].sort().values
        baseline, kind, groups = index.nearest(train[pick], exclude=pick), "leave-one-out within the training set", None
    order = np.argsort(-synthetic.ssim, kind="stable")[:CLOSEST]
    result: dict[str, Any] = {
        "near_copy_threshold_ssim": threshold,
        "near_copies": int((synthetic.ssim >= threshold).sum()),
        "near_copy_fraction": float((synthetic.ssim >= threshold).mean()),
        "baseline_near_copy_fraction": float((baseline.ssim >= threshold).mean()),
        "baseline": kind,
        "nearest_ssim": _quantiles(synthetic.ssim),
        "baseline_nearest_ssim": _quantiles(baseline.ssim),
        "closest_pairs": [[int(i), int(synthetic.index[i]), float(synthetic.ssim[i])] for i in order],
        "nearest_index": [int(i) for i in synthetic.index],
    }
    if len(baseline.ssim) >= 2 and len(synthetic.ssim) >= 2:
        _memorization_intervals(result, synthetic, baseline, threshold, groups, resamples, seed)
    return result


def _memorization_intervals(result: dict[str, Any], synthetic: VolumeNeighbours, baseline: VolumeNeighbours,
                            threshold: float, groups: np.ndarray | None, resamples: int, seed: int) -> None:
    """Intervals of the near-copy fractions and median SSIMs: synthetic and baseline volumes resampled."""
    how = volume_resampling(groups, len(baseline.ssim), resamples, seed)

    def statistic(baseline_index: np.ndarray, synthetic_index: np.ndarray) -> list[float]:
        ssim, base = synthetic.ssim[synthetic_index], baseline.ssim[baseline_index]
        return [float(np.mean(ssim >= threshold)), float(np.median(ssim)), float(np.mean(base >= threshold)),
                float(np.median(base))]

    with one_thread():
        found = bootstrap(statistic, len(baseline.ssim), len(synthetic.ssim), resamples=resamples, seed=seed,
                          real_groups=how.real_groups, centred=True)
    found["resampled"] = "subjects" if how.real_groups is not None else "volumes"
    if how.note:
        result["resampling_note"] = how.note
    places = ((result, "near_copy_fraction"), (result["nearest_ssim"], "median"),
              (result, "baseline_near_copy_fraction"), (result["baseline_nearest_ssim"], "median"))
    for position, (node, leaf) in enumerate(places):
        floor = 0.0 if "fraction" in leaf else None
        node[f"{leaf}_interval"] = clipped(entry(found, position), floor, 1.0)
