"""Figures of the evaluation report, as PNG bytes (matplotlib's Agg canvas; images are embedded, never linked)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from medgan.visuals import figure_png, image_grid, new_figure, png_bytes

REAL_COLOUR = "#1f77b4"
SYNTHETIC_COLOUR = "#d62728"
BASELINE_COLOUR = "#7f7f7f"


def grid_png(images: torch.Tensor, columns: int = 8, count: int = 64) -> bytes:
    """``count`` evenly spaced images of a set ([N, 1, H, W] in [-1, 1]) as a grid, enlarged to about 512 px wide.

    Even spacing shows the whole range of an ordered set (slices of a volume), not just its first images.
    """
    shown = images[torch.linspace(0, images.shape[0] - 1, min(count, images.shape[0])).round().long()]
    scale = max(1, 512 // (min(columns, shown.shape[0]) * (shown.shape[-1] + 2)))
    return png_bytes(image_grid(shown, columns=min(columns, shown.shape[0])), scale=scale)


def strip_png(images: torch.Tensor, columns: int) -> bytes:
    """Row-major strips (e.g. a latent interpolation, ``columns`` steps per row), enlarged."""
    scale = max(1, 768 // (columns * (images.shape[-1] + 2)))
    return png_bytes(image_grid(images, columns=columns), scale=scale)


def training_curves_png(losses: list[dict], history: list[dict]) -> bytes | None:
    """Loss curves (D and G) and, when evaluated during training, FID against step. None without records."""
    if not losses and not history:
        return None
    panels = 1 + int(bool(history))
    figure = new_figure(figsize=(5.2 * panels, 3.2))
    axes = np.atleast_1d(figure.subplots(1, panels))
    if losses:
        steps = [record.get("step") for record in losses]
        for key, colour in (("loss_d", REAL_COLOUR), ("loss_g", SYNTHETIC_COLOUR)):
            axes[0].plot(steps, [record.get(key, np.nan) for record in losses], label=key, color=colour, lw=1.2)
        axes[0].legend()
    axes[0].set(xlabel="step", ylabel="loss", title="training losses")
    axes[0].grid(alpha=0.3)
    if history:
        steps = [record.get("step") for record in history]
        axes[1].plot(steps, [record.get("fid", np.nan) for record in history], marker="o", color="#2ca02c")
        axes[1].set(xlabel="step", ylabel="FID (offline features)", title="in-training FID (lower is better)")
        axes[1].grid(alpha=0.3)
    figure.tight_layout()
    return figure_png(figure, dpi=100)


def histogram_png(histogram: dict[str, list[float]], unit: str) -> bytes:
    """Overlay of the real and synthetic foreground intensity histograms, in physical units."""
    centres = np.asarray(histogram["centres"])
    figure = new_figure(figsize=(6.4, 3.4))
    axis = figure.subplots()
    width = float(centres[1] - centres[0]) if centres.size > 1 else 1.0
    for key, colour, label in (("real", REAL_COLOUR, "real"), ("synthetic", SYNTHETIC_COLOUR, "synthetic")):
        axis.fill_between(centres, histogram[key], step="mid", alpha=0.35, color=colour)
        axis.step(centres, histogram[key], where="mid", color=colour, label=label, lw=1.2)
    axis.set(xlabel=f"intensity ({unit})", ylabel="fraction of foreground pixels",
             title="foreground intensity distribution", xlim=(centres[0] - width, centres[-1] + width))
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure_png(figure, dpi=100)


def nearest_distribution_png(audit: Any) -> bytes:
    """Histograms of nearest-training SSIM and feature distance: synthetic images vs the real baseline."""
    figure = new_figure(figsize=(10.4, 3.2))
    axes = figure.subplots(1, 2)
    pairs = (
        (audit.synthetic.ssim, audit.baseline.ssim, "SSIM to nearest training image", audit.threshold),
        (audit.synthetic.feature_distance, audit.baseline.feature_distance,
         "feature distance to nearest training image", None),
    )
    for axis, (synthetic, baseline, label, threshold) in zip(axes, pairs):
        values = np.concatenate([synthetic, baseline])
        bins = np.linspace(values.min(), values.max() + 1e-9, 31)
        axis.hist(baseline, bins=bins, density=True, alpha=0.5, color=BASELINE_COLOUR,
                  label=f"real baseline ({audit.baseline_kind})")
        axis.hist(synthetic, bins=bins, density=True, alpha=0.5, color=SYNTHETIC_COLOUR, label="synthetic")
        if threshold is not None:
            axis.axvline(threshold, color="black", ls="--", lw=1, label=f"near-copy threshold {threshold}")
        axis.set(xlabel=label, ylabel="density")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    return figure_png(figure, dpi=100)


def tile_png(image: torch.Tensor, scale: int = 2) -> bytes:
    """One [1, H, W] image in [-1, 1] as an enlarged PNG tile."""
    return png_bytes(image_grid(image[None], columns=1, padding=0), scale=scale)


def spectrum_png(spectrum: dict) -> bytes:
    """Synthetic / real power per radial frequency band with its 95% interval and the ±tolerance band around 1."""
    bands = spectrum["bands"]
    centres = np.asarray([(band["cycles"][0] + band["cycles"][1]) / 2.0 for band in bands])
    ratio = np.asarray([band["ratio"] for band in bands])
    low = np.asarray([band["low"] for band in bands])
    high = np.asarray([band["high"] for band in bands])
    tolerance = float(spectrum.get("tolerance", 0.15))
    figure = new_figure(figsize=(6.4, 3.4))
    axis = figure.subplots()
    axis.axhspan(1.0 - tolerance, 1.0 + tolerance, color=BASELINE_COLOUR, alpha=0.15,
                 label=f"±{tolerance:.0%} of real")
    axis.axhline(1.0, color="black", lw=1)
    axis.fill_between(centres, low, high, color=SYNTHETIC_COLOUR, alpha=0.25, label="95% interval")
    axis.plot(centres, ratio, marker="o", color=SYNTHETIC_COLOUR, lw=1.4, label="synthetic / real power")
    axis.set(xlabel="radial frequency (cycles per image, band centres; last band up to the corners)",
             ylabel="power ratio", title="power spectrum: > 1 grain, < 1 blur")
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure_png(figure, dpi=100)
