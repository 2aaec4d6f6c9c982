"""Adversarial losses on logits and gradient penalties."""

from medgan.losses.adversarial import (
    ADVERSARIAL,
    AdversarialLoss,
    get_adversarial,
    hinge_discriminator_loss,
    hinge_generator_loss,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
    nonsaturating_discriminator_loss,
    nonsaturating_generator_loss,
    saturating_generator_loss,
    wasserstein_discriminator_loss,
    wasserstein_generator_loss,
)
from medgan.losses.penalties import gradient_penalty, r1_penalty

__all__ = [
    "ADVERSARIAL",
    "AdversarialLoss",
    "get_adversarial",
    "gradient_penalty",
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "lsgan_discriminator_loss",
    "lsgan_generator_loss",
    "nonsaturating_discriminator_loss",
    "nonsaturating_generator_loss",
    "r1_penalty",
    "saturating_generator_loss",
    "wasserstein_discriminator_loss",
    "wasserstein_generator_loss",
]
