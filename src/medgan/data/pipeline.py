"""The top of ``medgan.data``: ``load_slices`` turns ``data.source`` into a ``SliceSet``.

A source is looked up among the embedded sources (``SOURCES``), then a path is offered to the dataset layouts
(``LAYOUTS``), then read file by file through the generic pipeline (``datasets.slices_from_volumes``).
Importing this module registers every source and layout: ``mni152`` (``sources``), LiTS/MSD/MedMNIST
(``layouts``) and ``ct-phantom``/``ct-lesions`` (``phantom``), so a name works whenever ``load_slices`` does.
"""

from __future__ import annotations

from pathlib import Path

import medgan.data.layouts  # noqa: F401  (registers the LiTS, MSD and MedMNIST layouts)
import medgan.data.phantom  # noqa: F401  (registers the "ct-phantom" and "ct-lesions" sources)
from medgan.config import DataConfig
from medgan.data.datasets import SliceSet, relative_sources, slices_from_volumes
from medgan.data.labels import read_label_table, sorted_classes
from medgan.data.readers import discovered_items, progress_over, read_volume
from medgan.data.sources import LAYOUTS, SOURCES
from medgan.errors import DataError


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
