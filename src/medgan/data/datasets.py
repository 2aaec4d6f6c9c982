"""Datasets: files or embedded sources -> a ``SliceSet`` of [-1, 1] training tiles, and subject-level splits.

The generic pipeline (``slices_from_volumes``) per volume: check voxels -> decide CT or MR -> map intensities
to [-1, 1] -> reorient to RAS -> upright slices along ``config.axis`` -> drop slices whose foreground fraction
is below ``config.min_foreground`` -> fit to ``config.resolution``.

Intensity mapping and what the ``SliceSet`` stores for export:

* CT: one window for every volume (``data.window_level``/``window_width`` or the ``data.window`` preset); the
  stored mapping is that window, so export back to HU is exact (inside the window).
* MR, 3D volumes: MR intensities are arbitrary per scan, so each volume is normalized with its own mapping
  (``data.normalize``). The stored mapping is the median ``low``/``high`` over the volumes
  (``intensity.combine_mappings``): exact for a single volume, a representative scale for several.
* MR, 2D images: a set of pictures usually shares one intensity scale, so one mapping is fitted to the pooled
  foreground voxels of all images and stored as is.

2D images are kept whatever their foreground fraction (the filter is for the empty ends of 3D volumes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from medgan.config import DataConfig
from medgan.data.intensity import IntensityMapping, combine_mappings, ct_window_from, detect_modality, mri_mapping
from medgan.data.labels import read_label_table, sorted_classes
from medgan.data.readers import (
    Volume,
    check_volume,
    discovered_items,
    progress_over,
    read_volume,
)
from medgan.data.slicing import (
    crop_to_foreground,
    fit_slices,
    foreground_fraction,
    in_plane_spacing,
    to_canonical,
    upright_slices,
)
from medgan.errors import ConfigError, DataError


@dataclass
class SliceSet:
    """Training images with everything needed to go back to physical units and to split by patient.

    Attributes:
        images: float32 ``[N, 1, R, R]`` in [-1, 1].
        mapping: how to go back to physical units (see the module docstring for several MR volumes).
        spacing: in-plane (row, column) mm per pixel after resizing (the median over volumes).
        subjects: per image, the subject key for patient-level splits; never exported.
        sources: per image, ``"file#slice"`` provenance.
        labels: int64 ``[N]`` class indices for conditional tasks, or None.
        class_names: the name of each class index.
        attributes: float32 ``[N, A]`` continuous attributes from the labels CSV (raw units), or None.
        attribute_names: the name of each attribute column.
    """

    images: torch.Tensor
    mapping: IntensityMapping
    spacing: tuple[float, float]
    subjects: list[str]
    sources: list[str]
    labels: torch.Tensor | None = None
    class_names: tuple[str, ...] = ()
    attributes: torch.Tensor | None = None
    attribute_names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> "SliceSet":
        """The images at ``indices`` (e.g. one side of ``split_by_subject``), metadata kept in step."""
        index = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        positions = index.tolist()
        return replace(
            self,
            images=self.images[index],
            subjects=[self.subjects[i] for i in positions],
            sources=[self.sources[i] for i in positions],
            labels=None if self.labels is None else self.labels[index],
            attributes=None if self.attributes is None else self.attributes[index],
        )


def load_slices(config: DataConfig, progress: bool = True) -> SliceSet:
    """Loads ``config.source`` as training tiles.

    Args:
        config: the data section of the run config. ``source`` is a registered embedded source name
            (``"mni152"``, ``"ct-phantom"``), or a file or folder; folders are first offered to the registered
            dataset layouts (``LAYOUTS``), then read by the generic pipeline.
        progress: show a progress bar over files when there are more than a few.

    Returns:
        The slice set.

    Raises:
        DataError: missing path, unreadable or bad images, nothing left after filtering (the path is named).
    """
    from medgan.data.sources import LAYOUTS, SOURCES

    if config.source in SOURCES:
        return SOURCES.get(config.source)(config)
    path = Path(config.source).expanduser()
    if not path.exists():
        raise DataError(f"no such file or folder (embedded sources: {', '.join(SOURCES.names())})", path)
    for name in LAYOUTS:
        found = LAYOUTS.get(name)(path, config)
        if found is not None:
            return found
    items = discovered_items(path)
    labels, class_names, attributes, attribute_names = None, (), None, ()
    if config.labels:
        table = read_label_table(config.labels, path if path.is_dir() else path.parent)
        rows = [table.row_for(item, path) for item in items]
        class_names = sorted_classes([row.label for row in rows])
        labels = [class_names.index(row.label) for row in rows]
        if table.attribute_names:
            attributes, attribute_names = [row.attributes for row in rows], table.attribute_names
    volumes = (read_volume(item, config.nan_policy) for item in progress_over(items, progress, "reading"))
    sliced = slices_from_volumes(volumes, config, labels, class_names, attributes, attribute_names)
    return relative_sources(sliced, path)


def relative_sources(slice_set: SliceSet, root: Path) -> SliceSet:
    """``slice_set`` with ``sources`` written relative to ``root`` (a folder, or a file whose folder is used)."""
    base = root if root.is_dir() else root.parent

    def shorten(source: str) -> str:
        file, separator, index = source.rpartition("#")
        try:
            relative = Path(file).relative_to(base).as_posix()
        except ValueError:
            return source
        return f"{Path(file).name if relative == '.' else relative}{separator}{index}"

    slice_set.sources = [shorten(source) for source in slice_set.sources]
    return slice_set


def slices_from_volumes(
    volumes: Iterable[Volume],
    config: DataConfig,
    labels: list[int] | None = None,
    class_names: Sequence[str] = (),
    attributes: Sequence[Sequence[float]] | None = None,
    attribute_names: Sequence[str] = (),
) -> SliceSet:
    """The generic pipeline: volumes -> mapped, sliced, filtered, fitted tiles.

    Args:
        volumes: 2D images or 3D volumes (not mixed) in physical units; any iterable, consumed once, so a
            generator keeps only one large CT volume in memory at a time.
        config: data config (axis, min_foreground, modality, normalize, percentiles, window, fit, resolution).
        labels: class index per volume (every slice of a volume gets its label), or None.
        class_names: the name of each class index.
        attributes: continuous attribute values per volume (every slice gets its volume's), or None.
        attribute_names: the name of each attribute.

    Returns:
        The slice set; see the module docstring for the stored mapping.

    Raises:
        DataError: NaN/Inf (per ``nan_policy``) or constant volumes, mixed 2D/3D or CT/MR inputs, no slice kept.
    """
    builder = _Builder(config)
    for index, volume in enumerate(volumes):
        values = None if attributes is None else tuple(float(v) for v in attributes[index])
        builder.add(volume, None if labels is None else int(labels[index]), values)
    result = builder.finish(labels is not None, tuple(class_names))
    if attributes is not None:
        result.attributes = torch.as_tensor(builder.attributes, dtype=torch.float32).reshape(len(result), -1)
        result.attribute_names = tuple(attribute_names)
    return result


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
    canonical = to_canonical(volume)
    unit = mapping.to_unit(canonical.array).astype(np.float32, copy=False)
    slices = upright_slices(unit, config.axis)
    spacing = in_plane_spacing(canonical.spacing, config.axis)
    if volume.array.ndim == 2:
        return slices, np.array([0]), spacing
    return slices, np.flatnonzero(foreground_fraction(slices) >= config.min_foreground), spacing


def split_by_subject(subjects: list[str], test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Splits image indices so that no subject has images on both sides.

    Args:
        subjects: subject key per image.
        test_fraction: fraction of *subjects* (not images) for the test side, in [0, 1); at least one subject
            goes to each side when the fraction is positive.
        seed: seed of the subject shuffle (the split depends only on the set of subjects and the seed).

    Returns:
        ``(train_indices, test_indices)``, sorted int64 arrays.

    Raises:
        DataError: a positive ``test_fraction`` with fewer than two subjects (e.g. the single MNI template).
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ConfigError(f"test fraction must be in [0, 1), got {test_fraction!r}")
    unique = sorted(set(subjects))
    count = 0
    if test_fraction > 0:
        if len(unique) < 2:
            raise DataError(f"cannot split by subject: all {len(subjects)} images come from {len(unique)} subject(s)")
        count = min(max(1, round(test_fraction * len(unique))), len(unique) - 1)
    order = np.random.default_rng(seed).permutation(len(unique))
    test_subjects = {unique[i] for i in order[:count]}
    is_test = np.array([subject in test_subjects for subject in subjects], dtype=bool)
    return np.flatnonzero(~is_test).astype(np.int64), np.flatnonzero(is_test).astype(np.int64)


class _Builder:
    """Accumulates tiles volume by volume; 2D images wait until all are seen (their mapping is pooled)."""

    def __init__(self, config: DataConfig) -> None:
        self.config = config
        self.tiles: list[torch.Tensor] = []
        self.spacings: list[tuple[float, float]] = []
        self.subjects: list[str] = []
        self.sources: list[str] = []
        self.labels: list[int] = []
        self.attributes: list[tuple[float, ...]] = []
        self.mappings: list[IntensityMapping] = []
        self.pictures: list[tuple[Volume, int | None, tuple[float, ...] | None]] = []
        self.paths: list[Path] = []
        self.first: Volume | None = None
        self.modality: str | None = None

    def add(self, volume: Volume, label: int | None, attributes: tuple[float, ...] | None = None) -> None:
        volume = check_volume(volume, self.config.nan_policy)
        self._check_consistent(volume)
        self.paths.append(volume.path)
        if volume.array.ndim == 2:
            self.pictures.append((volume, label, attributes))
            return
        mapping = volume_mapping(volume.array, self.modality, self.config)
        self.mappings.append(mapping)
        slices, kept, spacing = kept_slices(volume, mapping, self.config)
        slices = slices[kept]
        if self.config.crop_foreground:
            slices = crop_to_foreground(slices)
        self._append(slices, spacing, volume, [int(k) for k in kept], label, attributes)

    def _check_consistent(self, volume: Volume) -> None:
        modality, _ = dataset_modality(volume, self.config)
        if self.first is None:
            self.first, self.modality = volume, modality
            return
        if volume.array.ndim != self.first.array.ndim:
            raise DataError(
                f"mixed 2D and 3D inputs ({self.first.path.name} is {self.first.array.ndim}D, this one is "
                f"{volume.array.ndim}D); put them in separate folders",
                volume.path,
            )
        if modality != self.modality:
            raise DataError(
                f"mixed modalities ({self.first.path.name} is {self.modality}, this one is {modality}); "
                "set data.modality or separate the files",
                volume.path,
            )

    def _append(
        self, slices: np.ndarray, spacing: tuple[float, float], volume: Volume, indices: list[int], label: int | None,
        attributes: tuple[float, ...] | None,
    ) -> None:
        if not indices:
            return
        tiles, fitted = fit_slices(slices, spacing, self.config.resolution, self.config.fit)
        self.tiles.append(tiles)
        self.spacings.append(fitted)
        self.subjects.extend([volume.subject] * len(indices))
        self.sources.extend(f"{volume.path}#{index}" for index in indices)
        if label is not None:
            self.labels.extend([label] * len(indices))
        if attributes is not None:
            self.attributes.extend([attributes] * len(indices))

    def _add_pictures(self) -> None:
        pooled = np.concatenate([picture[0].array.ravel() for picture in self.pictures])
        mapping = volume_mapping(pooled, self.modality, self.config)
        self.mappings.append(mapping)
        groups: dict[tuple, list[int]] = {}
        for position, (volume, _, _) in enumerate(self.pictures):
            groups.setdefault((volume.array.shape, tuple(volume.spacing)), []).append(position)
        order: list[int] = []
        for (shape, spacing), positions in groups.items():
            # Same-size pictures are fitted in one interpolate call; the original order is restored below.
            stack = np.stack([mapping.to_unit(self.pictures[p][0].array) for p in positions]).astype(np.float32)
            pixel = (float(spacing[0]), float(spacing[1]))
            tiles, fitted = fit_slices(stack, pixel, self.config.resolution, self.config.fit)
            self.tiles.append(tiles)
            self.spacings.extend([fitted] * len(positions))
            order.extend(positions)
        restore = np.argsort(order, kind="stable")
        self.tiles = [torch.cat(self.tiles)[torch.as_tensor(restore)]]
        for volume, label, attributes in self.pictures:
            self.subjects.append(volume.subject)
            self.sources.append(f"{volume.path}#0")
            if label is not None:
                self.labels.append(label)
            if attributes is not None:
                self.attributes.append(attributes)

    def finish(self, labelled: bool, class_names: tuple[str, ...]) -> SliceSet:
        if self.first is None:
            raise DataError("no images to slice")
        if self.pictures:
            self._add_pictures()
        if not self.subjects:
            raise DataError(
                f"no slice has a foreground fraction of at least {self.config.min_foreground} along axis "
                f"{self.config.axis}; lower data.min_foreground",
                _common_path(self.paths),
            )
        if self.modality == "CT" or self.pictures:
            mapping = self.mappings[0]
        else:
            mapping = combine_mappings(self.mappings)
        spacing = tuple(float(v) for v in np.median(np.asarray(self.spacings), axis=0))
        labels = torch.as_tensor(self.labels, dtype=torch.int64) if labelled else None
        return SliceSet(torch.cat(self.tiles), mapping, spacing, self.subjects, self.sources, labels, class_names)


def _common_path(paths: list[Path]) -> Path | None:
    if not paths:
        return None
    if len(paths) == 1:
        return paths[0]
    try:
        return Path(os.path.commonpath([str(p) for p in paths]))
    except ValueError:
        return paths[0]
