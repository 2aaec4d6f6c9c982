"""Hardening: geometry and size checks before reading. A NaN/Inf affine or voxel size is a one-line error, a
singular affine falls back to a documented default with a note, a header claiming more data than its file holds
(or more than medgan's voxel limit) fails before anything is allocated, and images smaller than the minimum slice
side are refused. Every bad input: exit 2, one stderr line naming the file, no traceback, nothing new on disk,
in ``medgan train`` and in ``medgan info``."""

import gzip
import io
import warnings
import zipfile

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from medgan.cli import main
from medgan.config import DataConfig
from medgan.data import load_slices
from medgan.data.readers import read_volume
from medgan.data.slicing import MIN_SIDE

from helpers import TINY


def listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def assert_one_line_error(code, capsys, *fragments):
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in captured.err, captured.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return captured.out


def refused_by_train_and_info(path, tmp_path, capsys, reason, *train_args):
    """``train`` and ``info`` on ``path``: exit 2, one stderr line naming it, ``reason`` in train's line and in
    info's per-file listing, nothing new on disk."""
    before = listing(tmp_path)
    code = main(["train", "--data", str(path), "--out", str(tmp_path / "run"), "--steps", "2", *TINY, *train_args])
    assert_one_line_error(code, capsys, path.name, reason)
    listed = assert_one_line_error(main(["info", str(path)]), capsys, path.name, "no image could be read")
    assert reason in listed
    assert listing(tmp_path) == before


def ball(shape=(32, 32, 12)) -> np.ndarray:
    grid = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    return np.where(sum(g**2 for g in grid) < 0.8, 400.0, 0.0).astype(np.float32) + np.arange(shape[2])


def write_nifti(path, data=None, sform=None, sform_code=0, qform_code=0, pixdim=(2.0, 2.0, 2.0), quatern=None):
    """A NIfTI whose header fields are written as given (nibabel would otherwise repair the transforms)."""
    image = nib.Nifti1Image(ball() if data is None else data, None)
    header = image.header
    header["pixdim"][1:4] = pixdim
    header["sform_code"], header["qform_code"] = sform_code, qform_code
    if sform is not None:
        header["srow_x"], header["srow_y"], header["srow_z"] = np.asarray(sform, dtype=float)[:3]
    if quatern is not None:
        header["quatern_b"], header["quatern_c"], header["quatern_d"] = quatern
    image.update_header = lambda: None  # keep the fields above exactly
    nib.save(image, str(path))
    return path


def claiming_nifti(shape, data: bytes, vox_offset: int = 352) -> bytes:
    """The bytes of a NIfTI header claiming ``shape`` float32 voxels, followed by only ``data``."""
    header = nib.Nifti1Header()
    header.set_data_dtype(np.float32)
    header.set_data_shape(shape)
    header["vox_offset"] = vox_offset
    return header.binaryblock + b"\0" * 4 + data


def npy_bytes(shape, payload: bytes) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buffer.getvalue() + payload


# Affine and voxel sizes ---------------------------------------------------------------------------------

NAN_SFORM = np.diag([2.0, 2.0, 2.0, 1.0])
NAN_SFORM[0, 1] = np.nan
INF_SFORM = np.diag([2.0, 2.0, 2.0, 1.0])
INF_SFORM[0, 3] = np.inf


@pytest.mark.parametrize("name, fields, reason", [
    ("nan-sform", {"sform": NAN_SFORM, "sform_code": 1}, "sform (voxel -> world affine) has NaN or Inf"),
    ("inf-sform", {"sform": INF_SFORM, "sform_code": 1}, "sform (voxel -> world affine) has NaN or Inf"),
    ("nan-qform", {"qform_code": 1, "quatern": (np.nan, 0.0, 0.0)}, "qform (voxel -> world affine) has NaN or Inf"),
    ("nan-pixdim", {"pixdim": (np.nan, 2.0, 2.0)}, "voxel sizes (pixdim)"),
    ("inf-pixdim", {"qform_code": 1, "pixdim": (np.inf, 2.0, 2.0)}, "voxel sizes (pixdim)"),
])
def test_non_finite_affine_or_voxel_size_is_a_one_line_error(tmp_path, capsys, name, fields, reason):
    path = write_nifti(tmp_path / f"{name}.nii.gz", **fields)
    refused_by_train_and_info(path, tmp_path, capsys, reason)


