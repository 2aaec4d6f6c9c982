"""Sampling from a trained noise-to-image run: N images, per-class images, latent interpolations.

The model comes from the run's checkpoint through the inference registry (``medgan.inference``); this module
adds the run-level conveniences the CLI, evaluation and utility use.
"""

from __future__ import annotations

from pathlib import Path

import torch

from medgan.data.intensity import IntensityMapping
from medgan.errors import CheckpointError
from medgan.export import export, output_folder
from medgan.export.common import all_or_nothing
from medgan.inference import NoiseToImage, load_model
from medgan.visuals import image_grid, png_bytes


def load_generator(run_dir: str | Path, which: str = "best") -> NoiseToImage:
    """The noise-to-image model of a run; a run of another kind (e.g. translation) raises CheckpointError."""
    model = load_model(run_dir, which)
    if not isinstance(model, NoiseToImage):
        raise CheckpointError(f"this run ({model.config.task}) does not generate images from noise", run_dir)
    return model


def generate(run_dir: str | Path, n: int, seed: int = 0, class_name: str | None = None,
             loaded: NoiseToImage | None = None,
             attributes: dict[str, float] | None = None) -> tuple[torch.Tensor, IntensityMapping]:
    """N synthetic images of a run.

    Args:
        run_dir: a run directory written by ``medgan train``.
        n: number of images.
        seed: noise seed (same seed, same images).
        class_name: for conditional runs, the class to generate (default: classes in turn).
        loaded: an already loaded model (avoids reading the checkpoint again).
        attributes: raw attribute values by name (e.g. ``{"age": 60}``); attributes not given take their
            training mean.

    Returns:
        (images [n, C, R, R] in [-1, 1], the run's intensity mapping).
    """
    loaded = loaded or load_generator(run_dir)
    return loaded.generate(n, seed, class_name, attributes), loaded.mapping


def interpolate(run_dir: str | Path, steps: int = 8, rows: int = 4, seed: int = 0,
                loaded: NoiseToImage | None = None) -> torch.Tensor:
    """Latent interpolation grid of a run (see ``NoiseToImage.interpolate``)."""
    loaded = loaded or load_generator(run_dir)
    return loaded.interpolate(steps, rows, seed)


def write_samples(images: torch.Tensor, loaded: NoiseToImage, out: str | Path, fmt: str,
                  interpolation: torch.Tensor | None = None, columns: int = 8) -> list[Path]:
    """Exports ``images`` and, if given, the interpolation grid ``interpolation.png``, all or nothing.

    Args:
        images: generated images in [-1, 1].
        loaded: the model they came from (intensity mapping and spacing).
        out: the output folder, or file for single-file formats (see ``medgan.export.export``).
        fmt: an export format.
        interpolation: interpolation images (``interpolate``), ``columns`` per row.
        columns: images per row of the interpolation grid.

    Returns:
        Every path written; when any write fails none of them is left (DataError naming the file).
    """
    folder = output_folder(out, fmt)
    picture = None if interpolation is None else png_bytes(image_grid(interpolation, columns), scale=2)
    with all_or_nothing(folder) as batch:
        written = export(images, Path(out), fmt, mapping=loaded.mapping, spacing=loaded.spacing)
        if picture is not None:
            with batch.file("interpolation.png") as temporary:
                temporary.write_bytes(picture)
            written.append(folder / "interpolation.png")
    return written
