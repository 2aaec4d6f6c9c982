"""``medgan translate --input FOLDER`` on folders of PNG and of NPY files: each file is translated on its own and
written under its own name, in its own kind, exactly as when it is given alone."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medgan.cli import main

from helpers import assert_one_error_line
from test_translate import paired_run  # noqa: F401  (the module's tiny trained paired run, a pytest fixture)


def translate(run, source, out):
    assert main(["translate", "--run", str(run), "--input", str(source), "--out", str(out), "--quiet"]) == 0
    return sorted(path.name for path in out.iterdir() if not path.name.startswith("DATA_CARD"))


@pytest.mark.parametrize("kind", ["png", "npy"])
def test_a_folder_of_files_is_translated_file_by_file(paired_run, tmp_path, kind):  # noqa: F811
    rng = np.random.default_rng(0)
    folder = tmp_path / "inputs"
    folder.mkdir()
    for name, shape in (("first", (40, 36)), ("second", (32, 48))):
        pixels = rng.integers(0, 256, shape).astype(np.uint8)
        if kind == "png":
            Image.fromarray(pixels).save(folder / f"{name}.png")
        else:
            np.save(folder / f"{name}.npy", pixels.astype(np.float32) - 100.0)
    written = translate(paired_run, folder, tmp_path / "out")
    assert written == [f"first_translated.{kind}", f"second_translated.{kind}"]
    for name, shape in (("first", (40, 36)), ("second", (32, 48))):
        alone = translate(paired_run, folder / f"{name}.{kind}", tmp_path / f"alone-{name}")
        assert alone == [f"{name}_translated.{kind}"]
        if kind == "png":
            together = np.asarray(Image.open(tmp_path / "out" / written[0 if name == "first" else 1]))
            single = np.asarray(Image.open(tmp_path / f"alone-{name}" / alone[0]))
            assert together.dtype == np.uint16
        else:
            together = np.load(tmp_path / "out" / f"{name}_translated.npy")
            single = np.load(tmp_path / f"alone-{name}" / alone[0])
        assert together.shape == shape and np.array_equal(together, single)


def test_two_inputs_that_would_share_an_output_name_are_refused_before_any_work(paired_run, tmp_path,  # noqa: F811
                                                                              capsys):
    for sub in ("a", "b"):
        (tmp_path / "inputs" / sub).mkdir(parents=True)
        Image.fromarray(np.full((32, 32), 90, np.uint8)).save(tmp_path / "inputs" / sub / "slice.png")
    code = main(["translate", "--run", str(paired_run), "--input", str(tmp_path / "inputs"), "--out",
                 str(tmp_path / "out"), "--quiet"])
    assert_one_error_line(code, capsys, "would both be written as slice_translated.png")
    assert not (tmp_path / "out").exists()


def test_npz_inputs_stay_arrays_and_pictures_never_clip_physical_units(paired_run, tmp_path, capsys):  # noqa: F811
    folder = tmp_path / "arrays"
    folder.mkdir()
    hu = np.full((32, 32), -1000.0, np.float32)
    hu[8:24, 8:24] = 40.0
    np.savez(folder / "s1.npz", hu)
    assert translate(paired_run, folder, tmp_path / "out") == ["s1_translated.npy"]
    assert np.load(tmp_path / "out" / "s1_translated.npy").min() == pytest.approx(-1000.0)  # air passed through
    # A 16-bit PNG holds 0..65535: HU below 0 are refused, not clipped.
    code = main(["translate", "--run", str(paired_run), "--input", str(folder / "s1.npz"), "--format", "png16",
                 "--out", str(tmp_path / "png"), "--quiet"])
    assert_one_error_line(code, capsys, "16-bit PNG", "--format npy")
    assert not (tmp_path / "png").exists()