@pytest.mark.parametrize("fields, fallback, expected", [
    ({"sform": np.zeros((4, 4)), "sform_code": 1}, "pixdim diagonal", None),
    ({"sform": np.diag([2.0, 2.0, 0.0, 1.0]), "sform_code": 1}, "pixdim diagonal", None),
    ({"sform": np.zeros((4, 4)), "sform_code": 1, "qform_code": 1}, "qform", "qform"),
])
def test_singular_affine_falls_back_with_a_note(tmp_path, capsys, fields, fallback, expected):
    path = write_nifti(tmp_path / "degenerate.nii.gz", **fields)
    with pytest.warns(UserWarning, match=f"sform has no usable orientation .*using the {fallback}"):
        volume = read_volume(path)
    header = nib.load(str(path)).header
    wanted = header.get_qform() if expected == "qform" else header.get_base_affine()
    np.testing.assert_allclose(volume.affine, wanted)
    assert main(["info", str(path)]) == 0
    assert f"note: the header's sform has no usable orientation (singular matrix); using the {fallback}" in (
        capsys.readouterr().out)
    with pytest.warns(UserWarning, match="no usable orientation"):
        assert len(load_slices(DataConfig(source=str(path), resolution=32), progress=False)) > 0


def test_nibabel_header_fixes_become_notes_not_stderr_lines(tmp_path, capsys):
    path = write_nifti(tmp_path / "zero-pixdim.nii.gz", pixdim=(0.0, 0.0, 0.0))
    with pytest.warns(UserWarning, match="pixdim.*should be non-zero"):
        assert read_volume(path).spacing == (1.0, 1.0, 1.0)
    assert main(["info", str(path)]) == 0
    captured = capsys.readouterr()
    assert "note: pixdim[1,2,3] should be non-zero" in captured.out and "pixdim" not in captured.err


def dicom_series(folder, write_dicom_file, orientation, spacing=(1.0, 1.0), count=3):
    folder.mkdir()
    for index in range(count):
        pixels = (np.arange(256, dtype=np.int16).reshape(16, 16) * 4 + 30 * index).astype(np.int16)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns that "nan" is no valid DS value: that is the point
            write_dicom_file(folder / f"IM{index}.dcm", pixels, "CT", ImageOrientationPatient=orientation,
                             ImagePositionPatient=[0.0, 0.0, 2.0 * index], PixelSpacing=list(spacing),
                             InstanceNumber=count - index, RescaleSlope=1, RescaleIntercept=-1024)
    return folder


def test_dicom_geometry_nan_is_an_error_and_a_planeless_orientation_is_ignored(tmp_path, capsys, write_dicom_file):
    nan = dicom_series(tmp_path / "nan", write_dicom_file, ["nan", 0, 0, 0, 1, 0])
    refused_by_train_and_info(nan, tmp_path, capsys, "ImageOrientationPatient has values that are not finite")
    flat = dicom_series(tmp_path / "flat", write_dicom_file, [0, 0, 0, 0, 0, 0])
    with pytest.warns(UserWarning, match="spans no plane"):
        volume = read_volume(flat)
    assert volume.array.shape == (16, 16, 3)
    assert volume.array[0, 0, 0] == pytest.approx(60 - 1024)  # ordered by InstanceNumber (written last to first)
    zero = dicom_series(tmp_path / "zero-spacing", write_dicom_file, [1, 0, 0, 0, 1, 0], spacing=(0.0, 0.0))
    refused_by_train_and_info(zero, tmp_path, capsys, "voxel size 0 x 0 x")


# Claimed sizes -------------------------------------------------------------------------------------------


