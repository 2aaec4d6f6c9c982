"""The classic DCGAN (Radford et al. 2016) generalized to square resolutions 32..256, in 2D or 3D.

Generator: transposed convolutions with BatchNorm and ReLU, Tanh output. Discriminator: strided convolutions
with LeakyReLU(0.2) and BatchNorm after the first layer; it returns logits (no Sigmoid: losses take logits).
With ``spatial_dims=3`` every layer is its 3D counterpart (cubes of side ``resolution``), as MONAI shares 2D and
3D networks through ``spatial_dims``; 3D-GAN (Wu et al. 2016) and alpha-WGAN (Kwon et al. 2019) use this shape.
Weights are initialized from N(0, 0.02) (BatchNorm scale from N(1, 0.02)) as in the paper.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from medgan.networks.common import (
    CONV,
    CONV_TRANSPOSED,
    NORM,
    AttributeProjection,
    ClassifierHead,
    ConditionalBatchNorm2d,
    ProjectionHead,
    condition_inputs,
    conditioned_latent,
    maybe_spectral_norm,
    minibatch_stddev,
)
from medgan.networks.registry import DISCRIMINATORS, GENERATORS


def num_doublings(resolution: int) -> int:
    """How many x2 steps lead from 4x4 to ``resolution`` (32 -> 3, 64 -> 4, ..., 256 -> 6)."""
    steps = int(math.log2(resolution // 4))
    if 4 * 2**steps != resolution:
        raise ValueError(f"resolution must be 4 * 2^k, got {resolution}")
    return steps


def dcgan_init(module: nn.Module) -> None:
    """N(0, 0.02) for conv weights, N(1, 0.02) for BatchNorm scales, zero biases (DCGAN paper, section 4)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Conv3d, nn.ConvTranspose3d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm3d)) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def doubling(in_channels: int, out_channels: int, upsample: str, spatial_dims: int = 2) -> list[nn.Module]:
    """Layers that double the side of a feature map: a 4x4 stride-2 transposed convolution, or interpolation
    (``"bilinear"``, ``"nearest"``; trilinear in 3D) followed by a 3x3 convolution."""
    if upsample == "transposed":
        return [CONV_TRANSPOSED[spatial_dims](in_channels, out_channels, 4, 2, 1, bias=False)]
    if upsample not in ("bilinear", "nearest"):
        raise ValueError(f"upsample must be transposed, bilinear or nearest, got {upsample!r}")
    mode = "trilinear" if upsample == "bilinear" and spatial_dims == 3 else upsample
    resize = nn.Upsample(scale_factor=2, mode=mode, **({"align_corners": False} if upsample == "bilinear" else {}))
    return [resize, CONV[spatial_dims](in_channels, out_channels, 3, 1, 1, bias=False)]


def _split_upsample(upsample: str) -> tuple[str, str]:
    """(inner steps, output step) of a generator's ``upsample`` choice."""
    if upsample.endswith("-output"):
        return "transposed", upsample.removesuffix("-output")
    return upsample, upsample


@GENERATORS.register("dcgan")
class DCGANGenerator(nn.Module):
    """z (optionally with a class) -> image in [-1, 1].

    Args:
        resolution: output side (32, 64, 128 or 256).
        latent_dim: size of z.
        channels: width multiplier (ngf); the 4x4 stage has ``channels * min(8, 2^(k-1))`` maps.
        out_channels: image channels (1 for greyscale).
        num_classes: >0 concatenates a learned class embedding to z.
        num_attributes: >0 concatenates a learned linear embedding of continuous attributes to z.
        conditional_norm: with classes, every BatchNorm takes its scale and shift from the class
            (``ConditionalBatchNorm2d``) besides the class embedding in z.
        upsample: how each x2 step is made: ``"transposed"`` (the paper's 4x4 stride-2 transposed convolution) or
            a resize-convolution, ``"bilinear"``/``"nearest"`` interpolation then a 3x3 convolution (Odena et al.
            2016): a transposed convolution whose kernel does not divide evenly by its stride paints a
            checkerboard of uneven overlap, which shows as grain in the highest frequencies. ``"bilinear-output"``
            and ``"nearest-output"`` keep transposed convolutions inside and resize only into the output image,
            where the checkerboard would sit at the image's own Nyquist frequency.
        spatial_dims: 2 for images ``[N, C, R, R]``, 3 for volumes ``[N, C, R, R, R]``.
    """

    def __init__(self, resolution: int = 64, latent_dim: int = 100, channels: int = 64, out_channels: int = 1,
                 num_classes: int = 0, num_attributes: int = 0, conditional_norm: bool = False,
                 upsample: str = "transposed", spatial_dims: int = 2) -> None:
        super().__init__()
        steps = num_doublings(resolution)
        self.latent_dim = latent_dim
        self.spatial_dims = spatial_dims
        self.embedding, self.attribute_embedding, input_dim = condition_inputs(num_classes, num_attributes, latent_dim)
        widths = [channels * min(8, 2 ** (steps - 1 - i)) for i in range(steps)]  # 64x64: [8, 4, 2, 1] * ngf

        def norm(features: int) -> nn.Module:
            if conditional_norm and num_classes > 0:
                return ConditionalBatchNorm2d(features, num_classes, spatial_dims)
            return NORM[spatial_dims](features)

        layers: list[nn.Module] = [
            CONV_TRANSPOSED[spatial_dims](input_dim, widths[0], 4, 1, 0, bias=False),  # (ngf*8) x 4 x 4 [x 4]
            norm(widths[0]),
            nn.ReLU(True),
        ]
        inner, output = _split_upsample(upsample)
        for i in range(1, steps):
            layers += [
                *doubling(widths[i - 1], widths[i], inner, spatial_dims),  # widths[i] x 2^(i+2) x 2^(i+2) [x ..]
                norm(widths[i]),
                nn.ReLU(True),
            ]
        layers += [
            *doubling(widths[-1], out_channels, output, spatial_dims),  # out_channels x R x R [x R]
            nn.Tanh(),
        ]
        self.main = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None,
                attributes: torch.Tensor | None = None) -> torch.Tensor:
        """Maps z [N, latent_dim] (with labels [N] and attributes [N, A] where conditional) to images [N, C, R, R]
        (volumes [N, C, R, R, R] in 3D)."""
        z = conditioned_latent(z, labels, attributes, self.embedding, self.attribute_embedding)
        x = z.reshape(*z.shape, *([1] * self.spatial_dims))
        for layer in self.main:
            x = layer(x, labels) if isinstance(layer, ConditionalBatchNorm2d) else layer(x)
        return x


