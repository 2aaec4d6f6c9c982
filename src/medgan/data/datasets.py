"""Datasets: volumes -> a ``SliceSet`` of [-1, 1] training tiles (one builder), and subject-level splits.

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
* 2D images mixed with 3D volumes (accepted with a warning, see ``medgan.data.domains``): each 2D image is one
  slice with its own mapping, like a one-slice volume; its tiles come after the volumes' slices.

2D images are kept whatever their foreground fraction (the filter is for the empty ends of 3D volumes).

Aligned domains (``aligned_slices_from_volumes``, for paired image-to-image tasks): groups of co-registered
volumes of one subject, one per domain, sliced so that the tiles of every domain stay pixel-aligned (the
rules are in ``medgan.data.domains``). The primary domain's tiles are ``images``; the others go to ``aligned``.

``SliceBuilder`` is the one place where slices become a ``SliceSet``: the generic pipeline, aligned groups
and the dataset layouts' cut images (``medgan.data.layouts``) all go through it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import torch

from medgan.config import DataConfig
from medgan.data.cache.tiles import CachedTiles
from medgan.data.domains import Domain, DomainState, aligned_slices, kept_slices
from medgan.data.intensity import IntensityMapping
from medgan.data.readers import Volume
from medgan.data.slicing import crop_to_foreground, fit_slices
from medgan.errors import ConfigError, DataError


@dataclass
class SliceSet:
    """Training images with everything needed to go back to physical units and to split by patient.

    Attributes:
        images: float32 ``[N, 1, R, R]`` in [-1, 1] (or, from a prepared cohort, ``medgan.data.cache.CachedTiles``
            that read the tiles by index; likewise ``aligned``).
        mapping: how to go back to physical units (see the module docstring for several MR volumes).
        spacing: in-plane (row, column) mm per pixel after resizing (the median over volumes).
        subjects: per image, the subject key for patient-level splits; never exported.
        sources: per image, ``"file#slice"`` provenance.
        labels: int64 ``[N]`` class indices for conditional tasks, or None.
        class_names: the name of each class index.
        attributes: float32 ``[N, A]`` continuous attributes from the labels CSV (raw units), or None.
        attribute_names: the name of each attribute column.
        aligned: for aligned domains (``aligned_slices_from_volumes``), the tiles of every domain but the
            primary one (which is ``images``), each ``[N, C, R, R]`` and pixel-aligned with ``images`` (C is 1,
            a label map's one-hot channels, or ``2 * data.context + 1`` slices of a 2.5D input, the slice
            first); label maps hold label values. Empty otherwise.
        mappings: the intensity mapping of each image domain in ``aligned`` (label maps have none).
        degradation: how ``aligned`` was derived from ``images`` (normalized ``data.degrade``), else empty.
        skipped: inputs left out, as ``(file, reason)`` (blank images when ``load_slices`` skips them).
        other: unpaired translation: domain A (its modalities in ``images`` and ``aligned``), these being domain
            B; None otherwise.
    """

    images: torch.Tensor
    mapping: IntensityMapping
    spacing: tuple[float, ...]
    subjects: list[str]
    sources: list[str]
    labels: torch.Tensor | None = None
    class_names: tuple[str, ...] = ()
    attributes: torch.Tensor | None = None
    attribute_names: tuple[str, ...] = ()
    aligned: dict[str, torch.Tensor] = field(default_factory=dict)
    mappings: dict[str, IntensityMapping] = field(default_factory=dict)
    degradation: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    other: "SliceSet | None" = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> "SliceSet":
        """The images at ``indices`` (e.g. one side of ``split_by_subject``), metadata kept in step."""
        index = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        positions = index.tolist()

        def rows(tiles):  # tiles on disk (medgan.data.cache) give a view that reads nothing
            return tiles.take(index) if isinstance(tiles, CachedTiles) else tiles[index]

        return replace(
            self,
            images=rows(self.images),
            subjects=[self.subjects[i] for i in positions],
            sources=[self.sources[i] for i in positions],
            labels=None if self.labels is None else self.labels[index],
            attributes=None if self.attributes is None else self.attributes[index],
            aligned={name: rows(tiles) for name, tiles in self.aligned.items()},
        )


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
        DataError: NaN/Inf (per ``nan_policy``), constant or too small volumes, mixed CT/MR inputs, no slice kept.
    """
    builder = SliceBuilder(config)
    for index, volume in enumerate(volumes):
        values = None if attributes is None else tuple(float(v) for v in attributes[index])
        builder.add_volume(volume, None if labels is None else int(labels[index]), values)
    return builder.finish(labels is not None, class_names, None if attributes is None else attribute_names)


