"""Prepared cohorts: read once (``prepare``), streamed from disk by training (``store``, ``tiles``).

``medgan prepare --data PATH --out CACHE`` writes a cache; ``medgan train --data CACHE`` (and every reader of
``data.source``) opens it through ``medgan.data.load_slices``, with tiles read by index, so a run's memory does not
grow with the cohort. Training on a folder of many volumes prepares it into a user cache by itself (``auto``).
"""

from medgan.data.cache.auto import cache_home, load_training_slices
from medgan.data.cache.prepare import Prepared, prepare_cache
from medgan.data.cache.store import cache_data_values, is_cache, open_cache, read_manifest
from medgan.data.cache.tiles import CachedTiles

__all__ = ["CachedTiles", "Prepared", "cache_data_values", "cache_home", "is_cache", "load_training_slices", "open_cache",
           "prepare_cache", "read_manifest"]
