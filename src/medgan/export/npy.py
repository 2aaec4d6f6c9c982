"""NumPy export: a float32 ``[N, H, W]`` stack (physical units with a mapping) plus a ``<name>.json`` sidecar
like the PNG one, since ``.npy`` files hold no metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from medgan.data.intensity import IntensityMapping
from medgan.errors import DataError
from medgan.export.common import (
    WRITERS,
    ExportOptions,
    Images,
    Spacing,
    all_or_nothing,
    checked_spacing,
    file_in,
    in_plane,
    physical,
    sidecar_metadata,
    unit_stack,
)


def write_npy(
    images: Images,
    path: str | Path,
    mapping: IntensityMapping | None = None,
    spacing: Spacing | None = None,
) -> list[Path]:
    """Writes a float32 [N, H, W] stack (physical units with a mapping, else [-1, 1]) and a JSON sidecar.

    Args:
        images: [N, 1, H, W] or [N, H, W] values in [-1, 1].
        path: output ``.npy`` file; the sidecar is the same path with ``.json`` appended to the stem
            (``samples.npy`` -> ``samples.json``).
        mapping: [-1, 1] -> physical units; None keeps the unit range.
        spacing: (row, column) mm per pixel, recorded in the sidecar.

    Returns:
        ``[path, sidecar]``.

    Raises:
        DataError: bad images or a write failure (nothing left behind).
    """
    path = Path(path)
    if path.suffix != ".npy":
        raise DataError("a NumPy output must end in .npy", path=path)
    stack = physical(unit_stack(images, path), mapping)
    metadata = sidecar_metadata("npy", mapping, None if spacing is None else checked_spacing(spacing))
    metadata.update(layout="[N, H, W] display orientation", dtype="float32", files=[path.name])
    with all_or_nothing(path.parent) as batch:
        with batch.file(path.name) as temporary:
            np.save(temporary, stack.astype(np.float32))
        batch.write_text(path.with_suffix(".json").name, json.dumps(metadata, indent=2) + "\n")
        return list(batch.written)


@WRITERS.register("npy")
def _export_npy(images: Images, out: Path, options: ExportOptions) -> list[Path]:
    """``export(..., "npy")``: ``out`` itself if it ends in .npy, else ``out/samples.npy``."""
    return write_npy(images, file_in(out, (".npy",), "samples.npy"), options.mapping, in_plane(options.spacing))
