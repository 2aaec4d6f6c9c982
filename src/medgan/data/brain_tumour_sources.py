"""The simulated brain-tumour sources: patients of ``medgan.data.brain_tumour`` rendered by
``medgan.data.brain_tumour_mr`` as volumes with label maps, the embedded sources, and a NIfTI writer.
Simulated data, not patient data: one template brain (MNI152) deformed per patient, with painted tumours.

* ``tumour_patients(count, first)``: patients ``first`` .. ``first + count - 1`` with their images (``Volume``,
  MR, 2 mm, the cohort's affine) and label map (0 background, 1 oedema, 2 enhancing, 3 necrosis).
* Embedded sources ``brain-tumour-t1``, ``-t1c``, ``-t2``, ``-flair`` (2D slices, and volumes with
  ``data.dims: 3``). ``data.split`` picks patients: ``"train"`` (default) 0 .. ``TRAIN_PATIENTS`` - 1,
  ``"test"`` ``HELD_OUT_PATIENTS`` held-out patients from ``HELD_OUT`` (the cohort's held-out index, which no
  training split draws), ``"all"`` both.
* 2D slices carry the class ``tumour`` or ``normal`` (``CLASS_NAMES``): ``tumour`` when the slice's whole-tumour
  area (labels 1-3) is at least ``TUMOUR_AREA_MM2``; ``normal`` for every kept slice of a normal patient. Slices of
  tumour patients below the threshold are dropped (thin tumour edges, and anatomy bent by the mass effect), so
  each label is unambiguous. Slice positions follow ``data.axis``; the foreground filter of the generic pipeline
  applies first.
* ``write_tumour_cohort``: NIfTI files, one folder per sequence and ``seg/`` for the label maps, marked synthetic.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medgan.config import DataConfig
from medgan.data.brain_tumour import has_tumour, patient_anatomy
from medgan.data.brain_tumour_mr import SEQUENCE_NAMES, check_sequences, render_patient
from medgan.data.cohort import HELD_OUT, VOXEL_MM
from medgan.data.datasets import SliceSet, slices_from_volumes
from medgan.data.readers import Volume
from medgan.data.readers.base import centred_affine
from medgan.data.sources import SOURCES, VOLUME_SOURCES
from medgan.errors import ConfigError, DataError

TRAIN_PATIENTS = 48  # patients 0 .. 47 make the "train" split of the embedded sources
HELD_OUT_PATIENTS = 16  # patients HELD_OUT .. HELD_OUT + 15 make the "test" split
# Slices of the brain's top and bottom (brain area below this fraction of the patient's largest slice) are dropped:
# tumours sit in the white matter of the central slices, so otherwise every small slice is "normal" and a
# classifier could tell the classes by brain size alone.
CENTRAL_FRACTION = 0.5
TUMOUR_AREA_MM2 = 100.0  # a slice is "tumour" from this whole-tumour area on (25 pixels of 2 x 2 mm)
CLASS_NAMES = ("normal", "tumour")
SOURCE_PREFIX = "brain-tumour"
SYNTHETIC_DESCRIPTION = "SYNTHETIC medgan brain-tumour (simulated glioma, deformed MNI152)"
MASK_DESCRIPTION = "SYNTHETIC medgan brain-tumour labels 1 oedema 2 enhancing 3 necrosis"


@dataclass(frozen=True)
class TumourPatient:
    """One simulated patient: its images by sequence and its label map, on one grid.

    Attributes:
        index: the patient (``HELD_OUT`` and above: held out).
        name: ``"tumour-NNNNN"``, also each volume's subject.
        tumour: the patient has a tumour (its mask is non-empty).
        images: per sequence name, the image in arbitrary MR units (``Volume``, modality ``"MR"``).
        mask: the label map (``Volume``, modality None, values 0-3).
    """

    index: int
    name: str
    tumour: bool
    images: dict[str, Volume]
    mask: Volume


def patient_name(index: int) -> str:
    return f"tumour-{index:05d}"


@functools.lru_cache(maxsize=8)
def _rendered(index: int, seed: int, sequences: tuple[str, ...]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    anatomy = patient_anatomy(index, seed)
    images = render_patient(anatomy, sequences, seed)
    for array in images.values():
        array.flags.writeable = False
    return images, anatomy.labels


def tumour_patient(index: int, seed: int = 0, sequences: tuple[str, ...] = SEQUENCE_NAMES) -> TumourPatient:
    """Patient ``index`` (deterministic from ``index`` and ``seed``; the last few are cached in process).

    Raises:
        ConfigError: an unknown sequence name or a negative index.
    """
    sequences = check_sequences(sequences)
    if index < 0:
        raise ConfigError(f"brain-tumour patient indices start at 0, not {index}")
    images, labels = _rendered(int(index), int(seed), sequences)
    name = patient_name(index)
    spacing = (VOXEL_MM,) * 3
    affine = centred_affine(labels.shape, spacing)
    root = Path(SOURCE_PREFIX) / name
    volumes = {sequence: Volume(images[sequence], affine, spacing, "MR", root / sequence, name)
               for sequence in sequences}
    mask = Volume(labels.astype(np.float32), affine, spacing, None, root / "seg", name)
    return TumourPatient(int(index), name, has_tumour(index, seed), volumes, mask)


# The label map of mask-to-image runs on these sources: the brain's tissues and the tumour's compartments.
ANATOMY_LABELS = {"grey-matter": 1, "white-matter": 2, "csf": 3, "oedema": 4, "enhancing": 5, "necrosis": 6}


def anatomy_labels(index: int, seed: int = 0) -> Volume:
    """Patient ``index``'s tissue-and-tumour label map (``ANATOMY_LABELS``; 0 outside the brain) on its images'
    grid: a brain voxel (tissue fractions summing to at least one half) takes its largest tissue among grey
    matter, white matter and CSF, and the tumour's label map (oedema, enhancing, necrosis) overrides it."""
    anatomy = patient_anatomy(int(index), int(seed))
    fractions = anatomy.fractions.astype(np.float32) / 255.0
    brain = fractions.sum(axis=0) >= 0.5
    labels = np.where(brain, fractions[:3].argmax(axis=0) + 1, 0).astype(np.float32)
    tumour = anatomy.labels > 0
    labels[tumour] = anatomy.labels[tumour].astype(np.float32) + ANATOMY_LABELS["csf"]
    spacing = (VOXEL_MM,) * 3
    name = patient_name(index)
    return Volume(labels, centred_affine(labels.shape, spacing), spacing, None,
                  Path(SOURCE_PREFIX) / name / "anatomy", name)


