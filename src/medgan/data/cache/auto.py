"""Training data that prepares itself: a folder of many 3D volumes is prepared once into a user cache folder and
streamed from there, so a second run (or a resume) on the same folder starts in seconds and holds no cohort.

The cache of a folder lives in ``$MEDGAN_CACHE/cohorts/<key>`` (default ``~/.cache/medgan``), where the key hashes
the folder's absolute path, the preprocessing options and medgan's version; a changed source file makes the next
run prepare again (that subject only). Folders of fewer than ``AUTO_SUBJECTS`` volumes, 2D images, embedded
sources and layouts load into memory as before: they are small, and writing a cache for them would only cost.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import medgan
from medgan.config import DataConfig
from medgan.data.cache.prepare import _volume_items, prepare_cache
from medgan.data.cache.store import is_cache, open_cache, preprocessing
from medgan.errors import DataError

AUTO_SUBJECTS = 16  # volumes from which a folder is prepared into a cache by itself


def cache_home() -> Path:
    """Where prepared folders are kept: ``$MEDGAN_CACHE/cohorts`` (default ``~/.cache/medgan/cohorts``)."""
    return Path(os.environ.get("MEDGAN_CACHE") or Path.home() / ".cache" / "medgan").expanduser() / "cohorts"


def folder_cache(config: DataConfig) -> Path:
    """The cache folder of ``config.source`` with ``config``'s preprocessing options."""
    key = json.dumps({"source": str(Path(config.source).expanduser().resolve()), "options": preprocessing(config),
                      "medgan": medgan.__version__}, sort_keys=True)
    return cache_home() / hashlib.sha256(key.encode()).hexdigest()[:20]


def load_training_slices(config: DataConfig, progress: bool = True):
    """``load_slices(config)``, from a cache prepared on first use for folders of many volumes (module docstring)."""
    from medgan.data.pipeline import load_slices

    if is_cache(config.source) or config.dims == 3:  # 3D training reads the volumes themselves (medgan.data.cubes)
        return load_slices(config, progress=progress)
    items = _volume_items(config)
    if items is None or len(items) < AUTO_SUBJECTS:
        return load_slices(config, progress=progress)
    cache = folder_cache(config)
    try:
        return open_cache(cache, config)
    except DataError:
        pass  # not prepared yet, interrupted, or a source changed: prepare (resuming what is still valid)
    done = prepare_cache(config, cache, progress=progress)
    print(f"medgan: prepared {done.subjects} subjects of {config.source} into {cache} in {done.seconds:.0f} s; later "
          "runs on this folder stream from it (MEDGAN_CACHE moves it)", file=sys.stderr)
    return open_cache(cache, config)
