"""Three-plane slice-wise FID and KID of volumes (MAISI's protocol), and every 3D synthesis metric in one call.

Volumes are ``[N, 1, D, H, W]`` in [-1, 1] (``medgan.metrics.volume_similarity``: D the slice axis z, H the rows y,
W the columns x). A 2D feature space judges a volume through its slices in the three orthogonal planes:

* **Planes**: axial slices cut across D (images H x W), coronal across H (D x W), sagittal across W (D x H), in the
  orientation they are stored, the same for both sets.
* **Slices**: the central ``fraction`` of each axis (MAISI's centre-slice rule: indices ``int((1 - f) / 2 n)`` to
  ``int((1 + f) / 2 n)``; default half), every ``every``-th of them. No foreground rule: choosing slices by their
  content would take a generator's empty slices out of view, and the central half of each axis of a body volume
  is inside the body anyway. Slices that are not square (coronal and sagittal slices of a volume with fewer slices
  than rows) are resized to a square of their larger side (bilinear, ``torch.nn.functional.interpolate``); the
  extractor's ``prepare`` then brings them to its own input size, as for 2D images.
* **Scores**: per plane, FID (``medgan.metrics.fid.fid``) and KID (``medgan.metrics.kid.kid``, subsets of half the
  smaller slice set, at most 1000) of the real and synthetic slices' features, and the mean of the three planes
  (MAISI's "FID (Average)"). FID needs more slices per set than feature dimensions (64 offline): a plane with fewer
  gets no FID and a note.
* **Intervals**: 95%, by resampling whole *volumes* of both sets (real volumes by subject where subject labels say
  several volumes share a patient), never slices one by one: the slices of a volume are strongly correlated, and
  resampling them as if independent gives intervals that are too narrow. FID: bootstrap with replacement, centred
  (``medgan.metrics.intervals``' reasons), one resample drawing the same volumes for all three planes, so the mean's
  interval keeps the planes' correlation. KID: half-sampling of volumes with the kernel evaluated once between
  blocks of slices (``medgan.metrics.kid.KernelBlocks``, a block per volume), centred on the reported KID.

``volume_metrics`` adds the 3D diversity (``volume_similarity.volume_diversity``) and memorization
(``volume_memorization``) sections; ``medgan.metrics.catalog.VOLUME_METRICS`` names its headline rows.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from medgan.errors import DataError
from medgan.metrics.bootstrap import RESAMPLES, bootstrap
from medgan.metrics.catalog import VOLUME_METRICS, headline
from medgan.metrics.extractor import FeatureExtractor
from medgan.metrics.features import extract_features
from medgan.metrics.fid import fid, fid_of_rows
from medgan.metrics.intervals import SMALL_WORK, Resampling, affordable, entry, one_thread
from medgan.metrics.kid import KernelBlocks, kid, subset_size_for
from medgan.metrics.volume_memorization import volume_memorization
from medgan.metrics.volume_similarity import check_same_shape, check_volumes, volume_diversity, volume_resampling

PLANES = ("axial", "coronal", "sagittal")  # slices across spatial axis 0 (D), 1 (H), 2 (W)
CENTRAL_FRACTION = 0.5  # share of each axis whose slices are scored (MAISI's example script uses 0.4)
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
VOLUME_BATCH = 8  # volumes sliced and embedded per pass: memory stays at a few volumes' slices

PlaneFeatures = dict[str, tuple[torch.Tensor, np.ndarray]]  # plane -> ([M, dim] features, [M] volume index)


def slice_range(size: int, fraction: float = CENTRAL_FRACTION) -> tuple[int, int]:
    """The central slices of an axis of ``size``: ``[int((1 - f) / 2 size), int((1 + f) / 2 size))``, at least one."""
    if not 0.0 < fraction <= 1.0:
        raise DataError(f"the central fraction must lie in (0, 1], got {fraction!r}")
    start = int((1.0 - fraction) / 2.0 * size)
    return start, max(start + 1, int((1.0 + fraction) / 2.0 * size))


def plane_slices(volumes: torch.Tensor, plane: str, fraction: float = CENTRAL_FRACTION, every: int = 1) -> torch.Tensor:
    """The central slices of ``volumes`` in ``plane``, volume by volume, as square images.

    Args:
        volumes: [N, 1, D, H, W].
        plane: ``"axial"`` (across D), ``"coronal"`` (across H) or ``"sagittal"`` (across W).
        fraction: central share of the axis (``slice_range``).
        every: take every ``every``-th slice of that range.

    Returns:
        [N * S, 1, side, side]: the S slices of volume 0 first, then volume 1's, ...; side is the larger side of a
        slice (the shorter one is stretched to it).
    """
    if plane not in PLANES:
        raise DataError(f"unknown plane {plane!r}; choose one of {PLANES}")
    axis = 2 + PLANES.index(plane)
    start, stop = slice_range(volumes.shape[axis], fraction)
    chosen = volumes.index_select(axis, torch.arange(start, stop, max(1, every)))
    slices = chosen.movedim(axis, 1).flatten(0, 1)  # [N, S, 1, rows, columns] -> [N * S, 1, rows, columns]
    side = max(slices.shape[-2:])
    if slices.shape[-2] != slices.shape[-1]:
        slices = F.interpolate(slices.float(), size=(side, side), mode="bilinear", align_corners=False)
    return slices


@torch.no_grad()
def plane_features(volumes: torch.Tensor, extractor: FeatureExtractor, fraction: float = CENTRAL_FRACTION,
                   every: int = 1, progress: bool = False, what: str = "volumes") -> PlaneFeatures:
    """Features of each plane's central slices, ``VOLUME_BATCH`` volumes at a time.

    Returns:
        ``{plane: ([M, dim] float32 features, [M] index of the volume each slice comes from)}``.
    """
    check_volumes(volumes, what)
    found: dict[str, list[torch.Tensor]] = {plane: [] for plane in PLANES}
    owners: dict[str, list[np.ndarray]] = {plane: [] for plane in PLANES}
    starts = range(0, volumes.shape[0], VOLUME_BATCH)
    if progress:
        from medgan.progress import progress_bar

        starts = progress_bar(starts, desc=f"slice features ({what})", unit="batch", leave=False)
    for start in starts:
        batch = volumes[start:start + VOLUME_BATCH].float()
        for plane in PLANES:
            slices = plane_slices(batch, plane, fraction, every)
            found[plane].append(extract_features(slices, extractor, what=f"{what}, {plane} slices"))
            per_volume = slices.shape[0] // batch.shape[0]
            owners[plane].append(np.repeat(np.arange(start, start + batch.shape[0]), per_volume))
    return {plane: (torch.cat(found[plane]), np.concatenate(owners[plane])) for plane in PLANES}


def three_plane_fid(real: torch.Tensor, fake: torch.Tensor, extractor: FeatureExtractor,
                    fraction: float = CENTRAL_FRACTION, every: int = 1, real_subjects: Sequence | None = None,
                    resamples: int = RESAMPLES, seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Slice-wise FID and KID in the axial, coronal and sagittal planes and their means, with 95% intervals over
    volumes.

    Args:
        real: [N_r, 1, D, H, W] in [-1, 1] (at least 2 volumes).
        fake: [N_f, 1, D, H, W] in [-1, 1], same shape (N may differ).
        extractor: the 2D feature space (``medgan.metrics.features.get_extractor``).
        fraction: central share of each axis whose slices are scored.
        every: every ``every``-th slice of it.
        real_subjects: one subject label per real volume, where several volumes share a patient; None: each real
            volume is its own subject.
        resamples: bootstrap resamples per interval (FID's are cut for costly feature spaces, said in the entry).
        seed: KID subsets and resampling seed.
        progress: progress bars.

    Returns:
        ``{"fid", "kid_mean"`` (means over the planes, None where a plane has no FID), ``"fid_interval",
        "kid_mean_interval", "planes": {plane: {"fid", "fid_interval", "kid_mean", "kid_mean_interval", "kid_std",
        "kid_subset_size", "slices_real", "slices_synthetic", "slice_range", "slice_shape"}}, "central_fraction",
        "every", "slice_rule", "features", "n_real", "n_synthetic", "resampled", "notes"}``.
    """
    check_volumes(real, "real volumes")
    check_volumes(fake, "synthetic volumes")
    check_same_shape(real, fake, "real and synthetic volumes")
    real_planes = plane_features(real, extractor, fraction, every, progress, "real volumes")
    fake_planes = plane_features(fake, extractor, fraction, every, progress, "synthetic volumes")
    result = three_plane_scores(real_planes, fake_planes, real.shape[0], fake.shape[0], real_subjects, resamples, seed)
    for plane, scores in result["planes"].items():
        axis = PLANES.index(plane)
        start, stop = slice_range(real.shape[2 + axis], fraction)
        scores["slice_range"] = [start, stop]
        scores["slice_shape"] = [side for index, side in enumerate(real.shape[2:]) if index != axis]
    result.update(central_fraction=fraction, every=every, features=extractor.fingerprint(),
                  slice_rule=f"central {fraction:g} of each axis (MAISI's centre-slice rule), every {every} slice(s); "
                             "no foreground rule; non-square slices stretched to a square")
    return result


