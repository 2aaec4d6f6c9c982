"""CT dataset layouts (LiTS, MSD Task03_Liver, MedMNIST ``.npz``), extraction modes, and labels CSVs.

Layouts register themselves in ``medgan.data.sources.LAYOUTS``; ``load_slices`` offers every user path to
them before the generic pipeline, so pointing ``data.source`` at a LiTS or MSD folder or a MedMNIST file is
enough.

* **LiTS**: ``volume-N.nii[.gz]`` with ``segmentation-N.nii[.gz]`` (0 background, 1 liver, 2 tumour), anywhere
  under the folder (the original "Training Batch 1/2" folders, or volumes and segmentations apart). The
  subject of a case is ``lits-N``: one patient per volume number.
* **MSD Task03_Liver**: ``imagesTr/liver_N.nii.gz`` with ``labelsTr/liver_N.nii.gz`` (same labels). macOS
  ``._*`` companion files in the archive are ignored. The subject is the case name (``liver_N``).
* **MedMNIST** ``.npz`` (OrganAMNIST, OrganCMNIST, OrganSMNIST and the other 2D sets): ``train_images`` /
  ``train_labels`` and ``val_*`` / ``test_*``. Images are already 8-bit windowed grey values, so the mapping
  is the identity over [0, 255] in arbitrary units ("a.u."), not HU. The files carry no patient ids: each
  image is its own subject; the official train/val/test splits are the patient-level ones (Organ*MNIST split
  by CT scan), so choose them with ``data.split``.

CT volumes are read in HU through ``read_volume`` (nibabel applies ``scl_slope``/``scl_inter``) and cut
according to ``data.extract``:

* ``"slices"``: every slice along ``data.axis`` through the generic pipeline (foreground filter and all);
* ``"liver-slices"``: slices where the liver (label >= 1) covers at least ``LIVER_MIN_FRACTION`` of the slice;
  labelled "tumour" when the slice holds tumour voxels, else "liver";
* ``"liver-crops"``: the same slices cropped to the liver's bounding box (square, with a margin);
* ``"lesion-rois"``: one ``data.roi_size`` x ``data.roi_size`` region per tumour (3D connected component of
  label 2), centred on the component's centroid on its largest slice, labelled "tumour"; as many "liver"
  ROIs of tumour-free liver are drawn from the same volumes, so the two classes are balanced.

A labels CSV (``data.labels``) with ``file,label[,attribute...]`` columns gives every image or ROI cut from a
file that file's label instead (e.g. the lesion type of each volume).
"""

from __future__ import annotations

import hashlib
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from scipy import ndimage

from medgan.config import DataConfig
from medgan.data.datasets import SliceSet, slices_from_volumes, volume_mapping
from medgan.data.intensity import IntensityMapping
from medgan.data.labels import read_label_table, sorted_classes
from medgan.data.readers import Volume, read_volume
from medgan.data.slicing import fit_slices, in_plane_spacing, to_canonical, upright_slices
from medgan.data.sources import LAYOUTS
from medgan.errors import ConfigError, DataError

EXTRACT_MODES = ("slices", "liver-slices", "liver-crops", "lesion-rois")
MASK_CLASSES = ("liver", "tumour")  # class names derived from LiTS/MSD masks
LIVER_MIN_FRACTION = 0.01  # a "liver slice" has at least this fraction of its pixels labelled liver or tumour
LIVER_CROP_MARGIN_MM = 10.0  # margin around the liver bounding box in "liver-crops"
MIN_LESION_VOXELS = 10  # tumour components smaller than this are annotation specks, not lesions
AIR_HU = -1024.0  # fill value where a crop reaches past the image edge
MEDMNIST_SPLITS = ("train", "val", "test")
ORGAN_MNIST_CLASSES = (
    "bladder",
    "femur-left",
    "femur-right",
    "heart",
    "kidney-left",
    "kidney-right",
    "liver",
    "lung-left",
    "lung-right",
    "pancreas",
    "spleen",
)
MEDMNIST_CLASS_NAMES = {name: ORGAN_MNIST_CLASSES for name in ("organamnist", "organcmnist", "organsmnist")}
# MedMNIST v2 (28 x 28) on Zenodo, with the MD5 of the files medgan knows the class names of.
MEDMNIST_URL = "https://zenodo.org/record/6496656/files/{name}.npz?download=1"
MEDMNIST_SIZED_URL = "https://zenodo.org/records/10519652/files/{name}_{size}.npz?download=1"  # MedMNIST+ sizes
MEDMNIST_MD5 = {
    "organamnist": "866b832ed4eeba67bfb9edee1d5544e6",
    "organcmnist": "0afa5834fb105f7705a7d93372119a21",
    "organsmnist": "e5c39f1af030238290b9557d9503af9d",
}

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
    """``data.extract`` (``"slices"`` when the config has no such field), validated."""
    mode = config.extract
    if mode not in EXTRACT_MODES:
        raise ConfigError(f"config key 'data.extract' is {mode!r}; choose one of: {', '.join(EXTRACT_MODES)}")
    return mode


