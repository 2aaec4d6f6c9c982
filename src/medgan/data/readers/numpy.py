"""NumPy ``.npy`` and ``.npz`` (key ``"image"``, else the first array)."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from medgan.data.readers.base import Volume, first_line, subject_of
from medgan.errors import DataError


def read_numpy(path: Path) -> Volume:
    """A numeric 2D or 3D array from ``.npy`` or ``.npz`` (identity affine, 1 mm voxels)."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                keys = list(loaded.files)
                if not keys:
                    raise DataError("empty .npz file (no arrays)", path)
                array = loaded["image" if "image" in keys else keys[0]]
        else:
            array = loaded
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zlib.error) as error:
        raise DataError(f"cannot read NumPy file ({first_line(error)})", path) from None
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise DataError(f"array of type {array.dtype} is not numeric", path)
    if array.ndim > 3:
        array = np.squeeze(array)
    if array.ndim not in (2, 3):
        raise DataError(f"array of shape {array.shape}; medgan reads 2D images and 3D volumes", path)
    array = np.ascontiguousarray(array, dtype=np.float32)
    return Volume(array, np.eye(4), (1.0,) * array.ndim, None, path, subject_of(path))