def aligned_slices_from_volumes(
    groups: Iterable[Mapping[str, Volume]],
    config: DataConfig,
    domains: Mapping[str, Domain],
    labels: list[int] | None = None,
    class_names: Sequence[str] = (),
) -> SliceSet:
    """Pixel-aligned tiles from groups of co-registered volumes, one volume per domain (module docstring).

    Args:
        groups: per subject, its volumes by domain name (the names of ``domains``); any iterable, consumed once.
        config: data config for the geometry (axis, min_foreground, crop_foreground, fit, resolution) and for
            the intensities of domains without their own config.
        domains: the domains by name; the first is the primary one (an image domain): its foreground decides
            the kept slices and its tiles are the result's ``images``.
        labels: class index per group, or None.
        class_names: the name of each class index.

    Returns:
        The slice set: ``images``/``mapping`` of the primary domain, ``aligned``/``mappings`` of the others.

    Raises:
        ConfigError: no domains, or a label-map primary domain.
        DataError: a group with other domains, volumes of one group on different grids (both files named),
            bad voxels, mixed CT/MR inputs within a domain, images too small, no slice kept.
    """
    builder = SliceBuilder(config, domains=domains)
    for index, group in enumerate(groups):
        builder.add_group(group, None if labels is None else int(labels[index]))
    return builder.finish(labels is not None, class_names)


