"""DICOM through pydicom: single files, multi-frame files and series folders.

The modality LUT (RescaleSlope/RescaleIntercept) is applied, so CT comes out in Hounsfield units. Volumes are
transposed from pydicom's ``(frame, row, column)`` to ``(column, row, frame)`` and LPS patient coordinates
become RAS (see ``medgan.data.readers.base``).

Geometry: NaN/Inf in ImageOrientationPatient, ImagePositionPatient or a frame position is an error naming the
file. An orientation whose directions span no plane (zeros, or parallel rows and columns) is treated as
missing, with a warning: slices are then ordered by InstanceNumber and laid out axially. Rows x Columns x frames
is checked against the pixel data before it is decoded (``_check_pixel_claim``). Slices unevenly spaced along the
normal (a missing slice) are read as acquired with a warning; the affine uses the mean spacing, and the volume
records why (``Volume.uneven``), so that writers that need one affine refuse it (``base.check_writable_geometry``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from medgan.data.readers.base import Volume, check_claimed_size, first_line, subject_of
from medgan.errors import DataError

PIXEL_DATA_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def dicom_header(path: Path):
    """Reads a DICOM header cheaply; returns ``(dataset, None)`` or ``(None, reason)``."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        # defer_size: large values (the pixel data) are skipped, but their elements stay listed.
        header = pydicom.dcmread(path, defer_size=1024)
    except InvalidDicomError:
        return None, "not a DICOM file"
    except Exception as error:  # pydicom raises many types on damaged files; none may escape as a traceback
        return None, f"unreadable DICOM ({first_line(error)})"
    if not any(keyword in header for keyword in PIXEL_DATA_KEYWORDS):
        return None, "DICOM without pixel data"
    return header, None


def read_dicom_file(path: Path) -> Volume:
    """One DICOM file: a 2D image, or a 3D volume for a multi-frame file."""
    dataset = _load_dicom(path)
    frames = _dicom_frames(dataset, path)  # [F, rows, cols] float32, rescaled
    _warn_unusable_orientation(dataset, path)
    if frames.shape[0] == 1:
        return _dicom_2d(dataset, frames[0], path)
    positions = _frame_positions(dataset, frames.shape[0])
    return _dicom_stack(frames, positions, dataset, path)


def read_dicom_series(folder: Path, members: list[Path]) -> Volume:
    """The one DICOM series of ``folder`` from its readable DICOM files ``members`` (at least one).

    Raises:
        DataError: several series, mixed multi-frame and single-frame files, slices of different sizes, or
            slices sharing one position.
    """
    datasets = [_load_dicom(p) for p in members]
    series = {str(d.get("SeriesInstanceUID", "")) for d in datasets}
    if len(series) > 1:
        raise DataError(f"{len(series)} DICOM series in one folder; give each series its own folder", folder)
    if len(datasets) == 1:
        return read_dicom_file(members[0])
    frames = [_dicom_frames(d, p) for d, p in zip(datasets, members)]
    if any(f.shape[0] != 1 for f in frames):
        raise DataError("series mixes multi-frame files with other files; read multi-frame files on their own", folder)
    shapes = {f.shape[1:] for f in frames}
    if len(shapes) > 1:
        raise DataError(f"slices of different sizes in one series: {sorted(shapes)}", folder)
    _warn_unusable_orientation(datasets[0], folder)
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
        raise DataError(f"unreadable DICOM ({first_line(error)})", path) from None
    if not any(keyword in dataset for keyword in PIXEL_DATA_KEYWORDS):
        raise DataError("DICOM without pixel data (a report, structure set or DICOMDIR?)", path)
    _check_finite_geometry(dataset, path)
    return dataset


def _check_finite_geometry(dataset, path: Path) -> None:
    """Raises DataError for NaN/Inf (or unreadable numbers) in the orientation or positions of ``dataset``."""
    per_frame = dataset.get("PerFrameFunctionalGroupsSequence") or []
    planes = [_group_item(item, "PlanePositionSequence") for item in per_frame]
    values = {
        "ImageOrientationPatient": _raw_orientation(dataset),
        "ImagePositionPatient": dataset.get("ImagePositionPatient"),
        "PixelSpacing": dataset.get("PixelSpacing"),
        "a frame's ImagePositionPatient": [v for plane in planes for v in getattr(plane, "ImagePositionPatient", [])],
    }
    for keyword, value in values.items():
        try:
            finite = value is None or bool(np.isfinite(np.asarray([float(v) for v in value], dtype=np.float64)).all())
        except (TypeError, ValueError):
            finite = False
        if not finite:
            raise DataError(f"{keyword} has values that are not finite numbers ({value!r})", path)


