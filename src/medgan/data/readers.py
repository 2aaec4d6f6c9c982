"""Readers: medical image files -> ``Volume`` (float32 in physical units, affine, spacing, modality, subject).

Supported inputs:

* NIfTI (``.nii``, ``.nii.gz``) through nibabel; ``get_fdata`` applies ``scl_slope``/``scl_inter``.
* DICOM through pydicom: single files, multi-frame files and series folders. The modality LUT
  (RescaleSlope/RescaleIntercept) is applied, so CT comes out in Hounsfield units.
* PNG/TIFF/JPEG/BMP through Pillow, 8- and 16-bit kept as is (colour images become grey, with a warning).
* NumPy ``.npy`` and ``.npz`` (key ``"image"``, else the first array).

Conventions (shared with every other module):

* 2D arrays are ``(H, W)`` in display orientation (row 0 at the top), as PNG and single DICOM frames are stored.
* 3D arrays are ``(X, Y, Z)`` in voxel order, like NIfTI: ``affine @ [i, j, k, 1]`` gives RAS+ world mm.
  DICOM volumes are transposed from pydicom's ``(frame, row, column)`` to ``(column, row, frame)`` and their
  LPS patient coordinates are turned into RAS (x and y negated), exactly as dcm2niix/nibabel do, so a DICOM
  series and its NIfTI conversion give the same ``Volume``.
* Data stays float32 in physical units (HU for CT, arbitrary units for MR); nothing is squashed to uint8.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from medgan.errors import DataError

NIFTI_SUFFIXES = (".nii", ".nii.gz")
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
PICTURE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
NUMPY_SUFFIXES = (".npy", ".npz")
PIXEL_DATA_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
CT_MIN_HU_HINT = -500.0  # values below this only occur in CT (air is -1000 HU); used by modality guessing


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
    """

    array: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, ...]
    modality: str | None
    path: Path
    subject: str


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


# --------------------------------------------------------------------------------------------------------
# public entry points


def read_volume(path: str | Path, nan_policy: str = "error") -> Volume:
    """Reads one image file or DICOM series folder into a ``Volume``.

    Args:
        path: a NIfTI, DICOM (single or multi-frame), PNG/TIFF, NPY/NPZ file, or a folder holding one DICOM series.
        nan_policy: ``"error"`` raises DataError on NaN/Inf voxels; ``"clean"`` replaces them with the finite
            minimum and warns.

    Returns:
        The volume, float32 in physical units.

    Raises:
        DataError: missing path, unreadable or unsupported file, no pixel data, NaN/Inf voxels, constant image.
    """
    path = Path(path)
    if not path.exists():
        raise DataError("no such file or folder", path)
    if path.is_dir():
        volume = _read_dicom_folder(path)
    else:
        kind = file_kind(path)
        if kind is None:
            expected = "expected NIfTI, DICOM, PNG/TIFF or NPY/NPZ"
            raise DataError(f"unsupported file type {_suffix(path) or '(no suffix)'}; {expected}", path)
        volume = _READERS[kind](path)
    return check_volume(volume, nan_policy)


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
        raise DataError(f"constant image (every voxel is {float(array.flat[0]):g})", volume.path)
    return volume


def file_kind(path: Path) -> str | None:
    """``"nifti"``, ``"dicom"``, ``"picture"``, ``"numpy"`` from the suffix (or DICOM magic), else None."""
    suffix = _suffix(path)
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


def progress_over(items: list, progress: bool, description: str) -> Iterable:
    """``items`` wrapped in a tqdm bar when ``progress`` is on and there are more than a few of them."""
    if progress and len(items) > 4:
        from tqdm.auto import tqdm

        return tqdm(items, desc=description, unit="file", leave=False)
    return items


def subject_of(path: Path) -> str:
    """The default subject key of a file: its name without image suffixes."""
    name = path.name
    for suffix in NIFTI_SUFFIXES[::-1] + DICOM_SUFFIXES + PICTURE_SUFFIXES + NUMPY_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


# --------------------------------------------------------------------------------------------------------
# discovery


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _discover_file(path: Path) -> Discovery:
    found = Discovery()
    kind = file_kind(path)
    if kind is None:
        found.skipped.append((path, "not an image"))
    elif kind == "dicom":
        header, problem = _dicom_header(path)
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
            header, problem = _dicom_header(path)
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