def roi_size_of(config: DataConfig) -> int:
    """``data.roi_size`` (64 when the config has no such field), validated."""
    size = config.roi_size
    if not isinstance(size, int) or size < 8:
        raise ConfigError(f"config key 'data.roi_size' must be an integer of at least 8, got {size!r}")
    return size


# --------------------------------------------------------------------------------------------------------
# Layout detection


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


@LAYOUTS.register("medmnist")
def medmnist_layout(path: Path, config: DataConfig) -> SliceSet | None:
    """A MedMNIST ``.npz`` file (it has ``train_images``); None for any other path."""
    if not (path.is_file() and path.name.lower().endswith(".npz")):
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if "train_images" not in data.files:
                return None
    except (OSError, ValueError, EOFError):
        return None  # not a readable npz: the generic reader reports it
    return load_medmnist(path, config.split, config)


# --------------------------------------------------------------------------------------------------------
# CT volumes with masks -> slices / crops / ROIs


class _Collector:
    """Accumulates fitted tiles with their subject, provenance and class name."""

    def __init__(self, config: DataConfig, mapping: IntensityMapping) -> None:
        self.config, self.mapping = config, mapping
        self.tiles: list[torch.Tensor] = []
        self.spacings: list[tuple[float, float]] = []
        self.subjects: list[str] = []
        self.sources: list[str] = []
        self.names: list[str] = []
        self.attributes: list[tuple[float, ...]] = []

    def add(
        self, images_hu: np.ndarray, spacing: tuple[float, float], case: CtCase, sources: list[str], names: list[str]
    ) -> None:
        """Adds ``[S, H, W]`` HU images cut from ``case``."""
        if not len(images_hu):
            return
        unit = self.mapping.to_unit(images_hu.astype(np.float32, copy=False))
        tiles, fitted = fit_slices(unit, spacing, self.config.resolution, self.config.fit)
        self.tiles.append(tiles)
        self.spacings.extend([fitted] * len(images_hu))
        self.subjects.extend([case.subject] * len(images_hu))
        self.sources.extend(sources)
        self.names.extend(names)

    def finish(self, class_names: tuple[str, ...], root: Path, mode: str) -> SliceSet:
        if not self.tiles:
            raise DataError(f"no {mode} could be extracted (no liver or tumour voxels in any segmentation)", root)
        counts = {name: self.names.count(name) for name in class_names}
        empty = [name for name, count in counts.items() if count == 0]
        if empty:
            raise DataError(f"class {empty[0]!r} has no samples after extracting {mode} (per class: {counts})", root)
        index = {name: position for position, name in enumerate(class_names)}
        labels = torch.as_tensor([index[name] for name in self.names], dtype=torch.int64)
        spacing = tuple(float(v) for v in np.median(np.asarray(self.spacings), axis=0))
        return SliceSet(torch.cat(self.tiles), self.mapping, spacing, self.subjects, self.sources, labels, class_names)


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
    mapping = volume_mapping(np.zeros(1, dtype=np.float32), "CT", config)
    collector = _Collector(config, mapping)
    for position, case in enumerate(cases):
        images, masks, spacing = _read_pair(case, config)
        fixed = None if rows is None else rows[position].label
        before = len(collector.names)
        if mode == "lesion-rois":
            _lesion_rois(collector, images, masks, spacing, case, roi_size_of(config), fixed, seed=position)
        else:
            _liver_slices(collector, images, masks, spacing, case, fixed, crop=mode == "liver-crops")
        if attributes is not None:  # every region cut from a case takes the case's attributes
            collector.attributes.extend([attributes[position]] * (len(collector.names) - before))
    class_names = sorted_classes([row.label for row in rows]) if rows is not None else MASK_CLASSES
    result = collector.finish(class_names, root, mode)
    if attributes is not None:
        result.attributes = torch.as_tensor(collector.attributes, dtype=torch.float32).reshape(len(result), -1)
        result.attribute_names = attribute_names
    return result


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
    volume_shape, mask_shape = _nifti_shape(case.image), _nifti_shape(case.mask)
    if mask_shape != volume_shape:
        raise DataError(
            f"segmentation {case.mask.name} has shape {mask_shape} but volume {case.image.name} "
            f"has shape {volume_shape}",
            case.mask,
        )
    volume = read_volume(case.image, config.nan_policy)
    if volume.array.ndim != 3:
        raise DataError(f"expected a 3D CT volume, got a {volume.array.ndim}D image", case.image)
    mask = _read_mask(case.mask).reshape(volume.array.shape)
    # The mask takes the volume's affine: LiTS/MSD masks share the volume grid by construction, and one
    # orientation for both keeps voxels aligned even when a mask header is sloppy.
    canonical = to_canonical(volume)
    labels = to_canonical(Volume(mask, volume.affine, volume.spacing, None, case.mask, case.subject))
    images = upright_slices(canonical.array, config.axis)
    masks = upright_slices(labels.array, config.axis)
    return images, masks, in_plane_spacing(canonical.spacing, config.axis)


