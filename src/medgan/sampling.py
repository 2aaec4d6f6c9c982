"""Sampling from a trained run: N images, per-class images, latent interpolations; export to files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from medgan.config import RunConfig, from_dict
from medgan.data.intensity import IntensityMapping
from medgan.errors import CheckpointError, ConfigError
from medgan.networks import build_networks
from medgan.training.checkpoint import load_checkpoint, load_module_state

SAMPLE_BATCH = 64  # images per forward pass


@dataclass
class LoadedGenerator:
    """The inference generator of a run and what is needed to interpret its output."""

    generator: torch.nn.Module
    config: RunConfig
    mapping: IntensityMapping
    spacing: tuple[float, float]
    class_names: tuple[str, ...]
    checkpoint: Path
    attribute_names: tuple[str, ...] = ()
    attribute_mean: tuple[float, ...] = ()
    attribute_std: tuple[float, ...] = ()

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
        if not self.attribute_names:
            if values:
                raise ConfigError(f"--attribute {next(iter(values))!r} given, but this run has no attributes")
            return None
        unknown = [name for name in values if name not in self.attribute_names]
        if unknown:
            raise ConfigError(f"unknown attribute {unknown[0]!r}; this run has: {', '.join(self.attribute_names)}")
        raw = [float(values.get(name, mean)) for name, mean in zip(self.attribute_names, self.attribute_mean)]
        return (torch.tensor(raw) - torch.tensor(self.attribute_mean)) / torch.tensor(self.attribute_std)


def checkpoint_path(run_dir: str | Path, which: str = "best") -> Path:
    """``run_dir/checkpoints/{which}.pt``, falling back to latest.pt; a missing run raises CheckpointError."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError("run directory not found", run_dir)
    for name in (which, "latest"):
        path = run_dir / "checkpoints" / f"{name}.pt"
        if path.is_file():
            return path
    raise CheckpointError("no checkpoint in this run directory (expected checkpoints/latest.pt)", run_dir)


def load_generator(run_dir: str | Path, which: str = "best") -> LoadedGenerator:
    """Loads the EMA generator (or the raw one when EMA is off) of a run, in eval mode on the CPU."""
    path = checkpoint_path(run_dir, which)
    state = load_checkpoint(path)
    try:
        config = from_dict(state["config"])
        meta = state["data"]
        weights = state["task"].get("ema") or state["task"]["generator"]
        mapping = IntensityMapping.from_dict(meta["mapping"])
    except (KeyError, TypeError, ValueError, ConfigError) as error:
        raise CheckpointError(f"checkpoint is incomplete or incompatible ({error})", path) from None
    generator, _ = build_networks(config.model, config.data.resolution, int(meta["channels"]))
    load_module_state(generator, weights, path, "generator")
    return LoadedGenerator(generator.eval(), config, mapping, tuple(meta["spacing"]), tuple(meta["class_names"]), path,
                           tuple(meta.get("attribute_names", ())), tuple(meta.get("attribute_mean", ())),
                           tuple(meta.get("attribute_std", ())))


@torch.no_grad()
def _forward(loaded: LoadedGenerator, noise: torch.Tensor, labels: torch.Tensor | None,
             attributes: torch.Tensor | None = None) -> torch.Tensor:
    """Runs the generator in batches; ``attributes`` is one standardized vector [A] shared by all images."""
    chunks = []
    for start in range(0, noise.shape[0], SAMPLE_BATCH):
        z = noise[start : start + SAMPLE_BATCH]
        part = labels[start : start + SAMPLE_BATCH] if labels is not None else None
        values = attributes.expand(z.shape[0], -1) if attributes is not None else None
        chunks.append(loaded.generator(z, part, values).float())
    return torch.cat(chunks) if chunks else noise.new_zeros((0, 1, 1, 1))


def generate(run_dir: str | Path, n: int, seed: int = 0, class_name: str | None = None,
             loaded: LoadedGenerator | None = None,
             attributes: dict[str, float] | None = None) -> tuple[torch.Tensor, IntensityMapping]:
    """N synthetic images of a run.

    Args:
        run_dir: a run directory written by ``medgan train``.
        n: number of images.
        seed: noise seed (same seed, same images).
        class_name: for conditional runs, the class to generate (default: classes in turn).
        loaded: an already loaded generator (avoids reading the checkpoint again).
        attributes: for runs conditioned on continuous attributes, raw values by name (e.g. ``{"age": 60}``);
            attributes not given take their training mean.

    Returns:
        (images [n, C, R, R] in [-1, 1], the run's intensity mapping).
    """
    loaded = loaded or load_generator(run_dir)
    rng = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, loaded.config.model.latent_dim, generator=rng)
    labels = None
    if loaded.class_names:
        index = loaded.class_index(class_name)
        labels = torch.full((n,), index) if index is not None else torch.arange(n) % len(loaded.class_names)
    return _forward(loaded, noise, labels, loaded.attribute_vector(attributes)), loaded.mapping


def interpolate(run_dir: str | Path, steps: int = 8, rows: int = 4, seed: int = 0,
                loaded: LoadedGenerator | None = None) -> torch.Tensor:
    """Latent interpolation grid: ``rows`` spherical paths between random z pairs, ``steps`` images each.

    Spherical interpolation (slerp) keeps the intermediate z at the norm the generator saw in training,
    which linear interpolation through the origin would not.

    Returns:
        [rows * steps, C, R, R] images in [-1, 1], row-major.
    """
    loaded = loaded or load_generator(run_dir)
    rng = torch.Generator().manual_seed(seed)
    start = torch.randn(rows, loaded.config.model.latent_dim, generator=rng)
    end = torch.randn(rows, loaded.config.model.latent_dim, generator=rng)
    weights = torch.linspace(0, 1, steps)
    noise = torch.stack([slerp(start, end, float(t)) for t in weights], dim=1).reshape(rows * steps, -1)
    labels = None
    if loaded.class_names:
        labels = (torch.arange(rows) % len(loaded.class_names)).repeat_interleave(steps)
    return _forward(loaded, noise, labels, loaded.attribute_vector(None))


def slerp(start: torch.Tensor, end: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between rows of ``start`` and ``end`` at fraction ``t``."""
    unit_start = start / start.norm(dim=1, keepdim=True)
    unit_end = end / end.norm(dim=1, keepdim=True)
    omega = torch.acos((unit_start * unit_end).sum(dim=1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    sin = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / sin) * start + (torch.sin(t * omega) / sin) * end
