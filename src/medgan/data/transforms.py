"""Classic (non-differentiable) data augmentation of real training images: flip, small rotation, zoom.

Hand-written on purpose rather than with MONAI's ``RandFlip``/``RandRotate``/``RandZoom``: the training images
live in one tensor, and one ``affine_grid`` + ``grid_sample`` call transforms a whole batch in-process. MONAI's
transforms run per sample, usually in DataLoader workers, which on a 2-core CPU costs more in Python overhead
and worker start-up than the resampling itself.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

BACKGROUND = -1.0  # value of pixels that come from outside the image


def classic_augment(
    images: torch.Tensor,
    flip: bool,
    rotate_degrees: float,
    scale: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random left-right flip, rotation and zoom, drawn independently for each image of a batch.

    Args:
        images: ``[N, C, H, W]`` in [-1, 1].
        flip: flip each image left-right with probability 1/2.
        rotate_degrees: rotation angle drawn uniformly in ``[-rotate_degrees, rotate_degrees]``.
        scale: zoom factor drawn uniformly in ``[1 - scale, 1 + scale]`` (> 1 zooms in).
        generator: random generator for reproducibility (on the CPU or on the images' device).

    Returns:
        Augmented images, same shape and dtype; pixels from outside the image are -1 (background).
        With ``flip=False`` and zero ranges the input is returned unchanged.
    """
    if images.ndim != 4:
        raise ValueError(f"classic_augment expects [N, C, H, W], got shape {tuple(images.shape)}")
    count = images.shape[0]
    if count == 0:
        return images
    if flip:
        # Flipping by indexing is exact, so the interpolation below is only paid for rotation and zoom.
        mirrored = _uniform(count, generator, images.device) < 0.5
        images = torch.where(mirrored[:, None, None, None], images.flip(-1), images)
    if rotate_degrees <= 0 and scale <= 0:
        return images
    angles = (2 * _uniform(count, generator, images.device) - 1) * math.radians(rotate_degrees)
    zooms = 1 + (2 * _uniform(count, generator, images.device) - 1) * scale
    cosine, sine = torch.cos(angles) / zooms, torch.sin(angles) / zooms
    zero = torch.zeros_like(angles)
    # theta maps output coordinates to input coordinates in [-1, 1]: rotation by the angle, shrunk by the zoom.
    theta = torch.stack([torch.stack([cosine, -sine, zero], 1), torch.stack([sine, cosine, zero], 1)], 1)
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    # grid_sample pads with zeros; shifting by -BACKGROUND first makes outside pixels come out as BACKGROUND.
    shifted = images - BACKGROUND
    return F.grid_sample(shifted, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + BACKGROUND


def _uniform(count: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """``count`` uniform [0, 1) numbers from ``generator`` (on its own device), moved to ``device``."""
    source = generator.device if generator is not None else device
    return torch.rand(count, generator=generator, device=source).to(device)
