"""PNG/TIFF/JPEG/BMP through Pillow, 8- and 16-bit kept as is (colour images become grey, with a warning).

``grey_picture`` is the one way medgan opens a picture (training data, and synthetic images in
``medgan evaluate``): Pillow's decompression-bomb limit is an error naming the file, colour is converted to grey
with the same warning everywhere, and only the first page of a multi-page file is read.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from medgan.data.readers.base import Volume, first_line, subject_of
from medgan.errors import DataError

COLOUR_MODES = ("RGB", "RGBA", "P", "CMYK", "YCbCr", "LA", "PA", "HSV", "LAB")


def read_picture(path: Path) -> Volume:
    """A picture as a 2D grey image at full bit depth (colour and palette images converted, with a warning)."""
    # np.asarray keeps 16-bit ("I;16") and float ("F") pictures at full depth.
    array = np.asarray(grey_picture(path))
    if array.ndim != 2:
        raise DataError(f"unsupported picture layout {array.shape}", path)
    return Volume(array.astype(np.float32), np.eye(4), (1.0, 1.0), None, path, subject_of(path))


def grey_picture(path: Path):
    """The first page of a picture as a loaded Pillow image, colour converted to grey (ITU-R 601 luma) with a
    warning; other modes (``L``, ``I;16``, ``I``, ``F``, ``1``) are kept.

    Raises:
        DataError: unreadable file, or more pixels than Pillow's decompression-bomb limit
            (``PIL.Image.MAX_IMAGE_PIXELS``, doubled).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Between the limit and twice it Pillow only warns; such pictures are read (the error is the guard).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
        with image:
            if getattr(image, "n_frames", 1) > 1:
                warnings.warn(f"{path}: multi-page image; only the first page is read", stacklevel=3)
            if image.mode in COLOUR_MODES:
                warnings.warn(f"{path}: {image.mode} image converted to grey", stacklevel=3)
                return image.convert("L")
            image.load()
            return image.copy()
    except Image.DecompressionBombError as error:
        raise DataError(f"too many pixels ({error}); raise PIL.Image.MAX_IMAGE_PIXELS if the image is genuine",
                        path) from None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as error:
        raise DataError(f"cannot read image ({first_line(error)})", path) from None
