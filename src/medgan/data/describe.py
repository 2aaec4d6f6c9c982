"""``medgan info PATH``: what medgan sees in a file, folder or embedded source, before any training.

For each image: shape, spacing, modality (and why), intensity range in physical units, the intensity mapping
and how many slices survive the foreground filter along the configured axis. Files that are not images are
listed with the reason they were skipped, and unreadable images with their error, so one bad file does not
hide the others. Every image goes through the checks training runs (``medgan.data.domains.DomainState``: voxels,
size, mixed modalities, mixed 2D/3D), so ``info`` accepts and refuses what ``train`` does; ``unreadable``
says when training would refuse the source (an image it cannot read, or none at all: ``medgan info`` then exits 2).
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from medgan.config import DataConfig
from medgan.data.domains import DomainState, dataset_modality, kept_slices, volume_mapping
from medgan.data.pipeline import load_slices
from medgan.data.readers import discover, read_volume
from medgan.data.slicing import axis_name, slice_count
from medgan.data.sources import SOURCE_FILES, SOURCES
from medgan.errors import DataError

PERCENTILES = (0.5, 50.0, 99.5)


def describe_data(path_or_source: str, config: DataConfig | None = None) -> dict[str, Any]:
    """Facts about a data source, as a dict (the content of ``describe``).

    Args:
        path_or_source: a file, a folder or an embedded source name (``"mni152"``).
        config: data config for modality, normalization and slicing; defaults to ``DataConfig()``.

    Returns:
        ``{"source", "kind", "axis", "min_foreground", "resolution", "fit", "files", "skipped", "total_kept",
        "slice_set"}``: ``files`` has one dict per image (``path, shape, spacing, modality, modality_reason,
        unit, intensity, mapping, slices, kept, notes, error``); ``skipped`` holds ``(path, reason)`` pairs;
        ``slice_set`` summarizes the loaded set for embedded sources without files, else None.

    Raises:
        DataError: the path does not exist and is not an embedded source name.
    """
    config = config or DataConfig()
    facts: dict[str, Any] = {
        "source": path_or_source,
        "axis": config.axis,
        "min_foreground": config.min_foreground,
        "resolution": config.resolution,
        "fit": config.fit,
        "files": [],
        "skipped": [],
        "slice_set": None,
    }
    if path_or_source in SOURCES:
        facts["kind"] = "embedded"
        if path_or_source in SOURCE_FILES:
            items = SOURCE_FILES.get(path_or_source)()
            root = items[0].parent if len(items) == 1 else None  # show the bundled file by name
        else:
            items, root = [], None
            facts["slice_set"] = _slice_set_facts(path_or_source, config)
    else:
        path = Path(path_or_source).expanduser()
        if not path.exists():
            raise DataError(f"no such file or folder (embedded sources: {', '.join(SOURCES.names())})", path)
        facts["kind"] = "folder" if path.is_dir() else "file"
        found = discover(path)
        items, root = found.items, (path if path.is_dir() else path.parent)
        facts["skipped"] = [(_shown(p, root), reason) for p, reason in found.skipped]
    state = DomainState(config)  # one state for the whole set, as the slice builder keeps
    facts["files"] = [_file_facts(item, root, config, state) for item in items]
    kept = [f["kept"] for f in facts["files"] if f["kept"] is not None]
    facts["total_kept"] = sum(kept) if kept or not facts["slice_set"] else facts["slice_set"]["images"]
    return facts


def describe(path_or_source: str, config: DataConfig | None = None) -> str:
    """The readable report ``medgan info PATH`` prints.

    Args:
        path_or_source: a file, a folder or an embedded source name.
        config: data config; defaults to ``DataConfig()``.

    Returns:
        Multi-line text.
    """
    return render(describe_data(path_or_source, config))


def render(facts: dict[str, Any]) -> str:
    """The readable report of ``describe_data``'s facts (what ``describe`` returns)."""
    lines = [f"source: {facts['source']} ({facts['kind']})"]
    lines.append(
        f"slicing: {axis_name(facts['axis'])} (axis {facts['axis']}), keep slices with foreground >= "
        f"{facts['min_foreground']:g}, fit to {facts['resolution']} x {facts['resolution']} ({facts['fit']})"
    )
    if facts["kind"] != "embedded" or facts["files"]:
        lines.append(f"found {_count(len(facts['files']), 'image')}, skipped {_count(len(facts['skipped']), 'file')}")
    lines += [f"  skipped {path}: {reason}" for path, reason in facts["skipped"]]
    for number, file in enumerate(facts["files"], start=1):
        lines.append("")
        lines += _file_lines(number, file)
    if facts["slice_set"]:
        lines += ["", *_slice_set_lines(facts["slice_set"])]
    readable = [f for f in facts["files"] if f["error"] is None]
    images = len(readable) or (1 if facts["slice_set"] else 0)
    lines += ["", f"total: {_count(facts['total_kept'], 'slice')} kept from {_count(images, 'image')}"]
    failed = len(facts["files"]) - len(readable)
    if failed:
        lines.append(f"{_count(failed, 'image')} could not be read (see the errors above); training stops at the first")
    return "\n".join(lines)


