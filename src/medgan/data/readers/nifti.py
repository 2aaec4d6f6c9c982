"""NIfTI (``.nii``, ``.nii.gz``) through nibabel; ``get_fdata`` applies ``scl_slope``/``scl_inter``.

Also the header-only shape (to compare a volume with its mask before reading gigabytes) and label maps.

Before any voxel is read, the size the header claims (shape x bytes per voxel + ``vox_offset``) is checked
against the file: its length for ``.nii``; for ``.nii.gz`` the gzip ISIZE trailer, and when that does not
vouch for the size (a truncated or multi-member gzip, data over 4 GiB) a bounded count of the decompressed
bytes. The affine is the one nibabel picks (sform, else qform, else the pixdim diagonal); NaN/Inf in it is an
error, and a singular one (e.g. an all-zero sform) falls back to the header's other transform when that is
usable, else to nibabel's pixdim diagonal, with a warning. nibabel's own header fixes (zero or negative
pixdim) become warnings instead of lines on stderr.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import math
import warnings
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np

from medgan.data.readers.base import Volume, check_claimed_size, first_line, is_singular, subject_of
from medgan.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
_COUNT_CHUNK = 1 << 24  # bytes decompressed per read when counting a .nii.gz's data


def read_nifti(path: Path) -> Volume:
    """A NIfTI file as a 3D volume (a 2D NIfTI becomes one slice); trailing singleton axes are dropped."""
    from nibabel.filebasedimages import ImageFileError
    from nibabel.spatialimages import HeaderDataError

    image = nifti_header(path)
    shape = _squeezed(tuple(int(v) for v in image.shape))
    if len(shape) > 3:
        raise DataError(f"{len(shape)}D image of shape {shape}; medgan reads 2D images and 3D volumes", path)
    zooms = tuple(float(z) for z in image.header.get_zooms())
    if not np.isfinite(zooms[:3]).all():
        raise DataError(f"the header's voxel sizes (pixdim) {zooms[:3]} are not finite numbers", path)
    affine = _usable_affine(image, path)
    try:
        # get_fdata applies scl_slope/scl_inter; float32 keeps memory at half of the float64 default.
        with _nibabel_messages_as_warnings(path):
            array = image.get_fdata(dtype=np.float32)
    except (OSError, EOFError, ValueError, zlib.error, ImageFileError, HeaderDataError) as error:
        problem = first_line(error)
        raise DataError(f"cannot read NIfTI ({problem}); the file may be truncated or not NIfTI", path) from None
    array = array.reshape(shape)
    if array.ndim == 2:
        array = array[:, :, None]  # a 2D NIfTI is one slice in voxel order, not a picture in display order
    spacing = tuple(zooms[:3]) + (1.0,) * (3 - len(zooms[:3]))
    return Volume(np.ascontiguousarray(array), affine, spacing, None, path, subject_of(path))


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` without trailing singleton axes beyond the third."""
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def _usable_affine(image, path: Path) -> np.ndarray:
    """The affine nibabel picks, checked: NaN/Inf is an error; a singular one falls back (module docstring)."""
    header = image.header
    try:
        with np.errstate(all="ignore"):  # NaN/Inf in the transforms are reported below, not as RuntimeWarnings
            coded = (("sform", header.get_sform(coded=True)), ("qform", header.get_qform(coded=True)))
            pixdim = np.asarray(header.get_base_affine(), dtype=np.float64)
    except (ValueError, np.linalg.LinAlgError) as error:
        raise DataError(f"unusable orientation in the header ({first_line(error)})", path) from None
    forms = [(name, np.asarray(form, dtype=np.float64)) for name, (form, code) in coded if code and form is not None]
    name, chosen = forms[0] if forms else ("pixdim", pixdim)
    if not np.isfinite(chosen).all():
        raise DataError(f"the header's {name} (voxel -> world affine) has NaN or Inf values; fix the header", path)
    if not is_singular(chosen):
        return chosen
    for other, form in forms[1:] + [("pixdim diagonal", pixdim)]:
        if np.isfinite(form).all() and not is_singular(form):
            warnings.warn(f"{path}: the header's {name} has no usable orientation (singular matrix); using the "
                          f"{other}", stacklevel=3)
            return form
    raise DataError(f"the header's {name} has no usable orientation (singular matrix) and no fallback", path)


def nifti_header(path: Path):
    """The nibabel image of a NIfTI file, header only (voxels are read on demand).

    Raises:
        DataError: not a readable NIfTI header, or a claimed image size the file cannot hold (module docstring).
    """
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError
    from nibabel.spatialimages import HeaderDataError

    try:
        with _nibabel_messages_as_warnings(path), np.errstate(all="ignore"):  # NaN/Inf headers are reported below
            image = nib.load(str(path))
        header = image.header
        shape = tuple(int(v) for v in header.get_data_shape())
        # The proxy holds the file's vox_offset (the image's header copy is reset for saving).
        offset = int(getattr(image.dataobj, "offset", header.get_data_offset()))
        itemsize = int(header.get_data_dtype().itemsize)
    except (OSError, EOFError, ValueError, zlib.error, ImageFileError, HeaderDataError) as error:
        raise DataError(f"cannot read NIfTI ({first_line(error)})", path) from None
    check_claimed_size(path, shape, itemsize, None)  # the voxel limit first, before counting any bytes
    needed = offset + math.prod(shape) * itemsize
    check_claimed_size(path, shape, itemsize, _stored_bytes(path, needed), offset)
    return image


def _stored_bytes(path: Path, needed: int) -> int:
    """Bytes the file holds uncompressed, counted no further than ``needed`` when that takes decompressing."""
    with open(path, "rb") as handle:
        magic = handle.read(2)
        if magic != GZIP_MAGIC:
            handle.seek(0, 2)
            return handle.tell()
        handle.seek(-4, 2)
        trailer = handle.read(4)
    if len(trailer) == 4 and needed < 2**32 and int.from_bytes(trailer, "little") >= needed:
        return needed  # the ISIZE trailer (uncompressed size mod 2^32) vouches for the data
    total = 0
    try:
        with gzip.open(path, "rb") as stream:
            while total < needed:
                chunk = stream.read(min(_COUNT_CHUNK, needed - total))
                if not chunk:
                    break
                total += len(chunk)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"cannot read NIfTI ({first_line(error)}); the file may be truncated", path) from None
    return total


@contextlib.contextmanager
def _nibabel_messages_as_warnings(path: Path) -> Iterator[None]:
    """nibabel logs header fixes ("pixdim[1,2,3] should be non-zero...") to stderr; here they become warnings."""
    logger = logging.getLogger("nibabel.global")

    def as_warning(record: logging.LogRecord) -> bool:
        warnings.warn(f"{path}: {record.getMessage()}", stacklevel=2)
        return False

    logger.addFilter(as_warning)
    try:
        yield
    finally:
        logger.removeFilter(as_warning)


def nifti_shape(path: Path) -> tuple[int, ...]:
    """The image shape from a NIfTI header, without trailing singleton axes beyond the third."""
    return _squeezed(tuple(int(v) for v in nifti_header(path).shape))


def read_label_map(path: Path) -> np.ndarray:
    """A NIfTI label map as int16. Not read through ``read_volume``: an all-background mask is valid, not a
    "constant image"."""
    try:
        data = np.asanyarray(nifti_header(path).dataobj)
    except (OSError, EOFError, ValueError, zlib.error) as error:
        raise DataError(f"cannot read segmentation ({error})", path) from None
    return np.rint(data).astype(np.int16)
