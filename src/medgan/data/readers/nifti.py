"""NIfTI (``.nii``, ``.nii.gz``) through nibabel; ``get_fdata`` applies ``scl_slope``/``scl_inter``.

Also the header-only shape (to compare a volume with its mask before reading gigabytes) and label maps.
"""

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


def nifti_header(path: Path):
    """The nibabel image of a NIfTI file, header only (voxels are read on demand)."""
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    try:
        return nib.load(str(path))
    except (OSError, EOFError, ValueError, ImageFileError) as error:
        problem = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(f"cannot read NIfTI ({problem})", path) from None


def nifti_shape(path: Path) -> tuple[int, ...]:
    """The image shape from a NIfTI header, without trailing singleton axes beyond the third."""
    shape = tuple(int(v) for v in nifti_header(path).shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def read_label_map(path: Path) -> np.ndarray:
    """A NIfTI label map as int16. Not read through ``read_volume``: an all-background mask is valid, not a
    "constant image"."""
    try:
        data = np.asanyarray(nifti_header(path).dataobj)
    except (OSError, EOFError, ValueError, zlib.error) as error:
        raise DataError(f"cannot read segmentation ({error})", path) from None
    return np.rint(data).astype(np.int16)
