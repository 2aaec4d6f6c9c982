"""Intensity domains: the volumes of one kind in a dataset, and how each volume becomes unit-space slices.

A plain dataset has one domain; aligned data (``datasets.aligned_slices_from_volumes``) has one per kind of
co-registered image (e.g. low-dose CT, routine-dose CT, a liver mask). Per domain, ``DomainState`` keeps the
inputs consistent (no mix of CT and MR, no image smaller than ``slicing.MIN_SIDE``), chooses each volume's
intensity mapping (``volume_mapping``) and the one mapping stored with the dataset. ``kept_slices`` gives a
volume's unit-space slices and those that pass the foreground filter. ``medgan info`` runs the same
``DomainState`` checks, so it accepts and refuses exactly what training does.

2D images mixed with 3D volumes (a 2D CT next to a multi-frame CT) are accepted with a warning: the volumes are
sliced, and each 2D image is one slice with its own mapping, like a one-slice volume.

Aligned groups (``aligned_slices``): each group holds co-registered volumes of one subject, one per domain,
e.g. ``{"input": low_dose, "target": routine_dose, "mask": liver}``. Every domain takes the primary domain's
geometry, so the tiles stay pixel-aligned:

* one voxel grid: shapes and spacings must match (checked); the primary's affine orients every domain, as a
  LiTS mask shares its volume's grid whatever its own header says;
* the same kept slice indices, decided on the primary domain's foreground fraction;
* the same crop box: the union of every domain's foreground over the kept slices;
* the same fit to ``config.resolution`` (a label map resampled nearest-neighbour on the same pixel centres).

A domain with ``context`` K (2.5D inputs, ``data.context``) gives each kept slice with its K neighbours on each
side, ``[kept, 2K + 1, h, w]`` in ``slicing.neighbour_indices`` order (the slice first): neighbours are taken from
the whole volume, kept or not, and replicate the end slice past either end, as ``medgan translate`` feeds a
volume. 2D images have no neighbours and are refused there.

Each image domain has its own intensity settings (a CT domain windowed, an MR domain normalized), mapped and
stored like a plain dataset's; a label-map domain keeps its label values (padding 0) and has no mapping. 2D
images in groups are mapped per group (not pooled) and, like plain 2D images, neither filtered nor cropped.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Mapping

import numpy as np

from medgan.config import DataConfig
from medgan.data.intensity import IntensityMapping, combine_mappings, ct_window_from, detect_modality, mri_mapping
from medgan.data.readers import Volume, check_volume
from medgan.data.slicing import (
    FOREGROUND_THRESHOLD,
    check_slice_size,
    crop_to_box,
    foreground_box,
    foreground_fraction,
    in_plane_spacing,
    neighbour_indices,
    slice_shape,
    to_canonical,
    upright_slices,
)
from medgan.errors import DataError


@dataclass(frozen=True)
class Domain:
    """How one domain of aligned groups becomes tiles.

    Attributes:
        config: the domain's intensity settings (``modality``, ``window``/``window_level``/``window_width``,
            ``normalize``, ``percentiles``, ``nan_policy``); None takes the main config's.
        label_map: the domain holds label values (a segmentation): kept as they are, resampled
            nearest-neighbour, with no intensity mapping.
        context: stack this many neighbouring slices on each side with each kept slice (``aligned_slices``).
    """

    config: DataConfig | None = None
    label_map: bool = False
    context: int = 0  # 2.5D inputs (``data.context``): neighbouring slices on each side stacked with each slice


def dataset_modality(volume: Volume, config: DataConfig) -> tuple[str, str]:
    """``("CT" or "MR", reason)`` for one volume under ``config.modality``."""
    return detect_modality(volume.modality, volume.array, config.modality)


def volume_mapping(array: np.ndarray, modality: str, config: DataConfig) -> IntensityMapping:
    """The CT window of ``config`` for CT; an MRI normalization fitted to ``array`` for MR."""
    if modality == "CT":
        return ct_window_from(config.window, config.window_level, config.window_width)
    return mri_mapping(array, config.normalize, config.percentiles)


def kept_slices(
    volume: Volume, mapping: IntensityMapping, config: DataConfig
) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Unit-space upright slices of ``volume`` along ``config.axis``, the indices kept, and their spacing.

    3D slices are kept when their foreground fraction is at least ``config.min_foreground``; a 2D image is
    always kept.

    Returns:
        ``(slices [S, H, W] in [-1, 1], kept indices, (row, column) mm per pixel)``.
    """
    slices, spacing = mapped_slices(volume, mapping, config.axis)
    if volume.array.ndim == 2:
        return slices, np.array([0]), spacing
    return slices, np.flatnonzero(foreground_fraction(slices) >= config.min_foreground), spacing


