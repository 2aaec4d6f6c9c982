"""The inputs of ``medgan evaluate --dims 3``: folders of volumes, each set as ``[N, 1, S, S, S]`` in [-1, 1].

A set is a volume file, a folder of them, or a NumPy stack:

* NIfTI (``.nii``, ``.nii.gz``) and DICOM (a series folder, a multi-frame file), read by ``medgan.data.readers``
  in physical units (HU for CT) with their affine and spacing, and turned to RAS axis order
  (``medgan.data.slicing.to_canonical``), as the 2D path reads volumes before slicing them;
* ``.npy``/``.npz`` stacks ``[N, D, H, W]`` or ``[N, 1, D, H, W]``: N volumes in the layout of ``medgan.metrics``
  volumes (``medgan.metrics.volume_similarity.xyz_to_dhw`` of a RAS array: D superior, H anterior, W right), with
  1 mm voxels (NumPy holds no geometry). Values in [-1, 1] are model units, others physical units decoded with
  the ``.json`` sidecar's mapping if one exists, as the 2D path reads NumPy stacks of synthetic images.

Intensities reach [-1, 1] as in the 2D evaluation (``medgan.data.domains``; options ``medgan.config.DataConfig``):
real and training volumes through their own mapping (the CT window, default ``abdomen``; an MR normalization
fitted per volume); synthetic volumes in physical units through the real set's mapping (its median for MR), the
mapping a generator trained on that data writes its samples back with.

Each volume is then resampled to the cube of side S (``--resolution``) keeping its physical proportions, as the
2D ``resize`` fit does for slices: isotropic voxels of (longest extent / S) mm, the shorter extents centre-padded
with background (-1). Down-sampling first averages whole blocks of voxels (``adaptive_avg_pool3d`` by the integer
part of the factor, an anti-aliasing filter), then interpolates trilinearly. Nothing is cropped: real and
synthetic volumes go through the same steps.

Refused, each as one line naming the file (``medgan.config.volume_rules`` has the limits): 2D images (a PNG,
a 2D NIfTI, a single-frame DICOM, a NumPy stack of 2D images), 2D images mixed with volumes, volumes with fewer than
``MIN_VOXELS`` voxels along an axis, and voxel spacing more anisotropic than ``MAX_ANISOTROPY``. Blank (constant)
real or training volumes are left out with a note, as in 2D.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medgan.config import DataConfig
from medgan.data import IntensityMapping, read_volume
from medgan.data.cubes import VOLUME_FORMATS, VolumeRecord, check_geometry, first_flat, unit_cube
from medgan.data.domains import DomainState
from medgan.data.readers import Volume, discovered_items, file_kind, nifti_shape, progress_over
from medgan.data.readers.base import BlankImageError
from medgan.data.slicing import to_canonical
from medgan.errors import DataError
from medgan.evaluation.inputs import float_array
from medgan.evaluation.shareable import shared_name


@dataclass
class VolumeSet:
    """A resolved set of volumes: ``[N, 1, S, S, S]`` in [-1, 1], the way back to physical units, their origin."""

    volumes: torch.Tensor
    mapping: IntensityMapping | None  # the set's one mapping (None: read in model units)
    description: str
    shared: str  # the description without user paths (``medgan.evaluation.shareable``)
    records: list[VolumeRecord]
    notes: list[str] = field(default_factory=list)
    shared_notes: list[str] = field(default_factory=list)
    skipped: int = 0  # blank volumes left out

    def keep(self, pick: torch.Tensor | None) -> None:
        """Keeps the volumes at the indices ``pick`` (None: all)."""
        if pick is not None:
            self.volumes = self.volumes[pick]
            self.records = [self.records[index] for index in pick.tolist()]

    def geometry(self) -> dict[str, Any]:
        """The source geometry in brief, for metrics.json and the report (no file names)."""
        shapes = np.array([record.shape for record in self.records])
        spacings = np.array([record.spacing for record in self.records])
        voxels = np.array([record.voxel_mm for record in self.records])
        return {"axes": "x, y, z (RAS)", "shape_min": shapes.min(0).tolist(), "shape_max": shapes.max(0).tolist(),
                "spacing_mm_min": spacings.min(0).tolist(), "spacing_mm_max": spacings.max(0).tolist(),
                "largest_anisotropy": float(max(record.anisotropy for record in self.records)),
                "cube_voxel_mm": {"min": float(voxels.min()), "median": float(np.median(voxels)),
                                  "max": float(voxels.max())}}


@dataclass
class _Raw:
    """One volume as read: physical or model-unit values, and the mapping its own file gives (NumPy sidecar)."""

    volume: Volume
    unit: bool
    mapping: IntensityMapping | None
    name: str


def count_volumes(source: str | Path, role: str = "real") -> int:
    """How many volumes ``source`` holds, from its files and NumPy headers alone: nothing is resampled (blank
    volumes, which ``load_volume_set`` leaves out, are counted).

    Raises:
        DataError: a missing path, a folder without images.
    """
    path = Path(str(source)).expanduser()
    if not path.exists():
        raise DataError(f"{role} volumes not found", path)
    total = 0
    for item in discovered_items(path):
        if item.is_file() and file_kind(item) == "numpy":
            shape = np.load(item, mmap_mode="r").shape if item.suffix == ".npy" else float_array(item).shape
            total += shape[0] if len(shape) >= 4 else 1
        else:
            total += 1
    return total


def load_volume_set(source: str | Path, role: str, config: DataConfig, side: int, progress: bool = False,
                    decoder: IntensityMapping | None = None) -> VolumeSet:
    """Reads a set of volumes and brings each to the cube of side ``side`` in [-1, 1] (module docstring).

    Args:
        source: a volume file, a folder of them, or a NumPy stack.
        role: ``"real"``, ``"synthetic"`` or ``"training"``: real and training volumes are mapped with their own
            intensity mapping (and blank ones left out); synthetic volumes in physical units with ``decoder``.
        config: the intensity settings (``modality``, ``window``..., ``nan_policy``).
        side: voxels per side of the cube.
        progress: a progress bar over the files.
        decoder: the real set's mapping, for synthetic volumes in physical units.

    Raises:
        DataError: a missing path, an unreadable file, 2D images, a volume too small or too anisotropic.
    """
    path = Path(str(source)).expanduser()
    if not path.exists():
        raise DataError(f"{role} volumes not found", path)
    items = discovered_items(path)
    _check_declared_dimensions(items)
    state = DomainState(config)
    tensors: list[torch.Tensor] = []
    records: list[VolumeRecord] = []
    blank: list[str] = []
    first_volume: Path | None = None
    for item in progress_over(items, progress, f"reading {role} volumes"):
        name = item.relative_to(path).as_posix() if path.is_dir() else item.name
        try:
            raws = list(_read_item(item, name, config.nan_policy))
        except BlankImageError:
            if role == "synthetic":
                raise
            blank.append(name)
            continue
        for raw in raws:
            if raw.volume.array.ndim != 3:
                raise _flat_error(item, first_volume)
            first_volume = first_volume or item
            try:
                tensor, record = _to_cube(raw, role, state, side, decoder)
            except BlankImageError:  # a constant physical NumPy volume of a real or training set
                blank.append(raw.name)
                continue
            tensors.append(tensor)
            records.append(record)
    label = f"{role} set"
    found = VolumeSet(torch.stack(tensors) if tensors else torch.empty(0, 1, side, side, side),
                      state.stored_mapping(pooled=False) if state.mappings else decoder, str(source),
                      shared_name(source, label), records, skipped=len(blank))
    if blank:
        shown = ", ".join(blank[:3]) + (f" and {len(blank) - 3} more" if len(blank) > 3 else "")
        noun = "volume" if len(blank) == 1 else "volumes"
        found.notes.append(f"left out {len(blank)} blank (constant) {role} {noun} of {source}: {shown}")
        found.shared_notes.append(f"left out {len(blank)} blank (constant) {role} {noun} of the {label}")
    if not tensors:
        raise DataError(f"no {role} volumes left: every one is blank (constant)", path)
    return found


def _check_declared_dimensions(items: list[Path]) -> None:
    """Refuses 2D images found from headers alone (pictures, NIfTI), before any voxel is read."""
    flat = first_flat(items)
    if flat is not None:
        solid = [item for item in items if item.is_file() and file_kind(item) == "nifti" and item != flat
                 and len(nifti_shape(item)) == 3]
        raise _flat_error(flat, solid[0] if solid else None)


def _flat_error(item: Path, volume: Path | None) -> DataError:
    """The error for a 2D image given to the 3D evaluation; ``volume``: a volume of the same set, if one is known."""
    if volume is not None:
        return DataError(f"mixed 2D and 3D inputs ({volume.name} is a volume, this one is a 2D image); --dims 3 "
                         "evaluates volumes only: move the 2D images to another folder", item)
    return DataError(f"a 2D image; --dims 3 evaluates volumes ({VOLUME_FORMATS}); for 2D images leave out "
                     "--dims 3", item)


def _read_item(item: Path, name: str, nan_policy: str) -> Iterator[_Raw]:
    """The volumes of one discovered item: one for a NIfTI file or DICOM series, N for a NumPy stack."""
    if item.is_file() and file_kind(item) == "numpy":
        yield from _numpy_volumes(item, name)
        return
    yield _Raw(read_volume(item, nan_policy), False, None, name)


def _numpy_volumes(path: Path, name: str) -> Iterator[_Raw]:
    """The volumes of a ``[N, D, H, W]`` (or ``[N, 1, D, H, W]``) stack, as RAS ``Volume`` objects with 1 mm voxels."""
    array = float_array(path)
    if array.ndim == 5 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim in (2, 3):
        what = "a 2D image" if array.ndim == 2 else f"a stack of 2D images [N, H, W] {tuple(array.shape)}"
        raise DataError(f"{what}; --dims 3 evaluates volumes: a NumPy stack must be [N, D, H, W] or "
                        "[N, 1, D, H, W]", path)
    if array.ndim != 4:
        raise DataError(f"a NumPy stack of volumes must be [N, D, H, W] or [N, 1, D, H, W], got {array.shape}", path)
    if not np.isfinite(array).all():
        raise DataError("NaN or Inf values", path)
    mapping = _sidecar_mapping(path)
    unit = mapping is None and array.min() >= -1.0 - 1e-4 and array.max() <= 1.0 + 1e-4
    for index, volume in enumerate(array):
        xyz = np.ascontiguousarray(volume.transpose(2, 1, 0))  # [D, H, W] -> [X, Y, Z], xyz_to_dhw's inverse
        label = f"{name}[{index}]"
        yield _Raw(Volume(xyz, np.eye(4), (1.0, 1.0, 1.0), None, path, label), unit, mapping, label)


def _sidecar_mapping(path: Path) -> IntensityMapping | None:
    """The intensity mapping in the ``.json`` beside a NumPy stack (as ``medgan export`` writes it), or None."""
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        return None
    try:
        stored = json.loads(sidecar.read_text(encoding="utf-8")).get("mapping")
        return IntensityMapping.from_dict(stored) if stored else None
    except (json.JSONDecodeError, AttributeError):
        return None


def _to_cube(raw: _Raw, role: str, state: DomainState, side: int,
             decoder: IntensityMapping | None) -> tuple[torch.Tensor, VolumeRecord]:
    """One volume checked, mapped to [-1, 1] and fitted to the cube: ``([1, S, S, S], its record)``."""
    volume = to_canonical(raw.volume)
    check_geometry(volume)
    if raw.unit:
        values = np.clip(volume.array, -1.0, 1.0)
    else:
        mapping = raw.mapping
        if mapping is None and role != "synthetic":
            volume = state.check(volume)
            mapping = state.mapping_for(volume.array)
        if mapping is None:
            mapping = decoder
        if mapping is None:
            raise DataError("synthetic volumes are in physical units but no intensity mapping is known", volume.path)
        values = mapping.to_unit(volume.array.astype(np.float32, copy=False))
    return unit_cube(volume, values, side, raw.name)
