"""A latent encoder E: image -> z, trained on the generator's own samples, to start (or replace) inversion.

Training (``train_encoder``) needs no real images: each step draws z ~ N(0, I) (and a class for conditional runs),
makes x = G(z), and fits E so that E(x) returns z, with ``latent_weight x ||E(x) - z||^2 / d`` plus
``image_weight x L1(G(E(x)), x)`` (the second term teaches E what matters for the image, not only for z).
HA-GAN ships such an encoder; e4e/pSp train one on real images for StyleGAN.

The file is two parts with one stem: ``NAME.safetensors`` (weights only: nothing executable is unpickled) and
``NAME.json`` (the architecture and the run it belongs to); ``load_encoder`` refuses an encoder whose resolution,
channels or latent size differ from the run's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medgan.errors import ConfigError, DataError
from medgan.inference.noise import NoiseToImage, inference_copy
from medgan.utils import atomic_write_files

ENCODER_FORMAT = "medgan-latent-encoder"
ENCODER_VERSION = 1
WEIGHTS_SUFFIX = ".safetensors"


@dataclass(frozen=True)
class EncoderConfig:
    """The architecture of an encoder (stored in its JSON file)."""

    resolution: int  # image side
    channels: int  # image channels
    latent_dim: int  # size of z
    width: int = 32  # feature maps of the first convolution (doubling per stage, at most 8x)


class LatentEncoder(nn.Module):
    """[N, C, R, R] in [-1, 1] -> [N, latent_dim]: stride-2 convolutions down to 4 x 4, then a linear layer."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        stages = int(math.log2(config.resolution // 4))
        if 4 * 2**stages != config.resolution:
            raise ConfigError(f"the encoder needs a resolution of 4 * 2^k, got {config.resolution}")
        widths = [config.width * min(8, 2**i) for i in range(stages)]
        layers: list[nn.Module] = []
        previous = config.channels
        for width in widths:  # width x R/2^(i+1) x R/2^(i+1)
            layers += [nn.Conv2d(previous, width, 4, 2, 1), nn.GroupNorm(min(8, width), width), nn.LeakyReLU(0.2)]
            previous = width
        self.trunk = nn.Sequential(*layers)  # widths[-1] x 4 x 4
        self.head = nn.Linear(previous * 16, config.latent_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(images).flatten(1))


@dataclass
class Encoder:
    """A trained encoder with its configuration and what it was trained from."""

    network: LatentEncoder
    config: EncoderConfig
    record: dict[str, Any]  # run, steps, final losses

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """[N, latent_dim] latents of [N, C, R, R] images in [-1, 1]."""
        self.network.eval()
        return torch.cat([self.network(images[i : i + 64].float()) for i in range(0, images.shape[0], 64)])


def encoder_config(model: NoiseToImage, width: int = 32) -> EncoderConfig:
    """The encoder architecture that fits ``model``'s images and latent."""
    if model.spec.dims != 2:
        raise ConfigError("the latent encoder is for 2D runs; this run makes volumes")
    return EncoderConfig(model.spec.resolution, model.spec.channels, model.latent_dim, width)


