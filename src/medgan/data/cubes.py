"""Volumes as cubes: what 3D training (``data.dims: 3``) and the 3D evaluation read.

Each volume is reoriented to RAS (``slicing.to_canonical``), checked (``volume_rules``: at least ``MIN_VOXELS``
along every axis, spacing no more anisotropic than ``MAX_ANISOTROPY``), mapped to [-1, 1] as a 2D slice of it would
be (``domains.DomainState``: the CT window; an MR normalization fitted per volume), and resampled to a cube of side
``data.resolution`` keeping its physical proportions (``fit_volume``): isotropic voxels of (longest extent / side)
mm, shorter extents centre-padded with background. Cubes are ``[1, D, H, W]`` with D superior, H anterior and
W right (``[X, Y, Z]`` RAS transposed), the layout of ``medgan.metrics`` volumes.

A training set of cubes is a ``SliceSet`` whose ``images`` are ``[N, 1, S, S, S]`` and whose ``spacing`` is the
median cube voxel ``(v, v, v)`` in mm: one "image" per volume, one subject per volume (the file's subject key), so
patient-level splits and DP's subject unit work unchanged. Cubes are held in memory (``S^3`` float32 each: 128 KiB
at 32, 1 MiB at 64).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from medgan.config import DataConfig
from medgan.config.volume_rules import MAX_ANISOTROPY, MIN_VOXELS
from medgan.data.datasets import SliceSet, relative_sources
from medgan.data.domains import DomainState
from medgan.data.labels import read_label_table, sorted_classes
from medgan.data.readers import Volume, discovered_items, file_kind, nifti_shape, progress_over, read_volume
from medgan.data.slicing import BACKGROUND, to_canonical
from medgan.data.sources import SOURCES, VOLUME_SOURCES
from medgan.errors import DataError

VOLUME_FORMATS = "3D NIfTI, a DICOM series, or a NumPy stack [N, D, H, W]"  # what the 3D evaluation reads
TRAINING_FORMATS = "3D NIfTI files or DICOM series"  # what 3D training reads


@dataclass
class VolumeRecord:
    """Where one cube came from: its name under the set's path and its source geometry (RAS order)."""

    name: str
    shape: tuple[int, int, int]  # voxels along x, y, z
    spacing: tuple[float, float, float]  # mm along x, y, z
    voxel_mm: float  # edge of the cube's isotropic voxels

    @property
    def anisotropy(self) -> float:
        return max(self.spacing) / min(self.spacing)


def check_geometry(volume: Volume) -> None:
    """Refuses (one DataError naming the file) a volume with fewer than MIN_VOXELS voxels along an axis, or with
    voxel spacing more anisotropic than MAX_ANISOTROPY."""
    shape, spacing = volume.array.shape, tuple(float(size) for size in volume.spacing)
    if min(shape) < MIN_VOXELS:
        raise DataError(f"volume of {' x '.join(map(str, shape))} voxels; --dims 3 needs at least {MIN_VOXELS} "
                        "voxels along every axis", volume.path)
    if max(spacing) / min(spacing) > MAX_ANISOTROPY:
        raise DataError(f"voxel spacing {' x '.join(f'{size:g}' for size in spacing)} mm is too anisotropic for "
                        f"--dims 3: largest / smallest spacing is {max(spacing) / min(spacing):.3g}, the limit is "
                        f"{MAX_ANISOTROPY:g}; resample it to more even spacing first", volume.path)


def first_flat(items: list[Path]) -> Path | None:
    """The first 2D image among ``items`` known from headers alone (pictures, 2D NIfTI), before any voxel is read."""
    for item in items:
        kind = file_kind(item) if item.is_file() else None
        if kind == "picture" or (kind == "nifti" and len(nifti_shape(item)) == 2):
            return item
    return None


