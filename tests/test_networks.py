"""Network shapes at every resolution, output ranges, conditioning, DCGAN init."""

import pytest
import torch

from medgan.config import ModelConfig
from medgan.networks import build_discriminator, build_generator
from medgan.networks.dcgan import DCGANDiscriminator, DCGANGenerator, num_doublings


def build_networks(config, resolution, num_classes=0):
    """(G, D) for one channel at ``resolution``, conditioned on ``num_classes`` classes."""
    return (build_generator(config, resolution, 1, num_classes),
            build_discriminator(config, resolution, 1, num_classes))


@pytest.mark.parametrize("name", ["dcgan", "resnet"])
@pytest.mark.parametrize("resolution", [32, 64, 128, 256])
def test_generator_and_discriminator_shapes(name, resolution):
    config = ModelConfig(name=name, latent_dim=16, generator_channels=4, discriminator_channels=4)
    generator, discriminator = build_networks(config, resolution)
    images = generator(torch.randn(2, 16))
    assert images.shape == (2, 1, resolution, resolution)
    assert images.min() >= -1 and images.max() <= 1  # Tanh output
    logits = discriminator(images)
    assert logits.shape == (2,)


@pytest.mark.parametrize("name", ["dcgan", "resnet"])
def test_conditional_networks_use_labels(name):
    config = ModelConfig(name=name, latent_dim=8, generator_channels=4, discriminator_channels=4)
    generator, discriminator = build_networks(config, 32, num_classes=3)
    generator.eval()
    z = torch.randn(1, 8).repeat(3, 1)
    images = generator(z, torch.tensor([0, 1, 2]))
    assert not torch.allclose(images[0], images[1])  # same z, different class -> different image
    logits = discriminator(images, torch.tensor([0, 1, 2]))
    swapped = discriminator(images, torch.tensor([2, 0, 1]))
    assert logits.shape == (3,) and not torch.allclose(logits, swapped)


def test_dcgan_layout_follows_the_classic_recipe():
    generator = DCGANGenerator(resolution=64, latent_dim=100, channels=64)
    kinds = [type(m).__name__ for m in generator.main]
    assert kinds[:3] == ["ConvTranspose2d", "BatchNorm2d", "ReLU"] and kinds[-1] == "Tanh"
    assert generator.main[0].out_channels == 512  # ngf * 8 at 4 x 4
    discriminator = DCGANDiscriminator(resolution=64, channels=64)
    first = discriminator.features[1]
    assert isinstance(first, torch.nn.LeakyReLU) and first.negative_slope == 0.2
    assert not any(isinstance(m, torch.nn.Sigmoid) for m in discriminator.modules())  # logits out
    weights = torch.cat([m.weight.flatten() for m in generator.modules() if isinstance(m, torch.nn.ConvTranspose2d)])
    assert abs(weights.std().item() - 0.02) < 0.002 and abs(weights.mean().item()) < 0.001


def test_spectral_norm_bounds_the_discriminator_weights():
    torch.manual_seed(0)  # the power iteration starts from a random vector
    discriminator = build_networks(ModelConfig(name="resnet", discriminator_channels=4, generator_channels=4), 32)[1]
    for _ in range(5):  # one power iteration per training-mode forward pass
        discriminator(torch.randn(4, 1, 32, 32))
    conv = discriminator.blocks[1].conv1
    sigma = torch.linalg.matrix_norm(conv.weight.flatten(1), ord=2)
    assert sigma.item() == pytest.approx(1.0, abs=0.1)


def test_unsupported_resolution_is_rejected():
    with pytest.raises(ValueError):
        num_doublings(48)


@pytest.mark.parametrize("name", ["dcgan", "resnet"])
def test_auxiliary_classifier_head_returns_class_logits(name):
    config = ModelConfig(name=name, latent_dim=8, generator_channels=4, discriminator_channels=4,
                         auxiliary_classifier=True)
    _, discriminator = build_networks(config, 32, num_classes=3)
    discriminator.eval()  # no spectral-norm power iteration between the two calls
    images, labels = torch.randn(4, 1, 32, 32), torch.tensor([0, 1, 2, 0])
    logits, classes = discriminator(images, labels, return_classes=True)
    assert logits.shape == (4,) and classes.shape == (4, 3)
    assert torch.allclose(logits, discriminator(images, labels))  # the head does not change the real/fake logit
    _, plain = build_networks(ModelConfig(name=name, latent_dim=8, generator_channels=4, discriminator_channels=4),
                              32, num_classes=3)
    with pytest.raises(ValueError, match="no auxiliary classifier"):
        plain(images, labels, return_classes=True)



@pytest.mark.parametrize("upsample", ["transposed", "bilinear", "nearest", "bilinear-output", "nearest-output"])
def test_generator_upsampling_choices_keep_shapes_and_say_what_they_build(upsample):
    generator = build_generator(ModelConfig(upsample=upsample), resolution=32, channels=1)
    assert generator(torch.randn(2, 128)).shape == (2, 1, 32, 32)
    transposed = [m for m in generator.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    resizes = [m for m in generator.modules() if isinstance(m, torch.nn.Upsample)]
    mode, _, only_output = upsample.partition("-")
    # 32 px: a 4x4 transposed stem, then two inner x2 steps and the output step
    expected_resizes = 0 if mode == "transposed" else 1 if only_output else 3
    assert len(resizes) == expected_resizes and len(transposed) == 4 - expected_resizes
    assert all(m.mode == mode for m in resizes)


def test_upsampling_is_checked_by_name():
    from medgan.errors import ConfigError
    from medgan.training.tasks import resolve_config

    with pytest.raises(ConfigError, match="model.upsample"):
        resolve_config({"data": {"source": "mni152"}, "model": {"upsample": "cubic"}}, "medgan")
    with pytest.raises(ConfigError, match="model.upsample"):
        resolve_config({"data": {"source": "mni152"}, "model": {"name": "resnet", "upsample": "bilinear"}}, "medgan")