def mapped_slices(
    volume: Volume, mapping: IntensityMapping | None, axis: int
) -> tuple[np.ndarray, tuple[float, float]]:
    """All upright slices of ``volume`` along ``axis`` as float32, mapped to [-1, 1] (raw values for None).

    Returns:
        ``(slices [S, H, W], (row, column) mm per pixel)``.

    Raises:
        DataError: slices smaller than ``slicing.MIN_SIDE`` pixels on a side.
    """
    canonical = to_canonical(volume)
    check_slice_size(slice_shape(canonical.array.shape, axis), volume.path, axis if volume.array.ndim == 3 else None)
    values = canonical.array if mapping is None else mapping.to_unit(canonical.array)
    slices = upright_slices(values.astype(np.float32, copy=False), axis)
    return slices, in_plane_spacing(canonical.spacing, axis)


def aligned_slices(
    domains: Mapping[str, DomainState], group: Mapping[str, Volume], config: DataConfig
) -> tuple[dict[str, np.ndarray], Volume, np.ndarray, tuple[float, float]]:
    """The kept, cropped slices of one group's volumes, one stack per domain, pixel-aligned (module docstring).

    Args:
        domains: the state of each domain, the primary first.
        group: the group's volumes by domain name.
        config: data config for the geometry (axis, min_foreground, crop_foreground).

    Returns:
        ``(stacks by domain [K, h, w] (``[K, 2C + 1, h, w]`` for a domain with context C), the primary volume, the
        K kept slice indices, (row, column) mm per pixel)``.

    Raises:
        DataError: the group has other domains, bad voxels, volumes on different grids (both files named), or a
            2D image in a domain with context.
    """
    names = list(domains)
    if sorted(group) != sorted(names):
        where = next(iter(group.values())).path if group else None
        raise DataError(f"aligned group has domains {sorted(group)}; expected {names}", where)
    volumes = {name: domains[name].check(group[name]) for name in names}
    primary = volumes[names[0]]
    for name in names[1:]:
        check_same_grid(primary, volumes[name])
    slices, foreground = {}, {}
    for name, volume in volumes.items():
        mapping = None if domains[name].label_map else domains[name].mapping_for(volume.array)
        # The primary's affine orients every domain, so a sloppy mask header cannot flip a mask.
        on_grid = replace(volume, affine=primary.affine, spacing=primary.spacing)
        slices[name], spacing = mapped_slices(on_grid, mapping, config.axis)
        foreground[name] = domains[name].foreground(slices[name])
    if primary.array.ndim == 2:
        kept, box = np.array([0]), None
    else:
        kept = np.flatnonzero(foreground[names[0]].mean(axis=(1, 2)) >= config.min_foreground)
        union = np.concatenate([mask[kept] for mask in foreground.values()])
        box = foreground_box(union) if config.crop_foreground else None
    stacks = {}
    for name, stack in slices.items():
        context = domains[name].context
        if not context:
            stacks[name] = crop_to_box(stack[kept], box)
            continue
        if primary.array.ndim == 2:
            raise DataError(f"a 2D image has no neighbouring slices for data.context={context}; 2.5D inputs need 3D "
                            "volumes", volumes[name].path)
        indices = neighbour_indices(kept, len(stack), context)
        cropped = crop_to_box(stack[indices.ravel()], box)
        stacks[name] = cropped.reshape(len(kept), indices.shape[1], *cropped.shape[-2:])
    return stacks, primary, kept, spacing


