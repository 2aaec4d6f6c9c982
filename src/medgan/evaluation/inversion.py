"""``medgan invert``: a real image -> the latent z whose image G(z) reproduces it, with the reconstruction,
the latent, the difference map in physical units and SSIM/PSNR (``medgan.inference.inversion`` does the search).

Input: one image as ``medgan translate`` reads it (PNG/TIFF, NPY/NPZ, NIfTI, DICOM file or series folder). It is
brought into the model's space the way training brings its slices:

* modality: the image must be the run's (CT for a run in HU, MR for one in arbitrary units; detected as training
  detects it, honouring the run's ``data.modality``), else a one-line error;
* intensities: CT through the run's own window; MR normalized on its own (``data.normalize``, fitted to the input
  as training fits each volume), so that the outputs are back on the input's own scale;
* geometry: a volume is reoriented to RAS and sliced along the run's axis; ``slice_index`` picks the slice
  (default: the middle one of those training would keep), the volume's slices are cropped to their common
  foreground box when the run did so, and the slice is fitted to the run's resolution (``data.fit``).

The outputs live on the model's grid (``resolution`` px at the fitted spacing), not on the input's: the
reconstruction (NIfTI for NIfTI and DICOM inputs, 16-bit PNG for pictures, NPY for arrays; marked SYNTHETIC like
every export), ``*_difference`` (reconstruction - input, in physical units: NIfTI, else float32 NPY),
``*_latent.npy``, ``*_preview.png`` (input | reconstruction | |difference|), ``inversion.json`` and
``DATA_CARD.json``; all or nothing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medgan.data.domains import dataset_modality, mapped_slices, volume_mapping
from medgan.data.intensity import IntensityMapping
from medgan.data.readers import Volume, read_volume
from medgan.data.readers.base import suffix_of
from medgan.data.slicing import FOREGROUND_THRESHOLD, crop_to_box, fit_slices, foreground_box, foreground_fraction
from medgan.errors import CheckpointError, ConfigError, DataError
from medgan.inference import NoiseToImage
from medgan.inference.inversion import (
    DiscriminatorFeatures,
    InversionConfig,
    InversionResult,
    images_per_chunk,
    invert,
    load_discriminator,
)
from medgan.metrics.image import psnr, ssim

UNITS = {"HU": "CT", "a.u.": "MR"}  # a mapping's unit -> the modality of its images
NOTE = "reconstruction of an input image by the run's generator: derived from that image, as private as it is"


@dataclass
class InversionTarget:
    """One input image in the model's space, and how to write results back in its units."""

    tile: torch.Tensor  # [1, C, R, R] in [-1, 1]
    mapping: IntensityMapping  # [-1, 1] <-> the input's physical units
    spacing: tuple[float, float]  # mm per pixel of the tile
    kind: str  # output family: "nifti", "png16" or "npy"
    source: Path
    slice_index: int | None  # the slice of a volume (None for a 2D image)


def check_modality(model: NoiseToImage, volume: Volume) -> str:
    """The input's modality ("CT" or "MR"); DataError when it is not the run's."""
    modality, reason = dataset_modality(volume, model.config.data)
    wanted = UNITS.get(model.mapping.unit)
    if wanted is not None and modality != wanted:
        raise DataError(f"this image is {modality} ({reason}) but the run makes {wanted} images "
                        f"({model.mapping.unit}); invert it with a {modality} run", volume.path)
    return modality


def target_from_volume(model: NoiseToImage, volume: Volume, slice_index: int | None = None) -> InversionTarget:
    """The image (or one slice of a volume) as the model sees it (module docstring)."""
    if model.spec.dims != 2:
        raise ConfigError("medgan invert is for 2D runs; this run makes volumes (3D inversion is not supported yet)",
                          model.checkpoint)
    data = model.config.data
    modality = check_modality(model, volume)
    mapping = model.mapping if modality == "CT" or model.mapping.kind == "identity" else \
        volume_mapping(volume.array, modality, data)
    slices, spacing = mapped_slices(volume, mapping, data.axis)
    index = None
    if volume.array.ndim == 3:
        kept = np.flatnonzero(foreground_fraction(slices) >= data.min_foreground)
        index = _chosen_slice(slices.shape[0], kept, slice_index, volume.path)
        if data.crop_foreground and len(kept):  # the box training used: the kept slices' common foreground
            slices = crop_to_box(slices, foreground_box(slices[kept] > FOREGROUND_THRESHOLD))
        slices = slices[index : index + 1]
    elif slice_index not in (None, 0):
        raise ConfigError(f"--slice {slice_index} given, but the input is a 2D image", volume.path)
    tile, fitted = fit_slices(slices, spacing, data.resolution, data.fit)
    return InversionTarget(tile.expand(-1, model.spec.channels, -1, -1).contiguous(), mapping, fitted,
                           _output_kind(volume.path), volume.path, index)


