"""3D metrics: SSIM/MS-SSIM in 3D equal MONAI's, three-plane FID/KID with intervals over volumes, 3D diversity and
memorization, and volumetric translation errors in physical units with through-plane consistency."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from medgan.data.intensity import ct_window
from medgan.data.phantom.volumes import phantom_patient_volume
from medgan.errors import DataError
from medgan.metrics.catalog import VOLUME_METRICS, VOLUME_TRANSLATION_METRICS, headline, interval, lookup
from medgan.metrics.features import get_extractor
from medgan.metrics.intervals import Resampling, fid_interval
from medgan.metrics.volume_memorization import volume_memorization
from medgan.metrics.volume_similarity import (
    volume_diversity,
    volume_ms_ssim,
    volume_scale_weights,
    volume_ssim,
    xyz_to_dhw,
)
from medgan.metrics.volume_translation import (
    paired_difference,
    through_plane_error,
    volume_errors,
    volume_translation_metrics,
)
from medgan.metrics.volumes import (
    PLANES,
    plane_features,
    plane_slices,
    three_plane_fid,
    three_plane_scores,
    volume_metrics,
)

pytestmark = pytest.mark.usefixtures("one_thread")
WINDOW = ct_window(50.0, 400.0)  # abdomen: -150 .. 250 HU -> [-1, 1]
PATIENTS = 12


@pytest.fixture(scope="module")
def phantom() -> dict[str, torch.Tensor]:
    """12 phantom patients, 16 slices of 32 px (about 3 s): routine-dose and noise-free CT in HU, [N, 1, D, H, W]."""
    torch.set_num_threads(1)
    volumes = [phantom_patient_volume(seed, n_slices=16, size=32, doses=(1.0, None), phases=("portal",), sequences=())
               for seed in range(PATIENTS)]
    return {name: torch.stack([xyz_to_dhw(volume.images[f"ct-portal-{suffix}"]) for volume in volumes])
            for name, suffix in (("routine", "dose1"), ("noisefree", "noisefree"))}


@pytest.fixture(scope="module")
def volumes(phantom) -> torch.Tensor:
    """The routine-dose volumes in model units [-1, 1]."""
    return WINDOW.to_unit(phantom["routine"])


@pytest.fixture(scope="module")
def extractor():
    return get_extractor("offline")


# --------------------------------------------------------------------------------------------------------
# 3D SSIM


def test_3d_ssim_and_ms_ssim_equal_monai_and_scales_follow_the_volume_size():
    from monai.metrics.regression import compute_ms_ssim, compute_ssim_and_cs

    generator = torch.Generator().manual_seed(0)
    a = torch.rand(3, 1, 32, 32, 32, generator=generator) * 2 - 1
    b = (a + 0.4 * torch.rand(a.shape, generator=generator)).clamp(-1, 1)
    display_a, display_b = (a + 1) / 2, (b + 1) / 2
    reference, _ = compute_ssim_and_cs(display_a, display_b, spatial_dims=3, kernel_size=(11, 11, 11),
                                       kernel_sigma=(1.5, 1.5, 1.5), data_range=1.0)
    assert volume_ssim(a, b).numpy() == pytest.approx(reference.flatten(1).mean(1).numpy(), abs=1e-5)
    weights = volume_scale_weights(a.shape[2:])
    assert len(weights) == 2 and sum(weights) == pytest.approx(1.0)
    multiscale = compute_ms_ssim(display_a, display_b, spatial_dims=3, data_range=1.0, weights=weights)[:, 0]
    assert volume_ms_ssim(a, b).numpy() == pytest.approx(multiscale.numpy(), abs=1e-5)
    assert volume_ssim(a, a).numpy() == pytest.approx([1.0] * 3, abs=1e-5)
    assert len(volume_scale_weights((16, 32, 32))) == 1 and len(volume_scale_weights((64, 64, 64))) == 3
    with pytest.raises(DataError, match="too small for SSIM"):
        volume_scale_weights((8, 32, 32))
    with pytest.raises(DataError, match=r"\[N, 1, D, H, W\]"):
        volume_ssim(a[:, 0], b[:, 0])


# --------------------------------------------------------------------------------------------------------
# three-plane FID and KID


def test_plane_slices_are_the_central_slices_of_each_axis_made_square():
    volume = torch.arange(16 * 32 * 24, dtype=torch.float32).view(1, 1, 16, 32, 24)
    axial = plane_slices(volume, "axial", fraction=0.5)
    assert axial.shape == (8, 1, 32, 32)  # slices 4 .. 11 of D, 32 x 24 stretched to 32 x 32
    coronal = plane_slices(volume, "coronal", fraction=0.5)
    assert coronal.shape == (16, 1, 24, 24)  # slices 8 .. 23 of H, each 16 x 24 -> 24 x 24
    sagittal = plane_slices(volume, "sagittal", fraction=0.25, every=2)
    assert sagittal.shape == (3, 1, 32, 32)  # slices 9, 11, 13 of W (9 .. 14), each 16 x 32 -> 32 x 32
    square = torch.rand(2, 1, 16, 16, 16)
    assert torch.equal(plane_slices(square, "coronal")[9, 0], square[1, 0, :, 5, :])  # volume 1's 2nd: H = 5
    assert torch.equal(plane_slices(square, "axial")[0, 0], square[0, 0, 4])
    with pytest.raises(DataError, match="unknown plane"):
        plane_slices(square, "oblique")


def test_three_plane_fid_is_zero_for_identical_sets_and_grows_with_noise_and_blur(volumes, extractor):
    real = volumes[:10]
    generator = torch.Generator().manual_seed(1)
    noised = (volumes[2:] + 0.15 * torch.randn(volumes[2:].shape, generator=generator)).clamp(-1, 1)  # 10 -> 12
    noised = torch.cat([noised, noised[:2]])
    blurred = torch.from_numpy(ndimage.gaussian_filter(real.numpy(), (0, 0, 1, 1, 1))).float()
    same = three_plane_fid(real, real.clone(), extractor, resamples=50)
    noisy = three_plane_fid(real, noised, extractor, resamples=50)
    blurry = three_plane_fid(real, blurred, extractor, resamples=50)
    for plane in PLANES:
        assert same["planes"][plane]["fid"] == pytest.approx(0.0, abs=1e-6)
        assert noisy["planes"][plane]["fid"] > 3.0 and blurry["planes"][plane]["fid"] > 20.0
        assert noisy["planes"][plane]["kid_mean"] > same["planes"][plane]["kid_mean_interval"]["high"]
    for result in (same, noisy, blurry):
        assert result["fid"] == pytest.approx(np.mean([result["planes"][plane]["fid"] for plane in PLANES]))
        assert result["kid_mean"] == pytest.approx(np.mean([result["planes"][plane]["kid_mean"] for plane in PLANES]))
        for node in (result, *result["planes"].values()):
            for key in ("fid", "kid_mean"):
                found = node[f"{key}_interval"]
                assert found["low"] <= node[key] <= found["high"] and found["resampled"] == "volumes"
    assert blurry["fid_interval"]["low"] > noisy["fid_interval"]["high"]  # blur of 1 voxel in 3D is far worse
    assert noisy["n_real"] == 10 and noisy["n_synthetic"] == 12 and noisy["fid_interval"]["n_fake"] == 12
    assert noisy["planes"]["axial"]["slices_real"] == 80 and noisy["planes"]["coronal"]["slices_synthetic"] == 192
    assert noisy["planes"]["coronal"]["slice_range"] == [8, 24] and noisy["planes"]["coronal"]["slice_shape"] == [16, 32]


def test_intervals_resample_whole_volumes_so_correlated_slices_widen_them(volumes, extractor):
    real = volumes[:10]
    generator = torch.Generator().manual_seed(2)
    fake = (real + 0.15 * torch.randn(real.shape, generator=generator)).clamp(-1, 1)
    real_planes, fake_planes = plane_features(real, extractor), plane_features(fake, extractor)
    by_volume = three_plane_scores(real_planes, fake_planes, 10, 10, resamples=100)["planes"]["axial"]["fid_interval"]
    # The 2D suite's interval on the same 80 + 80 axial slices, resampled one by one as if independent.
    by_slice = fid_interval(real_planes["axial"][0].double().numpy(), fake_planes["axial"][0].double().numpy(),
                            Resampling(100, 0))
    assert by_volume["high"] - by_volume["low"] > 2.0 * (by_slice["high"] - by_slice["low"])  # 12.0 vs 3.1
    assert by_volume["n_real"] == 10 and by_slice["n_real"] == 80
    # Subject labels (two volumes per patient) resample patients; fewer than 5 subjects fall back to volumes.
    subjects = [index // 2 for index in range(10)]
    paired = three_plane_scores(real_planes, fake_planes, 10, 10, real_subjects=subjects, resamples=100)
    assert paired["resampled"] == "subjects" and paired["fid_interval"]["resampled"] == "subjects"
    few = three_plane_scores(real_planes, fake_planes, 10, 10, real_subjects=[index // 5 for index in range(10)],
                             resamples=20)
    assert few["resampled"] == "volumes" and "fewer than 5" in few["notes"][-1]


def test_a_plane_with_fewer_slices_than_features_gets_no_fid_but_keeps_kid(volumes, extractor):
    result = three_plane_fid(volumes[:6], volumes[6:], extractor, resamples=20)  # axial: 6 x 8 = 48 slices < 64
    assert result["planes"]["axial"]["fid"] is None and "fid_interval" not in result["planes"]["axial"]
    assert result["planes"]["coronal"]["fid"] > 0 and "fid_interval" in result["planes"]["coronal"]
    assert result["fid"] is None and "fid_interval" not in result
    assert math.isfinite(result["kid_mean"]) and "kid_mean_interval" in result
    assert result["notes"][0].startswith("axial FID not computed")
    with pytest.raises(DataError, match="differ in shape"):
        three_plane_fid(volumes[:4], volumes[:4, :, :12], extractor)


# --------------------------------------------------------------------------------------------------------
# diversity and memorization


def test_3d_diversity_is_lower_for_copies_than_for_varied_volumes(volumes):
    generator = torch.Generator().manual_seed(3)
    copies = (volumes[:1].repeat(6, 1, 1, 1, 1) + 0.02 * torch.randn(6, 1, 16, 32, 32, generator=generator))
    result = volume_diversity(volumes[:6], copies.clamp(-1, 1), resamples=100)
    assert result["measure"] == "ssim" and result["scales"] == 1  # 16 slices hold one scale
    assert result["real"]["count"] == 15  # every distinct pair of 6 volumes
    assert result["synthetic"]["mean"] > 0.95 > result["real"]["mean_interval"]["high"]
    assert result["synthetic"]["mean_interval"]["low"] > result["real"]["mean_interval"]["high"]
    assert result["relative_diversity"] < 0.1 and result["collapse"]
    assert result["synthetic"]["duplicate_fraction"] == 1.0 and result["real"]["duplicate_fraction"] == 0.0
    varied = volume_diversity(volumes[:6], volumes[6:], resamples=100)
    assert not varied["collapse"] and 0.5 < varied["relative_diversity"] < 2.0
    assert varied["relative_diversity_interval"]["low"] > result["relative_diversity_interval"]["high"]


def test_memorization_flags_an_exact_copy_of_a_training_volume(volumes):
    train, heldout = volumes[:6], volumes[6:9]
    fake = torch.cat([train[2:3], volumes[9:12]])
    audit = volume_memorization(train, fake, heldout=heldout, resamples=100)
    assert audit["nearest_index"][0] == 2 and audit["closest_pairs"][0] == [0, 2, pytest.approx(1.0, abs=1e-5)]
    assert audit["near_copies"] == 1 and audit["near_copy_fraction"] == 0.25
    assert audit["baseline"] == "held-out real volumes" and audit["baseline_near_copy_fraction"] == 0.0
    assert audit["closest_pairs"][1][2] < 0.9  # other patients are far below the gate
    low, high = audit["near_copy_fraction_interval"]["low"], audit["near_copy_fraction_interval"]["high"]
    assert 0.0 <= low <= 0.25 <= high <= 1.0
    loo = volume_memorization(train, fake[1:], resamples=20)
    assert loo["baseline"].startswith("leave-one-out") and loo["near_copies"] == 0
    assert loo["baseline_nearest_ssim"]["max"] < 0.95  # no training volume matched itself


def test_volume_metrics_fill_every_row_of_the_volume_catalogue(volumes, extractor):
    metrics = volume_metrics(volumes[:10], volumes[2:], extractor, resamples=20)
    assert set(metrics["headline"]) == {info.key for info in VOLUME_METRICS}
    for info in VOLUME_METRICS:
        assert lookup(metrics, info.key) is not None, info.key
        for _, key in info.context:
            assert lookup(metrics, key) is not None, key
    for key in ("volume_distribution.fid", "volume_diversity.relative_diversity",
                "volume_memorization.near_copy_fraction"):
        found = interval(metrics, key)
        assert found["low"] <= lookup(metrics, key) <= found["high"], key
    assert metrics["volume_memorization"]["baseline"].startswith("leave-one-out")


# --------------------------------------------------------------------------------------------------------
# volumetric translation


def test_translation_errors_are_in_physical_units_through_the_intensity_mapping(phantom):
    truth_unit = WINDOW.to_unit(phantom["noisefree"][:4])
    truth = WINDOW.to_physical(truth_unit)
    output = WINDOW.to_physical(truth_unit + 0.05)  # 0.05 model units = 10 HU in a 400 HU window
    body = truth > -140.0  # soft tissue and above: the window's content
    errors = volume_errors(output, truth, 400.0, WINDOW.low, mask=body)
    assert errors["mae"] == pytest.approx([10.0] * 4, abs=1e-4)
    assert errors["psnr"] == pytest.approx([10 * math.log10(400.0**2 / 100.0)] * 4, abs=1e-4)  # 32.04 dB
    assert errors["through_plane_mae"] == pytest.approx([0.0] * 4, abs=1e-4)  # a constant offset does not flicker
    assert np.all(errors["ssim"] < 1.0) and volume_errors(truth, truth, 400.0, WINDOW.low)["ssim"] == \
        pytest.approx([1.0] * 4, abs=1e-5)
    from monai.metrics.regression import compute_ssim_and_cs

    noisy = truth + 30.0 * torch.randn(truth.shape, generator=torch.Generator().manual_seed(4))
    reference, _ = compute_ssim_and_cs((noisy - WINDOW.low) / 400.0, (truth - WINDOW.low) / 400.0, spatial_dims=3,
                                       kernel_size=(11, 11, 11), kernel_sigma=(1.5, 1.5, 1.5), data_range=1.0)
    assert volume_errors(noisy, truth, 400.0, WINDOW.low)["ssim"] == \
        pytest.approx(reference.flatten(1).mean(1).numpy(), abs=1e-4)
    with pytest.raises(DataError, match="differ in shape"):
        volume_errors(output[:, :, :12], truth, 400.0)
    with pytest.raises(DataError, match="does not fit"):
        volume_errors(output, truth, 400.0, mask=body[:, :, :12])


def test_through_plane_consistency_separates_slice_wise_flicker_from_an_error_coherent_along_z(phantom):
    truth = phantom["noisefree"][:, 0].double().numpy()  # [12, 16, 32, 32] HU
    rng = np.random.default_rng(5)
    independent = truth + rng.normal(0.0, 20.0, truth.shape)  # A: a new error on every slice
    coherent = truth + rng.normal(0.0, 20.0, (truth.shape[0], 1, 32, 32))  # B: one error field on every slice
    a = volume_translation_metrics(independent, truth, 400.0, WINDOW.low, unit="HU", resamples=500)
    b = volume_translation_metrics(coherent, truth, 400.0, WINDOW.low, unit="HU", resamples=500)
    assert a["mae"] == pytest.approx(20.0 * math.sqrt(2 / math.pi), rel=0.02)  # 16 HU each
    assert b["mae"] == pytest.approx(a["mae"], rel=0.05)
    assert a["through_plane_ratio"] == pytest.approx(math.sqrt(2.0), rel=0.03)  # independent errors: sqrt(2) x MAE
    assert b["through_plane_mae"] < 1e-9 < 0.05 * a["through_plane_mae"]
    assert a["through_plane_mae_interval"]["low"] > b["through_plane_mae_interval"]["high"]
    assert a["unit"] == "HU" and a["n_volumes"] == 12 and a["through_plane_mae_interval"]["resampled"] == "volumes"
    compared = paired_difference(a["per_volume"]["through_plane_mae"], b["per_volume"]["through_plane_mae"])
    assert compared["separated"] and compared["difference_interval"]["low"] > 20.0
    same = paired_difference(a["per_volume"]["mae"], b["per_volume"]["mae"])
    assert abs(same["difference"]) < 0.5
    # along another axis: the coherent error changes from row to row, so it flickers there as much as A does
    rows = volume_errors(coherent, truth, 400.0, WINDOW.low, axis=1)
    assert np.mean(rows["through_plane_ratio"]) == pytest.approx(math.sqrt(2.0), rel=0.05)
    assert math.isnan(through_plane_error(np.zeros((3, 4, 4)), np.zeros((3, 4, 4)), np.zeros((3, 4, 4), bool)))


def test_translation_intervals_resample_subjects_and_fill_the_translation_catalogue(phantom):
    truth = phantom["noisefree"][:8, 0].double().numpy()
    rng = np.random.default_rng(6)
    # Two volumes per patient share the patient's error level: subject resampling sees 4 clusters, not 8 volumes.
    scale = np.repeat(rng.uniform(5.0, 40.0, 4), 2)[:, None, None, None]
    output = truth + scale * rng.normal(0.0, 1.0, truth.shape)
    subjects = [f"patient-{index // 2}" for index in range(8)]
    grouped = volume_translation_metrics(output, truth, 400.0, WINDOW.low, subjects=subjects, unit="HU")
    found = grouped["mae_interval"]
    assert found["resampled"] == "subjects" and found["n_subjects"] == 4 and found["n_volumes"] == 8
    assert found["low"] <= grouped["mae"] <= found["high"]
    metrics = {"volume_translation": grouped}
    assert all(value is not None for value in headline(metrics, VOLUME_TRANSLATION_METRICS).values())
    for info in VOLUME_TRANSLATION_METRICS:
        if info.key.endswith(("mae", "psnr", "ssim")):
            assert interval(metrics, info.key) is not None, info.key
    with pytest.raises(DataError, match="3 labels for 8 volumes"):
        volume_translation_metrics(output, truth, 400.0, subjects=subjects[:3])
