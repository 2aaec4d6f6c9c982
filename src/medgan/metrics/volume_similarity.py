"""3D similarity of volumes: SSIM and MS-SSIM in 3D, diversity between volumes, and the 3D memorization audit.

Volumes are ``[N, 1, D, H, W]`` tensors in [-1, 1]: D the slice axis (z, superior), H the image rows (y, posterior),
W the columns (x, to the patient's left), the layout of a stack of axial slices (``xyz_to_dhw`` turns a NIfTI-style
``[X, Y, Z]`` array into it).

* SSIM in 3D: the constants of ``medgan.metrics.image`` (Gaussian window 11 voxels, sigma 1.5, K1 0.01, K2 0.03) on
  the display scale [0, 1] with data range 1, averaged over the valid region (window centres at least 5 voxels from
  every face), as MONAI's ``compute_ssim_and_cs(spatial_dims=3)``. MS-SSIM in 3D as MONAI's ``compute_ms_ssim``: the
  standard weights cut to the scales a volume holds (``volume_scale_weights``: the window must fit at the coarsest
  scale, on every axis) and renormalised; one scale is plain SSIM. 32^3 volumes get 2 scales, 64^3 3; a volume of 16
  slices gets SSIM only. Values are comparable only between volumes of one shape.
* ``volume_diversity``: mean 3D MS-SSIM over pairs of distinct synthetic volumes beside the same over real volumes
  (``medgan.metrics.diversity``'s relative diversity, duplicate pairs and collapse rule), with 95% intervals that
  resample volumes (real ones by subject when subjects are given) and re-weight their already scored pairs.

The 3D memorization audit (``medgan.metrics.volume_memorization``) scores pairs with the same machinery.

Hand-written, not MONAI's ``compute_ssim_and_cs``: MONAI filters with a dense 11^3 kernel, 1,331 multiply-adds per
voxel and map, and recomputes every map for every pair. The Gaussian window is separable, so three 1-D passes (33
multiply-adds) give the same values, and each volume's own maps are computed once (``VolumeMoments``); only the
cross term is filtered per pair. Measured on one thread: 3.7 ms against 33 ms per pair at 32^3, 88 against 480 ms
at 64^3, before the per-volume reuse; ``tests/test_metrics_volumes.py`` checks the values equal MONAI's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from medgan.errors import DataError
from medgan.metrics.bootstrap import RESAMPLES
from medgan.metrics.catalog import clipped
from medgan.metrics.diversity import PairValues, diversity_of_pairs
from medgan.metrics.image import FOREGROUND_THRESHOLD, MS_SSIM_STANDARD_WEIGHTS, SSIM_SIGMA, SSIM_WINDOW, to_display
from medgan.metrics.intervals import MIN_SUBJECTS, Resampling, diversity_intervals, real_resampling

PAIR_BLOCK = 8  # volume pairs per filtering pass (bounds temporary memory: 8 maps of one volume's size)
DIVERSITY_PAIRS = 200  # pairs per set; every distinct pair when a set has fewer


def xyz_to_dhw(array: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A NIfTI-style ``[X, Y, Z]`` array (the phantom's, ``medgan.data``'s) as a ``[1, D, H, W]`` float32 tensor."""
    tensor = torch.as_tensor(np.asarray(array, dtype=np.float32))
    if tensor.ndim != 3:
        raise DataError(f"a volume must be [X, Y, Z], got shape {tuple(tensor.shape)}")
    return tensor.permute(2, 1, 0).contiguous()[None]


def check_volumes(volumes: torch.Tensor, what: str = "volumes") -> None:
    """Raises DataError unless ``volumes`` is a non-empty, finite ``[N, 1, D, H, W]`` tensor."""
    if not isinstance(volumes, torch.Tensor):
        raise DataError(f"{what} must be a torch.Tensor, got {type(volumes).__name__}")
    if volumes.ndim != 5 or volumes.shape[1] != 1:
        raise DataError(f"{what} must be [N, 1, D, H, W], got shape {tuple(volumes.shape)}")
    if volumes.shape[0] == 0:
        raise DataError(f"{what}: empty set (0 volumes)")
    if not (torch.isfinite(volumes.amax()) and torch.isfinite(volumes.amin())):
        raise DataError(f"{what} contain NaN or Inf values")


