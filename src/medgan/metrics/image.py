"""Image-quality measures: SSIM, MS-SSIM, PSNR (MONAI), SNR, RMS contrast and CNR.

Conventions:

* SSIM-family measures and PSNR run on the display scale [0, 1] (``(x + 1) / 2`` of the model's [-1, 1]) with
  ``data_range = 1``: SSIM's luminance term assumes non-negative intensities, and PSNR then reads as
  "dB relative to the full intensity window".
* SSIM: Gaussian window 11 px, sigma 1.5, K1 0.01, K2 0.03 (Wang et al. 2004), valid region only (MONAI's
  ``compute_ssim_and_cs``; equals scikit-image's ``structural_similarity`` with ``gaussian_weights=True,
  use_sample_covariance=False``).
* MS-SSIM (Wang et al. 2003) needs the image to survive its downsamplings with the 11 px window: MONAI
  requires ``side // (scales - 1)^2 > 10``. The standard 5 scales need 176 px, so smaller images use fewer
  scales, with the first standard weights renormalised to sum to 1: 3 scales at 64 px, 4 at 128 px, 2 at 32 px
  (``ms_ssim_weights``). Values are comparable only between images of the same size.
* PSNR = 10 log10(1 / MSE), capped at 100 dB (MSE floored at 1e-10) so identical images give a finite number.
* No-reference measures use the foreground mask ``x > -0.9`` (the pipeline's foreground rule: above 5% of
  the window) unless a mask is given:
  SNR = mean / std of foreground intensities (display scale); RMS contrast = std of all pixel intensities
  (display scale); CNR = |mean_fg - mean_bg| / sqrt(var_fg + var_bg).

Unpaired sets (real vs synthetic) have no pixel correspondence, so pairwise SSIM/PSNR between a synthetic
image and "its" real image is meaningless. They are reported as distributions instead: SSIM, MS-SSIM and
PSNR over random real-synthetic pairs beside the same over random real-real pairs (a faithful generator
makes the two match), and per-image SNR/contrast/CNR distributions compared with the 1-D Wasserstein distance.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Iterator

import numpy as np
import torch
from scipy.stats import wasserstein_distance

from medgan.errors import DataError
from medgan.metrics.features import check_images
from medgan.utils import quiet_import

FOREGROUND_THRESHOLD = -0.9  # same rule as medgan.data.slicing: above low + 5% of the window
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
MS_SSIM_STANDARD_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
PSNR_CAP_DB = 100.0
CHUNK = 256  # image pairs per MONAI call


@contextlib.contextmanager
def _plain_convolutions() -> Iterator[None]:
    """Turns oneDNN off around MONAI's single-channel 11x11 convolutions: 2-3x faster on CPU for them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the flag context warns about an unrelated TF32 setting
        with torch.backends.mkldnn.flags(enabled=False):
            yield


