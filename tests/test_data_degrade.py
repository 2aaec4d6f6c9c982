"""Degradations (``medgan.data.degrade``): parsing, low-dose CT physics, downsampling, inpainting holes, label maps."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy import ndimage

from medgan.config import DataConfig
from medgan.data import load_slices, read_volume
from medgan.data.degrade import (
    INPAINT_COVERAGE,
    INPAINT_MAX_COVERAGE,
    SlicePiece,
    degrade_volume,
    downsample,
    hole_mask,
    inpaint,
    lowdose,
    parse_degradation,
)
from medgan.data.paired_sources import SLAB_GAP
from medgan.errors import ConfigError, DataError
from tests.helpers import write_tiny_brain


def _disc(size: int = 128, radius: float = 45.0, inside: float = 0.0, outside: float = -1000.0) -> np.ndarray:
    rows, columns = np.ogrid[:size, :size]
    centre = (size - 1) / 2
    return np.where((rows - centre) ** 2 + (columns - centre) ** 2 < radius**2, inside, outside).astype(np.float32)


def _piece(image: np.ndarray, seed: int = 0, spacing=(1.0, 1.0), background: float | None = None) -> SlicePiece:
    foreground = image > image.min() + 0.05 * (image.max() - image.min())
    low = float(image.min()) if background is None else background
    return SlicePiece(image, spacing, foreground, low, np.random.default_rng(seed))


# --------------------------------------------------------------------------------------------------------
# parsing


@pytest.mark.parametrize("text, name, arguments, normalized", [
    ("lowdose:0.25", "lowdose", {"fraction": 0.25}, "lowdose:0.25"),
    (" lowdose:1 ", "lowdose", {"fraction": 1.0}, "lowdose:1"),
    ("downsample:4", "downsample", {"factor": 4.0}, "downsample:4"),
    ("downsample:2,blur=1.5,noise=3", "downsample", {"factor": 2.0, "blur": 1.5, "noise": 3.0},
     "downsample:2,blur=1.5,noise=3"),
    ("inpaint", "inpaint", {}, "inpaint"),
    ("MASK", "mask", {}, "mask"),
])
def test_parse_valid_forms(text, name, arguments, normalized):
    degradation = parse_degradation(text)
    assert (degradation.name, degradation.arguments, degradation.text) == (name, arguments, normalized)


@pytest.mark.parametrize("text", ["lowdose", "lowdose:0", "lowdose:1.5", "lowdose:abc", "downsample", "downsample:1",
                                  "downsample:2.5", "downsample:4,blur=-1", "downsample:4,sharpen=2",
                                  "downsample:4,blur=1,blur=2", "inpaint:0.2", "mask:3", "superres:4", ""])
def test_parse_refuses_bad_forms_naming_the_key_and_the_valid_forms(text):
    with pytest.raises(ConfigError) as caught:
        parse_degradation(text)
    message = str(caught.value)
    assert "'data.degrade'" in message and "lowdose:F" in message and "downsample:N" in message
    assert "\n" not in message


# --------------------------------------------------------------------------------------------------------
# lowdose


def _noise(image: np.ndarray, fraction: float, region: np.ndarray, spacing=(1.0, 1.0)) -> float:
    """Photon-noise std in ``region``: two independent scans differ by sqrt(2) times the noise (the
    reconstruction's own deterministic error cancels)."""
    first, second = (lowdose(_piece(image, seed, spacing), fraction)["input"] for seed in (1, 2))
    return float((first - second)[region].std() / np.sqrt(2))


def test_lowdose_noise_scales_as_one_over_sqrt_dose():
    image = _disc()  # a water disc (0 HU) in air
    rows, columns = np.ogrid[:128, :128]
    inner = (rows - 63.5) ** 2 + (columns - 63.5) ** 2 < 30**2
    full, quarter = _noise(image, 1.0, inner), _noise(image, 0.25, inner)
    assert full > 1.0  # a real noise level, not an identity
    assert quarter / full == pytest.approx(2.0, abs=0.25)
    scan = lowdose(_piece(image, 3), 0.25)["input"]
    assert abs(float(scan[inner].mean())) < 3.0 and scan.shape == image.shape and scan.dtype == np.float32
    assert np.allclose(scan[:8, :8], -1000.0)  # outside the reconstruction circle: air


def test_lowdose_keeps_shape_and_scans_content_outside_the_inscribed_circle():
    image = np.full((60, 40), 40.0, dtype=np.float32)  # non-square, soft tissue up to every corner
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # skimage warns when radon is given content outside its circle
        scan = lowdose(_piece(image, 0, (0.8, 0.8), -1000.0), 0.5)["input"]
    assert scan.shape == image.shape
    assert abs(float(scan[10:50, 10:30].mean()) - 40.0) < 10.0  # the corners are inside the reconstruction
    assert float(scan[:3, :3].mean()) > -500.0


def test_lowdose_on_mri_is_refused_in_one_line(tmp_path):
    path = write_tiny_brain(tmp_path / "brain.nii.gz")  # MR intensities, no air in HU
    with pytest.raises(DataError) as caught:
        load_slices(DataConfig(source=str(path), degrade="lowdose:0.25", resolution=32), progress=False)
    message = str(caught.value)
    assert message.startswith(str(path)) and "lowdose needs CT in HU" in message and "is MR" in message
    assert "\n" not in message


def test_lowdose_through_the_pipeline_keeps_the_ct_window(tmp_path, write_nifti):
    volume = np.stack([_disc(64, 25.0, 40.0)] * 3, axis=-1)
    path = write_nifti(tmp_path / "ct.nii.gz", volume, np.diag([1.5, 1.5, 3.0, 1.0]))
    config = DataConfig(source=str(path), degrade="lowdose:0.5", resolution=64, fit="pad", crop_foreground=False,
                        window_level=40.0, window_width=400.0)
    pairs = load_slices(config, progress=False)
    assert pairs.mappings["input"] == pairs.mapping and pairs.degradation == "lowdose:0.5"
    difference = pairs.aligned["input"] - pairs.images
    inner = difference[..., 16:48, 16:48]  # inside the disc, away from its edge (where FBP blurs)
    assert 0.01 < float(inner.std()) < 0.1  # photon noise of a few HU (a unit is 200 HU here)
    again = load_slices(config, progress=False)
    assert torch.equal(again.aligned["input"], pairs.aligned["input"])  # seeded per subject and slice
    assert not torch.equal(pairs.aligned["input"][0], pairs.aligned["input"][1])  # each slice its own noise


# --------------------------------------------------------------------------------------------------------
# downsample


def _high_frequency_power(image: np.ndarray, cutoff: float) -> float:
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2(image - image.mean()))) ** 2
    frequencies = np.fft.fftshift(np.fft.fftfreq(image.shape[0]))
    radius = np.hypot(*np.meshgrid(frequencies, frequencies, indexing="ij"))
    return float(spectrum[radius > cutoff].sum())


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_downsample_keeps_alignment_and_removes_high_frequencies(factor):
    rng = np.random.default_rng(0)
    texture = rng.normal(0.0, 5.0, (96, 96)).astype(np.float32) * (_disc(96, 30.0, 1, 0) > 0)
    image = _disc(96, 30.0, 100.0, 0.0) + texture  # a textured disc: power at every frequency
    result = downsample(_piece(image), float(factor))["input"]
    assert result.shape == image.shape
    assert np.allclose(ndimage.center_of_mass(result), ndimage.center_of_mass(image), atol=0.05)
    cutoff = 0.5 / factor  # above the low-resolution grid's Nyquist frequency
    assert _high_frequency_power(result, cutoff) < 0.05 * _high_frequency_power(image, cutoff)
    assert result.min() >= image.min() - 1e-3 and result.max() <= image.max() + 1e-3  # bicubic, clipped


