"""CT data path: HU through DICOM and NIfTI, LiTS / MSD / MedMNIST layouts, extraction modes, bad inputs."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from medgan.config import DataConfig
from medgan.data import load_slices, read_volume, split_by_subject
from medgan.data.layouts.medmnist import ORGAN_MNIST_CLASSES, load_medmnist
from medgan.data.labels import LabelRow, read_label_table
from medgan.data.phantom import PhantomVolume, phantom_volume, save_lits_pair
from medgan.errors import ConfigError, DataError


CtConfig = DataConfig  # the CT fields (extract, roi_size, split) live on DataConfig


@pytest.fixture(scope="module")
def lits_cases() -> list[PhantomVolume]:
    """Two small phantom patients (128 px of 3.1 mm, 6 slices of 5 mm) with 2 lesions each."""
    return [phantom_volume(seed, n_slices=6, size=128, n_lesions=2, dose=1.0, centre_z_mm=-5.0) for seed in (0, 1)]


@pytest.fixture
def lits_folder(tmp_path: Path, lits_cases) -> Path:
    folder = tmp_path / "lits"
    for index, case in enumerate(lits_cases):
        batch = folder / f"Training Batch {index + 1}"  # the original archive's folder names
        save_lits_pair(case, batch, index, compress=index == 1)
    (folder / "README.txt").write_text("not an image")
    return folder


def _write_ct_series(folder: Path, stored: np.ndarray, slope: float, intercept: float) -> None:
    """One unsigned 16-bit CT DICOM file per slice, with RescaleSlope/RescaleIntercept."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True)
    series = generate_uid()
    for index, frame in enumerate(stored):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        dataset = Dataset()
        dataset.file_meta = meta
        dataset.SOPClassUID, dataset.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        dataset.Modality, dataset.PatientID = "CT", "ct-patient"
        dataset.StudyInstanceUID, dataset.SeriesInstanceUID = "1.2.3", series
        dataset.InstanceNumber = index + 1
        dataset.ImagePositionPatient = [0.0, 0.0, 5.0 * index]
        dataset.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        dataset.PixelSpacing, dataset.SliceThickness = [0.8, 0.8], 5.0
        dataset.RescaleSlope, dataset.RescaleIntercept, dataset.RescaleType = slope, intercept, "HU"
        dataset.set_pixel_data(frame.astype(np.uint16), "MONOCHROME2", 12)
        dataset.save_as(folder / f"slice{index:03d}.dcm", enforce_file_format=True)


def test_dicom_series_reads_back_exact_hu(tmp_path):
    rng = np.random.default_rng(0)
    stored = rng.integers(0, 4096, size=(4, 16, 16)).astype(np.uint16)  # 12-bit CT detector values
    _write_ct_series(tmp_path / "series", stored, slope=1.0, intercept=-1024.0)
    volume = read_volume(tmp_path / "series")
    assert volume.modality == "CT" and 4 in volume.array.shape
    expected = stored.astype(np.float32) - 1024.0
    values = np.sort(volume.array.ravel())
    np.testing.assert_array_equal(values, np.sort(expected.ravel()))  # every HU exact, whatever the axis order
    assert values.min() >= -1024.0 and values.max() <= 3071.0


def test_dicom_rescale_slope_is_applied(tmp_path):
    stored = np.array([[[0, 1000], [2048, 4095]]] * 2, dtype=np.uint16)
    _write_ct_series(tmp_path / "sloped", stored, slope=0.5, intercept=-1000.0)
    values = np.unique(read_volume(tmp_path / "sloped").array)
    np.testing.assert_array_equal(values, [-1000.0, -500.0, 24.0, 1047.5])


def test_nifti_int16_with_scl_slope_reads_back_exact_hu(tmp_path):
    raw = np.arange(-512, 512, dtype=np.int16).reshape(8, 8, 16)
    image = nib.Nifti1Image(raw, np.diag([0.7, 0.7, 2.5, 1.0]))
    image.header.set_data_dtype(np.int16)
    image.header.set_slope_inter(2.0, -24.0)
    nib.save(image, tmp_path / "ct.nii.gz")
    volume = read_volume(tmp_path / "ct.nii.gz")
    np.testing.assert_array_equal(volume.array, raw.astype(np.float32) * 2.0 - 24.0)
    assert volume.spacing == pytest.approx((0.7, 0.7, 2.5))  # the header stores float32


