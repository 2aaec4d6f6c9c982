"""Sampling from a trained noise-to-image run: N images, per-class images, latent interpolations.

The model comes from the run's checkpoint through the inference registry (``medgan.inference``); this module
adds the run-level conveniences the CLI, evaluation and utility use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medgan.card import CARD_NAME, WITHHELD, card_text, sealed
from medgan.data.intensity import IntensityMapping
from medgan.errors import CheckpointError, ConfigError, DataError
from medgan.export import export, output_folder
from medgan.export.common import all_or_nothing
from medgan.inference import NoiseToImage, load_model
from medgan.metrics.memorization import NEAR_COPY_SSIM
from medgan.visuals import image_grid, png_bytes

SAMPLING_METADATA = "sampling.json"  # written beside every ``medgan sample`` export: seed, count, privacy filter
FILTER_ROUNDS = 10  # privacy filter: resampling rounds for near copies before the rest are dropped


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


def class_labels(loaded: NoiseToImage, n: int, class_name: str | None = None) -> torch.Tensor | None:
    """The class index of each of ``n`` images as ``NoiseToImage.generate`` draws them (None: unconditional)."""
    if not loaded.class_names:
        return None
    index = loaded.class_index(class_name)
    return torch.full((n,), index) if index is not None else torch.arange(n) % len(loaded.class_names)


def privacy_filter(images: torch.Tensor, loaded: NoiseToImage, seed: int = 0, class_name: str | None = None,
                   attributes: dict[str, float] | None = None, threshold: float = NEAR_COPY_SSIM,
                   progress: bool = False) -> tuple[torch.Tensor, dict[str, Any]]:
    """The export gate: replaces synthetic images that the memorization audit calls near copies of a training image
    (3D runs: volumes near copies of a training volume by 3D SSIM, the ``evaluate --dims 3`` audit).

    The training images are the run's own data, re-read with its data config. A near copy is an image whose SSIM to
    its nearest training image (``medgan.metrics.memorization``) reaches ``threshold``. Each one is replaced by a new
    draw of the same class (fresh noise from ``seed`` and the round), checked again, for up to ``FILTER_ROUNDS``
    rounds; near copies left after that are dropped.

    Returns:
        (the kept images, in order, replacements in place; the record for ``sampling.json``:
        ``{"enabled", "threshold", "checked", "near_copies", "replaced", "dropped", "training_images"}``).

    Raises:
        DataError: the run's training data cannot be read (e.g. moved).
    """
    from medgan.data import load_slices
    from medgan.metrics.features import DEFAULT_FEATURES, extract_features, get_extractor
    from medgan.metrics.memorization import TrainingIndex

    if loaded.config.data.source == WITHHELD:
        raise ConfigError("--privacy-filter compares with the training images, which a model bundle does not carry; "
                          "sample from the run directory", loaded.checkpoint)
    try:
        train = load_slices(loaded.config.data, progress=progress, skip_blank=True).images.float()
    except DataError as error:  # e.g. a bundle (its config withholds the data location) or moved data
        raise DataError(f"--privacy-filter compares with the run's training data, which cannot be read: "
                        f"{error.message}", error.path) from None
    if train.dim() == 5:  # a 3D run: its nearest training volume by 3D SSIM (medgan.metrics.volume_memorization)
        from medgan.metrics.volume_memorization import VolumeIndex

        volume_index = VolumeIndex(train)

        def near_copies(batch: torch.Tensor) -> np.ndarray:
            return np.flatnonzero(volume_index.nearest(batch.float()).ssim >= threshold)
    else:
        extractor = get_extractor(DEFAULT_FEATURES)
        index = TrainingIndex(train, extract_features(train, extractor, what="training images"))

        def near_copies(batch: torch.Tensor) -> np.ndarray:
            found = index.nearest(batch.float(), extract_features(batch.float(), extractor, what="synthetic images"))
            return np.flatnonzero(found.ssim >= threshold)

    images = images.clone()
    labels = class_labels(loaded, images.shape[0], class_name)
    vector = loaded.attribute_vector(attributes)
    flagged = near_copies(images)
    first = len(flagged)
    for round_index in range(1, FILTER_ROUNDS + 1):
        if not len(flagged):
            break
        rng = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, round_index]).generate_state(1)[0]))
        noise = torch.randn(len(flagged), loaded.latent_dim, generator=rng)
        positions = torch.as_tensor(flagged)
        images[positions] = loaded.forward(noise, None if labels is None else labels[positions], vector).to(images)
        flagged = flagged[near_copies(images[positions])]
    keep = np.setdiff1d(np.arange(images.shape[0]), flagged)
    record = {"enabled": True, "threshold": threshold, "checked": int(images.shape[0]), "near_copies": first,
              "replaced": first - len(flagged), "dropped": len(flagged), "training_images": int(train.shape[0]),
              "rule": ("3D SSIM to the nearest training volume >= threshold (medgan.metrics.volume_memorization)"
                       if train.dim() == 5 else
                       "SSIM to the nearest training image >= threshold (medgan.metrics.memorization)")}
    return images[torch.as_tensor(keep)], record


def write_samples(images: torch.Tensor, loaded: NoiseToImage, out: str | Path, fmt: str,
                  interpolation: torch.Tensor | None = None, columns: int = 8,
                  metadata: dict[str, Any] | None = None, card: dict[str, Any] | None = None) -> list[Path]:
    """Exports ``images`` and, if given, the interpolation grid ``interpolation.png``, all or nothing.

    Args:
        images: generated images in [-1, 1].
        loaded: the model they came from (intensity mapping and spacing).
        out: the output folder, or file for single-file formats (see ``medgan.export.export``).
        fmt: an export format.
        interpolation: interpolation images (``interpolate``), ``columns`` per row.
        columns: images per row of the interpolation grid.
        metadata: written as ``sampling.json`` in the output folder (e.g. seed and the privacy filter record).
        card: the synthetic-data card (``medgan.card.export_card``), written sealed as ``DATA_CARD.json``.

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
        if metadata is not None:
            batch.write_text(SAMPLING_METADATA, json.dumps(metadata, indent=2, allow_nan=False) + "\n")
            written.append(folder / SAMPLING_METADATA)
        if card is not None:
            batch.write_text(CARD_NAME, card_text(sealed(card)))
            written.append(folder / CARD_NAME)
    return written
