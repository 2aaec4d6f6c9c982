"""The inputs of ``medgan evaluate``: the real, synthetic and training sets, each as ``[N, 1, R, R]`` in [-1, 1].

* real: an embedded source name (``"mni152"``), a file or folder read by ``medgan.data.load_slices``, or a run
  directory, whose own data config (``config.yaml``) is used.
* synthetic: a run directory (images are generated with ``medgan.inference.sampling.generate``) or a folder of images:
  PNG/TIFF (8- or 16-bit, full scale = +1, as ``medgan export`` writes), ``.npy``/``.npz`` stacks ([N, H, W] or
  [N, 1, H, W]; values in [-1, 1] are taken as model units, others as physical units, decoded with the
  sidecar mapping if one exists or else the real set's mapping), NIfTI/DICOM (physical units, slices along z).
* training images for the memorization audit: ``train`` if given, else none (the real set stands in).

All sets are brought to the real set's resolution R. Blank (constant) real or training images are left out
with a note (``ImageSet.notes``) rather than stopping the evaluation; nothing left is an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medgan.config import RESOLUTIONS, DataConfig
from medgan.data import IntensityMapping, load_slices, read_volume
from medgan.data.cache import CachedTiles
from medgan.data.readers import PICTURE_SUFFIXES, discovered_items
from medgan.data.readers.image import grey_picture
from medgan.data.readers.numpy import load_array
from medgan.data.slicing import fit_slices, to_canonical, upright_slices
from medgan.errors import DataError
from medgan.evaluation.shareable import shared_name
from medgan.metrics.suite import SAMPLE_SEED
from medgan.run import RunDir

GENERATED_IMAGES = 1000  # synthetic images drawn from a run directory when max_images is not given


@dataclass
class ImageSet:
    """A resolved image set: images in [-1, 1], how to go back to physical units, and where it came from."""

    images: torch.Tensor
    mapping: Any  # medgan.data.IntensityMapping or None
    description: str
    run_dir: Path | None = None
    notes: list[str] = field(default_factory=list)  # what was left out while loading, for the user and report
    skipped: int = 0  # images left out as blank
    shared: str = ""  # the description without user paths, for the shareable report (``evaluation.shareable``)
    shared_notes: list[str] = field(default_factory=list)  # the notes without paths or file names, likewise
    subjects: list[str] | None = None  # per image, its subject (real sets read from data), for the intervals


def resolve_inputs(real: str, fake: str, train: str | None, data_config: Any, max_images: int | None,
                   progress: bool) -> tuple[ImageSet, ImageSet, ImageSet | None]:
    """Loads the real, synthetic and (optional) training sets at one resolution."""
    fake_path = Path(str(fake)).expanduser()
    if not fake_path.exists():
        raise DataError("synthetic images not found", fake_path)
    fake_is_run = RunDir.is_run(fake_path)
    raw_fake = None if fake_is_run else read_image_folder(fake_path)
    config = _data_config(real, data_config, fake_path if fake_is_run else None, raw_fake)
    real_set = _load_real(real, config, progress)
    resolution = int(real_set.images.shape[-1])
    if fake_is_run:
        fake_set = generate_set(fake_path, max_images or GENERATED_IMAGES, resolution)
    else:
        fake_set = ImageSet(to_unit_stack(raw_fake, real_set.mapping, resolution, fake_path), real_set.mapping,
                            str(fake_path), shared=shared_name(str(fake), "synthetic set"))
    train_set = None
    if train is not None:
        train_set = _load_real(train, config, progress, role="training")
        if train_set.images.shape[-1] != resolution:
            side = train_set.images.shape[-1]
            raise DataError(f"training images are {side} px but real images {resolution} px", train)
    for image_set in (real_set, fake_set, train_set):
        if image_set is not None:
            limit(image_set, max_images)
    return real_set, fake_set, train_set


def limit(image_set: ImageSet, max_images: int | None) -> None:
    """Keeps at most ``max_images`` images of a set (a seeded random subset, with their subjects), in memory."""
    if max_images is not None:
        pick = _subset(len(image_set.images), max_images)
        if pick is not None:
            image_set.images = image_set.images[pick]
            if image_set.subjects is not None:
                image_set.subjects = [image_set.subjects[index] for index in pick.tolist()]
    if isinstance(image_set.images, CachedTiles):
        image_set.images = image_set.images[:]  # a prepared cohort: the evaluated (sub)set in memory


def _data_config(real: str, data_config: Any, fake_run: Path | None, raw_fake: list | None) -> Any:
    """The DataConfig used to read ``real``: given, the real run's, or defaults at the synthetic resolution."""
    if RunDir.is_run(real):
        return RunDir(real).read_config().data
    if data_config is not None:
        return replace(data_config, source=str(real))
    if fake_run is not None:
        return replace(RunDir(fake_run).read_config().data, source=str(real))
    side = max(raw_fake[0][0].shape) if raw_fake else 64
    return DataConfig(source=str(real), resolution=side if side in RESOLUTIONS else 64)