def test_lits_layout_lesion_rois_are_labelled_and_split_by_patient(lits_folder, lits_cases):
    config = CtConfig(source=str(lits_folder), extract="lesion-rois", roi_size=32, resolution=32, window="liver")
    rois = load_slices(config)
    assert rois.class_names == ("liver", "tumour")
    counts = torch.bincount(rois.labels, minlength=2).tolist()
    assert counts[1] >= 2 and counts[0] == counts[1]  # one tumour-free liver ROI per tumour ROI
    assert sorted(set(rois.subjects)) == ["lits-0", "lits-1"]
    assert rois.images.shape[1:] == (1, 32, 32) and rois.spacing == pytest.approx((400 / 128, 400 / 128))
    tumour = rois.images[rois.labels == 1]
    liver = rois.images[rois.labels == 0]
    # Lesions are darker than liver at the ROI centre (cysts and metastasis cores; hemangiomas are mixed).
    assert tumour[:, 0, 14:18, 14:18].mean() < liver[:, 0, 14:18, 14:18].mean()
    train, test = split_by_subject(rois.subjects, 0.5, seed=1)
    assert {rois.subjects[i] for i in train}.isdisjoint(rois.subjects[i] for i in test)


def test_lits_layout_liver_slices_crops_and_plain_slices(lits_folder, lits_cases):
    livers = load_slices(CtConfig(source=str(lits_folder), extract="liver-slices", resolution=32))
    expected = sum(int(((case.segmentation >= 1).mean(axis=(0, 1)) >= 0.01).sum()) for case in lits_cases)
    assert len(livers) == expected == 12
    with_tumour = sum(int((case.segmentation == 2).any(axis=(0, 1)).sum()) for case in lits_cases)
    assert int((livers.labels == 1).sum()) == with_tumour
    assert all(source.split("#")[0].endswith((".nii", ".nii.gz")) for source in livers.sources)
    crops = load_slices(CtConfig(source=str(lits_folder), extract="liver-crops", resolution=32, fit="resize"))
    assert len(crops) == len(livers)
    # A crop to the liver box holds much more liver-bright tissue than the whole slice.
    assert (crops.images > 0.0).float().mean() > 1.5 * (livers.images > 0.0).float().mean()
    plain = load_slices(CtConfig(source=str(lits_folder), resolution=32))
    assert len(plain) == 12 and plain.labels is None and plain.mapping.unit == "HU"


def test_msd_layout_is_detected_and_ignores_macos_companions(tmp_path, lits_cases):
    folder = tmp_path / "Task03_Liver"
    case = lits_cases[0]
    for sub, array in (("imagesTr", np.round(case.image_hu).astype(np.int16)), ("labelsTr", case.segmentation)):
        (folder / sub).mkdir(parents=True)
        nib.save(nib.Nifti1Image(array, case.affine), folder / sub / "liver_3.nii.gz")
        (folder / sub / "._liver_3.nii.gz").write_bytes(b"\x00\x05\x16\x07 resource fork")
    (folder / "imagesTs").mkdir()
    slices = load_slices(CtConfig(source=str(folder), extract="liver-slices", resolution=32))
    assert len(slices) == 6 and set(slices.subjects) == {"liver_3"}
    assert slices.class_names == ("liver", "tumour")


