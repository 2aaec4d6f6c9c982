"""Spectral term of generator losses: a pure function on generated and real images.

Generators trained for a few thousand steps leave more fine-scale energy in their images than real scans have
(grain), and the discriminator, which judges features, is slow to punish it (Durall et al. 2020, "Watch your
up-convolution: CNN based generative deep neural networks are failing to reproduce spectral distributions";
Jung & Keuper 2021). Durall et al. add a term that makes the generated images' azimuthally integrated power
spectrum match the real one. This is that term, in the form medgan uses:

    L_spec = mean over radii r of (log Pbar_fake(r) - log Pbar_real(r))^2

where Pbar(r) is the power |FFT(x)|^2 / (H W) averaged over the frequency bins at integer radius r (in cycles
per image, 1 .. the corner) and over the images of the batch. Batch means, not per-image spectra: the term asks the
generator for the real images' amount of detail at each scale, not for any image's. Log power, so each scale
counts alike whatever its energy (natural and medical images fall by orders of magnitude from coarse to fine).
The real spectrum carries no gradient. DC (the mean intensity) is left out: it is contrast, not texture.

Written here rather than taken from a library: MONAI, torchmetrics and kornia have no spectral loss of this kind.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

EPSILON = 1e-12  # keeps log finite for an all-constant batch


@functools.lru_cache(maxsize=8)
def _radius_bins(height: int, width: int, device: torch.device) -> tuple[Tensor, Tensor, int]:
    """Per rfft2 bin (flattened ``[H * (W // 2 + 1)]``): its integer radius in cycles per image, and its weight in
    the mean over its radius; and the largest radius. Cached per size and device, so a training step neither
    rebuilds nor copies them.

    A bin of the half spectrum stands for itself and its mirror image, except the first column (and the last one
    of an even width), which have none; the weights count them so.
    """
    rows = torch.fft.fftfreq(height, d=1.0 / height).abs()[:, None]  # cycles per image
    columns = torch.fft.rfftfreq(width, d=1.0 / width)[None, :]
    radius = torch.sqrt(rows**2 + columns**2).round().long().flatten()
    mirrored = torch.full((height, width // 2 + 1), 2.0)
    mirrored[:, 0] = 1.0
    if width % 2 == 0:
        mirrored[:, -1] = 1.0
    mirrored = mirrored.flatten()
    largest = int(radius.max())
    totals = torch.zeros(largest + 1).index_add_(0, radius, mirrored)
    return radius.to(device), (mirrored / totals[radius]).to(device), largest


def radial_log_power(images: Tensor) -> Tensor:
    """log of the batch-mean power at each integer radius: [R] for images [N, C, H, W] (channels averaged)."""
    height, width = images.shape[-2:]
    spectrum = torch.fft.rfft2(images.float()).abs().square() / (height * width)  # [N, C, H, W//2+1]
    mean = spectrum.mean(dim=(0, 1)).flatten()
    radius, weight, largest = _radius_bins(height, width, mean.device)
    profile = torch.zeros(largest + 1, device=mean.device, dtype=mean.dtype).index_add(0, radius, mean * weight)
    return torch.log(profile[1:] + EPSILON)  # radius 0: DC


def spectral_matching(fake: Tensor, real: Tensor, from_nyquist: float = 0.0) -> Tensor:
    """``mean_r (log Pbar_fake(r) - log Pbar_real(r))^2`` (see the module docstring) over the radii from
    ``from_nyquist`` times the Nyquist frequency up; ``real`` gets no gradient.

    Args:
        fake: generated images [N, C, H, W] in [-1, 1].
        real: real images [M, C, H, W] of the same size and scaling.
        from_nyquist: 0 compares every radius (1 cycle per image to the corners); 0.5 starts at half the Nyquist
            frequency (16 cycles per image at 64 px). Above 0 the term leaves the coarse scales, where a batch's
            power is its anatomy (head size, slice level) rather than its texture, to the discriminator.
    """
    if fake.shape[1:] != real.shape[1:]:
        raise ValueError(f"fake {tuple(fake.shape[1:])} and real {tuple(real.shape[1:])} images differ in shape")
    if not 0.0 <= from_nyquist < 1.0:
        raise ValueError(f"from_nyquist must be in [0, 1), got {from_nyquist}")
    lowest = max(1, round(from_nyquist * min(fake.shape[-2:]) / 2))  # cycles per image
    difference = radial_log_power(fake) - radial_log_power(real.detach())  # index r - 1 holds radius r
    return difference[lowest - 1:].square().mean()
