"""Hardening: ``medgan info`` agrees with ``medgan train`` (same checks, same decision on mixed 2D/3D inputs) and
exits 2 when nothing can be read; ``medgan evaluate`` leaves blank real images out with a note instead of
aborting, and warns about colour synthetic images as it does about colour real ones."""

import importlib
import json
import re

import numpy as np
import pytest
from PIL import Image

from medgan.cli import main
from medgan.config import DataConfig
from medgan.data import load_slices
from medgan.data.readers import read_volume
from medgan.evaluation.inputs import read_image_folder

from helpers import TINY


def listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def one_error_line(captured):
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in captured.err, captured.err
    return lines[0]


def disc(size=32, value=1.0, radius=10):
    rows, columns = np.mgrid[0:size, 0:size]
    return ((rows - size / 2) ** 2 + (columns - size / 2) ** 2 < radius**2) * value


def write_pictures(folder, count, seed=0):
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for index in range(count):
        image = disc(radius=6 + index % 8) * 180 + rng.normal(20, 5, (32, 32))
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(folder / f"slice{index:02d}.png")
    return folder


def test_info_and_train_accept_a_2d_ct_next_to_a_multiframe_ct(tmp_path, capsys, write_dicom_file,
                                                               write_dicom_multiframe):
    folder = tmp_path / "ct"
    folder.mkdir()
    write_dicom_file(folder / "a_single.dcm", (disc(value=1100) + 24).astype(np.int16), "CT",
                     RescaleSlope=1, RescaleIntercept=-1024, PixelSpacing=[0.8, 0.8])
    frames = np.stack([disc(value=550, radius=r) + 12 for r in (9, 11)]).astype(np.int16)
    write_dicom_multiframe(folder / "b_enhanced.dcm", frames, frame_z=[0.0, 3.0])
    assert main(["info", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "note: 2D images and 3D volumes are mixed" in out and "each 2D image is taken as one slice" in out
    total = int(re.search(r"total: (\d+) slices? kept", out).group(1))
    with pytest.warns(UserWarning, match="2D images and 3D volumes are mixed"):
        slices = load_slices(DataConfig(source=str(folder), resolution=32, min_foreground=0.05), progress=False)
    assert len(slices) == total == 3  # two frames of the volume, then the 2D image as one slice
    assert slices.sources[-1] == "a_single.dcm#0" and slices.mapping.unit == "HU"
    run = tmp_path / "run"
    with pytest.warns(UserWarning, match="2D images and 3D volumes are mixed"):
        assert main(["train", "--data", str(folder), "--out", str(run), "--steps", "2", *TINY]) == 0
    assert (run / "checkpoints" / "latest.pt").is_file()


def test_info_reports_mixed_modalities_where_train_stops(tmp_path, capsys, write_dicom_file):
    folder = tmp_path / "mixed"
    for name in ("a", "b"):  # one folder each: the two files share a series UID
        (folder / name).mkdir(parents=True)
    write_dicom_file(folder / "a" / "a_ct.dcm", (disc(value=1100) + 24).astype(np.int16), "CT",
                     RescaleSlope=1, RescaleIntercept=-1024)
    write_dicom_file(folder / "b" / "b_mr.dcm", (disc(value=900) + 10).astype(np.int16), "MR")
    before = listing(tmp_path)
    code = main(["train", "--data", str(folder), "--out", str(tmp_path / "run"), "--steps", "2", *TINY])
    assert code == 2 and "b_mr.dcm: mixed modalities" in one_error_line(capsys.readouterr())
    assert listing(tmp_path) == before
    code = main(["info", str(folder)])  # one image is readable: info lists the other's error, and exits 2 as train
    captured = capsys.readouterr()
    assert code == 2 and "1 image of 2 could not be read" in one_error_line(captured)
    assert "error: mixed modalities (a_ct.dcm is CT, this one is MR)" in captured.out


def test_info_exits_2_when_no_image_can_be_read(tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    (broken / "b.npy").write_bytes(b"garbage")
    (broken / "notes.txt").write_text("not an image")
    assert main(["info", str(broken)]) == 2
    captured = capsys.readouterr()
    line = one_error_line(captured)
    assert str(broken) in line and "no image could be read (2 images failed, 1 other file skipped" in line
    assert "cannot read NIfTI" in captured.out and "cannot read NumPy file" in captured.out  # reasons per file
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "readme.txt").write_text("x")
    assert main(["info", str(junk)]) == 2
    assert "no readable images" in one_error_line(capsys.readouterr())
    assert main(["info", str(write_pictures(tmp_path / "good", 2))]) == 0


@pytest.fixture
def quick_evaluation(monkeypatch, tmp_path):
    suite = importlib.import_module("medgan.metrics.suite")
    monkeypatch.setattr(suite, "SIMILARITY_PAIRS", 20)
    monkeypatch.setattr(suite, "DIVERSITY_PAIRS", 20)
    monkeypatch.setattr(suite, "KID_SUBSETS", 4)
    monkeypatch.setenv("MEDGAN_CACHE_DIR", str(tmp_path / "cache"))


def test_evaluate_leaves_blank_real_images_out_with_a_note(tmp_path, capsys, quick_evaluation, one_thread):
    real = write_pictures(tmp_path / "real", 10)
    Image.fromarray(np.full((32, 32), 40, np.uint8)).save(real / "slice99_blank.png")
    fake = write_pictures(tmp_path / "fake", 10, seed=1)
    out = tmp_path / "report"
    assert main(["evaluate", "--real", str(real), "--fake", str(fake), "--out", str(out), "--quiet"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note: ")]
    assert notes == [f"note: left out 1 blank (constant) real image of {real}: slice99_blank.png"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["inputs"]["real_images"] == 10 and metrics["inputs"]["blank_images_left_out"]["real"] == 1
    assert notes[0][len("note: "):] in metrics["notes"]
    blank = tmp_path / "blank"
    blank.mkdir()
    for index in range(2):
        Image.fromarray(np.full((32, 32), 40 + index, np.uint8)).save(blank / f"b{index}.png")
    before = listing(tmp_path)
    code = main(["evaluate", "--real", str(blank), "--fake", str(fake), "--out", str(tmp_path / "none"), "--quiet"])
    assert code == 2
    assert f"{blank}: every image is blank (constant): 2 left out" in one_error_line(capsys.readouterr())
    assert listing(tmp_path) == before


def test_colour_synthetic_images_warn_like_colour_real_images(tmp_path):
    folder = tmp_path / "fake"
    folder.mkdir()
    rgb = np.stack([disc(value=200), disc(value=100), disc(value=50, radius=5)], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(folder / "colour.png")
    with pytest.warns(UserWarning, match="colour.png: RGB image converted to grey"):
        read_image_folder(folder)
    with pytest.warns(UserWarning, match="colour.png: RGB image converted to grey"):
        read_volume(folder / "colour.png")