def _write_medmnist(path: Path, images: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> Path:
    arrays = {f"{split}_images": value for split, value in images.items()}
    arrays.update({f"{split}_labels": value for split, value in labels.items()})
    np.savez(path, **arrays)
    return path


def test_medmnist_npz_is_detected_with_organ_names_and_identity_mapping(tmp_path):
    rng = np.random.default_rng(0)
    counts = {"train": 6, "val": 2, "test": 3}
    images = {split: rng.integers(0, 256, size=(count, 28, 28)).astype(np.uint8) for split, count in counts.items()}
    images["train"][0] = 0
    images["train"][1] = 255
    labels = {split: rng.integers(0, 11, size=(len(images[split]), 1)) for split in images}
    path = _write_medmnist(tmp_path / "organamnist.npz", images, labels)
    train = load_slices(CtConfig(source=str(path), resolution=32))
    assert train.images.shape == (6, 1, 32, 32) and train.class_names == ORGAN_MNIST_CLASSES
    assert train.labels.tolist() == labels["train"][:, 0].tolist()
    mapping = train.mapping
    assert (mapping.kind, mapping.low, mapping.high, mapping.unit) == ("identity", 0.0, 255.0, "a.u.")
    assert torch.all(train.images[0] == -1.0) and torch.all(train.images[1] == 1.0)
    assert len(set(train.subjects)) == 6
    test = load_slices(CtConfig(source=str(path), resolution=32, split="test"))
    assert len(test) == 3 and test.sources[0].endswith("#test/0")
    assert len(load_medmnist(path, "all", DataConfig(resolution=32))) == 11


def test_medmnist_rgb_becomes_grey_and_bad_sets_are_refused(tmp_path):
    rgb = np.zeros((2, 28, 28, 3), dtype=np.uint8)
    rgb[..., 1] = 200
    path = _write_medmnist(tmp_path / "pathmnist.npz", {"train": rgb}, {"train": np.array([[0], [4]])})
    grey = load_slices(CtConfig(source=str(path), resolution=32))
    expected = 0.587 * 200 / 255 * 2 - 1
    assert torch.allclose(grey.images, torch.full_like(grey.images, expected), atol=1e-4)
    assert grey.class_names == ("0", "1", "2", "3", "4")
    multi = _write_medmnist(tmp_path / "chestmnist.npz", {"train": rgb[..., 0]}, {"train": np.zeros((2, 14))})
    with pytest.raises(DataError, match="multi-label"):
        load_slices(CtConfig(source=str(multi)))
    cubes = {"train": np.zeros((2, 28, 28, 28), np.uint8)}
    volumes = _write_medmnist(tmp_path / "organmnist3d.npz", cubes, {"train": np.zeros((2, 1))})
    with pytest.raises(DataError, match="3D"):
        load_slices(CtConfig(source=str(volumes)))


def test_segmentation_shape_mismatch_names_both_files_and_shapes(tmp_path):
    folder = tmp_path / "lits"
    folder.mkdir()
    nib.save(nib.Nifti1Image(np.arange(1024, dtype=np.int16).reshape(16, 16, 4), np.eye(4)), folder / "volume-0.nii")
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 5), np.uint8), np.eye(4)), folder / "segmentation-0.nii")
    with pytest.raises(DataError) as caught:
        load_slices(CtConfig(source=str(folder), extract="liver-slices"))
    message = str(caught.value)
    assert "segmentation-0.nii" in message and "volume-0.nii" in message
    assert "(16, 16, 5)" in message and "(16, 16, 4)" in message
    assert caught.value.path == str(folder / "segmentation-0.nii")


def test_mask_modes_need_segmentations_and_a_known_mode(tmp_path, lits_cases):
    folder = tmp_path / "lits"
    folder.mkdir()
    hu = np.round(lits_cases[0].image_hu).astype(np.int16)
    nib.save(nib.Nifti1Image(hu, lits_cases[0].affine), folder / "volume-5.nii")
    with pytest.raises(DataError, match="no segmentation") as caught:
        load_slices(CtConfig(source=str(folder), extract="lesion-rois"))
    assert caught.value.path == str(folder / "volume-5.nii")
    with pytest.raises(ConfigError, match="data.extract"):
        load_slices(CtConfig(source=str(folder), extract="tumours"))


