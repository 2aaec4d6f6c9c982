"""End to end: files / embedded MNI152 -> SliceSet, subject splits, labels, extension points, ``medgan info``."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from medgan.config import DataConfig
from medgan.data import LAYOUTS, SOURCES, describe, load_slices, split_by_subject
from medgan.data.datasets import SliceSet
from medgan.data.domains import kept_slices
from medgan.data.describe import describe_data
from medgan.data.intensity import IntensityMapping, ct_window
from medgan.data.readers import read_volume
from medgan.errors import DataError

SMALL = DataConfig(resolution=32)


@pytest.fixture(scope="module")
def mni() -> SliceSet:
    return load_slices(DataConfig(), progress=False)


def test_mni152_gives_about_a_hundred_upright_axial_slices(mni):
    assert mni.images.shape[1:] == (1, 64, 64) and 100 <= len(mni) <= 150
    assert mni.images.dtype == torch.float32 and mni.images.min() == -1.0 and mni.images.max() <= 1.0
    assert mni.mapping.kind == "percentile" and mni.mapping.unit == "a.u." and len(set(mni.subjects)) == 1
    assert mni.sources[0].startswith("mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz#")
    # Cropped to the volume's foreground box (plus a 5% margin) before resizing: finer than the 233 mm FOV.
    assert 2.8 < mni.spacing[0] == mni.spacing[1] < 233 / 64
    uncropped = load_slices(DataConfig(crop_foreground=False), progress=False)
    assert uncropped.spacing == pytest.approx((233 / 64, 233 / 64))
    assert (uncropped.images > -0.9).float().mean() < (mni.images > -0.9).float().mean()
    foreground = (mni.images[:, 0] > -0.9).float()
    rows = torch.arange(64.0)
    centre_row = (foreground.sum(2) * rows).sum(1) / foreground.sum((1, 2))
    assert centre_row[:10].mean() > 34  # lowest slices: cerebellum is posterior = bottom, so the nose is up
    middle = foreground[len(mni) // 2]
    assert (middle.sum(1) > 0).sum() > (middle.sum(0) > 0).sum()  # head longer front-to-back than wide


def test_nifti_folder_normalizes_each_volume_and_stores_the_median(tmp_path, write_nifti, head_volume):
    write_nifti(tmp_path / "sub-01.nii.gz", head_volume)
    write_nifti(tmp_path / "sub-02.nii.gz", head_volume * 3.0)
    (tmp_path / "notes.txt").write_text("not an image")
    config = replace(SMALL, source=str(tmp_path), min_foreground=0.2)
    slices = load_slices(config, progress=False)
    volume = read_volume(tmp_path / "sub-01.nii.gz")
    first = IntensityMapping("percentile", *np.percentile(head_volume[head_volume > 0], [0.5, 99.5]))
    _, kept, _ = kept_slices(volume, first, config)
    assert 0 < len(kept) < 16 and len(slices) == 2 * len(kept)
    assert slices.subjects == ["sub-01"] * len(kept) + ["sub-02"] * len(kept)
    assert slices.sources[0] == f"sub-01.nii.gz#{kept[0]}"
    assert torch.allclose(slices.images[: len(kept)], slices.images[len(kept) :], atol=1e-5)  # scale removed
    assert slices.mapping.low == pytest.approx(2 * first.low) and slices.mapping.high == pytest.approx(2 * first.high)


def test_ct_series_is_windowed_and_upright(tmp_path, write_dicom_series):
    rng = np.random.default_rng(0)
    stored = rng.integers(400, 700, size=(4, 8, 10)).astype(np.int16)  # HU 2 * stored - 1024 in [-224, 374]
    write_dicom_series(tmp_path / "ct", stored, file_order=[3, 1, 0, 2], pixel_spacing=(0.5, 0.5))
    config = replace(SMALL, source=str(tmp_path / "ct"), window="liver", fit="pad", min_foreground=0.0)
    slices = load_slices(config, progress=False)
    assert slices.mapping == ct_window(30, 150) and slices.spacing == (0.5, 0.5)
    expected = np.clip((stored * 2.0 - 1024.0 - 30.0) / 75.0, -1, 1)
    np.testing.assert_allclose(slices.images[:, 0, 12:20, 11:21].numpy(), expected, atol=1e-6)
    assert slices.sources == [f"ct#{k}" for k in range(4)] and set(slices.subjects) == {"patient-7"}


def test_pictures_share_one_pooled_mapping_and_labels(tmp_path):
    for name, brightness in [("a.png", 100), ("b.png", 150), ("c.png", 200)]:
        picture = np.zeros((20, 16), dtype=np.uint8)
        picture[4:16, 3:13] = brightness
        picture[10, 8] = brightness + 40
        Image.fromarray(picture).save(tmp_path / name)
    (tmp_path / "labels.csv").write_text("file,label\na.png,cyst\nb.png,metastasis\nc.png,cyst\n")
    config = replace(SMALL, source=str(tmp_path), labels=str(tmp_path / "labels.csv"), min_foreground=0.9)
    slices = load_slices(config, progress=False)
    assert len(slices) == 3  # 2D images are kept whatever min_foreground says
    assert slices.class_names == ("cyst", "metastasis") and slices.labels.tolist() == [0, 1, 0]
    centre = slices.images[:, 0, 16, 16]
    assert centre[0] < centre[1] < centre[2]  # one shared mapping keeps the brightness order
    (tmp_path / "labels.csv").write_text("file,label\na.png,cyst\n")
    with pytest.raises(DataError, match="labels.csv: no row for b.png"):
        load_slices(config, progress=False)


def test_no_slice_passes_the_filter(tmp_path, write_nifti, head_volume):
    write_nifti(tmp_path / "tiny.nii.gz", head_volume)
    with pytest.raises(DataError, match="tiny.nii.gz: no slice has a foreground fraction of at least 0.99"):
        load_slices(replace(SMALL, source=str(tmp_path / "tiny.nii.gz"), min_foreground=0.99), progress=False)


def test_mixed_modalities_are_refused(tmp_path, write_nifti, head_volume):
    write_nifti(tmp_path / "a.nii.gz", head_volume)
    write_nifti(tmp_path / "b.nii.gz", head_volume - 1000.0)
    with pytest.raises(DataError, match="b.nii.gz: mixed modalities"):
        load_slices(replace(SMALL, source=str(tmp_path)), progress=False)


def test_missing_source_names_embedded_sources():
    with pytest.raises(DataError, match="no_such_dir: no such file or folder.*mni152"):
        load_slices(replace(SMALL, source="/tmp/no_such_dir"), progress=False)


def test_layouts_and_sources_are_consulted_first(tmp_path, monkeypatch, mni):
    def lits_like(path, config):
        return mni if (path / "layout-marker.txt").exists() else None

    monkeypatch.setitem(LAYOUTS._items, "aa-test-layout", lits_like)
    monkeypatch.setitem(SOURCES._items, "zz-test-source", lambda config: mni)
    (tmp_path / "layout-marker.txt").write_text("detected by name only")
    assert load_slices(replace(SMALL, source=str(tmp_path)), progress=False) is mni
    assert load_slices(replace(SMALL, source="zz-test-source"), progress=False) is mni


def test_split_by_subject_has_no_leakage():
    subjects = [f"patient-{i % 7}" for i in range(40)]
    train, test = split_by_subject(subjects, test_fraction=0.3, seed=1)
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(40))
    assert not {subjects[i] for i in train} & {subjects[i] for i in test}
    assert len({subjects[i] for i in test}) == 2  # round(0.3 * 7) subjects
    again = split_by_subject(list(reversed(subjects)), 0.3, 1)[1]
    assert {subjects[::-1][i] for i in again} == {subjects[i] for i in test}  # depends on the set, not the order
    assert len(split_by_subject(subjects, 0.0, 1)[1]) == 0
    with pytest.raises(DataError, match="1 subject"):
        split_by_subject(["mni"] * 5, 0.2, 0)


def test_describe_reports_files_skips_and_kept_slices(tmp_path, write_nifti, head_volume):
    write_nifti(tmp_path / "brain.nii.gz", head_volume)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "broken.nii.gz").write_bytes(b"\x1f\x8b truncated")
    config = replace(SMALL, min_foreground=0.2)
    facts = describe_data(str(tmp_path), config)
    by_name = {f["path"]: f for f in facts["files"]}
    assert facts["skipped"] == [("notes.txt", "not an image")]
    assert "cannot read NIfTI" in by_name["broken.nii.gz"]["error"]
    brain = by_name["brain.nii.gz"]
    assert brain["shape"] == (24, 20, 16) and brain["modality"] == "MR" and brain["slices"] == 16
    assert brain["kept"] == len(load_slices(replace(config, source=str(tmp_path / "brain.nii.gz")), progress=False))
    assert brain["intensity"]["min"] == 0.0 and brain["intensity"]["max"] == pytest.approx(float(head_volume.max()))
    text = describe(str(tmp_path), config)
    assert "skipped notes.txt: not an image" in text and "error: cannot read NIfTI" in text
    assert "shape 24 x 20 x 16" in text and f"16 axial slices, {brain['kept']} kept" in text


def test_describe_mni152_counts_the_same_slices(mni):
    facts = describe_data("mni152")
    assert facts["kind"] == "embedded" and facts["total_kept"] == len(mni)
    assert facts["files"][0]["shape"] == (197, 233, 189)
