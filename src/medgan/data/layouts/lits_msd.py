"""LiTS and MSD Task03_Liver: CT volumes with liver/tumour masks, cut by ``data.extract``; labels CSVs.

Both layouts register themselves in ``medgan.data.sources.LAYOUTS``; ``pipeline.load_slices`` offers every
user path to them before the generic pipeline, so pointing ``data.source`` at a LiTS or MSD folder is enough.

* **LiTS**: ``volume-N.nii[.gz]`` with ``segmentation-N.nii[.gz]`` (0 background, 1 liver, 2 tumour), anywhere
  under the folder (the original "Training Batch 1/2" folders, or volumes and segmentations apart). The
  subject of a case is ``lits-N``: one patient per volume number.
* **MSD Task03_Liver**: ``imagesTr/liver_N.nii.gz`` with ``labelsTr/liver_N.nii.gz`` (same labels). macOS
  ``._*`` companion files in the archive are ignored. The subject is the case name (``liver_N``).

CT volumes are read in HU through ``read_volume`` (nibabel applies ``scl_slope``/``scl_inter``) and cut
according to ``data.extract``:

* ``"slices"``: every slice along ``data.axis`` through the generic pipeline (foreground filter and all);
* ``"liver-slices"``: slices where the liver (label >= 1) covers at least ``LIVER_MIN_FRACTION`` of the slice;
  labelled "tumour" when the slice holds tumour voxels, else "liver";
* ``"liver-crops"``: the same slices cropped to the liver's bounding box (square, with a margin);
* ``"lesion-rois"``: one ``data.roi_size`` x ``data.roi_size`` region per tumour (3D connected component of
  label 2), centred on the component's centroid on its largest slice, labelled "tumour"; as many "liver"
  ROIs of tumour-free liver are drawn from the same volumes, so the two classes are balanced.

The cut regions go through the one slice builder (``datasets.SliceBuilder.add_images``) with the config's CT
window. A labels CSV (``data.labels``) with ``file,label[,attribute...]`` columns gives every image or ROI cut
from a file that file's label instead (e.g. the lesion type of each volume).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np
from scipy import ndimage

from medgan.config import DataConfig
from medgan.data.datasets import SliceBuilder, SliceSet, slices_from_volumes
from medgan.data.domains import volume_mapping
from medgan.data.labels import read_label_table, sorted_classes
from medgan.data.readers import Volume, nifti_shape, read_label_map, read_volume
from medgan.data.slicing import in_plane_spacing, to_canonical, upright_slices
from medgan.data.sources import LAYOUTS
from medgan.errors import ConfigError, DataError

EXTRACT_MODES = ("slices", "liver-slices", "liver-crops", "lesion-rois")
MASK_CLASSES = ("liver", "tumour")  # class names derived from LiTS/MSD masks
LIVER_MIN_FRACTION = 0.01  # a "liver slice" has at least this fraction of its pixels labelled liver or tumour
LIVER_CROP_MARGIN_MM = 10.0  # margin around the liver bounding box in "liver-crops"
MIN_LESION_VOXELS = 10  # tumour components smaller than this are annotation specks, not lesions
AIR_HU = -1024.0  # fill value where a crop reaches past the image edge

_LITS_VOLUME = re.compile(r"^volume-(\d+)\.nii(\.gz)?$")
_LITS_SEGMENTATION = re.compile(r"^segmentation-(\d+)\.nii(\.gz)?$")


@dataclass(frozen=True)
class CtCase:
    """One CT volume of a dataset layout, with its segmentation when there is one.

    Attributes:
        image: the volume file.
        mask: the segmentation file (0 background, 1 liver, 2 tumour), or None.
        subject: the patient key for subject-level splits.
    """

    image: Path
    mask: Path | None
    subject: str


def extract_mode(config: DataConfig) -> str:
    """``data.extract``, validated."""
    mode = config.extract
    if mode not in EXTRACT_MODES:
        raise ConfigError(f"config key 'data.extract' is {mode!r}; choose one of: {', '.join(EXTRACT_MODES)}")
    return mode


def roi_size_of(config: DataConfig) -> int:
    """``data.roi_size``, validated."""
    size = config.roi_size
    if not isinstance(size, int) or size < 8:
        raise ConfigError(f"config key 'data.roi_size' must be an integer of at least 8, got {size!r}")
    return size


def find_lits_cases(folder: Path) -> list[CtCase]:
    """LiTS cases under ``folder``: ``volume-N`` files paired with ``segmentation-N`` files by number.

    Raises:
        DataError: two volume (or two segmentation) files with the same number.
    """
    volumes, segmentations = _numbered(folder, _LITS_VOLUME), _numbered(folder, _LITS_SEGMENTATION)
    return [CtCase(path, segmentations.get(number), f"lits-{number}") for number, path in sorted(volumes.items())]


def _numbered(folder: Path, pattern: re.Pattern) -> dict[int, Path]:
    found: dict[int, Path] = {}
    for path in sorted(folder.rglob("*.nii*")):
        match = pattern.match(path.name)
        if match is None or not path.is_file():
            continue
        number = int(match.group(1))
        if number in found:
            raise DataError(f"two files for case {number}: {found[number].name} and {path.name}; keep one", path)
        found[number] = path
    return found


def find_msd_cases(folder: Path) -> list[CtCase]:
    """MSD cases: every NIfTI in ``imagesTr`` with the file of the same name in ``labelsTr``."""
    images, labels = folder / "imagesTr", folder / "labelsTr"
    cases = []
    for path in sorted(images.iterdir()):
        if path.name.startswith(".") or not path.name.endswith((".nii", ".nii.gz")) or not path.is_file():
            continue
        mask = labels / path.name
        stem = path.name[: -len(".nii.gz")] if path.name.endswith(".nii.gz") else path.name[: -len(".nii")]
        cases.append(CtCase(path, mask if mask.is_file() else None, stem))
    return cases


@LAYOUTS.register("lits")
def lits_layout(path: Path, config: DataConfig) -> SliceSet | None:
    """The LiTS layout: a folder holding ``volume-N.nii[.gz]`` files; None for any other path."""
    if not path.is_dir():
        return None
    cases = find_lits_cases(path)
    return load_ct_cases(cases, config, path) if cases else None


@LAYOUTS.register("msd")
def msd_layout(path: Path, config: DataConfig) -> SliceSet | None:
    """The Medical Segmentation Decathlon layout (``imagesTr/`` + ``labelsTr/``); None for any other path."""
    if not (path.is_dir() and (path / "imagesTr").is_dir() and (path / "labelsTr").is_dir()):
        return None
    cases = find_msd_cases(path)
    if not cases:
        raise DataError("imagesTr/ holds no NIfTI files", path / "imagesTr")
    return load_ct_cases(cases, config, path)


# --------------------------------------------------------------------------------------------------------
# CT volumes with masks -> slices / crops / ROIs


def load_ct_cases(cases: list[CtCase], config: DataConfig, root: Path) -> SliceSet:
    """Reads CT cases in HU and extracts slices, liver slices or crops, or lesion ROIs (``data.extract``).

    Args:
        cases: the cases of a layout.
        config: data config (extract, roi_size, axis, window, resolution, fit, labels, nan_policy).
        root: the dataset folder (for messages and relative CSV paths).

    Returns:
        The slice set; labelled for every mode but ``"slices"`` without a CSV.

    Raises:
        DataError: unreadable files, a segmentation whose shape differs from its volume, a missing
            segmentation where the mode needs one, CSV problems, or a class with no samples.
    """
    mode = extract_mode(config)
    table = read_label_table(config.labels, root) if config.labels else None
    rows = [table.row_for(case.image, root, case.subject) for case in cases] if table is not None else None
    attribute_names = table.attribute_names if table is not None else ()
    attributes = [row.attributes for row in rows] if rows is not None and attribute_names else None
    if mode == "slices":
        class_names = sorted_classes([row.label for row in rows]) if rows is not None else ()
        labels = [class_names.index(row.label) for row in rows] if rows is not None else None
        volumes = _ct_volumes(cases, config)
        return slices_from_volumes(volumes, config, labels, class_names, attributes, attribute_names)
    class_names = sorted_classes([row.label for row in rows]) if rows is not None else MASK_CLASSES
    builder = SliceBuilder(config, mapping=volume_mapping(np.zeros(1, dtype=np.float32), "CT", config))
    for position, case in enumerate(cases):
        images, masks, spacing = _read_pair(case, config)
        fixed = None if rows is None else rows[position].label
        if mode == "lesion-rois":
            regions, sources, names = _lesion_rois(images, masks, case, roi_size_of(config), fixed, seed=position)
        else:
            regions, sources, names = _liver_slices(images, masks, spacing, case, fixed, crop=mode == "liver-crops")
        labels = [class_names.index(name) for name in names]
        case_attributes = None if attributes is None else attributes[position]  # every region takes its case's
        builder.add_images(regions, spacing, [case.subject] * len(sources), sources, labels, case_attributes)
    _check_classes(builder, class_names, root, mode)
    return builder.finish(True, class_names, None if attributes is None else attribute_names)


def _check_classes(builder: SliceBuilder, class_names: tuple[str, ...], root: Path, mode: str) -> None:
    """Raises DataError when nothing was extracted, or when a class has no samples."""
    if not len(builder):
        raise DataError(f"no {mode} could be extracted (no liver or tumour voxels in any segmentation)", root)
    counts = {name: builder.labels.count(index) for index, name in enumerate(class_names)}
    empty = [name for name, count in counts.items() if count == 0]
    if empty:
        raise DataError(f"class {empty[0]!r} has no samples after extracting {mode} (per class: {counts})", root)


def _ct_volumes(cases: list[CtCase], config: DataConfig) -> Iterator[Volume]:
    """The case volumes one at a time (a LiTS volume can take a gigabyte), marked as CT."""
    for case in cases:
        yield replace(read_volume(case.image, config.nan_policy), modality="CT", subject=case.subject)


def _read_pair(case: CtCase, config: DataConfig) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """A case's upright HU slices ``[S, H, W]``, its label slices and their (row, column) spacing.

    Raises:
        DataError: no segmentation, or a segmentation whose shape differs from the volume's.
    """
    if case.mask is None:
        raise DataError(f"no segmentation for this volume; data.extract={extract_mode(config)} needs one", case.image)
    # Compare header shapes first: a mismatch is reported before a gigabyte volume is read.
    volume_shape, mask_shape = nifti_shape(case.image), nifti_shape(case.mask)
    if mask_shape != volume_shape:
        raise DataError(
            f"segmentation {case.mask.name} has shape {mask_shape} but volume {case.image.name} "
            f"has shape {volume_shape}",
            case.mask,
        )
    volume = read_volume(case.image, config.nan_policy)
    if volume.array.ndim != 3:
        raise DataError(f"expected a 3D CT volume, got a {volume.array.ndim}D image", case.image)
    mask = read_label_map(case.mask).reshape(volume.array.shape)
    # The mask takes the volume's affine: LiTS/MSD masks share the volume grid by construction, and one
    # orientation for both keeps voxels aligned even when a mask header is sloppy.
    canonical = to_canonical(volume)
    labels = to_canonical(Volume(mask, volume.affine, volume.spacing, None, case.mask, case.subject))
    images = upright_slices(canonical.array, config.axis)
    masks = upright_slices(labels.array, config.axis)
    return images, masks, in_plane_spacing(canonical.spacing, config.axis)


def _liver_slices(
    images: np.ndarray,
    masks: np.ndarray,
    spacing: tuple[float, float],
    case: CtCase,
    fixed: str | None,
    crop: bool,
) -> tuple[np.ndarray, list[str], list[str]]:
    """Slices where the liver covers at least LIVER_MIN_FRACTION, whole or cropped to the liver box.

    Returns:
        ``(HU images [K, h, w], source per image, class name per image)``.
    """
    liver = masks >= 1
    kept = np.flatnonzero(liver.mean(axis=(1, 2)) >= LIVER_MIN_FRACTION)
    names = [fixed or ("tumour" if (masks[k] == 2).any() else "liver") for k in kept]
    sources = [f"{case.image}#{k}" for k in kept]
    selected = images[kept]
    if crop and len(kept):
        selected = _liver_crops(selected, liver[kept], spacing)
    return selected, sources, names


def _liver_crops(images: np.ndarray, liver: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """Crops every slice to one square box around the liver (its extent over these slices plus a margin)."""
    rows, columns = np.nonzero(liver.any(axis=0))
    margin = (LIVER_CROP_MARGIN_MM / spacing[0], LIVER_CROP_MARGIN_MM / spacing[1])
    top, bottom = rows.min() - margin[0], rows.max() + margin[0]
    left, right = columns.min() - margin[1], columns.max() + margin[1]
    # Square in millimetres, so "resize" later does not distort the liver.
    side_mm = max((bottom - top) * spacing[0], (right - left) * spacing[1])
    height, width = int(round(side_mm / spacing[0])), int(round(side_mm / spacing[1]))
    centre = (int(round((top + bottom) / 2)), int(round((left + right) / 2)))
    return np.stack([_crop(image, centre, (height, width), AIR_HU) for image in images])


def _crop(image: np.ndarray, centre: tuple[int, int], shape: tuple[int, int], fill: float) -> np.ndarray:
    """The ``shape`` window of ``image`` centred at ``centre``, padded with ``fill`` beyond the edges."""
    top, left = centre[0] - shape[0] // 2, centre[1] - shape[1] // 2
    out = np.full(shape, fill, dtype=np.float32)
    row0, row1 = max(top, 0), min(top + shape[0], image.shape[0])
    column0, column1 = max(left, 0), min(left + shape[1], image.shape[1])
    if row0 < row1 and column0 < column1:
        out[row0 - top : row1 - top, column0 - left : column1 - left] = image[row0:row1, column0:column1]
    return out


def _lesion_rois(
    images: np.ndarray, masks: np.ndarray, case: CtCase, roi_size: int, fixed: str | None, seed: int
) -> tuple[np.ndarray, list[str], list[str]]:
    """One ROI per tumour component (and, without a CSV, as many tumour-free liver ROIs).

    Returns:
        ``(HU ROIs [K, roi_size, roi_size], source per ROI, class name per ROI)``.
    """
    components, count = ndimage.label(masks == 2, structure=np.ones((3, 3, 3), dtype=bool))
    rois, sources = [], []
    for number, box in enumerate(ndimage.find_objects(components), start=1):
        if box is None:
            continue
        component = components[box] == number
        if component.sum() < MIN_LESION_VOXELS:
            continue
        largest = int(np.argmax(component.sum(axis=(1, 2))))
        row, column = ndimage.center_of_mass(component[largest])
        centre = (int(round(row)) + box[1].start, int(round(column)) + box[2].start)
        index = largest + box[0].start
        rois.append(_crop(images[index], centre, (roi_size, roi_size), AIR_HU))
        sources.append(f"{case.image}#{index}@{centre[0]},{centre[1]}")
    names = [fixed or "tumour"] * len(rois)
    if fixed is None:
        liver_rois, liver_sources = _liver_rois(images, masks, roi_size, len(rois), case, seed)
        rois, sources, names = rois + liver_rois, sources + liver_sources, names + ["liver"] * len(liver_rois)
    return (np.stack(rois) if rois else np.empty((0, roi_size, roi_size), np.float32)), sources, names


def _liver_rois(
    images: np.ndarray, masks: np.ndarray, roi_size: int, count: int, case: CtCase, seed: int
) -> tuple[list[np.ndarray], list[str]]:
    """``count`` ROIs centred in tumour-free liver: the centre is deep in the liver and half an ROI from tumour."""
    rng = np.random.default_rng(seed)
    liver_slices = np.flatnonzero((masks >= 1).mean(axis=(1, 2)) >= LIVER_MIN_FRACTION)
    rois, sources = [], []
    for index in rng.permutation(liver_slices)[: 4 * count]:
        if len(rois) == count:
            break
        inside = ndimage.distance_transform_edt(masks[index] == 1) >= roi_size / 8
        away = ndimage.distance_transform_edt(masks[index] != 2) >= roi_size / 2
        candidates = np.argwhere(inside & away)
        if not len(candidates):
            continue
        row, column = candidates[rng.integers(len(candidates))]
        rois.append(_crop(images[index], (int(row), int(column)), (roi_size, roi_size), AIR_HU))
        sources.append(f"{case.image}#{index}@{row},{column}")
    return rois, sources
