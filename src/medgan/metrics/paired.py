"""Paired (image-to-image) measures in physical units: errors, noise, noise power spectrum, lesion CNR.

Pure functions on aligned images in physical units (HU for CT, the scanner's units for MR), as NumPy arrays or
torch tensors of shape ``[N, H, W]`` or ``[N, 1, H, W]`` (a single ``[H, W]`` image is one image). No file I/O.

* ``paired_errors``: per image MAE (physical units), PSNR and SSIM inside a mask (the body, or a hole).
  PSNR = 10 log10(data_range^2 / MSE) over the mask, capped at 100 dB like ``medgan.metrics.image.psnr``.
  SSIM uses MONAI's SSIM map (Gaussian window 11 px, sigma 1.5, K1 0.01, K2 0.03, the constants of
  ``medgan.metrics.image``) on ``x - low`` with the given ``data_range``, averaged over the mask pixels where a
  whole window fits. The shift by ``low`` (the bottom of the intensity window) keeps SSIM's luminance term on
  non-negative values: on raw HU it would swing around 0 HU (water), where tissue means sit.
* ``noise_std``: sample standard deviation inside a uniform region of interest, per image.
* ``noise_power_spectrum``: the 2D NPS of ICRU Report 87 / AAPM TG-233, NPS(fx, fy) = dx dy / (Nx Ny) *
  <|FFT2(ROI - mean(ROI))|^2> over ROIs, with its radial average, mean frequency and peak frequency. Its
  integral over frequency equals the mean ROI variance (Parseval).
* ``nps_distance``: how two radial NPS curves differ in shape (relative L1 of the area-normalised curves, 0 to
  2), in texture (ratio of mean frequencies) and in magnitude (ratio of noise variances).
* ``lesion_cnr``: |mean(lesion) - mean(background)| / std(background), per image.
* ``flattest_roi``: for real data without organ masks, the square ROI of a region where the image is flattest.
* ``grouped_interval``: mean of per-image values with a 95% bootstrap interval that resamples subjects (images
  of one patient are not independent).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from scipy import ndimage

from medgan.errors import DataError
from medgan.metrics.image import PSNR_CAP_DB, SSIM_SIGMA, SSIM_WINDOW, _plain_convolutions
from medgan.utils import quiet_import

BOOTSTRAP_RESAMPLES = 2000


def as_stack(images: np.ndarray | torch.Tensor, what: str = "images") -> np.ndarray:
    """``[N, H, W]`` float64 array of ``[N, 1, H, W]``, ``[N, H, W]`` or ``[H, W]`` images (array or tensor)."""
    array = images.detach().cpu().double().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    elif array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise DataError(f"{what} must be [N, 1, H, W], [N, H, W] or [H, W], got shape {tuple(array.shape)}")
    return array.astype(np.float64 if array.dtype != bool else bool, copy=False)


def _masks(mask: np.ndarray | torch.Tensor, shape: tuple[int, ...], what: str = "mask") -> np.ndarray:
    """A boolean ``[N, H, W]`` mask for images of ``shape``; one ``[H, W]`` mask applies to every image."""
    array = as_stack(mask, what).astype(bool)
    if array.shape[1:] != shape[1:] or array.shape[0] not in (1, shape[0]):
        raise DataError(f"{what} shape {tuple(array.shape)} does not fit images of shape {tuple(shape)}")
    return np.broadcast_to(array, shape)


# --------------------------------------------------------------------------------------------------------
# errors


def paired_errors(output: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor,
                  mask: np.ndarray | torch.Tensor, data_range: float, low: float = 0.0) -> dict[str, np.ndarray]:
    """MAE, PSNR and SSIM of each output against its target, inside ``mask``.

    Args:
        output: images in physical units.
        target: the aligned targets, same shape.
        mask: where to measure, boolean (per image, or one for all).
        data_range: the intensity range (CT: the window width in HU), PSNR's peak and SSIM's L.
        low: the bottom of that range (CT: window level - width / 2), subtracted before SSIM.

    Returns:
        ``{"mae", "psnr", "ssim"}``, each ``[N]`` float64; NaN where the mask is empty (SSIM: where no mask
        pixel has a whole 11 px window inside the image).
    """
    predicted, reference = as_stack(output, "output"), as_stack(target, "target")
    if predicted.shape != reference.shape:
        raise DataError(f"output and target differ in shape: {predicted.shape} vs {reference.shape}")
    if not data_range > 0:
        raise DataError(f"data range must be positive, got {data_range!r}")
    inside = _masks(mask, reference.shape)
    counts = inside.sum((1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        difference = np.where(inside, predicted - reference, 0.0)
        mae = np.abs(difference).sum((1, 2)) / counts
        mse = (difference**2).sum((1, 2)) / counts
        # Hand-written: MONAI's PSNRMetric has no mask. Same cap as medgan.metrics.image.psnr.
        psnr = np.minimum(10.0 * np.log10(data_range**2 / np.maximum(mse, 1e-300)), PSNR_CAP_DB)
    psnr[counts == 0] = np.nan
    return {"mae": mae, "psnr": psnr, "ssim": masked_ssim(predicted, reference, inside, data_range, low)}


def masked_ssim(output: np.ndarray, target: np.ndarray, mask: np.ndarray, data_range: float,
                low: float = 0.0) -> np.ndarray:
    """Mean of MONAI's SSIM map over the mask pixels at which an 11 px window fits; ``[N]`` (NaN if none)."""
    compute_ssim_and_cs = quiet_import("monai.metrics.regression").compute_ssim_and_cs

    if min(target.shape[1:]) < SSIM_WINDOW:
        raise DataError(f"images of {target.shape[1:]} px are too small for SSIM (window {SSIM_WINDOW} px)")
    # On (x - low) / data_range with range 1 (SSIM is unchanged by the scaling, C1 and C2 scale with L^2):
    # MONAI works in float32, and its variances mu_xx - mu_x^2 of raw HU (~1e5 HU^2) lose about 0.03 HU^2,
    # which moved the SSIM of flat images by 2e-4; on the unit scale the float32 error stays below 1e-4.
    x = torch.from_numpy((output - low) / data_range).float()[:, None]
    y = torch.from_numpy((target - low) / data_range).float()[:, None]
    with _plain_convolutions():
        ssim_map, _ = compute_ssim_and_cs(x, y, spatial_dims=2, kernel_size=(SSIM_WINDOW, SSIM_WINDOW),
                                          kernel_sigma=(SSIM_SIGMA, SSIM_SIGMA), data_range=1.0)
    half = SSIM_WINDOW // 2  # the map covers the valid region: window centres at least 5 px from the border
    valid = mask[:, half:-half, half:-half]
    values = ssim_map[:, 0].double().numpy()
    counts = valid.sum((1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, np.where(valid, values, 0.0).sum((1, 2)) / counts, np.nan)


# --------------------------------------------------------------------------------------------------------
# noise


def noise_std(images: np.ndarray | torch.Tensor, roi: np.ndarray | torch.Tensor) -> np.ndarray:
    """Sample standard deviation (ddof 1) of each image inside its uniform region ``roi``; ``[N]``, NaN if < 2 px."""
    stack = as_stack(images)
    inside = _masks(roi, stack.shape, "roi")
    values = np.full(len(stack), np.nan)
    for index, (image, region) in enumerate(zip(stack, inside)):
        if region.sum() >= 2:
            values[index] = float(image[region].std(ddof=1))
    return values


def flattest_roi(image: np.ndarray | torch.Tensor, region: np.ndarray | torch.Tensor, size: int) -> tuple[int, int] | None:
    """Top-left corner of the ``size`` x ``size`` square inside ``region`` where ``image`` is flattest.

    Flattest = lowest standard deviation within the square (``uniform_filter`` of x and x^2), so the square
    holds one tissue and its spread is noise rather than anatomy. For data without organ masks.

    Returns:
        ``(row, column)``, or None when no square fits inside ``region``.
    """
    picture, inside = as_stack(image)[0], as_stack(region)[0].astype(bool)
    if size < 2 or size > min(picture.shape):
        return None
    # Squares centred at (r, c) span r - size // 2 ... r - size // 2 + size - 1 (scipy's filter origin rule).
    fits = ndimage.minimum_filter(inside.astype(np.uint8), size=size, mode="constant", cval=0).astype(bool)
    start = size // 2
    fits[:start] = fits[picture.shape[0] - size + start + 1 :] = False
    fits[:, :start] = fits[:, picture.shape[1] - size + start + 1 :] = False
    if not fits.any():
        return None
    mean = ndimage.uniform_filter(picture, size=size, mode="nearest")
    variance = ndimage.uniform_filter(picture * picture, size=size, mode="nearest") - mean * mean
    row, column = np.unravel_index(np.argmin(np.where(fits, variance, np.inf)), variance.shape)
    return int(row) - start, int(column) - start


def square_mask(shape: tuple[int, int], corner: tuple[int, int] | None, size: int) -> np.ndarray:
    """Boolean ``[H, W]`` mask of the ``size`` square at ``corner`` (all False for None)."""
    mask = np.zeros(shape, dtype=bool)
    if corner is not None:
        mask[corner[0] : corner[0] + size, corner[1] : corner[1] + size] = True
    return mask


@dataclass(frozen=True)
class NoisePowerSpectrum:
    """A 2D NPS and its radial summary.

    Attributes:
        nps: ``[S, S]`` NPS in (units^2 mm^2), zero frequency at the centre (``fftshift``).
        frequencies: ``[B]`` radial bin centres in cycles/mm (bin width 1 / (S * spacing)).
        radial: ``[B]`` radial average of ``nps`` per bin.
        mean_frequency: sum(f NPS(f)) / sum(NPS(f)) over the radial curve, cycles/mm.
        peak_frequency: the bin centre where the radial curve is largest, cycles/mm.
        variance: the integral of ``nps`` over frequency (= the mean ROI variance).
        rois: number of ROIs averaged.
    """

    nps: np.ndarray
    frequencies: np.ndarray
    radial: np.ndarray
    mean_frequency: float
    peak_frequency: float
    variance: float
    rois: int


def noise_power_spectrum(images: np.ndarray | torch.Tensor, roi_size: int,
                         positions: Sequence[Sequence[int]], spacing: tuple[float, float] = (1.0, 1.0)
                         ) -> NoisePowerSpectrum:
    """The NPS of mean-subtracted square ROIs (ICRU 87 / AAPM TG-233).

    Args:
        images: images in physical units.
        roi_size: ROI side S in pixels.
        positions: ROI top-left corners: ``(row, column)`` pairs, used on every image, or ``(image, row,
            column)`` triples for ROIs of one image each.
        spacing: (row, column) pixel size in mm.

    Returns:
        The averaged spectrum.

    Raises:
        DataError: no ROI, or an ROI outside its image.
    """
    stack = as_stack(images)
    corners = [tuple(int(v) for v in p) for p in positions]
    if corners and len(corners[0]) == 2:
        corners = [(index, row, column) for index in range(len(stack)) for row, column in corners]
    if not corners:
        raise DataError("the noise power spectrum needs at least one ROI")
    rois = []
    for index, row, column in corners:
        if not (0 <= index < len(stack) and 0 <= row <= stack.shape[1] - roi_size
                and 0 <= column <= stack.shape[2] - roi_size):
            raise DataError(f"ROI ({index}, {row}, {column}) of side {roi_size} lies outside images {stack.shape}")
        roi = stack[index, row : row + roi_size, column : column + roi_size]
        rois.append(roi - roi.mean())
    power = (np.abs(np.fft.fft2(np.stack(rois))) ** 2).mean(0)
    dy, dx = float(spacing[0]), float(spacing[1])
    nps = np.fft.fftshift(power) * dx * dy / (roi_size * roi_size)
    fy = np.fft.fftshift(np.fft.fftfreq(roi_size, dy))
    fx = np.fft.fftshift(np.fft.fftfreq(roi_size, dx))
    radius = np.hypot(*np.meshgrid(fy, fx, indexing="ij"))
    width = 1.0 / (roi_size * max(dx, dy))
    bins = np.rint(radius / width).astype(int)
    counts = np.bincount(bins.ravel())
    radial = np.bincount(bins.ravel(), nps.ravel()) / np.maximum(counts, 1)
    keep = counts > 0
    frequencies, radial = np.arange(len(counts))[keep] * width, radial[keep]
    total = radial.sum()
    mean_frequency = float((frequencies * radial).sum() / total) if total > 0 else float("nan")
    variance = float(nps.sum() / (roi_size * dy * roi_size * dx))  # sum * dfx * dfy, dfx = 1 / (S dx)
    return NoisePowerSpectrum(nps, frequencies, radial, mean_frequency, float(frequencies[np.argmax(radial)]),
                              variance, len(rois))


def nps_distance(a: NoisePowerSpectrum, b: NoisePowerSpectrum) -> dict[str, float]:
    """How the noise of ``a`` differs from the noise of ``b`` (e.g. a denoised image vs the routine dose).

    Returns:
        ``{"distance", "mean_frequency_ratio", "variance_ratio"}``: ``distance`` = sum |a/sum(a) - b/sum(b)|
        over the radial bins (0 = same texture whatever the magnitude, 2 = no overlap);
        ``mean_frequency_ratio`` = f_mean(a) / f_mean(b) (below 1: smoother, blotchier noise than ``b``);
        ``variance_ratio`` = var(a) / var(b).

    Raises:
        DataError: the spectra have different radial bins (other ROI sizes or spacings).
    """
    if a.frequencies.shape != b.frequencies.shape or not np.allclose(a.frequencies, b.frequencies):
        raise DataError("noise power spectra with different frequency bins cannot be compared")
    sum_a, sum_b = a.radial.sum(), b.radial.sum()
    distance = float(np.abs(a.radial / sum_a - b.radial / sum_b).sum()) if sum_a > 0 and sum_b > 0 else float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"distance": distance,
                "mean_frequency_ratio": float(np.float64(a.mean_frequency) / b.mean_frequency),
                "variance_ratio": float(np.float64(a.variance) / b.variance)}


