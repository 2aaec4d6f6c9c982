"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) for greyscale medical images in [-1, 1].

The discriminator sees every image, real or generated, through the same random augmentation, drawn
independently for each batch and each image. Every op is differentiable with respect to its input, so the
generator still receives gradients through the augmented fakes; this is what lets a GAN train on ~100 images
without D memorizing them (see DESIGN.md section 4).

Only greyscale-safe ops exist here: no colour/saturation/hue. Conventions:

* Images are float tensors [N, C, H, W] in [-1, 1], where -1 is background (air in a CT window, empty space
  around an MRI head). Translation pads and cutout fills with -1, so the ops add "more background" rather
  than a mid-grey block (0 would look like soft tissue in [-1, 1]), and no fake edge appears at the border.
* Intensity ops (brightness, contrast, noise) clamp back to [-1, 1] so D never sees values that no real or
  generated image can have (G ends in tanh).
* ``probability`` is per image and per op, as in ADA: each image gets each op with chance p. With p < 1 the
  augmentation is "non-leaking" in ADA's sense; with p = 1 (DiffAugment) it is applied to every image.

Ops draw all random numbers from the given ``torch.Generator`` (on the generator's device), so a seeded
generator makes the augmentation reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from medgan.errors import ConfigError
from medgan.registry import Registry

BACKGROUND = -1.0  # value of empty space in [-1, 1] images
TRANSLATION_RATIO = 1 / 8  # max shift as a fraction of the image side (DiffAugment's default)
CUTOUT_RATIO = 1 / 2  # side of the cut-out square as a fraction of the image side (DiffAugment's default)
BRIGHTNESS_RANGE = (-0.25, 0.25)  # additive offset; 0.25 is 12.5 % of the [-1, 1] range
CONTRAST_RANGE = (0.5, 1.5)  # factor on the deviation from each image's mean
NOISE_STD_RANGE = (0.0, 0.05)  # std of additive Gaussian noise, drawn per image

AugmentOp = Callable[[Tensor, torch.Generator | None], Tensor]

POLICIES: Registry[AugmentOp] = Registry("augmentation")


def _rng_device(images: Tensor, generator: torch.Generator | None) -> torch.device:
    """Where random numbers are drawn: a generator only fills tensors on its own device."""
    return generator.device if generator is not None else images.device


def _per_image(images: Tensor) -> tuple[int, ...]:
    """The shape of one value per image that broadcasts over it: [N, 1, 1, 1] (volumes: [N, 1, 1, 1, 1])."""
    return (images.shape[0], *([1] * (images.dim() - 1)))


def _uniform(images: Tensor, low: float, high: float, generator: torch.Generator | None) -> Tensor:
    """One U[low, high] value per image, shaped [N, 1, 1, 1] ([N, 1, 1, 1, 1] for volumes), cast to the images'
    dtype/device."""
    shape = _per_image(images)
    values = torch.rand(shape, generator=generator, device=_rng_device(images, generator))
    return (low + (high - low) * values).to(device=images.device, dtype=images.dtype)


def _randint(images: Tensor, low: int, high: int, generator: torch.Generator | None) -> Tensor:
    """One integer in [low, high) per image, shape [N], on the images' device."""
    values = torch.randint(low, high, (images.shape[0],), generator=generator, device=_rng_device(images, generator))
    return values.to(images.device)


@POLICIES.register("translation")
def translation(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Shifts each image by up to 1/8 of its side along each axis, filling uncovered pixels with background.

    Args:
        images: [N, C, H, W] in [-1, 1] (volumes: [N, C, D, H, W], shifted along all three axes).
        generator: RNG for the integer shifts.

    Returns:
        Shifted images, same shape and dtype.
    """
    spatial = images.shape[2:]
    shifts = [round(size * TRANSLATION_RATIO) for size in spatial]
    moves = [_randint(images, -shift, shift + 1, generator) for shift in shifts]  # rows (y) before columns (x)
    padding = [side for shift in reversed(shifts) for side in (shift, shift)]  # F.pad lists the last axis first
    shifted = F.pad(images, padding, mode="constant", value=BACKGROUND)
    # out[y, x] = padded[y + shift - dy, x + shift - dx] = images[y - dy, x - dx]: content moves by (+dy, +dx).
    # One gather per axis (rows, then columns) is a vectorized integer shift; grid_sample would interpolate.
    for axis, (size, shift, move) in enumerate(zip(spatial, shifts, moves), start=2):
        index = torch.arange(size, device=images.device)[None, :] + shift - move[:, None]  # [N, size]
        view = [images.shape[0]] + [1] * (images.dim() - 1)
        view[axis] = size
        target = list(shifted.shape)
        target[axis] = size
        shifted = shifted.gather(axis, index.reshape(view).expand(target))
    return shifted


@POLICIES.register("cutout")
def cutout(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Sets a random square of half the image side to background (-1); the square may cross the border.

    Args:
        images: [N, C, H, W] in [-1, 1] (volumes: [N, C, D, H, W], a cube of half the side).
        generator: RNG for the square centres.

    Returns:
        Images with one background square each, same shape and dtype.
    """
    spatial = images.shape[2:]
    sizes = [round(side * CUTOUT_RATIO) for side in spatial]
    # Centres anywhere in the image, so squares are sometimes partly outside (as in DiffAugment).
    starts = [_randint(images, 0, side + (1 - size % 2), generator) - size // 2 for side, size in zip(spatial, sizes)]
    mask = torch.ones((images.shape[0], *[1] * len(spatial)), dtype=torch.bool, device=images.device)
    for axis, (side, size, start) in enumerate(zip(spatial, sizes, starts)):
        positions = torch.arange(side, device=images.device)[None, :]
        inside = (positions >= start[:, None]) & (positions < start[:, None] + size)  # [N, side]
        view = [images.shape[0]] + [1] * len(spatial)
        view[axis + 1] = side
        mask = mask & inside.reshape(view)  # [N, H, W] ([N, D, H, W]) once every axis is in
    return images.masked_fill(mask[:, None], BACKGROUND)


@POLICIES.register("brightness")
def brightness(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Adds one offset in [-0.25, 0.25] per image, then clamps to [-1, 1].

    Args:
        images: [N, C, H, W] in [-1, 1].
        generator: RNG for the offsets.

    Returns:
        Brightened or darkened images, same shape and dtype.
    """
    offset = _uniform(images, *BRIGHTNESS_RANGE, generator)
    return (images + offset).clamp(-1.0, 1.0)


@POLICIES.register("contrast")
def contrast(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Scales each image's deviation from its own mean by a factor in [0.5, 1.5], then clamps to [-1, 1].

    Args:
        images: [N, C, H, W] in [-1, 1].
        generator: RNG for the factors.

    Returns:
        Images with changed contrast, same shape and dtype.
    """
    factor = _uniform(images, *CONTRAST_RANGE, generator)
    mean = images.mean(dim=tuple(range(1, images.dim())), keepdim=True)
    return ((images - mean) * factor + mean).clamp(-1.0, 1.0)


@POLICIES.register("flip")
def flip(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Mirrors each image left-right (its last axis) with probability 1/2 (anatomy is roughly left-right symmetric).

    Args:
        images: [N, C, H, W] ([N, C, D, H, W]).
        generator: RNG for the coin flips.

    Returns:
        Images, half of them mirrored, same shape and dtype.
    """
    mirrored = _randint(images, 0, 2, generator).bool().reshape(_per_image(images))
    return torch.where(mirrored, images.flip(dims=(-1,)), images)


@POLICIES.register("noise")
def noise(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Adds Gaussian noise with a per-image std in [0, 0.05] (scanner-like), then clamps to [-1, 1].

    Args:
        images: [N, C, H, W] in [-1, 1].
        generator: RNG for the stds and the noise.

    Returns:
        Noisy images, same shape and dtype.
    """
    std = _uniform(images, *NOISE_STD_RANGE, generator)
    gaussian = torch.randn(images.shape, generator=generator, device=_rng_device(images, generator))
    return (images + std * gaussian.to(device=images.device, dtype=images.dtype)).clamp(-1.0, 1.0)


def _check_probability(probability: float) -> float:
    """``probability`` as a float, or ConfigError when it is outside [0, 1]."""
    if not 0.0 <= float(probability) <= 1.0:
        raise ConfigError(f"augment.probability must be in [0, 1], got {probability}")
    return float(probability)


class DiffAugment:
    """A differentiable augmentation policy: a sequence of registered ops applied in order.

    Call it separately on the real batch and on the fake batch before D; each call draws fresh parameters.

    Args:
        policy: op names from ``POLICIES.names()``, e.g. ``("translation", "cutout")``; empty means identity.
        probability: chance that each image gets each op, in [0, 1]. May be changed between steps (ADA).

    Raises:
        ConfigError: an unknown op name (the message lists valid names) or a probability outside [0, 1].
    """

    def __init__(self, policy: Sequence[str], probability: float = 1.0) -> None:
        if isinstance(policy, str):  # a bare string would otherwise be split into letters
            policy = (policy,)
        self.policy = tuple(policy)
        self.ops = tuple(POLICIES.get(name) for name in self.policy)
        self.probability = _check_probability(probability)

    @property
    def probability(self) -> float:
        """Chance that each image gets each op."""
        return self._probability

    @probability.setter
    def probability(self, value: float) -> None:
        self._probability = _check_probability(value)

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Augments a batch.

        Args:
            images: [N, C, H, W] float images in [-1, 1]; any dtype/memory format (bf16 and channels_last work).
            generator: RNG for every random choice; None uses torch's global RNG.

        Returns:
            Augmented images with the same shape, dtype and memory format; differentiable w.r.t. ``images``.
        """
        if not self.ops or self.probability == 0.0 or images.shape[0] == 0:
            return images
        last = {4: torch.channels_last, 5: torch.channels_last_3d}.get(images.dim())
        channels_last = last is not None and images.is_contiguous(memory_format=last)
        output = images
        for op in self.ops:
            output = self._apply(op, output, generator)
        if channels_last:
            output = output.contiguous(memory_format=last)
        return output

    def _apply(self, op: AugmentOp, images: Tensor, generator: torch.Generator | None) -> Tensor:
        """One op on the images selected with chance ``probability`` (all of them when it is 1)."""
        augmented = op(images, generator)
        if self.probability >= 1.0:
            return augmented
        chosen = torch.rand((images.shape[0],), generator=generator, device=_rng_device(images, generator))
        chosen = (chosen < self.probability).to(images.device).reshape(_per_image(images))
        return torch.where(chosen, augmented, images)

    def __repr__(self) -> str:
        return f"DiffAugment(policy={self.policy!r}, probability={self.probability:g})"


@dataclass
class AdaptiveProbability:
    """ADA's controller (Karras et al. 2020): tunes the augmentation probability from D's overfitting.

    The heuristic r_t = E[sign(D(real))] is near 0 when D cannot tell reals from fakes and near 1 when it
    has memorized the reals. Every ``interval`` updates, p moves by ``batch images / images_to_full`` towards
    more augmentation when r_t > target and towards less when r_t < target.

    Args:
        target: the r_t to hold (0.6 in ADA).
        images_to_full: real images seen for p to travel from 0 to 1 at the maximum rate (ADA: 500k; smaller
            here because medgan runs are short).
        interval: number of ``update`` calls accumulated before p is adjusted (ADA: 4).
        maximum: upper bound for p (below 1 keeps ADA's non-leaking guarantee).
        probability: the current p (start value).
    """

    target: float = 0.6  # r_t held by the controller
    images_to_full: int = 50_000  # real images for p to go 0 -> 1
    interval: int = 4  # D steps accumulated per adjustment
    maximum: float = 0.8  # upper bound for p
    probability: float = 0.0  # current p
    last_heuristic: float = 0.0  # r_t of the last adjustment, for logging
    _sign_sum: float = field(default=0.0, repr=False)
    _logits: int = field(default=0, repr=False)
    _images: int = field(default=0, repr=False)
    _calls: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.target < 1.0:
            raise ConfigError(f"ADA target must be in (0, 1), got {self.target}")
        if self.images_to_full <= 0 or self.interval <= 0:
            raise ConfigError("ADA images_to_full and interval must be positive")
        _check_probability(self.maximum)
        self.probability = min(_check_probability(self.probability), self.maximum)

    @torch.no_grad()
    def update(self, real_logits: Tensor) -> float:
        """Accumulates sign(D(real)) of one D step and, every ``interval`` calls, adjusts p.

        Args:
            real_logits: D's logits on the (augmented) real batch of this step.

        Returns:
            The (possibly updated) probability.
        """
        self._sign_sum += float(torch.sign(real_logits.detach().float()).sum())
        self._logits += int(real_logits.numel())
        # The step counts images, not logits, so a patch discriminator (many logits per image) moves p as fast.
        self._images += int(real_logits.shape[0]) if real_logits.dim() > 0 else 1
        self._calls += 1
        if self._calls % self.interval == 0 and self._logits > 0:
            self.last_heuristic = self._sign_sum / self._logits
            direction = 1.0 if self.last_heuristic > self.target else -1.0
            moved = self.probability + direction * self._images / self.images_to_full
            self.probability = min(max(moved, 0.0), self.maximum)
            self._sign_sum, self._logits, self._images = 0.0, 0, 0
        return self.probability

    def state_dict(self) -> dict[str, float | int]:
        """The controller's state, for checkpoints (resume continues the same p trajectory)."""
        return {
            "probability": self.probability,
            "last_heuristic": self.last_heuristic,
            "sign_sum": self._sign_sum,
            "logits": self._logits,
            "images": self._images,
            "calls": self._calls,
        }

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        """Restores a state from ``state_dict``.

        Args:
            state: a dict returned by ``state_dict``.
        """
        self.probability = float(state["probability"])
        self.last_heuristic = float(state["last_heuristic"])
        self._sign_sum = float(state["sign_sum"])
        self._logits, self._images, self._calls = int(state["logits"]), int(state["images"]), int(state["calls"])
