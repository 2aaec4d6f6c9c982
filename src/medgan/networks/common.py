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
            self.embedding = maybe_spectral_norm(spectral_norm)(nn.Embedding(num_classes, features))
            nn.init.normal_(self.embedding.weight, 0.0, 0.02)

    def forward(self, pooled: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """pooled [N, F], labels [N] -> class logit term [N]."""
        if self.embedding is None:
            return pooled.new_zeros(pooled.shape[0])
        if labels is None:
            raise ValueError("a conditional discriminator needs labels")
        return (self.embedding(labels) * pooled).sum(dim=1)