def check_same_shape(first: torch.Tensor, second: torch.Tensor, what: str) -> None:
    """Raises DataError when two volume sets differ in shape (past the count)."""
    if first.shape[1:] != second.shape[1:]:
        raise DataError(f"{what} differ in shape: {tuple(first.shape[1:])} vs {tuple(second.shape[1:])}")


def volume_scale_weights(shape: Sequence[int]) -> tuple[float, ...]:
    """MS-SSIM weights for volumes of spatial ``shape`` (D, H, W): the most scales (up to 5) at which the window
    fits on every axis at the coarsest scale and MONAI's own size check passes; the first standard weights,
    renormalised. One weight is plain SSIM.

    Raises:
        DataError: a side under 11 voxels (no SSIM window fits).
    """
    for scales in range(len(MS_SSIM_STANDARD_WEIGHTS), 0, -1):
        # MONAI checks side // (scales - 1)^2 > 10, which lets 2 scales through at 16 voxels although the second
        # scale (8) cannot hold the window; both conditions are kept so that the values equal compute_ms_ssim's.
        if all(side // 2 ** (scales - 1) >= SSIM_WINDOW and side // max(1, (scales - 1) ** 2) > SSIM_WINDOW - 1
               for side in shape):
            weights = MS_SSIM_STANDARD_WEIGHTS[:scales]
            return tuple(weight / sum(weights) for weight in weights)
    raise DataError(f"volumes of {tuple(shape)} voxels are too small for SSIM (window {SSIM_WINDOW} voxels)")


def _window() -> torch.Tensor:
    """MONAI's 1-D Gaussian SSIM window (``compute_ssim_and_cs``'s kernel is its outer product): 11 taps, sum 1."""
    offsets = torch.arange((1 - SSIM_WINDOW) / 2, (1 + SSIM_WINDOW) / 2, 1.0)
    weights = torch.exp(-((offsets / SSIM_SIGMA) ** 2) / 2)
    return weights / weights.sum()


def gaussian_filter(volumes: torch.Tensor) -> torch.Tensor:
    """Valid-region Gaussian filtering of ``[N, 1, D, H, W]`` -> ``[N, 1, D - 10, H - 10, W - 10]`` (three 1-D passes)."""
    window = _window().to(volumes)
    for axis in range(3):
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = SSIM_WINDOW
        volumes = F.conv3d(volumes, window.view(shape))
    return volumes


