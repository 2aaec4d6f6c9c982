"""Intensity fidelity in physical units: how well synthetic intensities match real ones (HU for CT).

Both sets are mapped back to physical units with the data set's ``IntensityMapping`` (``to_physical``), and
their pixel-intensity histograms are compared with the 1-D Wasserstein (earth mover's) distance, in the
physical unit: "how far, on average, intensity mass must move". Two versions are reported:

* all pixels (background included: a generator that paints the background grey is penalised);
* foreground pixels only (model value above -0.9, the pipeline's foreground rule), which isolates tissue
  intensities (e.g. liver HU) from the amount of background.

Histograms use 400 bins over the mapping's window [low, high] (1 HU for a 400 HU window); values outside it
cannot occur because the model's output is clipped to [-1, 1]. The bin edges include -0.9, so the foreground
histogram is the tail of the all-pixel one (one pass over the pixels). The distance is exact for the binned data
(``scipy.stats.wasserstein_distance`` on bin centres weighted by counts): its resolution is one bin.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import wasserstein_distance

from medgan.metrics.features import check_images
from medgan.metrics.image import FOREGROUND_THRESHOLD

BINS = 400  # bins over [-1, 1]: width 0.005, so the foreground threshold -0.9 is the lower edge of bin 20
FOREGROUND_BIN = round((FOREGROUND_THRESHOLD + 1.0) / 2.0 * BINS)
CHUNK = 1024  # images per histogram pass


def unit_histogram(images: torch.Tensor, bins: int = BINS) -> np.ndarray:
    """Pixel counts of ``images`` ([-1, 1]) in ``bins`` equal bins over [-1, 1], computed in chunks."""
    counts = torch.zeros(bins, dtype=torch.float64)
    for start in range(0, images.shape[0], CHUNK):
        values = images[start : start + CHUNK].detach().float().flatten()
        counts += torch.histc(values.clamp(-1.0, 1.0), bins=bins, min=-1.0, max=1.0).double()
    return counts.numpy()


def image_histograms(images: torch.Tensor, bins: int = BINS) -> np.ndarray:
    """[N, bins] pixel counts of each image, binned as ``unit_histogram`` (their sum is its histogram)."""
    rows = []
    for start in range(0, images.shape[0], CHUNK):
        values = images[start : start + CHUNK].detach().float().flatten(1).clamp(-1.0, 1.0)
        index = ((values + 1.0) * (bins / 2.0)).long().clamp_(0, bins - 1)
        counts = torch.zeros(values.shape[0], bins, dtype=torch.float64)
        rows.append(counts.scatter_add_(1, index, torch.ones_like(index, dtype=torch.float64)))
    return torch.cat(rows).numpy()


def histogram_distances(centres: np.ndarray, real: np.ndarray, fake: np.ndarray) -> tuple[float, float]:
    """(all pixels, foreground) Wasserstein distances of two histograms (``intensity_fidelity``'s two numbers)."""
    fg_real, fg_fake = real.copy(), fake.copy()
    fg_real[:FOREGROUND_BIN] = 0.0
    fg_fake[:FOREGROUND_BIN] = 0.0
    return _distance(centres, real, fake), _distance(centres, fg_real, fg_fake)


def bin_centres(mapping, bins: int = BINS) -> np.ndarray:
    """Physical values at the centres of the histogram bins."""
    edges = np.linspace(-1.0, 1.0, bins + 1)
    return np.asarray(mapping.to_physical((edges[:-1] + edges[1:]) / 2.0), np.float64)


def _distance(centres: np.ndarray, real: np.ndarray, fake: np.ndarray) -> float:
    if real.sum() <= 0 or fake.sum() <= 0:
        return float("nan")
    return float(wasserstein_distance(centres, centres, real, fake))


def _moments(centres: np.ndarray, counts: np.ndarray) -> dict[str, float]:
    total = counts.sum()
    if total <= 0:
        return {"mean": float("nan"), "std": float("nan")}
    mean = float((centres * counts).sum() / total)
    return {"mean": mean, "std": float(np.sqrt(((centres - mean) ** 2 * counts).sum() / total))}


def intensity_fidelity(real: torch.Tensor, fake: torch.Tensor, mapping) -> dict:
    """Histogram distance between real and synthetic intensities, in physical units.

    Args:
        real: [N_r, 1, H, W] in [-1, 1].
        fake: [N_f, 1, H, W] in [-1, 1].
        mapping: ``medgan.data.IntensityMapping`` of the data (``unit`` names the physical unit).

    Returns:
        JSON-ready numbers (``wasserstein``, ``wasserstein_foreground``, foreground mean/std of each set,
        ``background_fraction`` of each set, ``unit``) and, under ``"histogram"``, the bin centres and the
        normalised foreground histograms for the overlay plot.
    """
    check_images(real, "real images")
    check_images(fake, "synthetic images")
    centres = bin_centres(mapping)
    all_real, all_fake = unit_histogram(real), unit_histogram(fake)
    fg_real, fg_fake = all_real.copy(), all_fake.copy()
    fg_real[:FOREGROUND_BIN] = 0.0
    fg_fake[:FOREGROUND_BIN] = 0.0
    return {
        "unit": mapping.unit,
        "wasserstein": _distance(centres, all_real, all_fake),
        "wasserstein_foreground": _distance(centres, fg_real, fg_fake),
        "real_foreground": _moments(centres, fg_real),
        "synthetic_foreground": _moments(centres, fg_fake),
        "real_background_fraction": float(1.0 - fg_real.sum() / max(all_real.sum(), 1.0)),
        "synthetic_background_fraction": float(1.0 - fg_fake.sum() / max(all_fake.sum(), 1.0)),
        "histogram": {
            "centres": centres.tolist(),
            "real": (fg_real / max(fg_real.sum(), 1.0)).tolist(),
            "synthetic": (fg_fake / max(fg_fake.sum(), 1.0)).tolist(),
        },
    }
