"""Readers: NIfTI / DICOM / PNG / NPY-NPZ into physical units with geometry, discovery, and every bad input."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from medgan.data.readers import discover, read_all, read_volume
from medgan.errors import DataError

PYDICOM_FILES = Path(os.path.dirname(pydicom.__file__)) / "data" / "test_files"


def rotated_affine() -> np.ndarray:
    """30 degrees about z, anisotropic 0.7 x 0.9 x 2.5 mm voxels, shifted origin."""
    angle = np.deg2rad(30)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.7, 0.9, 2.5])
    affine[:3, 3] = [-40.0, 12.5, 7.0]
    return affine


# --------------------------------------------------------------------------------------------------------
# NIfTI


def test_nifti_keeps_affine_spacing_and_values(tmp_path, write_nifti, head_volume):
    path = write_nifti(tmp_path / "sub-01_T1w.nii.gz", head_volume, rotated_affine())
    volume = read_volume(path)
    assert volume.array.dtype == np.float32 and volume.array.shape == (24, 20, 16)
    np.testing.assert_allclose(volume.affine, rotated_affine(), atol=1e-5)
    np.testing.assert_allclose(volume.spacing, (0.7, 0.9, 2.5), rtol=1e-5)
    np.testing.assert_array_equal(volume.array, head_volume)
    assert volume.modality is None and volume.subject == "sub-01_T1w" and volume.path == path


def test_nifti_applies_scl_slope_and_inter(tmp_path):
    import nibabel as nib

    image = nib.Nifti1Image(np.array([[[0, 10], [20, 30]]], dtype=np.int16), np.eye(4))
    image.header.set_slope_inter(2.0, -1024.0)
    nib.save(image, str(tmp_path / "ct.nii"))
    volume = read_volume(tmp_path / "ct.nii")
    np.testing.assert_array_equal(volume.array.ravel(), [-1024, -1004, -984, -964])


def test_truncated_nifti_is_a_data_error(tmp_path, write_nifti, head_volume):
    path = write_nifti(tmp_path / "whole.nii.gz", head_volume)
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(DataError, match="broken.nii.gz.*truncated"):
        read_volume(broken)


# --------------------------------------------------------------------------------------------------------
# DICOM


def test_dicom_series_is_sorted_by_position_and_rescaled_to_hu(tmp_path, write_dicom_series):
    stored = (np.arange(4 * 5 * 6).reshape(4, 5, 6) * 10).astype(np.int16)  # [slice, row, column]
    write_dicom_series(tmp_path / "series", stored, file_order=[2, 0, 3, 1])
    volume = read_volume(tmp_path / "series")
    hounsfield = stored * 2.0 - 1024.0
    assert volume.array.shape == (6, 5, 4)  # (column, row, slice), NIfTI voxel order
    for index in range(4):
        np.testing.assert_array_equal(volume.array[:, :, index], hounsfield[index].T)
    assert volume.spacing == pytest.approx((0.75, 0.5, 2.5))
    assert volume.modality == "CT" and volume.subject == "patient-7" and volume.path == tmp_path / "series"
    # LPS origin (-20, -30, 100) -> RAS (20, 30, 100); rows run +y LPS = -y RAS.
    np.testing.assert_allclose(volume.affine @ [1, 2, 3, 1], [20 - 0.75, 30 - 1.0, 107.5, 1])


def test_multiframe_dicom_uses_per_frame_positions_and_shared_rescale(tmp_path, write_dicom_multiframe):
    stored = (np.arange(3 * 4 * 5).reshape(3, 4, 5) * 3).astype(np.int16)
    write_dicom_multiframe(tmp_path / "enhanced.dcm", stored, frame_z=[9.0, 3.0, 6.0])
    volume = read_volume(tmp_path / "enhanced.dcm")
    hounsfield = stored * 2.0 - 1024.0
    assert volume.array.shape == (5, 4, 3) and volume.spacing == pytest.approx((0.8, 0.8, 3.0))
    for slice_index, frame in enumerate([1, 2, 0]):  # frames sorted by z: 3, 6, 9
        np.testing.assert_array_equal(volume.array[:, :, slice_index], hounsfield[frame].T)
    assert volume.affine[2, 3] == pytest.approx(3.0)


def test_pydicom_ct_small_comes_out_in_hounsfield_units():
    volume = read_volume(PYDICOM_FILES / "CT_small.dcm")
    dataset = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm")
    expected = dataset.pixel_array * float(dataset.RescaleSlope) + float(dataset.RescaleIntercept)
    np.testing.assert_array_equal(volume.array, expected.astype(np.float32))
    assert volume.modality == "CT" and volume.array.min() < -500
    assert volume.spacing == pytest.approx(tuple(float(v) for v in dataset.PixelSpacing))


def test_non_dicom_file_named_dcm(tmp_path):
    fake = tmp_path / "scan.dcm"
    fake.write_text("this is a text file, not DICOM\n" * 20)
    with pytest.raises(DataError, match="scan.dcm: not a DICOM file"):
        read_volume(fake)


def test_dicom_without_pixel_data(tmp_path, write_dicom_file):
    path = write_dicom_file(tmp_path / "report.dcm", np.ones((4, 4)))
    dataset = pydicom.dcmread(path)
    del dataset.PixelData
    dataset.save_as(path, enforce_file_format=True)
    with pytest.raises(DataError, match="report.dcm: DICOM without pixel data"):
        read_volume(path)


def test_folder_of_two_series_is_split_into_items_or_skipped(tmp_path, write_dicom_file):
    write_dicom_file(tmp_path / "a.dcm", np.arange(16).reshape(4, 4), SeriesInstanceUID="1.1")
    write_dicom_file(tmp_path / "b.dcm", np.arange(16).reshape(4, 4), SeriesInstanceUID="1.2")
    found = discover(tmp_path)
    assert found.items == [tmp_path / "a.dcm", tmp_path / "b.dcm"] and not found.skipped
    with pytest.raises(DataError, match="2 DICOM series in one folder"):
        read_volume(tmp_path)


# --------------------------------------------------------------------------------------------------------
# pictures and arrays


def test_png_16_bit_keeps_values_above_255(tmp_path):
    pixels = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    Image.fromarray(pixels).save(tmp_path / "slice.png")
    volume = read_volume(tmp_path / "slice.png")
    assert volume.array.dtype == np.float32 and volume.array.max() == 63000
    np.testing.assert_array_equal(volume.array, pixels)
    assert volume.array.ndim == 2 and volume.spacing == (1.0, 1.0)


def test_rgb_png_becomes_grey_with_a_warning(tmp_path):
    rgb = np.zeros((6, 6, 3), dtype=np.uint8)
    rgb[..., 1] = 200
    rgb[0, 1] = 0  # not constant
    Image.fromarray(rgb).save(tmp_path / "colour.png")
    with pytest.warns(UserWarning, match="converted to grey"):
        volume = read_volume(tmp_path / "colour.png")
    assert volume.array.shape == (6, 6) and volume.array[0, 0] == pytest.approx(200 * 0.587, abs=1)


def test_npz_prefers_image_key_and_npy_reads(tmp_path):
    image = np.linspace(-1000, 1000, 60, dtype=np.float64).reshape(3, 4, 5)
    np.savez(tmp_path / "case.npz", mask=np.zeros((2, 2)), image=image)
    np.save(tmp_path / "flat.npy", image[0])
    volume = read_volume(tmp_path / "case.npz")
    np.testing.assert_array_equal(volume.array, image.astype(np.float32))
    assert volume.array.dtype == np.float32 and volume.spacing == (1.0, 1.0, 1.0)
    assert read_volume(tmp_path / "flat.npy").array.shape == (4, 5)


# --------------------------------------------------------------------------------------------------------
# discovery and bad inputs


def test_missing_path():
    with pytest.raises(DataError, match="nowhere.nii: no such file"):
        read_volume("/tmp/does-not-exist/nowhere.nii")
    with pytest.raises(DataError, match="nowhere"):
        read_all("/tmp/does-not-exist/nowhere")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: empty folder"):
        read_all(tmp_path / "empty")


def test_folder_without_images_lists_why(tmp_path):
    for name in ("notes.txt", "readme.md", "table.csv"):
        (tmp_path / name).write_text("x")
    with pytest.raises(DataError, match=r"no readable images \(3 files skipped: not an image\)") as error:
        read_all(tmp_path)
    assert str(tmp_path) in str(error.value)


def test_discover_reports_skipped_files_with_reasons(tmp_path, write_nifti, head_volume):
    write_nifti(tmp_path / "a.nii.gz", head_volume)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "fake.dcm").write_text("not dicom")
    (tmp_path / ".DS_Store").write_text("ignored")
    found = discover(tmp_path)
    assert found.items == [tmp_path / "a.nii.gz"]
    reasons = sorted((p.name, reason) for p, reason in found.skipped)
    assert reasons == [("fake.dcm", "not a DICOM file"), ("notes.txt", "not an image")]


def test_nan_voxels_error_names_count_or_are_cleaned(tmp_path):
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4) + 5
    array[0, 0, :3] = np.nan
    array[1, 2, 3] = np.inf
    np.save(tmp_path / "holes.npy", array)
    with pytest.raises(DataError, match="holes.npy: 4 NaN/Inf voxels"):
        read_volume(tmp_path / "holes.npy")
    with pytest.warns(UserWarning, match="replaced 4 NaN/Inf"):
        cleaned = read_volume(tmp_path / "holes.npy", nan_policy="clean")
    assert np.isfinite(cleaned.array).all() and cleaned.array[0, 0, 0] == 8.0 and cleaned.array[1, 2, 3] == 8.0


def test_constant_image(tmp_path):
    Image.fromarray(np.full((5, 5), 7, dtype=np.uint8)).save(tmp_path / "flat.png")
    with pytest.raises(DataError, match="flat.png: constant image"):
        read_volume(tmp_path / "flat.png")


def test_mixed_2d_and_3d_inputs(tmp_path, write_nifti, head_volume):
    write_nifti(tmp_path / "a_volume.nii.gz", head_volume)
    Image.fromarray(np.arange(25, dtype=np.uint8).reshape(5, 5)).save(tmp_path / "b_picture.png")
    with pytest.raises(DataError, match="b_picture.png: mixed 2D and 3D inputs"):
        read_all(tmp_path)


def test_unsupported_file_type(tmp_path):
    (tmp_path / "scan.xyz").write_text("x")
    with pytest.raises(DataError, match="scan.xyz: unsupported file type .xyz"):
        read_volume(tmp_path / "scan.xyz")


def test_gzip_of_garbage_named_nifti(tmp_path):
    (tmp_path / "junk.nii.gz").write_bytes(gzip.compress(b"not a nifti header" * 30))
    with pytest.raises(DataError, match="junk.nii.gz: cannot read NIfTI"):
        read_volume(tmp_path / "junk.nii.gz")
