"""Adversarial losses against their formulas, orderings, gradient signs, and the R1 / WGAN-GP penalties."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from medgan.errors import ConfigError
from medgan.losses import (
    ADVERSARIAL,
    get_adversarial,
    gradient_penalty,
    r1_penalty,
    saturating_generator_loss,
)

FAMILIES = ("nonsaturating", "hinge", "lsgan", "wasserstein")
LOG2 = math.log(2.0)


def test_registry_names_and_unknown_name():
    assert ADVERSARIAL.names() == sorted(FAMILIES)
    with pytest.raises(ConfigError, match="hinge"):
        get_adversarial("bce")


@pytest.mark.parametrize(
    ("name", "real", "fake", "expected_d", "expected_g"),
    [
        # At logits 0, D(x) = 0.5: each BCE term is log 2, the non-saturating G loss too.
        ("nonsaturating", [0.0, 0.0], [0.0, 0.0], 2 * LOG2, LOG2),
        # softplus(-2) + softplus(-1) for D; softplus(1) for G.
        ("nonsaturating", [2.0], [-1.0], math.log1p(math.exp(-2)) + math.log1p(math.exp(-1)), math.log1p(math.e)),
        ("hinge", [0.0], [0.0], 2.0, 0.0),
        # Reals: mean(relu(1 - 2), relu(1 - 0.5)) = 0.25; fakes: mean(relu(1 - 0.5), relu(1 - 3)) = 0.25.
        ("hinge", [2.0, 0.5], [-0.5, -3.0], 0.25 + 0.25, -(-0.5 - 3.0) / 2),
        ("lsgan", [0.0], [0.0], 0.5, 0.5),
        ("lsgan", [1.0, 3.0], [2.0], 0.5 * (2.0 + 4.0), 0.5),
        ("wasserstein", [1.0, 3.0], [0.5], 0.5 - 2.0, -0.5),
    ],
)
def test_values_match_formulas(name, real, fake, expected_d, expected_g):
    family = get_adversarial(name)
    real_logits, fake_logits = torch.tensor(real), torch.tensor(fake)
    assert family.discriminator(real_logits, fake_logits).item() == pytest.approx(expected_d, rel=1e-6, abs=1e-7)
    assert family.generator(fake_logits).item() == pytest.approx(expected_g, rel=1e-6, abs=1e-7)


def test_saturating_generator_loss_is_log_one_minus_d():
    fake = torch.tensor([0.0, -2.0, 3.0])
    expected = torch.log1p(-torch.sigmoid(fake)).mean()
    assert saturating_generator_loss(fake).item() == pytest.approx(expected.item(), rel=1e-6)
    # It saturates: when D confidently rejects fakes, its gradient almost vanishes, unlike the non-saturating loss.
    confident = torch.tensor([-8.0], requires_grad=True)
    saturating_generator_loss(confident).backward()
    saturating_grad = confident.grad.abs().item()
    confident.grad = None
    get_adversarial("nonsaturating").generator(confident).backward()
    assert saturating_grad < 1e-3 < confident.grad.abs().item()


@pytest.mark.parametrize("name", FAMILIES)
def test_better_discriminator_has_lower_loss(name):
    family = get_adversarial(name)
    fooled = family.discriminator(torch.tensor([-0.5, -0.2]), torch.tensor([0.4, 0.1]))
    chance = family.discriminator(torch.zeros(2), torch.zeros(2))
    # Within [-1, 1] so that hinge/lsgan have not yet saturated or overshot.
    good = family.discriminator(torch.tensor([0.9, 0.8]), torch.tensor([-0.9, -0.7]))
    assert good.item() < chance.item() < fooled.item()


@pytest.mark.parametrize("name", FAMILIES)
def test_better_generator_has_lower_loss(name):
    family = get_adversarial(name)
    rejected, accepted = torch.tensor([-0.8, -0.6]), torch.tensor([0.6, 0.8])
    assert family.generator(accepted).item() < family.generator(rejected).item()


@pytest.mark.parametrize("name", FAMILIES)
def test_gradient_signs(name):
    family = get_adversarial(name)
    real = torch.tensor([0.2, -0.3], requires_grad=True)
    # Fakes in (0, 1) and reals below 1: inside every family's active region (LSGAN's fake target is 0).
    fake = torch.tensor([0.1, 0.4], requires_grad=True)
    family.discriminator(real, fake).backward()
    # Descending D's loss raises real logits and lowers fake logits.
    assert (real.grad < 0).all() and (fake.grad > 0).all()
    fake.grad = None
    family.generator(fake).backward()
    # Descending G's loss raises fake logits.
    assert (fake.grad < 0).all()


@pytest.mark.parametrize("name", FAMILIES)
def test_bf16_logits_give_float32_scalar(name):
    family = get_adversarial(name)
    real, fake = torch.randn(4, 1).bfloat16(), torch.randn(4, 1).bfloat16()
    loss_d, loss_g = family.discriminator(real, fake), family.generator(fake)
    assert loss_d.dtype == loss_g.dtype == torch.float32
    assert loss_d.dim() == loss_g.dim() == 0
    reference = family.discriminator(real.float(), fake.float())
    assert loss_d.item() == pytest.approx(reference.item(), rel=1e-6)


def _linear_discriminator(weight: torch.Tensor) -> nn.Module:
    """D(x) = <w, x> + b on flattened 1x4x4 images: its input gradient is w everywhere."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(weight.numel(), 1))
    with torch.no_grad():
        model[1].weight.copy_(weight.reshape(1, -1))
        model[1].bias.fill_(0.3)
    return model


