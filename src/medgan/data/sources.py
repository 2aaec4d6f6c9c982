"""Embedded data sources and dataset-layout detectors (extension points).

* ``SOURCES``: named sources that need no user files; ``pipeline.load_slices`` calls
  ``SOURCES.get(name)(config)`` when ``config.source`` is a registered name.
* ``LAYOUTS``: detectors tried (in name order) on a user path before the generic pipeline; each returns a
  ``SliceSet``, or None when the path is not its layout (LiTS, MSD, MedMNIST, ...).
* ``VOLUME_SOURCES``: named sources of whole volumes for ``data.dims: 3``; ``medgan.data.cubes.load_cubes`` calls
  ``VOLUME_SOURCES.get(name)(config)`` for a list of ``Volume`` objects in physical units.
* ``SOURCE_FILES``: for sources backed by image files, a function giving those files, so that
  ``medgan info mni152`` can describe them file by file.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable

from medgan.config import DataConfig
from medgan.data.datasets import SliceSet, relative_sources, slices_from_volumes
from medgan.data.readers import Volume, read_volume
from medgan.errors import DataError
from medgan.registry import Registry

SOURCES: Registry[Callable[[DataConfig], SliceSet]] = Registry("data source")
VOLUME_SOURCES: Registry[Callable[[DataConfig], list[Volume]]] = Registry("volume source")
LAYOUTS: Registry[Callable[[Path, DataConfig], SliceSet | None]] = Registry("dataset layout")
SOURCE_FILES: Registry[Callable[[], list[Path]]] = Registry("data source file list")

MNI152_FILE = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


def mni152_path() -> Path:
    """The MNI ICBM152 2009a T1 template that ships inside nilearn (1 mm, 197 x 233 x 189, RAS).

    Found without importing nilearn (its import pulls in scikit-learn) and without any download.

    Raises:
        DataError: nilearn is not installed or the bundled file is missing.
    """
    spec = importlib.util.find_spec("nilearn")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / "datasets" / "data" / MNI152_FILE
        if path.is_file():
            return path
    raise DataError("the mni152 source needs nilearn's bundled template; pip install nilearn", MNI152_FILE)


@SOURCE_FILES.register("mni152")
def mni152_files() -> list[Path]:
    """The files behind the ``mni152`` source."""
    return [mni152_path()]


@SOURCES.register("mni152")
def mni152(config: DataConfig) -> SliceSet:
    """Slices of the MNI152 T1 template, read through the same path as user data.

    Args:
        config: data config (axis, resolution, min_foreground, normalization...).

    Returns:
        The slice set; with the defaults (axial, 64 x 64, min_foreground 0.15) about 150 slices, one subject.
    """
    path = mni152_path()
    return relative_sources(slices_from_volumes([read_volume(path, config.nan_policy)], config), path)
