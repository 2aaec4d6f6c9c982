"""``medgan prepare``: read a cohort once, write its tiles to a cache (``store``) that training streams from.

Folders of 3D volumes (NIfTI, DICOM series, NumPy volumes) are prepared subject by subject in worker processes:
each worker reads one volume, runs the generic pipeline on it (``medgan.data.datasets``: map, reorient, slice,
filter, fit) and writes that subject's folder, so memory holds one volume per worker whatever the cohort's size.
Each subject's tiles and mapping are what the in-memory pipeline makes of that volume; opening the cache
combines the mappings over subjects as the pipeline does (one CT window; the median MR mapping).

Everything else (embedded sources, dataset layouts, 2D image folders whose intensities are mapped together,
pairs, degradations, several modalities) is read once by ``medgan.data.load_slices`` and written subject by
subject: the preparation holds that set once, training never does.

A subject's folder is renamed into place when it is complete, and the manifest is written last, so a killed
preparation leaves no manifest; the same command resumes it, keeping the subjects already written whose source
file is unchanged. A cache of another medgan version is prepared again from scratch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Iterator

import numpy as np

import medgan
from medgan.config import DataConfig
from medgan.data.cache.store import FORMAT, FORMAT_VERSION, MANIFEST, SUBJECTS, fingerprint, preprocessing
from medgan.data.cache.tiles import encode
from medgan.errors import DataError, MedganError
from medgan.utils import atomic_write_text

VOLUME_KINDS = ("nifti", "dicom")  # file kinds that are whole 3D volumes, prepared one per worker


@dataclass(frozen=True)
class Prepared:
    """What ``prepare_cache`` did."""

    path: Path
    subjects: int
    tiles: int
    written: int  # subjects written by this call (the others were kept from an interrupted preparation)
    seconds: float
    bytes: int  # size of the tiles on disk


def prepare_cache(config: DataConfig, out: str | Path, workers: int = 0, progress: bool = True) -> Prepared:
    """Prepares ``config.source`` (any source ``load_slices`` reads) into the cache folder ``out``.

    Args:
        config: the data config: the source and every preprocessing option (resolution, axis, windows...).
        out: the cache folder; created, resumed (same source, options and medgan version) or refused.
        workers: processes reading volumes (0: one per core, at most 8).
        progress: a progress bar over subjects.

    Raises:
        DataError: unreadable data (as ``load_slices``), or ``out`` holding something other than a cache.
    """
    started = time.monotonic()
    out = Path(out).expanduser()
    created = not out.exists()
    try:
        return _prepare(config, out, workers, progress, started)
    except MedganError:
        if created:  # bad input on a new cache leaves nothing behind (a kill leaves it to resume)
            shutil.rmtree(out, ignore_errors=True)
        raise


def _prepare(config: DataConfig, out: Path, workers: int, progress: bool, started: float) -> Prepared:
    options = preprocessing(config)
    _claim(out, options)
    (out / SUBJECTS).mkdir(parents=True, exist_ok=True)
    items = _volume_items(config)
    if items is not None:
        entries, written = _prepare_volumes(config, items, out, workers, progress)
        root, files = Path(config.source).expanduser().absolute(), {}
    else:
        entries, written = _prepare_loaded(config, out, progress)
        root, files = _source_files(config)
    if not entries:
        raise DataError("no subject kept a slice; lower data.min_foreground", config.source)
    metas = [json.loads((out / SUBJECTS / entry / "meta.json").read_text()) for entry in entries]
    for meta in metas:
        files.update(meta.pop("source_files", {}))
    kinds = {meta["mappings"]["images"]["kind"] for meta in metas}
    if len(kinds) > 1:
        raise DataError(f"mixed modalities across subjects ({', '.join(sorted(kinds))} mappings); set data.modality "
                        "or separate the files", config.source)
    first = metas[0]
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "medgan": medgan.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "preprocessing": options,
        "source_root": str(root), "source_files": files,
        "domains": first["domains"], "labelled": first["labels"] is not None,
        "class_names": first["class_names"], "attribute_names": first["attribute_names"],
        "degradation": first["degradation"],
        "subjects": [{"folder": entry, "subject": meta["subject"], "tiles": meta["count"]}
                     for entry, meta in zip(entries, metas)],
        "tiles": int(sum(meta["count"] for meta in metas)),
        "content_sha256": hashlib.sha256("".join(meta["content_sha256"] for meta in metas).encode()).hexdigest(),
    }
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=1))
    size = sum(file.stat().st_size for file in (out / SUBJECTS).rglob("*.npy"))
    return Prepared(out, len(entries), manifest["tiles"], written, time.monotonic() - started, size)


def _claim(out: Path, options: dict[str, Any]) -> None:
    """Makes ``out`` ready: new, or a cache of the same options and version (resumed), or refused."""
    claim = out / "preparing.json"
    if out.exists() and not out.is_dir():
        raise DataError("--out is a file, not a folder for the cache", out)
    if not out.exists():
        out.mkdir(parents=True)
    elif claim.is_file():
        previous = json.loads(claim.read_text())
        if previous.get("medgan") != medgan.__version__:  # another version made those tiles: start again
            shutil.rmtree(out / SUBJECTS, ignore_errors=True)
        elif previous.get("preprocessing") != options:
            raise DataError("this folder holds a cache of other data or options; give another --out", out)
    elif any(out.iterdir()):
        raise DataError("folder is not empty and holds no medgan cache; give an empty or new --out", out)
    (out / MANIFEST).unlink(missing_ok=True)  # until this preparation finishes, the cache is unfinished
    for temporary in (out / SUBJECTS).glob(".*.tmp") if (out / SUBJECTS).is_dir() else ():
        shutil.rmtree(temporary, ignore_errors=True)  # a subject a killed preparation was writing
    atomic_write_text(claim, json.dumps({"medgan": medgan.__version__, "preprocessing": options}))


def _volume_items(config: DataConfig) -> list[Path] | None:
    """The files of a folder of 3D volumes read by the generic pipeline, or None for every other source."""
    from medgan.data.layouts.lits_msd import find_lits_cases
    from medgan.data.readers import discovered_items, file_kind
    from medgan.data.sources import SOURCES

    if config.input or config.pairs or config.degrade or config.domain_a or config.source in SOURCES:
        return None
    path = Path(config.source).expanduser()
    if not path.is_dir() or (path / "imagesTr").is_dir() or find_lits_cases(path):  # the CT layouts
        return None
    items = discovered_items(path)
    return items if all(item.is_dir() or file_kind(item) in VOLUME_KINDS for item in items) else None


def _prepare_volumes(config: DataConfig, items: list[Path], out: Path, workers: int,
                     progress: bool) -> tuple[list[str], int]:
    """One subject folder per volume, written by worker processes (module docstring)."""
    from medgan.data.labels import read_label_table, sorted_classes

    root = Path(config.source).expanduser().absolute()
    labels: list[int | None] = [None] * len(items)
    attributes: list[tuple[float, ...] | None] = [None] * len(items)
    class_names: tuple[str, ...] = ()
    attribute_names: tuple[str, ...] = ()
    if config.labels:
        table = read_label_table(config.labels, root)
        rows = [table.row_for(item, root) for item in items]
        class_names = tuple(sorted_classes([row.label for row in rows]))
        labels = [class_names.index(row.label) for row in rows]
        if table.attribute_names:
            attribute_names = tuple(table.attribute_names)
            attributes = [tuple(float(v) for v in row.attributes) for row in rows]
    jobs = [(config, str(item), str(root), labels[i], attributes[i], class_names, attribute_names,
             str(out / SUBJECTS), f"{i:06d}") for i, item in enumerate(items)]
    pending = [job for job in jobs if not _is_current(out / SUBJECTS / job[-1], Path(job[1]))]
    workers = workers or min(8, os.cpu_count() or 1)
    if workers <= 1 or len(pending) <= 1:
        results: Iterator = map(_prepare_one, pending)
        pool = None
    else:
        pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
        results = pool.map(_prepare_one, pending)
    bar = None
    if progress and len(pending) > 4:
        from medgan.progress import progress_bar

        bar = progress_bar(total=len(pending), desc="preparing", unit="subject", leave=False)
    try:
        for _ in results:
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    kept = [job[-1] for job in jobs if not json.loads((out / SUBJECTS / job[-1] / "meta.json").read_text()).get("empty")]
    return kept, len(pending)


def _is_current(folder: Path, source: Path) -> bool:
    """A subject folder written earlier whose source file is unchanged (resume keeps it)."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    if meta.get("empty"):
        return True
    entry = next(iter(meta.get("source_files", {}).values()), None)
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    return entry is not None and bool(files) and fingerprint(files[0], digest=False).items() <= entry.items()


