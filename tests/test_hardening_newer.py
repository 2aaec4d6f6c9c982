"""Hardening the newer features (issue #24): pairs CSVs that list a file twice, identity pairs, identifiers in
the shareable evaluation report, DICOM series with a missing slice, library tracebacks inside one-line errors,
bundles into folders of other files and unpaired domains too small to learn from."""

import json
import logging

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from medgan.config import DataConfig
from medgan.data import load_slices
from medgan.errors import DataError

from helpers import cli, listing, write_tiny_brain
from test_translate import paired_run  # noqa: F401  (a tiny trained paired run, a module-scoped fixture)

PAIRED_TINY = ["--steps", "1", "--resolution", "32", "--batch-size", "4", "--quiet",
               "--set", "model.generator_channels=4", "--set", "model.discriminator_channels=4",
               "--set", "model.depth=2", "--set", "train.eval_every=0"]


def square(top: int, left: int, value: float, background: float = 10.0) -> np.ndarray:
    image = np.full((32, 32), background, np.float32)
    image[top:top + 12, left:left + 12] = value
    return image


def write_png(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path)
    return path


# ---------------------------------------------------------------------------------------------------------------
# 1. pairs


@pytest.fixture
def pair_files(tmp_path):
    """Three input/target PNG pairs under tmp_path/data; returns a writer of pairs.csv from its rows."""
    for index, name in enumerate("abc"):
        write_png(tmp_path / "data" / f"{name}-target.png", square(3 + 5 * index, 4, 220.0))
        write_png(tmp_path / "data" / f"{name}-input.png", square(3 + 5 * index, 4, 120.0, 30.0))

    def table(*rows):
        path = tmp_path / "pairs.csv"
        path.write_text("\n".join(["input,target", *rows]) + "\n")
        return path

    return table


@pytest.mark.parametrize("rows, problem", [
    (["data/a-input.png,data/a-target.png", "data/b-input.png,data/b-target.png",
      "./data/a-input.png,data/a-target.png"], "row 4 repeats row 2"),
    (["data/a-input.png,data/a-target.png", "data/b-input.png,data/a-target.png",
      "data/c-input.png,data/a-target.png"], "row 3: target 'data/a-target.png' is already paired on row 2"),
    (["data/a-input.png,data/a-target.png", "data/a-input.png,data/b-target.png"],
     "row 3: input 'data/a-input.png' is already paired on row 2"),
])
def test_a_pairs_csv_lists_each_input_and_target_once(tmp_path, pair_files, capsys, rows, problem):
    table = pair_files(*rows)
    with pytest.raises(DataError) as caught:
        load_slices(DataConfig(source="", pairs=str(table), resolution=32), progress=False)
    assert str(caught.value).startswith(f"{table}: ") and problem in str(caught.value)
    before = listing(tmp_path)
    done = cli("train", "--task", "paired", "--pairs", table, "--out", tmp_path / "run", *PAIRED_TINY)
    capsys.readouterr()
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0] == f"error: {caught.value}", done.stderr
    assert listing(tmp_path) == before


def test_a_mask_may_serve_every_pair(tmp_path, pair_files):
    write_png(tmp_path / "data" / "hole.png", square(8, 8, 1.0, 0.0))
    table = tmp_path / "pairs.csv"
    table.write_text("input,target,mask\n" + "".join(f"data/{n}-input.png,data/{n}-target.png,data/hole.png\n"
                                                     for n in "abc"))
    assert len(load_slices(DataConfig(source="", pairs=str(table), resolution=32), progress=False)) == 3