def check_same_grid(primary: Volume, other: Volume) -> None:
    """Raises DataError, naming both files, when ``other`` is not on ``primary``'s voxel grid (shape, spacing)."""
    same_shape = other.array.shape == primary.array.shape
    if same_shape and np.allclose(other.spacing, primary.spacing, rtol=1e-3, atol=1e-4):
        return
    raise DataError(
        f"shape {other.array.shape} with spacing {_mm(other.spacing)} differs from {primary.path} (shape "
        f"{primary.array.shape} with spacing {_mm(primary.spacing)}); aligned volumes need one voxel grid",
        other.path,
    )


def _mm(spacing: tuple[float, ...]) -> str:
    return " x ".join(f"{value:.4g}" for value in spacing) + " mm"


class DomainState:
    """What the slice builder keeps per domain: its settings, first volume, modality and per-volume mappings.

    Args:
        config: the domain's data config (intensity settings and ``nan_policy``).
        label_map: the domain holds label values (no mapping; foreground is any non-zero label).
        context: neighbouring slices on each side stacked with each slice (``Domain.context``).
    """

    def __init__(self, config: DataConfig, label_map: bool = False, context: int = 0) -> None:
        self.config, self.label_map, self.context = config, label_map, context
        self.first: Volume | None = None
        self.modality: str | None = None
        self.mappings: list[IntensityMapping] = []
        self.mixed = False  # both 2D images and 3D volumes were seen (each 2D image is then one slice)

    def check(self, volume: Volume) -> Volume:
        """``volume`` with its voxels checked (``check_volume``), refusing a mix of CT and MR and 2D images smaller
        than ``slicing.MIN_SIDE``; a first mix of 2D and 3D inputs is accepted with a warning (module docstring).

        A label map only has to be finite: an all-background mask is valid, not a "constant image".
        """
        if self.label_map:
            if not np.isfinite(volume.array).all():
                raise DataError("label map has NaN or Inf voxels", volume.path)
            return volume
        if volume.array.ndim == 2:
            check_slice_size(volume.array.shape, volume.path)
        volume = check_volume(volume, self.config.nan_policy)
        modality, _ = dataset_modality(volume, self.config)
        if self.first is None:
            self.first, self.modality = volume, modality
            return volume
        if modality != self.modality:
            raise DataError(
                f"mixed modalities ({self.first.path.name} is {self.modality}, this one is {modality}); "
                "set data.modality or separate the files",
                volume.path,
            )
        if volume.array.ndim != self.first.array.ndim and not self.mixed:
            self.mixed = True
            warnings.warn(
                f"{volume.path}: 2D images and 3D volumes are mixed ({self.first.path.name} is "
                f"{self.first.array.ndim}D, this one is {volume.array.ndim}D); the volumes are sliced and each 2D "
                "image is taken as one slice",
                stacklevel=2,
            )
        return volume

    def mapping_for(self, array: np.ndarray) -> IntensityMapping:
        """The mapping of one volume (or of pooled 2D images), remembered for ``stored_mapping``."""
        mapping = volume_mapping(array, self.modality, self.config)
        self.mappings.append(mapping)
        return mapping

    def stored_mapping(self, pooled: bool) -> IntensityMapping:
        """The domain's one mapping: the CT window or the ``pooled`` 2D one as is, else the median MR mapping."""
        return self.mappings[0] if self.modality == "CT" or pooled else combine_mappings(self.mappings)

    def foreground(self, slices: np.ndarray) -> np.ndarray:
        """Boolean foreground of ``[S, H, W]`` slices: above ``FOREGROUND_THRESHOLD``, or any non-zero label."""
        return slices != 0 if self.label_map else slices > FOREGROUND_THRESHOLD
