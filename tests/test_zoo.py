"""The pretrained zoo shipped in the package: each entry loads offline by name, is small, says what it was trained
on and what it measured, and makes images of its kind in physical units."""

import json

import numpy as np
import pytest

import medgan
from medgan import zoo
from medgan.inference.bundle import BUNDLE_FILES, read_bundle

EXPECTED = {"brain-t1", "liver-lesions", "ct-denoise", "mr2ct"}
MAX_BYTES = 5 * 2**20


def test_the_zoo_ships_its_four_models_each_under_5_mb():
    entries = {entry.name: entry for entry in zoo.entries()}
    assert set(entries) == EXPECTED
    for entry in entries.values():
        assert entry.size_bytes <= MAX_BYTES, (entry.name, entry.size_bytes)
        assert entry.path.name == entry.name and zoo.entry(entry.name) == entry


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_entry_is_a_checked_bundle_with_its_figures(name):
    entry = zoo.entry(name)
    state = read_bundle(entry.path)  # every file checked against the card's SHA-256
    assert {path.name for path in entry.path.iterdir()} >= {*BUNDLE_FILES, "DATA_CARD.json", "ZOO.json"}
    card = json.loads((entry.path / "DATA_CARD.json").read_text())
    assert card["bundle"]["weights"] == "float16" and card["not_for_diagnostic_use"] is True
    # Trained on embedded data only: no path of anybody's files in the config.
    assert state.config.data.source in ("mni152", "ct-lesions", "ct-phantom", "phantom-ct")
    details = entry.details
    assert details["steps"] == entry.steps > 0 and details["command"].startswith("python3 benchmarks/build_zoo.py")
    assert entry.figures() != "no figures recorded" and details["machine"]
    # float16 weights measured against the float32 run they came from.
    assert details["float16_check"]["max_abs_difference"] >= 0


def test_noise_to_image_entries_sample_in_physical_units():
    brain = medgan.load("brain-t1")
    images = brain.sample(4, seed=0)
    assert images.shape == (4, 64, 64) and images.synthetic and np.isfinite(images.array).all()
    liver = medgan.load("liver-lesions")
    assert len(liver.class_names) == 3
    lesions = liver.sample(3, seed=0, class_name=liver.class_names[0])
    assert lesions.unit == "HU" and lesions.classes == (liver.class_names[0],) * 3


def test_translator_entries_translate_hu():
    denoise = medgan.load("ct-denoise")
    hu = np.random.default_rng(0).normal(60, 40, (64, 64)).astype(np.float32)
    out = denoise.translate(hu)
    assert out.shape == hu.shape and out.unit == "HU" and not out.synthetic
    # A denoiser smooths: less pixel-to-pixel variation than the noisy input.
    assert np.diff(out.array, axis=0).std() < np.diff(hu, axis=0).std()
    mr2ct = medgan.load("mr2ct")
    t1 = np.random.default_rng(1).uniform(0, 500, (64, 64)).astype(np.float32)
    assert len(mr2ct.input_domains) == 2 and mr2ct.translate(t1).unit == "HU"


def test_zoo_names_work_on_the_command_line(tmp_path):
    from medgan.cli import main

    assert main(["sample", "--model", "brain-t1", "--n", "2", "--format", "npy", "--out", str(tmp_path / "s")]) == 0
    assert np.load(tmp_path / "s" / "samples.npy").shape[0] == 2
    assert main(["zoo"]) == 0


def test_a_mistyped_zoo_name_is_one_line_listing_the_zoo(tmp_path, capsys):
    from helpers import assert_one_error_line
    from medgan.cli import main

    code = main(["sample", "--model", "brain-t11", "--out", str(tmp_path / "s")])
    assert_one_error_line(code, capsys, "brain-t11", "brain-t1", "medgan zoo")
    assert not (tmp_path / "s").exists()
