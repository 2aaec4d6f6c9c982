"""Diversity terms of generator losses: pure functions on generated images and their noise."""

from __future__ import annotations

import torch


def mode_seeking_ratio(fake: torch.Tensor, noise: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
    """MSGAN's ratio (Mao et al. 2019): mean |G(z1) - G(z2)| / mean |z1 - z2| over same-class pairs.

    Pairs are images i and i + N/2 of the batch. With ``labels`` only same-class pairs count (the conditional
    batch sampler lays batches out so that they share a class); without, every pair does. The G loss adds
    ``weight / ratio``: a generator that maps much of its noise to one image (a known failure on small data,
    per class or overall) makes the ratio vanish.

    Returns:
        The mean ratio over same-class pairs, or None when the batch has none.
    """
    half = fake.shape[0] // 2
    if half == 0:
        return None
    same = torch.ones(half, dtype=torch.bool, device=fake.device)
    if labels is not None:
        same = labels[:half] == labels[half : 2 * half]
    if not bool(same.any()):
        return None
    image_distance = (fake[:half] - fake[half : 2 * half]).abs().flatten(1).mean(1)
    noise_distance = (noise[:half] - noise[half : 2 * half]).abs().mean(1)
    return (image_distance / noise_distance)[same].mean()
