"""The feature-extractor contract every feature space implements, apart from the registry (``medgan.metrics.features``)
so that extractors in their own modules (``medgan.metrics.resnet``) need not import the registry that names them."""

from __future__ import annotations

import abc
import hashlib
from pathlib import Path

import torch
import torch.nn as nn


class FeatureExtractor(nn.Module, metaclass=abc.ABCMeta):
    """Base class: ``prepare`` images (channels, size), then ``embed`` them into ``[N, dim]`` features.

    Subclasses set ``name`` (registry name), ``dim`` (feature length) and implement ``prepare``/``embed`` and
    ``fingerprint`` (a string that changes whenever the feature space changes; it keys the feature cache).
    """

    name: str = "base"
    dim: int = 0

    @abc.abstractmethod
    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """[N, 1, H, W] in [-1, 1] -> the input the embedding expects."""

    @abc.abstractmethod
    def embed(self, prepared: torch.Tensor) -> torch.Tensor:
        """Prepared images -> [N, dim] features."""

    @abc.abstractmethod
    def fingerprint(self) -> str:
        """Identifies the feature space (name, version, weights)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.embed(self.prepare(images))


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