def _load_real(source: str, config: Any, progress: bool, role: str = "real") -> ImageSet:
    """A real (or training, per ``role``) set; blank images are left out with a note."""
    label = f"{role} set"
    if RunDir.is_run(source):
        run = RunDir(source)
        slices = load_slices(run.read_config().data, progress=progress, skip_blank=True)
        image_set = ImageSet(slices.images, slices.mapping, f"{run.path} (training data)", run.path,
                             shared=f"{shared_name(source, label)} (a run's training data)")
    else:
        slices = load_slices(replace(config, source=str(source)), progress=progress, skip_blank=True)
        image_set = ImageSet(slices.images, slices.mapping, str(source), shared=shared_name(source, label))
    if len(slices.subjects) == len(slices.images):
        image_set.subjects = [str(subject) for subject in slices.subjects]
    if slices.skipped:
        files = [file for file, _ in slices.skipped]
        shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
        noun = "image" if len(files) == 1 else "images"
        image_set.notes.append(f"left out {len(files)} blank (constant) {role} {noun} of {source}: {shown}")
        image_set.shared_notes.append(f"left out {len(files)} blank (constant) {role} {noun} of the {label}")
        image_set.skipped = len(files)
    return image_set


def load_real(source: str, data_config: Any, generator_run: Path | None, progress: bool) -> ImageSet:
    """The real set of ``medgan evaluate --compare``: read as for ``--fake`` with a run (that run's data config
    unless ``source`` is a run or ``data_config`` is given)."""
    return _load_real(source, _data_config(source, data_config, generator_run, None), progress)


def generate_set(run_dir: Path, count: int, resolution: int) -> ImageSet:
    """``count`` images generated by a run (seed ``SAMPLE_SEED``), checked against the real resolution."""
    from medgan.inference.noise import check_sample_count
    from medgan.inference.sampling import generate  # imported here: sampling pulls in the training stack

    check_sample_count(count, resolution, "--max-images")
    images, mapping = generate(run_dir, count, seed=SAMPLE_SEED)
    images = images.detach().float().cpu()
    if images.ndim != 4 or images.shape[1] != 1:
        raise DataError(f"the run generates {tuple(images.shape[1:])} images; evaluation needs one channel", run_dir)
    if images.shape[-1] != resolution:
        raise DataError(f"the run generates {images.shape[-1]} px images but real images are {resolution} px", run_dir)
    generated = f"({count} generated, seed {SAMPLE_SEED})"
    return ImageSet(images.clamp(-1.0, 1.0), mapping, f"{run_dir} {generated}", run_dir,
                    shared=f"{shared_name(run_dir, 'synthetic set')} {generated}")


def _subset(total: int, count: int) -> torch.Tensor | None:
    """Sorted indices of a seeded random subset of ``count`` of ``total`` images (None: keep them all)."""
    if count < 1:
        raise DataError(f"max_images must be at least 1, got {count}")
    if total <= count:
        return None
    pick = torch.randperm(total, generator=torch.Generator().manual_seed(SAMPLE_SEED))[:count]
    return pick.sort().values


