"""The CLI contract: train and sample through the command line, and one-line errors (exit 2) for bad input."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medgan.cli import main

from helpers import TINY, cli, write_tiny_brain


def run_cli_process(*args, cwd=None):
    """Runs ``python -m medgan.cli`` in a subprocess (so stderr and the exit code are the real ones)."""
    return subprocess.run([sys.executable, "-m", "medgan.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"})


run_cli = cli  # in this process; run_cli_process for the real console process


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    brain = write_tiny_brain(root / "brain.nii.gz")
    code = main(["train", "--data", str(brain), "--out", str(root / "run"), "--steps", "3", *TINY,
                 "--set", "data.min_foreground=0.05"])
    assert code == 0
    return root / "run"


def test_train_then_sample_every_format(trained_run, tmp_path):
    for fmt, pattern in (("png", "*.png"), ("png16", "*.png"), ("nifti", "*.nii*"), ("npy", "*.npy")):
        out = tmp_path / fmt
        assert main(["sample", "--run", str(trained_run), "--n", "3", "--out", str(out), "--format", fmt]) == 0
        assert list(out.glob(pattern)), fmt
    assert main(["sample", "--run", str(trained_run), "--n", "2", "--out", str(tmp_path / "i"),
                 "--interpolate", "4"]) == 0
    assert (tmp_path / "i" / "interpolation.png").is_file()


def test_resume_through_the_cli(trained_run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    assert main(["train", "--out", str(copy), "--resume", "--steps", "4", "--quiet"]) == 0
    import torch

    assert torch.load(copy / "checkpoints" / "latest.pt", weights_only=True)["loop"]["step"] == 4


def test_info_describes_a_file(tmp_path, capsys):
    brain = write_tiny_brain(tmp_path / "brain.nii.gz")
    assert main(["info", str(brain)]) == 0
    text = capsys.readouterr().out
    assert "brain.nii.gz" in text and "32" in text


def write_bad_inputs(root: Path, head_volume) -> dict[str, tuple[Path, str]]:
    """Each bad input: (path, a fragment the error must contain)."""
    import nibabel as nib

    cases = {}
    empty = root / "empty"
    empty.mkdir()
    cases["empty folder"] = (empty, "empty")
    junk = root / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("not an image")
    cases["no readable images"] = (junk, "no readable images")
    good = root / "good.nii.gz"
    nib.save(nib.Nifti1Image(head_volume, np.eye(4)), str(good))
    truncated = root / "truncated.nii.gz"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    cases["truncated nii.gz"] = (truncated, "truncated.nii.gz")
    fake_dicom = root / "fake.dcm"
    fake_dicom.write_text("this is not DICOM")
    cases["non-DICOM .dcm"] = (fake_dicom, "fake.dcm")
    nan = head_volume.copy()
    nan[3, 3, 3] = np.nan
    nib.save(nib.Nifti1Image(nan, np.eye(4)), str(root / "nan.nii.gz"))
    cases["NaN voxels"] = (root / "nan.nii.gz", "NaN")
    nib.save(nib.Nifti1Image(np.full((8, 8, 8), 7.0, np.float32), np.eye(4)), str(root / "constant.nii.gz"))
    cases["constant image"] = (root / "constant.nii.gz", "constant")
    return cases  # mixed 2D/3D inputs are accepted (tests/test_hardening_data_consistency.py)


def test_bad_data_gets_a_one_line_error_and_writes_nothing(tmp_path, head_volume):
    cases = write_bad_inputs(tmp_path, head_volume)
    cases["missing path"] = (tmp_path / "nowhere", "nowhere")
    outs = {name: tmp_path / f"run-{name.replace(' ', '-').replace('/', '-')}" for name in cases}
    results = {name: run_cli("train", "--data", cases[name][0], "--out", outs[name], "--steps", "1", *TINY)
               for name in cases}
    # The real console process for one of them: its stderr and exit status, not main's return value.
    first = next(iter(cases))
    results[first] = run_cli_process("train", "--data", cases[first][0], "--out", tmp_path / "process", "--steps",
                                     "1", *TINY)
    assert not (tmp_path / "process").exists()
    for name, (path, fragment) in cases.items():
        assert_one_line_error(results[name], str(Path(path).name), fragment)
        assert not outs[name].exists() or not any(outs[name].rglob("*.pt")), name  # nothing half-written


def test_dicom_without_pixel_data(tmp_path):
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = pydicom.Dataset()
    dataset.file_meta = meta
    dataset.Modality = "CT"
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    path = tmp_path / "nopixels.dcm"
    dataset.save_as(path, enforce_file_format=True)
    result = run_cli("train", "--data", path, "--out", tmp_path / "run", "--steps", "1", *TINY)
    assert_one_line_error(result, "nopixels.dcm", "pixel")
    assert not (tmp_path / "run").exists()
    info = run_cli("info", path)  # info lists what it skipped, and why; nothing readable is exit 2, as for train
    assert_one_line_error(info, "nopixels.dcm", "no readable images")
    assert "without pixel data" in info.stdout


def test_bad_config_key_and_value(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("train:\n  stepz: 3\n")
    assert_one_line_error(run_cli("train", "--data", "mni152", "--out", tmp_path / "r", "--config", config),
                          "train.stepz")
    config.write_text("optim:\n  lr_generator: -1\n")
    assert_one_line_error(run_cli("train", "--data", "mni152", "--out", tmp_path / "r", "--config", config),
                          "optim.lr_generator")
    assert_one_line_error(run_cli("train", "--data", "mni152", "--out", tmp_path / "r", "--model", "unet3000"),
                          "unet3000")
    assert not (tmp_path / "r").exists()


def test_corrupt_and_incompatible_checkpoints(trained_run, tmp_path):
    import shutil

    corrupt = tmp_path / "corrupt"
    shutil.copytree(trained_run, corrupt)
    for name in ("latest.pt", "best.pt"):
        (corrupt / "checkpoints" / name).write_bytes(b"garbage")
    assert_one_line_error(run_cli("sample", "--run", corrupt, "--n", "2", "--out", tmp_path / "s"), "best.pt")
    assert_one_line_error(run_cli("train", "--out", corrupt, "--resume"), "latest.pt")
    assert not (tmp_path / "s").exists()
    # A checkpoint whose weights do not fit the model its config describes.
    import torch

    incompatible = tmp_path / "incompatible"
    shutil.copytree(trained_run, incompatible)
    from medgan.checkpoint import save_checkpoint

    state = torch.load(incompatible / "checkpoints" / "best.pt", weights_only=True)
    state["config"]["model"]["generator_channels"] = 8
    state.pop("content_sha256")
    save_checkpoint(incompatible / "checkpoints" / "best.pt", state)  # consistent, but not this model
    assert_one_line_error(run_cli("sample", "--run", incompatible, "--n", "2", "--out", tmp_path / "s2"),
                          "do not fit")
    assert_one_line_error(run_cli("sample", "--run", tmp_path / "nope", "--n", "2", "--out", tmp_path / "s3"),
                          "nope")


def test_liver_demo_trains_the_conditional_recipe_and_writes_a_grid_per_class(tmp_path, monkeypatch, capsys):
    from medgan.data.phantom import sources as phantom_sources
    from medgan.inference.sampling import load_generator

    monkeypatch.setattr(phantom_sources, "LESION_ROIS_PER_CLASS", 2)  # the real demo uses 60 per class
    out = tmp_path / "demo"
    assert main(["demo", "liver", "--minutes", "0.02", "--out", str(out), "--quiet"]) == 0
    config = load_generator(out).config
    assert config.task == "conditional" and config.data.source == "ct-lesions"
    assert config.data.window == "liver-portal" and config.model.auxiliary_classifier
    assert config.augment.policy == ("translation", "cutout")
    for name in ("cyst", "metastasis", "hemangioma"):
        assert (out / "samples" / f"class_{name}.png").is_file()
    assert "class hemangioma" in capsys.readouterr().out


def test_the_cli_lists_every_demo():
    from medgan.cli import build_parser
    from medgan.training.tasks import DEMOS

    demo = build_parser()._subparsers._group_actions[0].choices["demo"]
    names = next(action for action in demo._actions if action.dest == "name").choices
    assert list(names) == DEMOS.names() and {"brain", "liver", "denoise", "superres", "mr2ct", "phases"} <= set(names)
