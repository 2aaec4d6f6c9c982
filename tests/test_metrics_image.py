"""Image-quality measures: SSIM vs scikit-image, MS-SSIM scales, PSNR, SNR/contrast/CNR, intensity, diversity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from medgan.data.intensity import ct_window
from medgan.errors import DataError
from medgan.metrics.diversity import diversity
from medgan.metrics.image import (cnr, compare_distributions, ms_ssim, ms_ssim_weights, psnr, rms_contrast, snr, ssim,
                                  random_pair_similarity)
from medgan.metrics.intensity import intensity_fidelity


pytestmark = pytest.mark.usefixtures("one_thread")


def smooth_images(count: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    """Blobby test images in [-1, 1] with a -1 background border."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 1, 8, 8, generator=generator) * 2 - 1
    images = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    images = images.clamp(-1, 1)
    images[..., :6, :] = -1.0
    images[..., -6:, :] = -1.0
    return images


def test_ssim_matches_scikit_image():
    first = smooth_images(4, seed=1)
    second = (first + 0.2 * torch.randn(first.shape, generator=torch.Generator().manual_seed(2))).clamp(-1, 1)
    ours = ssim(first, second)
    for index in range(4):
        reference = structural_similarity(
            ((first[index, 0] + 1) / 2).double().numpy(), ((second[index, 0] + 1) / 2).double().numpy(),
            gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)
        assert float(ours[index]) == pytest.approx(reference, abs=1e-3)
    assert torch.allclose(ssim(first, first), torch.ones(4), atol=1e-5)


def test_ms_ssim_scales_follow_image_size():
    assert len(ms_ssim_weights(64)) == 3 and len(ms_ssim_weights(32)) == 2
    assert len(ms_ssim_weights(128)) == 4 and len(ms_ssim_weights(256)) == 5
    assert sum(ms_ssim_weights(64)) == pytest.approx(1.0)
    images = smooth_images(3)
    noisy = (images + 0.3 * torch.randn(images.shape, generator=torch.Generator().manual_seed(3))).clamp(-1, 1)
    assert torch.allclose(ms_ssim(images, images), torch.ones(3), atol=1e-5)
    assert (ms_ssim(images, noisy) < 0.95).all()
    for size in (32, 128):
        small = smooth_images(2, size=size)
        assert torch.allclose(ms_ssim(small, small), torch.ones(2), atol=1e-5)
    with pytest.raises(DataError, match="too small"):
        ms_ssim(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))


def test_psnr_matches_formula_and_is_capped_for_identical_images():
    first = smooth_images(2)
    second = (first + 0.1).clamp(-1, 1)
    mse = (((first + 1) / 2 - (second + 1) / 2) ** 2).mean((1, 2, 3)).double()
    assert torch.allclose(psnr(first, second).double(), 10 * torch.log10(1 / mse), atol=1e-3)
    assert torch.equal(psnr(first, first), torch.full((2,), 100.0))


@pytest.mark.parametrize(
    "first, second, message",
    [
        (torch.zeros(2, 1, 32, 32), torch.zeros(3, 1, 32, 32), "same shape"),
        (torch.zeros(2, 3, 32, 32), torch.zeros(2, 3, 32, 32), "1 channel"),
        (torch.zeros(0, 1, 32, 32), torch.zeros(0, 1, 32, 32), "empty"),
        (torch.zeros(2, 32, 32), torch.zeros(2, 32, 32), r"\[N, 1, H, W\]"),
    ],
)
def test_paired_measures_reject_bad_inputs(first, second, message):
    with pytest.raises(DataError, match=message):
        ssim(first, second)


def test_snr_contrast_and_cnr_on_constructed_images():
    image = torch.full((1, 1, 32, 32), -1.0)
    image[..., 8:24, 8:24] = 0.0  # foreground at display value 0.5
    image[..., 8:24, 8:16] = 0.2  # and 0.6: foreground mean 0.55, std 0.05
    assert float(snr(image)) == pytest.approx(0.55 / 0.05, rel=1e-4)
    display = ((image + 1) / 2).flatten()
    assert float(rms_contrast(image)) == pytest.approx(float(display.std(unbiased=False)), rel=1e-6)
    assert float(cnr(image)) == pytest.approx(0.55 / 0.05, rel=1e-4)  # background has no variance
    blank = torch.full((1, 1, 32, 32), -1.0)
    assert torch.isnan(snr(blank)).all()
    with pytest.raises(DataError, match="mask shape"):
        snr(image, torch.ones(1, 1, 16, 16, dtype=torch.bool))


def test_random_pair_similarity_compares_pair_distributions():
    real = smooth_images(30, size=32, seed=4)
    same_kind = smooth_images(30, size=32, seed=5)
    noise = torch.rand(30, 1, 32, 32, generator=torch.Generator().manual_seed(6)) * 2 - 1
    matched = random_pair_similarity(real, same_kind, pairs=40)
    mismatched = random_pair_similarity(real, noise, pairs=40)
    assert abs(matched["ssim"]["gap"]) < 0.05
    assert mismatched["ssim"]["gap"] < -0.1
    assert set(matched) == {"ssim", "ms_ssim", "psnr"}


def test_compare_distributions_reports_wasserstein():
    result = compare_distributions(np.array([0.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0, np.nan]))
    assert result["wasserstein"] == pytest.approx(1.0)
    assert result["synthetic"]["count"] == 3


def test_intensity_fidelity_in_hounsfield_units():
    mapping = ct_window(40.0, 400.0)  # -160 .. 240 HU
    real = smooth_images(10, seed=7).clamp(-0.8, 0.8)
    shifted = real + 2 * 20.0 / 400.0  # +20 HU inside the window
    result = intensity_fidelity(real, shifted, mapping)
    assert result["unit"] == "HU"
    assert result["wasserstein"] == pytest.approx(20.0, abs=2.0)
    assert result["synthetic_foreground"]["mean"] - result["real_foreground"]["mean"] == pytest.approx(20.0, abs=2.0)
    assert intensity_fidelity(real, real, mapping)["wasserstein"] == pytest.approx(0.0, abs=1e-9)
    assert len(result["histogram"]["centres"]) == 400


def test_diversity_flags_collapse_but_not_real_data():
    real = smooth_images(60, size=32, seed=8)
    other = smooth_images(60, size=32, seed=9)
    collapsed = real[:1].repeat(60, 1, 1, 1)
    few_modes = real[:3].repeat(20, 1, 1, 1)
    assert not diversity(real, other, pairs=80)["collapse"]
    result = diversity(real, collapsed, pairs=80)
    assert result["collapse"] and result["relative_diversity"] < 0.05
    assert result["synthetic_ms_ssim"]["mean"] == pytest.approx(1.0, abs=1e-4)
    partial = diversity(real, few_modes, pairs=80)
    assert partial["collapse"] and partial["duplicate_excess"] > 0.2
