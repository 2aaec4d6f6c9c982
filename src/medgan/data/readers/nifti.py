"""NIfTI (``.nii``, ``.nii.gz``) through nibabel; ``get_fdata`` applies ``scl_slope``/``scl_inter``."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from medgan.data.readers.base import Volume, first_line, subject_of
from medgan.errors import DataError


def read_nifti(path: Path) -> Volume:
    """A NIfTI file as a 3D volume (a 2D NIfTI becomes one slice); trailing singleton axes are dropped."""
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError
    from nibabel.spatialimages import HeaderDataError

    try:
        image = nib.load(str(path))
        # get_fdata applies scl_slope/scl_inter; float32 keeps memory at half of the float64 default.
        array = image.get_fdata(dtype=np.float32)
        affine = np.asarray(image.affine, dtype=np.float64)
        zooms = tuple(float(z) for z in image.header.get_zooms())
    except (OSError, EOFError, ValueError, zlib.error, ImageFileError, HeaderDataError) as error:
        problem = first_line(error)
        raise DataError(f"cannot read NIfTI ({problem}); the file may be truncated or not NIfTI", path) from None
    array = _squeeze_to_3d(array, path)
    if array.ndim == 2:
        array = array[:, :, None]  # a 2D NIfTI is one slice in voxel order, not a picture in display order
    spacing = tuple(zooms[:3]) + (1.0,) * (3 - len(zooms[:3]))
    return Volume(np.ascontiguousarray(array), affine, spacing, None, path, subject_of(path))


def _squeeze_to_3d(array: np.ndarray, path: Path) -> np.ndarray:
    """Drops trailing singleton axes beyond the third; a real 4D series is an error."""
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim > 3:
        raise DataError(f"{array.ndim}D image of shape {array.shape}; medgan reads 2D images and 3D volumes", path)
    return array