def test_r1_on_linear_discriminator_is_squared_weight_norm():
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(16, generator=generator)
    model = _linear_discriminator(weight)
    images = torch.randn(5, 1, 4, 4, generator=generator).requires_grad_(True)
    penalty = r1_penalty(images, model(images))
    assert penalty.item() == pytest.approx(weight.square().sum().item(), rel=1e-6)
    # create_graph=True: the penalty back-propagates into D's weights, d||w||^2/dw = 2w.
    penalty.backward()
    torch.testing.assert_close(model[1].weight.grad.reshape(-1), 2 * weight)


def test_r1_on_quadratic_discriminator():
    # D(x) = 0.5 * sum(x^2): grad = x, so R1 = mean over images of ||x||^2.
    images = torch.tensor([[[[1.0, 2.0]]], [[[0.0, -3.0]]]]).requires_grad_(True)
    logits = 0.5 * images.square().flatten(1).sum(1)
    assert r1_penalty(images, logits).item() == pytest.approx((5.0 + 9.0) / 2)


def test_r1_requires_grad_on_images():
    images = torch.randn(2, 1, 4, 4)
    with pytest.raises(ValueError, match="requires_grad"):
        r1_penalty(images, images.sum((1, 2, 3)))


def test_r1_under_bf16_autocast_on_cpu():
    generator = torch.Generator().manual_seed(1)
    with torch.random.fork_rng():  # the same weights whatever ran before (some inits put bf16 6% off)
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(64, 1))
    images = torch.randn(3, 1, 4, 4, generator=generator).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(images)
        penalty = r1_penalty(images, logits)
    assert logits.dtype == torch.bfloat16 and penalty.dtype == torch.float32
    reference = r1_penalty(images, model(images))
    assert penalty.item() == pytest.approx(reference.item(), rel=0.05)
    penalty.backward()
    assert all(parameter.grad is not None and parameter.grad.abs().sum() > 0 for parameter in model.parameters()
               if parameter.dim() > 1)


def test_gradient_penalty_zero_for_unit_norm_linear_critic():
    weight = torch.randn(16, generator=torch.Generator().manual_seed(2))
    model = _linear_discriminator(weight / weight.norm())
    real, fake = torch.rand(4, 1, 4, 4) * 2 - 1, torch.rand(4, 1, 4, 4) * 2 - 1
    penalty = gradient_penalty(model, real, fake, torch.Generator().manual_seed(0))
    assert penalty.item() == pytest.approx(0.0, abs=1e-10)


def test_gradient_penalty_value_for_scaled_linear_critic():
    weight = torch.randn(16, generator=torch.Generator().manual_seed(3))
    model = _linear_discriminator(3.0 * weight / weight.norm())
    real, fake = torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)
    # ||grad|| = 3 everywhere, so (3 - 1)^2 = 4 whatever the interpolation weights.
    assert gradient_penalty(model, real, fake).item() == pytest.approx(4.0, rel=1e-6)


def test_gradient_penalty_is_deterministic_and_trains_discriminator_only():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 1))
    real = torch.randn(4, 1, 4, 4)
    fake = torch.randn(4, 1, 4, 4, requires_grad=True)
    first = gradient_penalty(model, real, fake, torch.Generator().manual_seed(7))
    second = gradient_penalty(model, real, fake, torch.Generator().manual_seed(7))
    other = gradient_penalty(model, real, fake, torch.Generator().manual_seed(8))
    assert first.item() == second.item() != other.item()
    first.backward()
    assert fake.grad is None
    assert model[1].weight.grad.abs().sum() > 0


def test_gradient_penalty_under_bf16_autocast():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(64, 1))
    real, fake = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        penalty = gradient_penalty(model, real, fake, torch.Generator().manual_seed(0))
    reference = gradient_penalty(model, real, fake, torch.Generator().manual_seed(0))
    assert penalty.dtype == torch.float32 and torch.isfinite(penalty)
    assert penalty.item() == pytest.approx(reference.item(), rel=0.05, abs=1e-3)


def test_gradient_penalty_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        gradient_penalty(lambda x: x.sum((1, 2, 3)), torch.zeros(2, 1, 4, 4), torch.zeros(3, 1, 4, 4))
