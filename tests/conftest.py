"""Shared test fixtures: tiny DICOM and NIfTI writers (files are written by the tests, never downloaded)."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads sleep (see medgan.cli)

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pytest


def _dicom_dataset(pixels: np.ndarray, modality: str, series_uid: str, **attributes):
    """A minimal, valid DICOM image dataset holding ``pixels`` (int16 [rows, cols] or [frames, rows, cols])."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage if modality == "CT" else MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Modality = modality
    dataset.PatientID = "patient-7"
    dataset.StudyInstanceUID = "1.2.3.4"
    dataset.SeriesInstanceUID = series_uid
    dataset.set_pixel_data(pixels.astype(np.int16), "MONOCHROME2", 16, generate_instance_uid=False)
    for keyword, value in attributes.items():
        setattr(dataset, keyword, value)
    return dataset


@pytest.fixture
def write_dicom_series() -> Callable[..., list[Path]]:
    """Writes ``stored[k]`` (int16 [K, rows, cols]) as one DICOM file per slice at z = origin + k * gap.

    Files are written in ``file_order`` (slice indices) with both names and InstanceNumbers in that order,
    so a reader must sort by ImagePositionPatient to recover the slices.
    """

    def write(folder: Path, stored: np.ndarray, file_order: Sequence[int], gap: float = 2.5,
              pixel_spacing=(0.5, 0.75), slope: float = 2.0, intercept: float = -1024.0) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for number, index in enumerate(file_order):
            dataset = _dicom_dataset(
                stored[index], "CT", "1.2.3.4.5",
                ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
                ImagePositionPatient=[-20.0, -30.0, 100.0 + index * gap],
                PixelSpacing=list(pixel_spacing), SliceThickness=gap, InstanceNumber=number + 1,
                RescaleSlope=slope, RescaleIntercept=intercept,
            )
            path = folder / f"IM{number:04d}.dcm"
            dataset.save_as(path, enforce_file_format=True)
            paths.append(path)
        return paths

    return write


@pytest.fixture
def write_dicom_multiframe() -> Callable[..., Path]:
    """Writes an enhanced-style multi-frame CT with per-frame positions and a shared rescale (slope 2, -1024)."""

    def write(path: Path, stored: np.ndarray, frame_z: Sequence[float]) -> Path:
        from pydicom.dataset import Dataset
        from pydicom.sequence import Sequence as DicomSequence

        def item(**values) -> Dataset:
            entry = Dataset()
            for keyword, value in values.items():
                setattr(entry, keyword, value)
            return entry

        shared = item(
            PlaneOrientationSequence=DicomSequence([item(ImageOrientationPatient=[1, 0, 0, 0, 1, 0])]),
            PixelMeasuresSequence=DicomSequence([item(PixelSpacing=[0.8, 0.8], SliceThickness=3.0)]),
            PixelValueTransformationSequence=DicomSequence([item(RescaleSlope=2.0, RescaleIntercept=-1024.0)]),
        )
        planes = [item(ImagePositionPatient=[0.0, 0.0, z]) for z in frame_z]
        frames = [item(PlanePositionSequence=DicomSequence([plane])) for plane in planes]
        dataset = _dicom_dataset(
            stored, "CT", "1.2.3.9",
            SharedFunctionalGroupsSequence=DicomSequence([shared]),
            PerFrameFunctionalGroupsSequence=DicomSequence(frames),
        )
        dataset.save_as(path, enforce_file_format=True)
        return path

    return write


@pytest.fixture
def write_dicom_file() -> Callable[..., Path]:
    """Writes one single-frame DICOM file; extra keyword arguments become DICOM attributes."""

    def write(path: Path, stored: np.ndarray, modality: str = "MR", **attributes) -> Path:
        dataset = _dicom_dataset(stored, modality, "1.2.3.7", **attributes)
        dataset.save_as(path, enforce_file_format=True)
        return path

    return write


@pytest.fixture
def write_nifti() -> Callable[..., Path]:
    """Writes ``array`` as NIfTI with ``affine`` (identity by default)."""

    def write(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> Path:
        import nibabel as nib

        nib.save(nib.Nifti1Image(array, np.eye(4) if affine is None else affine), str(path))
        return path

    return write


@pytest.fixture
def head_volume() -> np.ndarray:
    """A 24 x 20 x 16 float32 phantom: a bright ellipsoid (100..200) in zero background, a few empty end slices."""
    x, y, z = np.meshgrid(np.linspace(-1, 1, 24), np.linspace(-1, 1, 20), np.linspace(-1, 1, 16), indexing="ij")
    inside = (x / 0.8) ** 2 + (y / 0.9) ** 2 + (z / 0.7) ** 2 < 1
    return np.where(inside, 150 + 50 * x, 0).astype(np.float32)


@pytest.fixture
def one_thread():
    """One torch thread for the test: on a shared 2-core machine two OpenMP threads can stall each other."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_brain(tmp_path_factory) -> Path:
    """A tiny NIfTI head (``helpers.write_tiny_brain``), shared by the whole session; do not modify it."""
    from helpers import write_tiny_brain

    return write_tiny_brain(tmp_path_factory.mktemp("tiny-data") / "brain.nii.gz")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_brain) -> Path:
    """A 2-step run of ``helpers.TINY`` on ``tiny_brain``, shared by the whole session; copy it to modify it."""
    from helpers import TINY

    from medgan.cli import main

    run = tmp_path_factory.mktemp("tiny-runs") / "run"
    assert main(["train", "--data", str(tiny_brain), "--out", str(run), "--steps", "2", *TINY]) == 0
    return run


@pytest.fixture(scope="session")
def one_step_paired_run(tmp_path_factory) -> Path:
    """A paired (translation) run trained for one step on random tiles: a run with no noise generator."""
    import torch
    from test_paired_task import paired_config

    from medgan.data import IntensityMapping, SliceSet
    from medgan.training.loop import train

    unit = IntensityMapping("percentile", 0.0, 700.0, "a.u.")
    target = torch.rand(8, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    data = SliceSet(target, unit, (1.0, 1.0), [f"p{i % 2}" for i in range(8)], [f"f{i}#0" for i in range(8)],
                    aligned={"input": target.flip(-1)}, mappings={"input": unit})
    run = tmp_path_factory.mktemp("paired") / "paired"
    train(paired_config(train={"steps": 1}), run, progress=False, data=data)
    return run