def three_plane_scores(real_planes: PlaneFeatures, fake_planes: PlaneFeatures, n_real: int, n_fake: int,
                       real_subjects: Sequence | None = None, resamples: int = RESAMPLES,
                       seed: int = 0) -> dict[str, Any]:
    """``three_plane_fid``'s numbers from features (``plane_features``), with intervals that resample volumes."""
    if n_real < 2 or n_fake < 2:
        raise DataError(f"three-plane FID needs at least 2 volumes per set, got {n_real} real and {n_fake} synthetic")
    notes: list[str] = []
    planes: dict[str, dict[str, Any]] = {}
    for plane in PLANES:
        real_features, fake_features = real_planes[plane][0], fake_planes[plane][0]
        scores: dict[str, Any] = {"slices_real": int(real_features.shape[0]),
                                  "slices_synthetic": int(fake_features.shape[0])}
        try:
            scores["fid"] = fid(real_features, fake_features)
        except DataError as error:  # too few slices for the feature dimension: say so, keep KID
            scores["fid"] = None
            notes.append(f"{plane} FID not computed: {error.message}")
        size = subset_size_for(real_features.shape[0], fake_features.shape[0], KID_SUBSET_SIZE)
        scores["kid_mean"], scores["kid_std"] = kid(real_features, fake_features, subsets=KID_SUBSETS,
                                                    subset_size=size, seed=seed)
        scores["kid_subset_size"] = size
        planes[plane] = scores
    fids = [planes[plane]["fid"] for plane in PLANES]
    result: dict[str, Any] = {"fid": float(np.mean(fids)) if None not in fids else None,
                              "kid_mean": float(np.mean([planes[plane]["kid_mean"] for plane in PLANES])),
                              "planes": planes}
    how = volume_resampling(real_subjects, n_real, resamples, seed)
    real_rows = {plane: _members(real_planes[plane][1], n_real) for plane in PLANES}
    fake_rows = {plane: _members(fake_planes[plane][1], n_fake) for plane in PLANES}
    defined = [plane for plane in PLANES if planes[plane]["fid"] is not None]
    if defined:
        _fid_intervals(result, real_planes, fake_planes, real_rows, fake_rows, defined, how)
    _kid_intervals(result, real_planes, fake_planes, n_real, n_fake, how)
    result.update(n_real=n_real, n_synthetic=n_fake, notes=notes + ([f"intervals: {how.note}"] if how.note else []),
                  resampled="subjects" if how.real_groups is not None else "volumes")
    return result