def test_labels_csv_reads_attributes_and_rejects_unknown_files(tmp_path, lits_folder):
    csv_path = tmp_path / "labels.csv"
    rows = ["file,label,age", "Training Batch 1/volume-0.nii,metastasis,61"]
    rows.append("Training Batch 2/volume-1.nii.gz,cyst,47.5")
    csv_path.write_text("\n".join(rows) + "\n")
    table = read_label_table(csv_path, lits_folder)
    assert table.attribute_names == ("age",)
    assert table.rows["Training Batch 1/volume-0.nii"] == LabelRow("metastasis", (61.0,))
    assert table.rows["Training Batch 2/volume-1.nii.gz"].attributes == (47.5,)
    config = CtConfig(source=str(lits_folder), extract="lesion-rois", roi_size=32, resolution=32, labels=str(csv_path))
    rois = load_slices(config)
    assert rois.class_names == ("cyst", "metastasis")
    pairs = {(rois.class_names[label], subject) for label, subject in zip(rois.labels.tolist(), rois.subjects)}
    assert pairs == {("cyst", "lits-1"), ("metastasis", "lits-0")}  # every ROI takes its volume's label
    # ... and its volume's attributes
    ages = {subject: float(age) for subject, age in zip(rois.subjects, rois.attributes[:, 0])}
    assert rois.attribute_names == ("age",) and ages == {"lits-0": 61.0, "lits-1": 47.5}
    bad = tmp_path / "bad.csv"
    bad.write_text("file,label\nTraining Batch 1/volume-0.nii,metastasis\nvolume-9.nii,cyst\n")
    with pytest.raises(DataError) as caught:
        read_label_table(bad, lits_folder)
    assert caught.value.path == str(bad) and "row 3" in str(caught.value) and "volume-9.nii" in str(caught.value)
    not_number = tmp_path / "age.csv"
    not_number.write_text("file,label,age\nTraining Batch 1/volume-0.nii,metastasis,old\n")
    with pytest.raises(DataError, match="row 2: attribute 'age'"):
        read_label_table(not_number, lits_folder)


def test_a_class_without_samples_is_an_error(tmp_path, lits_cases):
    folder = tmp_path / "lits"
    healthy = phantom_volume(4, n_slices=3, size=64, n_lesions=0, dose=None)
    save_lits_pair(lits_cases[0], folder, 0)
    save_lits_pair(healthy, folder, 1)
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("file,label\nvolume-0.nii,metastasis\nvolume-1.nii,hemangioma\n")
    with pytest.raises(DataError, match="class 'hemangioma' has no samples"):
        config = CtConfig(source=str(folder), extract="lesion-rois", roi_size=32, resolution=32, labels=str(csv_path))
        load_slices(config)
    only_healthy = tmp_path / "healthy"
    save_lits_pair(healthy, only_healthy, 0)
    with pytest.raises(DataError, match="no lesion-rois"):
        load_slices(CtConfig(source=str(only_healthy), extract="lesion-rois", roi_size=32, resolution=32))


def test_conditional_training_runs_on_lits_folders_and_medmnist_npz(tmp_path, lits_folder):
    from medgan.cli import main
    from medgan.inference.sampling import generate, load_generator

    from helpers import TINY

    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("file,label,age\nTraining Batch 1/volume-0.nii,metastasis,61\n"
                        "Training Batch 2/volume-1.nii.gz,cyst,47.5\n")
    lits_run = tmp_path / "lits-run"
    assert main(["train", "--data", str(lits_folder), "--labels", str(csv_path), "--task", "conditional",
                 "--set", "data.extract=lesion-rois", "--set", "data.roi_size=32", "--set", "data.window=liver-portal",
                 "--out", str(lits_run), "--steps", "2", *TINY]) == 0
    loaded = load_generator(lits_run)
    assert loaded.class_names == ("cyst", "metastasis") and loaded.attribute_names == ("age",)
    images, mapping = generate(lits_run, 2, class_name="cyst", attributes={"age": 70.0}, loaded=loaded)
    assert images.shape == (2, 1, 32, 32) and mapping.unit == "HU"

    rng = np.random.default_rng(1)
    counts = {"train": 12, "val": 2, "test": 3}
    npz = _write_medmnist(tmp_path / "lesionmnist.npz",
                          {split: rng.integers(0, 256, size=(n, 28, 28)).astype(np.uint8) for split, n in counts.items()},
                          {split: np.arange(n).reshape(-1, 1) % 3 for split, n in counts.items()})
    npz_run = tmp_path / "npz-run"
    assert main(["train", "--data", str(npz), "--task", "conditional",
                 "--out", str(npz_run), "--steps", "2", *TINY]) == 0
    assert load_generator(npz_run).class_names == ("0", "1", "2")
    out = tmp_path / "npz-samples"
    assert main(["sample", "--run", str(npz_run), "--n", "2", "--class", "2", "--out", str(out)]) == 0
    assert len(list(out.glob("*.png"))) == 2
