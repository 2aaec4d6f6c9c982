"""``NoiseToImage``: the inference generator of unconditional and conditional noise-to-image runs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.fusion import fuse_conv_bn_eval

from medgan.checkpoint import load_module_state
from medgan.config import RunConfig
from medgan.data.intensity import IntensityMapping
from medgan.data.spec import DataSpec
from medgan.errors import ConfigError
from medgan.inference.registry import INFERENCE
from medgan.networks import build_generator
from medgan.run import RunState

SAMPLE_BATCH = 64  # images per forward pass (256 measured no faster on 2 cores: the feature maps leave the cache)
KIND = "noise-to-image"
MAX_SAMPLES = 100_000  # images per call, whatever their size
MAX_SAMPLE_VALUES = 2**30  # float32 values per call (4 GiB; the export holds a few copies): bounds large images


def check_sample_count(n: int, resolution: int, option: str = "--n", dims: int = 2) -> None:
    """Raises ConfigError naming ``option`` unless ``n`` images of ``resolution`` px (volumes with ``dims`` 3) fit
    in one call.

    The bound keeps a typo (``--n 100000000``) from reaching the allocator: at most ``MAX_SAMPLES`` images and
    ``MAX_SAMPLE_VALUES`` values; larger sets are drawn in several calls with different seeds.
    """
    limit = max(1, min(MAX_SAMPLES, MAX_SAMPLE_VALUES // resolution**dims))
    if not 1 <= n <= limit:
        hint = " (draw larger sets in several calls with different --seed)" if option == "--n" else ""
        what = "x".join([str(resolution)] * dims) + (" volumes" if dims == 3 else " images")
        raise ConfigError(f"{option} must be between 1 and {limit:,} for {what} per call{hint}, got {n}")


_CONVOLUTIONS = (nn.Conv2d, nn.ConvTranspose2d, nn.Conv3d, nn.ConvTranspose3d)  # foldable with BatchNorm


def inference_copy(generator: nn.Module) -> nn.Module:
    """An eval-mode copy of ``generator`` for sampling: the same images up to float rounding, made faster.

    Each BatchNorm that directly follows a convolution in an ``nn.Sequential`` (the DCGAN generator's layers) is
    folded into that convolution's weights with torch's ``fuse_conv_bn_eval``, which removes a full pass over
    every feature map; and the weights are laid out channels-last, oneDNN's fastest convolution layout on CPU.
    Spectrally normalized convolutions and conditional norms are left as they are.
    """
    model = copy.deepcopy(generator).eval().requires_grad_(False)
    for sequential in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(sequential) - 1):
            conv, norm = sequential[i], sequential[i + 1]
            if (type(conv) in _CONVOLUTIONS and type(norm) in (nn.BatchNorm2d, nn.BatchNorm3d)
                    and norm.running_mean is not None and not parametrize.is_parametrized(conv)):
                transposed = isinstance(conv, (nn.ConvTranspose2d, nn.ConvTranspose3d))
                sequential[i] = fuse_conv_bn_eval(conv, norm, transpose=transposed)
                sequential[i + 1] = nn.Identity()
    volumetric = any(isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)) for m in model.modules())
    return model.to(memory_format=torch.channels_last_3d if volumetric else torch.channels_last)



def generator_state(generator: torch.nn.Module) -> dict[str, Any]:
    """The inference state a noise-to-image task saves: ``{"kind": "noise-to-image", "generator": weights}``."""
    return {"kind": KIND, "generator": generator.state_dict()}


class NoiseToImage:
    """A trained generator G(z[, class][, attributes]) and what is needed to interpret its output.

    Args:
        generator: the inference generator (EMA weights where EMA was on), in eval mode.
        config: the run's config.
        spec: the run's data spec (mapping back to physical units, classes, attributes).
        checkpoint: the file it was loaded from.
    """

    def __init__(self, generator: torch.nn.Module, config: RunConfig, spec: DataSpec, checkpoint: Path) -> None:
        self.generator = generator.eval()
        self._fast: nn.Module | None = None  # inference_copy(generator), made at the first forward
        self.config = config
        self.spec = spec
        self.checkpoint = checkpoint

    @property
    def mapping(self) -> IntensityMapping:
        return self.spec.mapping

    @property
    def spacing(self) -> tuple[float, ...]:
        """(row, column) mm per pixel; (D, H, W) mm per voxel for volumes."""
        return self.spec.spacing

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.spec.class_names

    @property
    def attribute_names(self) -> tuple[str, ...]:
        return self.spec.attribute_names

    @property
    def latent_dim(self) -> int:
        return self.config.model.latent_dim

    def class_index(self, class_name: str | None) -> int | None:
        """Index of ``class_name`` (None for unconditional sampling); unknown names raise ConfigError."""
        if class_name is None:
            return None
        if not self.class_names:
            raise ConfigError(f"--class {class_name!r} given, but this run is not class-conditional")
        if class_name not in self.class_names:
            raise ConfigError(f"unknown class {class_name!r}; this run has: {', '.join(self.class_names)}")
        return self.class_names.index(class_name)

    def attribute_vector(self, values: dict[str, float] | None) -> torch.Tensor | None:
        """Standardized attributes [A] for raw ``values`` by name; unnamed attributes take the training mean.

        Returns None for runs without attributes. Unknown names raise ConfigError.
        """
        values = values or {}
        names = self.spec.attribute_names
        if not names:
            if values:
                raise ConfigError(f"--attribute {next(iter(values))!r} given, but this run has no attributes")
            return None
        unknown = [name for name in values if name not in names]
        if unknown:
            raise ConfigError(f"unknown attribute {unknown[0]!r}; this run has: {', '.join(names)}")
        raw = torch.tensor([float(values.get(name, mean)) for name, mean in zip(names, self.spec.attribute_mean)])
        return self.spec.standardize(raw[None])[0]

    @torch.no_grad()
    def forward(self, noise: torch.Tensor, labels: torch.Tensor | None = None,
                attributes: torch.Tensor | None = None) -> torch.Tensor:
        """Images [N, C, R, R] in [-1, 1] for given noise, in batches; ``attributes`` is one vector [A] for all."""
        if self._fast is None:
            self._fast = inference_copy(self.generator)
        chunks = []
        for start in range(0, noise.shape[0], SAMPLE_BATCH):
            z = noise[start : start + SAMPLE_BATCH]
            part = labels[start : start + SAMPLE_BATCH] if labels is not None else None
            values = attributes.expand(z.shape[0], -1) if attributes is not None else None
            chunks.append(self._fast(z, part, values).float().contiguous())
        if not chunks:
            return noise.new_zeros((0, self.spec.channels, *[self.spec.resolution] * self.spec.dims))
        return torch.cat(chunks)

    def generate(self, n: int, seed: int = 0, class_name: str | None = None,
                 attributes: dict[str, float] | None = None) -> torch.Tensor:
        """``n`` images [n, C, R, R] in [-1, 1] (same seed, same images).

        Args:
            n: number of images.
            seed: noise seed.
            class_name: for conditional runs, the class to generate (default: classes in turn).
            attributes: raw attribute values by name; attributes not given take their training mean.
        """
        vector = self.attribute_vector(attributes)
        index = self.class_index(class_name)
        rng = torch.Generator().manual_seed(seed)
        noise = torch.randn(n, self.latent_dim, generator=rng)
        labels = None
        if self.class_names:
            labels = torch.full((n,), index) if index is not None else torch.arange(n) % len(self.class_names)
        return self.forward(noise, labels, vector)

    def interpolate(self, steps: int = 8, rows: int = 4, seed: int = 0, class_name: str | None = None) -> torch.Tensor:
        """Latent interpolation grid: ``rows`` spherical paths between random z pairs, ``steps`` images each.

        Spherical interpolation (slerp) keeps the intermediate z at the norm the generator saw in training,
        which linear interpolation through the origin would not. Conditional runs draw every row as
        ``class_name`` (default: the classes in turn, one per row).

        Returns:
            [rows * steps, C, R, R] images in [-1, 1], row-major.
        """
        rng = torch.Generator().manual_seed(seed)
        start = torch.randn(rows, self.latent_dim, generator=rng)
        end = torch.randn(rows, self.latent_dim, generator=rng)
        weights = torch.linspace(0, 1, steps)
        noise = torch.stack([slerp(start, end, float(t)) for t in weights], dim=1).reshape(rows * steps, -1)
        labels = None
        index = self.class_index(class_name)
        if self.class_names:
            labels = torch.full((rows,), index) if index is not None else torch.arange(rows) % len(self.class_names)
            labels = labels.repeat_interleave(steps)
        return self.forward(noise, labels, self.attribute_vector(None))


def slerp(start: torch.Tensor, end: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between rows of ``start`` and ``end`` at fraction ``t``."""
    unit_start = start / start.norm(dim=1, keepdim=True)
    unit_end = end / end.norm(dim=1, keepdim=True)
    omega = torch.acos((unit_start * unit_end).sum(dim=1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    sin = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / sin) * start + (torch.sin(t * omega) / sin) * end


@INFERENCE.register(KIND)
def load_noise_to_image(state: RunState, direction: str | None = None) -> NoiseToImage:
    """Builds the generator from the run's model config and data spec and loads its weights."""
    if direction is not None:
        raise ConfigError(f"this run generates images from noise; it has no direction {direction!r}", state.path)
    spec = state.spec
    generator = build_generator(state.config.model, spec.resolution, spec.channels, spec.num_classes,
                                spec.num_attributes, spatial_dims=spec.dims)
    load_module_state(generator, state.inference.get("generator"), state.path, "generator")
    return NoiseToImage(generator, state.config, spec, state.path)
