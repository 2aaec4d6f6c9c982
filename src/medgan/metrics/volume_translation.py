"""Volumetric translation measures in physical units: 3D MAE, PSNR and SSIM, and through-plane consistency.

Pure functions on aligned output and truth volumes in physical units (HU for CT, the scanner's units for MR: model
outputs go through the data's ``IntensityMapping.to_physical`` first, as for ``medgan.metrics.paired``), as NumPy
arrays or torch tensors ``[N, 1, D, H, W]``, ``[N, D, H, W]`` or one ``[D, H, W]``, slices along D unless ``axis``
names another spatial axis. Each volume is measured on its own, one volume at a time (memory stays at a few copies
of one volume), optionally inside a mask (the body, a hole).

* **MAE** (physical units) and **PSNR** = 10 log10(data_range^2 / MSE) over the mask voxels, capped at 100 dB as
  ``medgan.metrics.paired.paired_errors``.
* **SSIM in 3D**: the 3D SSIM map (``medgan.metrics.volume_similarity.ssim_map``: Gaussian window 11 voxels, sigma
  1.5, equal to MONAI's ``compute_ssim_and_cs(spatial_dims=3)``) of ``(x - low) / data_range`` (``paired``'s reasons:
  SSIM's luminance term needs non-negative values, float32 needs unit scale), averaged over the mask voxels whose
  whole window lies inside the volume.
* **Through-plane consistency**: the MAE of the difference between adjacent slices, output against truth,
  ``mean |(O[z+1] - O[z]) - (T[z+1] - T[z])|`` over voxel pairs with both voxels in the mask, in physical units.
  It is the mean |e[z+1] - e[z]| of the error e = O - T, so it scores how the error *changes* from slice to slice:
  a model translating slice by slice makes errors independent along z (flicker) and scores about sqrt(2) times its
  MAE (E|e1 - e2| = sqrt(2) E|e| for independent Gaussian errors); a model whose error is the same on neighbouring
  slices scores near 0 at the same MAE. ``through_plane_ratio`` (through-plane MAE / MAE) reads that way: about
  1.4 for slice-wise flicker, 0 for an error constant along z.

Summaries weigh each volume once: the mean over volumes with a 95% percentile bootstrap interval that resamples
subjects (``medgan.metrics.paired.grouped_interval``; each volume is its own subject unless labels say otherwise).
``paired_difference`` compares two methods on the same truth volumes through per-volume differences, so the
volumes' own difficulty, common to both, cancels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from medgan.errors import DataError
from medgan.metrics.image import PSNR_CAP_DB, SSIM_WINDOW
from medgan.metrics.paired import BOOTSTRAP_RESAMPLES, grouped_interval
from medgan.metrics.volume_similarity import ssim_map

MEASURES = ("mae", "psnr", "ssim", "through_plane_mae", "through_plane_ratio")


def as_volume_stack(volumes: np.ndarray | torch.Tensor, what: str = "volumes") -> np.ndarray:
    """``[N, D, H, W]`` array of ``[N, 1, D, H, W]``, ``[N, D, H, W]`` or ``[D, H, W]`` volumes (dtype kept)."""
    array = volumes.detach().cpu().numpy() if isinstance(volumes, torch.Tensor) else np.asarray(volumes)
    if array.ndim == 5 and array.shape[1] == 1:
        array = array[:, 0]
    elif array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or 0 in array.shape:
        raise DataError(f"{what} must be [N, 1, D, H, W], [N, D, H, W] or [D, H, W], got shape {tuple(array.shape)}")
    return array


def _mask_stack(mask: np.ndarray | torch.Tensor | None, shape: tuple[int, ...]) -> np.ndarray:
    """A boolean ``[N or 1, D, H, W]`` mask for volumes of ``shape`` (all True for None)."""
    if mask is None:
        return np.ones((1, *shape[1:]), dtype=bool)
    array = as_volume_stack(mask, "mask").astype(bool)
    if array.shape[1:] != shape[1:] or array.shape[0] not in (1, shape[0]):
        raise DataError(f"mask shape {tuple(array.shape)} does not fit volumes of shape {tuple(shape)}")
    return array


def through_plane_error(output: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """``mean |(O[z+1] - O[z]) - (T[z+1] - T[z])|`` over adjacent voxel pairs inside ``mask`` (slices along axis 0
    of ``[D, H, W]`` arrays); NaN where no pair is inside."""
    error = np.asarray(output, np.float64) - np.asarray(target, np.float64)
    change = np.abs(error[1:] - error[:-1])
    inside = np.ones(change.shape, dtype=bool) if mask is None else np.asarray(mask[1:] & mask[:-1], bool)
    count = inside.sum()
    return float(change[inside].sum() / count) if count else float("nan")


def volume_errors(output: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor, data_range: float,
                  low: float = 0.0, mask: np.ndarray | torch.Tensor | None = None,
                  axis: int = 0) -> dict[str, np.ndarray]:
    """Per-volume MAE, PSNR, 3D SSIM and through-plane consistency of each output against its truth.

    Args:
        output: volumes in physical units.
        target: the aligned truth volumes, same shape.
        data_range: the intensity range (CT: the window width in HU), PSNR's peak and SSIM's L.
        low: the bottom of that range (CT: window level - width / 2), subtracted before SSIM.
        mask: where to measure, boolean (per volume, or one for all); None: everywhere.
        axis: the slice axis among the spatial axes (0: D, the axial slices of a ``[D, H, W]`` stack).

    Returns:
        ``{"mae", "psnr", "ssim", "through_plane_mae", "through_plane_ratio"}``, each ``[N]`` float64; NaN where
        the mask is empty (SSIM: where no mask voxel has a whole window inside the volume).

    Raises:
        DataError: shapes that differ, a bad mask, a side under 11 voxels (SSIM), a data range that is not positive.
    """
    predicted, reference = as_volume_stack(output, "output"), as_volume_stack(target, "target")
    if predicted.shape != reference.shape:
        raise DataError(f"output and target differ in shape: {predicted.shape} vs {reference.shape}")
    if not data_range > 0:
        raise DataError(f"data range must be positive, got {data_range!r}")
    if axis not in (0, 1, 2):
        raise DataError(f"the slice axis must be 0, 1 or 2 (D, H, W), got {axis!r}")
    if min(reference.shape[1:]) < SSIM_WINDOW:
        raise DataError(f"volumes of {reference.shape[1:]} voxels are too small for SSIM (window {SSIM_WINDOW})")
    masks = _mask_stack(mask, reference.shape)
    values = {name: np.full(reference.shape[0], np.nan) for name in MEASURES}
    for index in range(reference.shape[0]):
        inside = masks[index if masks.shape[0] > 1 else 0]
        out, truth = predicted[index].astype(np.float64), reference[index].astype(np.float64)
        count = inside.sum()
        if count == 0:
            continue
        error = np.where(inside, out - truth, 0.0)
        mae = float(np.abs(error).sum() / count)
        # Hand-written: MONAI's PSNRMetric has no mask. Same cap as medgan.metrics.image.psnr.
        mse = float((error**2).sum() / count)
        values["mae"][index] = mae
        values["psnr"][index] = min(10.0 * np.log10(data_range**2 / max(mse, 1e-300)), PSNR_CAP_DB)
        values["ssim"][index] = _masked_ssim(out, truth, inside, data_range, low)
        through = through_plane_error(np.moveaxis(out, axis, 0), np.moveaxis(truth, axis, 0),
                                      np.moveaxis(inside, axis, 0))
        values["through_plane_mae"][index] = through
        values["through_plane_ratio"][index] = through / mae if mae > 0 else np.nan
    return values


def _masked_ssim(output: np.ndarray, target: np.ndarray, mask: np.ndarray, data_range: float, low: float) -> float:
    """Mean of the 3D SSIM map over the mask voxels at which a whole window fits; NaN if none."""
    x = torch.from_numpy((output - low) / data_range).float()[None, None]
    y = torch.from_numpy((target - low) / data_range).float()[None, None]
    values, _ = ssim_map(x, y)
    half = SSIM_WINDOW // 2  # the map covers window centres at least 5 voxels inside every face
    valid = mask[half:-half, half:-half, half:-half]
    count = valid.sum()
    return float(values[0, 0].double().numpy()[valid].sum() / count) if count else float("nan")


def _interval(values: np.ndarray, groups: Sequence[str], resamples: int, seed: int,
              confidence: float = 0.95) -> tuple[float | None, dict[str, Any] | None]:
    """Mean over volumes and its ``_interval`` entry (subjects resampled: ``groups``), None where undefined."""
    found = grouped_interval(values, groups, confidence, resamples, seed)
    by_volume = found["unit"] == "image" or found["subjects"] == found["n"]  # one volume per subject, or one subject
    if found["ci_low"] is None:
        return found["mean"], None
    return found["mean"], {"low": found["ci_low"], "high": found["ci_high"], "confidence": confidence,
                           "method": "percentile", "scheme": "bootstrap", "resamples": resamples,
                           "resampled": "volumes" if by_volume else "subjects",
                           "n_volumes": found["n"], "n_subjects": found["subjects"]}


def _groups(subjects: Sequence | None, count: int) -> list[str]:
    if subjects is None:
        return [str(index) for index in range(count)]
    labels = [str(subject) for subject in subjects]
    if len(labels) != count:
        raise DataError(f"subject labels: {len(labels)} labels for {count} volumes")
    return labels


def volume_translation_metrics(output: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor,
                               data_range: float, low: float = 0.0, mask: np.ndarray | torch.Tensor | None = None,
                               subjects: Sequence | None = None, unit: str = "a.u.", axis: int = 0,
                               resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict[str, Any]:
    """3D MAE, PSNR, SSIM and through-plane consistency of output volumes against the truth, with 95% intervals.

    Args:
        output, target, data_range, low, mask, axis: as ``volume_errors``.
        subjects: one subject label per volume (volumes of one patient are resampled together); None: each volume
            is its own subject.
        unit: the physical unit of MAE and through-plane MAE (``"HU"`` for CT), recorded in the result.
        resamples: bootstrap resamples per interval.
        seed: resampling seed.

    Returns:
        ``{"mae", "psnr", "ssim", "through_plane_mae", "through_plane_ratio"`` (means over volumes, each with a
        ``_interval`` entry from 2 volumes on), ``"per_volume"`` (the ``volume_errors`` lists), ``"unit",
        "data_range", "low", "n_volumes", "slice_axis"}``.
    """
    values = volume_errors(output, target, data_range, low, mask, axis)
    count = len(values["mae"])
    groups = _groups(subjects, count)
    result: dict[str, Any] = {}
    for name in MEASURES:
        result[name], found = _interval(values[name], groups, resamples, seed)
        if found is not None:
            result[f"{name}_interval"] = found
    result.update(per_volume={name: [float(value) for value in values[name]] for name in MEASURES}, unit=unit,
                  data_range=float(data_range), low=float(low), n_volumes=count, slice_axis="DHW"[axis])
    return result


def paired_difference(values_a: Sequence[float] | np.ndarray, values_b: Sequence[float] | np.ndarray,
                      subjects: Sequence | None = None, resamples: int = BOOTSTRAP_RESAMPLES,
                      seed: int = 0) -> dict[str, Any]:
    """Mean per-volume difference ``a - b`` of one measure of two methods on the same truth volumes, with its 95%
    interval over subjects (e.g. through-plane MAE of a 3D model minus a slice-wise 2D model's).

    Returns:
        ``{"difference", "difference_interval", "a", "b", "separated"}``; ``separated`` is True when the interval
        excludes 0 (the methods differ beyond the sampling of volumes).
    """
    first, second = np.asarray(values_a, np.float64), np.asarray(values_b, np.float64)
    if first.shape != second.shape or first.ndim != 1:
        raise DataError(f"paired values must be two equal-length lists, got shapes {first.shape} and {second.shape}")
    groups = _groups(subjects, len(first))
    difference, found = _interval(first - second, groups, resamples, seed)
    separated = found is not None and (found["low"] > 0 or found["high"] < 0)
    return {"difference": difference, "difference_interval": found, "a": float(np.nanmean(first)),
            "b": float(np.nanmean(second)), "separated": bool(separated)}
