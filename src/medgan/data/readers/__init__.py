"""Readers: medical image files -> ``Volume`` (float32 in physical units, affine, spacing, modality, subject).

Supported inputs, one module each:

* ``nifti``: NIfTI (``.nii``, ``.nii.gz``) through nibabel; ``get_fdata`` applies ``scl_slope``/``scl_inter``.
* ``dicom``: DICOM through pydicom: single files, multi-frame files and series folders. The modality LUT
  (RescaleSlope/RescaleIntercept) is applied, so CT comes out in Hounsfield units.
* ``image``: PNG/TIFF/JPEG/BMP through Pillow, 8- and 16-bit kept as is (colour images become grey, with a
  warning).
* ``numpy``: NumPy ``.npy`` and ``.npz`` (key ``"image"``, else the first array).

``base`` holds the ``Volume`` and its conventions (axis order, RAS affine, physical units), the voxel checks
and the file kinds; ``discovery`` finds the images under a path and reads each with the reader of its kind.
"""

from __future__ import annotations

from medgan.data.readers.base import (
    DICOM_SUFFIXES,
    NIFTI_SUFFIXES,
    NUMPY_SUFFIXES,
    PICTURE_SUFFIXES,
    Discovery,
    Volume,
    check_same_dimensionality,
    check_volume,
    file_kind,
    has_dicom_magic,
    progress_over,
    subject_of,
)
from medgan.data.readers.discovery import discover, discovered_items, iter_volumes, read_all, read_volume
from medgan.data.readers.nifti import nifti_shape, read_label_map

__all__ = [
    "DICOM_SUFFIXES",
    "Discovery",
    "NIFTI_SUFFIXES",
    "NUMPY_SUFFIXES",
    "PICTURE_SUFFIXES",
    "Volume",
    "check_same_dimensionality",
    "check_volume",
    "discover",
    "discovered_items",
    "file_kind",
    "has_dicom_magic",
    "iter_volumes",
    "nifti_shape",
    "progress_over",
    "read_all",
    "read_label_map",
    "read_volume",
    "subject_of",
]
