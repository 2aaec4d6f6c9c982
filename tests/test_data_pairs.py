"""Paired data (``medgan.data.pairs``): folders matched by name, CSVs, derived pairs, true phantom pairs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medgan.config import DataConfig
from medgan.data import load_slices
from medgan.data.degrade import parse_degradation
from medgan.data.pairs import degraded_pairs, one_hot
from medgan.data.phantom import phantom_volume, save_lits_pair
from medgan.data.phantom.pairs import phantom_pairs, render_pair
from medgan.data.phantom.tissue import ORGANS
from medgan.data.spec import DataSpec, spec_of
from medgan.errors import ConfigError, DataError


def _square(size: int, top: int, left: int, value: float, background: float = 0.0, side: int = 10) -> np.ndarray:
    image = np.full((size, size), background, dtype=np.float32)
    image[top : top + side, left : left + side] = value
    return image


def _png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)).save(path)
    return path


def _config(**values) -> DataConfig:
    return DataConfig(**{"resolution": 32, "fit": "pad", **values})


# --------------------------------------------------------------------------------------------------------
# data.input: folders matched by name


def test_png_folders_pair_by_name(tmp_path):
    places = {"b": (4, 6), "a": (14, 3), "c": (8, 18)}  # a different square per name
    for name, (top, left) in places.items():
        _png(tmp_path / "targets" / f"{name}.png", _square(32, top, left, 200.0))
        _png(tmp_path / "inputs" / f"{name}.png", _square(32, top, left, 90.0, 20.0))  # same place, other contrast
    pairs = load_slices(_config(source=str(tmp_path / "targets"), input=str(tmp_path / "inputs")), progress=False)
    assert pairs.sources == ["a.png#0", "b.png#0", "c.png#0"] and list(pairs.aligned) == ["input"]
    assert pairs.aligned["input"].shape == pairs.images.shape == (3, 1, 32, 32)
    # Each input sits on its own target: the same square, in its own normalization.
    assert torch.equal(pairs.aligned["input"] > 0, pairs.images > 0)
    assert spec_of(pairs).domains[1].name == "input" and pairs.degradation == ""


def test_nifti_folders_pair_by_name_across_suffixes_and_subfolders(tmp_path, write_nifti):
    rng = np.random.default_rng(0)
    for index, name in enumerate(["p1/scan", "p2/scan"]):
        target = np.full((24, 24, 4), -1000.0, dtype=np.float32)
        target[4 + index : 16 + index, 6:18, :] = 60.0
        noisy = target + rng.normal(0.0, 20.0, target.shape).astype(np.float32)
        (tmp_path / "routine" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "low" / name).parent.mkdir(parents=True, exist_ok=True)
        write_nifti(tmp_path / "routine" / f"{name}.nii.gz", target)
        write_nifti(tmp_path / "low" / f"{name}.nii", noisy)
    config = _config(source=str(tmp_path / "routine"), input=str(tmp_path / "low"), min_foreground=0.05)
    pairs = load_slices(config, progress=False)
    assert len(pairs) == 8 and pairs.sources[0].startswith("p1/scan.nii.gz#")
    assert pairs.mappings["input"] == pairs.mapping  # a CT input takes the target's window
    difference = pairs.mapping.to_physical(pairs.aligned["input"]) - pairs.mapping.to_physical(pairs.images)
    assert float(difference[pairs.images > 0].std()) == pytest.approx(20.0, rel=0.3)


def test_dicom_series_folders_pair_by_folder_name(tmp_path, write_dicom_series):
    stored = np.zeros((3, 16, 16), dtype=np.int16)
    stored[:, 4:12, 4:12] = 600  # 1200 - 1024 = 176 HU in air (0 * 2 - 1024)
    write_dicom_series(tmp_path / "targets" / "series1", stored, [0, 1, 2])
    write_dicom_series(tmp_path / "inputs" / "series1", stored + 10, [2, 1, 0])
    config = _config(source=str(tmp_path / "targets"), input=str(tmp_path / "inputs"), min_foreground=0.05)
    pairs = load_slices(config, progress=False)
    assert len(pairs) == 3 and all(source.startswith("series1#") for source in pairs.sources)
    assert torch.equal(pairs.aligned["input"] > -0.9, pairs.images > -0.9)


def test_two_single_files_pair_whatever_their_names(tmp_path):
    target = _png(tmp_path / "t1.png", _square(32, 5, 5, 200.0))
    source = _png(tmp_path / "other-name.png", _square(32, 5, 5, 100.0))
    pairs = load_slices(_config(source=str(target), input=str(source)), progress=False)
    assert len(pairs) == 1 and pairs.aligned["input"].shape == (1, 1, 32, 32)


def test_unmatched_names_are_one_line_naming_the_first_and_the_count(tmp_path):
    for name in ("a", "b", "c"):
        _png(tmp_path / "targets" / f"{name}.png", _square(32, 5, 5, 200.0))
    for name in ("a", "x"):
        _png(tmp_path / "inputs" / f"{name}.png", _square(32, 5, 5, 200.0))
    with pytest.raises(DataError) as caught:
        load_slices(_config(source=str(tmp_path / "targets"), input=str(tmp_path / "inputs")), progress=False)
    message = str(caught.value)
    assert message.startswith(str(tmp_path / "targets" / "b.png")) and "3 unmatched" in message
    assert "\n" not in message


def test_files_have_no_held_out_split(tmp_path):
    _png(tmp_path / "targets" / "a.png", _square(32, 5, 5, 200.0))
    _png(tmp_path / "inputs" / "a.png", _square(32, 5, 5, 200.0))
    config = _config(source=str(tmp_path / "targets"), input=str(tmp_path / "inputs"))
    assert len(load_slices(replace(config, split="all"), progress=False)) == 1
    derived = _config(source=str(tmp_path / "targets"), degrade="inpaint", split="test")
    for other in (replace(config, split="test"), derived):
        with pytest.raises(ConfigError, match="data.split"):
            load_slices(other, progress=False)


def test_missing_input_folder_is_named(tmp_path):
    _png(tmp_path / "targets" / "a.png", _square(32, 5, 5, 200.0))
    with pytest.raises(DataError, match="data.input") as caught:
        load_slices(_config(source=str(tmp_path / "targets"), input=str(tmp_path / "nope")), progress=False)
    assert str(caught.value).startswith(str(tmp_path / "nope"))


def test_pairs_of_another_shape_name_both_files(tmp_path):
    _png(tmp_path / "targets" / "a.png", _square(32, 5, 5, 200.0))
    _png(tmp_path / "inputs" / "a.png", _square(30, 5, 5, 200.0))
    with pytest.raises(DataError) as caught:
        load_slices(_config(source=str(tmp_path / "targets"), input=str(tmp_path / "inputs")), progress=False)
    message = str(caught.value)
    assert str(tmp_path / "targets" / "a.png") in message and str(tmp_path / "inputs" / "a.png") in message
    assert "shape" in message and "\n" not in message


def test_pairs_of_another_spacing_name_both_files(tmp_path, write_nifti):
    volume = np.zeros((16, 16, 3), dtype=np.float32)
    volume[4:12, 4:12] = 100.0
    for folder in ("t", "i"):
        (tmp_path / folder).mkdir()
    target = write_nifti(tmp_path / "t" / "a.nii.gz", volume, np.diag([1.0, 1.0, 2.0, 1.0]))
    source = write_nifti(tmp_path / "i" / "a.nii.gz", volume, np.diag([1.5, 1.0, 2.0, 1.0]))
    with pytest.raises(DataError) as caught:
        load_slices(_config(source=str(tmp_path / "t"), input=str(tmp_path / "i")), progress=False)
    message = str(caught.value)
    assert str(target) in message and str(source) in message and "spacing" in message


# --------------------------------------------------------------------------------------------------------
# data.pairs: a CSV


def _csv_pairs(tmp_path: Path, rows: list[str], header: str = "input,target,mask") -> Path:
    for name, (top, left) in {"a": (3, 4), "b": (12, 15)}.items():
        _png(tmp_path / "data" / f"{name}-target.png", _square(32, top, left, 220.0))
        _png(tmp_path / "data" / f"{name}-input.png", _square(32, top, left, 120.0, 30.0))
        _png(tmp_path / "data" / f"{name}-mask.png", _square(32, top + 2, left + 2, 1.0, 0.0, side=4))
    table = tmp_path / "pairs.csv"
    table.write_text("\n".join([header, *rows]) + "\n")
    return table


def test_csv_pairs_with_a_mask_column(tmp_path):
    rows = [f"data/{n}-input.png,data/{n}-target.png,data/{n}-mask.png" for n in ("b", "a")]
    table = _csv_pairs(tmp_path, rows)
    pairs = load_slices(_config(pairs=str(table)), progress=False)
    assert pairs.sources == ["data/b-target.png#0", "data/a-target.png#0"]  # CSV order, relative to the CSV
    assert list(pairs.aligned) == ["input", "mask"] and "mask" not in pairs.mappings
    mask = pairs.aligned["mask"]
    assert set(mask.unique().tolist()) == {-1.0, 1.0} and int((mask[1] > 0).sum()) == 16
    assert bool((pairs.images[mask > 0] > 0).all())  # each mask lies on its own target's square


@pytest.mark.parametrize("header, rows, problem", [
    ("source,target", ["data/a-input.png,data/a-target.png"], "input and target columns"),
    ("input,target", [], "no rows"),
    ("input,target", ["data/a-input.png,data/missing.png"], "row 2: target file 'data/missing.png' does not exist"),
    ("input,target", ["data/a-input.png,data/a-target.png", "data/b-input.png,"], "row 3: empty target"),
])
def test_bad_csvs_are_one_line_naming_the_csv_and_row(tmp_path, header, rows, problem):
    table = _csv_pairs(tmp_path, rows, header)
    with pytest.raises(DataError) as caught:
        load_slices(_config(pairs=str(table)), progress=False)
    message = str(caught.value)
    assert message.startswith(str(table)) and problem in message and "\n" not in message


def test_missing_csv_is_named(tmp_path):
    with pytest.raises(DataError, match="data.pairs"):
        load_slices(_config(pairs=str(tmp_path / "none.csv")), progress=False)


# --------------------------------------------------------------------------------------------------------
# derived pairs and true phantom pairs


def test_degradation_is_recorded_in_the_spec(tmp_path):
    _png(tmp_path / "x.png", _square(32, 8, 8, 200.0, side=16))
    pairs = load_slices(_config(source=str(tmp_path / "x.png"), degrade="downsample:4"), progress=False)
    spec = spec_of(pairs)
    assert pairs.degradation == spec.degradation == "downsample:4"
    assert DataSpec.from_dict(spec.to_dict()) == spec and [d.name for d in spec.domains] == ["image", "input"]


def test_one_hot_channels():
    labels = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    encoded = one_hot(labels, 2)
    assert encoded.shape == (1, 2, 2, 2)
    assert encoded[0, 0].tolist() == [[-1.0, 1.0], [-1.0, -1.0]]
    assert encoded[0, 1].tolist() == [[-1.0, -1.0], [1.0, -1.0]]  # label 3 has no channel


def test_lits_segmentations_become_a_two_channel_input(tmp_path):
    save_lits_pair(phantom_volume(3, n_slices=3, size=64, n_lesions=1), tmp_path / "lits", 0)
    config = DataConfig(source=str(tmp_path / "lits"), degrade="mask", resolution=32)
    pairs = load_slices(config, progress=False)
    labels = pairs.aligned["input"]
    assert labels.shape == (len(pairs), 2, 32, 32) and pairs.subjects[0] == "lits-0"
    assert bool((labels[:, 0] > 0).any()) and int((labels > 0).sum(1).max()) == 1


def test_phantom_pairs_share_anatomy_with_their_own_noise():
    routine, low = render_pair(7, -10.0, 64, 0.25)
    assert np.array_equal(routine.truth_hu, low.truth_hu) and np.array_equal(routine.organ_labels, low.organ_labels)
    assert not np.array_equal(routine.image_hu, low.image_hu)
    assert (low.image_hu - low.truth_hu).std() > (routine.image_hu - routine.truth_hu).std()


def test_phantom_train_and_test_patients_are_disjoint():
    train = phantom_pairs("train", 64, None, patients=3)
    test = phantom_pairs("test", 64, None, patients=3)
    every = phantom_pairs("all", 64, None, patients=3)
    assert set(train.patients).isdisjoint(test.patients) and len(set(train.patients)) == 3
    assert set(every.patients) == set(train.patients) | set(test.patients)
    with pytest.raises(Exception, match="data.split"):
        phantom_pairs("val", 64, None, patients=1)


def test_phantom_lowdose_and_mask_pairs():
    config = DataConfig(source="ct-phantom", degrade="lowdose:0.25", resolution=32, split="test")
    low = degraded_pairs(config, parse_degradation(config.degrade), progress=False, patients=2)
    assert len(low) == 4 and low.subjects[0] == "phantom-02000" and low.degradation == "lowdose:0.25"
    assert low.mappings["input"] == low.mapping and not torch.equal(low.aligned["input"], low.images)
    masks = degraded_pairs(config, parse_degradation("mask"), progress=False, patients=2)
    assert masks.aligned["input"].shape == (4, len(ORGANS) - 1, 32, 32) and masks.mappings == {}
    assert int((masks.aligned["input"] > 0).sum(1).max()) == 1
