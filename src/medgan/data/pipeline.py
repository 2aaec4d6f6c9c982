"""The top of ``medgan.data``: ``load_slices`` turns ``data.source`` into a ``SliceSet``.

A source is looked up among the embedded sources (``SOURCES``), then a path is offered to the dataset layouts
(``LAYOUTS``), then read file by file through the generic pipeline (``datasets.SliceBuilder``).
Importing this module registers every source and layout: ``mni152`` (``sources``), LiTS/MSD/MedMNIST
(``layouts``) and ``ct-phantom``/``ct-lesions`` (``phantom``), so a name works whenever ``load_slices`` does.
"""

from __future__ import annotations

from pathlib import Path

import medgan.data.brain_tumour_sources  # (registers the "brain-tumour-*" sources, 2D and 3D)
import medgan.data.cohort  # noqa: F401  (registers the "mni152-cohort" source, 2D and 3D)
import medgan.data.layouts  # noqa: F401  (registers the LiTS, MSD and MedMNIST layouts)
import medgan.data.phantom  # noqa: F401  (registers the "ct-phantom" and "ct-lesions" sources)
from medgan.config import DataConfig
from medgan.data.cache.store import is_cache, open_cache
from medgan.data.cubes import load_cubes
from medgan.data.datasets import SliceBuilder, SliceSet, relative_sources
from medgan.data.labels import read_label_table, sorted_classes
from medgan.data.modalities import load_modality_pairs
from medgan.data.pairs import load_pairs
from medgan.data.readers import discovered_items, progress_over, read_volume
from medgan.data.readers.base import BlankImageError
from medgan.data.sources import LAYOUTS, SOURCES
from medgan.errors import DataError


def load_slices(config: DataConfig, progress: bool = True, skip_blank: bool = False) -> SliceSet:
    """Loads ``config.source`` as training tiles (with ``config.dims`` 3: cubes, ``medgan.data.cubes``).

    Args:
        config: the data section of the run config. ``source`` is a registered embedded source name
            (``"mni152"``, ``"ct-phantom"``), a cohort cache (``medgan prepare``), or a file or folder; folders are
            first offered to the registered
            dataset layouts (``LAYOUTS``), then read by the generic pipeline. With ``input``, ``pairs`` or
            ``degrade`` set, the paired data of ``medgan.data.pairs.load_pairs``; with ``domain_a``, those
            modalities matched to ``source`` (``medgan.data.modalities.load_modality_pairs``).
        progress: show a progress bar over files when there are more than a few.
        skip_blank: leave out blank (constant) images of the generic pipeline instead of raising, and list them
            in the result's ``skipped`` (``medgan evaluate`` reads real sets this way; training does not).

    Returns:
        The slice set.

    Raises:
        DataError: missing path, unreadable or bad images, nothing left after filtering (the path is named);
            every image blank with ``skip_blank``.
    """
    if config.dims == 3:
        if is_cache(config.source):
            raise DataError("a prepared cohort cache holds 2D tiles; data.dims 3 reads the volumes themselves: give "
                            "their folder", config.source)
        return load_cubes(config, progress)
    if is_cache(config.source):  # a prepared cohort (medgan prepare): tiles stay on disk, read by index
        return open_cache(config.source, config)
    if config.input or config.pairs or config.degrade:
        return load_pairs(config, progress)
    if config.domain_a:
        return load_modality_pairs(config, load_slices, progress)
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
    builder, skipped = SliceBuilder(config), []
    for index, item in enumerate(progress_over(items, progress, "reading")):
        try:
            volume = read_volume(item, config.nan_policy)
        except BlankImageError:
            if not skip_blank:
                raise
            skipped.append(item)
            continue
        values = None if attributes is None else tuple(float(v) for v in attributes[index])
        builder.add_volume(volume, None if labels is None else labels[index], values)
    if skipped and len(skipped) == len(items):
        raise DataError(f"every image is blank (constant): {len(skipped)} left out, nothing to use", path)
    sliced = builder.finish(labels is not None, class_names, attribute_names if attributes is not None else None)
    shown = [item.relative_to(path).as_posix() if path.is_dir() else item.name for item in skipped]
    sliced.skipped = [(name, "blank (constant) image") for name in shown]
    return relative_sources(sliced, path)
