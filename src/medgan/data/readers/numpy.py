"""NumPy ``.npy`` and ``.npz`` (key ``"image"``, else the first array).

The ``.npy`` header (of the file, or of the ``.npz`` member) is read first and its claimed shape checked
against the bytes present before the array is allocated: NumPy allocates the claimed size before reading.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path
from typing import IO

import numpy as np

from medgan.data.readers.base import Volume, check_claimed_size, first_line, subject_of
from medgan.errors import DataError

READ_ERRORS = (OSError, ValueError, EOFError, zlib.error, zipfile.BadZipFile, KeyError)


def read_numpy(path: Path) -> Volume:
    """A numeric 2D or 3D array from ``.npy`` or ``.npz`` (identity affine, 1 mm voxels)."""
    array = load_array(path)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise DataError(f"array of type {array.dtype} is not numeric", path)
    if array.ndim > 3:
        array = np.squeeze(array)
    if array.ndim not in (2, 3):
        raise DataError(f"array of shape {array.shape}; medgan reads 2D images and 3D volumes", path)
    array = np.ascontiguousarray(array, dtype=np.float32)
    return Volume(array, np.eye(4), (1.0,) * array.ndim, None, path, subject_of(path))


def load_array(path: Path, key: str = "image") -> np.ndarray:
    """The array of a ``.npy`` file, or of a ``.npz`` member (``key`` if present, else the first), size-checked.

    Raises:
        DataError: unreadable file, an empty ``.npz``, or a header claiming more data than the file holds.
    """
    try:
        if path.name.lower().endswith(".npz"):
            with np.load(path, allow_pickle=False) as archive:
                if not archive.files:
                    raise DataError("empty .npz file (no arrays)", path)
                return npz_member(archive, key if key in archive.files else archive.files[0], path)
        with open(path, "rb") as handle:
            shape, itemsize = _npy_header(handle)
            check_claimed_size(path, shape, itemsize, os.fstat(handle.fileno()).st_size, handle.tell())
        return np.load(path, allow_pickle=False)
    except READ_ERRORS as error:
        raise DataError(f"cannot read NumPy file ({first_line(error)})", path) from None


def npz_member(archive, key: str, path: Path) -> np.ndarray:
    """``archive[key]`` of an open ``np.load`` ``.npz``, after checking its header against the member's size.

    Raises:
        DataError: a header claiming more data than the member holds (or more than medgan's voxel limit).
        KeyError, ValueError, OSError: as ``archive[key]`` (callers report them as unreadable files).
    """
    name = key if key in archive.zip.namelist() else f"{key}.npy"
    with archive.zip.open(name) as stream:
        shape, itemsize = _npy_header(stream)
        check_claimed_size(path, shape, itemsize, archive.zip.getinfo(name).file_size, stream.tell(),
                           holder=f"its array {key!r}")
    return archive[key]


def _npy_header(stream: IO[bytes]) -> tuple[tuple[int, ...], int]:
    """``(shape, bytes per item)`` from a ``.npy`` header; the stream is left at the start of the data."""
    version = np.lib.format.read_magic(stream)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read_header(stream)
    return tuple(int(size) for size in shape), int(dtype.itemsize)
