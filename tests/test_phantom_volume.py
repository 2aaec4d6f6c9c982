"""The volumetric phantom: whole simulated patients in every CT dose and phase and MR sequence, masks, NIfTI files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from medgan.data import read_volume
from medgan.data.phantom import (
    EXPECTED_MEDIAN_HU,
    LABEL,
    LESION_CLASSES,
    MR_TISSUES,
    phantom_patient_volume,
    phantom_volume,
    render_patient,
    save_lits_pair,
    save_patient_volume,
)
from medgan.data.phantom.acquisition import FOV_MM, project, reconstruct
from medgan.data.phantom.anatomy import patient_anatomy
from medgan.data.phantom.fields import patient_fields
from medgan.data.phantom.paint import paint_slice, textured

SEED = 7  # two cysts, one wholly inside the 16 slices below
IN_PLANE = ndimage.generate_binary_structure(2, 1)[:, :, None]  # erode within slices only


@pytest.fixture(scope="module")
def volume():
    # 16 slices of 2.5 mm at 48 px (8.3 mm pixels): every default rendering, small enough to render in a second.
    return phantom_patient_volume(SEED, n_slices=16, size=48)


def _median(image: np.ndarray, labels: np.ndarray, tissue: str) -> float:
    mask = ndimage.binary_erosion(labels == LABEL[tissue], structure=IN_PLANE)
    assert mask.sum() >= 10, f"too few {tissue} voxels"
    return float(np.median(image[mask]))


def test_default_geometry_is_64_contiguous_slices_of_the_liver_region():
    # MR only at 32 px keeps the 64 slices quick; the geometry is the default one.
    full = phantom_patient_volume(SEED, size=32, doses=(), sequences=("t1",))
    assert full.images["t1"].shape == full.labels.shape == full.lesion_map.shape == (32, 32, 64)
    assert full.spacing_mm == (FOV_MM / 32, FOV_MM / 32, 2.5)
    heights = np.asarray(full.heights_mm)
    np.testing.assert_allclose(np.diff(heights), 2.5)
    assert heights[0] == pytest.approx(-88.75) and heights[-1] == pytest.approx(68.75)
    # The liver runs through the whole slab, kidneys and spleen appear in part of it.
    per_slice = [(full.labels[..., k] == LABEL[name]).any(axis=None) for name in ("liver", "kidney", "spleen")
                 for k in range(64)]
    liver, kidney, spleen = np.reshape(per_slice, (3, 64))
    assert liver.all() and 5 < kidney.sum() < 64 and 5 < spleen.sum() < 64


def test_shapes_spacing_and_ras_affine(volume):
    names = {"ct-portal-dose1", "ct-portal-dose0.25", "ct-unenhanced-dose1", "ct-unenhanced-dose0.25", "t1", "t2"}
    assert set(volume.images) == set(volume.renderings) == names
    for image in volume.images.values():
        assert image.shape == (48, 48, 16) and image.dtype == np.float32
    assert volume.spacing_mm == pytest.approx((FOV_MM / 48, FOV_MM / 48, 2.5))
    np.testing.assert_allclose(np.abs(np.diag(volume.affine)[:3]), volume.spacing_mm)
    # The same convention as the LiTS-style volumes of save_lits_pair.
    lits = phantom_volume(SEED, n_slices=16, slice_mm=2.5, size=48, dose=None, n_lesions=0, centre_z_mm=-10.0)
    np.testing.assert_allclose(volume.affine, lits.affine)
    np.testing.assert_array_equal(lits.segmentation == 1, volume.segmentation > 0)  # its liver, ours with lesions

    def world(tissue: str) -> np.ndarray:
        voxel = np.argwhere(volume.labels == LABEL[tissue]).mean(axis=0)
        return volume.affine @ np.append(voxel, 1.0)

    # RAS+: the liver lies on the patient's right (+x), the vertebral bodies posterior (-y) to the aorta.
    assert world("liver")[0] > 30.0
    assert world("bone-cancellous")[1] < world("aorta")[1] - 10.0
    np.testing.assert_allclose([world("liver")[2]], [np.mean(volume.heights_mm)], atol=20.0)


def test_every_rendering_shows_one_anatomy(volume):
    # The unenhanced painting alone gives the same label and lesion maps as the portal one.
    unenhanced = phantom_patient_volume(SEED, n_slices=16, size=48, doses=(1.0,), phases=("unenhanced",), sequences=())
    np.testing.assert_array_equal(unenhanced.labels, volume.labels)
    np.testing.assert_array_equal(unenhanced.lesion_map, volume.lesion_map)
    # The MR tissue map follows the labels, and every rendering shows its tissues where the labels put them.
    liver = volume.labels == LABEL["liver"]
    assert (volume.mr_tissues[liver] == MR_TISSUES.index("liver")).all()
    assert (volume.mr_tissues[volume.lesion_map > 0] == MR_TISSUES.index("cyst")).all()
    images, labels = volume.images, volume.labels
    assert _median(images["t1"], labels, "fat") > 1.5 * _median(images["t1"], labels, "liver")  # fat bright on T1w
    assert _median(images["t2"], labels, "fat") > 2.0 * _median(images["t2"], labels, "liver")  # and on T2w
    assert _median(images["t2"], labels, "liver") < 0.5 * float(np.median(images["t2"][volume.lesion_map > 0]))
    for name in ("ct-portal-dose1", "ct-unenhanced-dose1"):
        assert _median(images[name], labels, "fat") < -60.0 < 30.0 < _median(images[name], labels, "liver")
        assert float(np.median(images[name][labels == LABEL["air"]])) == pytest.approx(-1000.0, abs=20.0)


def test_lesions_are_3d_and_their_masks_agree(volume):
    assert volume.lesion_classes == ("cyst", "cyst") and len(volume.lesions) == 2
    assert set(np.unique(volume.lesion_map)) == {0, 1, 2}
    np.testing.assert_array_equal(volume.lesion_map > 0, volume.labels == LABEL["lesion"])
    np.testing.assert_array_equal(volume.segmentation == 2, volume.lesion_map > 0)
    assert (volume.segmentation[volume.lesion_map > 0] == 2).all() and (volume.segmentation == 1).sum() > 500
    np.testing.assert_array_equal(volume.lesion_class_map[volume.lesion_map > 0], 1 + LESION_CLASSES.index("cyst"))
    contained = 0
    for number in (1, 2):
        areas = (volume.lesion_map == number).sum(axis=(0, 1))
        seen = np.flatnonzero(areas)
        assert np.all(np.diff(seen) == 1), "a lesion's slices are contiguous"
        if areas[0] or areas[-1]:
            continue  # cut by an end of the volume
        contained += 1
        assert len(seen) >= 4, "a lesion crosses several 2.5 mm slices"
        peak = int(np.argmax(areas))
        assert np.all(np.diff(areas[: peak + 1]) >= 0) and np.all(np.diff(areas[peak:]) <= 0), areas
        assert areas[peak] >= 3 * max(areas[seen[0]], areas[seen[-1]])
        centre_slice = volume.lesions[number - 1].centre[2]
        assert abs(volume.heights_mm[peak] - centre_slice) <= 2 * volume.spacing_mm[2]
    assert contained >= 1


def test_texture_continues_through_the_plane():
    size, heights_count = 48, 10
    ideal = phantom_patient_volume(SEED, heights_count, size=size, doses=(None,), phases=("portal",), sequences=(),
                                   n_lesions=0)
    heights, spacing = ideal.heights_mm, FOV_MM / size
    anatomy, fields = patient_anatomy(SEED, "portal"), patient_fields(SEED, heights, size)
    flat = np.zeros((size, size), dtype=np.float32)
    before, after, livers = [], [], []
    for index, z in enumerate(heights):
        canvas = paint_slice(anatomy, z, size, fields.at(index))
        truth = textured(canvas, None, fields.texture[index])
        if index == 4:  # the volume is exactly this painting, textured by the 3D field, then scanned
            scan = reconstruct(project(truth, spacing), spacing, None, np.random.default_rng(0))
            np.testing.assert_array_equal(ideal.images["ct-portal-noisefree"][..., index], scan.T)
        after.append(truth - textured(canvas, None, flat))
        # The 2D sources: the same slice with its texture drawn for this height alone.
        plain = paint_slice(anatomy, z, size)
        before.append(render_patient(SEED, size, None, n_lesions=0, z_mm=z).truth_hu - textured(plain, None, flat))
        livers.append(ndimage.binary_erosion(canvas.labels == LABEL["liver"]))
    both = np.stack(livers[:-1]) & np.stack(livers[1:])

    def adjacent(residuals: list[np.ndarray]) -> float:
        stack = np.stack(residuals)
        return float(np.corrcoef(stack[:-1][both], stack[1:][both])[0, 1])

    # 2 mm texture sampled 2.5 mm apart: a Gaussian field's correlation exp(-2.5^2 / (4 * 2^2)) = 0.68.
    assert abs(adjacent(before)) < 0.15
    assert 0.5 < adjacent(after) < 0.85
    # The same texture amplitude as the 2D sources' (4 HU before the partial-volume blur): only its continuity changed.
    amplitude = [float(np.std(np.stack(residual)[np.stack(livers)])) for residual in (before, after)]
    assert amplitude[1] == pytest.approx(amplitude[0], rel=0.25) and amplitude[1] > 1.0


def test_ct_values_by_phase_and_noise_by_dose():
    scans = phantom_patient_volume(SEED, 8, size=64, doses=(None, 1.0, 0.25), sequences=(), n_lesions=0)
    labels = scans.labels
    liver = {phase: _median(scans.images[f"ct-{phase}-noisefree"], labels, "liver") for phase in ("portal", "unenhanced")}
    for phase, value in liver.items():
        low, high = EXPECTED_MEDIAN_HU[phase]["liver"]
        assert low <= value <= high, f"{phase} liver {value:.0f} HU outside [{low}, {high}]"
    assert 30.0 < liver["portal"] - liver["unenhanced"] < 60.0  # about 105 against 60 HU
    assert _median(scans.images["ct-portal-noisefree"], labels, "fat") == pytest.approx(-100.0, abs=20.0)
    kidney = [_median(scans.images[f"ct-{phase}-noisefree"], labels, "kidney") for phase in ("portal", "unenhanced")]
    assert kidney[0] > 120.0 and 20.0 < kidney[1] < 50.0
    # Photon noise: a quarter of the dose doubles it; each dose and each phase is its own scan.
    mask = ndimage.binary_erosion(labels == LABEL["liver"], structure=IN_PLANE)
    noise = {name: scans.images[name][mask] - scans.images["ct-portal-noisefree"][mask]
             for name in ("ct-portal-dose1", "ct-portal-dose0.25")}
    assert 1.7 < noise["ct-portal-dose0.25"].std() / noise["ct-portal-dose1"].std() < 2.3
    unenhanced_noise = scans.images["ct-unenhanced-dose1"][mask] - scans.images["ct-unenhanced-noisefree"][mask]
    assert abs(np.corrcoef(noise["ct-portal-dose1"], unenhanced_noise)[0, 1]) < 0.1
    # Noise is independent from slice to slice (axial CT), unlike the texture.
    slab = scans.images["ct-portal-dose1"] - scans.images["ct-portal-noisefree"]
    both = mask[..., :-1] & mask[..., 1:]
    assert abs(np.corrcoef(slab[..., :-1][both], slab[..., 1:][both])[0, 1]) < 0.1


def test_same_seed_same_patient_and_overlapping_volumes_agree():
    first = phantom_patient_volume(SEED, 6, size=32, doses=(1.0,), phases=("portal",), sequences=("t2",), n_lesions=0)
    again = phantom_patient_volume(SEED, 6, size=32, doses=(1.0,), phases=("portal",), sequences=("t2",), n_lesions=0)
    for name in first.images:
        np.testing.assert_array_equal(first.images[name], again.images[name])
    np.testing.assert_array_equal(first.labels, again.labels)
    # Two slices higher, on the same lattice: the four shared slices are the same slices, texture and noise included.
    shifted = phantom_patient_volume(SEED, 6, size=32, doses=(1.0,), phases=("portal",), sequences=("t2",),
                                     n_lesions=0, centre_z_mm=-5.0)
    np.testing.assert_allclose(shifted.heights_mm[:4], first.heights_mm[2:])
    for name in first.images:
        np.testing.assert_allclose(shifted.images[name][..., :4], first.images[name][..., 2:], atol=1e-3)
    other = phantom_patient_volume(SEED + 1, 6, size=32, doses=(1.0,), phases=("portal",), sequences=(), n_lesions=0)
    assert (other.labels != first.labels).mean() > 0.05


def test_nifti_round_trip_keeps_hu_spacing_and_the_simulated_marks(volume, tmp_path):
    import nibabel as nib

    files = save_patient_volume(volume, tmp_path)
    ct = nib.load(files["ct-portal-dose1"])
    assert ct.get_data_dtype() == np.int16 and (ct.dataobj.slope, ct.dataobj.inter) == (1.0, 0.0)
    hu = np.clip(np.round(volume.images["ct-portal-dose1"]), -1024, 3071)  # int16 CT is clipped as LiTS stores it
    np.testing.assert_array_equal(np.asanyarray(ct.dataobj), hu)
    np.testing.assert_allclose(ct.affine, volume.affine)
    assert ct.header.get_zooms() == pytest.approx(volume.spacing_mm)
    assert ct.header["descrip"].tobytes().startswith(b"SYNTHETIC medgan")
    assert ct.header["intent_name"].tobytes().rstrip(b"\0") == b"synthetic"
    # Read back by medgan's own reader: HU, spacing and the patient as the subject.
    read = read_volume(files["ct-portal-dose1"])
    np.testing.assert_array_equal(read.array, hu)
    assert read.spacing == pytest.approx(volume.spacing_mm) and read.subject == volume.patient
    mr = nib.load(files["t1"])
    assert mr.get_data_dtype() == np.float32
    np.testing.assert_array_equal(mr.get_fdata(dtype=np.float32), volume.images["t1"])
    for name, array in (("labels", volume.labels), ("lesions", volume.lesion_map), ("segmentation", volume.segmentation)):
        mask = nib.load(files[name])
        assert mask.get_data_dtype() == np.uint8
        np.testing.assert_array_equal(np.asanyarray(mask.dataobj), array)
    card = json.loads(files["metadata"].read_text())
    assert card["synthetic"] is True and card["patient"] == volume.patient and card["seed"] == SEED
    assert [lesion["class"] for lesion in card["lesions"]] == list(volume.lesion_classes)
    assert card["renderings"]["ct-portal-dose0.25"]["dose"] == 0.25 and card["spacing_mm"][2] == 2.5
    assert "They show no real patient" in " ".join(files["readme"].read_text().split())
    # Folders pair by file name; atomic writes leave no temporary files behind.
    assert files["ct-portal-dose0.25"].name == files["ct-portal-dose1"].name == f"{volume.patient}.nii.gz"
    assert not [path for path in tmp_path.rglob(".*")]
    # Any CT rendering also makes a LiTS-style pair.
    image_path, segmentation_path = save_lits_pair(volume.lits_volume("ct-unenhanced-dose0.25"), tmp_path / "lits", 3)
    np.testing.assert_array_equal(np.asanyarray(nib.load(segmentation_path).dataobj), volume.segmentation)
    np.testing.assert_allclose(nib.load(image_path).affine, volume.affine)
    with pytest.raises(ValueError):
        volume.lits_volume("t2")


@pytest.mark.parametrize(
    "arguments",
    [{"phases": ("arterial",)}, {"sequences": ("flair",)}, {"doses": (0.0,)}, {"doses": (), "sequences": ()},
     {"kernel": "sharp"}, {"n_slices": 0}],
)
def test_bad_requests_are_refused(arguments):
    with pytest.raises(ValueError):
        phantom_patient_volume(SEED, **{"n_slices": 2, "size": 32, **arguments})
