"""Adversarial loss families as pure functions on discriminator logits.

Every function takes raw logits (no sigmoid inside the models) and returns a scalar mean. A family pairs a
discriminator loss with a generator loss; the training loop looks families up by name in ``ADVERSARIAL``:

====================  ========================================  ============================
name                  discriminator loss L_D                    generator loss L_G
====================  ========================================  ============================
``nonsaturating``     softplus(-r) + softplus(f)                softplus(-f)  (= -log D(G(z)))
``hinge``             relu(1 - r) + relu(1 + f)                 -f
``lsgan``             0.5 [(r - 1)^2 + f^2]                     0.5 (f - 1)^2
``wasserstein``       f - r                                     -f
====================  ========================================  ============================

``r`` are logits on real images, ``f`` logits on generated images. Losses are computed in float32 even under
bf16 autocast, because softplus/log terms lose too many bits in bf16 near a confident discriminator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn.functional as F
from torch import Tensor

from medgan.registry import Registry

DiscriminatorLoss = Callable[[Tensor, Tensor], Tensor]
GeneratorLoss = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class AdversarialLoss:
    """A loss family: how D is scored on (real, fake) logits and how G is scored on fake logits.

    Args:
        discriminator: ``(real_logits, fake_logits) -> scalar`` loss minimized by D.
        generator: ``fake_logits -> scalar`` loss minimized by G.
    """

    discriminator: DiscriminatorLoss
    generator: GeneratorLoss


ADVERSARIAL: Registry[AdversarialLoss] = Registry("adversarial loss")


def _float(logits: Tensor) -> Tensor:
    """Logits as float32, so losses keep full precision under bf16 autocast."""
    return logits.float()


# ---------------------------------------------------------------------------------------------------------
# Non-saturating (classic BCE on logits)


def nonsaturating_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """-[log D(x) + log(1 - D(G(z)))] with D = sigmoid(logits), computed stably from logits.

    Args:
        real_logits: D's logits on real images, any shape.
        fake_logits: D's logits on generated images, any shape.

    Returns:
        Scalar mean loss (each term averaged over its own batch, then summed).
    """
    real, fake = _float(real_logits), _float(fake_logits)
    # -log sigmoid(r) = softplus(-r); -log(1 - sigmoid(f)) = softplus(f); same as BCE-with-logits.
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def nonsaturating_generator_loss(fake_logits: Tensor) -> Tensor:
    """-log D(G(z)) = softplus(-f): strong gradients early, when D confidently rejects fakes.

    Args:
        fake_logits: D's logits on generated images.

    Returns:
        Scalar mean loss.
    """
    return F.softplus(-_float(fake_logits)).mean()


def saturating_generator_loss(fake_logits: Tensor) -> Tensor:
    """The original minimax G loss log(1 - D(G(z))) = -softplus(f); kept for completeness and comparison.

    Its gradient vanishes when D rejects fakes confidently (f -> -inf), which is why training uses the
    non-saturating form.

    Args:
        fake_logits: D's logits on generated images.

    Returns:
        Scalar mean loss (to be minimized by G).
    """
    return -F.softplus(_float(fake_logits)).mean()


# ---------------------------------------------------------------------------------------------------------
# Hinge


def hinge_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """relu(1 - r) + relu(1 + f): D stops pushing once reals score above 1 and fakes below -1.

    Args:
        real_logits: D's logits on real images.
        fake_logits: D's logits on generated images.

    Returns:
        Scalar mean loss.
    """
    return F.relu(1.0 - _float(real_logits)).mean() + F.relu(1.0 + _float(fake_logits)).mean()


def hinge_generator_loss(fake_logits: Tensor) -> Tensor:
    """-f: G raises D's score on its samples.

    Args:
        fake_logits: D's logits on generated images.

    Returns:
        Scalar mean loss.
    """
    return -_float(fake_logits).mean()


# ---------------------------------------------------------------------------------------------------------
# Least squares (LSGAN, targets a=0, b=1, c=1)


def lsgan_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """0.5 [(r - 1)^2 + f^2]: D regresses reals to 1 and fakes to 0.

    Args:
        real_logits: D's outputs on real images.
        fake_logits: D's outputs on generated images.

    Returns:
        Scalar mean loss.
    """
    return 0.5 * ((_float(real_logits) - 1.0).square().mean() + _float(fake_logits).square().mean())


def lsgan_generator_loss(fake_logits: Tensor) -> Tensor:
    """0.5 (f - 1)^2: G pulls D's output on fakes towards the real target 1.

    Args:
        fake_logits: D's outputs on generated images.

    Returns:
        Scalar mean loss.
    """
    return 0.5 * (_float(fake_logits) - 1.0).square().mean()


# ---------------------------------------------------------------------------------------------------------
# Wasserstein (use with a Lipschitz constraint: gradient_penalty or spectral norm)


def wasserstein_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """f - r: the critic maximizes the score gap between real and generated images.

    Args:
        real_logits: critic scores on real images.
        fake_logits: critic scores on generated images.

    Returns:
        Scalar mean loss.
    """
    return _float(fake_logits).mean() - _float(real_logits).mean()


def wasserstein_generator_loss(fake_logits: Tensor) -> Tensor:
    """-f: G raises the critic's score on its samples.

    Args:
        fake_logits: critic scores on generated images.

    Returns:
        Scalar mean loss.
    """
    return -_float(fake_logits).mean()


ADVERSARIAL.register("nonsaturating")(
    AdversarialLoss(discriminator=nonsaturating_discriminator_loss, generator=nonsaturating_generator_loss)
)
ADVERSARIAL.register("hinge")(AdversarialLoss(discriminator=hinge_discriminator_loss, generator=hinge_generator_loss))
ADVERSARIAL.register("lsgan")(AdversarialLoss(discriminator=lsgan_discriminator_loss, generator=lsgan_generator_loss))
ADVERSARIAL.register("wasserstein")(
    AdversarialLoss(discriminator=wasserstein_discriminator_loss, generator=wasserstein_generator_loss)
)


def get_adversarial(name: str) -> AdversarialLoss:
    """The loss family registered as ``name``.

    Args:
        name: one of ``ADVERSARIAL.names()``.

    Returns:
        The family's discriminator and generator losses.

    Raises:
        ConfigError: the name is not registered (the message lists valid names).
    """
    return ADVERSARIAL.get(name)