def to_display(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] model units -> [0, 1] display scale (float32)."""
    return ((images.float() + 1.0) / 2.0).clamp(0.0, 1.0)


def ms_ssim_weights(side: int) -> tuple[float, ...]:
    """MS-SSIM scale weights for square images of ``side`` pixels (see the module notes).

    Raises:
        DataError: images smaller than 11 px cannot hold one SSIM window.
    """
    for scales in range(len(MS_SSIM_STANDARD_WEIGHTS), 0, -1):
        if side // max(1, (scales - 1) ** 2) > SSIM_WINDOW - 1:
            weights = MS_SSIM_STANDARD_WEIGHTS[:scales]
            return tuple(weight / sum(weights) for weight in weights)
    raise DataError(f"images of {side} px are too small for SSIM (window {SSIM_WINDOW} px)")


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    check_images(a, "first images")
    check_images(b, "second images")
    if a.shape != b.shape:
        raise DataError(f"paired images must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[-1] <= SSIM_WINDOW - 1 or a.shape[-2] <= SSIM_WINDOW - 1:
        raise DataError(f"images of {tuple(a.shape[-2:])} px are too small for SSIM (window {SSIM_WINDOW} px)")


def _chunked(function, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.cat([function(a[i : i + CHUNK], b[i : i + CHUNK]) for i in range(0, a.shape[0], CHUNK)])


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-pair SSIM of two aligned [N, 1, H, W] sets in [-1, 1] (MONAI); returns [N]."""
    compute_ssim_and_cs = quiet_import("monai.metrics.regression").compute_ssim_and_cs

    _check_pair(a, b)

    def one(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with _plain_convolutions():
            value, _ = compute_ssim_and_cs(to_display(x), to_display(y), spatial_dims=2,
                                           kernel_size=(SSIM_WINDOW, SSIM_WINDOW),
                                           kernel_sigma=(SSIM_SIGMA, SSIM_SIGMA), data_range=1.0)
        return value.mean((1, 2, 3))

    return _chunked(one, a, b)


def ms_ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-pair MS-SSIM of two aligned [N, 1, H, W] sets in [-1, 1] (MONAI), scales by image size; returns [N]."""
    compute_ms_ssim = quiet_import("monai.metrics.regression").compute_ms_ssim

    _check_pair(a, b)
    weights = ms_ssim_weights(min(a.shape[-2:]))

    def one(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with _plain_convolutions():
            value = compute_ms_ssim(to_display(x), to_display(y), spatial_dims=2, data_range=1.0,
                                    kernel_size=SSIM_WINDOW, kernel_sigma=SSIM_SIGMA, weights=weights)
        return value[:, 0]

    return _chunked(one, a, b)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-pair PSNR in dB (display scale, peak 1, capped at 100 dB) of aligned [N, 1, H, W] sets; returns [N]."""
    PSNRMetric = quiet_import("monai.metrics").PSNRMetric

    _check_pair(a, b)
    metric = PSNRMetric(max_val=1.0, reduction="none")
    # PSNRMetric divides by the MSE; a floor keeps identical pairs finite (the documented 100 dB cap).
    mse = ((to_display(a) - to_display(b)) ** 2).mean((1, 2, 3))
    values = metric(to_display(a), to_display(b))[:, 0]
    capped = torch.full_like(values, PSNR_CAP_DB)
    return torch.where(mse < 10 ** (-PSNR_CAP_DB / 10), capped, values.clamp(max=PSNR_CAP_DB))


def paired_quality(prediction: torch.Tensor, target: torch.Tensor) -> dict[str, dict[str, float]]:
    """SSIM, MS-SSIM and PSNR of aligned pairs (paired tasks, reconstructions): mean and std over pairs."""
    return {
        name: summarize(function(prediction, target))
        for name, function in (("ssim", ssim), ("ms_ssim", ms_ssim), ("psnr", psnr))
    }


def summarize(values: torch.Tensor | np.ndarray) -> dict[str, float]:
    """Mean and standard deviation of the finite values (and how many there were)."""
    array = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values, np.float64).ravel()
    array = array[np.isfinite(array)]
    if array.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "count": 0}
    return {"mean": float(array.mean()), "std": float(array.std()), "count": int(array.size)}


