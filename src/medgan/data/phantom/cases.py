"""Phantom patients and datasets: rendered slices, lesion ROIs and LiTS-style volumes of the simulated CT phantom.

Simulated data, not patient data. A slice is made in two stages: the patient's anatomy is painted at a slice
height (``medgan.data.phantom.paint``, with lesions from ``medgan.data.phantom.lesions``), then scanned
(``medgan.data.phantom.acquisition``). Every random stream is keyed by the patient seed (and the slice height
and dose), so the same patient renders the same at any call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import ndimage

from medgan.data.phantom.acquisition import FOV_MM, simulate_acquisition
from medgan.data.phantom.anatomy import Anatomy, patient_anatomy, seed_key
from medgan.data.phantom.canvas import Canvas
from medgan.data.phantom.lesions import Lesion, lesion_mask, paint_lesion, place_lesions
from medgan.data.phantom.paint import paint_slice, textured
from medgan.data.phantom.tissue import LABEL, LESION_CLASSES


@dataclass
class PhantomCase:
    """One simulated axial CT slice of one phantom patient.

    Attributes:
        image_hu: reconstructed slice in HU, float32 [H, W] (photon noise and FBP blur included).
        truth_hu: the noise-free painted slice in HU before the scan, float32 [H, W].
        lesion_masks: one boolean [H, W] mask per liver lesion visible in the slice.
        lesion_classes: class name per lesion, one of LESION_CLASSES.
        organ_labels: uint8 [H, W] tissue labels; the names are ORGANS (lesion pixels are "lesion").
        patient: patient id, e.g. "phantom-00012"; the key for patient-level splits.
        pixel_spacing_mm: in-plane pixel size in mm (square pixels).
        z_mm: slice height in mm relative to the patient's liver hilum (superior is positive).
        dose: relative dose, or None when no noise was simulated.
        phase: contrast phase of the tissue values.
        painted_hu: the painted tissue values in HU before texture and blur (one value per painted tissue, so
            sub-tissues of one label, e.g. kidney cortex and medulla, stay apart), float32 [H, W].
    """

    image_hu: np.ndarray
    truth_hu: np.ndarray
    lesion_masks: list[np.ndarray]
    lesion_classes: list[str]
    organ_labels: np.ndarray
    patient: str
    pixel_spacing_mm: float
    z_mm: float = 0.0
    dose: float | None = 1.0
    phase: str = "portal"
    painted_hu: np.ndarray | None = None


@dataclass
class PhantomVolume:
    """A short stack of axial phantom slices with a LiTS-style segmentation.

    Attributes:
        image_hu: float32 [X, Y, Z] volume in HU; X runs to the patient's left, Y to posterior, Z to superior.
        segmentation: uint8 [X, Y, Z]: 0 background, 1 liver (with its vessels), 2 lesion (the LiTS convention).
        affine: 4x4 voxel -> RAS+ world (mm) matrix, as a NIfTI file stores it.
        patient: patient id.
        lesion_classes: class of each lesion that appears in the volume.
    """

    image_hu: np.ndarray
    segmentation: np.ndarray
    affine: np.ndarray
    patient: str
    lesion_classes: list[str] = field(default_factory=list)


@dataclass
class LesionRois:
    """Lesion-centred regions of interest cut from phantom slices.

    Attributes:
        images_hu: float32 [N, R, R] in HU.
        masks: bool [N, R, R], each ROI's own lesion.
        labels: int64 [N] class index into class_names.
        class_names: the lesion classes (LESION_CLASSES).
        patients: patient id per ROI (a patient can give several ROIs).
        pixel_spacing_mm: in-plane pixel size in mm.
    """

    images_hu: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    patients: list[str]
    pixel_spacing_mm: float


def patient_id(seed: int) -> str:
    """The patient id of phantom seed ``seed`` (used as the subject key for patient-level splits)."""
    return f"phantom-{seed:05d}"


PATIENTS_PER_SEED = 1000


def patient_seed(dataset_seed: int, index: int) -> int:
    """Seed of the ``index``-th patient of a dataset: datasets with different seeds share no patient."""
    if not 0 <= index < PATIENTS_PER_SEED:
        raise ValueError(f"a phantom dataset holds at most {PATIENTS_PER_SEED} patients, asked for patient {index}")
    return dataset_seed * PATIENTS_PER_SEED + index


def render_patient(
    seed: int,
    size: int = 256,
    dose: float | None = 1.0,
    n_lesions: int | tuple[int, int] = (1, 3),
    z_mm: float | None = None,
    phase: str = "portal",
    lesion_classes: Sequence[str] | None = None,
    n_views: int | None = None,
    kernel: str = "ramp",
) -> PhantomCase:
    """Renders one simulated axial abdominal CT slice of phantom patient ``seed``.

    The seed fixes the anatomy, the lesions and the tissue texture; the dose changes only the photon noise:
    ``render_patient(7, dose=1.0)`` and ``render_patient(7, dose=0.25)`` are the same slice of the same
    patient scanned at full and at quarter dose (their ``truth_hu`` are identical).

    Args:
        seed: patient seed (a non-negative int).
        size: image side in pixels over a 400 mm field of view (256 gives 1.56 mm pixels).
        dose: relative dose (1.0 routine, 0.25 quarter dose), or None for a noise-free scan.
        n_lesions: number of liver lesions, or an inclusive (min, max) range drawn from the seed.
        z_mm: slice height in mm relative to the liver hilum; default drawn from the seed, within the liver.
        phase: "portal" (portal-venous contrast phase) or "unenhanced".
        lesion_classes: class of each lesion (overrides ``n_lesions``); default drawn from the seed.
        n_views: projections over 180 degrees (see ``simulate_acquisition``).
        kernel: FBP filter (see ``simulate_acquisition``).

    Returns:
        The slice, its noise-free truth, lesion masks and classes, and tissue labels.
    """
    anatomy = patient_anatomy(seed, phase)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 31]))
    z = float(rng.uniform(-40.0, 25.0)) if z_mm is None else float(z_mm)
    if lesion_classes is None:
        low, high = (n_lesions, n_lesions) if isinstance(n_lesions, int) else n_lesions
        lesion_classes = [str(rng.choice(LESION_CLASSES)) for _ in range(int(rng.integers(low, high + 1)))]
    canvas = paint_slice(anatomy, z, size)
    lesions = []
    if lesion_classes:
        lesion_rng = np.random.default_rng(np.random.SeedSequence([seed, 37, *seed_key(z)]))
        lesions = place_lesions(anatomy, z, list(lesion_classes), lesion_rng, canvas)
    case = _scan(anatomy, canvas, z, lesions, dose, n_views, kernel)
    case.phase = phase
    return case


def _render(
    anatomy: Anatomy,
    z: float,
    size: int,
    lesions: Sequence[Lesion],
    dose: float | None,
    n_views: int | None,
    kernel: str,
) -> PhantomCase:
    """Paints, textures and scans one slice of ``anatomy`` with the given lesions."""
    return _scan(anatomy, paint_slice(anatomy, z, size), z, lesions, dose, n_views, kernel)


def _scan(
    anatomy: Anatomy,
    canvas: Canvas,
    z: float,
    lesions: Sequence[Lesion],
    dose: float | None,
    n_views: int | None,
    kernel: str,
) -> PhantomCase:
    """Adds the lesions to a painted slice, then textures and scans it."""
    for lesion in lesions:
        paint_lesion(canvas, lesion, z)
    truth = textured(canvas, np.random.default_rng(np.random.SeedSequence([anatomy.seed, 41, *seed_key(z)])))
    noise_key = [anatomy.seed, 43, *seed_key(z, 0.0 if dose is None else dose), canvas.size]
    noise_rng = np.random.default_rng(np.random.SeedSequence(noise_key))
    image = simulate_acquisition(truth, canvas.spacing, dose, noise_rng, n_views, kernel)
    masks, classes = [], []
    for lesion in lesions:
        mask = lesion_mask(canvas, lesion, z)
        if mask.any():
            masks.append(mask)
            classes.append(lesion.kind)
    return PhantomCase(
        image, truth, masks, classes, canvas.labels, patient_id(anatomy.seed), canvas.spacing, z, dose, "portal", canvas.hu
    )


def lesion_rois(
    n_per_class: int = 32,
    roi_size: int = 64,
    seed: int = 1,
    dose: float | None = 1.0,
    phase: str = "portal",
    size: int = 256,
    n_views: int | None = 180,
) -> LesionRois:
    """Lesion-centred ROIs, balanced over LESION_CLASSES, from simulated portal-phase liver CT.

    Each patient has 3-6 lesions of one class (multiple metastases, cysts or hemangiomas are the common
    pattern), so a patient gives several ROIs; split by ``patients`` to keep a patient on one side.

    Args:
        n_per_class: ROIs per class.
        roi_size: ROI side in pixels, centred on the lesion's centroid (64 px is 100 mm at ``size=256``).
        seed: dataset seed; patients are ``seed * 1000 + index``, so different seeds share no patient.
        dose: relative dose (see ``render_patient``).
        phase: contrast phase.
        size: render size of the whole slice (sets the pixel size: 400 mm / size).
        n_views: projections per slice; 180 keeps view aliasing (about 4 HU RMS) below the noise and the
            generation fast.

    Returns:
        The ROIs in HU with their masks, labels and patient ids.
    """
    counts = {kind: 0 for kind in LESION_CLASSES}
    images, masks, labels, patients = [], [], [], []
    index = 0
    spacing = FOV_MM / size
    while min(counts.values()) < n_per_class:
        kind = min(LESION_CLASSES, key=lambda name: (counts[name], LESION_CLASSES.index(name)))
        patient = patient_seed(seed, index)
        index += 1
        wanted = int(np.random.default_rng(np.random.SeedSequence([patient, 53])).integers(3, 7))
        case = render_patient(patient, size, dose, phase=phase, lesion_classes=[kind] * wanted, n_views=n_views)
        for mask, found in zip(case.lesion_masks, case.lesion_classes):
            if counts[found] >= n_per_class:
                continue
            row, column = (int(round(v)) for v in ndimage.center_of_mass(mask))
            images.append(_crop(case.image_hu, row, column, roi_size, -1000.0))
            masks.append(_crop(mask, row, column, roi_size, False))
            labels.append(LESION_CLASSES.index(found))
            patients.append(case.patient)
            counts[found] += 1
    stack, labels_array = np.stack(images).astype(np.float32), np.asarray(labels, dtype=np.int64)
    return LesionRois(stack, np.stack(masks), labels_array, LESION_CLASSES, patients, spacing)


def _crop(image: np.ndarray, row: int, column: int, size: int, fill: float | bool) -> np.ndarray:
    """The ``size`` x ``size`` window of ``image`` centred at (row, column), padded with ``fill`` at the edges."""
    half = size // 2
    padded = np.pad(image, half + 1, constant_values=fill)
    top, left = row - half + half + 1, column - half + half + 1
    return padded[top : top + size, left : left + size].copy()


def phantom_volume(
    seed: int,
    n_slices: int = 8,
    slice_mm: float = 5.0,
    size: int = 256,
    dose: float | None = 1.0,
    n_lesions: int | tuple[int, int] = (1, 3),
    centre_z_mm: float = -10.0,
    phase: str = "portal",
    n_views: int | None = None,
) -> PhantomVolume:
    """A short axial stack of one phantom patient with a LiTS-style segmentation (0 / 1 liver / 2 lesion).

    Anatomy varies smoothly from slice to slice; lesions are roughly spherical and appear on the slices they
    cross. Bowel content and texture are drawn per slice.

    Args:
        seed: patient seed.
        n_slices: number of axial slices.
        slice_mm: slice spacing in mm.
        size: in-plane size in pixels (400 mm field of view).
        dose: relative dose, or None for no noise.
        n_lesions: number of lesions, or an inclusive (min, max) range drawn from the seed.
        centre_z_mm: height of the middle of the stack relative to the liver hilum.
        phase: contrast phase.
        n_views: projections per slice.

    Returns:
        The volume (X to the patient's left, Y posterior, Z superior) with its NIfTI affine.
    """
    anatomy = patient_anatomy(seed, phase)
    heights = centre_z_mm + (np.arange(n_slices) - (n_slices - 1) / 2) * slice_mm
    rng = np.random.default_rng(np.random.SeedSequence([seed, 59]))
    low, high = (n_lesions, n_lesions) if isinstance(n_lesions, int) else n_lesions
    lesions: list[Lesion] = []
    for _ in range(int(rng.integers(low, high + 1))):
        kind = str(rng.choice(LESION_CLASSES))
        for lesion in place_lesions(anatomy, float(rng.choice(heights)), [kind], rng):
            gaps = [math.dist(lesion.centre, other.centre) - lesion.radius - other.radius for other in lesions]
            if all(gap > 4.0 for gap in gaps):
                lesions.append(lesion)
    images, segmentations, present = [], [], set()
    for z in heights:
        case = _render(anatomy, float(z), size, lesions, dose, n_views, "ramp")
        liver = np.isin(case.organ_labels, [LABEL["liver"], LABEL["liver-vessel"], LABEL["lesion"]])
        segmentation = liver.astype(np.uint8) + (case.organ_labels == LABEL["lesion"]).astype(np.uint8)
        images.append(case.image_hu)
        segmentations.append(segmentation)
        present.update(case.lesion_classes)
    affine = volume_affine(size, slice_mm, float(heights[0]))
    # Slice [row, column] -> volume [column, row]: X follows image columns, Y follows image rows.
    image_hu = np.stack(images, axis=-1).transpose(1, 0, 2)
    segmentation = np.stack(segmentations, axis=-1).transpose(1, 0, 2)
    kinds = [lesion.kind for lesion in lesions if lesion.kind in present]
    image_hu, segmentation = np.ascontiguousarray(image_hu), np.ascontiguousarray(segmentation)
    return PhantomVolume(image_hu, segmentation, affine, patient_id(seed), kinds)


def volume_affine(size: int, slice_mm: float, first_z_mm: float) -> np.ndarray:
    """The voxel -> RAS+ mm affine of a phantom volume ``[X, Y, Z]`` (``size`` x ``size`` slices, 400 mm field).

    Array axis 0 (X, image columns) runs to the patient's left and axis 1 (Y, image rows) to posterior, so both
    point against RAS+ x and y; axis 2 runs superior from ``first_z_mm`` (height above the liver hilum) in steps
    of ``slice_mm``. The image centre is world (0, 0).
    """
    spacing = FOV_MM / size
    offset = (size / 2 - 0.5) * spacing
    return np.array(
        [[-spacing, 0, 0, offset], [0, -spacing, 0, offset], [0, 0, slice_mm, first_z_mm], [0, 0, 0, 1]],
        dtype=np.float64,
    )


def save_lits_pair(volume: PhantomVolume, folder: str | Path, index: int, compress: bool = False) -> tuple[Path, Path]:
    """Writes a phantom volume as a LiTS-style pair ``volume-N.nii[.gz]`` / ``segmentation-N.nii[.gz]``.

    The image is stored as int16 HU (scl_slope 1, scl_inter 0) like LiTS, the segmentation as uint8.

    Args:
        volume: from ``phantom_volume``.
        folder: output folder (created if needed).
        index: the case number N.
        compress: write ``.nii.gz`` instead of ``.nii``.

    Returns:
        The image and segmentation paths.
    """
    import nibabel as nib

    from medgan.utils import atomic_path

    suffix = ".nii.gz" if compress else ".nii"
    folder = Path(folder)
    image_path, segmentation_path = folder / f"volume-{index}{suffix}", folder / f"segmentation-{index}{suffix}"
    hu = np.clip(np.round(volume.image_hu), -1024, 3071).astype(np.int16)
    for path, array in ((image_path, hu), (segmentation_path, volume.segmentation.astype(np.uint8))):
        image = nib.Nifti1Image(array, volume.affine)
        image.header.set_data_dtype(array.dtype)
        image.header.set_slope_inter(1.0, 0.0)
        image.header.set_xyzt_units("mm")
        with atomic_path(path) as temporary:
            nib.save(image, str(temporary))
    return image_path, segmentation_path
