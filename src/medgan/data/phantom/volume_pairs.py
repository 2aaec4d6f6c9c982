"""Whole phantom patients as true low-dose / routine-dose volume pairs: the paired source ``"ct-phantom-volumes"``.

Simulated data, not patient data. Each patient is rendered once as a contiguous volume (``phantom_patient_volume``:
portal-venous phase, ``VOLUME_SLICES`` axial slices of 2.5 mm, texture continuous through the plane) and scanned
twice: at routine dose (the target) and at dose F (the input, ``data.degrade: lowdose:F``). Both scans show the same
anatomy, lesions and texture; only the photon noise differs, drawn independently for each dose (and, as in axial
CT, for each slice). So the input is a true low-dose scan, not noise added to the routine image, and neighbouring
slices exist for 2.5D inputs (``data.context``).

Patients come in disjoint sets (``VOLUME_SPLITS``), shared with no other phantom source or benchmark:
``"train"`` is ``VOLUME_TRAIN_PATIENTS`` patients of dataset seed 7 (patients 7000 on), ``"test"``
``VOLUME_TEST_PATIENTS`` held-out patients of seed 8 (8000 on), ``"all"`` both. Slices are rendered at
``render_size(data.resolution)`` pixels over the 400 mm field (128 px up to resolution 128, as ``"ct-phantom"``);
at 128 px one patient (two scans of 40 slices) takes about 4 s on one core. Patients are rendered one at a time as
the paired pipeline consumes them, so memory holds one patient's volumes, not the cohort's.

Only ``lowdose:F`` with 0 < F < 1 is supported; any other ``data.degrade`` is refused with a one-line error, and so
is the source without ``data.degrade`` (it has no unpaired form).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from medgan.config import DataConfig
from medgan.data.datasets import SliceSet
from medgan.data.degrade import INPUT, TARGET, Degradation
from medgan.data.phantom.cases import patient_seed
from medgan.data.phantom.sources import render_size
from medgan.data.phantom.volumes import PatientVolume, ct_rendering_name, phantom_patient_volume
from medgan.data.readers import Volume, progress_over
from medgan.data.sources import SOURCES
from medgan.errors import ConfigError

VOLUME_SOURCE = "ct-phantom-volumes"
VOLUME_TRAIN_SEED = 7  # dataset seeds: none shared with ct-phantom (0), ct-lesions (1), paired tests (2) or the
VOLUME_TEST_SEED = 8  # benchmarks (5, 6)
VOLUME_TRAIN_PATIENTS = 8
VOLUME_TEST_PATIENTS = 4
VOLUME_SLICES = 40  # 2.5 mm slices per patient (100 mm around the liver's middle)
VOLUME_PHASE = "portal"
ROUTINE_DOSE = 1.0
# split -> (dataset seed, patients) of each patient set it holds
VOLUME_SPLITS: dict[str, tuple[tuple[int, int], ...]] = {
    "train": ((VOLUME_TRAIN_SEED, VOLUME_TRAIN_PATIENTS),),
    "test": ((VOLUME_TEST_SEED, VOLUME_TEST_PATIENTS),),
    "all": ((VOLUME_TRAIN_SEED, VOLUME_TRAIN_PATIENTS), (VOLUME_TEST_SEED, VOLUME_TEST_PATIENTS)),
}


def volume_pair_seeds(split: str, patients: int | None = None) -> list[int]:
    """The patient seeds of a split (module docstring).

    Args:
        split: ``"train"``, ``"test"`` or ``"all"``.
        patients: at most this many patients of each set (all by default; fewer for quick tests).

    Raises:
        ConfigError: another split.
    """
    if split not in VOLUME_SPLITS:
        raise ConfigError(f"config key 'data.split' is {split!r}; paired {VOLUME_SOURCE} data has: train, test, all")
    return [patient_seed(seed, index) for seed, count in VOLUME_SPLITS[split]
            for index in range(count if patients is None else min(count, patients))]


def phantom_volume_pair(seed: int, size: int, dose: float, slices: int = VOLUME_SLICES) -> dict[str, Volume]:
    """One patient scanned at routine dose (``"target"``) and at ``dose`` (``"input"``), as CT ``Volume`` objects.

    Args:
        seed: patient seed.
        size: in-plane pixels over the 400 mm field of view (16 or more).
        dose: the input's relative dose, 0 < dose < 1.
        slices: number of 2.5 mm axial slices.

    Returns:
        ``{"target": Volume, "input": Volume}``: float32 ``[X, Y, Z]`` HU on one grid (the phantom's affine and
        spacing), the patient id as subject.
    """
    rendered = phantom_patient_volume(seed, n_slices=slices, size=size, doses=(ROUTINE_DOSE, dose),
                                      phases=(VOLUME_PHASE,), sequences=())
    return {TARGET: _ct_volume(rendered, ROUTINE_DOSE), INPUT: _ct_volume(rendered, dose)}


def _ct_volume(rendered: PatientVolume, dose: float) -> Volume:
    """The rendering of ``dose`` as a CT ``Volume`` named ``ct-phantom-volumes/<patient>/dose<dose>``."""
    name = ct_rendering_name(VOLUME_PHASE, dose)
    return Volume(rendered.images[name], rendered.affine, rendered.spacing_mm, "CT",
                  Path(VOLUME_SOURCE) / rendered.patient / f"dose{dose:g}", rendered.patient)


def phantom_volume_groups(config: DataConfig, degradation: Degradation, progress: bool = True,
                          patients: int | None = None, slices: int | None = None) -> Iterator[dict[str, Volume]]:
    """The pairs of ``config.split``'s patients, rendered lazily one patient at a time (checked eagerly).

    Args:
        config: data config (``split``, ``resolution``).
        degradation: the parsed ``data.degrade``; ``lowdose`` only.
        progress: a progress bar over the patients.
        patients: at most this many patients per patient set (quick tests).
        slices: slices per patient (default ``VOLUME_SLICES``).

    Raises:
        ConfigError: a degradation other than ``lowdose``, a dose of 1 (each volume would be its own input), a
            split the source does not have.
    """
    if degradation.name != "lowdose":
        raise ConfigError(f"config key 'data.degrade' is {degradation.text!r}; the {VOLUME_SOURCE} source renders "
                          "true low-dose scans only: use lowdose:F (0 < F < 1)")
    dose = float(degradation.arguments["fraction"])
    if dose >= ROUTINE_DOSE:
        raise ConfigError(f"config key 'data.degrade' is {degradation.text!r}: at dose 1 the {VOLUME_SOURCE} input "
                          "would be the target itself; use lowdose:F with F < 1")
    seeds = volume_pair_seeds(config.split, patients)
    size, slices = render_size(config.resolution), slices or VOLUME_SLICES
    return (phantom_volume_pair(seed, size, dose, slices)
            for seed in progress_over(seeds, progress, f"rendering {VOLUME_SOURCE}", unit="patient"))


@SOURCES.register(VOLUME_SOURCE)
def ct_phantom_volumes_source(config: DataConfig) -> SliceSet:
    """Refuses the paired-only source without ``data.degrade`` (it is read by ``medgan.data.paired_sources``).

    Raises:
        ConfigError: always: this source exists only as low-dose / routine-dose pairs.
    """
    raise ConfigError(f"the {VOLUME_SOURCE} source is paired data: set data.degrade: lowdose:F (0 < F < 1) with the "
                      "paired task (medgan demo denoise-volume); for unpaired slices use ct-phantom")
