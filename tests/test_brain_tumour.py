"""The simulated brain-tumour sources (``medgan.data.brain_tumour*``): deterministic patients, masks exactly for
tumour patients, MR contrasts in the physically expected order, mass effect, tumour/normal slice labels, held-out
patients, the cohort's geometry, the synthetic-marked writer and one-line refusals."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

import medgan.data.brain_tumour_sources as sources
from medgan.config import DataConfig
from medgan.data import load_slices
from medgan.data.brain_tumour import (
    LABELS,
    _world_mm,
    has_tumour,
    mass_effect,
    patient_anatomy,
    tissue_templates,
    tumour_plan,
)
from medgan.data.brain_tumour_mr import BRAIN_RELAXATION, SEQUENCE_NAMES, render_patient
from medgan.data.brain_tumour_sources import (
    CLASS_NAMES,
    HELD_OUT,
    TUMOUR_AREA_MM2,
    split_patients,
    tumour_patient,
    tumour_patients,
    write_tumour_cohort,
)
from medgan.data.cohort import mni_subject
from medgan.data.cubes import load_cubes
from medgan.errors import ConfigError

TUMOUR, NORMAL = 0, 1  # patient 0 has a tumour, patient 1 none (the seeded pair draw, seed 0)


def test_patients_are_deterministic_and_pairs_hold_one_tumour():
    first = tumour_patient(TUMOUR)
    sources._rendered.cache_clear()
    patient_anatomy.cache_clear()
    again = tumour_patient(TUMOUR)
    for name in SEQUENCE_NAMES:
        np.testing.assert_array_equal(first.images[name].array, again.images[name].array)
    np.testing.assert_array_equal(first.mask.array, again.mask.array)
    draws = [has_tumour(index) for index in range(64)]
    assert all(a != b for a, b in zip(draws[::2], draws[1::2]))  # one of each pair (2m, 2m + 1)
    assert draws[:10] != [True, False] * 5  # ... drawn, not a fixed parity
    assert sum(has_tumour(index) for index in range(HELD_OUT, HELD_OUT + 16)) == 8


def test_mask_non_empty_exactly_for_tumour_patients():
    for patient in tumour_patients(2, first=TUMOUR, sequences=("t2",)):
        labels = set(np.unique(patient.mask.array).astype(int))
        assert patient.tumour == has_tumour(patient.index) == (labels != {0})
        if patient.tumour:
            assert labels == {0, 1, 2, 3}
            # nested compartments: necrosis inside enhancing tissue inside oedema, so enhancing surrounds necrosis
            mask = patient.mask.array
            centre = np.argwhere(mask == LABELS["necrosis"]).mean(axis=0).round().astype(int)
            assert mask[tuple(centre)] == LABELS["necrosis"]
            volume_ml = np.count_nonzero(mask >= 2) * 8 / 1000  # 2 mm voxels
            radius = tumour_plan(patient.index).radius_mm
            assert 0.4 < volume_ml / (4 / 3 * np.pi * radius**3 / 1000) < 1.6


def test_contrasts_follow_the_physics():
    anatomy = patient_anatomy(TUMOUR)
    images = render_patient(anatomy)
    regions = {
        "white": anatomy.fraction("white-matter") > 0.9,
        "grey": anatomy.fraction("grey-matter") > 0.7,
        "csf": anatomy.fraction("csf") > 0.9,
        "oedema": anatomy.labels == LABELS["oedema"],
        "enhancing": anatomy.labels == LABELS["enhancing"],
        "necrosis": anatomy.labels == LABELS["necrosis"],
    }
    assert all(region.sum() >= 20 for region in regions.values())
    # relative to white matter in the same image (gains differ between sequences)
    level = {name: {region: np.median(images[name][mask]) / np.median(images[name][regions["white"]])
                    for region, mask in regions.items()} for name in SEQUENCE_NAMES}
    assert level["t1c"]["enhancing"] > 1.5 * level["t1"]["enhancing"]  # gadolinium shortens T1
    assert level["t1c"]["enhancing"] > 1.3 and level["t1c"]["necrosis"] < 0.8  # bright rim, dark core
    assert level["t1"]["csf"] < level["t1"]["grey"] < 1  # T1: CSF < grey < white
    for name in ("t2", "flair"):
        assert level[name]["oedema"] > 1.5 and level[name]["oedema"] > level[name]["grey"]
    assert level["t2"]["necrosis"] > 1.5
    assert level["t2"]["csf"] > level["t2"]["grey"] > 1  # T2: CSF bright
    assert level["flair"]["csf"] < 0.6 * level["flair"]["white"]  # FLAIR: CSF suppressed
    clean = render_patient(anatomy, ("flair",), noise=False)["flair"]
    assert np.median(clean[regions["csf"]]) < 0.2 * np.median(clean[regions["white"]])


def test_mass_effect_pushes_tissue_away_from_the_tumour():
    plan = tumour_plan(TUMOUR)
    maps = np.array(tissue_templates())
    moved = mass_effect(maps, plan)
    grid = np.stack(np.meshgrid(*_world_mm(maps.shape[1:]), indexing="ij"), axis=-1)
    distance = np.linalg.norm(grid - np.asarray(plan.centre_mm), axis=-1)
    near = distance < plan.radius_mm + 10.0
    for channel in (0, 2):  # grey matter and CSF (ventricles, sulci) are pushed out of the tumour's surroundings
        assert moved[channel][near].sum() < 0.9 * maps[channel][near].sum()
    shell = ((distance > plan.radius_mm + 8.0) & (distance < plan.radius_mm + 12.0)).astype(np.float32)
    pushed = mass_effect(shell[None], plan)[0]  # a marked shell of tissue: its centroid distance grows
    assert np.average(distance, weights=pushed) > np.average(distance, weights=shell) + 1.0
    far = distance > plan.radius_mm + 80.0
    np.testing.assert_allclose(moved[:, far], maps[:, far], atol=0.02)  # far anatomy stays put


def test_geometry_is_the_cohort_subject():
    patient = tumour_patient(NORMAL, sequences=("t1",))
    subject = mni_subject(NORMAL)
    image = patient.images["t1"]
    assert image.spacing == (2.0, 2.0, 2.0) and image.modality == "MR"
    assert image.array.shape == subject.array.shape == patient.mask.array.shape
    np.testing.assert_array_equal(image.affine, subject.affine)
    np.testing.assert_array_equal(patient.mask.affine, subject.affine)
    brain = patient_anatomy(NORMAL).fractions[:3].sum(axis=0).astype(np.float32)
    assert np.corrcoef(brain.ravel(), subject.array.ravel())[0, 1] > 0.9  # the same deformation and flip
    assert np.corrcoef(brain.ravel(), mni_subject(NORMAL + 2).array.ravel())[0, 1] < 0.9


def test_slices_labelled_from_masks_and_held_out_disjoint(monkeypatch):
    monkeypatch.setattr(sources, "TRAIN_PATIENTS", 2)
    config = DataConfig(source="brain-tumour-flair", resolution=32)
    slices = load_slices(config)
    assert slices.class_names == CLASS_NAMES and set(slices.subjects) == {"tumour-00000", "tumour-00001"}
    masks = {p.name: p.mask.array for p in tumour_patients(2, sequences=("flair",))}
    labels = slices.labels.numpy()
    for label, subject, source in zip(labels, slices.subjects, slices.sources):
        area = np.count_nonzero(masks[subject][:, :, int(source.rpartition("#")[2])]) * 4.0
        assert (CLASS_NAMES[label] == "tumour") == (area >= TUMOUR_AREA_MM2)
        assert CLASS_NAMES[label] == "tumour" or not masks[subject].any()  # normal slices: normal patients only
    assert set(labels.tolist()) == {0, 1}
    # only central slices, for both classes: brain size cannot tell them apart
    brains = {name: sources.anatomy_labels(index).array > 0 for index, name in enumerate(sorted(masks))}
    areas = {name: np.count_nonzero(brain, axis=(0, 1)) for name, brain in brains.items()}
    kept = [areas[subject][int(source.rpartition("#")[2])] / areas[subject].max()
            for subject, source in zip(slices.subjects, slices.sources)]
    assert min(kept) >= sources.CENTRAL_FRACTION
    normal_areas = [a for a, label in zip(kept, labels) if CLASS_NAMES[label] == "normal"]
    tumour_areas = [a for a, label in zip(kept, labels) if CLASS_NAMES[label] == "tumour"]
    assert abs(np.median(normal_areas) - np.median(tumour_areas)) < 0.15
    train, test = set(split_patients("train")), set(split_patients("test"))
    assert not train & test and min(test) == HELD_OUT and len(test) == 16
    assert set(split_patients("all")) == train | test
    held = tumour_patient(HELD_OUT, sequences=("flair",))
    assert held.name not in masks and not np.array_equal(held.images["flair"].array,
                                                         tumour_patient(0, sequences=("flair",)).images["flair"].array)
    cubes = load_cubes(DataConfig(source="brain-tumour-t1c", dims=3, resolution=16))
    assert len(cubes) == 2 and tuple(cubes.images.shape[-3:]) == (16, 16, 16)


def test_writer_marks_files_synthetic(tmp_path):
    paths = write_tumour_cohort(tmp_path, 1, first=TUMOUR, sequences=["flair"])
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == ["flair/tumour-00000.nii.gz",
                                                                   "seg/tumour-00000.nii.gz"]
    image, labels = nib.load(paths[0]), nib.load(paths[1])
    for written in (image, labels):
        assert written.header["descrip"].tobytes().startswith(b"SYNTHETIC")
        assert written.header["intent_name"].tobytes().rstrip(b"\0") == b"synthetic"
        np.testing.assert_allclose(written.affine, mni_subject(TUMOUR).affine)
    patient = tumour_patient(TUMOUR, sequences=("flair",))
    np.testing.assert_array_equal(np.asarray(labels.dataobj), patient.mask.array)
    np.testing.assert_allclose(np.asarray(image.dataobj), patient.images["flair"].array, atol=0.51)
    stamp = paths[0].stat().st_mtime_ns
    write_tumour_cohort(tmp_path, 1, first=TUMOUR, sequences=["flair"])
    assert paths[0].stat().st_mtime_ns == stamp  # existing files are kept


@pytest.mark.parametrize("call, message", [
    (lambda: tumour_patients(1, sequences=("dwi",)), "unknown brain-tumour MR sequence 'dwi'"),
    (lambda: tumour_patients(0), "at least 1"),
    (lambda: write_tumour_cohort("/tmp/unused", 2, sequences=()), "(none)"),
    (lambda: split_patients("val"), "data.split"),
    (lambda: tumour_patient(-1), "start at 0"),
])
def test_bad_input_is_one_line(call, message):
    with pytest.raises(ConfigError) as error:
        call()
    assert message in str(error.value) and "\n" not in str(error.value)


def test_relaxation_table_matches_tissues_and_cites_sources():
    from medgan.data.brain_tumour import TISSUES

    assert tuple(BRAIN_RELAXATION) == TISSUES
    assert all(entry.source for entry in BRAIN_RELAXATION.values())


def test_mask_to_image_pairs_carry_tissue_and_tumour_labels():
    from medgan.data.degrade import INPUT, TARGET, parse_degradation
    from medgan.data.paired_sources import derived_groups
    from medgan.evaluation.segmentation import label_set_for

    config = DataConfig(source="brain-tumour-t2", degrade="mask", resolution=32)
    derived = derived_groups(config, parse_degradation("mask"), progress=False, patients=2)
    groups = list(derived.groups)
    assert len(groups) == 2 and derived.channels == len(sources.ANATOMY_LABELS) == 6
    for index, group in zip((TUMOUR, NORMAL), groups):
        patient = tumour_patient(index, sequences=("t2",))
        labels, image = group[INPUT].array, group[TARGET].array
        assert labels.shape == image.shape and group[INPUT].modality is None
        np.testing.assert_array_equal(image, patient.images["t2"].array)
        # the tumour's compartments are the mask's labels shifted past the three tissues
        np.testing.assert_array_equal(labels >= 4, patient.mask.array > 0)
        np.testing.assert_array_equal(labels[labels >= 4] - 3, patient.mask.array[labels >= 4])
        brain = labels > 0
        # tissues are where the brain is: CSF is bright on T2, white matter darker than grey matter
        t2 = {value: float(image[labels == value].mean()) for value in (1, 2, 3)}
        assert t2[3] > t2[1] > t2[2]
        assert float(image[~brain].mean()) < 0.2 * t2[2]
    assert label_set_for("brain-tumour-flair").class_names == ("oedema", "enhancing", "necrosis")
    with pytest.raises(ConfigError, match="data.split"):
        derived_groups(DataConfig(source="brain-tumour-t2", degrade="mask", split="val"),
                       parse_degradation("mask"), progress=False)
