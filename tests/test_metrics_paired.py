"""Paired measures in physical units: golden MAE/PSNR/SSIM, flat white-noise NPS whose integral is the variance,
blur lowers the NPS mean frequency, designed CNR of a disc, subject-grouped bootstrap intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.metrics import structural_similarity

from medgan.errors import DataError
from medgan.metrics.paired import (flattest_roi, grouped_interval, lesion_cnr, noise_power_spectrum, noise_std,
                                   nps_distance, paired_errors, square_mask)

pytestmark = pytest.mark.usefixtures("one_thread")
LOW, WIDTH = -150.0, 400.0  # the abdomen window in HU


def test_errors_of_a_constant_offset_are_the_hand_computed_values():
    target = np.zeros((2, 32, 32))
    output = target + 10.0
    output[:, :, :3] = 900.0  # outside the mask and beyond the reach of its SSIM windows: must not count
    mask = np.zeros((32, 32), dtype=bool)
    mask[:, 8:] = True
    errors = paired_errors(output, target, mask, WIDTH, LOW)
    assert errors["mae"] == pytest.approx([10.0, 10.0])
    assert errors["psnr"] == pytest.approx([10 * math.log10(400.0**2 / 100.0)] * 2)  # 32.04 dB
    # Flat images: SSIM is the luminance term on x - low = 160 vs 150 with C1 = (0.01 * 400)^2.
    luminance = (2 * 160 * 150 + 16.0) / (160**2 + 150**2 + 16.0)
    assert errors["ssim"] == pytest.approx([luminance] * 2, abs=1e-4)  # MONAI computes in float32


def test_ssim_over_the_whole_image_matches_scikit_image_and_tensors_work():
    rng = np.random.default_rng(0)
    target = ndimage.gaussian_filter(rng.normal(50, 80, (3, 40, 40)), 2) * 3
    output = target + rng.normal(0, 20, target.shape)
    errors = paired_errors(torch.from_numpy(output)[:, None], torch.from_numpy(target)[:, None],
                           np.ones((40, 40), bool), WIDTH, LOW)
    for index in range(3):
        reference = structural_similarity(output[index] - LOW, target[index] - LOW, gaussian_weights=True,
                                          sigma=1.5, use_sample_covariance=False, data_range=WIDTH)
        assert errors["ssim"][index] == pytest.approx(reference, abs=1e-4)
    assert errors["mae"] == pytest.approx(np.abs(output - target).mean((1, 2)))


def test_identical_images_cap_psnr_and_an_empty_mask_gives_nan():
    image = np.full((1, 16, 16), 40.0)
    assert paired_errors(image, image, np.ones((16, 16), bool), WIDTH, LOW)["psnr"][0] == 100.0
    empty = paired_errors(image, image + 1, np.zeros((16, 16), bool), WIDTH, LOW)
    assert all(np.isnan(empty[key][0]) for key in ("mae", "psnr", "ssim"))
    with pytest.raises(DataError, match="does not fit"):
        paired_errors(image, image, np.ones((8, 8), bool), WIDTH, LOW)


def test_white_noise_has_a_flat_nps_whose_integral_is_the_variance():
    rng = np.random.default_rng(1)
    sigma, spacing = 12.0, (0.5, 0.5)
    images = rng.normal(40.0, sigma, (40, 64, 64))
    spectrum = noise_power_spectrum(images, 32, [(0, 0), (32, 32)], spacing)
    assert spectrum.rois == 80 and spectrum.nps.shape == (32, 32)
    assert spectrum.variance == pytest.approx(sigma**2, rel=0.03)
    expected = sigma**2 * spacing[0] * spacing[1]  # flat level of white noise: sigma^2 dx dy
    inner = spectrum.radial[1:-1]  # bin 0 is the (removed) mean
    assert np.abs(inner / expected - 1).max() < 0.15
    assert spectrum.frequencies[1] == pytest.approx(1 / (32 * 0.5))
    assert noise_std(images, np.ones((64, 64), bool)) == pytest.approx(np.full(40, sigma), rel=0.05)


def test_blurred_noise_moves_the_nps_to_lower_frequencies():
    rng = np.random.default_rng(2)
    noise = rng.normal(0, 10, (20, 64, 64))
    blurred = ndimage.gaussian_filter(noise, (0, 1.2, 1.2))
    corners = [(0, 0), (0, 32), (32, 0), (32, 32)]
    white = noise_power_spectrum(noise, 32, corners)
    smooth = noise_power_spectrum(blurred, 32, corners)
    assert smooth.mean_frequency < 0.6 * white.mean_frequency
    assert smooth.peak_frequency < white.peak_frequency
    assert nps_distance(white, white)["distance"] == pytest.approx(0.0)
    far = nps_distance(smooth, white)
    assert far["distance"] > 0.5 and far["mean_frequency_ratio"] < 0.6 and far["variance_ratio"] < 0.2
    # A louder copy of the same noise has the same shape: distance 0, variance ratio 4.
    louder = nps_distance(noise_power_spectrum(2 * noise, 32, corners), white)
    assert louder["distance"] == pytest.approx(0.0, abs=1e-9) and louder["variance_ratio"] == pytest.approx(4.0)


def test_nps_positions_per_image_and_errors():
    images = np.random.default_rng(3).normal(size=(3, 20, 20))
    per_image = noise_power_spectrum(images, 8, [(0, 2, 3), (2, 10, 10)])
    assert per_image.rois == 2
    with pytest.raises(DataError, match="outside"):
        noise_power_spectrum(images, 8, [(0, 15, 0)])
    with pytest.raises(DataError, match="different frequency bins"):
        nps_distance(per_image, noise_power_spectrum(images, 16, [(0, 0)]))


def test_cnr_of_a_synthetic_disc_equals_its_design():
    rng = np.random.default_rng(4)
    rows, columns = np.mgrid[:96, :96]
    disc = (rows - 48) ** 2 + (columns - 48) ** 2 < 10**2
    ring = ((rows - 48) ** 2 + (columns - 48) ** 2 >= 14**2) & ((rows - 48) ** 2 + (columns - 48) ** 2 < 30**2)
    contrast, sigma = 30.0, 10.0
    images = 60.0 + rng.normal(0, sigma, (16, 96, 96))
    images[:, disc] -= contrast  # a hypodense lesion, designed CNR 3
    values = lesion_cnr(images, disc, ring)
    assert values.mean() == pytest.approx(contrast / sigma, rel=0.05)
    flat = np.where(disc, 50.0, 60.0)[None] + 0 * images[:1]
    assert np.isnan(lesion_cnr(flat, disc, ring)[0])  # no background noise: undefined
    assert np.isnan(lesion_cnr(images[:1], np.zeros_like(disc), ring)[0])


def test_flattest_roi_picks_the_uniform_square_inside_the_region():
    rng = np.random.default_rng(5)
    image = rng.normal(0, 30, (48, 48))
    image[20:40, 4:24] = rng.normal(0, 2, (20, 20))  # the quiet patch
    corner = flattest_roi(image, np.ones((48, 48), bool), 12)
    assert 20 <= corner[0] <= 28 and 4 <= corner[1] <= 12
    region = np.zeros((48, 48), bool)
    region[:16, 30:] = True  # excludes the quiet patch
    corner = flattest_roi(image, region, 12)
    assert square_mask((48, 48), corner, 12)[region].sum() == 144  # inside the region
    assert flattest_roi(image, region, 20) is None


def test_grouped_interval_resamples_subjects():
    values = np.array([1.0, 1.0, 1.0, 3.0, 3.0, 3.0, np.nan])
    groups = ["a", "a", "a", "b", "b", "b", "b"]
    summary = grouped_interval(values, groups)
    assert summary["mean"] == pytest.approx(2.0) and summary["n"] == 6 and summary["subjects"] == 2
    assert summary["unit"] == "subject" and summary["ci_low"] == pytest.approx(1.0)
    assert summary["ci_high"] == pytest.approx(3.0)  # two subjects: all-a and all-b resamples are possible
    within = grouped_interval([1.0, 2.0, 3.0, 4.0], ["a"] * 4)
    assert within["unit"] == "image" and within["ci_low"] < 2.5 < within["ci_high"]
    assert grouped_interval([5.0], ["a"])["ci_low"] is None
