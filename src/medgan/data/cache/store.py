"""A prepared cohort on disk: its layout, its manifest, and opening it as a ``SliceSet`` that streams.

Layout of a cache folder::

    manifest.json            written last: format, medgan version, preprocessing options, source files
                             (relative path, size, mtime, SHA-256), subjects in row order, tiles per subject
    subjects/000042/         one folder per subject, renamed into place when complete
        images.npy           [S, C, R, R] tiles of the primary domain (uint16, see ``tiles``)
        <domain>.npy         each aligned domain (inputs, masks, modalities), pixel-aligned with images
        meta.json            the subject's key, sources, labels, attributes, mapping(s), spacing, array hashes

Opening checks, in one line each: a cache of another format or medgan version, an unfinished preparation (no
manifest: ``medgan prepare`` resumes it), a source file that changed since preparation (size or mtime), and a
missing or truncated array. The tiles stay on disk (``CachedTiles``); labels, subjects and sources are small and
held in memory.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

import medgan
from medgan.config import DataConfig
from medgan.data.cache.tiles import CachedTiles, Part, open_array
from medgan.data.intensity import IntensityMapping, combine_mappings
from medgan.errors import DataError

FORMAT = "medgan-cohort-cache"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SUBJECTS = "subjects"
# Options applied when batches are drawn, not when tiles are made: a cache serves every value of these.
TRAINING_ONLY = frozenset({"source", "flip", "rotate_degrees", "scale", "balance"})
COMBINING = frozenset({"domain_a", "disjoint"})  # a run may join a one-domain cache with others (unpaired)


def is_cache(path: str | Path) -> bool:
    """True for a folder that holds (or started to hold) a prepared cohort."""
    path = Path(path).expanduser()
    return path.is_dir() and ((path / MANIFEST).is_file() or (path / SUBJECTS).is_dir())


def preprocessing(config: DataConfig) -> dict[str, Any]:
    """The options that decide a cache's tiles (every data key but the training-only ones), as plain values."""
    values = {}
    for item in fields(config):
        if item.name not in TRAINING_ONLY:
            value = getattr(config, item.name)
            values[item.name] = list(value) if isinstance(value, tuple) else value
    return values


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of a finished cache; a foreign, outdated or unfinished cache raises DataError."""
    path = Path(path).expanduser()
    file = path / MANIFEST
    if not file.is_file():
        raise DataError("this cache was never finished (preparation was interrupted): run medgan prepare with the "
                        "same --data and --out to resume it", path)
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"cache manifest is unreadable ({type(error).__name__}); run medgan prepare again",
                        file) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError("not a medgan cohort cache (its manifest has another format)", file)
    if manifest.get("format_version") != FORMAT_VERSION or manifest.get("medgan") != medgan.__version__:
        raise DataError(f"this cache was prepared by medgan {manifest.get('medgan')} (format "
                        f"{manifest.get('format_version')}); this is medgan {medgan.__version__}: run medgan prepare "
                        "again", path)
    return manifest


def fingerprint(file: Path, digest: bool = True) -> dict[str, Any]:
    """Size, mtime and (with ``digest``) SHA-256 of a source file."""
    status = file.stat()
    entry: dict[str, Any] = {"size": status.st_size, "mtime_ns": status.st_mtime_ns}
    if digest:
        sha = hashlib.sha256()
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                sha.update(block)
        entry["sha256"] = sha.hexdigest()
    return entry


def check_sources(manifest: Mapping[str, Any], where: Path) -> None:
    """Raises DataError when a source file listed in the manifest changed since preparation (size or mtime).

    Files that are gone are not an error: a cache may outlive its originals (that is one reason to make it).
    """
    root = Path(manifest.get("source_root") or "")
    for relative, entry in (manifest.get("source_files") or {}).items():
        file = root / relative
        try:
            status = file.stat()
        except OSError:
            continue
        if status.st_size != entry.get("size") or status.st_mtime_ns != entry.get("mtime_ns"):
            raise DataError(f"source file {file} changed since this cache was prepared; run medgan prepare again",
                            where)


def open_cache(path: str | Path, config: DataConfig | None = None) -> Any:
    """A prepared cohort as a ``SliceSet`` whose ``images`` and ``aligned`` domains are ``CachedTiles``.

    Args:
        path: the cache folder (``medgan prepare --out``).
        config: the run's data config; its ``resolution`` must be the cache's (other options come from the cache).

    Raises:
        DataError: see the module docstring; ``config.resolution`` other than the cache's.
    """
    from medgan.data.datasets import SliceSet

    path = Path(path).expanduser()
    manifest = read_manifest(path)
    options = manifest["preprocessing"]
    if config is not None and config.resolution != options["resolution"]:
        raise DataError(f"this cache holds {options['resolution']} px tiles, the run asks for {config.resolution}; "
                        "prepare a cache at that resolution", path)
    check_sources(manifest, path)
    subjects, sources, labels, attributes, mappings, spacings = [], [], [], [], {}, []
    parts: dict[str, list[Part]] = {}
    start = 0
    for entry in manifest["subjects"]:
        folder = path / SUBJECTS / entry["folder"]
        meta = _subject_meta(folder)
        count = int(meta["count"])
        for domain in manifest["domains"]:
            file = folder / f"{domain['name']}.npy"
            stored = open_array(file)
            if tuple(stored.shape) != (count, *domain["shape"]):
                raise DataError(f"cache file holds {tuple(stored.shape)}, its manifest says "
                                f"{(count, *domain['shape'])}; run medgan prepare again", file)
            parts.setdefault(domain["name"], []).append(Part(file, start, count, int(stored.offset)))
            del stored
        start += count
        subjects += [meta["subject"]] * count
        sources += meta["sources"]
        labels += meta.get("labels") or []
        attributes += meta.get("attributes") or []
        spacings.append(meta["spacing"])
        for name, mapping in meta["mappings"].items():
            mappings.setdefault(name, []).append(IntensityMapping.from_dict(mapping))
    domains = {domain["name"]: domain for domain in manifest["domains"]}
    tiles = {name: CachedTiles(parts[name], domain["encoding"], tuple(domain["shape"]))
             for name, domain in domains.items()}
    combined = {name: _combine(found, path) for name, found in mappings.items()}
    images = tiles.pop("images")
    result = SliceSet(images, combined.pop("images"), tuple(float(v) for v in np.median(spacings, axis=0)),
                      subjects, sources,
                      torch.as_tensor(labels, dtype=torch.int64) if manifest.get("labelled") else None,
                      tuple(manifest.get("class_names") or ()))
    if manifest.get("attribute_names"):
        result.attributes = torch.as_tensor(attributes, dtype=torch.float32).reshape(len(result), -1)
        result.attribute_names = tuple(manifest["attribute_names"])
    result.aligned = tiles
    result.mappings = combined
    result.degradation = manifest.get("degradation") or ""
    images.digest = manifest["content_sha256"]
    return result


def _subject_meta(folder: Path) -> dict[str, Any]:
    file = folder / "meta.json"
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise DataError("cache subject is missing or damaged; run medgan prepare again", folder) from None


def _combine(mappings: list[IntensityMapping], where: Path) -> IntensityMapping:
    """The stored mapping of a domain over subjects, as the in-memory pipeline stores it (``SliceBuilder``)."""
    kinds = {mapping.kind for mapping in mappings}
    if len(kinds) > 1:
        raise DataError(f"the cache mixes intensity mappings ({', '.join(sorted(kinds))}): mixed modalities; "
                        "set data.modality or separate the files", where)
    if all(mapping == mappings[0] for mapping in mappings):
        return mappings[0]  # a CT window, or one mapping of the whole set
    return combine_mappings(mappings)  # MR volumes, each with its own: the median, as in memory


def cache_data_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """A run's ``data`` values when ``data.source`` is a cache: the cache's preprocessing options, with the
    training-only ones the run gives. An option the run sets to another value than the cache's raises DataError
    (the tiles were made with the cache's)."""
    source = values.get("source")
    if not isinstance(source, str) or not is_cache(source):
        return dict(values)
    options = read_manifest(source)["preprocessing"]
    run = {key: value for key, value in values.items() if key in TRAINING_ONLY}
    for key, value in values.items():
        if key in TRAINING_ONLY or key not in options:
            continue
        if key in COMBINING and not options[key]:
            run[key] = value  # this cache is one domain; the run combines it with others (unpaired domain A)
            continue
        same = list(value) if isinstance(value, (tuple, list)) else value
        if same != options[key]:
            raise DataError(f"data.{key} is {value!r} here but the cache was prepared with {options[key]!r}; "
                            "prepare a cache with it, or leave it out", source)
    return {**options, **run}

