"""GAN inversion: the latent z (and, for conditional runs, the class) whose image G(z) reproduces a given image.

The objective is offline (no downloaded weights), per image, in the model's units [-1, 1]:

    ssim_weight x (1 - SSIM) + l1_weight x L1 + feature_weight x D-feature distance + prior_weight x prior(z)

* SSIM is the project's SSIM (``medgan.metrics.image``: MONAI's Gaussian 11 px, sigma 1.5, on the display scale
  [0, 1]), differentiable; L1 is the mean absolute difference in model units.
* The feature distance uses the run's own discriminator as the feature network, the way LPIPS uses a classifier's:
  the activations after each of D's downsampling stages, unit-normalized across channels at every position, their
  squared difference averaged over positions and stages. D was trained on this data, so its features describe
  these images; a model bundle carries no D and the term is then left out (``InversionResult.feature_term``).
* The prior keeps z on the shell where the Gaussian latent lives: ``(mean(z^2) - 1)^2``.

Adam optimizes ``restarts`` starts per image (and per class when a conditional run's class is searched) in one
batch, the learning rate on a cosine schedule; each candidate keeps the best z it visited, and each image keeps its
best candidate by the objective. Every candidate's loss is a sum of per-candidate terms and the networks run in
eval mode (BatchNorm with running statistics; D's minibatch-stddev head is not used), so the candidates of a batch
do not influence each other; each image's random starts are seeded by ``seed`` and its position in the targets.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medgan.errors import CheckpointError, ConfigError
from medgan.inference.noise import NoiseToImage, inference_copy
from medgan.utils import quiet_import

SSIM_WINDOW = 11  # medgan.metrics.image.SSIM_WINDOW (not imported: inference sits below metrics)
SSIM_SIGMA = 1.5  # medgan.metrics.image.SSIM_SIGMA
CANDIDATES_PER_BATCH = 256  # candidates (images x restarts x classes) optimized together


@dataclass(frozen=True)
class InversionConfig:
    """How ``invert`` searches the latent space (the defaults of ``medgan invert`` and ``Model.invert``)."""

    steps: int = 300  # Adam steps per start (0: the start itself, e.g. the encoder's guess)
    restarts: int = 4  # starts per image (and class); the encoder's guess replaces the first random one
    learning_rate: float = 0.05  # Adam's step size at the start of the cosine schedule
    ssim_weight: float = 1.0  # weight of 1 - SSIM
    l1_weight: float = 1.0  # weight of the L1 distance in model units
    feature_weight: float = 1.0  # weight of the discriminator-feature distance (0 or no D: left out)
    prior_weight: float = 0.01  # weight of (mean(z^2) - 1)^2, keeping z where the Gaussian latent lives
    seed: int = 0  # seed of the random starts
    layer_steps: int = 0  # then Adam steps on G's feature maps at a quarter of the side (medgan.inference.layerwise)
    layer_weight: float = 0.1  # weight of the layer-wise step's pull back to the latent's own feature maps

    def check(self) -> None:
        """Raises ConfigError for values the search cannot run with."""
        if not 0 <= self.steps <= 100_000:
            raise ConfigError(f"--steps must be between 0 and 100,000, got {self.steps}")
        if not 1 <= self.restarts <= 64:
            raise ConfigError(f"--restarts must be between 1 and 64, got {self.restarts}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ConfigError(f"the learning rate must be positive, got {self.learning_rate}")
        if not 0 <= self.layer_steps <= 100_000:
            raise ConfigError(f"--layer-steps must be between 0 and 100,000, got {self.layer_steps}")
        if not (self.layer_weight >= 0 and math.isfinite(self.layer_weight)):
            raise ConfigError(f"the layer-wise weight must be at least 0, got {self.layer_weight}")


@dataclass
class InversionResult:
    """What ``invert`` found for N images.

    Attributes:
        latents: [N, latent_dim] the best z per image.
        labels: [N] class index per image (conditional runs), else None.
        images: [N, C, R, R] G(z) in [-1, 1] (with ``layer_steps``: the layer-wise refinement of G(z)).
        objective: [N] the objective of the best candidate (with ``layer_steps``: after refinement, its pull
            back to the latent's maps included).
        ssim_trace: [steps + 1, N] the best SSIM among each image's candidates at each step (step 0: the starts).
        feature_term: whether the discriminator-feature distance was part of the objective.
        layer_steps: the layer-wise steps that refined ``images`` (0: ``images`` is G(latents)).
    """

    latents: torch.Tensor
    labels: torch.Tensor | None
    images: torch.Tensor
    objective: torch.Tensor
    ssim_trace: torch.Tensor
    feature_term: bool
    layer_steps: int = 0


# -----------------------------------------------------------------------------------------------------------
# the run's discriminator as a feature network


def load_discriminator(run_path: str | Path, which: str = "best") -> tuple[nn.Module, Any]:
    """The run's discriminator (from the ``which`` checkpoint's task state) in eval mode, and the run's data spec.

    Raises:
        CheckpointError: not a run directory, or a checkpoint without a discriminator (e.g. a model bundle).
    """
    from medgan.checkpoint import load_module_state
    from medgan.networks import build_discriminator
    from medgan.run import RunDir

    run = RunDir.existing(run_path)
    state, path = run.load_checkpoint(which)
    inference = run.load_inference(which)
    weights = (state.get("task") or {}).get("discriminator")
    if not isinstance(weights, dict):
        raise CheckpointError("the checkpoint holds no discriminator (e.g. an inference-only bundle)", path)
    weights = {key.removeprefix("_module."): value for key, value in weights.items()}  # Opacus-wrapped D
    spec, model = inference.spec, inference.config.model
    discriminator = build_discriminator(model, spec.resolution, spec.channels, spec.num_classes, spec.num_attributes)
    load_module_state(discriminator, weights, path, "discriminator")
    return discriminator.eval(), spec


class DiscriminatorFeatures(nn.Module):
    """The activations of D's convolutional trunk after each stage (DCGAN: each LeakyReLU; ResNet: each block).

    Args:
        discriminator: a medgan discriminator with a ``features`` (DCGAN) or ``blocks`` (ResNet) ``nn.Sequential``.
    """

    def __init__(self, discriminator: nn.Module) -> None:
        super().__init__()
        trunk = getattr(discriminator, "features", None) or getattr(discriminator, "blocks", None)
        if not isinstance(trunk, nn.Sequential):
            raise CheckpointError(f"{type(discriminator).__name__} has no convolutional trunk to take features from")
        self.trunk = trunk.eval().requires_grad_(False)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """[N, C, R, R] in [-1, 1] -> one [N, C_k, R_k, R_k] map per stage."""
        stages, hidden = [], images
        for layer in self.trunk:
            hidden = layer(hidden)
            if not isinstance(layer, (nn.Conv2d, nn.BatchNorm2d, nn.InstanceNorm2d)):
                stages.append(hidden)
        return stages


def feature_distance(first: list[torch.Tensor], second: list[torch.Tensor]) -> torch.Tensor:
    """[N] LPIPS-style distance: channel-normalized maps, squared difference, mean over positions and stages."""
    total = first[0].new_zeros(first[0].shape[0])
    for a, b in zip(first, second):
        a = a / (a.norm(dim=1, keepdim=True) + 1e-8)
        b = b / (b.norm(dim=1, keepdim=True) + 1e-8)
        total = total + (a - b).pow(2).sum(1).flatten(1).mean(1)
    return total / max(1, len(first))


# -----------------------------------------------------------------------------------------------------------
# the objective


def ssim_values(images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[N] SSIM of aligned [N, 1, H, W] images in [-1, 1] (display scale), differentiable.

    MONAI's ``compute_ssim_and_cs`` (``medgan.metrics.image.ssim``) with its Gaussian window applied as two 1D
    passes: the same values up to float rounding, about 5x faster forward and backward on a CPU, where SSIM was
    most of an inversion step.
    """
    x, y = ((images.float() + 1) / 2).clamp(0, 1), ((targets.float() + 1) / 2).clamp(0, 1)
    maps = torch.stack([x, y, x * x, y * y, x * y], dim=1).flatten(1, 2)  # [N, 5C, H, W]
    window = _window(maps.device)
    groups = maps.shape[1]
    blurred = F.conv2d(maps, window.view(1, 1, 1, -1).expand(groups, 1, 1, -1), groups=groups)
    blurred = F.conv2d(blurred, window.view(1, 1, -1, 1).expand(groups, 1, -1, 1), groups=groups)
    mu_x, mu_y, mu_xx, mu_yy, mu_xy = blurred.unflatten(1, (5, -1)).unbind(1)
    c1, c2 = 0.01**2, 0.03**2  # MONAI's k1 0.01, k2 0.03 at data range 1
    sigma_x, sigma_y, sigma_xy = mu_xx - mu_x * mu_x, mu_yy - mu_y * mu_y, mu_xy - mu_x * mu_y
    contrast = (2 * sigma_xy + c2) / (sigma_x + sigma_y + c2)
    return (((2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)) * contrast).flatten(1).mean(1)