def ssim_map(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The 3D SSIM and contrast-structure maps of aligned ``[N, 1, D, H, W]`` volumes over the valid region (float32),
    equal to MONAI's ``compute_ssim_and_cs(spatial_dims=3)``."""
    x, y = x.float(), y.float()
    means = gaussian_filter(torch.cat([x, y, x * x, y * y, x * y], 0)).split(x.shape[0])
    return _ssim_from_moments(means[0], means[1], means[2], means[3], means[4], data_range)


def _ssim_from_moments(mean_x: torch.Tensor, mean_y: torch.Tensor, second_x: torch.Tensor, second_y: torch.Tensor,
                       cross: torch.Tensor, data_range: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    variance_x, variance_y = second_x - mean_x * mean_x, second_y - mean_y * mean_y
    covariance = cross - mean_x * mean_y
    contrast = (2 * covariance + c2) / (variance_x + variance_y + c2)
    luminance = (2 * mean_x * mean_y + c1) / (mean_x * mean_x + mean_y * mean_y + c1)
    return luminance * contrast, contrast


class VolumeMoments:
    """Each volume's display-scale voxels and Gaussian local mean and second moment at every MS-SSIM scale, computed
    once, so that a pair costs one filtering (of the cross term) per scale.

    Args:
        volumes: [N, 1, D, H, W] in [-1, 1].
        scales: MS-SSIM scales (1: SSIM).
        clean: set voxels below the foreground threshold to -1 first (the memorization audit's rule).
    """

    def __init__(self, volumes: torch.Tensor, scales: int = 1, clean: bool = False) -> None:
        if clean:
            volumes = torch.where(volumes < FOREGROUND_THRESHOLD, torch.full_like(volumes, -1.0), volumes)
        current = to_display(volumes)
        self.levels: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for scale in range(scales):
            if scale:
                current = F.avg_pool3d(current, kernel_size=2)
            self.levels.append((current, gaussian_filter(current), gaussian_filter(current * current)))


def pair_similarity(first: VolumeMoments, second: VolumeMoments, first_index: torch.Tensor,
                    second_index: torch.Tensor, weights: Sequence[float] = (1.0,)) -> np.ndarray:
    """3D SSIM (one weight) or MS-SSIM (MONAI's rule: relu'd mean contrast-structure at the finer scales, relu'd mean
    SSIM at the coarsest, raised to the weights and multiplied) of volume pairs ``(first[i], second[j])``; ``[P]``."""
    values = []
    for start in range(0, len(first_index), PAIR_BLOCK):
        rows, columns = first_index[start:start + PAIR_BLOCK], second_index[start:start + PAIR_BLOCK]
        product = torch.ones(len(rows), dtype=torch.float64)
        for scale, weight in enumerate(weights):
            images_a, mean_a, second_a = (level[rows] for level in first.levels[scale])
            images_b, mean_b, second_b = (level[columns] for level in second.levels[scale])
            ssim, contrast = _ssim_from_moments(mean_a, mean_b, second_a, second_b, gaussian_filter(images_a * images_b))
            last = scale == len(weights) - 1
            value = (ssim if last else contrast).flatten(1).mean(1).double()
            product *= value if len(weights) == 1 else value.clamp_min(0.0) ** weight
        values.append(product)
    return torch.cat(values).numpy() if values else np.zeros(0)


def volume_ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-pair 3D SSIM of two aligned ``[N, 1, D, H, W]`` sets in [-1, 1] (display scale); returns ``[N]``."""
    _checked_pair(a, b)
    index = torch.arange(a.shape[0])
    return torch.from_numpy(pair_similarity(VolumeMoments(a), VolumeMoments(b), index, index))


def volume_ms_ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-pair 3D MS-SSIM of two aligned ``[N, 1, D, H, W]`` sets in [-1, 1], scales by volume size; ``[N]``."""
    weights = _checked_pair(a, b)
    index = torch.arange(a.shape[0])
    return torch.from_numpy(pair_similarity(VolumeMoments(a, len(weights)), VolumeMoments(b, len(weights)), index,
                                            index, weights))


def _checked_pair(a: torch.Tensor, b: torch.Tensor) -> tuple[float, ...]:
    check_volumes(a, "first volumes")
    check_volumes(b, "second volumes")
    if a.shape != b.shape:
        raise DataError(f"paired volumes must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return volume_scale_weights(a.shape[2:])


# --------------------------------------------------------------------------------------------------------
# diversity


def _pairs(count: int, pairs: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every distinct unordered pair of ``count`` volumes when there are at most ``pairs``, else random distinct
    pairs (``medgan.metrics.image.random_pairs``' rule)."""
    if count < 2:
        raise DataError(f"diversity needs at least 2 volumes, got {count}")
    if count * (count - 1) // 2 <= pairs:
        first, second = torch.triu_indices(count, count, offset=1)
        return first, second
    generator = torch.Generator().manual_seed(seed)
    first = torch.randint(count, (pairs,), generator=generator)
    return first, (first + torch.randint(1, count, (pairs,), generator=generator)) % count


def volume_pair_values(volumes: torch.Tensor, pairs: int = DIVERSITY_PAIRS, seed: int = 0) -> PairValues:
    """3D MS-SSIM of pairs of distinct volumes of one set, kept for intervals (``medgan.metrics.diversity``)."""
    check_volumes(volumes)
    weights = volume_scale_weights(volumes.shape[2:])
    first, second = _pairs(volumes.shape[0], pairs, seed)
    moments = VolumeMoments(volumes, len(weights))
    return PairValues(first.numpy(), second.numpy(), pair_similarity(moments, moments, first, second, weights),
                      int(volumes.shape[0]))


def volume_diversity(real: torch.Tensor, fake: torch.Tensor, pairs: int = DIVERSITY_PAIRS, seed: int = 0,
                     real_subjects: Sequence | None = None, resamples: int = RESAMPLES) -> dict[str, Any]:
    """Pairwise 3D MS-SSIM among synthetic volumes beside the same among real volumes, with 95% intervals.

    Args:
        real: [N_r, 1, D, H, W] in [-1, 1] (at least 2 volumes).
        fake: [N_f, 1, D, H, W], same shape.
        pairs: pairs per set (all distinct pairs when a set has fewer).
        seed: pair sampling seed (the synthetic set's pairs use ``seed + 1``) and resampling seed.
        real_subjects: one subject label per real volume: real volumes are resampled by subject (with at least 5
            subjects, ``medgan.metrics.intervals.real_resampling``); None resamples volumes.
        resamples: bootstrap resamples per interval.

    Returns:
        ``{"measure" ("ms_ssim" or "ssim" when the volumes hold one scale), "scales", "real", "synthetic"`` (mean,
        std, count of pairs, ``duplicate_fraction``: share of pairs >= 0.95, each number with a ``_interval``),
        ``"relative_diversity"`` = (1 - synthetic mean) / (1 - real mean) ``(+ _interval), "duplicate_excess",
        "collapse", "collapse_rule", "resampled"}``.
    """
    check_volumes(real, "real volumes")
    check_volumes(fake, "synthetic volumes")
    check_same_shape(real, fake, "real and synthetic volumes")
    real_pairs, fake_pairs = volume_pair_values(real, pairs, seed), volume_pair_values(fake, pairs, seed + 1)
    found = diversity_of_pairs(real_pairs, fake_pairs)
    scales = len(volume_scale_weights(real.shape[2:]))
    result: dict[str, Any] = {"measure": "ms_ssim" if scales > 1 else "ssim", "scales": scales,
                              "real": found.pop("real_ms_ssim"), "synthetic": found.pop("synthetic_ms_ssim"), **found}
    how = volume_resampling(real_subjects, real.shape[0], resamples, seed)
    result["resampled"] = "subjects" if how.real_groups is not None else "volumes"
    for key, found_entry in diversity_intervals(real_pairs, fake_pairs, how).items():
        # the 2D section's keys ("diversity.synthetic_ms_ssim.mean") -> this dict's ("synthetic.mean")
        *parents, leaf = key.removeprefix("diversity.").replace("_ms_ssim", "").split(".")
        node = result
        for part in parents:
            node = node[part]
        floor = -1.0 if leaf == "mean" and scales == 1 else 0.0  # SSIM can be negative; relu'd MS-SSIM cannot
        node[f"{leaf}_interval"] = clipped({**found_entry, "resampled": result["resampled"]}, floor,
                                           None if leaf == "relative_diversity" else 1.0)
    result["resampling_note"] = how.note
    return result


def volume_resampling(subjects: Sequence | None, count: int, resamples: int, seed: int) -> Resampling:
    """Real volumes resampled one by one (each volume one patient) unless subject labels say several volumes share a
    patient; then by subject where there are at least ``MIN_SUBJECTS`` (``medgan.metrics.intervals.real_resampling``),
    else volumes one by one with a note."""
    if subjects is None:
        return Resampling(resamples, seed, None, "")
    how = real_resampling(subjects, count, resamples, seed)
    if how.real_groups is None:
        found = len({str(subject) for subject in subjects})
        return Resampling(resamples, seed, None, f"the real volumes come from {found} subject(s) (fewer than "
                          f"{MIN_SUBJECTS}): volumes are resampled one by one, so the intervals understate the "
                          "spread between patients")
    return how
