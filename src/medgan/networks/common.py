"""Building blocks shared by the architectures: spectral norm switch, class embedding, projection head."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def maybe_spectral_norm(enabled: bool) -> Callable[[nn.Module], nn.Module]:
    """A wrapper that applies spectral normalization to a layer when ``enabled``, else returns it unchanged."""
    if enabled:
        return nn.utils.parametrizations.spectral_norm
    return lambda module: module


def class_embedding(num_classes: int, dim: int) -> nn.Embedding | None:
    """A learned class embedding for conditional generators, or None for unconditional ones."""
    return nn.Embedding(num_classes, dim) if num_classes > 0 else None


class ProjectionHead(nn.Module):
    """The class term of a projection discriminator: ``<embed(y), h>`` (Miyato & Koyama 2018).

    Args:
        num_classes: number of classes; 0 makes the head return zeros (unconditional).
        features: size of the pooled feature vector h.
        spectral_norm: spectrally normalize the embedding.
    """

    def __init__(self, num_classes: int, features: int, spectral_norm: bool) -> None:
        super().__init__()
        self.embedding = None
        if num_classes > 0:
            embedding = nn.Embedding(num_classes, features)
            nn.init.normal_(embedding.weight, 0.0, 0.02)
            self.embedding = maybe_spectral_norm(spectral_norm)(embedding)

    def forward(self, pooled: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """pooled [N, F], labels [N] -> class logit term [N]."""
        if self.embedding is None:
            return pooled.new_zeros(pooled.shape[0])
        if labels is None:
            raise ValueError("a conditional discriminator needs labels")
        return (self.embedding(labels) * pooled).sum(dim=1)


MINIBATCH_GROUP = 4  # images per minibatch-stddev group; conditional batches are built so groups share a class


def minibatch_stddev(features: torch.Tensor, group_size: int = MINIBATCH_GROUP) -> torch.Tensor:
    """One scalar per image: the mean standard deviation of features across its group (StyleGAN's layer).

    Gives the discriminator a direct view of sample diversity, so a generator that collapses onto one output
    is detected even when each image alone looks real.

    Groups are strided, as in StyleGAN: group members are images i, i + N/G, i + 2N/G, ... For conditional
    training the batch sampler lays batches out so that strided groups share a class; otherwise class
    differences inside a group would hide a generator that ignores its noise within each class.

    Args:
        features: [N, C, H, W] discriminator features.
        group_size: images per group (reduced to a divisor of N).

    Returns:
        [N, 1, H, W] feature map to concatenate to ``features``.
    """
    count, channels, height, width = features.shape
    group = min(group_size, count)
    while count % group:
        group -= 1
    grouped = features.float().reshape(group, -1, channels, height, width)  # G x (N/G) x C x H x W
    deviation = (grouped.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # [N/G]
    return deviation.repeat(group).reshape(count, 1, 1, 1).expand(count, 1, height, width).to(features.dtype)