def _prepare_one(job: tuple) -> None:
    """A worker's job: one volume -> one subject folder (or an empty marker when no slice is kept)."""
    from medgan.data.datasets import slices_from_volumes
    from medgan.data.readers import read_volume

    config, item, root, label, values, class_names, attribute_names, folder, name = job
    item = Path(item)
    volume = read_volume(item, config.nan_policy)
    files = [item] if item.is_file() else sorted(p for p in item.rglob("*") if p.is_file())
    source_files = {os.path.relpath(file, root): fingerprint(file) for file in files}
    try:
        sliced = slices_from_volumes([volume], config, None if label is None else [label], class_names,
                                     None if values is None else [values], attribute_names)
    except DataError as error:
        if "foreground fraction" not in error.message:
            raise
        _write_subject(Path(folder), name, None, {"empty": True, "source_files": source_files})
        return
    _write_subject(Path(folder), name, _relative(sliced, Path(root)), {"source_files": source_files})


def _prepare_loaded(config: DataConfig, out: Path, progress: bool) -> tuple[list[str], int]:
    """Every other source: loaded once with ``load_slices`` and written subject by subject."""
    from medgan.data.pipeline import load_slices

    sliced = load_slices(config, progress=progress)
    order: dict[str, list[int]] = {}
    for index, subject in enumerate(sliced.subjects):
        order.setdefault(subject, []).append(index)
    entries = []
    for number, rows in enumerate(order.values()):
        name = f"{number:06d}"
        shutil.rmtree(out / SUBJECTS / name, ignore_errors=True)
        _write_subject(out / SUBJECTS, name, sliced.subset(rows), {})
        entries.append(name)
    return entries, len(entries)


