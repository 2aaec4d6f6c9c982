"""Radiomic features, FRD and GLCM statistics: golden values, scikit-image and pyradiomics parity, and the
orderings the metric exists for (a second real draw is closer to the real set than noisy or blurred copies)."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.feature import graycomatrix, graycoprops

from medgan.errors import DataError
from medgan.metrics import radiomics
from medgan.metrics.radiomics import SMALLEST_DISTANCE, frd, radiomic_feature_names, radiomic_features
from medgan.metrics.texture import LEVELS, glcm_statistics, quantize

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 64
COUNT = 150  # images per set: more than the 31 features, so FRD's covariances are full rank


def phantoms(count: int, seed: int, size: int = SIZE) -> torch.Tensor:
    """Disks of smooth random texture (random radius, centre and brightness) on a -1 background, [N, 1, S, S]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    texture = ndimage.gaussian_filter(rng.normal(size=(count, size, size)), (0, 2, 2)) * 3  # std about 0.5
    images = np.full((count, size, size), -1.0)
    for k in range(count):
        centre_y, centre_x = rng.uniform(0.44, 0.56, 2) * size
        body = (yy - centre_y) ** 2 + (xx - centre_x) ** 2 < (rng.uniform(0.28, 0.4) * size) ** 2
        images[k][body] = np.clip(rng.uniform(-0.1, 0.3) + 0.25 * texture[k][body], -0.95, 1.0)
    return torch.from_numpy(images)[:, None]


def with_noise(images: torch.Tensor, std: float = 0.1, seed: int = 3) -> torch.Tensor:
    noise = torch.from_numpy(np.random.default_rng(seed).normal(0.0, std, images.shape))
    return (images + noise).clamp(-1.0, 1.0)