def tumour_patients(count: int, first: int = 0, seed: int = 0,
                    sequences: tuple[str, ...] = SEQUENCE_NAMES) -> list[TumourPatient]:
    """Patients ``first`` .. ``first + count - 1`` (``first=HELD_OUT`` for held-out ones).

    Raises:
        ConfigError: a count below 1, a negative ``first``, an unknown sequence.
    """
    if not isinstance(count, (int, np.integer)) or count < 1:
        raise ConfigError(f"the number of brain-tumour patients must be at least 1, not {count!r}")
    return [tumour_patient(index, seed, sequences) for index in range(first, first + count)]


def split_patients(split: str) -> range | list[int]:
    """The patient indices of a ``data.split`` of the embedded sources (module docstring).

    Raises:
        ConfigError: a split these sources do not have.
    """
    train = range(TRAIN_PATIENTS)
    test = range(HELD_OUT, HELD_OUT + HELD_OUT_PATIENTS)
    if split == "train":
        return train
    if split == "test":
        return test
    if split == "all":
        return [*train, *test]
    raise ConfigError(f"config key 'data.split' is {split!r}; the {SOURCE_PREFIX} sources have: train, test, all")


def slice_labels(slices: SliceSet, masks: dict[str, np.ndarray], axis: int,
                 brains: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per slice of ``slices`` (sources ``"path#index"`` along ``axis``, subjects = patient names), its class
    index in ``CLASS_NAMES`` and whether it is kept (module docstring).

    Args:
        slices: slices of the patients' volumes, as ``slices_from_volumes`` makes them (RAS volumes).
        masks: each patient's label map by name.
        axis: the slicing axis.
        brains: each patient's brain mask by name; given, slices whose brain area is below ``CENTRAL_FRACTION``
            of the patient's largest are dropped, whatever their class.
    """
    pixel_mm2 = VOXEL_MM * VOXEL_MM
    labels, keep = np.zeros(len(slices), dtype=np.int64), np.ones(len(slices), dtype=bool)
    areas = {name: np.count_nonzero(brain, axis=tuple(a for a in range(3) if a != axis))
             for name, brain in (brains or {}).items()}
    for row, (subject, source) in enumerate(zip(slices.subjects, slices.sources)):
        mask = masks[subject]
        index = int(source.rpartition("#")[2])
        if subject in areas and areas[subject][index] < CENTRAL_FRACTION * areas[subject].max():
            keep[row] = False  # the top or bottom of the brain: tumours never reach there, so "normal" would mean "small"
            continue
        area = float(np.count_nonzero(np.take(mask, index, axis=axis))) * pixel_mm2
        if area >= TUMOUR_AREA_MM2:
            labels[row] = CLASS_NAMES.index("tumour")
        elif mask.any():  # a tumour patient's slice below the threshold: ambiguous, dropped
            keep[row] = False
    return labels, keep


def tumour_slices(sequence: str, config: DataConfig, patients: range | list[int] | None = None,
                  seed: int = 0) -> SliceSet:
    """The 2D source of one sequence: kept slices of ``patients`` (default: ``data.split``) labelled
    ``normal``/``tumour`` (module docstring), one subject per patient.

    Raises:
        ConfigError: an unknown sequence or split.
        DataError: no slice left.
    """
    check_sequences((sequence,))
    indices = split_patients(config.split) if patients is None else list(patients)
    masks: dict[str, np.ndarray] = {}

    brains: dict[str, np.ndarray] = {}

    def volumes():
        for index in indices:
            patient = tumour_patient(index, seed, (sequence,))
            masks[patient.name] = patient.mask.array
            brains[patient.name] = anatomy_labels(index, seed).array > 0
            yield patient.images[sequence]

    slices = slices_from_volumes(volumes(), config)
    labels, keep = slice_labels(slices, masks, config.axis, brains)
    kept = slices.subset(np.flatnonzero(keep))
    if not len(kept):
        raise DataError(f"no {SOURCE_PREFIX}-{sequence} slice left after the tumour/normal rule")
    kept.labels = torch.as_tensor(labels[keep], dtype=torch.int64)
    kept.class_names = CLASS_NAMES
    return kept


def tumour_volumes(sequence: str, config: DataConfig, seed: int = 0) -> list[Volume]:
    """The 3D source of one sequence: the volumes of the patients of ``data.split``."""
    check_sequences((sequence,))
    return [tumour_patient(index, seed, (sequence,)).images[sequence] for index in split_patients(config.split)]


for _sequence in SEQUENCE_NAMES:
    SOURCES.register(f"{SOURCE_PREFIX}-{_sequence}")(functools.partial(tumour_slices, _sequence))
    VOLUME_SOURCES.register(f"{SOURCE_PREFIX}-{_sequence}")(functools.partial(tumour_volumes, _sequence))


def _save(image, path: Path) -> None:
    import nibabel as nib

    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp.nii.gz")
    nib.save(image, str(temporary))
    os.replace(temporary, path)


def write_tumour_cohort(folder: str | Path, count: int, first: int = 0,
                        sequences: tuple[str, ...] | list[str] = SEQUENCE_NAMES, seed: int = 0) -> list[Path]:
    """Writes patients ``first`` .. ``first + count - 1`` as ``<folder>/<sequence>/tumour-NNNNN.nii.gz`` (int16,
    2 mm, RAS) and ``<folder>/seg/tumour-NNNNN.nii.gz`` (uint8 labels 0-3), each marked synthetic in its header
    description; existing files are kept, writes are atomic per file. ``--data <folder>/flair`` then reads one
    sequence, and the same file names tie a patient's sequences and labels together.

    Returns:
        The files written or kept, patient by patient (sequences in order, then the label map).

    Raises:
        ConfigError: a count below 1, an unknown sequence.
    """
    import nibabel as nib

    sequences = check_sequences(sequences)
    if not isinstance(count, (int, np.integer)) or count < 1:
        raise ConfigError(f"the number of brain-tumour patients must be at least 1, not {count!r}")
    folder = Path(folder).expanduser()
    for name in (*sequences, "seg"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(first, first + count):
        targets = {name: folder / name / f"{patient_name(index)}.nii.gz" for name in (*sequences, "seg")}
        paths.extend(targets.values())
        if all(path.exists() for path in targets.values()):
            continue
        patient = tumour_patient(index, seed, sequences)
        for name, path in targets.items():
            if path.exists():
                continue
            if name == "seg":
                image = nib.Nifti1Image(patient.mask.array.astype(np.uint8), patient.mask.affine)
                image.header["descrip"] = MASK_DESCRIPTION.encode()[:79]
            else:
                volume = patient.images[name]
                array = np.clip(np.round(volume.array), 0, 32767).astype(np.int16)
                image = nib.Nifti1Image(array, volume.affine)
                image.header["descrip"] = SYNTHETIC_DESCRIPTION.encode()[:79]
            image.header["intent_name"] = b"synthetic"
            _save(image, path)
    return paths