def _write_subject(folder: Path, name: str, sliced: Any, extra: dict[str, Any]) -> None:
    """Writes one subject's arrays and meta.json into a temporary folder, then renames it into place."""
    final = folder / name
    temporary = folder / f".{name}.{os.getpid()}.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    meta: dict[str, Any] = dict(extra)
    if sliced is not None:
        domains, digests = [], []
        for domain, tiles in [("images", sliced.images), *sorted(sliced.aligned.items())]:
            stored, encoding = encode(np.asarray(tiles))
            np.save(temporary / f"{domain}.npy", stored)
            digests.append(hashlib.sha256(stored.tobytes()).hexdigest())
            domains.append({"name": domain, "encoding": encoding, "shape": list(stored.shape[1:])})
        mappings = {"images": sliced.mapping.to_dict(),
                    **{domain: mapping.to_dict() for domain, mapping in sliced.mappings.items()}}
        meta.update({
            "subject": sliced.subjects[0], "count": len(sliced), "sources": list(sliced.sources),
            "labels": None if sliced.labels is None else sliced.labels.tolist(),
            "class_names": list(sliced.class_names), "attribute_names": list(sliced.attribute_names),
            "attributes": None if sliced.attributes is None else sliced.attributes.tolist(),
            "spacing": list(sliced.spacing), "mappings": mappings, "domains": domains,
            "degradation": sliced.degradation, "content_sha256": hashlib.sha256("".join(digests).encode()).hexdigest()})
    (temporary / "meta.json").write_text(json.dumps(meta))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(temporary, final)


def _relative(sliced: Any, root: Path) -> Any:
    from medgan.data.datasets import relative_sources

    return relative_sources(sliced, root)


def _source_files(config: DataConfig) -> tuple[Path, dict[str, Any]]:
    """The files under a path source (size, mtime, SHA-256), or nothing for an embedded source."""
    paths = [config.source, *config.domain_a, config.input, config.pairs, config.labels]
    found: dict[str, Any] = {}
    root = Path("/")
    for given in [p for p in paths if p]:
        path = Path(given).expanduser()
        if not path.exists():
            continue  # an embedded source name: medgan's version stands for its content
        path = path.resolve()
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            found[str(file.relative_to(root))] = fingerprint(file)
    return root, found
