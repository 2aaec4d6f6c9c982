"""``medgan evaluate --dims 3`` end to end: phantom CT volumes through the CLI and the Python API, the report's
figures, reading (orientation, NumPy stacks, resampling), and every bad input as one line with nothing written."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from helpers import assert_one_error_line, cli
from PIL import Image

import medgan
from medgan.config import DataConfig
from medgan.data.cubes import fit_volume
from medgan.evaluation.volume_inputs import load_volume_set
from medgan.config.volume_rules import MAX_ANISOTROPY, MIN_VOXELS
from medgan.evaluation.volumes import intensity_config
from medgan.metrics.catalog import VOLUME_METRICS, interval, lookup
from medgan.report.volumes import STRIP, TILE_PIXELS, display_plane

pytestmark = pytest.mark.usefixtures("one_thread")

SIDE = 16  # cube side of every evaluation here
COUNT = 10  # volumes per set: 10 x 8 central slices per plane > 64 offline feature dimensions, so FID is defined
SLICE_MM = 12.5  # the phantom's pixel at 32 px over 400 mm: isotropic voxels


def phantom_ct(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One phantom patient's portal-phase CT, 32 x 32 x 16 voxels of 12.5 mm in HU, and its affine."""
    from medgan.data.phantom.volumes import phantom_patient_volume

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # skimage's radon, about the 32 px reconstruction circle
        volume = phantom_patient_volume(seed, n_slices=16, size=32, slice_mm=SLICE_MM, doses=(1.0,),
                                        phases=("portal",), sequences=())
    return volume.images["ct-portal-dose1"], volume.affine


def save(array: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(array, dtype=np.float32), affine), str(path))
    return path


@pytest.fixture(scope="module")
def volumes(tmp_path_factory) -> dict[str, Path]:
    """10 real and 10 synthetic phantom patients (other seeds, 20 HU of noise), and 10 heavily degraded ones."""
    root = tmp_path_factory.mktemp("volumes")
    rng = np.random.default_rng(0)
    for index in range(COUNT):
        real, affine = phantom_ct(index)
        save(real, affine, root / "real" / f"patient{index:02d}.nii.gz")
        fake, affine = phantom_ct(100 + index)
        save(fake + rng.normal(0, 20, fake.shape), affine, root / "fake" / f"sample{index:02d}.nii.gz")
        save(fake + rng.normal(0, 400, fake.shape), affine, root / "noisy" / f"sample{index:02d}.nii.gz")
    return {name: root / name for name in ("real", "fake", "noisy")}


@pytest.fixture(scope="module")
def evaluated(volumes, tmp_path_factory) -> tuple[dict, Path, str]:
    """One CLI evaluation (metrics.json, the report folder, what it printed), shared by the tests that read it."""
    out = tmp_path_factory.mktemp("evaluated") / "report"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        done = cli("evaluate", "--dims", "3", "--real", volumes["real"], "--fake", volumes["fake"], "--out", out,
                   "--resolution", SIDE, "--quiet")
    finally:
        torch.set_num_threads(threads)
    assert done.returncode == 0, done.stderr
    return json.loads((out / "metrics.json").read_text(encoding="utf-8")), out, done.stdout