def _members(owners: np.ndarray, count: int) -> list[np.ndarray]:
    """The slice rows of each volume."""
    return [np.flatnonzero(owners == volume) for volume in range(count)]


def _rows(members: list[np.ndarray], volumes: np.ndarray) -> np.ndarray:
    return np.concatenate([members[volume] for volume in volumes])


def _fid_intervals(result: dict[str, Any], real_planes: PlaneFeatures, fake_planes: PlaneFeatures,
                   real_rows: dict[str, list[np.ndarray]], fake_rows: dict[str, list[np.ndarray]],
                   defined: list[str], how: Resampling) -> None:
    """FID intervals of the defined planes (and of the mean when all three are): volumes drawn with replacement,
    the same draw for every plane, centred on the reported values (``medgan.metrics.intervals.fid_interval``)."""
    real = {plane: real_planes[plane][0].double().numpy() for plane in defined}
    fake = {plane: fake_planes[plane][0].double().numpy() for plane in defined}

    def statistic(real_volumes: np.ndarray, fake_volumes: np.ndarray) -> list[float]:
        values = [fid_of_rows(real[plane][_rows(real_rows[plane], real_volumes)],
                              fake[plane][_rows(fake_rows[plane], fake_volumes)]) for plane in defined]
        return values + [float(np.mean(values))] if len(defined) == len(PLANES) else values

    work = 0.0
    for plane in defined:
        (n_r, dim), n_f = real[plane].shape, fake[plane].shape[0]
        work += min(n_r * n_f * (dim + 4 * min(n_r, n_f)), (n_r + n_f) * dim**2 + 10 * dim**3)
    with one_thread(work < len(defined) * SMALL_WORK):
        found = bootstrap(statistic, len(real_rows[defined[0]]), len(fake_rows[defined[0]]),
                          resamples=affordable(work, how.resamples), seed=how.seed, real_groups=how.real_groups,
                          centred=True)
    found["resampled"] = "subjects" if how.real_groups is not None else "volumes"
    nodes = [result["planes"][plane] for plane in defined] + ([result] if len(defined) == len(PLANES) else [])
    for index, node in enumerate(nodes):
        node["fid_interval"] = entry(found, index)
        node["fid_interval"]["low"] = max(0.0, node["fid_interval"]["low"])  # centring can reach below 0