def unreadable(facts: dict[str, Any]) -> DataError | None:
    """The error for a source that training would refuse, else None: an image that cannot be read (training stops
    at the first; the count names them all), or no image at all (every file failed or was skipped)."""
    if facts["slice_set"]:
        return None
    failed = sum(file["error"] is not None for file in facts["files"])
    readable, skipped = len(facts["files"]) - failed, len(facts["skipped"])
    if readable and failed:
        return DataError(f"{_count(failed, 'image')} of {len(facts['files'])} could not be read (see above); training "
                         "would stop at the first: fix or remove them", facts["source"])
    if readable:
        return None
    if failed:
        problem = f"no image could be read ({_count(failed, 'image')} failed"
        problem += f", {_count(skipped, 'other file')} skipped; see above)" if skipped else "; see above)"
    else:
        problem = "no readable images (see the skipped files above)" if skipped else "no images found"
    return DataError(problem, facts["source"])


# --------------------------------------------------------------------------------------------------------


def _file_facts(item: Path, root: Path | None, config: DataConfig, state: DomainState) -> dict[str, Any]:
    facts: dict[str, Any] = {"path": _shown(item, root), "error": None, "notes": [], "kept": None}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            volume = state.check(read_volume(item, config.nan_policy))  # the checks training runs
            modality, reason = dataset_modality(volume, config)
            mapping = volume_mapping(volume.array, modality, config)
            _, kept, _ = kept_slices(volume, mapping, config)
        except DataError as error:
            facts["error"] = _strip_path(error.one_line(), item)  # one line, naming a series' failing file
            return facts
        finally:
            facts["notes"] = [_strip_path(str(w.message), item) for w in caught]
    values = volume.array[np.isfinite(volume.array)]
    low, *middle, high = [float(values.min()), *np.percentile(values, PERCENTILES), float(values.max())]
    facts.update(
        shape=tuple(int(s) for s in volume.array.shape),
        spacing=tuple(float(s) for s in volume.spacing),
        modality=modality,
        modality_reason=reason,
        unit=mapping.unit,
        intensity={"min": low, **{f"p{p:g}": v for p, v in zip(PERCENTILES, middle)}, "max": high},
        mapping=mapping.to_dict(),
        mapping_text=mapping.describe(),
        ndim=volume.array.ndim,
        axis=config.axis,
        slices=slice_count(volume.array.shape, config.axis),
        kept=int(len(kept)),
    )
    return facts


def _slice_set_facts(name: str, config: DataConfig) -> dict[str, Any]:
    slice_set = load_slices(replace(config, source=name), progress=False)
    return {
        "images": len(slice_set),
        "shape": tuple(int(s) for s in slice_set.images.shape[1:]),
        "mapping": slice_set.mapping.to_dict(),
        "mapping_text": slice_set.mapping.describe(),
        "spacing": tuple(slice_set.spacing),
        "subjects": len(set(slice_set.subjects)),
        "class_names": tuple(slice_set.class_names),
    }


def _file_lines(number: int, file: dict[str, Any]) -> list[str]:
    lines = [f"{number}. {file['path']}"]
    if file["error"] is not None:
        return lines + [f"   error: {file['error']}"] + [f"   note: {note}" for note in file["notes"]]
    shape = " x ".join(str(s) for s in file["shape"])
    spacing = " x ".join(f"{s:.3g}" for s in file["spacing"])
    intensity = ", ".join(f"{key} {value:.4g}" for key, value in file["intensity"].items())
    if file["ndim"] == 3:
        slices = f"{file['slices']} {axis_name(file['axis'])} slices, {file['kept']} kept"
    else:
        slices = "2D image, always kept"
    lines += [
        f"   shape {shape} ({file['ndim']}D), spacing {spacing} mm",
        f"   modality {file['modality']} ({file['modality_reason']})",
        f"   intensity ({file['unit']}): {intensity}",
        f"   mapping {file['mapping_text']}",
        f"   slices: {slices}",
    ]
    return lines + [f"   note: {note}" for note in file["notes"]]


def _slice_set_lines(summary: dict[str, Any]) -> list[str]:
    shape = " x ".join(str(s) for s in summary["shape"])
    lines = [
        f"embedded set: {_count(summary['images'], 'image')} of {shape}, {_count(summary['subjects'], 'subject')}",
        f"   mapping {summary['mapping_text']}, spacing {summary['spacing'][0]:.3g} mm/pixel",
    ]
    if summary["class_names"]:
        lines.append(f"   classes: {', '.join(summary['class_names'])}")
    return lines


def _shown(path: Path, root: Path | None) -> str:
    """``path`` relative to the described folder when inside it, else as given."""
    if root is not None and path != root:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            pass
    return path.name if path == root else str(path)


def _strip_path(message: str, path: Path) -> str:
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