def test_cli_writes_the_3d_metrics_with_intervals(evaluated):
    metrics, _, printed = evaluated
    assert metrics["dims"] == 3
    inputs = metrics["inputs"]
    assert (inputs["real_volumes"], inputs["synthetic_volumes"], inputs["resolution"]) == (COUNT, COUNT, SIDE)
    assert inputs["mapping"] == {"kind": "ct_window", "low": -150.0, "high": 250.0, "unit": "HU"}  # abdomen default
    geometry = inputs["geometry"]["real"]
    assert geometry["shape_min"] == geometry["shape_max"] == [32, 32, 16]
    assert geometry["spacing_mm_min"] == [SLICE_MM] * 3 and geometry["largest_anisotropy"] == 1.0
    assert geometry["cube_voxel_mm"]["median"] == pytest.approx(32 * SLICE_MM / SIDE)  # longest extent / side
    for info in VOLUME_METRICS:  # every headline number with its interval over volumes, around the value
        value, found = lookup(metrics, info.key), interval(metrics, info.key)
        assert isinstance(value, float) and metrics["headline"][info.key] == value, info.key
        assert found["low"] <= value <= found["high"] and found["resampled"] == "volumes", info.key
        assert (found["n_real"], found["n_fake"]) == (COUNT, COUNT), info.key
    for plane in ("axial", "coronal", "sagittal"):
        scores = metrics["volume_distribution"]["planes"][plane]
        assert scores["slices_real"] == COUNT * SIDE // 2 and scores["fid"] > 0, plane  # the central half
        assert interval(metrics, f"volume_distribution.planes.{plane}.fid")["high"] >= scores["fid"]
    mean = np.mean([metrics["volume_distribution"]["planes"][plane]["fid"] for plane in ("axial", "coronal",
                                                                                         "sagittal")])
    assert metrics["volume_distribution"]["fid"] == pytest.approx(mean)
    # The small-N warning counts volumes, first in the notes and first in the terminal.
    assert metrics["small_n"]["flagged"] and metrics["small_n"]["unit"] == "volumes"
    assert metrics["notes"][0].startswith(f"warning: small sets: {COUNT} real and {COUNT} synthetic volumes")
    lines = printed.splitlines()
    assert lines[0].startswith("warning: small sets:")
    fid = metrics["volume_distribution"]["fid"]
    assert any(line.startswith("Three-plane FID") and f"{fid:.4g} [" in line for line in lines)
    assert "resampled whole volumes" in printed


def test_report_shows_planes_and_strips_as_png_files(evaluated):
    metrics, out, _ = evaluated
    page = (out / "report.html").read_text(encoding="utf-8")
    scale = TILE_PIXELS // SIDE
    for name, columns in (("real-planes", 3), ("synthetic-planes", 3), ("real-axial-strip", STRIP),
                          ("synthetic-axial-strip", STRIP)):
        assert f'data-figure="{name}"' in page, name  # embedded in the page ...
        picture = np.asarray(Image.open(out / "figures" / f"{name}.png"))  # ... and a file beside it
        rows = min(4, COUNT)
        assert picture.shape == (((SIDE + 2) * rows + 2) * scale, ((SIDE + 2) * columns + 2) * scale), name
        assert picture.std() > 20, name  # anatomy, not a blank tile
    assert 'data-warning="small-n"' in page and 'data-table="planes"' in page
    fid = metrics["volume_distribution"]["fid"]
    assert f'<td class="value">{fid:.4g} <span class="interval">[' in page
    card = json.loads((out / "DATA_CARD.json").read_text(encoding="utf-8"))
    assert card["results"]["volume_evaluation"]["values"]["volume_distribution.fid"] == pytest.approx(fid)


def test_python_api_returns_the_same_numbers(evaluated, volumes, tmp_path):
    metrics, _, _ = evaluated
    found = medgan.evaluate(volumes["real"], volumes["fake"], dims=3, resolution=SIDE, progress=False)
    assert found.out is None  # written to a temporary folder, then removed
    assert found.headline == metrics["headline"]
    assert found["volume_distribution.fid_interval"] == metrics["volume_distribution"]["fid_interval"]
    assert found["volume_memorization.closest_pairs"] == metrics["volume_memorization"]["closest_pairs"]
    assert "Three-plane FID" in found.table


def test_degraded_volumes_score_worse_and_copies_are_flagged(volumes, tmp_path, evaluated):
    metrics, _, _ = evaluated
    noisy = medgan.evaluate(volumes["real"], volumes["noisy"], dims=3, resolution=SIDE, progress=False)
    assert noisy["volume_distribution.fid_interval"]["low"] > metrics["volume_distribution"]["fid_interval"]["high"]
    assert noisy["volume_memorization.nearest_ssim.median"] < metrics["volume_memorization"]["nearest_ssim"]["median"]
    # Copies of the training volumes, shared without real images: flagged, and none of them drawn.
    out = tmp_path / "shared"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "real-planes.png").write_bytes(b"left by an earlier evaluation with real images")
    done = cli("evaluate", "--dims", "3", "--real", volumes["real"], "--fake", volumes["real"], "--train",
               volumes["real"], "--out", out, "--resolution", SIDE, "--no-real-images", "--quiet")
    assert done.returncode == 0, done.stderr
    shared = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert shared["volume_memorization"]["near_copy_fraction"] == 1.0
    assert shared["volume_memorization"]["baseline_near_copy_fraction"] == 1.0  # held-out = training: copies too
    assert sorted(path.name for path in (out / "figures").iterdir()) == []  # no real figure, no copy drawn
    page = (out / "report.html").read_text(encoding="utf-8")
    assert 'data-real-images="no"' in page and "No synthetic volume is drawn" in page
    for text in (page, (out / "metrics.json").read_text(encoding="utf-8")):
        assert str(volumes["real"]) not in text and "patient00" not in text