def _dicom_header(path: Path):
    """Reads a DICOM header cheaply; returns ``(dataset, None)`` or ``(None, reason)``."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        # defer_size: large values (the pixel data) are skipped, but their elements stay listed.
        header = pydicom.dcmread(path, defer_size=1024)
    except InvalidDicomError:
        return None, "not a DICOM file"
    except Exception as error:  # pydicom raises many types on damaged files; none may escape as a traceback
        return None, f"unreadable DICOM ({_first_line(error)})"
    if not any(keyword in header for keyword in PIXEL_DATA_KEYWORDS):
        return None, "DICOM without pixel data"
    return header, None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


# --------------------------------------------------------------------------------------------------------
# NIfTI


def _read_nifti(path: Path) -> Volume:
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
        problem = _first_line(error)
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


# --------------------------------------------------------------------------------------------------------
# DICOM


def _read_dicom_file(path: Path) -> Volume:
    dataset = _load_dicom(path)
    frames = _dicom_frames(dataset, path)  # [F, rows, cols] float32, rescaled
    if frames.shape[0] == 1:
        return _dicom_2d(dataset, frames[0], path)
    positions = _frame_positions(dataset, frames.shape[0])
    return _dicom_stack(frames, positions, dataset, path)


def _read_dicom_folder(folder: Path) -> Volume:
    files = [p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")]
    if not files:
        raise DataError("empty folder (no files found)", folder)
    members = [p for p in files if file_kind(p) == "dicom" and _dicom_header(p)[1] is None]
    if not members:
        found = Discovery()
        _discover_folder(folder, files, found)
        if found.items:
            raise DataError("folder holds no DICOM series (read its files one by one instead)", folder)
        raise DataError(f"no readable images ({found.skipped_summary()})", folder)
    datasets = [_load_dicom(p) for p in members]
    series = {str(d.get("SeriesInstanceUID", "")) for d in datasets}
    if len(series) > 1:
        raise DataError(f"{len(series)} DICOM series in one folder; give each series its own folder", folder)
    if len(datasets) == 1:
        return _read_dicom_file(members[0])
    frames = [_dicom_frames(d, p) for d, p in zip(datasets, members)]
    if any(f.shape[0] != 1 for f in frames):
        raise DataError("series mixes multi-frame files with other files; read multi-frame files on their own", folder)
    shapes = {f.shape[1:] for f in frames}
    if len(shapes) > 1:
        raise DataError(f"slices of different sizes in one series: {sorted(shapes)}", folder)
    order, positions = _series_order(datasets, folder)
    stack = np.stack([frames[i][0] for i in order])
    ordered = [datasets[i] for i in order]
    return _dicom_stack(stack, positions, ordered[0], folder)


def _load_dicom(path: Path):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        dataset = pydicom.dcmread(path)
    except InvalidDicomError:
        dataset = _read_without_preamble(path)
    except Exception as error:  # damaged files raise assorted errors inside pydicom
        raise DataError(f"unreadable DICOM ({_first_line(error)})", path) from None
    if not any(keyword in dataset for keyword in PIXEL_DATA_KEYWORDS):
        raise DataError("DICOM without pixel data (a report, structure set or DICOMDIR?)", path)
    return dataset


def _read_without_preamble(path: Path):
    """Old files without the Part 10 preamble: accepted only if forced parsing finds an image in them."""
    import pydicom

    try:
        dataset = pydicom.dcmread(path, force=True)
        is_image = "Rows" in dataset and "Columns" in dataset and any(k in dataset for k in PIXEL_DATA_KEYWORDS)
    except Exception:  # forced parsing of a non-DICOM file fails in arbitrary ways
        is_image = False
    if not is_image:
        raise DataError("not a DICOM file (no DICM preamble or valid header)", path)
    return dataset


def _dicom_frames(dataset, path: Path) -> np.ndarray:
    """Pixel data as float32 ``[frames, rows, cols]`` in physical units (modality LUT / rescale applied)."""
    from pydicom.pixels import apply_modality_lut

    try:
        pixels = dataset.pixel_array
    except Exception as error:  # missing decoder plugins, truncated pixel data, bad attributes...
        syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
        compressed = syntax is not None and syntax.is_compressed
        hint = f" ({syntax.name}; install pylibjpeg or gdcm to decode it)" if compressed else ""
        raise DataError(f"cannot decode DICOM pixel data{hint}: {_first_line(error)}", path) from None
    frame_count = int(dataset.get("NumberOfFrames", 1) or 1)
    samples = int(dataset.get("SamplesPerPixel", 1) or 1)
    if dataset.get("PhotometricInterpretation") == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        pixels, samples = apply_color_lut(pixels, dataset), 3
    if samples > 1:
        photometric = dataset.get("PhotometricInterpretation", "RGB")
        warnings.warn(f"{path}: colour DICOM ({photometric}) converted to grey", stacklevel=3)
        pixels = _grey(pixels.astype(np.float32))
    if pixels.ndim == 2:
        pixels = pixels[None]  # one frame -> [1, rows, cols]
    elif frame_count == 1 or pixels.ndim != 3:
        raise DataError(f"unexpected pixel data shape {pixels.shape} for {frame_count} frame(s)", path)
    per_frame = dataset.get("PerFrameFunctionalGroupsSequence")
    if "ModalityLUTSequence" in dataset or "RescaleSlope" in dataset:
        return np.asarray(apply_modality_lut(pixels, dataset), dtype=np.float32)
    # Enhanced multi-frame objects keep rescale terms in functional groups, which apply_modality_lut ignores.
    frames = np.empty(pixels.shape, dtype=np.float32)
    for index in range(pixels.shape[0]):
        slope, intercept = _functional_rescale(dataset, per_frame, index)
        frames[index] = pixels[index].astype(np.float32) * slope + intercept
    return frames


def _functional_rescale(dataset, per_frame, index: int) -> tuple[float, float]:
    for groups in (per_frame[index] if per_frame else None, _shared_groups(dataset)):
        transform = _group_item(groups, "PixelValueTransformationSequence")
        if transform is not None and "RescaleSlope" in transform:
            return float(transform.RescaleSlope), float(transform.get("RescaleIntercept", 0.0))
    return 1.0, 0.0


def _shared_groups(dataset):
    shared = dataset.get("SharedFunctionalGroupsSequence")
    return shared[0] if shared else None


def _group_item(groups, keyword: str):
    if groups is None:
        return None
    sequence = groups.get(keyword)
    return sequence[0] if sequence else None


def _grey(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma, the same weights Pillow's ``convert("L")`` uses."""
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _orientation(dataset) -> np.ndarray | None:
    """Image orientation as a (2, 3) array (row direction, column direction) in LPS, or None."""
    value = dataset.get("ImageOrientationPatient")
    if value is None:
        plane = _group_item(_shared_groups(dataset), "PlaneOrientationSequence")
        value = getattr(plane, "ImageOrientationPatient", None)
    if value is None or len(value) != 6:
        return None
    return np.asarray([float(v) for v in value], dtype=np.float64).reshape(2, 3)


