"""Residual generator and spectrally normalized residual discriminator (SNGAN / BigGAN-lite family).

Generator blocks: BN -> ReLU -> nearest x2 -> conv3 -> BN -> ReLU -> conv3, plus a (x2 -> conv1) shortcut.
Nearest upsampling followed by a conv avoids the checkerboard artefacts of strided transposed convolutions.
Discriminator blocks: ReLU -> conv3 -> ReLU -> conv3 -> avgpool, plus a (conv1 -> avgpool) shortcut, every
layer spectrally normalized; global sum pooling, a linear logit, and a projection term for classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medgan.networks.common import (
    AttributeProjection,
    ClassifierHead,
    ProjectionHead,
    condition_inputs,
    conditioned_latent,
    maybe_spectral_norm,
    minibatch_stddev,
)
from medgan.networks.dcgan import num_doublings
from medgan.networks.registry import DISCRIMINATORS, GENERATORS


class GeneratorBlock(nn.Module):
    """[N, in, H, W] -> [N, out, 2H, 2W]."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.norm2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.norm1(x)), scale_factor=2, mode="nearest")  # in x 2H x 2W
        h = self.conv2(F.relu(self.norm2(self.conv1(h))))  # out x 2H x 2W
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class DiscriminatorBlock(nn.Module):
    """[N, in, H, W] -> [N, out, H/2, W/2]; ``first`` skips the leading ReLU (raw image input)."""

    def __init__(self, in_channels: int, out_channels: int, spectral_norm: bool, first: bool = False) -> None:
        super().__init__()
        sn = maybe_spectral_norm(spectral_norm)
        self.first = first
        self.conv1 = sn(nn.Conv2d(in_channels, out_channels, 3, 1, 1))
        self.conv2 = sn(nn.Conv2d(out_channels, out_channels, 3, 1, 1))
        self.shortcut = sn(nn.Conv2d(in_channels, out_channels, 1, 1, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = self.conv2(F.relu(self.conv1(h)))  # out x H x W
        h = F.avg_pool2d(h, 2)  # out x H/2 x W/2
        # The first block pools before its shortcut conv (cheaper, as in SNGAN's optimized block).
        skip = self.shortcut(F.avg_pool2d(x, 2)) if self.first else F.avg_pool2d(self.shortcut(x), 2)
        return h + skip


def _init(module: nn.Module) -> None:
    """Xavier-uniform convs and linears (SNGAN / BigGAN practice), zero biases."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        weight = module.parametrizations.weight.original if hasattr(module, "parametrizations") else module.weight
        nn.init.xavier_uniform_(weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


@GENERATORS.register("resnet")
class ResNetGenerator(nn.Module):
    """z (optionally with a class) -> image in [-1, 1].

    Args:
        resolution: output side (32..256).
        latent_dim: size of z.
        channels: width multiplier; the 4x4 stage has ``channels * min(8, 2^(k-1))`` maps.
        out_channels: image channels.
        num_classes: >0 concatenates a learned class embedding to z.
        num_attributes: >0 concatenates a learned linear embedding of continuous attributes to z.
    """

    def __init__(self, resolution: int = 64, latent_dim: int = 128, channels: int = 64, out_channels: int = 1,
                 num_classes: int = 0, num_attributes: int = 0) -> None:
        super().__init__()
        steps = num_doublings(resolution)
        self.latent_dim = latent_dim
        self.embedding, self.attribute_embedding, input_dim = condition_inputs(num_classes, num_attributes, latent_dim)
        widths = [channels * min(8, 2 ** max(steps - 1 - i, 0)) for i in range(steps + 1)]  # 64: [8, 4, 2, 1, 1]
        self.start_channels = widths[0]
        self.linear = nn.Linear(input_dim, widths[0] * 16)  # (ch*8) x 4 x 4 after reshape
        self.blocks = nn.Sequential(*[GeneratorBlock(widths[i], widths[i + 1]) for i in range(steps)])
        self.output = nn.Sequential(
            nn.BatchNorm2d(widths[-1]),
            nn.ReLU(True),
            nn.Conv2d(widths[-1], out_channels, 3, 1, 1),  # out_channels x R x R
            nn.Tanh(),
        )
        self.apply(_init)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None,
                attributes: torch.Tensor | None = None) -> torch.Tensor:
        """Maps z [N, latent_dim] (with labels [N] and attributes [N, A] where conditional) to images [N, C, R, R]."""
        z = conditioned_latent(z, labels, attributes, self.embedding, self.attribute_embedding)
        h = self.linear(z).view(z.shape[0], self.start_channels, 4, 4)  # (ch*8) x 4 x 4
        return self.output(self.blocks(h))


@DISCRIMINATORS.register("resnet")
class ResNetDiscriminator(nn.Module):
    """image -> one real/fake logit per image.

    Args:
        resolution: input side (32..256).
        channels: width multiplier; block i has ``channels * min(8, 2^i)`` maps.
        in_channels: image channels.
        num_classes: >0 adds a projection term.
        spectral_norm: spectral normalization on every layer (on by default in the recipe).
        minibatch_std: append the minibatch standard deviation to the pooled features (anti-collapse).
        auxiliary_classifier: add an AC-GAN class head (``forward(..., return_classes=True)``).
        num_attributes: >0 adds a projection term for continuous attributes (``AttributeProjection``).
    """

    def __init__(self, resolution: int = 64, channels: int = 64, in_channels: int = 1, num_classes: int = 0,
                 spectral_norm: bool = True, minibatch_std: bool = False, auxiliary_classifier: bool = False,
                 num_attributes: int = 0) -> None:
        super().__init__()
        steps = num_doublings(resolution)
        widths = [channels * min(8, 2**i) for i in range(steps)]  # 64: [1, 2, 4, 8] * ch, ending at 4x4
        blocks = [DiscriminatorBlock(in_channels, widths[0], spectral_norm, first=True)]
        blocks += [DiscriminatorBlock(widths[i - 1], widths[i], spectral_norm) for i in range(1, steps)]
        self.blocks = nn.Sequential(*blocks)  # widths[-1] x 4 x 4
        self.minibatch_std = minibatch_std
        self.linear = maybe_spectral_norm(spectral_norm)(nn.Linear(widths[-1] + int(minibatch_std), 1))
        self.projection = ProjectionHead(num_classes, widths[-1], spectral_norm)
        self.classifier = ClassifierHead(num_classes, widths[-1], auxiliary_classifier)
        self.attribute_projection = AttributeProjection(num_attributes, widths[-1], spectral_norm)
        self.apply(_init)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None, attributes: torch.Tensor | None = None,
                return_classes: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Maps images [N, C, R, R] (with labels [N] and attributes [N, A] where conditional) to logits [N]; with
        ``return_classes`` also to the auxiliary classifier's class logits [N, num_classes]."""
        features = F.relu(self.blocks(images))  # (ch*8) x 4 x 4
        pooled = features.sum(dim=(2, 3))  # [N, ch*8]
        head = torch.cat([pooled, minibatch_stddev(features)[:, :, 0, 0]], dim=1) if self.minibatch_std else pooled
        logits = self.linear(head).squeeze(1) + self.projection(pooled, labels)
        logits = logits + self.attribute_projection(pooled, attributes)
        return (logits, self.classifier(pooled)) if return_classes else logits