def blurred(images: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    return torch.from_numpy(ndimage.gaussian_filter(images.numpy(), (0, 0, sigma, sigma)))


@pytest.fixture(scope="module")
def sets() -> dict[str, torch.Tensor]:
    real = phantoms(COUNT, seed=1)
    return {"real": real, "again": phantoms(COUNT, seed=2), "noisy": with_noise(real), "blurred": blurred(real)}


@pytest.fixture(scope="module")
def features(sets) -> dict[str, torch.Tensor]:
    return {name: radiomic_features(images) for name, images in sets.items()}


# --- shapes, names, determinism -------------------------------------------------------------------------------


def test_features_have_one_named_float64_column_per_feature(features):
    names = radiomic_feature_names()
    assert len(names) == len(set(names)) == 31
    assert features["real"].shape == (COUNT, len(names))
    assert features["real"].dtype == torch.float64
    assert torch.isfinite(features["real"]).all()


def test_features_are_deterministic_and_independent_of_batching(sets, features, monkeypatch):
    images = sets["real"][:20]
    monkeypatch.setattr(radiomics, "CHUNK", 7)  # several chunks, the last one partial
    chunked = radiomic_features(images)
    assert torch.equal(chunked, radiomic_features(images))
    torch.testing.assert_close(chunked, features["real"][:20], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(radiomic_features(images[5:6]), features["real"][5:6], rtol=1e-12, atol=1e-12)


# --- golden values and reference implementations ---------------------------------------------------------------


def stripes(low: float, high: float) -> torch.Tensor:
    """A 16 x 16 image of alternating columns of two values, [1, 1, 16, 16]."""
    image = torch.full((16, 16), low, dtype=torch.float64)
    image[:, 1::2] = high
    return image[None, None]


def test_glcm_and_run_lengths_of_stripes_match_hand_computed_values():
    image, everywhere = stripes(-0.5, 0.0), torch.ones(1, 1, 16, 16, dtype=torch.bool)
    statistics = glcm_statistics(image, everywhere)
    # Offsets (0, 1), (1, 1), (1, -1) cross a stripe edge (grey levels 8 and 16); (1, 0) runs along a stripe.
    step = int(quantize(np.array(0.0)) - quantize(np.array(-0.5)))
    assert step == LEVELS // 4
    assert statistics["contrast"].item() == pytest.approx(3 * step**2 / 4)
    assert statistics["homogeneity"].item() == pytest.approx((3 / (1 + step**2) + 1) / 4)
    assert statistics["entropy"].item() == pytest.approx(1.0)  # two equally likely cells at every offset
    row = dict(zip(radiomic_feature_names(), radiomic_features(image, everywhere)[0].tolist()))
    # Runs: length 1 along three directions, length 16 down the columns.
    assert row["glrlm_short_run_emphasis"] == pytest.approx((3 + 1 / 16**2) / 4)
    assert row["glrlm_run_percentage"] == pytest.approx((3 + 1 / 16) / 4)
    assert row["glszm_large_area_emphasis"] == pytest.approx(16**2)  # each column is one zone of 16 pixels
    assert row["firstorder_mean"] == pytest.approx(-0.25)
    assert row["firstorder_entropy"] == pytest.approx(1.0)
    assert row["shape_area_fraction"] == 1.0


def test_glcm_statistics_match_scikit_image_on_whole_images(sets):
    images = sets["real"][:5]
    ours = glcm_statistics(images, torch.ones_like(images, dtype=torch.bool))
    for k, image in enumerate(images[:, 0].numpy()):
        matrix = graycomatrix(quantize(image).astype(np.uint8), [1], [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4],
                              levels=LEVELS, symmetric=True, normed=True)
        for name in ("contrast", "homogeneity", "energy", "correlation"):
            assert ours[name][k].item() == pytest.approx(graycoprops(matrix, name).mean(), rel=1e-9), name


@pytest.mark.skipif(importlib.util.find_spec("radiomics") is None, reason="pyradiomics is not installed")
def test_features_match_pyradiomics(sets):
    """Same ROI and bins: pyradiomics sees 16 (x + 1) with binWidth 1, i.e. the same fixed-width levels."""
    import SimpleITK as sitk
    from radiomics import featureextractor

    images = sets["real"][:3]
    masks = images > -0.98
    ours = radiomic_features(images, masks).numpy()
    names = radiomic_feature_names()
    same = {"firstorder_entropy": "firstorder_Entropy", "firstorder_skewness": "firstorder_Skewness",
            "firstorder_kurtosis": "firstorder_Kurtosis", "glcm_contrast": "glcm_Contrast",
            "glcm_dissimilarity": "glcm_DifferenceAverage", "glcm_homogeneity": "glcm_Idm",
            "glcm_asm": "glcm_JointEnergy", "glcm_correlation": "glcm_Correlation", "glcm_entropy": "glcm_JointEntropy",
            "glrlm_short_run_emphasis": "glrlm_ShortRunEmphasis", "glrlm_long_run_emphasis": "glrlm_LongRunEmphasis",
            "glrlm_run_length_nonuniformity": "glrlm_RunLengthNonUniformityNormalized",
            "glrlm_grey_level_nonuniformity": "glrlm_GrayLevelNonUniformityNormalized",
            "glrlm_run_percentage": "glrlm_RunPercentage", "glszm_small_area_emphasis": "glszm_SmallAreaEmphasis",
            "glszm_large_area_emphasis": "glszm_LargeAreaEmphasis", "glszm_zone_percentage": "glszm_ZonePercentage"}
    scaled = {"firstorder_p10": "firstorder_10Percentile", "firstorder_p90": "firstorder_90Percentile",
              "firstorder_interquartile_range": "firstorder_InterquartileRange",
              "firstorder_robust_mean_absolute_deviation": "firstorder_RobustMeanAbsoluteDeviation"}
    for distance in (1, 2):
        extractor = featureextractor.RadiomicsFeatureExtractor(force2D=True, binWidth=1, normalize=False,
                                                               voxelArrayShift=0, distances=[distance])
        for k in range(len(images)):
            image = sitk.GetImageFromArray((16.0 * (images[k, 0].numpy() + 1.0))[None])
            mask = sitk.GetImageFromArray(masks[k, 0].numpy().astype(np.uint8)[None])
            theirs = extractor.execute(image, mask)
            for ours_name, their_name in same.items():
                column = f"{ours_name}_d{distance}" if ours_name.startswith("glcm") else ours_name
                assert ours[k, names.index(column)] == pytest.approx(float(theirs[f"original_{their_name}"]),
                                                                     rel=1e-9), column
            for ours_name, their_name in scaled.items():
                shift = 0.0 if "range" in ours_name or "deviation" in ours_name else 1.0
                expected = float(theirs[f"original_{their_name}"]) / 16.0 - shift
                assert ours[k, names.index(ours_name)] == pytest.approx(expected, rel=1e-9, abs=1e-12), ours_name
            energy = float(theirs["original_firstorder_Energy"]) / 16.0**2  # sum (16 (x + 1))^2
            assert ours[k, names.index("firstorder_energy")] == pytest.approx(energy, rel=1e-9)


# --- the orderings FRD and the GLCM statistics exist for -------------------------------------------------------


def test_frd_ranks_noisy_and_blurred_sets_farther_than_a_second_real_draw(features):
    same_distribution = frd(features["real"], features["again"])
    assert same_distribution < frd(features["real"], features["noisy"])
    assert same_distribution < frd(features["real"], features["blurred"])


def test_glcm_contrast_rises_with_noise_and_falls_with_blur(sets):
    # One fixed organ mask per image, well inside the disk: the blur must not pull the background in.
    body = sets["real"][:40] > -0.98
    masks = torch.from_numpy(ndimage.binary_erosion(body.numpy(), np.ones((1, 1, 13, 13), dtype=bool)))
    mean = {name: {key: value.mean().item() for key, value in glcm_statistics(sets[name][:40], masks).items()}
            for name in ("real", "noisy", "blurred")}
    assert mean["noisy"]["contrast"] > mean["real"]["contrast"] > mean["blurred"]["contrast"]
    assert mean["noisy"]["homogeneity"] < mean["real"]["homogeneity"] < mean["blurred"]["homogeneity"]


def test_features_ignore_pixels_outside_the_mask(sets):
    images = sets["real"][:8]
    masks = images > 0.0
    changed = torch.where(masks, images, torch.rand(images.shape, generator=torch.Generator().manual_seed(0),
                                                     dtype=torch.float64) * 2 - 1)
    assert not torch.equal(changed, images)
    assert torch.equal(radiomic_features(changed, masks), radiomic_features(images, masks))
    for name, value in glcm_statistics(changed, masks).items():
        assert torch.equal(value, glcm_statistics(images, masks)[name]), name


def test_default_roi_leaves_out_a_near_minus_one_background(sets):
    images = sets["real"][:8]
    saturated = torch.where(images <= -1.0, torch.full_like(images, -0.99), images)  # a tanh generator's -0.99
    torch.testing.assert_close(radiomic_features(saturated), radiomic_features(images), rtol=1e-12, atol=1e-12)


# --- FRD's contract ---------------------------------------------------------------------------------------------


def test_frd_of_identical_sets_is_the_floor_and_rows_may_be_resampled(features):
    real = features["real"]
    assert frd(real, real) == pytest.approx(math.log(SMALLEST_DISTANCE))
    order = torch.randperm(COUNT, generator=torch.Generator().manual_seed(0))
    assert frd(real[order], features["noisy"]) == pytest.approx(frd(real, features["noisy"]), rel=1e-9)
    resampled = torch.randint(0, COUNT, (COUNT,), generator=torch.Generator().manual_seed(1))  # a bootstrap draw
    assert math.isfinite(frd(real[resampled], features["noisy"][resampled]))


def test_frd_drops_features_constant_in_the_real_set(features):
    real, fake = features["real"], features["again"]
    constant = torch.ones(COUNT, 1, dtype=torch.float64)
    varying = torch.rand(COUNT, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = frd(real, fake)
    assert frd(torch.cat([real, constant], 1), torch.cat([fake, varying], 1)) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(DataError, match="constant"):
        frd(constant.repeat(1, 3), varying.repeat(1, 3))


def test_frd_raises_for_too_few_images_or_mismatched_features(features):
    with pytest.raises(DataError, match="more images than radiomic features"):
        frd(features["real"][:20], features["again"][:20])
    with pytest.raises(DataError, match="more images than radiomic features"):
        frd(features["real"], features["again"][:31])
    with pytest.raises(DataError, match="dimensions differ"):
        frd(features["real"], features["again"][:, :30])
    with pytest.raises(DataError, match="NaN"):
        frd(features["real"], torch.full_like(features["again"], float("nan")))


@pytest.mark.parametrize("images, masks, message", [
    (torch.zeros(4, 64, 64), None, r"\[N, 1, H, W\]"),
    (torch.zeros(4, 3, 64, 64), None, r"\[N, 1, H, W\]"),
    (torch.zeros(0, 1, 64, 64), None, "at least one image"),
    (torch.full((2, 1, 8, 8), float("nan")), None, "NaN"),
    (torch.zeros(2, 1, 8, 8), torch.ones(2, 1, 8, 8), "bool tensor"),
    (torch.zeros(2, 1, 8, 8), torch.ones(2, 1, 4, 4, dtype=torch.bool), "bool tensor"),
    (torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8, dtype=torch.bool), "fewer than 16 pixels"),
])
def test_bad_images_or_masks_raise_data_errors(images, masks, message):
    with pytest.raises(DataError, match=message):
        radiomic_features(images, masks)
    with pytest.raises(DataError, match=message):
        glcm_statistics(images, masks)


def test_an_roi_without_pixel_pairs_at_distance_two_raises():
    sparse = torch.zeros(1, 1, 12, 12, dtype=torch.bool)
    sparse[0, 0, ::3, ::3] = True  # 16 pixels, each 3 apart from the next: no pair at distance 1 or 2
    with pytest.raises(DataError, match="undefined"):
        radiomic_features(torch.zeros(1, 1, 12, 12), sparse)


def test_blank_images_fall_back_to_the_whole_image():
    row = radiomic_features(torch.full((1, 1, 16, 16), -1.0))[0]
    values = dict(zip(radiomic_feature_names(), row.tolist()))
    assert values["shape_area_fraction"] == 1.0
    assert values["glcm_contrast_d1"] == 0.0 and values["glcm_correlation_d1"] == 1.0


# --- optional: agreement with the reference package ------------------------------------------------------------


@pytest.mark.skipif(importlib.util.find_spec("frd_score") is None or importlib.util.find_spec("radiomics") is None,
                    reason="frd-score and pyradiomics are not installed")
def test_frd_ranks_sets_as_frd_score_does(tmp_path):
    """frd-score v0 (original image, ~100 pyradiomics features) on the same images written as PNG; slow (~15 s)."""
    import frd_score
    from PIL import Image

    real = phantoms(40, seed=1)
    sets = {"again": phantoms(40, seed=2), "noisy": with_noise(real), "blurred": blurred(real)}
    for name, images in {"real": real, **sets}.items():
        (tmp_path / name).mkdir()
        for k, image in enumerate(images[:, 0].numpy()):
            Image.fromarray(np.round((image + 1.0) * 127.5).astype(np.uint8)).save(tmp_path / name / f"{k:03d}.png")
    theirs = {name: frd_score.compute_frd([str(tmp_path / "real"), str(tmp_path / name)], frd_version="v0",
                                          num_workers=1) for name in sets}
    reference = radiomic_features(real)
    ours = {name: frd(reference, radiomic_features(images)) for name, images in sets.items()}
    assert sorted(sets, key=ours.get) == sorted(sets, key=theirs.get)
