"""medgan.data: read medical images into physical units, slice, map to [-1, 1], augment.

Public API (see each module's docstring for conventions):

* ``readers``: ``Volume``, ``Discovery``, ``read_volume``, ``discover``, ``read_all``
* ``intensity``: ``CT_WINDOWS``, ``IntensityMapping``, ``ct_window``, ``mri_mapping``
* ``datasets``: ``SliceSet``, ``slices_from_volumes``, ``aligned_slices_from_volumes``, ``split_by_subject``
* ``domains``: ``Domain`` (the settings of one domain of aligned groups)
* ``pipeline``: ``load_slices`` (sources, then layouts, then the generic pipeline)
* ``transforms``: ``classic_augment``
* ``sources``: ``SOURCES`` (embedded sources), ``LAYOUTS`` (dataset layout detectors, in ``layouts``)
* ``describe``: ``describe``, ``describe_data`` (the text of ``medgan info``)

Data flows one way: ``readers`` -> ``slicing``/``intensity`` -> ``domains`` -> ``datasets`` (the one slice
builder) -> ``sources``/``layouts``/``phantom`` -> ``pipeline`` -> ``describe``. Importing ``pipeline``
registers every embedded source and layout.
"""

from __future__ import annotations

from medgan.data.datasets import SliceSet, aligned_slices_from_volumes, slices_from_volumes
from medgan.data.splits import split_by_subject
from medgan.data.describe import describe, describe_data
from medgan.data.domains import Domain
from medgan.data.intensity import CT_WINDOWS, IntensityMapping, ct_window, mri_mapping
from medgan.data.pipeline import load_slices
from medgan.data.readers import Discovery, Volume, discover, read_all, read_volume
from medgan.data.sources import LAYOUTS, SOURCES
from medgan.data.transforms import classic_augment

__all__ = [
    "CT_WINDOWS",
    "Discovery",
    "Domain",
    "IntensityMapping",
    "LAYOUTS",
    "SOURCES",
    "SliceSet",
    "Volume",
    "aligned_slices_from_volumes",
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