def test_volumes_keep_their_orientation_and_proportions(tmp_path):
    """A marker at the patient's right, anterior, superior: the same cube from a RAS and an LPS-stored file, drawn
    on the viewer's left in the axial plane; a half-height volume is centred in the cube between background."""
    array = np.zeros((16, 16, 8), dtype=np.float32)  # x (right), y (anterior), z (superior), 2 mm voxels
    array[2:14, 2:14, :] = 100.0
    array[11:14, 11:14, 5:7] = 300.0  # right, anterior, superior quadrant
    save(array, np.diag([2.0, 2.0, 2.0, 1.0]), tmp_path / "ras" / "a.nii.gz")
    lps = np.diag([-2.0, -2.0, 2.0, 1.0])
    lps[:2, 3] = 30.0  # voxel 15 lands where the RAS file's voxel 0 is
    save(array[::-1, ::-1], lps, tmp_path / "lps" / "a.nii.gz")
    config = DataConfig(modality="ct", window_level=150.0, window_width=300.0)
    ras = load_volume_set(tmp_path / "ras", "real", config, SIDE).volumes[0]
    flipped = load_volume_set(tmp_path / "lps", "real", config, SIDE).volumes[0]
    assert torch.equal(ras, flipped)
    assert (ras[0, :4] == -1).all() and (ras[0, -4:] == -1).all()  # 16 mm of height in a 32 mm cube: padded
    assert (ras[0, 4:12].amax(dim=(1, 2)) > -1).all()
    axial = display_plane(ras, "axial", 10)[0]  # a superior slice through the marker (z 6 + 4 of padding)
    bright = (axial == axial.max()).nonzero().float().mean(0)
    assert bright[0] < SIDE / 2 and bright[1] < SIDE / 2  # anterior at the top, the patient's right on the left


def test_a_numpy_stack_reads_as_its_nifti_volumes(volumes, tmp_path):
    config = DataConfig()
    window = load_volume_set(volumes["real"], "real", config, SIDE).mapping
    from_nifti = load_volume_set(volumes["fake"], "synthetic", config, SIDE, decoder=window)
    stack = []
    for path in sorted(volumes["fake"].iterdir()):
        xyz = nib.as_closest_canonical(nib.load(str(path))).get_fdata(dtype=np.float32)
        stack.append(window.to_unit(xyz).transpose(2, 1, 0))  # [X, Y, Z] -> [D, H, W], model units
    np.save(tmp_path / "stack.npy", np.stack(stack)[:, None])  # [N, 1, D, H, W]
    from_numpy = load_volume_set(tmp_path / "stack.npy", "synthetic", config, SIDE)
    assert from_numpy.records[0].name == "stack.npy[0]" and from_numpy.records[0].spacing == (1.0, 1.0, 1.0)
    torch.testing.assert_close(from_numpy.volumes, from_nifti.volumes, atol=1e-5, rtol=0)


def test_intensity_options_choose_the_window(volumes):
    bone = intensity_config({"data": {"window": "bone"}})
    assert load_volume_set(volumes["real"], "real", bone, SIDE).mapping.to_dict()["low"] == -500.0  # L500 W2000
    default = load_volume_set(volumes["real"], "real", intensity_config(None), SIDE)
    assert default.mapping.low == -150.0  # abdomen, the 2D default