def _pixel_spacing(dataset) -> tuple[float, float]:
    """(row spacing, column spacing) in mm, i.e. the distance between rows and between columns."""
    value = dataset.get("PixelSpacing")
    if value is None:
        value = getattr(_group_item(_shared_groups(dataset), "PixelMeasuresSequence"), "PixelSpacing", None)
    if value is None:
        value = dataset.get("ImagerPixelSpacing")  # projection radiographs
    if value is None or len(value) != 2:
        return (1.0, 1.0)
    return (float(value[0]), float(value[1]))


def _thickness(dataset) -> float:
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        value = dataset.get(keyword)
        if value not in (None, "") and float(value) > 0:
            return float(value)
    measures = _group_item(_shared_groups(dataset), "PixelMeasuresSequence")
    if measures is not None and measures.get("SliceThickness"):
        return float(measures.SliceThickness)
    return 1.0


def _position(dataset) -> np.ndarray | None:
    value = dataset.get("ImagePositionPatient")
    return None if value is None or len(value) != 3 else np.asarray([float(v) for v in value], dtype=np.float64)


def _frame_positions(dataset, count: int) -> list[np.ndarray] | None:
    """Per-frame ImagePositionPatient of a multi-frame file, or None when the file does not give them."""
    per_frame = dataset.get("PerFrameFunctionalGroupsSequence")
    if per_frame and len(per_frame) == count:
        planes = [_group_item(item, "PlanePositionSequence") for item in per_frame]
        positions = [getattr(plane, "ImagePositionPatient", None) for plane in planes]
        if all(p is not None for p in positions):
            return [np.asarray([float(v) for v in p], dtype=np.float64) for p in positions]
    origin, orientation = _position(dataset), _orientation(dataset)
    offsets = dataset.get("GridFrameOffsetVector")  # RT dose and similar legacy multi-frame objects
    if origin is not None and orientation is not None and offsets is not None and len(offsets) == count:
        normal = np.cross(orientation[0], orientation[1])
        return [origin + float(offset) * normal for offset in offsets]
    return None


def _series_order(datasets: list, folder: Path) -> tuple[list[int], list[np.ndarray] | None]:
    """Slice order of a series: by position along the slice normal, else by InstanceNumber."""
    positions = [_position(d) for d in datasets]
    orientation = _orientation(datasets[0])
    if orientation is not None and all(p is not None for p in positions):
        normal = np.cross(orientation[0], orientation[1])
        distances = np.array([float(p @ normal) for p in positions])
        order = list(np.argsort(distances, kind="stable"))
        if len(np.unique(np.round(distances, 3))) < len(distances):
            raise DataError("several slices share one position (more than one acquisition in the series?)", folder)
        return order, [positions[i] for i in order]
    numbers = [int(d.get("InstanceNumber", 0) or 0) for d in datasets]
    return list(np.argsort(numbers, kind="stable")), None


