"""Derived DICOM series: a processed copy of a user's series (``medgan translate``), not a synthetic one.

Choice documented here and in README: the output is the *same patient's* image, processed. Every file copies
its source file's attributes (patient, study, geometry: position, orientation, spacing, frame of reference),
so it files beside the original in the user's PACS; it adds no identifier that the input did not carry. It
gets a new series (SeriesInstanceUID, SOPInstanceUIDs), ImageType ``DERIVED\\SECONDARY\\PROCESSED``, a
DerivationDescription and SeriesDescription that say medgan processed it and that it is not for diagnostic
use, a SourceImageSequence pointing at the source file, and signed 16-bit pixels with slope 1 / intercept 0
(values in the target's physical units, e.g. HU).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import medgan
from medgan.data.intensity import IntensityMapping
from medgan.errors import DataError

DERIVED_IMAGE_TYPE = ["DERIVED", "SECONDARY", "PROCESSED"]
SERIES_NUMBER_OFFSET = 9000  # the derived series sorts after the scanner's own series


def series_files(item: Path) -> list[Path]:
    """The DICOM files of ``item`` (a file or a series folder) in the reader's slice order.

    The reader (``medgan.data.readers.dicom``) stacks a series by position along the slice normal, else by
    InstanceNumber; the same order maps translated slices back onto their source files.
    """
    import pydicom

    if item.is_file():
        return [item]
    files = [p for p in sorted(item.iterdir()) if p.is_file()]
    headers = []
    for path in files:
        try:
            headers.append((path, pydicom.dcmread(path, stop_before_pixels=True)))
        except Exception:  # noqa: BLE001 - non-DICOM files in a series folder are skipped, as the reader does
            continue
    if not headers:
        raise DataError("no DICOM files", item)

    def position(header: Any) -> float | None:
        orientation, origin = header.get("ImageOrientationPatient"), header.get("ImagePositionPatient")
        if orientation is None or origin is None:
            return None
        normal = np.cross(np.asarray(orientation[:3], float), np.asarray(orientation[3:], float))
        return float(np.asarray(origin, float) @ normal)

    positions = [position(header) for _, header in headers]
    if all(p is not None for p in positions):
        order = np.argsort(positions, kind="stable")
    else:
        order = np.argsort([int(h.get("InstanceNumber", 0) or 0) for _, h in headers], kind="stable")
    return [headers[i][0] for i in order]


def write_derived_dicom(batch: Any, sources: list[Path], frames: np.ndarray, stem: str, note: str,
                        mapping: IntensityMapping) -> list[Path]:
    """One derived file per source file, into an all-or-nothing ``batch`` folder ``stem/``.

    Args:
        batch: the open ``medgan.export.common.FileBatch``.
        sources: the input files, in the order of ``frames``.
        frames: ``[K, rows, cols]`` translated values in physical units.
        stem: the output series folder's name.
        note: the DerivationDescription.
        mapping: the target domain's mapping (window centre and width for display).
    """
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    if len(sources) != frames.shape[0]:
        raise DataError(f"{len(sources)} DICOM files but {frames.shape[0]} translated slices (multi-frame input "
                        "is not written back as DICOM; use --format nifti)", sources[0])
    series_uid = generate_uid()
    written = []
    for index, (source, frame) in enumerate(zip(sources, frames)):
        dataset = pydicom.dcmread(source)
        if frame.shape != (int(dataset.Rows), int(dataset.Columns)):
            raise DataError(f"translated slice {frame.shape} does not match the file's pixel grid", source)
        original_uid = str(dataset.get("SOPInstanceUID", ""))
        pixels = np.clip(np.rint(frame), -32768, 32767).astype(np.int16)
        dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        for keyword in ("SmallestImagePixelValue", "LargestImagePixelValue", "PixelPaddingValue",
                        "RescaleType", "VOILUTSequence", "ModalityLUTSequence"):
            if keyword in dataset:
                delattr(dataset, keyword)
        dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 1, "MONOCHROME2"
        dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 16, 16, 15, 1
        dataset.RescaleSlope, dataset.RescaleIntercept = "1", "0"
        dataset.PixelData = pixels.tobytes()
        dataset.SOPInstanceUID = generate_uid()
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        dataset.SeriesInstanceUID = series_uid
        dataset.SeriesNumber = int(dataset.get("SeriesNumber", 0) or 0) + SERIES_NUMBER_OFFSET
        dataset.ImageType = DERIVED_IMAGE_TYPE
        dataset.DerivationDescription = note[:1024]
        dataset.SeriesDescription = "medgan translate: processed, not for diagnostic use"[:64]
        dataset.SoftwareVersions = f"medgan {medgan.__version__}"
        dataset.BurnedInAnnotation = "NO"
        dataset.WindowCenter = f"{(mapping.low + mapping.high) / 2:.1f}"
        dataset.WindowWidth = f"{mapping.high - mapping.low:.1f}"
        if original_uid:
            reference = pydicom.Dataset()
            reference.ReferencedSOPClassUID = dataset.SOPClassUID
            reference.ReferencedSOPInstanceUID = original_uid
            dataset.SourceImageSequence = [reference]
        name = f"{stem}/{index:04d}.dcm"
        folder = batch.folder / stem
        if not folder.exists():
            folder.mkdir(parents=True)
            batch.created_folders.insert(0, folder)  # removed again if the batch rolls back
        with batch.file(name) as tmp:
            dataset.save_as(tmp, enforce_file_format=True)
        written.append(batch.folder / name)
    return written