def test_fit_volume_averages_before_shrinking():
    checker = (torch.arange(64)[:, None, None] + torch.arange(64)[None, :, None] + torch.arange(64)) % 2
    cube, voxel = fit_volume(checker.float() * 2 - 1, (1.0, 1.0, 1.0), 16)
    assert voxel == 4.0 and cube.abs().max() < 1e-6  # each 4^3 block averages to 0: no aliased pattern
    thin, voxel = fit_volume(torch.ones(8, 16, 16), (1.0, 1.0, 1.0), 16)
    assert voxel == 1.0 and (thin[4:12] == 1).all() and (thin[:4] == -1).all() and (thin[12:] == -1).all()
    stretched, _ = fit_volume(torch.ones(8, 16, 16), (2.0, 1.0, 1.0), 16)  # 2 mm slices: a full 16 mm cube
    assert (stretched == 1).all()


def _bad_inputs(root: Path, volumes: dict[str, Path]) -> dict[str, tuple[list, tuple[str, ...]]]:
    """Each bad input: (the CLI arguments after --dims 3, the fragments its one error line must hold)."""
    good = volumes["fake"]
    pictures = root / "pictures"
    pictures.mkdir()
    for index in range(3):
        Image.fromarray(np.full((32, 32), 60 * index + 20, dtype=np.uint8)).save(pictures / f"slice{index}.png")
    flat = save(np.random.default_rng(0).normal(0, 100, (32, 32)), np.eye(4), root / "flat" / "slice.nii.gz")
    mixed = root / "mixed"
    shutil.copytree(good, mixed)
    shutil.copy(flat, mixed / "z_slice.nii.gz")
    small = save(np.random.default_rng(1).normal(0, 100, (32, 32, 6)), np.eye(4), root / "small" / "thin.nii.gz")
    anisotropic = root / "anisotropic"
    save(np.random.default_rng(2).normal(0, 100, (32, 32, 12)), np.diag([1.0, 1.0, 5.0, 1.0]),
         anisotropic / "thick.nii.gz")
    stack = root / "stack.npy"
    np.save(stack, np.zeros((5, 32, 32), dtype=np.float32))
    return {
        "pngs": (["--real", pictures, "--fake", good], ("slice0.png", "a 2D image", "--dims 3")),
        "2d-nifti": (["--real", good, "--fake", flat.parent], ("slice.nii.gz", "a 2D image")),
        "mixed": (["--real", mixed, "--fake", good], ("z_slice.nii.gz", "mixed 2D and 3D inputs")),
        "small": (["--real", small.parent, "--fake", good], ("thin.nii.gz", "32 x 32 x 6 voxels",
                                                             f"at least {MIN_VOXELS} voxels")),
        "anisotropic": (["--real", anisotropic, "--fake", good], ("thick.nii.gz", "1 x 1 x 5 mm",
                                                                  f"the limit is {MAX_ANISOTROPY:g}")),
        "2d-stack": (["--real", good, "--fake", stack], ("stack.npy", "a stack of 2D images [N, H, W]")),
        "embedded": (["--real", "mni152", "--fake", good], ("mni152", "embedded sources")),
        "one-volume": (["--real", good, "--fake", good, "--max-images", "1"], ("at least 2 volumes",)),
        "bad-set": (["--real", good, "--fake", good, "--set", "data.resolution=64"], ("data.resolution",
                                                                                       "data.window")),
        "small-cube": (["--real", good, "--fake", good, "--resolution", "8"], ("--resolution", "16 to 128")),
    }


def test_bad_inputs_are_one_line_errors_and_write_nothing(volumes, tmp_path, capsys):
    from medgan.cli import main

    for name, (arguments, fragments) in _bad_inputs(tmp_path, volumes).items():
        out = tmp_path / f"out-{name}"
        code = main(["evaluate", "--dims", "3", "--out", str(out), "--quiet", *map(str, arguments)])
        assert_one_error_line(code, capsys, *fragments)
        assert not out.exists(), name
    code = main(["evaluate", "--real", str(volumes["real"]), "--fake", str(volumes["fake"]), "--out",
                 str(tmp_path / "out-2d"), "--resolution", "32"])  # --resolution belongs to --dims 3
    assert_one_error_line(code, capsys, "--resolution and --set are for --dims 3")
    assert not (tmp_path / "out-2d").exists()
