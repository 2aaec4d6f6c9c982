"""``medgan translate``: a trained paired run applied to NIfTI volumes (affine and HU kept), to a real DICOM CT
(a derived series with its geometry), to PNGs; and its bad inputs."""

import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch

from medgan.cli import main
from medgan.data import IntensityMapping, SliceSet
from medgan.training.loop import train

from helpers import cli
from test_paired_task import paired_config

HU = IntensityMapping("ct_window", -160.0, 240.0, "HU")


@pytest.fixture(scope="module")
def paired_run(tmp_path_factory):
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(16, 1, 32, 32, generator=generator) * 2 - 1
    noisy = (target + 0.2 * torch.randn(target.shape, generator=generator)).clamp(-1, 1)
    data = SliceSet(target, HU, (0.7, 0.7), [f"p{i % 4}" for i in range(16)], [f"f{i}#0" for i in range(16)],
                    aligned={"input": noisy}, mappings={"input": HU})
    run = tmp_path_factory.mktemp("runs") / "paired"
    train(paired_config(train={"steps": 3}), run, progress=False, data=data)
    return run


def run_cli_process(*args):
    """The real console process (its stderr and exit status), for one case of this module's contract."""
    return subprocess.run([sys.executable, "-m", "medgan.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


run_cli = cli  # the other cases, in this process (helpers.cli)


def test_translate_keeps_the_nifti_affine_and_writes_hu(paired_run, tmp_path):
    rng = np.random.default_rng(0)
    volume = rng.normal(40, 30, (40, 36, 5)).astype(np.float32)
    volume[:3] = -1000.0  # air outside the window: passed through
    volume[-3:] = 1200.0  # dense bone outside the window: passed through
    affine = np.array([[0, -0.8, 0, 10], [0.8, 0, 0, -20], [0, 0, 2.5, 5], [0, 0, 0, 1]], dtype=float)
    nib.save(nib.Nifti1Image(volume, affine), tmp_path / "case.nii.gz")
    assert main(["translate", "--run", str(paired_run), "--input", str(tmp_path / "case.nii.gz"),
                 "--out", str(tmp_path / "out"), "--quiet"]) == 0
    result = nib.load(tmp_path / "out" / "case_translated.nii.gz")
    array = result.get_fdata()
    assert np.allclose(result.affine, affine) and array.shape == volume.shape
    assert np.array_equal(array[:3], volume[:3]) and np.array_equal(array[-3:], volume[-3:])
    inside = array[5:-5]
    assert -160 <= inside.min() and inside.max() <= 240 and abs(inside.mean() - 40) < 60  # HU, not [-1, 1]
    assert b"medgan translate" in result.header["descrip"].tobytes()


def test_a_real_dicom_ct_becomes_a_derived_series_with_its_geometry(paired_run, tmp_path):
    import pydicom
    from pydicom.data import get_testdata_file

    source = get_testdata_file("CT_small.dcm")
    original = pydicom.dcmread(source)
    assert main(["translate", "--run", str(paired_run), "--input", source, "--out", str(tmp_path / "out"),
                 "--quiet"]) == 0
    files = sorted((tmp_path / "out").rglob("*.dcm"))
    assert len(files) == 1
    derived = pydicom.dcmread(files[0])
    assert list(derived.ImageType)[:2] == ["DERIVED", "SECONDARY"] and "medgan" in derived.DerivationDescription
    assert derived.SeriesInstanceUID != original.SeriesInstanceUID and derived.SOPInstanceUID != original.SOPInstanceUID
    assert derived.SourceImageSequence[0].ReferencedSOPInstanceUID == original.SOPInstanceUID
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns"):
        assert derived.get(keyword) == original.get(keyword), keyword
    hu_in = original.pixel_array * float(original.RescaleSlope) + float(original.RescaleIntercept)
    hu_out = derived.pixel_array * float(derived.RescaleSlope) + float(derived.RescaleIntercept)
    inside = (hu_in > -160) & (hu_in < 240)
    assert np.array_equal(hu_out[~inside], np.rint(hu_in[~inside]))  # outside the window: passed through
    assert np.abs(hu_out[inside] - hu_in[inside]).mean() < 80  # a 3-step model stays near its identity start
    assert derived.PatientName == original.PatientName  # the user's own series: nothing added, nothing new


def test_translate_bad_inputs(paired_run, tmp_path):
    result = run_cli_process("translate", "--run", paired_run, "--input", tmp_path / "missing.nii", "--out", tmp_path / "o")
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "missing.nii" in result.stderr
    assert not (tmp_path / "o").exists()
    two = np.zeros((2, 8, 8, 3), np.float32)
    nib.save(nib.Nifti1Image(two, np.eye(4)), tmp_path / "four_d.nii.gz")
    result = run_cli("translate", "--run", paired_run, "--input", tmp_path / "four_d.nii.gz", "--out", tmp_path / "o2")
    assert result.returncode == 2 and "Traceback" not in result.stderr and not (tmp_path / "o2").exists()
    result = run_cli("translate", "--run", paired_run, "--input", tmp_path / "four_d.nii.gz", "--out",
                     tmp_path / "o3", "--domain", "mask=x.nii")
    assert result.returncode == 2 and "--domain" in result.stderr


def test_translate_refuses_a_noise_to_image_run(tmp_path):
    from helpers import TINY, write_tiny_brain

    brain = write_tiny_brain(tmp_path / "brain.nii.gz")
    assert main(["train", "--data", str(brain), "--out", str(tmp_path / "gan"), "--steps", "1", *TINY]) == 0
    result = run_cli("translate", "--run", tmp_path / "gan", "--input", brain, "--out", tmp_path / "o")
    assert result.returncode == 2 and "does not translate images" in result.stderr
    assert not (tmp_path / "o").exists()


def test_translate_volume_matches_training_slicing_and_holds_one_output_volume(paired_run, monkeypatch):
    import tracemalloc

    import medgan.inference.translate

    # Batches of 8 of these 32 x 32 slices (as 512 x 512 slices go one at a time), so that batching is exercised.
    monkeypatch.setattr(medgan.inference.translate, "TRANSLATE_PIXELS", 8 * 32 * 32)
    from pathlib import Path

    from medgan.data.readers import Volume
    from medgan.data.slicing import to_canonical, upright_slices
    from medgan.inference import load_model
    from medgan.inference.files import translate_volume

    model = load_model(paired_run)
    array = np.random.default_rng(1).normal(40, 150, (32, 32, 160)).astype(np.float32)  # some HU outside the window
    affine = np.array([[0, -0.8, 0, 10], [0.8, 0, 0, -20], [0, 0, -2.5, 5], [0, 0, 0, 1]], dtype=float)
    volume = Volume(array, affine, (0.8, 0.8, 2.5), "CT", Path("case.nii"), "case")
    tracemalloc.start()  # NumPy's allocations; torch's (one batch of activations) are not traced
    try:
        result = translate_volume(model, {"input": volume})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.shape == array.shape and result.dtype == np.float32
    assert peak < 1.5 * array.nbytes  # the output volume and one batch of slices (whole-volume copies were 6x)
    axis = model.config.data.axis
    slices = upright_slices(to_canonical(volume).array, axis)  # as in training
    unit = model.translate(torch.from_numpy(np.asarray(HU.to_unit(slices), dtype=np.float32))[:, None])
    expected = np.where((slices < HU.low) | (slices > HU.high), slices, HU.to_physical(unit[:, 0].numpy()))
    got = upright_slices(to_canonical(Volume(result, affine, volume.spacing, "CT", volume.path, "case")).array, axis)
    assert np.allclose(got, expected, atol=1e-3)


def test_mr_to_the_same_mr_keeps_each_scans_own_scale_and_t1_to_t2_the_stored_one(tmp_path):
    """Training normalizes each MR volume on its own: a denoiser's output of a scan at 3x the intensities is 3x the
    output (the scan's own fit), while T1 -> T2 (another scale) is written in the run's stored T2 scale."""
    from pathlib import Path

    from medgan.data.readers import Volume
    from medgan.inference import load_model
    from medgan.inference.files import translate_volume

    generator = torch.Generator().manual_seed(0)
    target = torch.rand(16, 1, 32, 32, generator=generator) * 2 - 1
    noisy = (target + 0.2 * torch.randn(target.shape, generator=generator)).clamp(-1, 1)
    array = np.random.default_rng(0).uniform(50.0, 400.0, (32, 32, 5)).astype(np.float32)
    volume = Volume(array, np.eye(4), (1.0, 1.0, 1.0), "MR", Path("scan.nii"), "scan")
    brighter = Volume(3.0 * array, np.eye(4), (1.0, 1.0, 1.0), "MR", Path("scan3.nii"), "scan3")
    results = {}
    for name, target_mapping in (("same", IntensityMapping("percentile", 10.0, 500.0, "a.u.")),
                                 ("t2", IntensityMapping("percentile", 100.0, 2000.0, "a.u."))):
        data = SliceSet(target, target_mapping, (1.0, 1.0), [f"p{i % 4}" for i in range(16)],
                        [f"f{i}#0" for i in range(16)], aligned={"input": noisy},
                        mappings={"input": IntensityMapping("percentile", 12.0, 490.0, "a.u.")})
        train(paired_config(train={"steps": 1, "eval_every": 0}), tmp_path / name, progress=False, data=data)
        model = load_model(tmp_path / name)
        results[name] = [translate_volume(model, {"input": v}) for v in (volume, brighter)]
    plain, tripled = results["same"]
    assert np.allclose(tripled, 3.0 * plain, rtol=1e-4, atol=1e-2)
    plain, tripled = results["t2"]  # the stored T2 scale: the same output whatever the T1 scan's brightness
    assert np.allclose(tripled, plain, atol=1e-2) and plain.max() <= 2000.0 + 1e-3


def test_inpainting_runs_start_without_the_identity_and_old_runs_keep_theirs(paired_run, tmp_path):
    """A hole set to background sits where the identity start's tanh is flat (holes were left unfilled): runs with a
    mask input build G without it and record that; runs saved before the record keep the identity start."""
    import shutil

    from medgan.checkpoint import load_checkpoint, save_checkpoint
    from medgan.inference import load_model

    generator = torch.Generator().manual_seed(0)
    target = torch.rand(16, 1, 32, 32, generator=generator) * 2 - 1
    hole = torch.zeros_like(target)
    hole[:, :, 8:20, 8:20] = 1.0
    data = SliceSet(target, HU, (0.7, 0.7), [f"p{i % 4}" for i in range(16)], [f"f{i}#0" for i in range(16)],
                    aligned={"input": torch.where(hole > 0, -1.0, target), "mask": hole * 2 - 1},
                    mappings={"input": HU})
    train(paired_config(train={"steps": 1, "eval_every": 0}), tmp_path / "inpaint", progress=False, data=data)
    state = torch.load(tmp_path / "inpaint" / "checkpoints" / "latest.pt", weights_only=False)
    assert state["inference"]["residual"] is False and not load_model(tmp_path / "inpaint").generator.residual
    assert load_model(paired_run).generator.residual  # a denoiser keeps the identity start
    old = tmp_path / "old"
    shutil.copytree(paired_run, old)
    for checkpoint in (old / "checkpoints").glob("*.pt"):
        saved = load_checkpoint(checkpoint)
        saved["inference"].pop("residual", None)
        save_checkpoint(checkpoint, saved)
    assert load_model(old).generator.residual