class SliceBuilder:
    """The one place where slices become a ``SliceSet``: fits them to tiles and keeps each tile's subject,
    provenance, label and attributes in step.

    Three ways in (one per builder):

    * ``add_volume``: a volume through the generic pipeline (module docstring); 2D images wait until all are
      seen, as their mapping is pooled;
    * ``add_group``: co-registered volumes of one subject, one per domain, sliced pixel-aligned;
    * ``add_images``: images already cut from a volume, in physical units (a layout's liver slices, crops or
      ROIs; MedMNIST images), mapped with the builder's fixed ``mapping``.

    Args:
        config: data config (axis, min_foreground, crop_foreground, fit, resolution, intensity settings).
        mapping: the fixed mapping of ``add_images``.
        domains: for ``add_group``: the domains by name, the primary (an image domain) first.

    Raises:
        ConfigError: ``domains`` is empty or its primary domain is a label map.
    """

    def __init__(
        self, config: DataConfig, mapping: IntensityMapping | None = None, domains: Mapping[str, Domain] | None = None
    ) -> None:
        self.config, self.mapping = config, mapping
        self.domains = {name: DomainState(d.config or config, d.label_map, d.context)
                        for name, d in (domains or {}).items()}
        if domains is not None and not self.domains:
            raise ConfigError("aligned slicing needs at least one domain")
        self.domain = next(iter(self.domains.values()), None) or DomainState(config)  # the primary (or only) one
        if self.domain.label_map:
            raise ConfigError(f"the primary domain {next(iter(self.domains))!r} is a label map; put an image domain first")
        self.tiles: list[torch.Tensor] = []
        self.aligned: dict[str, list[torch.Tensor]] = {name: [] for name in list(self.domains)[1:]}
        self.spacings: list[tuple[float, float]] = []
        self.subjects: list[str] = []
        self.sources: list[str] = []
        self.labels: list[int] = []
        self.attributes: list[tuple[float, ...]] = []
        self.pictures: list[tuple[Volume, int | None, tuple[float, ...] | None]] = []
        self.paths: list[Path] = []

    def __len__(self) -> int:
        return len(self.sources)

    def add_volume(self, volume: Volume, label: int | None, attributes: tuple[float, ...] | None = None) -> None:
        """Adds the kept, foreground-cropped slices of one volume (a 2D image waits for ``finish``)."""
        volume = self.domain.check(volume)
        self.paths.append(volume.path)
        if volume.array.ndim == 2:
            self.pictures.append((volume, label, attributes))
            return
        mapping = self.domain.mapping_for(volume.array)
        slices, kept, spacing = kept_slices(volume, mapping, self.config)
        slices = slices[kept]
        if self.config.crop_foreground:
            slices = crop_to_foreground(slices)
        sources = [f"{volume.path}#{int(index)}" for index in kept]
        labels = None if label is None else [label] * len(kept)
        self._append(slices, spacing, [volume.subject] * len(kept), sources, labels, attributes)

    def add_group(
        self, group: Mapping[str, Volume], label: int | None = None, attributes: tuple[float, ...] | None = None
    ) -> None:
        """Adds one subject's co-registered volumes, one per domain, as pixel-aligned tiles (``aligned_slices``)."""
        stacks, primary, kept, spacing = aligned_slices(self.domains, group, self.config)
        self.paths.append(primary.path)
        if not len(kept):
            return
        names = list(self.domains)
        sources = [f"{primary.path}#{int(index)}" for index in kept]
        labels = None if label is None else [label] * len(kept)
        self._append(stacks[names[0]], spacing, [primary.subject] * len(kept), sources, labels, attributes)
        for name in names[1:]:
            label_map = self.domains[name].label_map
            stack = stacks[name]  # [K, h, w], or [K, 2C + 1, h, w] with context: each slice fitted alike
            tiles, _ = fit_slices(stack.reshape(-1, *stack.shape[-2:]), spacing, self.config.resolution,
                                  self.config.fit, label_map)
            self.aligned[name].append(tiles.reshape(len(kept), -1, *tiles.shape[-2:]))

    def add_images(
        self,
        images: np.ndarray,
        spacing: tuple[float, float],
        subjects: Sequence[str],
        sources: Sequence[str],
        labels: Sequence[int] | None,
        attributes: tuple[float, ...] | None = None,
    ) -> None:
        """Adds ``[S, H, W]`` images in physical units, all of one size, mapped with the builder's ``mapping``.

        Args:
            images: the images (e.g. HU crops of one CT volume).
            spacing: their (row, column) mm per pixel.
            subjects: per image, its subject.
            sources: per image, its provenance.
            labels: per image, its class index, or None.
            attributes: attribute values every image gets (those of the volume they come from), or None.
        """
        if not len(images):
            return
        unit = self.mapping.to_unit(images.astype(np.float32, copy=False))
        self._append(unit, spacing, list(subjects), list(sources), labels, attributes, spacing_per_image=True)

    def _append(
        self,
        slices: np.ndarray,
        spacing: tuple[float, float],
        subjects: list[str],
        sources: list[str],
        labels: Sequence[int] | None,
        attributes: tuple[float, ...] | None,
        spacing_per_image: bool = False,
    ) -> None:
        if not sources:
            return
        # [S, H, W], or [S, 2C + 1, H, W] for a primary domain with context (each slice fitted alike)
        tiles, fitted = fit_slices(slices.reshape(-1, *slices.shape[-2:]), spacing, self.config.resolution,
                                   self.config.fit)
        self.tiles.append(tiles.reshape(len(sources), -1, *tiles.shape[-2:]))
        # The stored spacing is the median over volumes; images cut by a layout count one by one.
        self.spacings.extend([fitted] * (len(sources) if spacing_per_image else 1))
        self.subjects.extend(subjects)
        self.sources.extend(sources)
        if labels is not None:
            self.labels.extend(labels)
        if attributes is not None:
            self.attributes.extend([attributes] * len(sources))

    def _add_pictures(self) -> None:
        if self.domain.mixed:  # next to 3D volumes, each 2D image is one slice with its own mapping
            mappings = [self.domain.mapping_for(volume.array) for volume, _, _ in self.pictures]
        else:  # a set of pictures usually shares one intensity scale: one mapping of the pooled voxels
            pooled = np.concatenate([picture[0].array.ravel() for picture in self.pictures])
            mappings = [self.domain.mapping_for(pooled)] * len(self.pictures)
        groups: dict[tuple, list[int]] = {}
        for position, (volume, _, _) in enumerate(self.pictures):
            groups.setdefault((volume.array.shape, tuple(volume.spacing)), []).append(position)
        order: list[int] = []
        picture_tiles: list[torch.Tensor] = []
        for (shape, spacing), positions in groups.items():
            # Same-size pictures are fitted in one interpolate call; the original order is restored below.
            stack = np.stack([mappings[p].to_unit(self.pictures[p][0].array) for p in positions]).astype(np.float32)
            pixel = (float(spacing[0]), float(spacing[1]))
            tiles, fitted = fit_slices(stack, pixel, self.config.resolution, self.config.fit)
            picture_tiles.append(tiles)
            self.spacings.extend([fitted] * len(positions))
            order.extend(positions)
        restore = np.argsort(order, kind="stable")
        self.tiles.append(torch.cat(picture_tiles)[torch.as_tensor(restore)])  # after any volume's tiles
        for volume, label, attributes in self.pictures:
            self.subjects.append(volume.subject)
            self.sources.append(f"{volume.path}#0")
            if label is not None:
                self.labels.append(label)
            if attributes is not None:
                self.attributes.append(attributes)

    def finish(
        self, labelled: bool, class_names: Sequence[str] = (), attribute_names: Sequence[str] | None = None
    ) -> SliceSet:
        """The slice set of everything added.

        Args:
            labelled: the tiles were added with labels.
            class_names: the name of each class index.
            attribute_names: the attribute names when the tiles were added with attributes, else None.

        Raises:
            DataError: nothing was added, or no slice passed the foreground filter.
        """
        if self.pictures:
            self._add_pictures()
        if not self.subjects:
            if self.domain.first is None:
                raise DataError("no images to slice")
            raise DataError(
                f"no slice has a foreground fraction of at least {self.config.min_foreground} along axis "
                f"{self.config.axis}; lower data.min_foreground",
                _common_path(self.paths),
            )
        pooled = bool(self.pictures) and not self.domain.mixed
        mapping = self.mapping if self.mapping is not None else self.domain.stored_mapping(pooled)
        spacing = tuple(float(v) for v in np.median(np.asarray(self.spacings), axis=0))
        labels = torch.as_tensor(self.labels, dtype=torch.int64) if labelled else None
        result = SliceSet(torch.cat(self.tiles), mapping, spacing, self.subjects, self.sources, labels, tuple(class_names))
        if attribute_names is not None:
            result.attributes = torch.as_tensor(self.attributes, dtype=torch.float32).reshape(len(result), -1)
            result.attribute_names = tuple(attribute_names)
        result.aligned = {name: torch.cat(tiles) for name, tiles in self.aligned.items()}
        result.mappings = {
            name: self.domains[name].stored_mapping(pooled=False) for name in self.aligned if not self.domains[name].label_map
        }
        return result


def _common_path(paths: list[Path]) -> Path | None:
    if not paths:
        return None
    if len(paths) == 1:
        return paths[0]
    try:
        return Path(os.path.commonpath([str(p) for p in paths]))
    except ValueError:
        return paths[0]
