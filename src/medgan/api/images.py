"""``Images``: arrays in physical units with their geometry, as the Python API returns them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value (compare .array yourself)
class Images:
    """Images in physical units (HU for CT, arbitrary units for MR) with their geometry.

    Attributes:
        array: float32; ``[N, H, W]`` for samples of one channel (``[N, C, H, W]`` with several), or the input's
            own shape for a translated image or volume.
        spacing: mm per pixel along each image axis of ``array`` (rows, columns[, slices]).
        unit: ``"HU"``, ``"a.u."`` or ``"label"``.
        synthetic: True for generated images, False for images derived from a real input (translations).
        affine: 4x4 voxel -> RAS+ mm matrix of a translated volume (the input's), else None.
        classes: the class of each sample (conditional models), else None.
        source: what made them (the model's path or zoo name).
        uneven: for a translated DICOM series with a missing slice, what is wrong with its spacing (its ``affine``
            then places slices at the mean spacing: ``save`` refuses NIfTI, npy keeps the values).
    """

    array: np.ndarray
    spacing: tuple[float, ...]
    unit: str
    synthetic: bool = True
    affine: np.ndarray | None = None
    classes: tuple[str, ...] | None = None
    source: str = ""
    uneven: str | None = None
    _writer: Any = field(default=None, repr=False, compare=False)  # samples: (model, unit tensor, seed, class)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of ``array``."""
        return tuple(self.array.shape)

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.array if dtype is None else self.array.astype(dtype)

    def save(self, out: str | Path, format: str | None = None) -> list[Path]:  # noqa: A002 (the CLI's --format)
        """Writes the images as ``medgan sample --format`` (samples) or ``medgan translate`` would.

        Samples take any export format (png, png16, nifti, npy, dicom); each file is marked synthetic and a
        ``DATA_CARD.json`` goes beside them. A translated image or volume is written as NIfTI (``.nii.gz``, with
        its affine) or npy (the physical values as they are), marked as derived.

        Args:
            out: the output folder (for single-file formats a folder gets one file, see ``medgan.export``).
            format: the export format (default: png for samples, nifti for a translated image).

        Returns:
            Every path written (all or nothing).
        """
        if self._writer is not None:
            return self._writer(Path(out), format or "png")
        return _save_derived(self, Path(out), format or "nifti")


def _save_derived(images: Images, out: Path, fmt: str) -> list[Path]:
    import nibabel as nib

    from medgan.card import CARD_NAME, card_text, export_card, sealed
    from medgan.errors import ConfigError, DataError
    from medgan.export.common import all_or_nothing
    from medgan.run import check_output_folder

    if fmt not in ("nifti", "npy"):
        raise ConfigError(f"a translated image is saved as nifti or npy, not {fmt!r}")
    check_output_folder(out, "out")
    if fmt == "nifti" and images.uneven is not None:
        raise DataError(f"{images.uneven}; NIfTI cannot hold a gap (one affine places every slice evenly): save as "
                        "npy, or write a derived DICOM series with Model.translate_files(..., format='dicom')",
                        images.source)
    card = export_card(images.source, {"command": "medgan.Images.save", "format": fmt, "files": 1,
                                       "note": "derived from the input images: as private as they are"})
    with all_or_nothing(out) as batch:
        batch.write_text(CARD_NAME, card_text(sealed(card)))
        if fmt == "npy":
            with batch.file("translated.npy") as temporary:
                np.save(temporary, images.array)
            return [out / "translated.npy", out / CARD_NAME]
        array = images.array if images.array.ndim == 3 else images.array[:, :, None]
        spacing = (*images.spacing[:3], 1.0, 1.0)[:3]
        affine = images.affine if images.affine is not None else np.diag([*spacing, 1.0])
        image = nib.Nifti1Image(np.asarray(array, dtype=np.float32), affine)
        image.header["descrip"] = b"derived by medgan (translated; not for diagnostic use)"
        image.header.set_xyzt_units("mm")
        with batch.file("translated.nii.gz") as temporary:
            nib.save(image, str(temporary))
        return [out / "translated.nii.gz", out / CARD_NAME]