def random_pairs(count_a: int, count_b: int, pairs: int, seed: int,
                 same_set: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of ``pairs`` random pairs (a_i, b_i); within one set (``same_set``) a pair never repeats an image."""
    generator = torch.Generator().manual_seed(seed)
    first = torch.randint(count_a, (pairs,), generator=generator)
    if not same_set:
        return first, torch.randint(count_b, (pairs,), generator=generator)
    if count_a < 2:
        raise DataError("pairs within a set need at least 2 images")
    offset = torch.randint(1, count_a, (pairs,), generator=generator)  # never 0, so second != first
    return first, (first + offset) % count_a


def random_pair_scores(real: torch.Tensor, fake: torch.Tensor, pairs: int = 500,
                       seed: int = 0) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """The scored pairs behind ``random_pair_similarity``, kept for intervals (``medgan.metrics.image_intervals``).

    Returns:
        ``{metric: {"real_real": (real index, real index, values), "real_synthetic": (real index, synthetic index,
        values)}}`` for ssim, ms_ssim and psnr.
    """
    check_images(real, "real images")
    check_images(fake, "synthetic images")
    if real.shape[1:] != fake.shape[1:]:
        raise DataError(f"real and synthetic images differ in shape: {tuple(real.shape[1:])} vs "
                        f"{tuple(fake.shape[1:])}")
    within = random_pairs(len(real), len(real), pairs, seed, same_set=True)
    across = random_pairs(len(real), len(fake), pairs, seed + 1, same_set=False)
    scores = {}
    for name, function in (("ssim", ssim), ("ms_ssim", ms_ssim), ("psnr", psnr)):
        scores[name] = {
            "real_real": (within[0].numpy(), within[1].numpy(),
                          function(real[within[0]], real[within[1]]).detach().cpu().numpy()),
            "real_synthetic": (across[0].numpy(), across[1].numpy(),
                               function(real[across[0]], fake[across[1]]).detach().cpu().numpy()),
        }
    return scores


def summarize_pair_scores(scores: dict[str, dict[str, tuple]]) -> dict[str, dict]:
    """``random_pair_similarity``'s summaries of ``random_pair_scores``."""
    results = {}
    for name, sides in scores.items():
        real_real, real_fake = summarize(sides["real_real"][2]), summarize(sides["real_synthetic"][2])
        results[name] = {"real_real": real_real, "real_synthetic": real_fake,
                         "gap": real_fake["mean"] - real_real["mean"]}
    return results


def random_pair_similarity(real: torch.Tensor, fake: torch.Tensor, pairs: int = 500, seed: int = 0) -> dict[str, dict]:
    """SSIM, MS-SSIM and PSNR of random real-synthetic pairs beside random real-real pairs.

    Args:
        real: [N_r, 1, R, R] in [-1, 1] (at least 2 images).
        fake: [N_f, 1, R, R] in [-1, 1], same size as ``real``.
        pairs: random pairs per comparison.
        seed: pair sampling seed.

    Returns:
        ``{metric: {"real_real": summary, "real_synthetic": summary, "gap": real_synthetic - real_real}}``;
        a faithful generator has a gap near 0.
    """
    return summarize_pair_scores(random_pair_scores(real, fake, pairs, seed))


# --------------------------------------------------------------------------------------------------------
# no-reference measures


def foreground_mask(images: torch.Tensor, threshold: float = FOREGROUND_THRESHOLD) -> torch.Tensor:
    """Boolean [N, 1, H, W] mask of pixels above ``threshold`` (model units)."""
    return images > threshold


def _check_mask(images: torch.Tensor, mask: torch.Tensor | None) -> None:
    check_images(images)
    if mask is not None and mask.shape != images.shape:
        raise DataError(f"mask shape {tuple(mask.shape)} differs from image shape {tuple(images.shape)}")


def region_moments(images: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Per-image pixel count, mean and (population) std of the foreground, the background and the whole image.

    Display scale [0, 1]. The foreground is ``mask`` or ``x > -0.9``. Computed from per-image sums in chunks of
    images (float32 sums of at most 65,536 pixels, then float64), so 10,000-image sets need no large temporaries.

    Returns:
        ``{"fg_count", "fg_mean", "fg_std", "bg_count", "bg_mean", "bg_std", "all_mean", "all_std"}``, each [N]
        float64; means and stds are NaN for an empty region.
    """
    _check_mask(images, mask)
    sums = []
    for start in range(0, images.shape[0], CHUNK * 4):
        chunk = images[start : start + CHUNK * 4].flatten(1).float()
        inside = (chunk > FOREGROUND_THRESHOLD) if mask is None else mask[start : start + CHUNK * 4].flatten(1).bool()
        inside = inside.float()
        display = to_display(chunk)
        squared = display * display
        sums.append(torch.stack([inside.sum(1), (display * inside).sum(1), (squared * inside).sum(1),
                                 display.sum(1), squared.sum(1)], 1).double())
    count_fg, sum_fg, square_fg, sum_all, square_all = torch.cat(sums).unbind(1)
    pixels = float(images[0].numel())
    count_bg, sum_bg, square_bg = pixels - count_fg, sum_all - sum_fg, square_all - square_fg

    def moments(count: torch.Tensor, total: torch.Tensor, squares: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        safe = count.clamp_min(1.0)
        mean = total / safe
        std = (squares / safe - mean**2).clamp_min(0.0).sqrt()
        empty = count <= 0
        return mean.masked_fill(empty, float("nan")), std.masked_fill(empty, float("nan"))

    fg_mean, fg_std = moments(count_fg, sum_fg, square_fg)
    bg_mean, bg_std = moments(count_bg, sum_bg, square_bg)
    all_mean, all_std = moments(torch.full_like(sum_all, pixels), sum_all, square_all)
    return {"fg_count": count_fg, "fg_mean": fg_mean, "fg_std": fg_std, "bg_count": count_bg, "bg_mean": bg_mean,
            "bg_std": bg_std, "all_mean": all_mean, "all_std": all_std}


def _snr(moments: dict[str, torch.Tensor]) -> torch.Tensor:
    std = moments["fg_std"]
    return torch.where(std > 0, moments["fg_mean"] / std, torch.full_like(std, float("nan")))


def _cnr(moments: dict[str, torch.Tensor]) -> torch.Tensor:
    noise = torch.sqrt(moments["fg_std"] ** 2 + moments["bg_std"] ** 2)
    contrast = (moments["fg_mean"] - moments["bg_mean"]).abs()
    return torch.where(noise > 0, contrast / noise, torch.full_like(noise, float("nan")))


def snr(images: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image SNR: mean / std of foreground intensities on the display scale; NaN if undefined. [N]."""
    return _snr(region_moments(images, mask))


def rms_contrast(images: torch.Tensor) -> torch.Tensor:
    """Per-image RMS contrast: std of all pixel intensities on the display scale. [N]."""
    return region_moments(images)["all_std"]


def cnr(images: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image CNR between the foreground (mask) and the rest: |mu_fg - mu_bg| / sqrt(var_fg + var_bg). [N]."""
    return _cnr(region_moments(images, mask))


def compare_distributions(real_values: torch.Tensor | np.ndarray, fake_values: torch.Tensor | np.ndarray) -> dict:
    """Summaries of two 1-D samples and their 1-D Wasserstein distance (finite values only)."""
    real = np.asarray(real_values, np.float64).ravel()
    fake = np.asarray(fake_values, np.float64).ravel()
    real, fake = real[np.isfinite(real)], fake[np.isfinite(fake)]
    distance = float(wasserstein_distance(real, fake)) if real.size and fake.size else float("nan")
    return {"real": summarize(real), "synthetic": summarize(fake), "wasserstein": distance}


def no_reference_values(images: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-image ``{"snr", "rms_contrast", "cnr"}`` ([N] float64; NaN where undefined)."""
    moments = region_moments(images)
    return {"snr": _snr(moments).numpy(), "rms_contrast": moments["all_std"].numpy(), "cnr": _cnr(moments).numpy()}


def no_reference_comparison(real: torch.Tensor, fake: torch.Tensor,
                            values: tuple[dict, dict] | None = None) -> dict[str, dict]:
    """SNR, RMS contrast and CNR of each image, compared as real vs synthetic distributions (``values``: the
    ``no_reference_values`` of both sets, when already computed)."""
    real_values, fake_values = values or (no_reference_values(real), no_reference_values(fake))
    return {name: compare_distributions(real_values[name], fake_values[name]) for name in real_values}