@DISCRIMINATORS.register("dcgan")
class DCGANDiscriminator(nn.Module):
    """image -> one real/fake logit per image.

    Args:
        resolution: input side (32..256).
        channels: width multiplier (ndf).
        in_channels: image channels.
        num_classes: >0 adds a projection term <embed(y), features> (Miyato & Koyama 2018).
        spectral_norm: wrap every conv in spectral normalization (BatchNorm is then dropped: the two fight).
        minibatch_std: append a minibatch standard-deviation map before the output layer (anti-collapse).
        auxiliary_classifier: add an AC-GAN class head (``forward(..., return_classes=True)``).
        num_attributes: >0 adds a projection term for continuous attributes (``AttributeProjection``).
        spatial_dims: 2 for images, 3 for volumes.
    """

    def __init__(self, resolution: int = 64, channels: int = 64, in_channels: int = 1, num_classes: int = 0,
                 spectral_norm: bool = False, minibatch_std: bool = False, auxiliary_classifier: bool = False,
                 num_attributes: int = 0, spatial_dims: int = 2) -> None:
        super().__init__()
        conv = CONV[spatial_dims]
        steps = num_doublings(resolution)
        widths = [channels * min(8, 2**i) for i in range(steps)]  # 64x64: [1, 2, 4, 8] * ndf
        sn = maybe_spectral_norm(spectral_norm)
        layers: list[nn.Module] = [
            sn(conv(in_channels, widths[0], 4, 2, 1, bias=False)),  # ndf x R/2 x R/2 [x R/2]
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for i in range(1, steps):
            layers.append(sn(conv(widths[i - 1], widths[i], 4, 2, 1, bias=False)))  # widths[i] x R/2^(i+1) [x ..]
            if not spectral_norm:
                layers.append(NORM[spatial_dims](widths[i]))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        self.features = nn.Sequential(*layers)  # (ndf*8) x 4 x 4
        self.minibatch_std = minibatch_std
        self.output = sn(conv(widths[-1] + int(minibatch_std), 1, 4, 1, 0, bias=False))  # 1 x 1 x 1 [x 1]
        self.projection = ProjectionHead(num_classes, widths[-1], spectral_norm)
        self.classifier = ClassifierHead(num_classes, widths[-1], auxiliary_classifier)
        self.attribute_projection = AttributeProjection(num_attributes, widths[-1], spectral_norm)
        self.apply(dcgan_init)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None, attributes: torch.Tensor | None = None,
                return_classes: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Maps images [N, C, R, R] (volumes [N, C, R, R, R]; with labels [N] and attributes [N, A] where
        conditional) to logits [N]; with
        ``return_classes`` also to the auxiliary classifier's class logits [N, num_classes]."""
        features = self.features(images)
        head = torch.cat([features, minibatch_stddev(features)], dim=1) if self.minibatch_std else features
        logits = self.output(head).flatten(1).sum(1)  # (ndf*8 [+1]) x 4 x 4 [x 4] -> 1
        pooled = features.flatten(2).sum(dim=2)
        logits = logits + self.projection(pooled, labels) + self.attribute_projection(pooled, attributes)
        return (logits, self.classifier(pooled)) if return_classes else logits