# --------------------------------------------------------------------------------------------------------
# contrast and statistics


def lesion_cnr(images: np.ndarray | torch.Tensor, lesion_mask: np.ndarray | torch.Tensor,
               background_mask: np.ndarray | torch.Tensor) -> np.ndarray:
    """|mean(lesion) - mean(background)| / std(background) (ddof 1) per image; ``[N]``, NaN where undefined."""
    stack = as_stack(images)
    lesion = _masks(lesion_mask, stack.shape, "lesion mask")
    background = _masks(background_mask, stack.shape, "background mask")
    values = np.full(len(stack), np.nan)
    for index, (image, inside, around) in enumerate(zip(stack, lesion, background)):
        if inside.any() and around.sum() >= 2:
            noise = image[around].std(ddof=1)
            if noise > 0:
                values[index] = abs(image[inside].mean() - image[around].mean()) / noise
    return values


def grouped_interval(values: np.ndarray | Sequence[float], groups: Sequence[str], confidence: float = 0.95,
                     resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict:
    """Mean of per-image values with a percentile bootstrap interval that resamples groups (subjects).

    Images of one subject are correlated, so the interval resamples whole subjects with replacement and
    takes the mean over all their images. With one subject it can only resample images (``"unit"`` says which).
    Non-finite values (e.g. CNR of a slice without lesion) are left out first.

    Returns:
        ``{"mean", "ci_low", "ci_high", "n", "subjects", "unit"}`` (interval None for fewer than 2 values).
    """
    array = np.asarray(values, dtype=np.float64)
    labels = np.asarray(list(groups), dtype=object)
    if array.shape != labels.shape:
        raise DataError(f"{array.size} values but {labels.size} group labels")
    finite = np.isfinite(array)
    array, labels = array[finite], labels[finite]
    names, inverse = np.unique(labels.astype(str), return_inverse=True) if array.size else (np.array([]), None)
    result = {"mean": float(array.mean()) if array.size else None, "ci_low": None, "ci_high": None,
              "n": int(array.size), "subjects": int(len(names)), "unit": "subject" if len(names) > 1 else "image"}
    if array.size < 2:
        return result
    rng = np.random.default_rng(seed)
    if len(names) > 1:
        sums = np.bincount(inverse, array)
        counts = np.bincount(inverse).astype(np.float64)
        draws = rng.integers(0, len(names), (resamples, len(names)))
        means = sums[draws].sum(1) / counts[draws].sum(1)
    else:
        means = array[rng.integers(0, array.size, (resamples, array.size))].mean(1)
    tail = (1.0 - confidence) / 2 * 100
    result["ci_low"], result["ci_high"] = (float(v) for v in np.percentile(means, [tail, 100 - tail]))
    return result
