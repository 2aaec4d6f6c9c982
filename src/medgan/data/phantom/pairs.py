"""True pairs from the simulated CT phantom: the same slices at routine and at low dose, and their label maps.

Simulated data, not patient data. A phantom patient's slice is fixed by its seed and height, and the dose only
changes the photon noise (``render_patient``), so rendering a slice twice, at dose 1.0 and at a fraction,
gives a real low-dose / routine-dose pair: the same anatomy, lesions and texture (identical noise-free truth)
scanned twice with independent noise. The tissue label map of each slice (``ORGANS``) pairs a mask with its
CT for mask-to-image training.

Patients come in disjoint sets (``PAIRED_SPLITS``): ``"train"`` is the patients of the ``"ct-phantom"``
source (seed 0, patients 0-31, the same slices), ``"test"`` 16 held-out patients from another seed range
(seed 2, patients 2000-2015; ``"ct-lesions"`` uses seed 1), ``"all"`` both.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from medgan.data.phantom.acquisition import FOV_MM
from medgan.data.phantom.cases import PhantomCase, patient_seed, render_patient
from medgan.data.phantom.sources import PHANTOM_PATIENTS, PHANTOM_SEED, PHANTOM_SLICES_PER_PATIENT, slice_heights
from medgan.data.readers import progress_over
from medgan.errors import ConfigError

PAIRED_TEST_SEED = 2  # dataset seed of the held-out patients (2000 on): none shared with ct-phantom or ct-lesions
PAIRED_TEST_PATIENTS = 16
# split -> (dataset seed, patients) of each patient set it holds
PAIRED_SPLITS: dict[str, tuple[tuple[int, int], ...]] = {
    "train": ((PHANTOM_SEED, PHANTOM_PATIENTS),),
    "test": ((PAIRED_TEST_SEED, PAIRED_TEST_PATIENTS),),
    "all": ((PHANTOM_SEED, PHANTOM_PATIENTS), (PAIRED_TEST_SEED, PAIRED_TEST_PATIENTS)),
}


@dataclass(frozen=True)
class PhantomPairs:
    """Rendered phantom slices with their low-dose scans and label maps (read-only arrays).

    Attributes:
        routine: float32 ``[N, S, S]`` HU at dose 1.0.
        low: float32 ``[N, S, S]`` HU at the low dose, or None when no dose was asked for.
        labels: uint8 ``[N, S, S]`` tissue labels (indices into ``ORGANS``).
        patients: patient id per slice (the subject key).
        heights: slice height per slice, mm from the liver hilum.
        pixel_spacing_mm: pixel size.
    """

    routine: np.ndarray
    low: np.ndarray | None
    labels: np.ndarray
    patients: tuple[str, ...]
    heights: tuple[float, ...]
    pixel_spacing_mm: float


def render_pair(patient: int, z_mm: float, size: int, dose: float | None) -> tuple[PhantomCase, PhantomCase | None]:
    """One phantom slice scanned at dose 1.0 and, unless ``dose`` is None, at ``dose``: same truth, own noise.

    Args:
        patient: patient seed.
        z_mm: slice height in mm relative to the liver hilum.
        size: render size in pixels (400 mm field of view).
        dose: the low dose (relative), or None.

    Returns:
        ``(routine-dose case, low-dose case or None)``.
    """
    routine = render_patient(patient, size, 1.0, n_lesions=(0, 2), z_mm=z_mm)
    low = None if dose is None else render_patient(patient, size, dose, n_lesions=(0, 2), z_mm=z_mm)
    return routine, low


@functools.lru_cache(maxsize=4)
def phantom_pairs(
    split: str = "train", size: int = 256, dose: float | None = None, progress: bool = False,
    slices_per_patient: int = PHANTOM_SLICES_PER_PATIENT, patients: int | None = None,
) -> PhantomPairs:
    """The slices of a split's patients at routine dose, at ``dose``, and their labels; cached in-process.

    Args:
        split: ``"train"``, ``"test"`` or ``"all"`` (module docstring).
        size: render size in pixels (``sources.render_size`` of the resolution: 256 for 256 x 256 tiles).
        dose: the low dose, or None for routine-dose slices only.
        progress: a progress bar over the renders (about 0.25 s each at 256 px, twice with a dose).
        slices_per_patient: slices per patient (the ``"ct-phantom"`` heights).
        patients: at most this many patients of each set (all by default; fewer for quick tests).

    Raises:
        ConfigError: another split.
    """
    if split not in PAIRED_SPLITS:
        raise ConfigError(f"config key 'data.split' is {split!r}; paired ct-phantom data has: train, test, all")
    seeds = [patient_seed(seed, index) for seed, count in PAIRED_SPLITS[split]
             for index in range(count if patients is None else min(count, patients))]
    jobs = [(patient, float(z)) for patient in seeds for z in slice_heights(patient, slices_per_patient)]
    routine, low, labels, names = [], [], [], []
    for patient, z in progress_over(jobs, progress, "rendering phantom pairs", unit="slice"):
        first, second = render_pair(patient, z, size, dose)
        routine.append(first.image_hu)
        labels.append(first.organ_labels)
        names.append(first.patient)
        if second is not None:
            low.append(second.image_hu)
    stacks = [np.stack(routine).astype(np.float32), np.stack(low).astype(np.float32) if low else None,
              np.stack(labels).astype(np.uint8)]
    for stack in stacks:
        if stack is not None:
            stack.flags.writeable = False  # shared by every caller through the cache
    return PhantomPairs(stacks[0], stacks[1], stacks[2], tuple(names), tuple(z for _, z in jobs), FOV_MM / size)
