"""Export of synthetic volumes (3D runs): ``[N, 1, D, H, W]`` in [-1, 1], D superior, H anterior, W right.

* ``nifti``: one ``<prefix>-NNNN.nii.gz`` per volume in physical units, RAS+ voxel order ([X, Y, Z] = the cube
  transposed), a centred affine with the run's isotropic voxel size, and the same SYNTHETIC header markers as 2D
  NIfTI exports (``descrip``, ``intent_name``, ``cal_min``/``cal_max``).
* ``npy``: one float32 ``[N, D, H, W]`` stack in physical units with a JSON sidecar (mapping, voxel spacing,
  layout): the NumPy layout ``medgan evaluate --dims 3`` reads.

Other formats (PNG, DICOM) hold slices: they are refused for volumes with a one-line error. Each call is
all-or-nothing, as for 2D.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from medgan.data.intensity import IntensityMapping
from medgan.errors import ConfigError, DataError
from medgan.export.common import all_or_nothing, checked_spacing, physical, sidecar_metadata
from medgan.export.nifti import NIFTI_SUFFIXES, centred_affine, mark_synthetic_header

VOLUME_FORMATS = ("nifti", "npy")


def is_volume_batch(images) -> bool:
    """True for ``[N, 1, D, H, W]`` arrays or tensors (what a 3D run samples)."""
    return len(getattr(images, "shape", ())) == 5


def unit_volumes(images, out: Path) -> np.ndarray:
    """The volumes as float32 ``[N, D, H, W]`` clipped to [-1, 1]; DataError for bad shapes or values."""
    if isinstance(images, torch.Tensor):
        images = images.detach().to(device="cpu", dtype=torch.float32).numpy()
    array = np.asarray(images, dtype=np.float32)
    if array.ndim != 5 or array.shape[1] != 1 or 0 in array.shape:
        raise DataError(f"expected greyscale volumes shaped [N, 1, D, H, W], got {list(array.shape)}", path=out)
    if not np.isfinite(array).all():
        raise DataError("volumes contain NaN or Inf values", path=out)
    return np.clip(array[:, 0], -1.0, 1.0)


def export_volumes(images, out: Path, fmt: str, mapping: IntensityMapping | None, spacing,
                   prefix: str = "sample") -> list[Path]:
    """Writes volumes as ``fmt`` (module docstring) into the folder ``out`` (npy: or the ``.npy`` file ``out``).

    Args:
        images: ``[N, 1, D, H, W]`` in [-1, 1].
        out: output folder (or ``.npy`` file).
        fmt: ``nifti`` or ``npy``.
        mapping: [-1, 1] -> physical units; None keeps the unit range.
        spacing: (D, H, W) mm per voxel (one value per axis, or one value for all).
        prefix: file name prefix of the NIfTI files.

    Raises:
        ConfigError: a format that holds slices, or bad spacing.
        DataError: bad volumes or a write failure (nothing left behind).
    """
    if fmt not in VOLUME_FORMATS:
        raise ConfigError(f"--format {fmt} writes 2D images; a 3D run's volumes are written as "
                          f"{' or '.join(VOLUME_FORMATS)}")
    values = checked_spacing(spacing, lengths=(1, 3))
    dhw = values * 3 if len(values) == 1 else values
    volumes = physical(unit_volumes(images, out), mapping)
    if fmt == "npy":
        path = out if out.suffix == ".npy" else out / "samples.npy"
        metadata = sidecar_metadata("npy", mapping, dhw)
        metadata.update(layout="[N, D, H, W]: D superior, H anterior, W right (RAS [X, Y, Z] transposed)",
                        dtype="float32", files=[path.name])
        with all_or_nothing(path.parent) as batch:
            with batch.file(path.name) as temporary:
                np.save(temporary, volumes.astype(np.float32))
            batch.write_text(path.with_suffix(".json").name, json.dumps(metadata, indent=2) + "\n")
            return list(batch.written)
    if out.name.endswith(NIFTI_SUFFIXES):
        raise DataError("a 3D run writes one NIfTI file per volume: give a folder, not a file name", path=out)
    import nibabel

    storage = np.dtype("int16" if mapping is not None and mapping.unit == "HU" else "float32")
    with all_or_nothing(out) as batch:
        for index, volume in enumerate(volumes):
            xyz = np.ascontiguousarray(volume.transpose(2, 1, 0))
            image = nibabel.Nifti1Image(xyz, centred_affine(xyz.shape, tuple(dhw[::-1])))
            mark_synthetic_header(image, mapping, storage)
            with batch.file(f"{prefix}-{index:04d}.nii.gz") as temporary:
                nibabel.save(image, temporary)
        return list(batch.written)
