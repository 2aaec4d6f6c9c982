"""NIfTI export: one 3D volume, slice k = image k, in physical units.

RAS+ affine from the spacing (or the one given), centred on the origin. float32 by default, int16 with
``scl_slope``/``scl_inter`` (chosen by nibabel) for HU. ``descrip`` = "SYNTHETIC medgan", ``intent_name`` =
"synthetic", ``cal_min``/``cal_max`` = the mapping's window.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medgan.data.intensity import IntensityMapping
from medgan.data.readers.base import centred_affine
from medgan.errors import ConfigError, DataError
from medgan.export.common import (
    SYNTHETIC_TAG,
    WRITERS,
    ExportOptions,
    Images,
    Spacing,
    all_or_nothing,
    checked_spacing,
    file_in,
    physical,
    unit_stack,
)

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def _volume_from_slices(stack: np.ndarray) -> np.ndarray:
    """[N, H, W] display-oriented slices -> (X, Y, Z) RAS voxel array, the inverse of ``upright_slices``.

    Display rows run anterior -> posterior and columns right -> left, while RAS axes grow towards the left
    (x) and anterior (y); so flip both, then put columns on x and rows on y.
    """
    return np.ascontiguousarray(np.flip(stack, axis=(1, 2)).transpose(2, 1, 0))


def write_nifti(
    images: Images,
    path: str | Path,
    mapping: IntensityMapping | None = None,
    spacing: Spacing = (1.0, 1.0),
    affine: np.ndarray | None = None,
    dtype: str | None = None,
) -> list[Path]:
    """Writes the images as one 3D NIfTI volume in physical units (slice k along z = image k).

    Args:
        images: [N, 1, H, W] or [N, H, W] values in [-1, 1].
        path: output ``.nii`` or ``.nii.gz`` file.
        mapping: [-1, 1] -> physical units; None keeps the unit range.
        spacing: (row, column) or (row, column, slice) mm; the slice spacing defaults to 1 mm (generated
            slices are independent samples, so it only sets how viewers stack them).
        affine: 4x4 voxel -> RAS+ mm affine for the (X, Y, Z) array; overrides ``spacing`` when given.
        dtype: ``"float32"`` (exact) or ``"int16"`` (scaled by ``scl_slope``/``scl_inter``, error <= slope / 2);
            None picks int16 for HU and float32 otherwise.

    Returns:
        ``[path]``.

    Raises:
        ConfigError: bad spacing, affine or dtype.
        DataError: bad images, a path that is not .nii/.nii.gz, or a write failure (nothing left behind).
    """
    import nibabel

    path = Path(path)
    if not path.name.endswith(NIFTI_SUFFIXES):
        raise DataError("a NIfTI output must end in .nii or .nii.gz", path=path)
    unit = unit_stack(images, path)
    volume = _volume_from_slices(physical(unit, mapping))
    values = checked_spacing(spacing, lengths=(2, 3))
    voxel_sizes = (values[1], values[0], values[2] if len(values) == 3 else 1.0)  # (x = column, y = row, z)
    affine = centred_affine(volume.shape, voxel_sizes) if affine is None else _checked_affine(affine)
    storage = dtype or ("int16" if mapping is not None and mapping.unit == "HU" else "float32")
    if storage not in ("float32", "int16"):
        raise ConfigError(f"NIfTI dtype must be float32 or int16, got {storage!r}")
    image = nibabel.Nifti1Image(volume, affine)
    mark_synthetic_header(image, mapping, np.dtype(storage))
    with all_or_nothing(path.parent) as batch:
        with batch.file(path.name) as temporary:
            nibabel.save(image, temporary)
        return list(batch.written)


@WRITERS.register("nifti")
def _export_nifti(images: Images, out: Path, options: ExportOptions) -> list[Path]:
    """``export(..., "nifti")``: ``out`` itself if it ends in .nii/.nii.gz, else ``out/samples.nii.gz``."""
    return write_nifti(images, file_in(out, NIFTI_SUFFIXES, "samples.nii.gz"), options.mapping, options.spacing)


def _checked_affine(affine: np.ndarray) -> np.ndarray:
    """``affine`` as a finite, invertible 4x4 float64 array; ConfigError otherwise."""
    matrix = np.asarray(affine, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.isfinite(matrix).all() or abs(np.linalg.det(matrix[:3, :3])) < 1e-12:
        raise ConfigError(f"affine must be a finite, invertible 4x4 matrix, got shape {list(matrix.shape)}")
    return matrix


def mark_synthetic_header(image: Any, mapping: IntensityMapping | None, dtype: np.dtype) -> None:
    """Storage type, units, qform/sform, display window and the SYNTHETIC markers of a Nifti1Image."""
    header = image.header
    header.set_data_dtype(dtype)  # for int16, nibabel picks scl_slope/scl_inter that cover the data on save
    header.set_xyzt_units(xyz="mm")
    header["descrip"] = SYNTHETIC_TAG.encode("ascii")
    header.set_intent("none", name="synthetic")
    image.set_sform(image.affine, code="aligned")
    image.set_qform(image.affine, code="aligned")
    if mapping is not None:
        header["cal_min"], header["cal_max"] = mapping.low, mapping.high