def train_encoder(model: NoiseToImage, steps: int = 1000, batch_size: int = 32, learning_rate: float = 1e-3,
                  image_weight: float = 1.0, latent_weight: float = 1.0, seed: int = 0, width: int = 32,
                  progress: Callable[[int], None] | None = None) -> Encoder:
    """Trains an encoder on ``model``'s samples (module docstring).

    Args:
        model: a 2D noise-to-image model.
        steps: optimizer steps.
        batch_size: samples per step.
        learning_rate: Adam's learning rate (cosine decay to 0).
        image_weight: weight of L1(G(E(G(z))), G(z)).
        latent_weight: weight of ||E(G(z)) - z||^2 / d.
        seed: seed of the encoder's initial weights and of the samples.
        width: feature maps of the encoder's first convolution.
        progress: called with 1 after each step.
    """
    if not 1 <= steps <= 1_000_000 or not 1 <= batch_size <= 4096:
        raise ConfigError(f"--steps must be 1 to 1,000,000 and the batch 1 to 4,096, got {steps} and {batch_size}")
    config = encoder_config(model, width)
    rng = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # the weights' initialization, without touching the global RNG
        torch.manual_seed(seed)
        network = LatentEncoder(config)
    generator = inference_copy(model.generator)
    attributes = model.attribute_vector(None)
    optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate, betas=(0.9, 0.99))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    latent_loss = image_loss = math.nan
    network.train()
    for _ in range(steps):
        latents = torch.randn(batch_size, model.latent_dim, generator=rng)
        labels = (torch.randint(len(model.class_names), (batch_size,), generator=rng)
                  if model.class_names else None)
        values = None if attributes is None else attributes.expand(batch_size, -1)
        with torch.no_grad():
            images = generator(latents, labels, values).float()
        guessed = network(images)
        latent_term = (guessed - latents).pow(2).mean()
        image_term = (generator(guessed, labels, values).float() - images).abs().mean()
        loss = latent_weight * latent_term + image_weight * image_term
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        latent_loss, image_loss = float(latent_term.detach()), float(image_term.detach())
        if progress is not None:
            progress(1)
    record = {"run": str(model.checkpoint), "steps": steps, "batch_size": batch_size, "seed": seed,
              "final_latent_mse": latent_loss, "final_image_l1": image_loss}
    return Encoder(network.eval(), config, record)


def encoder_paths(path: str | Path) -> tuple[Path, Path]:
    """(weights, config) files of an encoder named ``path`` (with or without the .safetensors suffix)."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix == WEIGHTS_SUFFIX else path
    return stem.with_name(stem.name + WEIGHTS_SUFFIX), stem.with_name(stem.name + ".json")


def save_encoder(encoder: Encoder, path: str | Path) -> list[Path]:
    """Writes ``NAME.safetensors`` and ``NAME.json`` together (both or neither)."""
    from safetensors.torch import save as save_safetensors

    weights, config = encoder_paths(path)
    tensors = {name: value.detach().cpu().contiguous().clone() for name, value in encoder.network.state_dict().items()}
    text = json.dumps({"format": ENCODER_FORMAT, "version": ENCODER_VERSION, "config": asdict(encoder.config),
                       "weights": weights.name, **encoder.record}, indent=2, allow_nan=False) + "\n"
    return atomic_write_files({weights: save_safetensors(tensors, metadata={"format": "pt"}), config: text})


def load_encoder(path: str | Path, model: NoiseToImage | None = None) -> Encoder:
    """The encoder saved at ``path``; with ``model``, checked to fit that model's images and latent.

    Raises:
        DataError: missing or unreadable files. ConfigError: an encoder made for another run's shapes.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load as load_safetensors

    weights, config_path = encoder_paths(path)
    for item in (weights, config_path):
        if not item.is_file():
            raise DataError("no such encoder file (medgan train-encoder writes NAME.safetensors and NAME.json)", item)
    try:
        record = json.loads(config_path.read_text(encoding="utf-8"))
        if record.get("format") != ENCODER_FORMAT:
            raise ValueError(f"format is {record.get('format')!r}, not {ENCODER_FORMAT!r}")
        config = EncoderConfig(**record["config"])
        network = LatentEncoder(config)
        network.load_state_dict(load_safetensors(weights.read_bytes()))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as error:
        raise DataError(f"not a usable medgan encoder ({str(error).splitlines()[0][:200]})", weights) from None
    if model is not None:
        wanted = encoder_config(model, config.width)
        if wanted != config:
            raise ConfigError(f"this encoder takes {config.resolution} px images with {config.channels} channel(s) "
                              f"and makes {config.latent_dim}-d latents; the run needs {wanted.resolution} px, "
                              f"{wanted.channels} and {wanted.latent_dim}-d", weights)
    record = {key: value for key, value in record.items() if key not in ("format", "version", "config", "weights")}
    return Encoder(network.eval(), config, record)