def test_identity_pairs_warn_in_one_line(tmp_path, pair_files, caplog):
    targets = tmp_path / "data"
    with caplog.at_level(logging.WARNING, logger="medgan.data.pairs"):
        pairs = load_slices(DataConfig(source=str(targets), input=str(targets), resolution=32), progress=False)
    assert len(pairs) == 6
    assert [record.getMessage() for record in caplog.records] == [
        (f"{targets}: every pair has the same file as input and target (is --input the same as --data?): the "
         "model can only learn the identity")]
    caplog.clear()
    table = pair_files("data/a-input.png,data/a-target.png", "data/b-target.png,data/b-target.png")
    with caplog.at_level(logging.WARNING, logger="medgan.data.pairs"):
        load_slices(DataConfig(source="", pairs=str(table), resolution=32), progress=False)
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 1 and "1 of 2 pairs have the same file as input and target (first: b-target.png)" \
        in messages[0] and "\n" not in messages[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="medgan.data.pairs"):  # distinct files: no warning
        load_slices(DataConfig(source="", pairs=str(pair_files("data/a-input.png,data/a-target.png")),
                               resolution=32), progress=False)
    assert not caplog.records


# ---------------------------------------------------------------------------------------------------------------
# 2. the shareable report names no data location


def test_a_report_without_real_images_names_no_user_path(tmp_path, tiny_run, capsys):
    from medgan.evaluation.shareable import path_digest

    real = tmp_path / "Doe_John_1970"
    real.mkdir()
    write_tiny_brain(real / "Doe_John.nii.gz")
    nib.save(nib.Nifti1Image(np.full((32, 32, 12), 7.0, np.float32), np.eye(4)), str(real / "Doe_blank.nii.gz"))
    train = tmp_path / "Roe_Richard_1955"
    train.mkdir()
    write_tiny_brain(train / "Roe_Richard.nii.gz", seed=1)
    outs = {}
    for name, extra in (("private", []), ("shared", ["--no-real-images"])):
        outs[name] = tmp_path / f"report-{name}"
        done = cli("evaluate", "--real", real, "--fake", tiny_run, "--train", train, "--members", real,
                   "--non-members", train, "--out", outs[name], "--max-images", "12", "--quiet", *extra)
        assert done.returncode == 0, done.stderr
        assert "Doe_blank.nii.gz" in done.stderr  # the user's own terminal is told which file was left out
    capsys.readouterr()
    private = (outs["private"] / "metrics.json").read_text()
    assert "Doe_John_1970" in private and "Roe_Richard_1955" in private  # the private copy names them as before
    identifiers = ("Doe_", "Roe_", str(tmp_path), str(tiny_run.parent))
    for path in outs["shared"].iterdir():
        text = path.read_text(encoding="utf-8")
        assert not [word for word in identifiers if word in text], (path.name, [w for w in identifiers if w in text])
    metrics = json.loads((outs["shared"] / "metrics.json").read_text())
    inputs = metrics["inputs"]
    assert inputs["real"] == f"real set (path sha256 {path_digest(real)})"
    assert inputs["train"] == f"training set (path sha256 {path_digest(train)})"
    assert inputs["synthetic"].startswith(f"synthetic set (path sha256 {path_digest(tiny_run)}) (12 generated")
    section = metrics["membership_inference"]
    assert section["members"]["source"] == f"member set (path sha256 {path_digest(real)})"
    assert section["non_members"]["source"] == f"non-member set (path sha256 {path_digest(train)})"
    assert "left out 1 blank (constant) real image of the real set" in metrics["notes"]
    page = (outs["shared"] / "report.html").read_text()
    assert inputs["real"] in page and "Data locations are not named" in page
    private_metrics = json.loads(private)
    for each in (metrics, private_metrics):  # the numbers are the same
        for key in ("inputs", "notes", "timings_s", "membership_inference"):
            each.pop(key)
    assert metrics == private_metrics


def test_embedded_sources_keep_their_names_in_the_shareable_report():
    from medgan.evaluation.shareable import scrub, shared_name

    assert shared_name("mni152", "real set") == "mni152"
    assert shared_name("ct-phantom", "training set") == "ct-phantom"
    named = shared_name("scans", "real set")
    assert scrub(["scans/a.png: bad", "training scans", "scans: left out"], {"scans": named}) == [
        f"{named}: bad", "training scans", f"{named}: left out"]