def _nifti_header(path: Path):
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    try:
        return nib.load(str(path))
    except (OSError, EOFError, ValueError, ImageFileError) as error:
        problem = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(f"cannot read NIfTI ({problem})", path) from None


def _nifti_shape(path: Path) -> tuple[int, ...]:
    """The image shape from a NIfTI header, without trailing singleton axes beyond the third."""
    shape = tuple(int(v) for v in _nifti_header(path).shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def _read_mask(path: Path) -> np.ndarray:
    """A label map as int16. Not read through read_volume: an all-background mask is valid, not a "constant image"."""
    import zlib

    try:
        data = np.asanyarray(_nifti_header(path).dataobj)
    except (OSError, EOFError, ValueError, zlib.error) as error:
        raise DataError(f"cannot read segmentation ({error})", path) from None
    return np.rint(data).astype(np.int16)


def _liver_slices(
    collector: _Collector,
    images: np.ndarray,
    masks: np.ndarray,
    spacing: tuple[float, float],
    case: CtCase,
    fixed: str | None,
    crop: bool,
) -> None:
    """Slices where the liver covers at least LIVER_MIN_FRACTION, whole or cropped to the liver box."""
    liver = masks >= 1
    kept = np.flatnonzero(liver.mean(axis=(1, 2)) >= LIVER_MIN_FRACTION)
    if not len(kept):
        return
    names = [fixed or ("tumour" if (masks[k] == 2).any() else "liver") for k in kept]
    sources = [f"{case.image}#{k}" for k in kept]
    selected = images[kept]
    if crop:
        selected = _liver_crops(selected, liver[kept], spacing)
    collector.add(selected, spacing, case, sources, names)


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
    collector: _Collector,
    images: np.ndarray,
    masks: np.ndarray,
    spacing: tuple[float, float],
    case: CtCase,
    roi_size: int,
    fixed: str | None,
    seed: int,
) -> None:
    """One ROI per tumour component (and, without a CSV, as many tumour-free liver ROIs)."""
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
    if rois:
        collector.add(np.stack(rois), spacing, case, sources, names)


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


# --------------------------------------------------------------------------------------------------------
# MedMNIST


def medmnist_name(path: Path) -> str:
    """The MedMNIST dataset name of a file, e.g. ``organamnist`` for ``organamnist_64.npz``."""
    stem = path.name[: -len(".npz")].lower()
    return re.sub(r"_\d+$", "", stem)