def fit_volume(volume: torch.Tensor, spacing: tuple[float, ...], side: int) -> tuple[torch.Tensor, float]:
    """A ``[D, H, W]`` volume in [-1, 1] resampled to ``[side, side, side]`` with its physical proportions kept.

    Args:
        volume: the volume in model units.
        spacing: mm per voxel along D, H, W.
        side: output voxels per side.

    Returns:
        ``(cube, voxel mm)``: isotropic voxels of (longest extent / side) mm; shorter extents centre-padded with
        background (-1). Down-sampling first averages whole blocks of voxels (``adaptive_avg_pool3d`` by the
        integer part of the factor, an anti-aliasing filter), then interpolates trilinearly.
    """
    extents = [size * step for size, step in zip(volume.shape, spacing)]
    voxel = max(extents) / side
    target = [min(side, max(1, round(extent / voxel))) for extent in extents]
    values = volume.float()[None, None]
    blocks = [max(1, size // goal) for size, goal in zip(volume.shape, target)]
    if max(blocks) > 1:  # anti-aliasing: average whole blocks first, so no voxel is skipped when shrinking
        values = F.adaptive_avg_pool3d(values, [size // block for size, block in zip(volume.shape, blocks)])
    if list(values.shape[2:]) != target:
        values = F.interpolate(values, size=target, mode="trilinear", align_corners=False)
    values = values[0, 0].clamp(-1.0, 1.0)
    padding = []
    for size in reversed(values.shape):  # F.pad lists the last axis first
        before = (side - size) // 2
        padding += [before, side - size - before]
    return F.pad(values, padding, value=BACKGROUND).contiguous(), float(voxel)


def unit_cube(volume: Volume, values: np.ndarray, side: int, name: str) -> tuple[torch.Tensor, VolumeRecord]:
    """``values`` (a RAS ``[X, Y, Z]`` array in [-1, 1] on ``volume``'s grid) as a ``[1, S, S, S]`` cube and its
    record."""
    dhw = torch.from_numpy(np.ascontiguousarray(np.asarray(values, dtype=np.float32).transpose(2, 1, 0)))
    cube, voxel = fit_volume(dhw, tuple(float(size) for size in volume.spacing)[::-1], side)
    shape = tuple(int(size) for size in volume.array.shape)
    return cube[None], VolumeRecord(name, shape, tuple(float(size) for size in volume.spacing), voxel)


def load_cubes(config: DataConfig, progress: bool = True) -> SliceSet:
    """``config.source`` (a folder or file of volumes, or an embedded volume source) as training cubes.

    Args:
        config: the data section (``dims`` 3; ``resolution`` is the cube side; intensity options; ``labels``
            for conditional runs, one row per volume, with attribute columns where the CSV has them).
        progress: a progress bar over the files.

    Returns:
        The set: ``images`` ``[N, 1, S, S, S]`` in [-1, 1], one subject per volume (module docstring).

    Raises:
        DataError: a missing path, 2D images, a volume too small or too anisotropic, an unreadable file.
    """
    if config.source in VOLUME_SOURCES:
        return cubes_of(config, VOLUME_SOURCES.get(config.source)(config), progress)
    if config.source in SOURCES:
        raise DataError(f"the embedded source {config.source!r} gives 2D slices; with data.dims 3 give a folder "
                        f"of volumes or a volume source: {', '.join(VOLUME_SOURCES.names())}", config.source)
    path = Path(config.source).expanduser()
    if not path.exists():
        raise DataError(f"no such file or folder (volume sources: {', '.join(VOLUME_SOURCES.names())})", path)
    items = discovered_items(path)
    flat = first_flat(items)
    if flat is not None:
        raise DataError(f"a 2D image; data.dims 3 (--dims 3) trains on volumes ({TRAINING_FORMATS}); for 2D "
                        "images leave out --dims 3", flat)
    labels, class_names, attributes, attribute_names = [None] * len(items), (), None, ()
    if config.labels:
        table = read_label_table(config.labels, path if path.is_dir() else path.parent)
        rows = [table.row_for(item, path) for item in items]
        class_names = sorted_classes([row.label for row in rows])
        labels = [class_names.index(row.label) for row in rows]
        if table.attribute_names:  # continuous attributes (e.g. age), one row per volume as in 2D
            attributes = torch.tensor([list(row.attributes) for row in rows], dtype=torch.float32)
            attribute_names = tuple(table.attribute_names)
    entries = []
    for item, label in zip(items, labels):
        if file_kind(item) == "numpy":
            raise DataError("3D training reads NIfTI files or DICOM series (a NumPy stack has no geometry)", item)
        name = item.relative_to(path).as_posix() if path.is_dir() else item.name
        entries.append((item, name, label))
    found = _cube_set(config, entries, path, class_names, progress)
    if attributes is not None:
        found.attributes, found.attribute_names = attributes, attribute_names
    return relative_sources(found, path)


def cubes_of(config: DataConfig, volumes: list[Volume], progress: bool = False) -> SliceSet:
    """``volumes`` (in physical units, e.g. ``medgan.data.cohort.mni_cohort``) as cubes of ``config.resolution``,
    one subject per volume, as ``load_cubes`` makes them from files."""
    return _cube_set(config, [(volume, volume.subject, None) for volume in volumes], None, (), progress)


def _cube_set(config: DataConfig, entries: list[tuple[Volume | Path, str, int | None]], root: Path | None,
              class_names: tuple[str, ...] | list[str], progress: bool) -> SliceSet:
    """The cubes of ``entries`` (a volume, or a file to read, with its name and class index) as a SliceSet."""
    state = DomainState(config)
    cubes, records, subjects, labels = [], [], [], []
    for item, name, label in progress_over(entries, progress, "reading volumes"):
        volume = item if isinstance(item, Volume) else read_volume(item, config.nan_policy)
        if volume.array.ndim != 3:
            raise DataError(f"a 2D image; data.dims 3 (--dims 3) trains on volumes ({TRAINING_FORMATS})",
                            volume.path)
        volume = to_canonical(volume)
        check_geometry(volume)
        if max(volume.array.shape) < config.resolution:
            raise DataError(f"volume of {' x '.join(map(str, volume.array.shape))} voxels is smaller than the "
                            f"{config.resolution}-voxel cube (data.resolution): training on it would teach "
                            "interpolation; use a smaller --resolution or larger volumes", volume.path)
        volume = state.check(volume)
        values = state.mapping_for(volume.array).to_unit(volume.array.astype(np.float32, copy=False))
        cube, record = unit_cube(volume, values, config.resolution, name)
        cubes.append(cube)
        records.append(record)
        subjects.append(volume.subject if root is not None else name)
        labels.append(label)
    if not cubes:
        raise DataError("no volumes found", root or config.source)
    voxel = float(np.median([record.voxel_mm for record in records]))
    labelled = labels[0] is not None
    return SliceSet(torch.stack(cubes), state.stored_mapping(pooled=False), (voxel, voxel, voxel), subjects,
                    [str(name) for _, name, _ in entries],
                    torch.tensor(labels, dtype=torch.int64) if labelled else None, tuple(class_names))