# ---------------------------------------------------------------------------------------------------------------
# 3. a DICOM series with a missing slice

GAP = "slices 3 and 4 are 5.0 mm apart, the others 2.5 mm: a missing slice"


@pytest.fixture
def gapped_series(tmp_path, write_dicom_series):
    """A CT series of 5 slices 2.5 mm apart whose 4th acquired slice (z = 107.5) is missing."""
    rng = np.random.default_rng(0)
    stored = (rng.normal(560, 15, (6, 32, 32)) + 100 * np.arange(6)[:, None, None]).astype(np.int16)
    folder = tmp_path / "series"
    write_dicom_series(folder, stored, [0, 1, 2, 4, 5])
    return folder


def test_a_series_with_a_missing_slice_reads_with_a_warning_naming_the_gap(gapped_series):
    from medgan.data.readers import read_volume

    with pytest.warns(UserWarning, match=f"uneven slice spacing \\({GAP}\\)") as caught:
        volume = read_volume(gapped_series)
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    assert volume.uneven == GAP and volume.array.shape == (32, 32, 5)
    with pytest.warns(UserWarning, match="uneven slice spacing"):
        slices = load_slices(DataConfig(source=str(gapped_series), resolution=32, min_foreground=0.0),
                             progress=False)
    assert len(slices) == 5  # training on its 2D slices goes on


def test_translate_refuses_nifti_of_a_gapped_series_and_keeps_each_slice_in_dicom(
        paired_run, gapped_series, tmp_path, capsys):  # noqa: F811
    import pydicom

    before = listing(tmp_path)
    with pytest.warns(UserWarning, match="uneven slice spacing"):
        done = cli("translate", "--run", paired_run, "--input", gapped_series, "--out", tmp_path / "out",
                   "--format", "nifti", "--quiet")
    capsys.readouterr()
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: {gapped_series}: {GAP}; NIfTI cannot hold a gap")
    assert listing(tmp_path) == before
    with pytest.warns(UserWarning, match="uneven slice spacing"):
        done = cli("translate", "--run", paired_run, "--input", gapped_series, "--out", tmp_path / "out", "--quiet")
    assert done.returncode == 0, done.stderr
    sources = sorted(gapped_series.iterdir())
    derived = sorted((tmp_path / "out").rglob("*.dcm"))
    acquired = sorted(float(pydicom.dcmread(path).ImagePositionPatient[2]) for path in sources)
    written = sorted(float(pydicom.dcmread(path).ImagePositionPatient[2]) for path in derived)
    assert acquired == written == [100.0, 102.5, 105.0, 110.0, 112.5]


def test_the_python_api_refuses_nifti_of_a_gapped_series_too(paired_run, gapped_series, tmp_path):  # noqa: F811
    import medgan
    from medgan.errors import DataError

    with pytest.warns(UserWarning, match="uneven slice spacing"):
        images = medgan.load(paired_run).translate(gapped_series)
    assert images.uneven is not None and GAP in images.uneven
    with pytest.raises(DataError, match="NIfTI cannot hold a gap"):
        images.save(tmp_path / "nifti")
    assert not (tmp_path / "nifti").exists()
    assert images.save(tmp_path / "npy", format="npy")[0].name == "translated.npy"


# ---------------------------------------------------------------------------------------------------------------
# 4. one-line errors never carry a library's traceback

LIBRARY_TEXT = ("Traceback (most recent call last):\n  File \"/site-packages/pydicom/filereader.py\", line 1060, in "
                "read_partial\n    fileobj.read(length)\nOSError: [Errno 28] No space left on device")