def load_medmnist(path: str | Path, split: str = "train", config: DataConfig | None = None) -> SliceSet:
    """Loads a MedMNIST ``.npz`` split as [-1, 1] tiles with class labels.

    Args:
        path: the ``.npz`` file (``{split}_images``: uint8 ``[N, H, W]`` or ``[N, H, W, C]``;
            ``{split}_labels``: ``[N, 1]``).
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"`` (the three concatenated).
        config: data config (resolution, fit); default ``DataConfig()``.

    Returns:
        The slice set; mapping identity over [0, 255] "a.u." (MedMNIST is already windowed 8-bit grey);
        class names for Organ{A,C,S}MNIST, the label numbers otherwise; one subject per image.

    Raises:
        DataError: a missing split, a 3D or multi-label dataset, or images and labels that disagree.
    """
    path, config = Path(path), config or DataConfig()
    splits = MEDMNIST_SPLITS if split == "all" else (split,)
    if split != "all" and split not in MEDMNIST_SPLITS:
        raise ConfigError(f"config key 'data.split' is {split!r}; choose one of: train, val, test, all")
    images, labels, sources = [], [], []
    try:
        with np.load(path, allow_pickle=False) as data:
            for name in splits:
                if f"{name}_images" not in data.files or f"{name}_labels" not in data.files:
                    raise DataError(f"no {name}_images/{name}_labels arrays (has: {', '.join(data.files)})", path)
                raw_images, raw_labels = data[f"{name}_images"], data[f"{name}_labels"]
                split_images, split_labels = _medmnist_arrays(raw_images, raw_labels, name, path)
                images.append(split_images)
                labels.append(split_labels)
                sources.extend(f"{path}#{name}/{index}" for index in range(len(split_images)))
    except (OSError, ValueError, EOFError) as error:
        raise DataError(f"cannot read MedMNIST file ({error})", path) from None
    stack, classes = np.concatenate(images), np.concatenate(labels)
    mapping = _medmnist_mapping(stack)
    tiles, spacing = fit_slices(mapping.to_unit(stack.astype(np.float32)), (1.0, 1.0), config.resolution, config.fit)
    count = int(classes.max()) + 1 if len(classes) else 0
    names = MEDMNIST_CLASS_NAMES.get(medmnist_name(path), tuple(str(i) for i in range(count)))
    if count > len(names):
        raise DataError(f"label {count - 1} is beyond the {len(names)} classes of {medmnist_name(path)}", path)
    subjects = [f"{medmnist_name(path)}:{source.split('#')[-1]}" for source in sources]
    labels = torch.as_tensor(classes, dtype=torch.int64)
    return SliceSet(tiles, mapping, spacing, subjects, sources, labels, tuple(names))


def _medmnist_arrays(images: np.ndarray, labels: np.ndarray, split: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Checks one split's arrays; RGB sets (e.g. PathMNIST) become grey by ITU-R 601 luma."""
    if images.ndim == 4 and images.shape[-1] in (1, 3, 4):
        images = images[..., 0] if images.shape[-1] == 1 else images[..., :3] @ np.array([0.299, 0.587, 0.114])
    if images.ndim != 3:
        problem = f"{split}_images has shape {images.shape}; only 2D MedMNIST sets are supported (3D sets are not)"
        raise DataError(problem, path)
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        problem = f"{split}_labels has shape {labels.shape}; multi-label sets (e.g. ChestMNIST) are not supported"
        raise DataError(problem, path)
    if len(labels) != len(images):
        raise DataError(f"{split}_images has {len(images)} images but {split}_labels has {len(labels)} labels", path)
    if len(labels) and labels.min() < 0:
        raise DataError(f"{split}_labels has a negative label {labels.min()}", path)
    return images, labels.astype(np.int64)


def _medmnist_mapping(images: np.ndarray) -> IntensityMapping:
    """Identity over the stored grey range: [0, 255] for 8-bit files, [0, 1] for float files in that range."""
    if images.dtype == np.uint8 or images.max() > 1.0:
        return IntensityMapping("identity", 0.0, 255.0, "a.u.")
    return IntensityMapping("identity", 0.0, 1.0, "a.u.")


def download_medmnist(name: str, dest: str | Path, size: int = 28, timeout: float = 60.0) -> Path:
    """Downloads a MedMNIST ``.npz`` from Zenodo (only when called; nothing in medgan calls it by default).

    Args:
        name: dataset name, e.g. ``"organamnist"``.
        dest: folder to write ``{name}.npz`` (or ``{name}_{size}.npz``) into; an existing file is kept.
        size: image size: 28 (MedMNIST v2) or 64, 128, 224 (MedMNIST+).
        timeout: seconds to wait for the server.

    Returns:
        The path of the file.

    Raises:
        DataError: network failure or a checksum mismatch.
    """
    from medgan.utils import atomic_write_bytes

    name = name.lower()
    if size not in (28, 64, 128, 224):
        raise ConfigError(f"MedMNIST size must be 28, 64, 128 or 224, got {size}")
    filename = f"{name}.npz" if size == 28 else f"{name}_{size}.npz"
    path = Path(dest) / filename
    if path.is_file():
        return path
    url = MEDMNIST_URL.format(name=name) if size == 28 else MEDMNIST_SIZED_URL.format(name=name, size=size)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            payload = response.read()
    except (urllib.error.URLError, OSError) as error:
        raise DataError(f"cannot download {url} ({error})", path) from None
    expected = MEDMNIST_MD5.get(name) if size == 28 else None
    if expected and hashlib.md5(payload).hexdigest() != expected:
        raise DataError(f"download of {url} is corrupt (MD5 mismatch)", path)
    atomic_write_bytes(path, payload)
    return path