def _chosen_slice(count: int, kept: np.ndarray, wanted: int | None, path: Path) -> int:
    if wanted is None:
        return int(kept[len(kept) // 2]) if len(kept) else count // 2
    if not 0 <= wanted < count:
        raise ConfigError(f"--slice must be between 0 and {count - 1} for this volume, got {wanted}", path)
    return int(wanted)


def _output_kind(path: Path) -> str:
    suffix = suffix_of(path)
    if path.is_dir() or suffix in (".nii", ".nii.gz", ".dcm", ".dicom", ".ima") or suffix == "":
        return "nifti"
    return "npy" if suffix in (".npy", ".npz") else "png16"


def discriminator_features(run: str | Path, which: str = "best") -> tuple[DiscriminatorFeatures | None, str | None]:
    """The run's discriminator features, or (None, why not) for a model bundle or a checkpoint without D."""
    try:
        discriminator, _ = load_discriminator(run, which)
        return DiscriminatorFeatures(discriminator), None
    except CheckpointError as error:
        return None, f"no discriminator-feature term: {error.message}"


def class_labels(model: NoiseToImage, class_name: str | None, count: int) -> torch.Tensor | None:
    """[count] the given class for a conditional run, None to search every class; ConfigError for an
    unconditional run given a class or an unknown class."""
    if class_name is not None and not model.class_names:
        raise ConfigError(f"--class {class_name!r} given, but this run is not class-conditional", model.checkpoint)
    index = model.class_index(class_name)
    return None if index is None else torch.full((count,), index)


def invert_targets(model: NoiseToImage, tiles: torch.Tensor, config: InversionConfig, class_name: str | None = None,
                   encoder: Any = None, features: DiscriminatorFeatures | None = None,
                   progress: bool = False) -> tuple[InversionResult, dict[str, np.ndarray]]:
    """Inverts [N, C, R, R] tiles; the result and per-image ``{"ssim", "psnr"}`` (``medgan.metrics.image``)."""
    from medgan.progress import progress_bar

    labels = class_labels(model, class_name, tiles.shape[0])
    starts = None if encoder is None else encoder.encode(tiles)
    if config.steps == 0 and encoder is not None:  # the encoder alone: its guess is the only start
        config = InversionConfig(**{**asdict(config), "restarts": 1})
    total = config.steps * -(-tiles.shape[0] // images_per_chunk(model, config, labels))
    with progress_bar(total=total, desc="invert", unit="step", disable=not progress, leave=False) as bar:
        result = invert(model, tiles, config, labels, features, starts, progress=bar.update)
    quality = {"ssim": ssim(result.images, tiles).numpy(), "psnr": psnr(result.images, tiles).numpy()}
    return result, quality


def invert_file(run: str | Path, path: str | Path, out: str | Path, config: InversionConfig | None = None,
                class_name: str | None = None, encoder_path: str | Path | None = None,
                slice_index: int | None = None, progress: bool = True) -> dict[str, Any]:
    """``medgan invert``: inverts the image at ``path`` with the run and writes the outputs into ``out``.

    Returns:
        The record written as ``inversion.json``.

    Raises:
        MedganError: a run without a generator, a 3D run, an unreadable image or one of another modality, a class
            for an unconditional run (one line each, before anything is written).
    """
    from medgan.inference.encoder import load_encoder
    from medgan.inference.sampling import load_generator
    from medgan.run import check_output_folder

    config = config or InversionConfig()
    config.check()
    check_output_folder(out, "--out")
    model = load_generator(run)
    class_labels(model, class_name, 1)
    encoder = None if encoder_path is None else load_encoder(encoder_path, model)
    target = target_from_volume(model, read_volume(Path(path), model.config.data.nan_policy), slice_index)
    features, note = discriminator_features(run) if config.feature_weight > 0 else (None, None)
    result, quality = invert_targets(model, target.tile, config, class_name, encoder, features, progress)
    record = inversion_record(model, target, result, quality, config, encoder_path, note)
    write_inversion(out, target, result, model, record, run)
    return record


def inversion_record(model: NoiseToImage, target: InversionTarget, result: InversionResult,
                     quality: dict[str, np.ndarray], config: InversionConfig, encoder_path: str | Path | None,
                     note: str | None) -> dict[str, Any]:
    """The JSON-ready summary of one inversion."""
    physical = _physical_difference(target, result)
    label = None if result.labels is None else model.class_names[int(result.labels[0])]
    return {
        "input": str(target.source), "slice": target.slice_index, "class": label,
        "ssim": float(quality["ssim"][0]), "psnr_db": float(quality["psnr"][0]),
        "mean_absolute_difference": float(np.abs(physical).mean()), "unit": target.mapping.unit,
        "objective": float(result.objective[0]), "resolution": model.spec.resolution,
        "spacing_mm": list(target.spacing), "mapping": target.mapping.to_dict(),
        "start": "encoder" if encoder_path is not None else "random",
        "encoder": None if encoder_path is None else str(encoder_path),
        "search": asdict(config), "discriminator_features": result.feature_term,
        "notes": [note] if note else [],
        "layer_wise": (f"refined {result.layer_steps} steps on the generator's feature maps at a quarter of the "
                       "side: the reconstruction is not G(latent); the latent reproduces the image before "
                       "refinement") if result.layer_steps else None,
        "measures": "SSIM and PSNR on the display scale of the model's grid (medgan.metrics.image); the "
                    "difference is reconstruction - input in physical units",
    }


def _physical_difference(target: InversionTarget, result: InversionResult) -> np.ndarray:
    """[H, W] reconstruction - input in the input's physical units (first channel of the first image)."""
    mapping = target.mapping
    recon = mapping.to_physical(result.images[0, 0].clamp(-1, 1).numpy())
    return np.asarray(recon - mapping.to_physical(target.tile[0, 0].numpy()), dtype=np.float32)


def write_inversion(out: str | Path, target: InversionTarget, result: InversionResult, model: NoiseToImage,
                    record: dict[str, Any], run: str | Path) -> list[Path]:
    """Writes the outputs of one inversion into ``out`` (module docstring), all or nothing."""
    from medgan.card import CARD_NAME, card_text, export_card, sealed
    from medgan.export import write_nifti, write_npy, write_png
    from medgan.export.common import all_or_nothing

    out, stem = Path(out), _stem(target.source, target.slice_index)
    images = result.images[:1].clamp(-1, 1)
    difference = _physical_difference(target, result)
    card = export_card(run, {"command": "medgan invert", "input": target.source.name, "note": NOTE})
    with all_or_nothing(out) as batch:
        if target.kind == "nifti":
            write_nifti(images, out / f"{stem}_reconstruction.nii.gz", target.mapping, target.spacing,
                        dtype="float32")
            _write_difference_nifti(batch, f"{stem}_difference.nii.gz", difference, target.spacing)
        else:
            if target.kind == "png16":
                write_png(images, out, 16, target.mapping, f"{stem}_reconstruction", target.spacing)
            else:
                write_npy(images, out / f"{stem}_reconstruction.npy", target.mapping, target.spacing)
            with batch.file(f"{stem}_difference.npy") as temporary:
                np.save(temporary, difference)
        with batch.file(f"{stem}_latent.npy") as temporary:
            np.save(temporary, result.latents[0].numpy().astype(np.float32))
        with batch.file(f"{stem}_preview.png") as temporary:
            temporary.write_bytes(_preview(target.tile, images))
        batch.write_text("inversion.json", json.dumps(record, indent=2, allow_nan=False) + "\n")
        batch.write_text(CARD_NAME, card_text(sealed(card)))
        return list(batch.written)


def _stem(source: Path, slice_index: int | None) -> str:
    from medgan.inference.files import IMAGE_SUFFIXES

    suffix = suffix_of(source)
    name = source.name[: len(source.name) - len(suffix)] if suffix in IMAGE_SUFFIXES else source.name
    return name if slice_index is None else f"{name}_slice{slice_index}"


def _write_difference_nifti(batch: Any, name: str, difference: np.ndarray, spacing: tuple[float, float],
                            description: bytes = b"medgan invert: reconstruction - input") -> None:
    """The difference [H, W] as a one-slice NIfTI on the reconstruction's grid (same affine), float32."""
    import nibabel as nib

    from medgan.export import centred_affine

    volume = np.ascontiguousarray(np.flip(difference[None], axis=(1, 2)).transpose(2, 1, 0))  # as write_nifti
    image = nib.Nifti1Image(volume.astype(np.float32), centred_affine(volume.shape, (spacing[1], spacing[0], 1.0)))
    image.header["descrip"] = description
    image.header.set_xyzt_units("mm")
    with batch.file(name) as temporary:
        nib.save(image, str(temporary))


def _preview(tiles: torch.Tensor, images: torch.Tensor) -> bytes:
    """PNG: input | reconstruction | |difference| (the difference from 0 to half the window, white = large)."""
    from medgan.visuals import image_grid, png_bytes

    difference = ((images - tiles[:1]).abs() * 2 - 1).clamp(-1, 1)
    return png_bytes(image_grid(torch.cat([tiles[:1, :1], images[:, :1], difference[:, :1]]), columns=3), scale=4)
