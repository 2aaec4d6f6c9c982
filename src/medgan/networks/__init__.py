"""Generator and discriminator architectures, registered by name."""

from medgan.networks import dcgan, resnet  # noqa: F401  (registers the architectures)
from medgan.networks.registry import DISCRIMINATORS, GENERATORS

__all__ = ["GENERATORS", "DISCRIMINATORS", "build_networks"]


def build_networks(model_config, resolution: int, channels: int = 1):
    """Builds (generator, discriminator) for a ModelConfig at a resolution.

    Args:
        model_config: medgan.config.ModelConfig.
        resolution: image side.
        channels: image channels.
    """
    generator = GENERATORS.get(model_config.name)(
        resolution=resolution,
        latent_dim=model_config.latent_dim,
        channels=model_config.generator_channels,
        out_channels=channels,
        num_classes=model_config.num_classes,
        num_attributes=model_config.num_attributes,
    )
    discriminator = DISCRIMINATORS.get(model_config.name)(
        resolution=resolution,
        channels=model_config.discriminator_channels,
        in_channels=channels,
        num_classes=model_config.num_classes,
        spectral_norm=model_config.spectral_norm,
        minibatch_std=model_config.minibatch_std,
        auxiliary_classifier=model_config.auxiliary_classifier,
        num_attributes=model_config.num_attributes,
    )
    return generator, discriminator