def _lps_to_ras(affine: np.ndarray) -> np.ndarray:
    """DICOM patient coordinates are LPS; NIfTI world coordinates are RAS: negate x and y."""
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine


def _dicom_2d(dataset, frame: np.ndarray, path: Path) -> Volume:
    row_spacing, column_spacing = _pixel_spacing(dataset)
    orientation = _orientation(dataset)
    origin = _position(dataset)
    affine = np.eye(4)
    if orientation is not None:
        # array index (r, c): moving down a row follows the column direction, across a column the row direction.
        affine[:3, 0] = orientation[1] * row_spacing
        affine[:3, 1] = orientation[0] * column_spacing
        affine[:3, 2] = np.cross(orientation[0], orientation[1]) * _thickness(dataset)
        affine[:3, 3] = origin if origin is not None else 0.0
        affine = _lps_to_ras(affine)
    else:
        affine[0, 0], affine[1, 1] = row_spacing, column_spacing
    spacing = (row_spacing, column_spacing)
    return Volume(np.ascontiguousarray(frame), affine, spacing, _modality(dataset), path, _dicom_subject(dataset, path))


def _dicom_stack(frames: np.ndarray, positions: list[np.ndarray] | None, reference, path: Path) -> Volume:
    """Builds a 3D volume from frames ``[K, rows, cols]`` already in slice order."""
    row_spacing, column_spacing = _pixel_spacing(reference)
    orientation = _orientation(reference)
    count = frames.shape[0]
    if positions is not None and orientation is not None:
        normal = np.cross(orientation[0], orientation[1])
        order = np.argsort([float(p @ normal) for p in positions], kind="stable")
        frames, positions = frames[order], [positions[i] for i in order]
        step = (positions[-1] - positions[0]) / (count - 1)
        gaps = np.diff([float(p @ normal) for p in positions])
        if gaps.size and (gaps.max() - gaps.min()) > 0.1 * max(abs(float(np.median(gaps))), 1e-6):
            uneven = f"uneven slice spacing ({gaps.min():.3g}..{gaps.max():.3g} mm); using the mean"
            warnings.warn(f"{path}: {uneven}", stacklevel=3)
        slice_spacing = float(np.linalg.norm(step))
        origin = positions[0]
    else:
        orientation = orientation if orientation is not None else np.array([[1.0, 0, 0], [0, 1.0, 0]])
        slice_spacing = _thickness(reference)
        step = np.cross(orientation[0], orientation[1]) * slice_spacing
        origin = _position(reference) if _position(reference) is not None else np.zeros(3)
    affine = np.eye(4)
    affine[:3, 0] = orientation[0] * column_spacing  # array axis 0 = DICOM column index
    affine[:3, 1] = orientation[1] * row_spacing  # array axis 1 = DICOM row index
    affine[:3, 2] = step
    affine[:3, 3] = origin
    # (frame, row, column) -> (column, row, frame): the NIfTI voxel order, so slicing rules are shared.
    array = np.ascontiguousarray(np.transpose(frames, (2, 1, 0)))
    spacing = (column_spacing, row_spacing, slice_spacing)
    return Volume(array, _lps_to_ras(affine), spacing, _modality(reference), path, _dicom_subject(reference, path))


def _modality(dataset) -> str | None:
    value = str(dataset.get("Modality", "")).upper()
    return value if value in ("CT", "MR") else None


def _dicom_subject(dataset, path: Path) -> str:
    for keyword in ("PatientID", "StudyInstanceUID"):
        value = str(dataset.get(keyword, "") or "").strip()
        if value:
            return value
    return subject_of(path)


# --------------------------------------------------------------------------------------------------------
# pictures and arrays


def _read_picture(path: Path) -> Volume:
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
        raise DataError(f"cannot read image ({_first_line(error)})", path) from None
    if array.ndim != 2:
        raise DataError(f"unsupported picture layout {array.shape}", path)
    return Volume(array.astype(np.float32), np.eye(4), (1.0, 1.0), None, path, subject_of(path))


def _read_numpy(path: Path) -> Volume:
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
        raise DataError(f"cannot read NumPy file ({_first_line(error)})", path) from None
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise DataError(f"array of type {array.dtype} is not numeric", path)
    if array.ndim > 3:
        array = np.squeeze(array)
    if array.ndim not in (2, 3):
        raise DataError(f"array of shape {array.shape}; medgan reads 2D images and 3D volumes", path)
    array = np.ascontiguousarray(array, dtype=np.float32)
    return Volume(array, np.eye(4), (1.0,) * array.ndim, None, path, subject_of(path))


_READERS = {"nifti": _read_nifti, "dicom": _read_dicom_file, "picture": _read_picture, "numpy": _read_numpy}
