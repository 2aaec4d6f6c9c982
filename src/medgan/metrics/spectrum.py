"""Spectral texture: the radially averaged power spectrum of synthetic images against real ones, band by band.

Generators that up-sample with transposed convolutions leave periodic artefacts and excess fine-scale energy
(Odena et al. 2016, "Deconvolution and checkerboard artifacts"; Durall et al. 2020, "Watch your up-convolution");
over-smoothing generators lose it. Both are visible as grain or blur long before a feature-space distance reacts.
The measure here is the ratio of mean power per radial frequency band:

    ratio_b = mean over synthetic images of P_b(x) / mean over real images of P_b(x)

where P_b(x) is the mean of |FFT(x)|^2 / (H W) over the frequency bins of band b (the DC bin, the mean intensity,
is excluded). Bands split 0 .. Nyquist (H/2 cycles per image along an axis) into equal widths; the diagonal corners
beyond Nyquist (radius up to H/sqrt(2)), where a transposed convolution's checkerboard sits, join the last band.
A ratio of 1 in every band means the same amount of detail at every scale; 1.45 in the last band means 45% more
fine-scale energy than the real images (grain); below 1, blur. Images are compared at their own resolution in model
units ([-1, 1]), so the ratio does not depend on the display window.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from medgan.errors import DataError
from medgan.metrics.bootstrap import RESAMPLES, bootstrap

BANDS = 8  # radial bands between 0 and Nyquist (4 cycles each at 64 px)
TOLERANCE = 0.15  # |ratio - 1| within this in every band counts as matching real texture


def band_edges(size: int, bands: int = BANDS) -> list[tuple[float, float]]:
    """(low, high) edges of each band in cycles per image for images of side ``size``."""
    width = size / 2.0 / bands
    return [(band * width, (band + 1) * width) for band in range(bands)]


def _band_weights(height: int, width: int, bands: int) -> torch.Tensor:
    """[H * (W // 2 + 1), bands] weights averaging the rfft2 bins of each band, counting the bins the half-spectrum
    stands for twice (their mirror images)."""
    rows = torch.fft.fftfreq(height, dtype=torch.float64).abs()[:, None] * 2.0  # 1.0 = Nyquist
    columns = torch.fft.rfftfreq(width, dtype=torch.float64)[None, :] * 2.0
    radius = torch.sqrt(rows**2 + columns**2).flatten()
    index = torch.clamp((radius * bands).long(), max=bands - 1)
    members = torch.nn.functional.one_hot(index, bands).double()
    mirrored = torch.full((height, width // 2 + 1), 2.0, dtype=torch.float64)
    mirrored[:, 0] = 1.0  # the first rfft column has no mirror
    if width % 2 == 0:
        mirrored[:, -1] = 1.0  # nor has the Nyquist column of an even width
    members = members * mirrored.flatten()[:, None]
    members[0] = 0.0  # DC: mean intensity, not texture
    return members / members.sum(0, keepdim=True).clamp_min(1e-12)


def band_power(images: torch.Tensor, bands: int = BANDS, batch: int = 256) -> torch.Tensor:
    """Mean power per radial frequency band of each image.

    Args:
        images: [N, 1, H, W] in [-1, 1].
        bands: bands between 0 and Nyquist.
        batch: images per FFT (results do not depend on it).

    Returns:
        [N, bands] float64.
    """
    if images.ndim != 4 or images.shape[1] != 1:
        raise DataError(f"images must be [N, 1, H, W], got {tuple(images.shape)}")
    if min(images.shape[-2:]) < 2 * bands:
        raise DataError(f"images of {tuple(images.shape[-2:])} px are too small for {bands} frequency bands")
    height, width = images.shape[-2:]
    weights = _band_weights(height, width, bands)
    powers = []
    for start in range(0, images.shape[0], batch):
        chunk = images[start:start + batch, 0].detach().cpu().double()
        spectrum = torch.fft.rfft2(chunk).abs() ** 2 / (height * width)  # [n, H, W//2+1]
        powers.append(spectrum.flatten(1) @ weights)
    return torch.cat(powers)


def spectrum_ratio(real: torch.Tensor, fake: torch.Tensor, bands: int = BANDS, resamples: int = RESAMPLES,
                   seed: int = 0, real_groups: Sequence | None = None) -> dict:
    """Synthetic-to-real power ratio per band, with bootstrap 95% intervals.

    Args:
        real: [N_r, 1, H, W] in [-1, 1].
        fake: [N_f, 1, H, W] in [-1, 1], the same size.
        bands: radial bands between 0 and Nyquist.
        resamples: bootstrap resamples.
        seed: resampling seed.
        real_groups: subject label per real image (subjects are resampled).

    Returns:
        ``{"bands": [{"cycles": [low, high], "ratio", "low", "high"}], "worst_band", "max_deviation",
        "high_frequency_ratio", "within_tolerance", "tolerance", "real_power", "synthetic_power", ...}``;
        ``max_deviation`` is the largest |ratio - 1|; ``within_tolerance`` is True when every band's ratio is within
        ``TOLERANCE`` of 1. ``max_deviation_interval`` and ``high_frequency_ratio_interval`` are their intervals
        (percentile; the scheme of ``medgan.metrics.catalog``).
    """
    if real.shape[-2:] != fake.shape[-2:]:
        raise DataError(f"real and synthetic images differ in size: {tuple(real.shape[-2:])} vs {tuple(fake.shape[-2:])}")
    real_power, fake_power = band_power(real, bands).numpy(), band_power(fake, bands).numpy()

    def ratio(real_index: np.ndarray, fake_index: np.ndarray) -> np.ndarray:
        ratios = fake_power[fake_index].mean(0) / np.maximum(real_power[real_index].mean(0), 1e-20)
        return np.append(ratios, np.abs(ratios - 1.0).max())  # the last element: the largest band deviation

    result = bootstrap(ratio, len(real_power), len(fake_power), resamples=resamples, seed=seed,
                       real_groups=real_groups)
    values = np.asarray(result["value"])[:bands]
    deviation = np.abs(values - 1.0)
    edges = band_edges(real.shape[-1], bands)

    def interval_of(index: int) -> dict:  # the sibling ``<key>_interval`` of medgan.metrics.catalog
        return {"low": result["low"][index], "high": result["high"][index], "confidence": result["confidence"],
                "method": result["method"], "scheme": result["scheme"], "resamples": resamples,
                "resampled": result["resampled"], "n_real": result["n_real"], "n_fake": result["n_fake"]}

    return {
        "bands": [{"cycles": [round(low, 2), round(high, 2)], "ratio": float(values[band]),
                   "low": result["low"][band], "high": result["high"][band]} for band, (low, high) in enumerate(edges)],
        "worst_band": int(deviation.argmax()),
        "max_deviation": float(deviation.max()),
        "max_deviation_interval": interval_of(bands),
        "high_frequency_ratio": float(values[-1]),
        "high_frequency_ratio_interval": interval_of(bands - 1),
        "within_tolerance": bool(deviation.max() <= TOLERANCE),
        "tolerance": TOLERANCE,
        "real_power": [float(value) for value in real_power.mean(0)],
        "synthetic_power": [float(value) for value in fake_power.mean(0)],
        "confidence": result["confidence"], "resamples": resamples, "resampled": result["resampled"],
        "n_real": result["n_real"], "n_fake": result["n_fake"],
    }