def test_downsample_blur_and_noise_options():
    image = _disc(64, 20.0, 100.0, 0.0)
    plain = downsample(_piece(image), 2.0)["input"]
    blurred = downsample(_piece(image), 2.0, blur=3.0)["input"]
    assert _high_frequency_power(blurred, 0.1) < _high_frequency_power(plain, 0.1)
    noisy = downsample(_piece(image, seed=5), 2.0, noise=10.0)["input"]
    assert 2.0 < float((noisy - plain).std()) < 10.0
    assert np.array_equal(noisy, downsample(_piece(image, seed=5), 2.0, noise=10.0)["input"])


def test_downsample_through_the_pipeline_keeps_a_centred_disc_centred(tmp_path, write_nifti):
    volume = np.stack([_disc(64, 16.0, 300.0, 0.0)] * 4, axis=-1)
    path = write_nifti(tmp_path / "mr.nii.gz", volume)
    config = DataConfig(source=str(path), degrade="downsample:4", resolution=64, fit="pad", crop_foreground=False)
    pairs = load_slices(config, progress=False)
    assert pairs.aligned["input"].shape == pairs.images.shape == (4, 1, 64, 64)
    for target, source in zip(pairs.images[:, 0].numpy() + 1, pairs.aligned["input"][:, 0].numpy() + 1):
        assert np.allclose(ndimage.center_of_mass(source), ndimage.center_of_mass(target), atol=0.05)


# --------------------------------------------------------------------------------------------------------
# inpaint


def test_inpaint_holes_cover_the_documented_fraction_of_the_foreground():
    foreground = _disc(96, 35.0, 1.0, 0.0) > 0
    coverages = [(hole_mask(foreground, np.random.default_rng(seed)) & foreground).sum() / foreground.sum()
                 for seed in range(60)]
    assert min(coverages) >= INPAINT_COVERAGE[0] and max(coverages) <= INPAINT_MAX_COVERAGE
    assert np.mean(coverages) == pytest.approx(np.mean(INPAINT_COVERAGE), abs=0.04)


