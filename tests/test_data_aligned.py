"""Pixel-aligned slicing of co-registered domains (``aligned_slices_from_volumes``): one geometry, own intensities."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from medgan.config import DataConfig
from medgan.data import Domain, aligned_slices_from_volumes, read_volume
from medgan.data.intensity import ct_window
from medgan.errors import ConfigError, DataError

LEVEL, WIDTH = 40.0, 400.0  # the input domain's CT window
CONFIG = DataConfig(resolution=32, fit="pad", min_foreground=0.05, modality="ct", window_level=LEVEL, window_width=WIDTH)


def _shifted_squares(shape=(32, 32, 6)) -> tuple[np.ndarray, np.ndarray]:
    """A CT volume (air, with an 8 x 8 textured square that moves from slice to slice; the end slices are empty)
    and its label map (1 square, 2 its left half)."""
    rng = np.random.default_rng(0)
    image = np.full(shape, -1000.0, dtype=np.float32)
    labels = np.zeros(shape, dtype=np.int16)
    for z in range(1, shape[2] - 1):
        x, y = 4 + 3 * z, 6 + 2 * z
        image[x : x + 8, y : y + 8, z] = rng.uniform(-100.0, 180.0, (8, 8))
        labels[x : x + 8, y : y + 8, z] = 1
        labels[x : x + 4, y : y + 8, z] = 2
    return image, labels


@pytest.fixture
def pair(tmp_path, write_nifti) -> dict[str, Path]:
    """input.nii.gz, target.nii.gz (= 2 * input + 1) and mask.nii.gz on one 1 mm grid."""
    image, labels = _shifted_squares()
    return {
        "input": write_nifti(tmp_path / "input.nii.gz", image),
        "target": write_nifti(tmp_path / "target.nii.gz", 2.0 * image + 1.0),
        "mask": write_nifti(tmp_path / "mask.nii.gz", labels),
    }


def _domains(config: DataConfig) -> dict[str, Domain]:
    # The target's window is the input's window pushed through x -> 2x + 1, so both map to the same unit values.
    target = replace(config, window_level=2 * LEVEL + 1, window_width=2 * WIDTH)
    return {"input": Domain(), "target": Domain(target), "mask": Domain(label_map=True)}


def _group(paths: dict[str, Path]) -> dict:
    return {name: read_volume(path) for name, path in paths.items()}


def test_domains_share_kept_slices_crop_box_and_fit(pair):
    slices = aligned_slices_from_volumes([_group(pair)], CONFIG, _domains(CONFIG))
    assert len(slices) == 4 and [source.rsplit("#")[1] for source in slices.sources] == ["1", "2", "3", "4"]
    assert slices.sources[0].startswith(str(pair["input"])) and set(slices.aligned) == {"target", "mask"}
    target, mask = slices.aligned["target"], slices.aligned["mask"]
    assert target.shape == mask.shape == slices.images.shape == (4, 1, 32, 32)
    # target = 2 * input + 1 stays exactly related: same pixels, each through its own window.
    assert torch.allclose(target, slices.images, atol=1e-6)
    assert slices.mapping == ct_window(LEVEL, WIDTH) and slices.mappings == {"target": ct_window(81.0, 800.0)}
    physical = slices.mapping.to_physical(slices.images)
    assert torch.allclose(slices.mappings["target"].to_physical(target), 2 * physical + 1, atol=1e-3)
    # The mask keeps its label values and covers exactly the square's pixels in every tile.
    assert set(mask.unique().tolist()) == {0.0, 1.0, 2.0}
    assert torch.equal(mask > 0, slices.images > -1.0)
    # One crop box for the volume: the square (8 px) moves inside one padded box, so it sits at other places.
    assert not torch.equal(mask[0] > 0, mask[3] > 0)


def test_crop_box_is_the_union_over_domains(tmp_path, write_nifti):
    image, _ = _shifted_squares()
    other = image.copy()
    other[26:30, 26:30, 1:5] = 50.0  # foreground only the second domain has, outside the input's box
    paths = {"input": write_nifti(tmp_path / "a.nii.gz", image), "other": write_nifti(tmp_path / "b.nii.gz", other)}
    config = replace(CONFIG, resolution=64)
    slices = aligned_slices_from_volumes([_group(paths)], config, {"input": Domain(), "other": Domain()})
    extra = (slices.aligned["other"] > -1.0).sum((1, 2, 3)) - (slices.images > -1.0).sum((1, 2, 3))
    assert extra.tolist() == [16] * 4  # the 4 x 4 block survives the crop in every slice
    alone = aligned_slices_from_volumes([{"input": read_volume(paths["input"])}], config, {"input": Domain()})
    assert torch.equal((alone.images > -1.0).sum((1, 2, 3)), (slices.images > -1.0).sum((1, 2, 3)))
    # The input alone is cropped to its own, smaller box: padded to 64 px, its square lands elsewhere.
    assert not torch.equal(alone.images, slices.images)


def test_resized_domains_stay_aligned_and_masks_stay_labels(pair):
    config = replace(CONFIG, fit="resize", resolution=48)
    domains = _domains(config) | {"mr": Domain(replace(config, modality="mri"))}
    group = _group(pair) | {"mr": read_volume(pair["target"])}
    slices = aligned_slices_from_volumes([group, group], config, domains, labels=[0, 1], class_names=("a", "b"))
    assert len(slices) == 8 and slices.labels.tolist() == [0] * 4 + [1] * 4
    # Bilinear resampling is linear, so the exact relation survives it; nearest-neighbour adds no label value.
    assert torch.allclose(slices.aligned["target"], slices.images, atol=1e-5)
    mask = slices.aligned["mask"]
    assert set(mask.unique().tolist()) == {0.0, 1.0, 2.0}
    square = slices.images > -0.5
    overlap = (square & (mask > 0)).sum() / (square | (mask > 0)).sum()
    assert overlap > 0.8
    assert slices.mappings["mr"].kind == "percentile" and set(slices.mappings) == {"target", "mr"}
    subset = slices.subset([5, 0])
    assert torch.equal(subset.aligned["mask"], mask[[5, 0]]) and subset.sources == [slices.sources[5], slices.sources[0]]


def test_grid_mismatch_names_both_files_in_one_line(tmp_path, write_nifti, pair):
    image, labels = _shifted_squares((32, 32, 5))
    short = write_nifti(tmp_path / "short-mask.nii.gz", labels)
    group = _group(pair) | {"mask": read_volume(short)}
    with pytest.raises(DataError) as error:
        aligned_slices_from_volumes([group], CONFIG, _domains(CONFIG))
    message = str(error.value)
    assert "\n" not in message and str(short) in message and str(pair["input"]) in message
    assert "(32, 32, 5)" in message and "(32, 32, 6)" in message
    coarse = write_nifti(tmp_path / "coarse.nii.gz", 2.0 * _shifted_squares()[0] + 1.0, np.diag([1.0, 1.0, 2.5, 1.0]))
    with pytest.raises(DataError, match=r"coarse\.nii\.gz: shape .* spacing 1 x 1 x 2\.5 mm differs from .*input\.nii\.gz"):
        aligned_slices_from_volumes([_group(pair) | {"target": read_volume(coarse)}], CONFIG, _domains(CONFIG))


def test_bad_domains_are_refused(pair):
    with pytest.raises(ConfigError, match="primary domain 'mask' is a label map"):
        aligned_slices_from_volumes([_group(pair)], CONFIG, {"mask": Domain(label_map=True), "input": Domain()})
    with pytest.raises(DataError, match="aligned group has domains"):
        aligned_slices_from_volumes([{"input": read_volume(pair["input"])}], CONFIG, _domains(CONFIG))
