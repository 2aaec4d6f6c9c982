"""medgan.data: read medical images into physical units, slice, map to [-1, 1], augment.

Public API (see each module's docstring for conventions):

* ``readers``: ``Volume``, ``Discovery``, ``read_volume``, ``discover``, ``read_all``
* ``intensity``: ``CT_WINDOWS``, ``IntensityMapping``, ``ct_window``, ``mri_mapping``
* ``datasets``: ``SliceSet``, ``load_slices``, ``slices_from_volumes``, ``split_by_subject``
* ``transforms``: ``classic_augment``
* ``sources``: ``SOURCES`` (embedded sources), ``LAYOUTS`` (dataset layout detectors)
* ``describe``: ``describe``, ``describe_data`` (the text of ``medgan info``)
"""

from __future__ import annotations

import importlib
import importlib.util

from medgan.data.datasets import SliceSet, load_slices, slices_from_volumes, split_by_subject
from medgan.data.describe import describe, describe_data
from medgan.data.intensity import CT_WINDOWS, IntensityMapping, ct_window, mri_mapping
from medgan.data.readers import Discovery, Volume, discover, read_all, read_volume
from medgan.data.sources import LAYOUTS, SOURCES
from medgan.data.transforms import classic_augment

# CT layouts and the CT phantom register themselves on import; they are optional so that this package
# imports while those modules are being written.
for _module in ("medgan.data.ct", "medgan.data.phantom"):
    if importlib.util.find_spec(_module) is not None:
        importlib.import_module(_module)

__all__ = [
    "CT_WINDOWS",
    "Discovery",
    "IntensityMapping",
    "LAYOUTS",
    "SOURCES",
    "SliceSet",
    "Volume",
    "classic_augment",
    "ct_window",
    "describe",
    "describe_data",
    "discover",
    "load_slices",
    "mri_mapping",
    "read_all",
    "read_volume",
    "slices_from_volumes",
    "split_by_subject",
]
