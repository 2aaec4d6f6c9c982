"""Writers for synthetic images: PNG (8/16-bit), NIfTI, NumPy and DICOM, every output marked SYNTHETIC.

``export(images, out, fmt)`` writes the model's images ([-1, 1], display orientation; see ``common``) in one
of the formats registered in ``WRITERS``, back in physical units when given the run's ``IntensityMapping``.
Each format lives in its own module and registers itself; how it records what it is:

* ``png``, ``png16`` (module ``png``): 8- or 16-bit PNGs spanning the unit range, the mapping in a text chunk
  and a ``mapping.json`` sidecar, plus ``SYNTHETIC_README.txt``.
* ``nifti`` (module ``nifti``): one 3D volume in physical units with a centred RAS+ affine, ``descrip`` SYNTHETIC.
* ``npy`` (module ``npy``): a float32 [N, H, W] stack with a JSON sidecar.
* ``dicom`` (module ``dicom``): one CT or MR Image Storage file per image with fresh UIDs, ImageType DERIVED.

Every call is all-or-nothing: when any file fails, the files it already wrote are removed.
"""

from __future__ import annotations

from pathlib import Path

from medgan.data.intensity import IntensityMapping
from medgan.export import dicom, nifti, npy, png  # noqa: F401  (registers the writers)
from medgan.export.common import SYNTHETIC_DESCRIPTION, SYNTHETIC_TAG, WRITERS, ExportOptions, Images, Spacing
from medgan.export.dicom import write_dicom
from medgan.export.nifti import NIFTI_SUFFIXES, centred_affine, write_nifti
from medgan.export.npy import write_npy
from medgan.export.png import read_png_physical, write_png
from medgan.export.volumes import export_volumes, is_volume_batch

__all__ = [
    "WRITERS",
    "ExportOptions",
    "SYNTHETIC_DESCRIPTION",
    "SYNTHETIC_TAG",
    "centred_affine",
    "export",
    "output_folder",
    "read_png_physical",
    "write_dicom",
    "write_nifti",
    "write_npy",
    "write_png",
]


def export(
    images: Images,
    out: str | Path,
    fmt: str,
    mapping: IntensityMapping | None = None,
    spacing: Spacing = (1.0, 1.0),
    modality: str | None = None,
    prefix: str = "sample",
) -> list[Path]:
    """Writes images in one of the formats registered in ``WRITERS``; used by ``medgan sample --format``.

    Args:
        images: [N, 1, H, W] or [N, H, W] values in [-1, 1]; or volumes [N, 1, D, H, W] of a 3D run, written
            by ``medgan.export.volumes`` (nifti: one file per volume; npy: one [N, D, H, W] stack).
        out: a folder (png, png16, dicom; for nifti/npy a folder gets ``samples.nii.gz``/``samples.npy``) or a
            ``.nii``/``.nii.gz``/``.npy`` file.
        fmt: a name in ``WRITERS`` (png, png16, nifti, npy, dicom).
        mapping: [-1, 1] -> physical units (from the run); None keeps the unit range.
        spacing: (row, column) mm per pixel (a third value sets the slice spacing for nifti/dicom); for volumes
            (D, H, W) mm per voxel.
        modality: DICOM modality; None means CT for HU mappings and MR otherwise.
        prefix: file name prefix for per-image formats.

    Returns:
        Every path written.

    Raises:
        ConfigError: an unknown format (the message lists valid ones) or bad options.
        DataError: bad images or a write failure (nothing left behind).
    """
    writer = WRITERS.get(fmt)
    if is_volume_batch(images):
        return export_volumes(images, Path(out), fmt, mapping, spacing, prefix)
    return writer(images, Path(out), ExportOptions(mapping=mapping, spacing=spacing, modality=modality, prefix=prefix))


# Formats whose ``out`` may name the file itself (see each writer): the rest always write into the folder ``out``.
_FILE_SUFFIXES = {"nifti": NIFTI_SUFFIXES, "npy": (".npy",)}


def output_folder(out: str | Path, fmt: str) -> Path:
    """The folder that ``export(images, out, fmt)`` writes into: ``out``, or its parent when ``out`` names the file."""
    out = Path(out)
    return out.parent if out.name.endswith(_FILE_SUFFIXES.get(fmt, ())) else out