def _kid_intervals(result: dict[str, Any], real_planes: PlaneFeatures, fake_planes: PlaneFeatures, n_real: int,
                   n_fake: int, how: Resampling) -> None:
    """KID intervals of each plane and of the mean: half-samples of volumes, exact unbiased MMD^2 of their slices
    (``KernelBlocks`` with a block per volume), the spread placed around the reported KIDs."""
    kernels = {plane: KernelBlocks(real_planes[plane][0], fake_planes[plane][0], real_planes[plane][1],
                                   fake_planes[plane][1]) for plane in PLANES}

    def statistic(real_volumes: np.ndarray, fake_volumes: np.ndarray) -> list[float]:
        real_weights = np.bincount(real_volumes, minlength=n_real).astype(np.float64)
        fake_weights = np.bincount(fake_volumes, minlength=n_fake).astype(np.float64)
        values = [kernels[plane].mmd(real_weights, fake_weights) for plane in PLANES]
        return values + [float(np.mean(values))]

    with one_thread():
        found = bootstrap(statistic, n_real, n_fake, resamples=how.resamples, seed=how.seed,
                          real_groups=how.real_groups, scheme="half")
    found["resampled"] = "subjects" if how.real_groups is not None else "volumes"
    nodes = [result["planes"][plane] for plane in PLANES] + [result]
    for index, node in enumerate(nodes):
        placed = entry(found, index)
        shift = node["kid_mean"] - found["value"][index]  # the reported KID is the subset mean, not the full MMD^2
        placed["low"], placed["high"] = placed["low"] + shift, placed["high"] + shift
        node["kid_mean_interval"] = placed


def volume_metrics(real: torch.Tensor, fake: torch.Tensor, extractor: FeatureExtractor,
                   train: torch.Tensor | None = None, real_subjects: Sequence | None = None,
                   fraction: float = CENTRAL_FRACTION, resamples: int = RESAMPLES, seed: int = 0,
                   progress: bool = False) -> dict[str, Any]:
    """Every 3D synthesis metric on volume tensors: three-plane FID/KID, 3D diversity and the 3D memorization audit.

    Args:
        real: [N_r, 1, D, H, W] real volumes in [-1, 1].
        fake: [N_f, 1, D, H, W] synthetic volumes, same shape.
        extractor: the 2D feature space of the three-plane scores.
        train: training volumes for the audit; when given, ``real`` are the held-out baseline. Default: ``real``
            itself, with a leave-one-out baseline.
        real_subjects: one subject label per real volume where several volumes share a patient.
        fraction: central share of each axis for the three-plane scores.
        resamples: bootstrap resamples per interval.
        seed: pair, subset and resampling seed.
        progress: progress bars.

    Returns:
        ``{"volume_distribution"`` (``three_plane_fid``), ``"volume_diversity"`` (``volume_diversity``),
        ``"volume_memorization"`` (``volume_memorization``), ``"headline"`` (``VOLUME_METRICS`` rows),
        ``"timings_s"}``.
    """
    timings: dict[str, float] = {}

    def timed(name: str, compute: Any) -> Any:
        begin = time.perf_counter()
        value = compute()
        timings[name] = time.perf_counter() - begin
        return value

    metrics: dict[str, Any] = {
        "volume_distribution": timed("volume_distribution", lambda: three_plane_fid(
            real, fake, extractor, fraction, real_subjects=real_subjects, resamples=resamples, seed=seed,
            progress=progress)),
        "volume_diversity": timed("volume_diversity", lambda: volume_diversity(
            real, fake, seed=seed, real_subjects=real_subjects, resamples=resamples)),
        "volume_memorization": timed("volume_memorization", lambda: volume_memorization(
            real if train is None else train, fake, heldout=None if train is None else real,
            heldout_subjects=None if train is None else real_subjects, resamples=resamples, seed=seed)),
    }
    metrics["headline"] = headline(metrics, VOLUME_METRICS)
    metrics["timings_s"] = timings
    return metrics