def _warn_unusable_orientation(dataset, path: Path) -> None:
    if _raw_orientation(dataset) is not None and _orientation(dataset) is None:
        warnings.warn(f"{path}: ImageOrientationPatient spans no plane (zero or parallel directions); ignored, "
                      "slices laid out axially", stacklevel=3)


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

    _check_pixel_claim(dataset, path)
    try:
        pixels = dataset.pixel_array
    except Exception as error:  # missing decoder plugins, truncated pixel data, bad attributes...
        syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
        compressed = syntax is not None and syntax.is_compressed
        hint = f" ({syntax.name}; install pylibjpeg or gdcm to decode it)" if compressed else ""
        raise DataError(f"cannot decode DICOM pixel data{hint}: {first_line(error)}", path) from None
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


def _check_pixel_claim(dataset, path: Path) -> None:
    """Rows x Columns x frames x samples against the voxel limit and, for uncompressed data, the bytes present."""
    try:
        shape = tuple(int(dataset.get(keyword, 1) or 1) for keyword in ("NumberOfFrames", "Rows", "Columns"))
        samples, bits = int(dataset.get("SamplesPerPixel", 1) or 1), int(dataset.get("BitsAllocated", 0) or 0)
    except (TypeError, ValueError) as error:
        raise DataError(f"unreadable image size in the DICOM header ({first_line(error)})", path) from None
    shape = shape + ((samples,) if samples > 1 else ())
    syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
    keyword = next(keyword for keyword in PIXEL_DATA_KEYWORDS if keyword in dataset)
    native = syntax is None or not syntax.is_encapsulated
    stored = len(dataset[keyword].value or b"") if native and bits % 8 == 0 and bits else None
    check_claimed_size(path, shape, bits // 8, stored, holder="the pixel data")


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


def _raw_orientation(dataset):
    """ImageOrientationPatient of the dataset or of its shared functional groups, as stored, or None."""
    value = dataset.get("ImageOrientationPatient")
    if value is None:
        plane = _group_item(_shared_groups(dataset), "PlaneOrientationSequence")
        value = getattr(plane, "ImageOrientationPatient", None)
    return value


def _orientation(dataset) -> np.ndarray | None:
    """Image orientation as a (2, 3) array (row direction, column direction) in LPS, or None when missing or
    spanning no plane (see the module docstring)."""
    value = _raw_orientation(dataset)
    if value is None or len(value) != 6:
        return None
    orientation = np.asarray([float(v) for v in value], dtype=np.float64).reshape(2, 3)
    if not np.linalg.norm(np.cross(orientation[0], orientation[1])) > 1e-6:
        return None  # zero or parallel direction vectors (NaN is refused when the file is loaded)
    return orientation


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
    uneven = None  # without positions, slices are laid out at the slice thickness: nothing to check
    if positions is not None and orientation is not None:
        normal = np.cross(orientation[0], orientation[1])
        order = np.argsort([float(p @ normal) for p in positions], kind="stable")
        frames, positions = frames[order], [positions[i] for i in order]
        step = (positions[-1] - positions[0]) / (count - 1)
        uneven = uneven_slices(np.diff([float(p @ normal) for p in positions]))
        slice_spacing = float(np.linalg.norm(step))
        if uneven is not None:
            warnings.warn(f"{path}: uneven slice spacing ({uneven}); using the mean, {slice_spacing:.3g} mm, where "
                          "one spacing is needed; slices stay as acquired, but the series cannot be written as "
                          "NIfTI", stacklevel=3)
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
    return Volume(array, _lps_to_ras(affine), spacing, _modality(reference), path, _dicom_subject(reference, path),
                  uneven)


def uneven_slices(gaps: np.ndarray) -> str | None:
    """What is uneven about the distances between neighbouring slices (mm, in slice order), or None when even.

    Uneven: a gap more than 10% off the median gap (DICOM positions are rounded to 0.01-0.001 mm, far less). Named
    by its slices (1-based, in slice order): ``"slices 11 and 12 are 5.0 mm apart, the others 2.5 mm: a missing
    slice"``; a gap of about two or more median gaps is called a missing slice.
    """
    if gaps.size < 2:
        return None
    median = abs(float(np.median(gaps)))
    off = np.abs(np.abs(gaps) - median)
    irregular = int(np.count_nonzero(off > 0.1 * max(median, 1e-6)))
    if not irregular:
        return None
    worst = int(np.argmax(off))
    gap = abs(float(gaps[worst]))
    text = f"slices {worst + 1} and {worst + 2} are {_mm(gap)} mm apart, the others {_mm(median)} mm"
    text += ": a missing slice" if gap > 1.5 * median else ""
    return text + (f" ({irregular} uneven gaps in all)" if irregular > 1 else "")


def _mm(value: float) -> str:
    """A distance for messages: ``5.0``, ``2.5``, ``0.625``."""
    return f"{value:.1f}" if abs(value * 10 - round(value * 10)) < 1e-6 else f"{value:.3g}"


def _modality(dataset) -> str | None:
    value = str(dataset.get("Modality", "")).upper()
    return value if value in ("CT", "MR") else None


def _dicom_subject(dataset, path: Path) -> str:
    for keyword in ("PatientID", "StudyInstanceUID"):
        value = str(dataset.get(keyword, "") or "").strip()
        if value:
            return value
    return subject_of(path)