def test_one_line_keeps_no_traceback_from_a_wrapped_message():
    error = DataError(f"unreadable DICOM (OSError: {LIBRARY_TEXT})", "/data/series")
    assert error.one_line() == ("/data/series: unreadable DICOM (OSError: OSError: [Errno 28] No space left on "
                                "device)")
    flat = DataError('cannot read (Traceback (most recent call last): File "x.py", line 3, in f OSError: full)')
    assert flat.one_line() == "cannot read (OSError: full)"
    assert DataError("plain\n  message   with  spaces", "/p").one_line() == "/p: plain message with spaces"


def test_a_dicom_read_failing_with_a_traceback_in_its_text_is_one_line(tmp_path, capsys, monkeypatch,
                                                                        write_dicom_series):
    import pydicom

    stored = np.zeros((4, 16, 16), np.int16)
    stored[:, 4:12, 4:12] = 600
    folder = tmp_path / "series"
    write_dicom_series(folder, stored, [0, 1, 2, 3])
    original = pydicom.dcmread

    def full_disk(path, *args, **kwargs):
        if kwargs.get("defer_size") is None and str(path).endswith("IM0002.dcm"):  # the full read, not discovery
            raise OSError(LIBRARY_TEXT)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(pydicom, "dcmread", full_disk)
    done = cli("info", folder)
    capsys.readouterr()
    assert "Traceback" not in done.stderr + done.stdout
    assert done.returncode == 2
    assert f"   error: {folder / 'IM0002.dcm'}: unreadable DICOM (OSError: [Errno 28] No space left on device)" in \
        done.stdout.splitlines()
    out = tmp_path / "run"
    done = cli("train", "--data", folder, "--out", out, "--steps", "1", "--resolution", "32", "--quiet")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0] == f"error: {folder / 'IM0002.dcm'}: unreadable DICOM (OSError: [Errno 28] No space left on device)"
    assert not out.exists()


# ---------------------------------------------------------------------------------------------------------------
# 5. bundles into folders of other files; unpaired domains too small to learn from


def test_bundle_refuses_a_folder_of_other_files_and_replaces_an_earlier_bundle(tiny_run, tmp_path, capsys):
    from medgan.card import CARD_NAME
    from medgan.inference.bundle import BUNDLE_FILES

    out = tmp_path / "bundle"
    out.mkdir()
    (out / "notes.txt").write_text("Doe, John: scans of 1970\n")
    before = listing(tmp_path)
    done = cli("bundle", "--run", tiny_run, "--out", out)
    capsys.readouterr()
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0] == (f"error: {out}: --out holds other files (notes.txt); a bundle goes into a new or empty "
                        "folder, or replaces an earlier bundle")
    assert listing(tmp_path) == before
    (out / "notes.txt").unlink()
    assert cli("bundle", "--run", tiny_run, "--out", out).returncode == 0  # empty: written
    assert cli("bundle", "--run", tiny_run, "--out", out, "--half").returncode == 0  # an earlier bundle: replaced
    assert sorted(path.name for path in out.iterdir()) == sorted([*BUNDLE_FILES, CARD_NAME])


def test_an_unpaired_domain_of_one_image_warns_in_one_line(tmp_path, write_nifti, caplog):
    from medgan.data.modalities import load_unpaired

    b = tmp_path / "b"
    b.mkdir()
    for index in range(3):
        volume = np.zeros((32, 32, 4), np.float32)
        volume[6:26, 8:24] = 100.0 + index
        write_nifti(b / f"s{index}.nii.gz", volume)
    one = write_png(tmp_path / "a" / "only.png", square(5, 5, 200.0))
    config = DataConfig(source=str(b), domain_a=(str(one),), resolution=32)
    with caplog.at_level(logging.WARNING, logger="medgan.data.modalities"):
        domain_a, domain_b, _ = load_unpaired(config, load_slices, progress=False)
    assert len(domain_a) == 1 and len(domain_b) == 12
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [(f"domain A ({one}) has only 1 image(s) of 1 subject(s): too few to learn a domain from "
                         "(unpaired translation will mostly reproduce them); give at least 8 images of 2 or more "
                         "subjects")]
