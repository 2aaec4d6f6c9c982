"""The simulated abdominal CT phantom: tissue HU, noise versus dose, lesions, volumes and embedded sources."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from medgan.config import DataConfig
from medgan.data import load_slices, read_volume, split_by_subject
from medgan.data import phantom
from medgan.data.phantom import sources as phantom_sources
from medgan.data.phantom import EXPECTED_MEDIAN_HU, LABEL, LESION_CLASSES, lesion_rois, phantom_volume, render_patient
from medgan.data.slicing import to_canonical, upright_slices


def _median_in(case: phantom.PhantomCase, tissue: str) -> float | None:
    """Median HU inside the tissue label, eroded by 2 pixels so that edges (partial volume) do not count."""
    mask = ndimage.binary_erosion(case.organ_labels == LABEL[tissue], iterations=2)
    return float(np.median(case.image_hu[mask])) if mask.sum() >= 10 else None


@pytest.fixture(scope="module")
def high_dose_cases() -> list[phantom.PhantomCase]:
    # z = -25 mm crosses kidneys and pancreas, z = +10 mm the spleen; dose 4 keeps noise near 6 HU.
    return [render_patient(seed, dose=4.0, n_lesions=0, z_mm=z) for seed, z in ((3, -25.0), (4, 10.0))]


def test_tissue_medians_lie_in_documented_portal_ranges(high_dose_cases):
    seen = set()
    for case in high_dose_cases:
        for tissue, (low, high) in EXPECTED_MEDIAN_HU["portal"].items():
            median = _median_in(case, tissue)
            if median is None:
                continue
            seen.add(tissue)
            assert low <= median <= high, f"{case.patient} {tissue}: median {median:.1f} HU outside [{low}, {high}]"
    assert {"fat", "muscle", "liver", "spleen", "kidney", "aorta", "bone-cancellous"} <= seen
    # Air outside the body reconstructs to about -1000 HU; cortical bone is far above soft tissue.
    case = high_dose_cases[0]
    assert abs(float(np.median(case.image_hu[case.organ_labels == LABEL["air"]])) + 1000.0) < 15.0
    assert case.image_hu[case.organ_labels == LABEL["bone-cortical"]].max() > 600.0


def test_unenhanced_phase_has_unenhanced_liver_and_kidneys():
    case = render_patient(3, dose=4.0, n_lesions=0, z_mm=-25.0, phase="unenhanced")
    for tissue in ("liver", "kidney", "aorta"):
        low, high = EXPECTED_MEDIAN_HU["unenhanced"][tissue]
        assert low <= _median_in(case, tissue) <= high


def test_noise_in_uniform_liver_grows_as_dose_falls():
    # Noise = scan minus the noise-free scan of the same slice, so liver texture and vessels do not count.
    ideal = render_patient(8, dose=None, n_lesions=0, z_mm=-10.0)
    liver = ndimage.binary_erosion(ideal.organ_labels == LABEL["liver"], iterations=3)
    stds, totals = [], []
    for dose in (1.0, 0.25):
        case = render_patient(8, dose=dose, n_lesions=0, z_mm=-10.0)
        stds.append(float((case.image_hu - ideal.image_hu)[liver].std()))
        totals.append(float(case.image_hu[liver].std()))
    assert stds[0] < stds[1] and totals[0] < totals[1]
    # Quantum noise: a quarter of the dose doubles the standard deviation; routine dose is about 12 HU.
    assert 8.0 < stds[0] < 16.0
    assert 1.8 < stds[1] / stds[0] < 2.2


def test_same_patient_at_two_doses_shares_its_truth_and_is_reproducible():
    full = render_patient(11, size=128, dose=1.0, z_mm=0.0)
    low = render_patient(11, size=128, dose=0.25, z_mm=0.0)
    again = render_patient(11, size=128, dose=1.0, z_mm=0.0)
    np.testing.assert_array_equal(full.truth_hu, low.truth_hu)
    np.testing.assert_array_equal(full.image_hu, again.image_hu)
    assert full.patient == low.patient == "phantom-00011"
    inside = full.organ_labels > 0
    assert np.abs(full.image_hu - low.image_hu)[inside].mean() > 5.0  # different photon noise
    # A noise-free scan is unbiased: the reconstruction keeps each tissue's HU (FBP only blurs edges a little).
    ideal = render_patient(11, size=128, dose=None, z_mm=0.0)
    for tissue in ("liver", "muscle", "fat"):
        region = ndimage.binary_erosion(ideal.organ_labels == LABEL[tissue], iterations=2)
        assert abs(float(np.median(ideal.image_hu[region] - ideal.truth_hu[region]))) < 3.0


def test_lesion_classes_have_their_characteristic_density():
    case = render_patient(21, dose=None, lesion_classes=list(LESION_CLASSES), z_mm=-5.0)
    assert case.lesion_classes and set(case.lesion_classes) <= set(LESION_CLASSES)
    liver = float(np.median(case.truth_hu[case.organ_labels == LABEL["liver"]]))
    for mask, kind in zip(case.lesion_masks, case.lesion_classes):
        assert mask.shape == case.image_hu.shape and mask.sum() > 20
        assert np.all(case.organ_labels[mask] == LABEL["lesion"])
        core = case.truth_hu[ndimage.binary_erosion(mask, iterations=2)]
        if kind == "cyst":
            assert np.median(core) < 25.0  # water density
        elif kind == "metastasis":
            assert np.median(core) < liver - 30.0  # hypodense centre...
            rim = mask & ~ndimage.binary_erosion(mask, iterations=2)
            assert case.truth_hu[rim].max() > liver + 10.0  # ...with an enhancing rim
        else:
            assert case.truth_hu[mask].max() > liver + 30.0  # nodules enhance like blood


def test_lesion_rois_are_balanced_centred_and_split_by_patient():
    rois = lesion_rois(n_per_class=4, roi_size=32, seed=3, size=128, n_views=128)
    assert rois.images_hu.shape == (12, 32, 32) and rois.masks.shape == (12, 32, 32)
    assert np.bincount(rois.labels).tolist() == [4, 4, 4]
    assert rois.class_names == LESION_CLASSES
    assert rois.masks[:, 16, 16].mean() >= 0.9  # each ROI is centred on its own lesion
    assert len(set(rois.patients)) >= 3
    train, test = split_by_subject(rois.patients, 0.34, seed=0)
    assert len(train) and len(test) and len(train) + len(test) == 12
    assert not {rois.patients[i] for i in train} & {rois.patients[i] for i in test}


def test_phantom_volume_orientation_survives_nifti(tmp_path):
    volume = phantom_volume(2, n_slices=3, size=96, n_lesions=1, dose=None)
    assert volume.image_hu.shape == (96, 96, 3) and volume.segmentation.shape == (96, 96, 3)
    assert set(np.unique(volume.segmentation)) <= {0, 1, 2} and (volume.segmentation == 1).any()
    image_path, segmentation_path = phantom.save_lits_pair(volume, tmp_path, 7)
    read = read_volume(image_path)
    np.testing.assert_array_equal(read.array, np.clip(np.round(volume.image_hu), -1024, 3071))  # int16 HU on disk
    # Shown the radiological way (the shared slicing rule), the liver is on the image left.
    upright = upright_slices(to_canonical(read).array, 2)
    segmentation = upright_slices(to_canonical(read_volume(segmentation_path)).array, 2)
    liver_column = np.argwhere(segmentation[1] == 1)[:, 1].mean()
    assert liver_column < 96 / 2
    rendered = render_patient(2, size=96, dose=None, z_mm=-10.0, n_lesions=0)
    assert np.argwhere(rendered.organ_labels == LABEL["liver"])[:, 1].mean() < 96 / 2
    assert upright.shape == (3, 96, 96)


def test_embedded_sources_give_patient_keyed_slice_sets(monkeypatch):
    monkeypatch.setattr(phantom_sources, "PHANTOM_PATIENTS", 3)
    monkeypatch.setattr(phantom_sources, "LESION_ROIS_PER_CLASS", 2)
    whole = load_slices(DataConfig(source="ct-phantom", resolution=32))
    assert whole.images.shape == (6, 1, 32, 32)
    assert sorted(set(whole.subjects)) == ["phantom-00000", "phantom-00001", "phantom-00002"]
    assert (whole.mapping.low, whole.mapping.high, whole.mapping.unit) == (-150.0, 250.0, "HU")
    assert whole.images.min() >= -1.0 and whole.images.max() <= 1.0
    assert torch.all(whole.images[:, 0, 0, 0] == -1.0)  # air in the corners
    assert whole.labels is None
    rois = load_slices(DataConfig(source="ct-lesions", resolution=32, window="liver"))
    assert rois.class_names == LESION_CLASSES
    assert torch.bincount(rois.labels).tolist() == [2, 2, 2]
    assert all(subject.startswith("phantom-01") for subject in rois.subjects)
    assert (rois.mapping.low, rois.mapping.high) == (-45.0, 105.0)
