"""The brain-MRI data of ``benchmarks/domain_shift.py``'s ``t1t2`` shift (issue 28, item 2): T1 -> T2 on the
simulated brain-tumour cohort (``medgan.data.brain_tumour_sources``: glioma-like tumours painted into the deformed
MNI152 template, rendered with the phantom's MR physics; simulated, not patient data).

Patients: the first ``count`` *tumour* patients (``TumourPatient.tumour``) from a start index per role, indices
no other benchmark or embedded split draws (embedded train 0-47, held out 10000-10015): labelled training patients
from ``STARTS["train"]``, unlabelled target-domain patients from ``STARTS["target"]``, test patients from
``STARTS["test"]``.

Per patient, ``slices`` axial slices evenly spread over the slices whose whole-tumour area is at least
``TUMOUR_AREA_MM2`` (so every test patient has every class). Each slice (2 mm voxels, 99 x 117) is padded to
128 x 128 and block-averaged to 64 x 64 (4 mm pixels), its labels taken by majority over each 2 x 2 block, then
mapped to [-1, 1] on its own through the 0.5 / 99.5 percentiles of its foreground (``mri_mapping``: what the
training pipeline does with a 2D MR image). The values stored and compared are these unit intensities: MR has
no physical scale to keep.

Classes: the tissues (``anatomy_labels``: CSF, grey matter, white matter) and the whole tumour (oedema, enhancing
rim, necrosis). T1 and T2 order the tissues in opposite ways (T1: white > grey > CSF; T2: CSF > grey > white, the
tumour's oedema brightest), which no monotone intensity map (gamma, contrast, histogram matching) can undo.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from medgan.data.brain_tumour import has_tumour
from medgan.data.brain_tumour_sources import ANATOMY_LABELS, TUMOUR_AREA_MM2, anatomy_labels, tumour_patient
from medgan.data.cohort import VOXEL_MM
from medgan.data.intensity import mri_mapping
from medgan.evaluation.segmentation import LabelSet
from medgan.utils import atomic_path

STARTS = {"train": 21_000, "target": 22_000, "test": 23_000}
PAD, SIZE = 128, 64
AXIS = 2  # axial, in the cohort's RAS voxel order
CLASSES = LabelSet("brain-tissue-tumour", (
    ("csf", (ANATOMY_LABELS["csf"],)), ("grey-matter", (ANATOMY_LABELS["grey-matter"],)),
    ("white-matter", (ANATOMY_LABELS["white-matter"],)),
    ("tumour", (ANATOMY_LABELS["oedema"], ANATOMY_LABELS["enhancing"], ANATOMY_LABELS["necrosis"]))),
    "CSF, grey matter, white matter and whole tumour (oedema + enhancing + necrosis); background outside the brain")


def tumour_indices(role: str, count: int) -> list[int]:
    """The first ``count`` tumour patients from the role's start index."""
    found, index = [], STARTS[role]
    while len(found) < count:
        if has_tumour(index, 0):
            found.append(index)
        index += 1
    return found


def tumour_slices(labels: np.ndarray, count: int) -> np.ndarray:
    """``count`` axial slice indices evenly spread over those with a whole tumour of ``TUMOUR_AREA_MM2`` or more."""
    area = np.count_nonzero(labels >= ANATOMY_LABELS["oedema"], axis=(0, 1)) * VOXEL_MM * VOXEL_MM
    candidates = np.flatnonzero(area >= TUMOUR_AREA_MM2)
    if not len(candidates):
        candidates = np.array([int(area.argmax())])
    return candidates[np.unique(np.round(np.linspace(0, len(candidates) - 1, count)).astype(int))]


def _padded(image: np.ndarray, value: float) -> np.ndarray:
    out = np.full((PAD, PAD), value, dtype=np.float32)
    top, left = (PAD - image.shape[0]) // 2, (PAD - image.shape[1]) // 2
    out[top : top + image.shape[0], left : left + image.shape[1]] = image
    return out


def unit_slice(image: np.ndarray) -> np.ndarray:
    """One 64 px slice mapped to [-1, 1] through its own foreground percentiles (the pipeline's 2D MR mapping)."""
    return np.asarray(mri_mapping(image, "percentile", (0.5, 99.5)).to_unit(image), dtype=np.float32)


def render_set(role: str, patients: int, slices: int, domain: dict, cache: Path) -> dict:
    """``{"hu": [N, 64, 64] unit intensities, "labels": [N, 64, 64] classes, "subjects": [N]}`` of one sequence
    (``domain["sequence"]``), cached in ``cache`` (the key ``hu`` is shared with the CT data)."""
    if cache.exists():
        stored = np.load(cache)
        return {"hu": stored["hu"], "labels": stored["labels"], "subjects": list(stored["subjects"])}
    images, labels, subjects = [], [], []
    for index in tumour_indices(role, patients):
        patient = tumour_patient(index, sequences=(domain["sequence"],))
        volume = patient.images[domain["sequence"]].array
        anatomy = anatomy_labels(index).array.astype(np.int64)
        for z in tumour_slices(anatomy, slices):
            image = _padded(np.take(volume, z, axis=AXIS), float(volume.min()))
            images.append(unit_slice(image.reshape(SIZE, 2, SIZE, 2).mean(axis=(1, 3))))
            labels.append(halved_classes(CLASSES, _padded(np.take(anatomy, z, axis=AXIS), 0)))
            subjects.append(patient.name)
    result = {"hu": np.stack(images), "labels": np.stack(labels).astype(np.int64), "subjects": subjects}
    save_npz(cache, hu=result["hu"], labels=result["labels"], subjects=np.array(subjects))
    return result


def halved_classes(classes: LabelSet, label_map: np.ndarray) -> np.ndarray:
    """A label map [2S, 2S] as class indices [S, S], each pixel the majority class of its 2 x 2 block (ties: the
    lower class), the way both the CT and the brain data reach 64 px."""
    grouped = classes.group(torch.as_tensor(np.asarray(label_map, dtype=np.int64)))
    votes = torch.nn.functional.one_hot(grouped, len(classes.classes) + 1).float()  # [2S, 2S, K + 1]
    side = grouped.shape[0] // 2
    return votes.reshape(side, 2, side, 2, -1).sum(dim=(1, 3)).argmax(dim=-1).numpy()


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez`` through ``atomic_path``: a process reading the cache (``--train-gan`` jobs run side by side)
    never sees half a file."""
    with atomic_path(path) as temporary:
        np.savez(temporary, **arrays)


def to_unit(values: np.ndarray) -> torch.Tensor:
    """Stored unit intensities [N, H, W] -> [N, 1, H, W]."""
    return torch.from_numpy(np.clip(values, -1.0, 1.0)).float()[:, None]


def gan_overrides() -> dict:
    """The CycleGAN settings on top of the ``phases`` demo: MR domains, and (as in the ``mr2ct`` demo, fixed
    before any result) no identity loss and no identity start, since T1 intensities are no estimate of T2's."""
    return {"data": {"modality": "mri", "normalize": "percentile", "crop_foreground": False, "min_foreground": 0.0},
            "model": {"residual": False}, "unpaired": {"identity": 0.0}}


def translated(run: Path, values: np.ndarray) -> np.ndarray:
    """Source slices (unit) translated B -> A, unit intensities, each input mapped as the pipeline mapped it."""
    from medgan.inference import load_model

    model = load_model(run, "best", direction="b2a")
    inputs = torch.from_numpy(np.stack([unit_slice(image) for image in values]))[:, None]
    return model.translate(model.stack({model.input_domains[0]: inputs}))[:, 0].numpy().astype(np.float32)
