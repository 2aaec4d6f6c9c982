"""Writing phantom patient volumes: one NIfTI per rendering and mask, a JSON sidecar, all marked simulated.

Simulated data, not patient data, and every file says so: the NIfTI header's ``descrip`` is ``SIMULATED_DESCRIP``
(it starts with ``"SYNTHETIC medgan"``, the tag of ``medgan.export``'s NIfTI files) and its ``intent_name`` is
``"synthetic"``; the sidecar has ``"synthetic": true``; the folder gets ``SIMULATED_README.txt``. Layout of
``save_patient_volume(volume, folder)``, one folder per rendering or mask so that the folders pair by file name
(``data.input`` / ``data.source`` of paired training):

* ``<rendering>/<patient>.nii.gz``: CT as int16 HU (``scl_slope`` 1, ``scl_inter`` 0, clipped to -1024..3071,
  rounded), MR as float32 in arbitrary units; e.g. ``ct-portal-dose1/phantom-02000.nii.gz``, ``t2/...``;
* ``labels/``: uint8 tissue labels (``ORGANS``); ``mr-tissues/``: uint8 MR tissues (``MR_TISSUES``), when MR
  was rendered; ``lesions/``: uint8 lesion instances (0 none, k the k-th lesion); ``lesion-classes/``: uint8
  (0 none, 1 + index into ``LESION_CLASSES``); ``segmentation/``: uint8 LiTS-style (0, 1 liver, 2 lesion);
* ``metadata/<patient>.json``: seed, geometry, renderings, label names, each lesion's class and shape in mm.

Every file is written atomically (``medgan.utils.atomic_path``): a reader never sees a half-written one.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from medgan.data.phantom.mr import MR_TISSUES
from medgan.data.phantom.tissue import LESION_CLASSES, ORGANS
from medgan.data.phantom.volumes import PatientVolume

SIMULATED_DESCRIP = "SYNTHETIC medgan phantom: simulated, not patient data"  # NIfTI descrip (80 bytes at most)
INTENT_NAME = "synthetic"  # NIfTI intent_name, as medgan.export writes it
README_NAME = "SIMULATED_README.txt"
CT_RANGE_HU = (-1024, 3071)  # the int16 range CT files are clipped to (12-bit CT, as LiTS stores it)
MASKS = ("labels", "mr-tissues", "lesions", "lesion-classes", "segmentation")
README_TEXT = """SIMULATED PHANTOM PATIENTS

Every image in this folder was rendered by medgan's procedural abdominal phantom (medgan.data.phantom): simulated
CT (projection, Poisson photon noise, filtered back-projection) and simulated MR of made-up anatomy. They show no
real patient, were acquired from no one, and support no clinical or diagnostic conclusion.

Layout: <rendering>/<patient>.nii.gz (CT in HU, int16; MR in arbitrary units, float32), labels/ (tissue labels),
mr-tissues/, lesions/ (lesion instances), lesion-classes/, segmentation/ (0 background, 1 liver, 2 lesion),
metadata/<patient>.json (geometry, renderings, label names, lesions). NIfTI headers: descrip "SYNTHETIC medgan
phantom: simulated, not patient data", intent_name "synthetic".
"""


def _nifti(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
    """Writes ``array`` ([X, Y, Z], stored as its own dtype) with ``affine`` atomically, marked simulated."""
    import nibabel as nib

    from medgan.utils import atomic_path

    image = nib.Nifti1Image(array, affine)
    header = image.header
    header.set_data_dtype(array.dtype)
    header.set_slope_inter(1.0, 0.0)
    header.set_xyzt_units(xyz="mm")
    header["descrip"] = SIMULATED_DESCRIP.encode("ascii")
    header.set_intent("none", name=INTENT_NAME)
    image.set_sform(affine, code="aligned")
    image.set_qform(affine, code="aligned")
    with atomic_path(path) as temporary:
        nib.save(image, str(temporary))


def _metadata(volume: PatientVolume, files: dict[str, Path], folder: Path) -> dict:
    """The sidecar of one patient: what it is, its geometry, renderings, label names and lesions."""
    import medgan

    return {
        "synthetic": True,
        "description": "SIMULATED phantom patient rendered by medgan; not acquired from a patient, not for "
                       "diagnostic use",
        "software": f"medgan {medgan.__version__}",
        "patient": volume.patient,
        "seed": volume.seed,
        "shape": list(volume.labels.shape),
        "axes": "X to the patient's left, Y to posterior, Z to superior (affine: voxel -> RAS+ mm)",
        "spacing_mm": list(volume.spacing_mm),
        "affine": volume.affine.tolist(),
        "heights_mm": list(volume.heights_mm),
        "renderings": {name: asdict(rendering) for name, rendering in volume.renderings.items()},
        "labels": list(ORGANS),
        "mr_tissues": list(MR_TISSUES),
        "lesion_classes": list(LESION_CLASSES),
        "lesions": [
            {"id": number, "class": lesion.kind, "centre_mm": list(lesion.centre), "radius_mm": lesion.radius,
             "z_radius_mm": lesion.z_radius}
            for number, lesion in enumerate(volume.lesions, start=1)
        ],
        "files": {name: path.relative_to(folder).as_posix() for name, path in files.items()},
    }


def save_patient_volume(volume: PatientVolume, folder: str | Path, compress: bool = True) -> dict[str, Path]:
    """Writes one phantom patient: a NIfTI per rendering and mask, its JSON sidecar and the folder's README.

    Args:
        volume: from ``phantom_patient_volume``.
        folder: output folder (created if needed); other patients can be written into the same folder.
        compress: ``.nii.gz`` (default) or ``.nii``.

    Returns:
        Path per written item: each rendering name, each mask of ``MASKS`` that the volume has, ``"metadata"``
        and ``"readme"``.
    """
    from medgan.utils import atomic_write_text

    folder = Path(folder)
    suffix = ".nii.gz" if compress else ".nii"
    arrays: dict[str, np.ndarray] = {}
    for name, image in volume.images.items():
        if volume.renderings[name].modality == "CT":
            arrays[name] = np.clip(np.round(image), *CT_RANGE_HU).astype(np.int16)
        else:
            arrays[name] = image.astype(np.float32)
    masks = {"labels": volume.labels, "mr-tissues": volume.mr_tissues, "lesions": volume.lesion_map,
             "lesion-classes": volume.lesion_class_map, "segmentation": volume.segmentation}
    arrays.update({name: mask.astype(np.uint8) for name, mask in masks.items() if mask is not None})
    files: dict[str, Path] = {}
    for name, array in arrays.items():
        files[name] = folder / name / f"{volume.patient}{suffix}"
        _nifti(array, volume.affine, files[name])
    files["metadata"] = folder / "metadata" / f"{volume.patient}.json"
    atomic_write_text(files["metadata"], json.dumps(_metadata(volume, files, folder), indent=1) + "\n")
    files["readme"] = folder / README_NAME
    atomic_write_text(files["readme"], README_TEXT)
    return files
