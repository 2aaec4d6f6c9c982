"""The phantom's MR and contrast phases: shared anatomy, MR physics (contrast, Rician noise, bias field),
unenhanced vs portal HU, and the embedded sources (aligned across modalities, disjoint splits)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from medgan.config import DataConfig
from medgan.data import load_slices
from medgan.data.phantom import LABEL, phantom_modalities, render_patient
from medgan.data.phantom.anatomy import patient_anatomy
from medgan.data.phantom.cases import patient_id, patient_seed
from medgan.data.phantom.modalities import MODALITIES, _jobs, _portal_render, _unenhanced_render
from medgan.data.phantom.mr import RELAXATION, SEQUENCES, bias_field, mr_signal, render_mr, tissue_map
from medgan.data.phantom.pairs import PAIRED_SPLITS, PAIRED_TEST_SEED
from medgan.data.phantom.sources import phantom_slices
from medgan.errors import ConfigError


def median_in(image: np.ndarray, labels: np.ndarray, name: str, erode: int = 1) -> float | None:
    """Median of ``image`` inside the eroded ``name`` label, or None when too few pixels are left."""
    mask = labels == LABEL[name]
    if erode:
        mask = ndimage.binary_erosion(mask, iterations=erode)
    return float(np.median(image[mask])) if mask.sum() >= 8 else None


@pytest.fixture(scope="module")
def small():
    return phantom_modalities("test", 128, MODALITIES, patients=2)


def test_every_modality_shares_the_anatomy_and_labels(small):
    assert set(small.images) == set(MODALITIES)
    assert small.labels.shape == (4, 128, 128) and small.labels.dtype == np.uint8
    for name in MODALITIES:
        assert small.images[name].shape == small.labels.shape and small.images[name].dtype == np.float32
    # The unenhanced phase is rendered separately: its labels equal the portal ones (and so the MR's).
    portal = phantom_modalities("test", 64, ("t1", "ct"), patients=2)
    unenhanced = phantom_modalities("test", 64, ("ct-unenhanced",), patients=2)
    assert np.array_equal(portal.labels, unenhanced.labels) and portal.patients == unenhanced.patients
    for seed in (3, 1004):  # lesions too: same masks and classes in both phases
        a = render_patient(seed, 64, None, n_lesions=3, z_mm=0.0)
        b = render_patient(seed, 64, None, n_lesions=3, z_mm=0.0, phase="unenhanced")
        assert np.array_equal(a.organ_labels, b.organ_labels) and a.lesion_classes == b.lesion_classes
        assert all(np.array_equal(m, n) for m, n in zip(a.lesion_masks, b.lesion_masks))
    # The MR images show that anatomy: noise floor outside the body, signal in fat.
    for name in ("t1", "t2"):
        sigma = small.noise_sigma[name][:, None, None]
        outside = ndimage.binary_erosion(small.labels == LABEL["air"], iterations=3, axes=(1, 2))
        fat = ndimage.binary_erosion(small.labels == LABEL["fat"], iterations=1, axes=(1, 2))
        assert np.median((small.images[name] / sigma)[outside]) < 2.0
        assert np.median((small.images[name] / sigma)[fat]) > 10.0


def test_phantom_ct_is_the_ct_phantom_slice():
    modal = phantom_modalities("train", 64, ("ct",), patients=2)
    images, patients, heights = phantom_slices(2, 2, 64)
    assert np.array_equal(modal.images["ct"], images)
    assert modal.patients == patients and modal.heights == heights


def test_tissue_contrast_follows_relaxation_physics(small):
    nominal = {
        seq: {name: float(mr_signal(r.t1_ms, r.t2_ms, r.pd, SEQUENCES[seq])) for name, r in RELAXATION.items()}
        for seq in SEQUENCES
    }
    t1, t2 = nominal["t1"], nominal["t2"]
    soft = ("liver", "spleen", "pancreas", "muscle", "kidney-cortex", "blood")
    assert all(t1["fat"] > 2 * t1[name] for name in soft)  # fat bright on T1
    assert all(t2[fluid] > 5 * t2["liver"] and t1[fluid] < 0.6 * t1["liver"] for fluid in ("cyst", "csf", "bile"))
    assert t2["cyst"] > t2["hemangioma"] > t2["metastasis"] > t2["liver"] and t1["metastasis"] < t1["liver"]
    assert t1["spleen"] < t1["liver"] and t2["spleen"] > t2["liver"]
    assert max(t1["bone-cortical"], t2["bone-cortical"], t1["air"], t2["air"]) < 0.01 * t1["fat"]
    # The same order in the rendered images (noise, texture, blur and bias included).
    for index in range(len(small.patients)):
        labels = small.labels[index]
        t1_image, t2_image = small.images["t1"][index], small.images["t2"][index]
        assert median_in(t1_image, labels, "fat") > 1.5 * median_in(t1_image, labels, "liver")
        spleen = median_in(t2_image, labels, "spleen")
        assert spleen is None or spleen > 2 * median_in(t2_image, labels, "liver")
        csf_t1, csf_t2 = median_in(t1_image, labels, "spinal-canal"), median_in(t2_image, labels, "spinal-canal")
        if csf_t1 is not None:
            assert csf_t2 > 3 * median_in(t2_image, labels, "liver") and csf_t1 < median_in(t1_image, labels, "liver")
    # Lesions in the image: a cyst bright on T2 and dark on T1 against the liver; a metastasis between.
    for kind, darker_t1, t2_ratio in (("cyst", True, 5.0), ("metastasis", True, 2.0)):
        case = render_patient(7, 128, None, lesion_classes=[kind] * 2, z_mm=0.0)
        assert case.lesion_masks, "no lesion visible"
        images = render_mr(tissue_map(case, patient_anatomy(7, "portal").tissue_hu), 7, 0.0, case.pixel_spacing_mm)
        lesion = ndimage.binary_erosion(np.any(case.lesion_masks, axis=0))
        liver = median_in(images["t2"][0], case.organ_labels, "liver")
        assert np.median(images["t2"][0][lesion]) > t2_ratio * liver
        assert (np.median(images["t1"][0][lesion]) < median_in(images["t1"][0], case.organ_labels, "liver")) == darker_t1
    # Cortical bone and air: dark on both (at most the noise floor plus partial volume).
    case = render_patient(11, 256, None, n_lesions=0, z_mm=-20.0)
    images = render_mr(tissue_map(case, patient_anatomy(11, "portal").tissue_hu), 11, -20.0, case.pixel_spacing_mm)
    for name, (image, sigma) in images.items():
        for dark in ("bone-cortical", "gas", "air"):
            value = median_in(image, case.organ_labels, dark, erode=0 if dark == "bone-cortical" else 2)
            if value is not None:
                assert value < 0.25 * median_in(image, case.organ_labels, "fat"), (name, dark)


def test_rician_background_statistics(small):
    for name in ("t1", "t2"):
        outside = ndimage.binary_erosion(small.labels == LABEL["air"], iterations=4, axes=(1, 2))
        for index in range(len(small.patients)):
            values = small.images[name][index][outside[index]].astype(np.float64)
            sigma = float(small.noise_sigma[name][index])
            assert values.min() >= 0.0 and values.size > 3000
            # Rayleigh (Rician with no signal): mean sigma sqrt(pi/2), std sigma sqrt(2 - pi/2).
            assert values.mean() == pytest.approx(sigma * math.sqrt(math.pi / 2), rel=0.05)
            assert values.std() == pytest.approx(sigma * math.sqrt(2 - math.pi / 2), rel=0.08)
            assert values.mean() / values.std() == pytest.approx(1.913, rel=0.08)
    assert all((small.images[name] >= 0).all() for name in ("t1", "t2"))


def test_bias_field_is_smooth_and_differs_between_patients():
    size, spacing = 128, 400.0 / 128
    first, second = bias_field(0, 0.0, size, spacing), bias_field(1, 0.0, size, spacing)
    body = np.hypot(*np.meshgrid(np.arange(size) - 63.5, np.arange(size) - 63.5)) < 45  # about 140 mm
    for field in (first, second):
        assert field.min() > 0
        assert float(field[body].max() / field[body].min()) > 1.05  # not flat
        steps = np.abs(np.diff(np.log(field), axis=0)).max(), np.abs(np.diff(np.log(field), axis=1)).max()
        assert max(steps) < 0.02  # smooth: under 2 % from one 3 mm pixel to the next
        curvature = np.abs(ndimage.laplace(np.log(field.astype(np.float64))))[2:-2, 2:-2].max()
        assert curvature < 1e-3
    assert np.abs(np.log(first) - np.log(second))[body].max() > 0.05
    assert np.allclose(bias_field(0, 0.0, size, spacing), first)  # deterministic per patient
    assert np.abs(np.log(bias_field(0, 2.0, size, spacing)) - np.log(first)).max() < 0.01  # continuous along z


def test_unenhanced_liver_aorta_kidney_are_lower_than_portal(small):
    drops = {"liver": (30.0, 65.0, 2), "aorta": (80.0, 140.0, 1), "kidney": (70.0, 160.0, 1)}  # HU, erosion
    seen = set()
    for index in range(len(small.patients)):
        labels = small.labels[index]
        for organ, (low, high, erode) in drops.items():
            portal = median_in(small.images["ct"][index], labels, organ, erode)
            plain = median_in(small.images["ct-unenhanced"][index], labels, organ, erode)
            if portal is not None:
                seen.add(organ)
                assert low < portal - plain < high, (organ, portal, plain)
    assert {"liver", "aorta"} <= seen
    for seed in (5, 2003):  # kidneys sit below the liver slices
        portal = render_patient(seed, 128, 1.0, n_lesions=0, z_mm=-60.0)
        plain = render_patient(seed, 128, 1.0, n_lesions=0, z_mm=-60.0, phase="unenhanced")
        kidney_portal, kidney_plain = (median_in(c.image_hu, c.organ_labels, "kidney", 2) for c in (portal, plain))
        assert 20.0 < kidney_plain < 50.0 and 70.0 < kidney_portal - kidney_plain < 160.0


@pytest.fixture
def three_test_patients(monkeypatch):
    """The "test" split cut to its first 3 patients (6 slices), its renders out of the caches before and after."""
    assert len(_jobs("test", None)) == 32  # the real split: 16 patients x 2 slices
    monkeypatch.setitem(PAIRED_SPLITS, "test", ((PAIRED_TEST_SEED, 3),))
    for cached in (_portal_render, _unenhanced_render):
        cached.cache_clear()
    yield
    for cached in (_portal_render, _unenhanced_render):
        cached.cache_clear()


def test_sources_load_aligned_across_modalities(three_test_patients):
    sets = {name: load_slices(DataConfig(source=f"phantom-{name}", resolution=32, split="test")) for name in MODALITIES}
    reference = sets["ct"]
    assert len(reference) == 6 and reference.subjects[0] == patient_id(2000)
    for name, slice_set in sets.items():
        assert tuple(slice_set.images.shape) == (6, 1, 32, 32)
        assert slice_set.subjects == reference.subjects
        assert [s.split("/", 1)[1] for s in slice_set.sources] == [s.split("/", 1)[1] for s in reference.sources]
        assert float(slice_set.images.min()) >= -1.0 and float(slice_set.images.max()) <= 1.0
    assert sets["t1"].mapping.unit == "a.u." and sets["t1"].mapping.kind == "percentile"
    assert sets["ct-unenhanced"].mapping.unit == "HU"
    # Pixel-aligned: the body outlines of MR and CT tiles agree.
    def body(tiles: torch.Tensor, threshold: float) -> np.ndarray:
        return np.stack([ndimage.binary_fill_holes(ndimage.binary_opening(tile > threshold)) for tile in tiles[:, 0].numpy()])

    body_ct = body(reference.images, -0.97)  # above -144 HU: fat and every denser tissue
    for name in ("t1", "t2"):
        body_mr = body(sets[name].images, -0.8)
        assert 2 * (body_mr & body_ct).sum() / (body_mr.sum() + body_ct.sum()) > 0.95, name
        shifted = np.roll(body_mr, 2, axis=0)  # against another patient's CT the outlines differ more
        assert 2 * (shifted & body_ct).sum() / (shifted.sum() + body_ct.sum()) < 0.93, name


def test_train_and_test_patients_are_disjoint():
    def ids(split: str) -> set[str]:
        return {patient_id(patient_seed(seed, i)) for seed, count in PAIRED_SPLITS[split] for i in range(count)}

    assert ids("train").isdisjoint(ids("test")) and ids("all") == ids("train") | ids("test")
    train, test = (phantom_modalities(split, 64, ("t2",), patients=2) for split in ("train", "test"))
    assert set(train.patients) <= ids("train") and set(test.patients) <= ids("test")
    assert set(train.patients).isdisjoint(test.patients)
    with pytest.raises(ConfigError, match="data.split"):
        load_slices(DataConfig(source="phantom-t1", resolution=32, split="val"))
    with pytest.raises(ConfigError, match="modality"):
        phantom_modalities("test", 64, ("pet",))