def test_inpaint_fills_only_the_hole_with_the_background():
    image = _disc(64, 25.0, 120.0, -1000.0) + np.random.default_rng(1).normal(0, 3, (64, 64)).astype(np.float32)
    result = inpaint(_piece(image, seed=4, background=-1000.0))
    hole = result["mask"] > 0
    assert hole.any() and set(np.unique(result["mask"])) == {0.0, 1.0}
    assert np.array_equal(result["input"][~hole], image[~hole]) and np.all(result["input"][hole] == -1000.0)
    assert not np.array_equal(hole, inpaint(_piece(image, seed=5, background=-1000.0))["mask"] > 0)


def test_inpaint_tiles_hold_the_target_outside_the_hole_and_a_signed_mask(tmp_path, write_nifti):
    volume = np.stack([_disc(48, 18.0, 60.0 + 20 * k) for k in range(3)], axis=-1)
    path = write_nifti(tmp_path / "ct.nii.gz", volume)
    config = DataConfig(source=str(path), degrade="inpaint", resolution=64, modality="ct", crop_foreground=False)
    pairs = load_slices(config, progress=False)
    assert list(pairs.aligned) == ["input", "mask"] and "mask" not in pairs.mappings
    mask, source = pairs.aligned["mask"], pairs.aligned["input"]
    assert set(mask.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(source[mask < 0], pairs.images[mask < 0]) and bool((source[mask > 0] == -1).all())
    foreground = pairs.images > -0.9
    coverage = ((mask > 0) & foreground).flatten(1).sum(1) / foreground.flatten(1).sum(1)
    assert bool(((coverage > 0.03) & (coverage < 0.35)).all())


def test_degrade_volume_is_deterministic_and_skips_dropped_slices(tmp_path, write_nifti):
    volume = np.full((40, 40, 5), -1000.0, dtype=np.float32)
    volume[..., 1:4] = _disc(40, 14.0, 50.0)[..., None]
    path = write_nifti(tmp_path / "ct.nii.gz", volume)
    config = DataConfig(modality="ct", min_foreground=0.1)
    target, first = degrade_volume(read_volume(path), parse_degradation("inpaint"), config)
    _, second = degrade_volume(read_volume(path), parse_degradation("inpaint"), config)
    assert np.array_equal(first["mask"].array, second["mask"].array)
    holes = first["mask"].array.sum(axis=(0, 1))
    assert holes[0] == holes[4] == 0 and (holes[1:4] > 0).all()  # empty end slices are not degraded
    assert first["input"].array.shape == target.array.shape and first["mask"].modality is None


# --------------------------------------------------------------------------------------------------------
# mask (label maps as input) and the mni152 slab split


def test_mni152_mask_is_a_two_channel_one_hot_of_grey_and_white_matter():
    pairs = load_slices(DataConfig(source="mni152", degrade="mask", resolution=32, split="all"), progress=False)
    labels = pairs.aligned["input"]
    assert labels.shape == (len(pairs), 2, 32, 32) and pairs.mappings == {} and pairs.degradation == "mask"
    assert set(labels.unique().tolist()) == {-1.0, 1.0}
    assert int((labels > 0).sum(1).max()) == 1  # one label per pixel
    grey, white = (float((labels[:, k] > 0).float().mean()) for k in range(2))
    assert grey > 0.05 and white > 0.05
    brain = (pairs.images > -0.9).squeeze(1)
    assert float(((labels > 0).any(1) & ~brain).float().mean()) < 0.01  # tissue labels lie on the brain


def test_mni152_slab_split_is_disjoint_with_a_gap():
    config = DataConfig(source="mni152", degrade="downsample:2", resolution=32)
    sides = {split: load_slices(replace(config, split=split), progress=False) for split in ("train", "test", "all")}
    positions = {split: sorted(int(s.rpartition("#")[2]) for s in pairs.sources) for split, pairs in sides.items()}
    train, test, every = (set(positions[split]) for split in ("train", "test", "all"))
    assert train.isdisjoint(test) and train | test <= every
    assert positions["test"] == list(range(min(test), max(test) + 1))  # one contiguous slab
    assert len(test) == pytest.approx(0.2 * len(every), abs=2)
    assert min(abs(a - b) for a in train for b in test) == SLAB_GAP + 1
    ordered = positions["all"]
    assert ordered.index(min(test)) > len(ordered) / 2  # the upper half of the brain
    assert len(train) == len(every) - len(test) - 2 * SLAB_GAP
    plain = load_slices(DataConfig(source="mni152", resolution=32, split="test"), progress=False)
    assert len(plain) == len(every)  # without a degradation the brain demo is untouched


def test_sources_without_a_degradation_route_or_segmentation_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="ct-lesions"):
        load_slices(DataConfig(source="ct-lesions", degrade="inpaint"), progress=False)
    path = write_tiny_brain(tmp_path / "brain.nii.gz")
    with pytest.raises(ConfigError, match="needs segmentations"):
        load_slices(DataConfig(source=str(path), degrade="mask"), progress=False)
    with pytest.raises(ConfigError, match="data.split"):
        load_slices(DataConfig(source="mni152", degrade="inpaint", split="val"), progress=False)
