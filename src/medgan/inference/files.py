"""``medgan translate``: apply a trained image-to-image model to a user's images, in physical units.

A PNG/TIFF picture, a NumPy array, a NIfTI volume or a DICOM file/series goes in, or a folder of them (each
translated on its own, named after its file); the same kind comes out:

* volumes are reoriented to RAS and sliced along the run's axis exactly as in training, translated in batches
  of slices (memory stays bounded by the volume itself), and put back in the input's own voxel order, so a
  NIfTI output keeps the input's affine and header geometry;
* 2.5D runs (``data.context`` K) get each slice with its K neighbours on each side, read with each batch (the
  end slices replicated past the volume's ends, as in training); a 2D image has no neighbours and is refused;
* intensities go through the run's stored mappings: a CT window in HU for CT domains, a per-volume
  normalization (fitted like in training) for MR domains, and back to the target's physical units: the stored
  one, except an MR target of the input's own scale (denoising, super-resolution of one sequence), which takes
  the input scan's fit, as training normalized each target volume on its own;
* where the input and the target share one CT window, values outside it (air, dense bone) are passed through
  from the input: the model was trained inside the window and cannot represent them;
* DICOM output is a new *derived* series (see ``medgan.export.derived``): each file keeps its source file's
  position, so a series with a missing slice is written exactly; NIfTI output of such a series is refused
  (one affine cannot place the slices after a gap where they were acquired; ``check_writable_geometry``).

Every output is written through one all-or-nothing batch: a failure leaves nothing behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from medgan.data.intensity import IntensityMapping, mri_mapping
from medgan.data.pairs import one_hot, region_mask
from medgan.data.readers import Volume, discovered_items, file_kind, read_volume
from medgan.data.readers.base import check_writable_geometry, suffix_of
from medgan.data.slicing import neighbour_indices, upright_view
from medgan.errors import ConfigError, DataError
from medgan.export.common import all_or_nothing
from medgan.export.derived import series_files, write_derived_dicom
from medgan.progress import progress_bar
from medgan.inference import Translator
from medgan.inference.translate import slices_per_batch

NORMALIZED = ("percentile", "zscore")  # MR mappings, fitted to each volume as in training
SAME_SCALE = 0.1  # MR input and target of one scale: median fits within this fraction of the target's range
OUTPUT_FORMATS = ("same", "nifti", "dicom", "png16", "npy")


def translate_volume(model: Translator, volumes: dict[str, Volume], progress: bool = False) -> np.ndarray:
    """The target-domain array for co-registered input volumes (one per input domain), in physical units.

    Args:
        model: the run's Translator.
        volumes: input domain name -> Volume; every domain of ``model.input_domains`` but the optional ones
            (``model.optional``: missing modalities go in as zero images with availability 0), of one shape.
        progress: show a progress bar over slice batches.

    Returns:
        float32 array of the first input's shape and voxel order.
    """
    missing = [name for name in model.input_domains if name not in volumes and name not in model.optional]
    if missing:
        raise ConfigError(f"this run needs the input domain {missing[0]!r} too (medgan translate --domain "
                          f"{missing[0]}=PATH; in Python, domains={{{missing[0]!r}: image}})")
    names = tuple(name for name in model.input_domains if name in volumes)
    if not names:
        raise ConfigError(f"no input images: give at least one of {', '.join(model.input_domains)}")
    first = volumes[names[0]]
    if model.context and first.array.ndim != 3:
        raise DataError(f"this run translates 3D volumes: each slice goes in with {model.context} neighbouring "
                        f"slice(s) on each side (data.context={model.context}), and a 2D image has none", first.path)
    for name in names[1:]:
        if volumes[name].array.shape != first.array.shape:
            raise DataError(f"{name} has shape {volumes[name].array.shape} but {names[0]} has {first.array.shape} "
                            f"({first.path})", volumes[name].path)
    axis = model.config.data.axis
    ornt = _orientation(first)
    # Views, not copies: each batch of slices is read from the inputs and written into ``result`` in the input's
    # own voxel order, so memory stays at the input and output volumes plus one batch.
    views = [upright_view(_canonical(volumes[name].array, ornt), axis) for name in names]
    mappings = [_input_mapping(model, name, volumes[name]) for name in names]
    target = model.spec.domain(model.target).mapping
    passthrough = model.spec.domain(names[0]).mapping == target and target.kind == "ct_window"
    if _same_scale(model.spec.domain(names[0]).mapping, target) and mappings[0] is not None:
        # MR -> same MR (denoising, super-resolution): training normalized each target volume on its own, so the
        # output takes this scan's own scale (its input's fit), not the median scale of the training volumes.
        target = mappings[0]
    result = np.empty(first.array.shape, dtype=np.float32)
    result_slices = upright_view(_canonical(result, ornt), axis)
    batch = slices_per_batch(*result_slices.shape[-2:])
    starts = range(0, result_slices.shape[0], batch)
    for start in progress_bar(starts, desc="translate", unit="batch", disable=not progress, leave=False):
        stop = min(start + batch, result_slices.shape[0])
        inputs = model.stack({name: torch.from_numpy(_unit_slices(model, name, mapping, view, start, stop))
                              for name, mapping, view in zip(names, mappings, views)})
        unit = model.translate(inputs)[:, 0].numpy()
        values = np.asarray(target.to_physical(unit), dtype=np.float32)
        if passthrough:
            source = views[0][start:stop]
            outside = (source < target.low) | (source > target.high)
            values = np.where(outside, source, values)
        result_slices[start:stop] = values
    return result


def translate_path(model: Translator, inputs: dict[str, str | Path], out: str | Path, fmt: str = "same",
                   progress: bool = True) -> list[Path]:
    """Translates the images at ``inputs[first domain]`` (a file or a folder of files or a DICOM series) into ``out``.

    Args:
        model: the run's Translator.
        inputs: input domain name -> path; folders are matched file by file by name across domains.
        out: output folder (created).
        fmt: "same" (the input's kind), "nifti", "dicom" (from DICOM input only), "png16" or "npy".
        progress: progress bars.

    Returns:
        The files written.
    """
    if fmt not in OUTPUT_FORMATS:
        raise ConfigError(f"unknown --format {fmt!r}; choose one of: {', '.join(OUTPUT_FORMATS)}")
    lead = next((name for name in model.input_domains if name in inputs), None)
    if lead is None:
        raise ConfigError(f"no input images: give at least one of {', '.join(model.input_domains)}")
    first = Path(inputs[lead])
    items = _items(first)
    _check_distinct_outputs(items, fmt)
    out = Path(out)
    written: list[Path] = []
    with all_or_nothing(out) as batch:
        for item in progress_bar(items, desc="volumes", unit="file", disable=not progress or len(items) < 2):
            volumes = {name: read_volume(_partner(Path(inputs[name]), item, first)) for name in inputs}
            if _chosen(item, fmt) == "nifti":  # before the work: one affine cannot place slices after a gap
                check_writable_geometry(volumes[lead])
            array = translate_volume(model, volumes, progress=progress)
            written.extend(_write(batch, item, volumes[lead], array, model, fmt))
    return written


# -----------------------------------------------------------------------------------------------------------
# intensities and geometry


def _same_scale(source: IntensityMapping, target: IntensityMapping) -> bool:
    """True for MR inputs and targets of one intensity scale (the run's median fits within ``SAME_SCALE`` of the
    target's range at both ends): the same sequence degraded and restored, not T1 -> T2."""
    if target.kind not in NORMALIZED or source.kind != target.kind:
        return False
    tolerance = SAME_SCALE * (target.high - target.low)
    return abs(source.low - target.low) <= tolerance and abs(source.high - target.high) <= tolerance


def _input_mapping(model: Translator, name: str, volume: Volume) -> IntensityMapping | None:
    """The mapping of an input domain for this volume: the run's own, or for MR one fitted to the volume as in
    training; None for label maps."""
    domain = model.spec.domain(name)
    if domain.mapping.unit == "label":
        return None
    if domain.mapping.kind in NORMALIZED:  # MR: each volume is normalized on its own, as in training
        return mri_mapping(volume.array, domain.mapping.kind, model.config.data.percentiles)
    return domain.mapping


def _unit_slices(model: Translator, name: str, mapping: IntensityMapping | None, physical: np.ndarray, start: int,
                 stop: int) -> np.ndarray:
    """Slices ``start:stop`` of a domain's upright physical slices ``[S, H, W]`` as the network takes them,
    ``[B, C, H, W]`` in [-1, 1]: an image domain of a 2.5D run with each slice's neighbours on its channels
    (``neighbour_indices``, read from the few slices around the batch)."""
    if mapping is None:
        return _encode_labels(physical[start:stop], model.spec.domain(name).channels)
    indices = neighbour_indices(np.arange(start, stop), len(physical), model.context)  # [B, 2K + 1]
    low, high = int(indices.min()), int(indices.max())
    unit = np.asarray(mapping.to_unit(physical[low : high + 1]), dtype=np.float32)
    return unit[indices - low]


def _encode_labels(labels: np.ndarray, channels: int) -> np.ndarray:
    """A label map as the network saw it in training (``medgan.data.pairs``): a +1/-1 region mask for one
    channel, else one-hot channels of labels 1..C."""
    tensor = torch.from_numpy(np.rint(labels).astype(np.float32))[:, None]
    encoded = region_mask(tensor) if channels == 1 else one_hot(tensor, channels)
    return encoded.numpy()


def _orientation(volume: Volume) -> np.ndarray | None:
    import nibabel.orientations as orientations

    return orientations.io_orientation(volume.affine) if volume.array.ndim == 3 else None


def _canonical(array: np.ndarray, ornt: np.ndarray | None) -> np.ndarray:
    """The array reoriented to RAS as a view (flips and a transpose), writable where ``array`` is."""
    import nibabel.orientations as orientations

    return array if ornt is None else orientations.apply_orientation(array, ornt)


# -----------------------------------------------------------------------------------------------------------
# inputs and outputs


def _items(path: Path) -> list[Path]:
    """The inputs under ``path``: itself (a file or a DICOM series folder) or the images of a folder."""
    if not path.exists():
        raise DataError("no such file or folder", path)
    if path.is_dir() and file_kind(next(iter(sorted(p for p in path.iterdir() if p.is_file())), path)) == "dicom":
        return [path]  # a folder of DICOM files is one series
    return discovered_items(path)


def _partner(root: Path, item: Path, first_root: Path) -> Path:
    """The input of a domain given as ``root`` that goes with ``item`` (an item found under ``first_root``, the
    first domain's path): ``item`` itself for the first domain, else the file of the same relative name in a
    folder, or ``root`` itself (a file, or the inputs are one file or one DICOM series)."""
    if root == first_root:
        return item  # a folder of files is read one file at a time, not as one series
    if root.is_file() or not first_root.is_dir() or item == first_root:
        return root
    partner = root / item.relative_to(first_root)
    if not partner.exists():
        raise DataError(f"no matching file for {item.name} in this folder", root)
    return partner


def _chosen(item: Path, fmt: str) -> str:
    """The output kind of ``item`` for ``--format fmt``: its own kind for "same"."""
    return _kind(item) if fmt == "same" else fmt


def _write(batch: Any, item: Path, source: Volume, array: np.ndarray, model: Translator, fmt: str) -> list[Path]:
    kind = _kind(item)
    chosen = _chosen(item, fmt)
    stem = _stem(item)
    note = f"derived by medgan translate from {item.name} ({model.config.task} run; not for diagnostic use)"
    if chosen == "nifti":
        return [write_nifti(batch, f"{stem}.nii.gz", source, array, note)]
    if chosen == "dicom":
        if kind != "dicom":
            raise ConfigError("--format dicom needs DICOM input (a derived series copies the input's geometry); "
                              "use --format nifti", item)
        return write_derived_dicom(batch, series_files(item), _frames(array, source), stem, note,
                                   model.spec.domain(model.target).mapping)
    if chosen == "npy":
        with batch.file(f"{stem}.npy") as tmp:
            np.save(tmp, array)
        return [batch.folder / f"{stem}.npy"]
    if array.ndim != 2:
        raise ConfigError("--format png16 needs 2D input; use --format nifti for volumes", item)
    if np.rint(np.min(array)) < 0:  # e.g. air in HU: a 16-bit PNG holds 0..65535 only, so units would be lost
        raise ConfigError(f"the translation goes down to {float(np.min(array)):.0f} "
                          f"{model.spec.domain(model.target).mapping.unit}, below what a 16-bit PNG holds; use "
                          "--format npy or nifti", item)
    return [_write_png16(batch, f"{stem}.png", array)]


SUFFIXES = {"nifti": ".nii.gz", "npy": ".npy", "png16": ".png", "dicom": ""}  # what _write names each kind


def _check_distinct_outputs(items: list[Path], fmt: str) -> None:
    """Refuses inputs that would be written under one name (same file name in two subfolders), before any work."""
    seen: dict[str, Path] = {}
    for item in items:
        name = _stem(item) + SUFFIXES[_kind(item) if fmt == "same" else fmt]
        if name in seen:
            raise DataError(f"{seen[name].name} and {item.name} would both be written as {name}; translate the "
                            "folders one at a time", item)
        seen[name] = item


def _kind(item: Path) -> str:
    if item.is_dir() or file_kind(item) == "dicom":
        return "dicom"
    suffix = suffix_of(item)
    if suffix in (".nii", ".nii.gz"):
        return "nifti"
    if suffix in (".npy", ".npz"):
        return "npy"
    return "png16"


IMAGE_SUFFIXES = (".nii.gz", ".nii", ".dcm", ".dicom", ".ima", ".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp",
                  ".npy", ".npz")  # stripped from output names; others (DICOM files named by UID: 1.2.840.3) stay


def _stem(item: Path) -> str:
    suffix = suffix_of(item)
    kept = item.name if item.is_dir() or suffix not in IMAGE_SUFFIXES else item.name[: len(item.name) - len(suffix)]
    return kept + "_translated"


def _frames(array: np.ndarray, source: Volume) -> np.ndarray:
    """The reader's (column, row, frame) volume back to DICOM frames ``[K, rows, cols]``."""
    if array.ndim == 2:
        return array[None]
    return np.ascontiguousarray(np.transpose(array, (2, 1, 0)))


def write_nifti(batch: Any, name: str, source: Volume, array: np.ndarray, note: str) -> Path:
    """Writes ``name`` into ``batch``: the translated volume with the input's affine (float32; HU stay HU); a
    series with a gap is refused. Also ``medgan.Images.save`` for a translated image."""
    import nibabel as nib

    check_writable_geometry(source)

    affine = source.affine if source.array.ndim == 3 else np.diag([*source.spacing, 1.0, 1.0])
    image = nib.Nifti1Image(array.astype(np.float32, copy=False), affine)
    image.header["descrip"] = note[:79].encode("ascii", "replace")
    image.header.set_xyzt_units("mm")
    with batch.file(name) as tmp:
        nib.save(image, str(tmp))
    return batch.folder / name


def _write_png16(batch: Any, name: str, array: np.ndarray) -> Path:
    """A 16-bit PNG of the translated picture, values rounded and clipped to 0..65535 (the input's scale)."""
    from PIL import Image

    pixels = np.clip(np.rint(array), 0, 65535).astype(np.uint16)
    with batch.file(name) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")
    return batch.folder / name

