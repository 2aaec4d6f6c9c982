"""Gradient penalties on the discriminator: R1 (Mescheder et al. 2018) and WGAN-GP (Gulrajani et al. 2017).

Both differentiate D's logits with respect to its input with ``create_graph=True`` so the penalty itself can be
back-propagated into D's weights. Gradient norms are computed in float32: under bf16 autocast the squared
norms of small gradients would otherwise round to zero or lose most of their bits.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


def _input_gradient(outputs: Tensor, inputs: Tensor) -> Tensor:
    """d(sum of outputs)/d(inputs) as float32, keeping the graph for a second backward pass."""
    (gradient,) = torch.autograd.grad(outputs=outputs.float().sum(), inputs=inputs, create_graph=True)
    return gradient.float()


def r1_penalty(real_images: Tensor, real_logits: Tensor) -> Tensor:
    """E_x ||grad_x D(x)||^2 on real images (the R1 regularizer, without its gamma / 2 factor).

    The caller must have set ``real_images.requires_grad_(True)`` before computing ``real_logits`` and
    multiplies the result by ``gamma / 2`` (times the lazy-regularization interval, if any).

    Args:
        real_images: [N, C, H, W] images that D saw, with ``requires_grad`` set.
        real_logits: D's logits on ``real_images``, [N] or [N, 1] (any shape whose sum is per-batch).

    Returns:
        Scalar float32 mean over the batch of the squared gradient norm of each image.

    Raises:
        ValueError: ``real_images`` does not require grad (a bug in the caller).
    """
    if not real_images.requires_grad:
        raise ValueError("r1_penalty needs real_images.requires_grad_(True) before D is evaluated")
    gradient = _input_gradient(real_logits, real_images)
    return gradient.square().flatten(start_dim=1).sum(dim=1).mean()


def gradient_penalty(
    discriminator: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    generator: torch.Generator | None = None,
) -> Tensor:
    """WGAN-GP: E[(||grad D(x_hat)|| - 1)^2] at random interpolates x_hat = a * real + (1 - a) * fake.

    Args:
        discriminator: maps [N, C, H, W] images to logits (one per image).
        real: [N, C, H, W] real images (detached inside: the penalty trains D only).
        fake: [N, C, H, W] generated images, same shape as ``real`` (detached inside).
        generator: RNG for the per-image mixing weights a ~ U[0, 1]; None uses torch's global RNG.

    Returns:
        Scalar float32 penalty (the caller multiplies by its weight, usually 10).

    Raises:
        ValueError: ``real`` and ``fake`` have different shapes (a bug in the caller).
    """
    if real.shape != fake.shape:
        shapes = f"{tuple(real.shape)} and {tuple(fake.shape)}"
        raise ValueError(f"gradient_penalty needs real and fake of the same shape, got {shapes}")
    # Draw on the generator's own device (a CPU generator cannot fill a CUDA tensor), then move.
    rng_device = generator.device if generator is not None else real.device
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    alpha = torch.rand(shape, generator=generator, device=rng_device).to(device=real.device, dtype=real.dtype)
    interpolates = (alpha * real.detach() + (1.0 - alpha) * fake.detach()).requires_grad_(True)
    gradient = _input_gradient(discriminator(interpolates), interpolates)
    # sqrt(sum + tiny) instead of norm(): finite second derivative even where the gradient is exactly zero.
    norms = (gradient.square().flatten(start_dim=1).sum(dim=1) + 1e-12).sqrt()
    return (norms - 1.0).square().mean()
