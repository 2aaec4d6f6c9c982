"""Slicing (orientation, foreground filter, fitting) and the batched classic augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medgan.data.readers import Volume
from medgan.data.slicing import (
    crop_to_box,
    crop_to_foreground,
    fit_slices,
    foreground_box,
    foreground_fraction,
    in_plane_spacing,
    to_canonical,
    upright_slices,
)
from medgan.data.transforms import classic_augment


def marked_ras_volume() -> np.ndarray:
    """(X=6, Y=8, Z=4) zeros with a marker at the right-anterior corner of axial slice 2."""
    array = np.zeros((6, 8, 4), dtype=np.float32)
    array[5, 7, 2] = 1.0  # x max = patient right, y max = anterior
    return array


def test_axial_slices_are_nose_up_radiological():
    slices = upright_slices(marked_ras_volume(), axis=2)
    assert slices.shape == (4, 8, 6)  # [S, H = Y, W = X]
    assert slices[2, 0, 0] == 1.0  # anterior at the top, patient right on the viewer's left
    assert slices.sum() == 1.0


def test_reorientation_makes_stored_orientation_irrelevant():
    ras = marked_ras_volume()
    lps = ras[::-1, ::-1, :].copy()  # the same anatomy stored left-posterior first
    affine = np.diag([-2.0, -3.0, 1.5, 1.0])
    affine[:3, 3] = [10.0, 21.0, 0.0]
    canonical = to_canonical(Volume(lps, affine, (2.0, 3.0, 1.5), None, "x", "x"))
    np.testing.assert_array_equal(canonical.array, ras)
    assert canonical.spacing == (2.0, 3.0, 1.5)
    np.testing.assert_allclose(canonical.affine @ [0, 0, 0, 1], affine @ [5, 7, 0, 1])


def test_axis_permuted_volume_is_reordered_to_ras():
    ras = marked_ras_volume()
    stored = np.transpose(ras, (2, 0, 1)).copy()  # stored as (Z, X, Y)
    affine = np.zeros((4, 4))
    affine[0, 1], affine[1, 2], affine[2, 0], affine[3, 3] = 1.0, 1.0, 2.5, 1.0
    canonical = to_canonical(Volume(stored, affine, (2.5, 1.0, 1.0), None, "x", "x"))
    np.testing.assert_array_equal(canonical.array, ras)
    assert canonical.spacing == (1.0, 1.0, 2.5)


def test_in_plane_spacing_follows_the_displayed_axes():
    assert in_plane_spacing((0.7, 0.9, 2.5), axis=2) == (0.9, 0.7)  # rows = Y, columns = X
    assert in_plane_spacing((0.7, 0.9, 2.5), axis=0) == (2.5, 0.9)  # rows = Z, columns = Y
    assert in_plane_spacing((0.5, 0.6), axis=2) == (0.5, 0.6)


def test_foreground_fraction_counts_pixels_above_minus_point_nine():
    slices = -np.ones((3, 4, 5), dtype=np.float32)
    slices[1, :2, :] = 0.0  # 10 of 20 pixels
    slices[2, 0, 0] = -0.85  # 1 of 20
    slices[2, 0, 1] = -0.95  # below the threshold
    np.testing.assert_allclose(foreground_fraction(slices), [0.0, 0.5, 0.05])


@pytest.mark.parametrize("resolution", [32, 64, 128, 256])
@pytest.mark.parametrize("mode", ["resize", "crop", "pad"])
def test_fit_modes_give_the_resolution(resolution, mode):
    slices = np.full((2, 50, 30), 0.5, dtype=np.float32)  # 50 x 60 mm at (1, 2) mm per pixel
    tiles, spacing = fit_slices(slices, (1.0, 2.0), resolution, mode)
    assert tiles.shape == (2, 1, resolution, resolution) and tiles.dtype == torch.float32
    assert tiles.min() >= -1 and tiles.max() <= 1
    expected = {"resize": 60 / resolution, "crop": 50 / resolution, "pad": 1.0}[mode]
    assert spacing == pytest.approx((expected, expected))


def test_resize_pads_the_short_side_with_background_and_keeps_aspect():
    slices = np.full((1, 20, 40), 1.0, dtype=np.float32)
    tiles, spacing = fit_slices(slices, (1.0, 1.0), 32, "resize")
    column = tiles[0, 0, :, 16]
    inside = torch.isclose(column, torch.tensor(1.0), atol=1e-5)
    assert inside.sum() == 16 and (column == -1.0).sum() == 16  # 40 -> 32 wide, 20 -> 16 high
    assert inside[8:24].all()  # centred
    assert spacing == (1.25, 1.25)


def test_pad_mode_keeps_pixels_untouched():
    slices = np.random.default_rng(0).uniform(-1, 1, (1, 10, 12)).astype(np.float32)
    tiles, _ = fit_slices(slices, (1.0, 1.0), 32, "pad")
    np.testing.assert_array_equal(tiles[0, 0, 11:21, 10:22].numpy(), slices[0])
    assert tiles[0, 0, 0, 0] == -1.0


def test_downsampling_is_antialiased():
    stripes = np.tile(np.array([1.0, -1.0], dtype=np.float32), (1, 128, 64))  # period 2 pixels
    tiles, _ = fit_slices(stripes, (1.0, 1.0), 32, "resize")
    assert tiles.abs().max() < 0.1  # averaged to ~0 instead of aliasing into stripes


def test_label_maps_are_resampled_nearest_and_padded_with_zero():
    labels = np.zeros((1, 20, 30), dtype=np.float32)
    labels[0, 5:15, 10:20], labels[0, 8:12, 12:16] = 1.0, 2.0
    tiles, spacing = fit_slices(labels, (1.0, 1.0), 16, "resize", label_map=True)
    assert set(tiles.unique().tolist()) == {0.0, 1.0, 2.0} and spacing == (30 / 16, 30 / 16)
    assert tiles[0, 0, 0, 0] == 0.0 and (tiles == 1.0).sum() > (tiles == 2.0).sum() > 0


def test_foreground_crop_matches_monai_crop_foreground():
    from monai.transforms import CropForeground

    rng = np.random.default_rng(0)
    for _ in range(50):
        slices = np.full((2, int(rng.integers(3, 30)), int(rng.integers(3, 30))), -1.0, dtype=np.float32)
        top, left = rng.integers(0, slices.shape[1]), rng.integers(0, slices.shape[2])
        slices[int(rng.integers(0, 2)), top : top + rng.integers(1, 12), left : left + rng.integers(1, 12)] = 0.5
        rows, columns = np.nonzero((slices > -0.9).any(axis=0))
        border = int(round(0.2 * max(np.ptp(rows) + 1, np.ptp(columns) + 1)))
        expected = CropForeground(select_fn=lambda x: x > -0.9, margin=border, allow_smaller=True)(slices)
        np.testing.assert_array_equal(crop_to_foreground(slices, margin=0.2), np.asarray(expected))
    empty = np.full((1, 4, 4), -1.0, dtype=np.float32)
    assert foreground_box(empty > -0.9) is None and crop_to_box(empty, None) is empty


# --------------------------------------------------------------------------------------------------------
# classic augmentation


def test_classic_augment_zero_ranges_is_identity():
    images = torch.rand(3, 1, 16, 16) * 2 - 1
    out = classic_augment(images, flip=False, rotate_degrees=0.0, scale=0.0)
    assert torch.equal(out, images)


def test_classic_augment_flip_is_exact_and_reproducible():
    images = torch.rand(8, 1, 16, 16) * 2 - 1
    out = classic_augment(images, flip=True, rotate_degrees=0.0, scale=0.0, generator=torch.Generator().manual_seed(3))
    mirrored = [torch.equal(o, i.flip(-1)) for o, i in zip(out, images)]
    kept = [torch.equal(o, i) for o, i in zip(out, images)]
    assert all(m or k for m, k in zip(mirrored, kept)) and any(mirrored) and any(kept)
    generator = torch.Generator().manual_seed(3)
    again = classic_augment(images, flip=True, rotate_degrees=0.0, scale=0.0, generator=generator)
    assert torch.equal(out, again)


def test_classic_augment_preserves_shape_and_fills_with_background():
    generator = torch.Generator().manual_seed(0)
    ones = torch.ones(8, 2, 16, 16)
    out = classic_augment(ones, flip=True, rotate_degrees=45.0, scale=0.2, generator=generator)
    assert out.shape == ones.shape and out.min() >= -1 - 1e-6 and out.max() <= 1 + 1e-6
    assert (out[:, :, 0, 0] == -1.0).any()  # a rotated corner comes from outside the image
    background = classic_augment(-torch.ones(4, 1, 16, 16), flip=True, rotate_degrees=30.0, scale=0.1)
    assert torch.equal(background, -torch.ones(4, 1, 16, 16))


def test_upright_view_is_upright_slices_without_the_copy():
    from medgan.data.slicing import upright_view

    volume = np.arange(6 * 8 * 4, dtype=np.float32).reshape(6, 8, 4)
    for axis in range(3):
        view = upright_view(volume, axis)
        assert np.shares_memory(view, volume)
        np.testing.assert_array_equal(view, upright_slices(volume, axis))
    written = np.zeros_like(volume)
    upright_view(written, 2)[:] = upright_slices(volume, 2)  # slices written through the view land in place
    np.testing.assert_array_equal(written, volume)
