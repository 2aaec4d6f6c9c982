"""Generator and discriminator architectures, registered by name."""

from __future__ import annotations

from torch import nn

from medgan.networks import dcgan, resnet  # noqa: F401  (registers the architectures)
from medgan.networks.registry import DISCRIMINATORS, GENERATORS

__all__ = ["GENERATORS", "DISCRIMINATORS", "build_generator", "build_discriminator"]


def build_generator(model_config, resolution: int, channels: int, num_classes: int = 0,
                    num_attributes: int = 0, spatial_dims: int = 2) -> nn.Module:
    """The noise-to-image generator named by a ModelConfig.

    Args:
        model_config: medgan.config.ModelConfig (architecture name, widths, latent size).
        resolution: image side.
        channels: image channels.
        num_classes: classes to condition on (0: unconditional); a fact of the data, from the DataSpec.
        num_attributes: continuous attributes to condition on (0: none), from the DataSpec.
        spatial_dims: 2 for images, 3 for volumes (dcgan only; config check).
    """
    options = {"conditional_norm": True} if model_config.conditional_norm else {}  # dcgan only (config check)
    if spatial_dims != 2:
        options["spatial_dims"] = spatial_dims
    if model_config.upsample != "transposed":
        options["upsample"] = model_config.upsample  # dcgan only (config check)
    return GENERATORS.get(model_config.name)(
        resolution=resolution,
        latent_dim=model_config.latent_dim,
        channels=model_config.generator_channels,
        out_channels=channels,
        num_classes=num_classes,
        num_attributes=num_attributes,
        **options,
    )


def build_discriminator(model_config, resolution: int, channels: int, num_classes: int = 0,
                        num_attributes: int = 0, spatial_dims: int = 2) -> nn.Module:
    """The discriminator named by a ModelConfig (arguments as for :func:`build_generator`)."""
    options = {"spatial_dims": spatial_dims} if spatial_dims != 2 else {}
    return DISCRIMINATORS.get(model_config.name)(
        resolution=resolution,
        channels=model_config.discriminator_channels,
        in_channels=channels,
        num_classes=num_classes,
        spectral_norm=model_config.spectral_norm,
        minibatch_std=model_config.minibatch_std,
        auxiliary_classifier=model_config.auxiliary_classifier,
        num_attributes=num_attributes,
        **options,
    )
