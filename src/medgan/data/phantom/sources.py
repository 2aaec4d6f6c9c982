"""The embedded sources of the simulated CT phantom, registered in ``medgan.data.sources.SOURCES`` on import.

Simulated data, not patient data; generated once per process, then cached:

* ``"ct-phantom"``: 32 patients x 2 whole slices (unlabelled), rendered at 128 px (256 px for resolution 256);
* ``"ct-lesions"``: 60 lesion-centred 64 x 64 ROIs per class (cyst, metastasis, hemangioma) from 256 px slices;
* ``"ct-lesions-hard"``: 20 such ROIs per class at a quarter of the dose (the hard regime of the liver project).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from medgan.config import DataConfig
from medgan.data.datasets import SliceSet, slices_from_volumes
from medgan.data.phantom.acquisition import FOV_MM
from medgan.data.phantom.cases import LesionRois, lesion_rois, patient_seed, render_patient
from medgan.data.readers import Volume
from medgan.data.sources import SOURCES

PHANTOM_PATIENTS = 32  # patients of the "ct-phantom" source
PHANTOM_SLICES_PER_PATIENT = 2  # axial slices per patient, one upper and one lower in the liver
PHANTOM_SEED = 0  # dataset seed of "ct-phantom" (patients 0..31)
# ROIs per lesion class in "ct-lesions": 180 in all, about the 182 ROIs of the Frid-Adar et al. study. With 24 per
# class a 4-minute conditional run's samples were recognised at chance (0.32), with 60 (and the portal liver
# window, the auxiliary classifier and no intensity augmentation) at 0.89; generating them takes about 20 s,
# once per process.
LESION_ROIS_PER_CLASS = 60
LESION_SEED = 1  # dataset seed of "ct-lesions" (patients from 1000 on: none shared with "ct-phantom")
# "ct-lesions-hard": the regime of Frid-Adar et al. (a real-only classifier near 80% sensitivity), reached on the
# phantom with fewer ROIs and a lower dose (more quantum noise over the tens-of-HU class differences); calibrated
# with benchmarks/liver_hard_regime.py (real-only balanced accuracy on new patients, see README).
HARD_LESION_ROIS_PER_CLASS = 20
HARD_LESION_DOSE = 0.25  # relative dose: quantum noise std about 1 / sqrt(0.25) = 2 x routine dose's


def render_size(resolution: int) -> int:
    """Render size for whole slices fitted to ``resolution``: 128 up to 128 (so 64 and 32 are anti-aliased
    downsamplings), 256 above."""
    return 128 if resolution <= 128 else 256


@functools.lru_cache(maxsize=8)
def phantom_slices(
    n_patients: int = PHANTOM_PATIENTS,
    slices_per_patient: int = PHANTOM_SLICES_PER_PATIENT,
    size: int = 128,
    seed: int = PHANTOM_SEED,
    dose: float | None = 1.0,
    phase: str = "portal",
) -> tuple[np.ndarray, tuple[str, ...], tuple[float, ...]]:
    """Whole simulated abdominal slices in HU, cached in-process (generation is deterministic).

    Each patient gets 0-2 liver lesions and ``slices_per_patient`` slices spread between 35 mm below and
    20 mm above the liver hilum.

    Args:
        n_patients: number of patients.
        slices_per_patient: slices per patient.
        size: render size in pixels (400 mm field of view).
        seed: dataset seed; patients are ``seed * 1000 + index``.
        dose: relative dose.
        phase: contrast phase.

    Returns:
        ``(images [N, size, size] float32 HU (read-only), patient id per image, slice height per image)``.
    """
    images, patients, heights = [], [], []
    for index in range(n_patients):
        patient = patient_seed(seed, index)
        for z in slice_heights(patient, slices_per_patient):
            case = render_patient(patient, size, dose, n_lesions=(0, 2), z_mm=float(z), phase=phase)
            images.append(case.image_hu)
            patients.append(case.patient)
            heights.append(float(z))
    stack = np.stack(images).astype(np.float32)
    stack.flags.writeable = False  # shared by every caller through the cache
    return stack, tuple(patients), tuple(heights)


def slice_heights(patient: int, slices_per_patient: int) -> np.ndarray:
    """The slice heights (mm from the liver hilum) of a phantom patient's whole slices: spread between 35 mm below
    and 20 mm above the hilum, each jittered by up to 8 mm (drawn from the patient seed)."""
    rng = np.random.default_rng(np.random.SeedSequence([patient, 61]))
    base = np.linspace(-35.0, 20.0, slices_per_patient) if slices_per_patient > 1 else np.array([-10.0])
    return base + rng.uniform(-8.0, 8.0, len(base))


@functools.lru_cache(maxsize=4)
def _cached_lesion_rois(n_per_class: int, roi_size: int, seed: int, dose: float = 1.0) -> LesionRois:
    rois = lesion_rois(n_per_class, roi_size, seed, dose=dose)
    rois.images_hu.flags.writeable = False
    rois.masks.flags.writeable = False
    return rois


def slice_volume(image_hu: np.ndarray, spacing: float, name: str, subject: str) -> Volume:
    """A 2D HU image as a CT ``Volume`` for the shared slicing pipeline."""
    affine = np.diag([spacing, spacing, 1.0, 1.0])
    return Volume(np.array(image_hu, dtype=np.float32), affine, (spacing, spacing), "CT", Path(name), subject)


@SOURCES.register("ct-phantom")
def ct_phantom_source(config: DataConfig) -> SliceSet:
    """The "ct-phantom" source: simulated whole abdominal CT slices (unlabelled), for unconditional training.

    32 patients x 2 axial slices at the liver level, portal-venous phase, routine dose, windowed with the
    config's CT window (abdomen W400 L50 by default). Subjects are patient ids, so ``split_by_subject`` splits
    by patient. Simulated data, see ``medgan.data.phantom``.

    Args:
        config: data config (resolution, window, fit).

    Returns:
        The slice set (64 images).
    """
    size = render_size(config.resolution)
    images, patients, heights = phantom_slices(PHANTOM_PATIENTS, PHANTOM_SLICES_PER_PATIENT, size)
    spacing = FOV_MM / size
    volumes = [
        slice_volume(image, spacing, f"ct-phantom/{patient}/z{z:+.0f}mm", patient)
        for image, patient, z in zip(images, patients, heights)
    ]
    return slices_from_volumes(volumes, config)


@SOURCES.register("ct-lesions")
def ct_lesions_source(config: DataConfig) -> SliceSet:
    """The "ct-lesions" source: simulated liver-lesion ROIs labelled cyst / metastasis / hemangioma.

    60 ROIs per class (180), 64 x 64 pixels of 1.56 mm (100 mm) centred on each lesion, from 3-6 lesions per
    patient; portal-venous phase, routine dose; windowed with the config's CT window. The layout of the
    Frid-Adar et al. 2018 liver-lesion GAN study, on simulated data. Subjects are patient ids.

    Args:
        config: data config (resolution, window, fit; ``roi_size`` when the config has it).

    Returns:
        The labelled slice set with ``class_names == LESION_CLASSES``.
    """
    return lesion_slice_set(_cached_lesion_rois(LESION_ROIS_PER_CLASS, int(config.roi_size), LESION_SEED), config)


@SOURCES.register("ct-lesions-hard")
def ct_lesions_hard_source(config: DataConfig) -> SliceSet:
    """The "ct-lesions-hard" source: "ct-lesions" with 20 ROIs per class (60) at a quarter of the dose.

    Same classes, patients (the first of the "ct-lesions" seed) and geometry; quantum noise about 2 x routine's,
    so a classifier trained on these real ROIs alone sits near the 80% sensitivity of Frid-Adar et al.
    """
    rois = _cached_lesion_rois(HARD_LESION_ROIS_PER_CLASS, int(config.roi_size), LESION_SEED, HARD_LESION_DOSE)
    return lesion_slice_set(rois, config)


def lesion_slice_set(rois: LesionRois, config: DataConfig, prefix: str = "ct-lesions") -> SliceSet:
    """Labelled lesion ROIs as a SliceSet windowed by ``config`` (subjects are patient ids)."""
    volumes, counters = [], {}
    for image, label, patient in zip(rois.images_hu, rois.labels, rois.patients):
        counters[patient] = counters.get(patient, 0) + 1
        name = f"{prefix}/{patient}/lesion{counters[patient]}-{rois.class_names[label]}"
        volumes.append(slice_volume(image, rois.pixel_spacing_mm, name, patient))
    return slices_from_volumes(volumes, config, [int(v) for v in rois.labels], rois.class_names)
