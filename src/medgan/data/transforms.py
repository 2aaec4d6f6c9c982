"""Classic (non-differentiable) data augmentation of real training images: flip, small rotation, zoom; and
acquisition augmentation (reconstruction-kernel blur and noise level) for downstream classifiers.

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


def flips(flip: bool | None, unit: str) -> bool:
    """Whether random left-right flips apply: ``flip`` (``data.flip``) as set, or, when it is None (auto), for
    every image but CT (``unit`` "HU"). Brain MRI is close to left-right symmetric; the abdomen is not (the liver
    is on the right), so mirrored CT would teach G anatomy no patient has."""
    return unit != "HU" if flip is None else flip


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
    return aligned_augment({"images": images}, flip, rotate_degrees, scale, generator)["images"]


def aligned_augment(
    tensors: dict[str, torch.Tensor],
    flip: bool,
    rotate_degrees: float,
    scale: float,
    generator: torch.Generator | None = None,
    nearest: frozenset[str] | set[str] = frozenset(),
) -> dict[str, torch.Tensor]:
    """``classic_augment`` with one random flip/rotation/zoom per image applied to several aligned tensors.

    Paired data (a low-dose input and its routine-dose target, an image and its label map) must stay
    pixel-aligned: every tensor of the dict gets the same transform for the same batch index.

    Args:
        tensors: name -> ``[N, C_name, H, W]``; the same N, H and W for all (channels may differ). Volumes
            ``[N, C, D, H, W]`` take flips only (along W, left-right).
        flip: flip each image left-right with probability 1/2.
        rotate_degrees: rotation angle drawn uniformly in ``[-rotate_degrees, rotate_degrees]``.
        scale: zoom factor drawn uniformly in ``[1 - scale, 1 + scale]``.
        generator: random generator for reproducibility.
        nearest: names resampled with nearest-neighbour interpolation (label maps, masks), so their values
            stay the labels they were.

    Returns:
        The augmented tensors under the same names.
    """
    first = next(iter(tensors.values()))
    for name, tensor in tensors.items():
        if tensor.ndim != first.ndim or tensor.shape[0] != first.shape[0] or tensor.shape[2:] != first.shape[2:]:
            raise ValueError(f"aligned tensors must be [N, C, H, W] of one N, H, W; {name!r} is {tuple(tensor.shape)}")
    if first.ndim not in (4, 5) or (first.ndim == 5 and (rotate_degrees > 0 or scale > 0)):
        raise ValueError(f"classic augmentation takes [N, C, H, W] images (volumes [N, C, D, H, W]: flips only), got "
                         f"{tuple(first.shape)}")
    count = first.shape[0]
    if count == 0:
        return dict(tensors)
    out = dict(tensors)
    if flip:
        # Flipping by indexing is exact, so the interpolation below is only paid for rotation and zoom.
        mirrored = _uniform(count, generator, first.device) < 0.5
        mirrored = mirrored.reshape(count, *[1] * (first.ndim - 1))
        out = {name: torch.where(mirrored, t.flip(-1), t) for name, t in out.items()}
    if rotate_degrees <= 0 and scale <= 0:
        return out
    angles = (2 * _uniform(count, generator, first.device) - 1) * math.radians(rotate_degrees)
    zooms = 1 + (2 * _uniform(count, generator, first.device) - 1) * scale
    cosine, sine = torch.cos(angles) / zooms, torch.sin(angles) / zooms
    zero = torch.zeros_like(angles)
    # theta maps output coordinates to input coordinates in [-1, 1]: rotation by the angle, shrunk by the zoom.
    theta = torch.stack([torch.stack([cosine, -sine, zero], 1), torch.stack([sine, cosine, zero], 1)], 1)
    for name, tensor in out.items():
        grid = F.affine_grid(theta.to(tensor.dtype), list(tensor.shape), align_corners=False)
        mode = "nearest" if name in nearest else "bilinear"
        # grid_sample pads with zeros; shifting by -BACKGROUND first makes outside pixels come out as BACKGROUND.
        shifted = tensor - BACKGROUND
        out[name] = F.grid_sample(shifted, grid, mode=mode, padding_mode="zeros", align_corners=False) + BACKGROUND
    return out


def acquisition_augment(
    images: torch.Tensor,
    max_sigma: float = 1.2,
    max_noise: float = 0.06,
    probability: float = 0.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random Gaussian blur and Gaussian noise per image: the variation between scanners, kernels and doses.

    A classifier trained on one acquisition learns its noise texture: measured on the ``ct-lesions`` phantom, a
    judge trained on routine-dose ROIs scored 0.82 balanced accuracy on new routine-dose patients but 0.49 on
    the same patients without noise and 0.40 after a 1-pixel blur, calling nearly all of them one class. Lesion
    class is not a property of the noise, so classifiers that must judge images from another source
    (synthetic ones included) are trained with this augmentation.

    Batched like ``classic_augment`` (one grouped convolution for the whole batch, the caller's generator for
    reproducibility) rather than MONAI's per-sample ``RandGaussianSmooth``/``RandGaussianNoise``.

    Args:
        images: ``[N, C, H, W]`` in [-1, 1].
        max_sigma: blur standard deviation (pixels) drawn uniformly in ``[0, max_sigma]``.
        max_noise: noise standard deviation (in [-1, 1] units) drawn uniformly in ``[0, max_noise]``.
        probability: chance of each of blur and noise, drawn independently per image.
        generator: random generator for reproducibility.

    Returns:
        Augmented images, same shape and dtype, clamped to [-1, 1].
    """
    if images.ndim != 4:
        raise ValueError(f"acquisition_augment expects [N, C, H, W], got shape {tuple(images.shape)}")
    count, channels, height, width = images.shape
    if count == 0:
        return images
    device = images.device
    sigma = _uniform(count, generator, device) * max_sigma * (_uniform(count, generator, device) < probability)
    radius = max(1, math.ceil(3 * max_sigma))
    offsets = torch.arange(-radius, radius + 1, device=device, dtype=images.dtype)
    kernel = torch.exp(-(offsets[None] ** 2) / (2 * sigma.clamp(min=1e-3)[:, None].to(images.dtype) ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(channels, 0)  # [N*C, taps]; sigma 0 = identity
    planes = images.reshape(1, count * channels, height, width)
    planes = F.conv2d(F.pad(planes, (radius, radius, 0, 0), mode="replicate"), kernel[:, None, None, :],
                      groups=count * channels)
    planes = F.conv2d(F.pad(planes, (0, 0, radius, radius), mode="replicate"), kernel[:, None, :, None],
                      groups=count * channels)
    blurred = planes.reshape(count, channels, height, width)
    level = _uniform(count, generator, device) * max_noise * (_uniform(count, generator, device) < probability)
    source = generator.device if generator is not None else device
    noise = torch.randn(images.shape, generator=generator, device=source).to(device=device, dtype=images.dtype)
    return (blurred + noise * level[:, None, None, None].to(images.dtype)).clamp(-1.0, 1.0)


def _uniform(count: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """``count`` uniform [0, 1) numbers from ``generator`` (on its own device), moved to ``device``."""
    source = generator.device if generator is not None else device
    return torch.rand(count, generator=generator, device=source).to(device)
