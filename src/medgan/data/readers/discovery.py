"""Finding the images under a path (a DICOM series folder is one item) and reading each by its file kind."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from medgan.data.readers.base import (
    Discovery,
    Volume,
    check_geometry,
    check_same_dimensionality,
    check_volume,
    file_kind,
    progress_over,
    suffix_of,
)
from medgan.data.readers.dicom import dicom_header, read_dicom_file, read_dicom_series
from medgan.data.readers.image import read_picture
from medgan.data.readers.nifti import read_nifti
from medgan.data.readers.numpy import read_numpy
from medgan.errors import DataError


def read_volume(path: str | Path, nan_policy: str = "error") -> Volume:
    """Reads one image file or DICOM series folder into a ``Volume``.

    Args:
        path: a NIfTI, DICOM (single or multi-frame), PNG/TIFF, NPY/NPZ file, or a folder holding one DICOM series.
        nan_policy: ``"error"`` raises DataError on NaN/Inf voxels; ``"clean"`` replaces them with the finite
            minimum and warns.

    Returns:
        The volume, float32 in physical units.

    Raises:
        DataError: missing path, unreadable or unsupported file, a header claiming more voxels than the file holds,
            no pixel data, NaN/Inf voxels, constant image (``BlankImageError``), NaN/Inf in the affine or voxel sizes.
    """
    path = Path(path)
    if not path.exists():
        raise DataError("no such file or folder", path)
    if path.is_dir():
        volume = _read_folder(path)
    else:
        kind = file_kind(path)
        if kind is None:
            expected = "expected NIfTI, DICOM, PNG/TIFF or NPY/NPZ"
            raise DataError(f"unsupported file type {suffix_of(path) or '(no suffix)'}; {expected}", path)
        volume = _READERS[kind](path)
    return check_volume(check_geometry(volume), nan_policy)


def discover(path: str | Path) -> Discovery:
    """Finds the readable images under a file or folder (recursively).

    A folder whose DICOM files all belong to one series counts as one item. Hidden files are ignored; other
    files that are not images are listed in ``skipped`` with a reason.

    Args:
        path: a file or a folder.

    Returns:
        The items and the skipped files.

    Raises:
        DataError: the path does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise DataError("no such file or folder", path)
    if path.is_file():
        return _discover_file(path)
    found = Discovery()
    for folder, subfolders, names in os.walk(path):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        files = [Path(folder) / name for name in sorted(names) if not name.startswith(".")]
        _discover_folder(Path(folder), files, found)
    found.items.sort()
    return found


def read_all(path: str | Path, nan_policy: str = "error", progress: bool = False) -> list[Volume]:
    """Discovers and reads every image under ``path``.

    Args:
        path: a file or folder.
        nan_policy: see ``read_volume``.
        progress: show a progress bar when there are more than a few files.

    Returns:
        The volumes, in sorted path order.

    Raises:
        DataError: missing path, empty folder, no readable images, any unreadable image, mixed 2D/3D inputs.
    """
    volumes = list(iter_volumes(path, nan_policy=nan_policy, progress=progress))
    check_same_dimensionality(volumes)
    return volumes


def iter_volumes(path: str | Path, nan_policy: str = "error", progress: bool = False) -> Iterator[Volume]:
    """Like ``read_all`` but yields volumes one at a time, so large CT sets need not sit in memory together.

    The mixed 2D/3D check is left to the consumer (``check_same_dimensionality`` or the slicing pipeline).
    """
    items = discovered_items(path)
    for item in progress_over(items, progress, "reading"):
        yield read_volume(item, nan_policy=nan_policy)


def discovered_items(path: str | Path) -> list[Path]:
    """``discover(path).items``, raising DataError for an empty folder or one with no readable images."""
    path = Path(path)
    found = discover(path)
    if not found.items:
        if path.is_dir() and not found.skipped:
            raise DataError("empty folder (no files found)", path)
        raise DataError(f"no readable images ({found.skipped_summary()})", path)
    return found.items


def _discover_file(path: Path) -> Discovery:
    found = Discovery()
    kind = file_kind(path)
    if kind is None:
        found.skipped.append((path, "not an image"))
    elif kind == "dicom":
        header, problem = dicom_header(path)
        if problem:
            found.skipped.append((path, problem))
        else:
            found.items.append(path)
    else:
        found.items.append(path)
    return found


def _discover_folder(folder: Path, files: list[Path], found: Discovery) -> None:
    """Adds the images among ``files`` (all directly inside ``folder``) to ``found``."""
    series: dict[str, list[Path]] = {}
    for path in files:
        kind = file_kind(path)
        if kind is None:
            found.skipped.append((path, "not an image"))
        elif kind != "dicom":
            found.items.append(path)
        else:
            header, problem = dicom_header(path)
            if problem:
                found.skipped.append((path, problem))
            else:
                series.setdefault(str(header.get("SeriesInstanceUID", "")), []).append(path)
    if len(series) == 1:
        members = next(iter(series.values()))
        found.items.append(folder if len(members) > 1 else members[0])
        return
    for uid, members in series.items():
        if len(members) == 1:
            found.items.append(members[0])  # a single-file series (2D image or multi-frame) is its own item
        else:
            reason = f"DICOM series {uid[-12:] or '?'} shares its folder with other series; give each its own folder"
            found.skipped.extend((member, reason) for member in members)


def _read_folder(folder: Path) -> Volume:
    """A folder read as one DICOM series; the error says whether its files should be read one by one."""
    files = [p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")]
    if not files:
        raise DataError("empty folder (no files found)", folder)
    members = [p for p in files if file_kind(p) == "dicom" and dicom_header(p)[1] is None]
    if not members:
        found = Discovery()
        _discover_folder(folder, files, found)
        if found.items:
            raise DataError("folder holds no DICOM series (read its files one by one instead)", folder)
        raise DataError(f"no readable images ({found.skipped_summary()})", folder)
    return read_dicom_series(folder, members)


_READERS = {"nifti": read_nifti, "dicom": read_dicom_file, "picture": read_picture, "numpy": read_numpy}
