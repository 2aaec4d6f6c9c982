"""PNG/TIFF/JPEG/BMP through Pillow, 8- and 16-bit kept as is (colour images become grey, with a warning)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from medgan.data.readers.base import Volume, first_line, subject_of
from medgan.errors import DataError


def read_picture(path: Path) -> Volume:
    """A picture as a 2D grey image at full bit depth (colour and palette images converted, with a warning)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if getattr(image, "n_frames", 1) > 1:
                warnings.warn(f"{path}: multi-page image; only the first page is read", stacklevel=3)
            mode = image.mode
            if mode in ("RGB", "RGBA", "P", "CMYK", "YCbCr", "LA", "PA", "HSV", "LAB"):
                warnings.warn(f"{path}: {mode} image converted to grey", stacklevel=3)
                image = image.convert("L")
            # np.asarray keeps 16-bit ("I;16") and float ("F") pictures at full depth.
            array = np.asarray(image)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as error:
        raise DataError(f"cannot read image ({first_line(error)})", path) from None
    if array.ndim != 2:
        raise DataError(f"unsupported picture layout {array.shape}", path)
    return Volume(array.astype(np.float32), np.eye(4), (1.0, 1.0), None, path, subject_of(path))
