"""The ``Volume`` every reader returns, the checks on its voxels, and file kinds by suffix.

Conventions (shared with every other module):

* 2D arrays are ``(H, W)`` in display orientation (row 0 at the top), as PNG and single DICOM frames are stored.
* 3D arrays are ``(X, Y, Z)`` in voxel order, like NIfTI: ``affine @ [i, j, k, 1]`` gives RAS+ world mm.
  DICOM volumes are transposed from pydicom's ``(frame, row, column)`` to ``(column, row, frame)`` and their
  LPS patient coordinates are turned into RAS (x and y negated), exactly as dcm2niix/nibabel do, so a DICOM
  series and its NIfTI conversion give the same ``Volume``.
* Data stays float32 in physical units (HU for CT, arbitrary units for MR); nothing is squashed to uint8.

Size and geometry checks, shared by every reader:

* A header's claimed image size is checked before any voxel is read (``check_claimed_size``): more than
  ``MAX_VOXELS`` voxels, or more bytes than the file holds, is an error, so a 452-byte file claiming 32767^3
  voxels fails in one line instead of allocating terabytes.
* ``check_geometry``: voxel sizes must be finite and positive and the affine finite (NaN/Inf is an error). A 3D
  affine with no usable orientation (a singular matrix, e.g. an all-zero sform) is replaced by the voxel-size
  diagonal (RAS axes), with a warning; the NIfTI reader first tries the header's other transform.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from medgan.errors import DataError, first_meaningful_line

NIFTI_SUFFIXES = (".nii", ".nii.gz")
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
PICTURE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
NUMPY_SUFFIXES = (".npy", ".npz")
# The largest image medgan reads: 1 Gi voxels (4 GiB as float32, e.g. 512 x 512 x 4096 CT). A header claiming
# more is refused before anything is allocated: such claims come from damaged or crafted files.
MAX_VOXELS = 2**30


class BlankImageError(DataError):
    """A constant image (every voxel the same value): an error for training, skipped with a count by evaluation."""


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value, compare fields explicitly
class Volume:
    """One image in physical units.

    Attributes:
        array: float32, 2D ``(H, W)`` or 3D ``(X, Y, Z)``; HU for CT, intensity for MR.
        affine: 4x4 float64 voxel index -> RAS+ world mm.
        spacing: mm per voxel along each array axis (``len == array.ndim``).
        modality: ``"CT"``, ``"MR"`` or None when the file does not say (NIfTI, PNG, NPY).
        path: the file, or the folder of a DICOM series.
        subject: grouping key for patient-level splits (file stem, DICOM PatientID...); never exported.
        uneven: None when ``affine`` puts every slice where it was acquired; else why it cannot (a DICOM series
            with a missing slice: ``"slices 11 and 12 are 5.0 mm apart, the others 2.5 mm: a missing slice"``).
            The affine then uses the mean spacing; ``check_writable_geometry`` refuses to write it out.
    """

    array: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, ...]
    modality: str | None
    path: Path
    subject: str
    uneven: str | None = None


@dataclass
class Discovery:
    """What ``discover`` found under a path.

    Attributes:
        items: readable images, each a file or the folder of one DICOM series, sorted.
        skipped: files that are not images, with the reason.
    """

    items: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def skipped_summary(self) -> str:
        """A short count of skipped files by reason, e.g. ``"3 files skipped: not an image"``."""
        if not self.skipped:
            return "no files found"
        reasons: dict[str, int] = {}
        for _, reason in self.skipped:
            reasons[reason] = reasons.get(reason, 0) + 1
        parts = [f"{count} {reason}" if len(reasons) > 1 else reason for reason, count in reasons.items()]
        noun = "file" if len(self.skipped) == 1 else "files"
        return f"{len(self.skipped)} {noun} skipped: {'; '.join(parts)}"


def check_same_dimensionality(volumes: Iterable[Volume]) -> None:
    """Raises DataError when 2D images and 3D volumes are mixed (they cannot share one slicing rule)."""
    first: Volume | None = None
    for volume in volumes:
        if first is None:
            first = volume
        elif volume.array.ndim != first.array.ndim:
            raise DataError(
                f"mixed 2D and 3D inputs ({first.path.name} is {first.array.ndim}D, this one is "
                f"{volume.array.ndim}D); put them in separate folders",
                volume.path,
            )


def check_volume(volume: Volume, nan_policy: str = "error") -> Volume:
    """Validates the voxels of ``volume``: NaN/Inf per ``nan_policy``, and not constant.

    Args:
        volume: a freshly read volume.
        nan_policy: ``"error"`` raises; ``"clean"`` replaces non-finite voxels with the finite minimum and warns.

    Returns:
        ``volume``, or a copy with non-finite voxels replaced.
    """
    array = volume.array
    finite = np.isfinite(array)
    bad = int(array.size - np.count_nonzero(finite))
    if bad:
        if not finite.any():
            raise DataError(f"all {bad} voxels are NaN or Inf", volume.path)
        if nan_policy != "clean":
            raise DataError(f"{bad} NaN/Inf voxels (set data.nan_policy=clean to replace them)", volume.path)
        minimum = array[finite].min()
        warnings.warn(f"{volume.path}: replaced {bad} NaN/Inf voxels with the finite minimum {minimum:g}", stacklevel=2)
        array = np.where(finite, array, minimum).astype(np.float32)
        volume = dataclasses.replace(volume, array=array)
    if array.size == 0:
        raise DataError("image has no voxels", volume.path)
    if array.min() == array.max():
        raise BlankImageError(f"constant image (every voxel is {float(array.flat[0]):g})", volume.path)
    return volume


def check_geometry(volume: Volume) -> Volume:
    """Validates the voxel sizes and affine of ``volume`` (module docstring).

    Returns:
        ``volume``, or a copy whose singular 3D affine is replaced by the voxel-size diagonal (with a warning).

    Raises:
        DataError: a voxel size that is not a positive finite number, or NaN/Inf in the affine.
    """
    spacing = np.asarray(volume.spacing, dtype=np.float64)
    if not (np.isfinite(spacing).all() and (spacing > 0).all()):
        shown = " x ".join(f"{value:g}" for value in spacing)
        raise DataError(f"voxel size {shown} mm is not a positive finite number on every axis", volume.path)
    affine = np.asarray(volume.affine, dtype=np.float64)
    if not np.isfinite(affine).all():
        raise DataError("the affine (voxel -> world transform) has NaN or Inf values; fix the header", volume.path)
    if volume.array.ndim == 3 and is_singular(affine):
        warnings.warn(
            f"{volume.path}: the affine has no usable orientation (singular matrix); using the voxel sizes along "
            "RAS axes",
            stacklevel=2,
        )
        volume = dataclasses.replace(volume, affine=np.diag([*spacing[:3], 1.0]))
    return volume


def check_writable_geometry(volume: Volume, output: str = "NIfTI") -> None:
    """Refuses to write ``volume`` with one affine (``output``: NIfTI) when its slices are unevenly spaced.

    One affine places slice k at ``origin + k * step``: after a missing slice every later slice would sit
    millimetres away from where it was acquired. Outputs that keep each slice's own position (a derived DICOM
    series copies every source file's ImagePositionPatient) are not affected.

    Raises:
        DataError: naming the series and the gap, e.g. ``slices 11 and 12 are 5.0 mm apart, the others 2.5 mm:
            a missing slice; NIfTI cannot hold a gap``.
    """
    if volume.uneven is not None:
        raise DataError(f"{volume.uneven}; {output} cannot hold a gap (one affine places every slice evenly): "
                        "write a derived DICOM series (--format dicom), which keeps each slice's position, or npy",
                        volume.path)


def centred_affine(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> np.ndarray:
    """A RAS+ voxel -> mm affine with the given (x, y, z) voxel sizes, centred on the world origin.

    Args:
        shape: (X, Y, Z) voxel counts.
        spacing: (x, y, z) mm per voxel.

    Returns:
        4x4 float64 affine.
    """
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = [-(count - 1) / 2.0 * size for count, size in zip(shape, spacing)]
    return affine


def is_singular(affine: np.ndarray) -> bool:
    """True when the 3x3 part of ``affine`` cannot orient a volume (a zero or dependent column)."""
    values = np.linalg.svd(np.asarray(affine, dtype=np.float64)[:3, :3], compute_uv=False)
    return bool(values.max() == 0 or values.min() < 1e-6 * values.max())


def check_claimed_size(path: Path, shape: tuple[int, ...], itemsize: int, available: int | None,
                       offset: int = 0, holder: str = "the file") -> None:
    """Refuses a header whose image is too large for medgan or for the file, before anything is allocated.

    Args:
        path: the file (named in the error).
        shape: the image shape the header claims.
        itemsize: bytes per stored voxel.
        available: bytes the file holds (uncompressed), or None when unknown; checked when given.
        offset: bytes before the voxel data (the header).
        holder: what holds ``available`` bytes, for the error (``"the file"``, ``"the pixel data"``).

    Raises:
        DataError: more than ``MAX_VOXELS`` voxels, or more bytes than ``available``.
    """
    voxels = math.prod(int(size) for size in shape)
    shown = " x ".join(str(int(size)) for size in shape)
    if voxels > MAX_VOXELS:
        raise DataError(f"the header claims {shown} voxels, over medgan's limit of {MAX_VOXELS:,} voxels "
                        "(a damaged header, or an image too large to read)", path)
    needed = int(offset) + voxels * int(itemsize)
    if available is not None and needed > available:
        after = f" after {offset:,} header bytes" if offset else ""
        raise DataError(f"the header claims {shown} voxels of {itemsize} bytes ({needed - offset:,} bytes{after}) but "
                        f"{holder} holds {available:,} bytes; it is truncated or its header is wrong", path)


def file_kind(path: Path) -> str | None:
    """``"nifti"``, ``"dicom"``, ``"picture"``, ``"numpy"`` from the suffix (or DICOM magic), else None."""
    suffix = suffix_of(path)
    if suffix in NIFTI_SUFFIXES:
        return "nifti"
    if suffix in DICOM_SUFFIXES:
        return "dicom"
    if suffix in PICTURE_SUFFIXES:
        return "picture"
    if suffix in NUMPY_SUFFIXES:
        return "numpy"
    if has_dicom_magic(path):
        return "dicom"  # DICOM files often have no suffix (IM0001, 1.2.840...)
    return None


def has_dicom_magic(path: Path) -> bool:
    """True when bytes 128..131 are ``DICM`` (the DICOM Part 10 preamble)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def progress_over(items: list, progress: bool, description: str, unit: str = "file") -> Iterable:
    """``items`` wrapped in a progress bar (``medgan.progress``) when ``progress`` is on and there are more than a few of them."""
    if progress and len(items) > 4:
        from medgan.progress import progress_bar

        return progress_bar(items, desc=description, unit=unit, leave=False)
    return items


def subject_of(path: Path) -> str:
    """The default subject key of a file: its name without image suffixes."""
    name = path.name
    for suffix in NIFTI_SUFFIXES[::-1] + DICOM_SUFFIXES + PICTURE_SUFFIXES + NUMPY_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def suffix_of(path: Path) -> str:
    """The lower-case suffix that decides the file kind (``".nii.gz"`` counts as one suffix)."""
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def first_line(error: BaseException) -> str:
    """``"ErrorType: first meaningful line of the message"``, for one-line error reports: never a line of a
    traceback that the library put into its message (``medgan.errors.first_meaningful_line``)."""
    name, text = type(error).__name__, first_meaningful_line(str(error))
    if not text:
        return name
    return text if text.startswith(f"{name}:") else f"{name}: {text}"  # a traceback's last line names the type
