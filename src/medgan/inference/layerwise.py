"""Layer-wise refinement of an inversion (opt-in: ``InversionConfig.layer_steps``): after the latent search, the
generator's feature maps at a quarter of the image side (16 x 16 at 64 px) are optimized directly, the layers
below them left out, as in Bau et al. 2019 ("Seeing what a GAN cannot generate"). The latent of a 64 px DCGAN
(128 numbers) cannot place every fold of a new brain; the 16 x 16 maps can move structure locally while the
layers above them still render it in the generator's own texture.

The objective is the inversion's (SSIM, L1, discriminator features) plus a pull back to the latent's own maps,
``layer_weight x mean((h - h0)^2) / mean(h0^2)``, so the refined maps stay near what the generator makes. The
reconstruction then is no longer G(z) for any z: the saved latent reproduces the image before refinement, and
what needs a latent (counterfactuals, the inversion attack) never uses this step. The maps are many numbers: a
brain generator's refinement reproduces rotated brains and abdominal CT about as closely as brains
(``benchmarks/layerwise_control.py``), so the refined image shows what G cannot draw (where it differs from G(z)),
not that G represents the input.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from medgan.errors import ConfigError


def layer_at(generator: nn.Module, side: int, probe: tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]
             ) -> nn.Module:
    """The last module of the generator's trunk (``main`` of the DCGAN generator, ``blocks`` of the ResNet one)
    whose output is ``side`` pixels wide, found by running ``probe`` (z, labels, attributes) once.

    Raises:
        ConfigError: a generator without such a trunk or stage.
    """
    trunk = getattr(generator, "main", None) or getattr(generator, "blocks", None)
    if not isinstance(trunk, nn.Sequential):
        raise ConfigError(f"layer-wise inversion needs a DCGAN or ResNet generator, not {type(generator).__name__}")
    sides: dict[int, int] = {}
    hooks = [module.register_forward_hook(lambda m, _i, out, k=k: sides.__setitem__(k, out.shape[-1]))
             for k, module in enumerate(trunk)]
    try:
        with torch.no_grad():
            generator(*probe)
    finally:
        for hook in hooks:
            hook.remove()
    matching = [k for k, width in sides.items() if width == side]
    if not matching:
        raise ConfigError(f"the generator has no {side} x {side} stage to refine")
    return trunk[max(matching)]


def refine(generator: nn.Module, objective, targets: torch.Tensor, latents: torch.Tensor,
           labels: torch.Tensor | None, attributes: torch.Tensor | None, steps: int, weight: float,
           learning_rate: float = 0.01, side: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(images [N, C, R, R], objective [N]) after ``steps`` Adam steps on the feature maps at side R / 4 (or
    ``side``: ``benchmarks/layerwise_control.py`` compares coarser stages).

    Args:
        generator: the inference copy of G (eval mode, no gradients to its weights).
        objective: the inversion's ``Objective``.
        targets: [N, C, R, R] in [-1, 1].
        latents, labels, attributes: the latent search's result for each target.
        steps: Adam steps (cosine schedule from ``learning_rate``); each image keeps its best step, step 0 (the
            latent's own image) included, so the objective never rises.
        weight: weight of the pull back to the latent's maps.
    """
    side = side or max(4, targets.shape[-1] // 4)
    layer = layer_at(generator, side, (latents[:1], None if labels is None else labels[:1],
                                        None if attributes is None else attributes[:1]))
    captured: dict[str, torch.Tensor] = {}
    hook = layer.register_forward_hook(lambda _m, _i, out: captured.__setitem__("h", out.detach().clone()))
    try:
        with torch.no_grad():
            generator(latents, labels, attributes)
    finally:
        hook.remove()
    start = captured["h"]
    scale = start.pow(2).flatten(1).mean(1).clamp_min(1e-8)
    maps = start.clone().requires_grad_(True)
    target_features = objective.target_features(targets)
    optimizer = torch.optim.Adam([maps], lr=learning_rate)
    best_loss = torch.full((targets.shape[0],), math.inf)
    best_images = torch.empty_like(targets)
    hook = layer.register_forward_hook(lambda _m, _i, _out: maps)
    try:
        with torch.enable_grad():
            for step in range(steps + 1):
                images = generator(latents, labels, attributes).float()
                loss, _ = objective(images, targets, target_features, latents)
                loss = loss + weight * (maps - start).pow(2).flatten(1).mean(1) / scale
                better = loss.detach() < best_loss
                best_loss = torch.where(better, loss.detach(), best_loss)
                best_images[better] = images.detach()[better]
                if step == steps:
                    break
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate * 0.5 * (1 + math.cos(math.pi * step / steps))
                optimizer.zero_grad(set_to_none=True)
                loss.sum().backward()
                optimizer.step()
    finally:
        hook.remove()
    return best_images, best_loss