def write_claims(root):
    """Each file claims far more voxels than it holds: (path, reason)."""
    root.mkdir()
    cases = {
        "tiny.nii": (claiming_nifti((32767, 32767, 32767), b"\0" * 100), "over medgan's limit"),
        "short.nii": (claiming_nifti((1000, 1000, 1000), b"\0" * 4000), "but the file holds 4,352 bytes"),
        "short.nii.gz": (gzip.compress(claiming_nifti((1000, 1000, 1000), b"\0" * 4000)), "the file holds 4,352"),
        "tiny.nii.gz": (gzip.compress(claiming_nifti((32767, 32767, 32767), b"")), "over medgan's limit"),
        "offset.nii": (claiming_nifti((4, 4, 4), b"\1" * 256, vox_offset=10**9), "after 1,000,000,000 header bytes"),
        "series.nii": (claiming_nifti((64, 64, 64, 30000), b""), "over medgan's limit"),
        "short.npy": (npy_bytes((1000, 1000, 100), b"\0" * 100), "but the file holds 228 bytes"),
        "huge.npy": (npy_bytes((100000, 100000), b""), "over medgan's limit"),
    }
    member = io.BytesIO()
    with zipfile.ZipFile(member, "w") as archive:
        archive.writestr("image.npy", npy_bytes((1000, 1000, 100), b"\0" * 64))
    cases["short.npz"] = (member.getvalue(), "but its array 'image' holds 192 bytes")
    for name, (content, _) in cases.items():
        (root / name).write_bytes(content)
    return {root / name: reason for name, (_, reason) in cases.items()}


def test_claimed_size_is_checked_before_reading(tmp_path, capsys):
    for path, reason in write_claims(tmp_path / "claims").items():
        refused_by_train_and_info(path, tmp_path, capsys, reason)


def test_dicom_claims_are_checked_before_decoding(tmp_path, capsys, write_dicom_file):
    frames = write_dicom_file(tmp_path / "frames.dcm", np.arange(64, dtype=np.int16).reshape(8, 8), "CT",
                              NumberOfFrames=100000)
    refused_by_train_and_info(frames, tmp_path, capsys, "but the pixel data holds 128 bytes")
    rows = write_dicom_file(tmp_path / "rows.dcm", np.arange(64, dtype=np.int16).reshape(8, 8), "CT",
                            Rows=65535, Columns=65535)
    refused_by_train_and_info(rows, tmp_path, capsys, "over medgan's limit")


def test_decompression_bombs_are_one_line_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # a 64 x 64 picture is then over twice the limit
    for name in ("bomb.png", "bomb.tif"):
        Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64).astype(np.uint8)).save(tmp_path / name)
        refused_by_train_and_info(tmp_path / name, tmp_path, capsys, "too many pixels")


# Minimum size --------------------------------------------------------------------------------------------


def test_images_below_the_minimum_side_are_refused(tmp_path, capsys):
    Image.fromarray(np.array([[0, 255]], dtype=np.uint8)).save(tmp_path / "dot.png")
    refused_by_train_and_info(tmp_path / "dot.png", tmp_path, capsys, f"1 x 2 pixels; medgan needs at least {MIN_SIDE}")
    thin = write_nifti(tmp_path / "thin.nii.gz", data=ball((32, 32, 4)))
    before = listing(tmp_path)
    code = main(["train", "--data", str(thin), "--out", str(tmp_path / "run"), "--steps", "2", *TINY,
                 "--set", "data.axis=0"])
    assert_one_line_error(code, capsys, "thin.nii.gz", "sagittal slices (data.axis=0) of 4 x 32 pixels")
    assert listing(tmp_path) == before
    assert main(["info", str(thin), "--axis", "2"]) == 0  # axial slices of the same volume are 32 x 32
    capsys.readouterr()
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 3).save(tmp_path / "eight.png")
    assert len(load_slices(DataConfig(source=str(tmp_path / "eight.png"), resolution=32), progress=False)) == 1