# Synthetic image folders -------------------------------------------------------------------------------


def read_image_folder(path: Path) -> list[tuple[np.ndarray, bool, Any]]:
    """Reads synthetic images: a list of (2D array, is_physical, sidecar mapping or None).

    Raises:
        DataError: no readable images, or an unreadable file.
    """
    images: list[tuple[np.ndarray, bool, Any]] = []
    for item in discovered_items(path):
        suffix = item.name.lower()
        if item.is_file() and suffix.endswith(PICTURE_SUFFIXES):
            images.append((_read_picture_unit(item), False, None))
        elif item.is_file() and suffix.endswith((".npy", ".npz")):
            images.extend(_read_numpy_stack(item))
        else:
            images.extend((array, True, None) for array in _read_physical_slices(item))
    if not images:
        raise DataError("no synthetic images found", path)
    return images


def _read_picture_unit(path: Path) -> np.ndarray:
    """A PNG/TIFF as model units: 8-bit 0..255 or 16-bit 0..65535 -> [-1, 1] (colour -> grey luminance, with the
    warning real pictures get)."""
    image = grey_picture(path)
    if image.mode not in ("L", "I;16", "I;16B", "I;16L", "I", "F"):
        image = image.convert("L")  # bilevel ("1") pictures: 0/255
    full_scale = 255.0 if image.mode == "L" else 65535.0
    if image.mode == "F":
        full_scale = 1.0
    pixels = np.asarray(image, dtype=np.float64)
    return (pixels / full_scale * 2.0 - 1.0).astype(np.float32)


def float_array(path: Path) -> np.ndarray:
    """A .npy/.npz file's array as float32; an array that is not numeric is a one-line DataError."""
    try:
        return np.asarray(load_array(path), dtype=np.float32)
    except (ValueError, TypeError) as error:  # e.g. a structured or string array
        raise DataError(f"cannot read NumPy file ({str(error).splitlines()[0]})", path) from None


def _read_numpy_stack(path: Path) -> list[tuple[np.ndarray, bool, Any]]:
    array = float_array(path)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise DataError(f"a synthetic NumPy stack must be [N, H, W] or [N, 1, H, W], got {array.shape}", path)
    if not np.isfinite(array).all():
        raise DataError("NaN or Inf values", path)
    sidecar = path.with_suffix(".json")
    mapping = None
    if sidecar.is_file():
        try:
            stored = json.loads(sidecar.read_text(encoding="utf-8")).get("mapping")
            mapping = IntensityMapping.from_dict(stored) if stored else None
        except (json.JSONDecodeError, AttributeError):
            mapping = None
    physical = mapping is not None or array.min() < -1.0 - 1e-4 or array.max() > 1.0 + 1e-4
    return [(image, physical, mapping) for image in array]


def _read_physical_slices(path: Path) -> list[np.ndarray]:
    """NIfTI/DICOM in physical units -> display-oriented 2D slices (3D stacks: one slice per z index)."""
    volume = to_canonical(read_volume(path))
    return list(upright_slices(volume.array, axis=2))


def to_unit_stack(raw: list[tuple[np.ndarray, bool, Any]], mapping: Any, resolution: int, path: Path) -> torch.Tensor:
    """Synthetic 2D arrays -> [N, 1, R, R] in [-1, 1] (physical values through their mapping)."""
    tiles = []
    for array, physical, own_mapping in raw:
        if physical:
            decoder = own_mapping or mapping
            if decoder is None:
                raise DataError("synthetic images are in physical units but no intensity mapping is known", path)
            array = decoder.to_unit(array.astype(np.float32))
        unit = np.clip(array, -1.0, 1.0).astype(np.float32)
        if unit.shape != (resolution, resolution):
            fitted, _ = fit_slices(unit[None], (1.0, 1.0), resolution, "resize")
            tiles.append(fitted)
        else:
            tiles.append(torch.from_numpy(unit)[None, None])
    return torch.cat(tiles)
