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
            format: the export format (default: png for samples, nifti for a 3D run's volumes and a translated
                image).

        Returns:
            Every path written (all or nothing).
        """
        if self._writer is not None:  # samples: 3D runs' volumes [n, D, H, W] (three spacings) default to NIfTI
            return self._writer(Path(out), format or ("nifti" if len(self.spacing) == 3 else "png"))
        return _save_derived(self, Path(out), format or "nifti")


def _save_derived(images: Images, out: Path, fmt: str) -> list[Path]:
    from medgan.card import CARD_NAME, card_text, export_card, sealed
    from medgan.data.readers.base import Volume
    from medgan.errors import ConfigError
    from medgan.export.common import all_or_nothing
    from medgan.inference.files import write_nifti
    from medgan.run import check_output_folder

    if fmt not in ("nifti", "npy"):
        raise ConfigError(f"a translated image is saved as nifti or npy, not {fmt!r}")
    check_output_folder(out, "out")
    card = export_card(images.source, {"command": "medgan.Images.save", "format": fmt, "files": 1,
                                       "note": "derived from the input images: as private as they are"})
    with all_or_nothing(out) as batch:
        batch.write_text(CARD_NAME, card_text(sealed(card)))
        if fmt == "npy":
            with batch.file("translated.npy") as temporary:
                np.save(temporary, images.array)
            return [out / "translated.npy", out / CARD_NAME]
        spacing = tuple(images.spacing[: images.array.ndim])
        affine = images.affine if images.affine is not None else np.diag([*spacing, *(1.0,) * (4 - len(spacing))])
        # The input's geometry as the translate writer takes it (a gapped series is refused there).
        source = Volume(images.array, affine, spacing, None, Path(images.source), "array", uneven=images.uneven)
        written = write_nifti(batch, "translated.nii.gz", source, np.asarray(images.array),
                              "derived by medgan (translated; not for diagnostic use)")
        return [written, out / CARD_NAME]