def _window(device: torch.device) -> torch.Tensor:
    """MONAI's normalized 1D Gaussian window (the marginal of its separable 2D kernel)."""
    kernel = quiet_import("monai.metrics.regression")._gaussian_kernel(2, 1, (SSIM_WINDOW, SSIM_WINDOW),
                                                                       (SSIM_SIGMA, SSIM_SIGMA))
    return kernel[0, 0].sum(0).to(device=device, dtype=torch.float32)


class Objective:
    """The per-candidate inversion loss against fixed targets (module docstring)."""

    def __init__(self, config: InversionConfig, features: DiscriminatorFeatures | None) -> None:
        self.config = config
        self.features = features if config.feature_weight > 0 else None

    def target_features(self, targets: torch.Tensor) -> list[torch.Tensor] | None:
        """D's features of the targets, computed once per batch."""
        if self.features is None:
            return None
        with torch.no_grad():
            return [stage.detach() for stage in self.features(targets)]

    def __call__(self, images: torch.Tensor, targets: torch.Tensor, target_features: list[torch.Tensor] | None,
                 latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(objective [N], SSIM [N]) of candidate images against their targets."""
        config = self.config
        similarity = ssim_values(images, targets)
        loss = config.ssim_weight * (1 - similarity) + config.l1_weight * (images - targets).abs().flatten(1).mean(1)
        if target_features is not None:
            loss = loss + config.feature_weight * feature_distance(self.features(images), target_features)
        loss = loss + config.prior_weight * (latents.pow(2).mean(1) - 1).pow(2)
        return loss, similarity


# -----------------------------------------------------------------------------------------------------------
# the search


def invert(model: NoiseToImage, targets: torch.Tensor, config: InversionConfig = InversionConfig(),
           labels: torch.Tensor | None = None, features: DiscriminatorFeatures | None = None,
           starts: torch.Tensor | None = None, progress: Callable[[int], None] | None = None) -> InversionResult:
    """The latents whose images reproduce ``targets``.

    Args:
        model: a 2D noise-to-image model.
        targets: [N, C, R, R] images in [-1, 1] at the run's resolution.
        config: the search settings.
        labels: conditional runs: [N] class per image, or None to search over every class.
        features: the run's discriminator features (``DiscriminatorFeatures``), or None to leave that term out.
        starts: [N, latent_dim] a first start per image (an encoder's guess), or None for random starts only.
        progress: called with the number of steps done after each step (e.g. a progress bar's update).

    Returns:
        The best candidate per image.
    """
    config.check()
    if model.spec.dims != 2:
        raise ConfigError("inversion is for 2D runs; this run makes volumes")
    expected = (model.spec.channels, model.spec.resolution, model.spec.resolution)
    if targets.ndim != 4 or tuple(targets.shape[1:]) != expected:
        raise ConfigError(f"inversion targets must be [N, {', '.join(map(str, expected))}], got {tuple(targets.shape)}")
    generator = inference_copy(model.generator)
    objective = Objective(config, features)
    classes = _classes(model, targets.shape[0], labels)
    chunk = images_per_chunk(model, config, labels)
    parts = []
    for start in range(0, targets.shape[0], chunk):
        stop = min(start + chunk, targets.shape[0])
        parts.append(_invert_chunk(model, generator, objective, targets[start:stop].float(), classes[start:stop],
                                   None if starts is None else starts[start:stop], start, progress))
    result = _joined(parts, model, objective.features is not None)
    if config.layer_steps:
        _refined(result, model, generator, objective, targets.float())
    return result


def _refined(result: InversionResult, model: NoiseToImage, generator: nn.Module, objective: Objective,
             targets: torch.Tensor) -> None:
    """Replaces ``result``'s images and objective by their layer-wise refinement (``medgan.inference.layerwise``):
    one candidate per image, so ``CANDIDATES_PER_BATCH`` images at a time."""
    from medgan.inference.layerwise import refine

    config = objective.config
    attributes = model.attribute_vector(None)
    for start in range(0, targets.shape[0], CANDIDATES_PER_BATCH):
        rows = slice(start, min(start + CANDIDATES_PER_BATCH, targets.shape[0]))
        count = rows.stop - rows.start
        images, loss = refine(generator, objective, targets[rows], result.latents[rows],
                              None if result.labels is None else result.labels[rows],
                              None if attributes is None else attributes.expand(count, -1),
                              config.layer_steps, config.layer_weight)
        result.images[rows], result.objective[rows] = images, loss
    result.layer_steps = config.layer_steps


def images_per_chunk(model: NoiseToImage, config: InversionConfig, labels: torch.Tensor | None) -> int:
    """Images optimized together: ``CANDIDATES_PER_BATCH`` candidates (restarts x classes searched per image)."""
    searched = len(model.class_names) if model.class_names and labels is None else 1
    return max(1, CANDIDATES_PER_BATCH // (config.restarts * searched))


def _classes(model: NoiseToImage, count: int, labels: torch.Tensor | None) -> torch.Tensor:
    """[N, K] the classes tried per image: the given one, every class, or a placeholder for unconditional runs."""
    if not model.class_names:
        if labels is not None:
            raise ConfigError("a class was given, but this run is not class-conditional")
        return torch.full((count, 1), -1, dtype=torch.long)
    if labels is None:
        return torch.arange(len(model.class_names)).expand(count, -1).clone()
    return labels.long().reshape(count, 1)


def _initial_latents(model: NoiseToImage, count: int, per_image: int, classes: int, starts: torch.Tensor | None,
                     seed: int, offset: int) -> torch.Tensor:
    """[count * per_image, d], candidates ordered image-major; each image's random starts depend only on the seed
    and the image's position (``offset`` + its index), not on the batch it is in."""
    rows = []
    for index in range(count):
        rng = torch.Generator().manual_seed(seed * 1_000_003 + offset + index)
        latents = torch.randn(per_image, model.latent_dim, generator=rng)
        if starts is not None:  # the guess replaces the first random start of every class
            latents.view(classes, -1, model.latent_dim)[:, 0] = starts[index].float()
        rows.append(latents)
    return torch.cat(rows)


def _invert_chunk(model: NoiseToImage, generator: nn.Module, objective: Objective, targets: torch.Tensor,
                  classes: torch.Tensor, starts: torch.Tensor | None, offset: int,
                  progress: Callable[[int], None] | None) -> dict[str, torch.Tensor]:
    config = objective.config
    count, tried = classes.shape
    per_image = config.restarts * tried
    latents = _initial_latents(model, count, per_image, tried, starts, config.seed, offset).requires_grad_(True)
    labels = None if not model.class_names else classes.repeat_interleave(config.restarts, dim=1).reshape(-1)
    attributes = model.attribute_vector(None)
    attributes = None if attributes is None else attributes.expand(latents.shape[0], -1)
    expanded = targets.repeat_interleave(per_image, dim=0)
    target_features = objective.target_features(targets)
    if target_features is not None:
        target_features = [stage.repeat_interleave(per_image, dim=0) for stage in target_features]
    optimizer = torch.optim.Adam([latents], lr=config.learning_rate)
    best_loss = torch.full((latents.shape[0],), math.inf)
    best_latents = latents.detach().clone()
    trace = []
    with torch.enable_grad():
        for step in range(config.steps + 1):
            images = generator(latents, labels, attributes).float()
            loss, similarity = objective(images, expanded, target_features, latents)
            better = loss.detach() < best_loss
            best_loss = torch.where(better, loss.detach(), best_loss)
            best_latents[better] = latents.detach()[better]
            trace.append(similarity.detach().view(count, per_image).amax(1))
            if step == config.steps:
                break
            for group in optimizer.param_groups:  # cosine decay to 0 over the steps
                group["lr"] = config.learning_rate * 0.5 * (1 + math.cos(math.pi * step / config.steps))
            optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()
            optimizer.step()
            if progress is not None:
                progress(1)
    pick = best_loss.view(count, per_image).argmin(1) + torch.arange(count) * per_image
    return {"latents": best_latents[pick], "labels": None if labels is None else labels[pick],
            "objective": best_loss[pick], "trace": torch.stack(trace)}


def _joined(parts: list[dict[str, torch.Tensor]], model: NoiseToImage, feature_term: bool) -> InversionResult:
    latents = torch.cat([part["latents"] for part in parts])
    labels = None if parts[0]["labels"] is None else torch.cat([part["labels"] for part in parts])
    attributes = model.attribute_vector(None)
    images = model.forward(latents, labels, attributes)
    return InversionResult(latents, labels, images, torch.cat([part["objective"] for part in parts]),
                           torch.cat([part["trace"] for part in parts], dim=1), feature_term)
