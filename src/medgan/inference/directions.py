"""Latent directions of a noise-to-image generator (SeFa) and ``medgan explore``, which pictures them.

SeFa (Shen & Zhou 2021, "Closed-Form Factorization of Latent Semantics in GANs") finds the directions of the
latent space that the generator's first layer amplifies most, without data or training: the first layer maps z
affinely, ``y = A z + b``, so a step ``alpha * n`` along a unit vector n moves its output by ``alpha * A n``, and
the unit vectors that maximize ``|A n|^2`` are the top eigenvectors of ``A^T A``, each eigenvalue being how far
that direction moves the layer's output per unit step. What the later layers make of it is not guaranteed, which
is why ``medgan explore`` also measures the change of the final image along each direction.

It is done here by hand: the published implementations (genforce/sefa and its ports) read the weights of
StyleGAN/PGGAN/BigGAN checkpoints by their module names, and no library computes it for a given PyTorch module.
It is a few lines once the layer is known: ``latent_weight`` takes the columns of the first layer that act on z
(the DCGAN generator's first transposed convolution, the ResNet generator's linear layer; class and attribute
embeddings enter the same layer after z and are left out) and an eigendecomposition of its Gram matrix in float64
does the rest.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medgan.errors import ConfigError
from medgan.inference.noise import NoiseToImage
from medgan.visuals import image_grid, png_bytes

DEFAULT_DIRECTIONS = 5  # medgan explore --directions
DEFAULT_STEPS = 7  # --steps: images per row, from -range to +range
DEFAULT_RANGE = 3.0  # --range: the largest offset along a direction, in latent standard deviations
MAX_STEPS = 64  # images per row (medgan.cli.commands.MAX_INTERPOLATION_STEPS)
MAX_RANGE = 100.0  # a larger offset leaves the latent's Gaussian shell entirely
MEASURE_SAMPLES = 8  # latents over which each direction's image change is averaged (the grid's is the first)
GRID_ROWS = 4  # rows of interpolation.png and classes.png
_FIRST_LAYERS = (nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)


@dataclass(frozen=True)
class Directions:
    """SeFa directions of a generator, strongest first.

    Attributes:
        vectors: [k, latent_dim] orthonormal directions in latent space.
        eigenvalues: [k] how much each one moves the first layer's output: ``|A n|^2`` per unit step.
        layer: the name of the layer they were read from.
    """

    vectors: torch.Tensor
    eigenvalues: torch.Tensor
    layer: str


def latent_weight(generator: nn.Module, latent_dim: int) -> tuple[torch.Tensor, str]:
    """The first layer's weights acting on z as ``[latent_dim, outputs]`` (the transpose of A), and its name.

    The DCGAN generator's ``main[0]`` is a transposed convolution from a 1x1(x1) input, whose weight
    ``[in, out, k, k(, k)]`` is reshaped to ``[in, out * k * k(* k)]``; the ResNet generator's ``linear`` weight
    ``[out, in]`` is transposed. z is the first ``latent_dim`` inputs of either (``conditioned_latent``).

    Raises:
        ConfigError: a generator whose first layer is neither.
    """
    main = getattr(generator, "main", None)
    if isinstance(main, nn.Sequential) and isinstance(main[0], (nn.ConvTranspose2d, nn.ConvTranspose3d)):
        weight, name = main[0].weight.reshape(main[0].weight.shape[0], -1), "main.0"
    elif isinstance(getattr(generator, "linear", None), nn.Linear):
        weight, name = generator.linear.weight.t(), "linear"
    else:
        raise ConfigError(f"SeFa needs a generator whose first layer maps z linearly; {type(generator).__name__} "
                          "has none it knows")
    return weight.detach()[:latent_dim], name


def sefa(generator: nn.Module, latent_dim: int, k: int) -> Directions:
    """The top-``k`` SeFa directions of ``generator`` (module docstring).

    Args:
        generator: a DCGAN or ResNet generator (the raw weights: BatchNorm not folded in).
        latent_dim: size of z.
        k: number of directions, 1..latent_dim.
    """
    if not 1 <= k <= latent_dim:
        raise ConfigError(f"--directions must be between 1 and the latent size {latent_dim}, got {k}")
    weight, name = latent_weight(generator, latent_dim)
    weight = weight.double()
    eigenvalues, eigenvectors = torch.linalg.eigh(weight @ weight.t())  # ascending; columns are the vectors
    order = torch.argsort(eigenvalues, descending=True)[:k]
    vectors = eigenvectors[:, order].t().contiguous()
    return Directions(vectors.float(), eigenvalues[order].float(), name)


def traversals(model: NoiseToImage, directions: Directions, latents: torch.Tensor, offsets: torch.Tensor,
               label: int | None) -> torch.Tensor:
    """Images of every latent moved along every direction by every offset: [k, N, steps, C, R, R] in [-1, 1]."""
    k, n, steps = directions.vectors.shape[0], latents.shape[0], offsets.shape[0]
    moved = latents[None, :, None] + offsets[None, None, :, None] * directions.vectors[:, None, None]
    noise = moved.reshape(k * n * steps, -1)
    labels = None if label is None else torch.full((noise.shape[0],), label)
    images = model.forward(noise, labels, model.attribute_vector(None))
    return images.reshape(k, n, steps, *images.shape[1:])


def change_per_unit_step(model: NoiseToImage, images: torch.Tensor, offsets: torch.Tensor) -> np.ndarray:
    """[k] mean absolute change of the image in physical units between neighbouring steps, per unit of offset."""
    physical = torch.as_tensor(model.mapping.to_physical(images.double()))
    step = float(offsets[1] - offsets[0])
    return ((physical[:, :, 1:] - physical[:, :, :-1]).abs().mean(dim=(1, 2, 3, 4, 5)) / step).numpy()


def traverse_and_measure(model: NoiseToImage, found: Directions, latents: torch.Tensor, offsets: torch.Tensor,
                         label: int | None) -> tuple[torch.Tensor, np.ndarray]:
    """(the first latent's traversal along each direction [k * steps, C, R, R], the change per unit step [k]),
    one direction at a time so that memory holds ``len(latents) * steps`` images, not ``k`` times that."""
    rows, change = [], []
    for index in range(found.vectors.shape[0]):
        one = Directions(found.vectors[index : index + 1], found.eigenvalues[index : index + 1], found.layer)
        images = traversals(model, one, latents, offsets, label)
        rows.append(images[0, 0])
        change.append(change_per_unit_step(model, images, offsets)[0])
    return torch.cat(rows), np.asarray(change)


def class_traversal(model: NoiseToImage, seed: int, rows: int = GRID_ROWS) -> torch.Tensor:
    """``rows`` latents, each rendered as every class: [rows * classes, C, R, R], one row per latent."""
    count = len(model.class_names)
    latents = torch.randn(rows, model.latent_dim, generator=torch.Generator().manual_seed(seed))
    labels = torch.arange(count).repeat(rows)
    return model.forward(latents.repeat_interleave(count, dim=0), labels, model.attribute_vector(None))


def check_explore_options(out: str | Path, directions: int, steps: int, span: float) -> None:
    """ConfigError for options ``explore`` cannot run with, or an ``out`` that exists and is not empty."""
    from medgan.run import check_output_folder

    if directions < 1:
        raise ConfigError(f"--directions must be at least 1, got {directions}")
    if not 2 <= steps <= MAX_STEPS:
        raise ConfigError(f"--steps must be between 2 and {MAX_STEPS}, got {steps}")
    if not (math.isfinite(span) and 0 < span <= MAX_RANGE):
        raise ConfigError(f"--range must be in (0, {MAX_RANGE:g}] latent standard deviations, got {span}")
    check_output_folder(out, "--out")
    if Path(out).is_dir() and any(Path(out).iterdir()):
        raise ConfigError("--out is not empty; give a new or empty folder", out)


def explore(run: str | Path, out: str | Path, directions: int = DEFAULT_DIRECTIONS, steps: int = DEFAULT_STEPS,
            span: float = DEFAULT_RANGE, seed: int = 0, class_name: str | None = None,
            loaded: NoiseToImage | None = None) -> dict[str, Any]:
    """``medgan explore``: SeFa directions, a latent interpolation and (conditional runs) a class traversal of a
    run, written into ``out`` all or nothing.

    Args:
        run: a 2D noise-to-image run directory or bundle.
        out: a new or empty folder.
        directions: how many SeFa directions, 1..latent_dim (one row of ``directions.png`` each).
        steps: images per row.
        span: the rows go from -span to +span latent standard deviations along each direction.
        seed: seed of the latents.
        class_name: conditional runs: the class of the directions and interpolation (default: the first class).
        loaded: the already loaded model of ``run``.

    Returns:
        The record written as ``explore.json``.

    Raises:
        MedganError: a bad option, a non-empty ``out``, a run without a noise generator, a 3D run, a class for an
            unconditional run or an unknown class (one line each, before anything is written).
    """
    from medgan.inference.sampling import load_generator

    check_explore_options(out, directions, steps, span)
    model = loaded or load_generator(run)
    if model.spec.dims != 2:
        raise ConfigError("medgan explore is for 2D runs; this run makes volumes (3D exploration is not supported "
                          "yet)", model.checkpoint)
    if class_name is not None and not model.class_names:
        raise ConfigError(f"--class {class_name!r} given, but this run is not class-conditional", model.checkpoint)
    label = model.class_index(class_name) if class_name is not None else (0 if model.class_names else None)
    found = sefa(model.generator, model.latent_dim, directions)
    latents = torch.randn(MEASURE_SAMPLES, model.latent_dim, generator=torch.Generator().manual_seed(seed))
    offsets = torch.linspace(-span, span, steps)
    rows, change = traverse_and_measure(model, found, latents, offsets, label)
    grids = {"directions.png": (rows, steps),
             "interpolation.png": (model.interpolate(steps, GRID_ROWS, seed, _class_name(model, label)), steps)}
    if model.class_names:
        grids["classes.png"] = (class_traversal(model, seed), len(model.class_names))
    record = explore_record(model, found, change, label, steps, span, seed, run)
    write_explore(out, grids, found, record)
    return record


def _class_name(model: NoiseToImage, label: int | None) -> str | None:
    return None if label is None else model.class_names[label]


def explore_record(model: NoiseToImage, found: Directions, change: np.ndarray, label: int | None, steps: int,
                   span: float, seed: int, run: str | Path) -> dict[str, Any]:
    """The JSON-ready summary written as ``explore.json``."""
    return {
        "synthetic": True,  # every picture here is generated: never real patients
        "command": "medgan explore", "run": str(run), "seed": seed, "class": _class_name(model, label),
        "latent_dim": model.latent_dim, "directions": int(found.vectors.shape[0]), "steps": steps, "range": span,
        "method": "SeFa (Shen & Zhou 2021): top eigenvectors of A^T A, A the first layer's weights on z",
        "layer": found.layer, "eigenvalues": [float(v) for v in found.eigenvalues],
        "mean_absolute_change_per_unit_step": [float(v) for v in change], "unit": model.mapping.unit,
        "strongest_direction": int(np.argmax(change)),
        "measures": f"directions are numbered from 0 in eigenvalue order (rows of directions.png and "
                    f"directions.npy); the change is the mean |image difference| in {model.mapping.unit or 'model'} "
                    f"units between neighbouring steps divided by the step, over {MEASURE_SAMPLES} latents of the "
                    "seed (the first is the one in directions.png); strongest_direction has the largest change",
    }


def write_explore(out: str | Path, grids: dict[str, tuple[torch.Tensor, int]], found: Directions,
                  record: dict[str, Any]) -> list[Path]:
    """Writes the grids, ``directions.npy`` and ``explore.json`` into ``out``, all or nothing."""
    from medgan.export.common import all_or_nothing

    with all_or_nothing(Path(out)) as batch:
        for name, (images, columns) in grids.items():
            with batch.file(name) as temporary:
                temporary.write_bytes(png_bytes(image_grid(images.clamp(-1, 1), columns)))
        with batch.file("directions.npy") as temporary:
            np.save(temporary, found.vectors.numpy().astype(np.float32))
        batch.write_text("explore.json", json.dumps(record, indent=2, allow_nan=False) + "\n")
        return list(batch.written)
