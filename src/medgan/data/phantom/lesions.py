"""Liver lesions of the simulated CT phantom: class-specific sampling, placement in the liver, painting and masks.

Simulated data, not patient data. Three classes (``LESION_CLASSES``): a **cyst** is round, sharp and of water
density; a **metastasis** is lobulated and hypodense with a thin enhancing rim; a **hemangioma** is hypodense
with globular nodules on its margin at blood-pool density (values in ``medgan.data.phantom.tissue``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage

from medgan.data.phantom.anatomy import Anatomy, Blob, Wobble, bump, random_wobble
from medgan.data.phantom.canvas import Canvas
from medgan.data.phantom.paint import paint_slice
from medgan.data.phantom.tissue import LABEL, LESION_CLASSES


@dataclass(frozen=True)
class Lesion:
    """A liver lesion: a roughly spherical 3D shape with class-specific internal structure."""

    kind: str  # one of LESION_CLASSES
    centre: tuple[float, float, float]  # x, y, z (mm)
    radius: float  # in-plane radius at its widest (mm)
    z_radius: float  # half extent along z (mm)
    wobble: Wobble
    nodules: tuple[tuple[float, float], ...]  # hemangioma: (angle, relative size) of peripheral nodules
    contrast: tuple[float, float]  # (centre HU, rim or nodule HU)


def _sample_lesion(
    rng: np.random.Generator, kind: str, centre: tuple[float, float, float], radius: float, tissue: dict[str, float]
) -> Lesion:
    """Class-specific outline and contrast of one lesion."""
    if kind == "cyst":
        wobble = random_wobble(rng, 0.03, (2, 3))  # round and smooth
        contrast = (tissue["cyst"] + rng.normal(0, 3), tissue["cyst"])
    elif kind == "metastasis":
        wobble = random_wobble(rng, 0.16, (2, 3, 4, 5, 6))  # lobulated, irregular
        contrast = (tissue["metastasis-centre"] + rng.normal(0, 5), tissue["metastasis-rim"] + rng.normal(0, 8))
    elif kind == "hemangioma":
        wobble = random_wobble(rng, 0.1, (2, 3, 4))
        contrast = (tissue["hemangioma-centre"] + rng.normal(0, 8), tissue["aorta"] - rng.uniform(0, 15))
    else:
        raise ValueError(f"unknown lesion class {kind!r}; choose one of {LESION_CLASSES}")
    count = int(rng.integers(3, 6)) if kind == "hemangioma" else 0
    start = rng.uniform(0, 2 * math.pi)
    nodules = tuple(
        (float(start + i * 2 * math.pi / count + rng.normal(0, 0.3)), float(rng.uniform(0.3, 0.45)))
        for i in range(count)
    )
    values = (float(contrast[0]), float(contrast[1]))
    return Lesion(kind, centre, radius, radius * rng.uniform(0.8, 1.2), wobble, nodules, values)


def _lesion_radius(rng: np.random.Generator, kind: str) -> float:
    """In-plane radius (mm): cysts are often small; metastases and hemangiomas range to 4 cm across."""
    if kind == "cyst":
        return float(rng.uniform(5.0, 13.0))
    return float(rng.uniform(8.0, 20.0) if kind == "metastasis" else rng.uniform(10.0, 22.0))


PLACEMENT_SIZE = 128  # grid on which lesions are placed, whatever the render size


def place_lesions(
    anatomy: Anatomy, z: float, kinds: Sequence[str], rng: np.random.Generator, canvas: Canvas | None = None
) -> list[Lesion]:
    """Places lesions of ``kinds`` inside the liver at height ``z`` without overlaps; drops those that do not fit.

    Placement works on a fixed PLACEMENT_SIZE grid, so a patient's lesions do not depend on the render size;
    ``canvas`` is that slice already painted (without lesions), when the caller has it.
    """
    if canvas is None or canvas.size != PLACEMENT_SIZE:
        canvas = paint_slice(anatomy, z, PLACEMENT_SIZE)
    liver = np.isin(canvas.labels, [LABEL["liver"], LABEL["liver-vessel"]])
    room = ndimage.distance_transform_edt(liver) * canvas.spacing  # mm to the nearest non-liver pixel
    lesions: list[Lesion] = []
    for kind in kinds:
        radius = _lesion_radius(rng, kind)
        candidates = np.argwhere(room > radius + 3.0)
        while not len(candidates) and radius > 4.0:  # a small liver section only fits a smaller lesion
            radius *= 0.75
            candidates = np.argwhere(room > radius + 3.0)
        if not len(candidates):
            continue
        row, column = candidates[rng.integers(len(candidates))]
        centre = (float(canvas.x[row, column]), float(canvas.y[row, column]), float(z))
        lesions.append(_sample_lesion(rng, kind, centre, radius, anatomy.tissue_hu))
        room = np.minimum(room, np.hypot(canvas.x - centre[0], canvas.y - centre[1]) - radius - 4.0)
    return lesions


def paint_lesion(canvas: Canvas, lesion: Lesion, z: float) -> None:
    """Paints one lesion's cross-section at ``z``, over liver tissue only."""
    radius = lesion.radius * bump(z, lesion.centre[2], lesion.z_radius)
    if radius < 1.5:
        return
    rho = canvas.radial(Blob(lesion.centre[:2], (radius, radius * 0.9), wobble=lesion.wobble))
    inside = (rho < 1.0) & np.isin(canvas.labels, [LABEL["liver"], LABEL["liver-vessel"]])
    centre_hu, outer_hu = lesion.contrast
    if lesion.kind == "cyst":
        canvas.paint(inside, "lesion", centre_hu)  # water density, sharp wall, no enhancement
        return
    if lesion.kind == "metastasis":
        # Hypodense with a slightly darker necrotic core and a thin enhancing rim (a "target" look).
        rim = min(0.5, 5.0 / radius)  # about 5 mm: a 2.5 mm ramp, then a 2.5 mm enhancing ring
        ramp = np.clip((rho - (1.0 - rim)) / (rim / 2), 0.0, 1.0)
        values = centre_hu - 10.0 * np.clip(1.0 - rho, 0, 1) + (outer_hu - centre_hu) * ramp * ramp * (3 - 2 * ramp)
        canvas.paint(inside, "lesion", values.astype(np.float32))
        return
    # Hemangioma: discontinuous peripheral nodules enhancing like blood; the centre fills in slowly.
    cx, cy = lesion.centre[:2]
    values = centre_hu + (outer_hu - centre_hu) * 0.3 * np.clip(np.where(np.isfinite(rho), rho, 1.0), 0, 1)
    for angle, size in lesion.nodules:
        # Nodules sit on the margin (globular, discontinuous peripheral enhancement).
        position = (cx + 0.85 * radius * math.cos(angle), cy + 0.77 * radius * math.sin(angle))
        nodule = Blob(position, (size * radius * 0.7, size * radius), angle=angle)
        values[canvas.radial(nodule) < 1.0] = outer_hu
    canvas.paint(inside, "lesion", values.astype(np.float32))


def lesion_mask(canvas: Canvas, lesion: Lesion, z: float) -> np.ndarray:
    """The painted pixels of one lesion: its outline at ``z`` intersected with the lesion label."""
    radius = lesion.radius * bump(z, lesion.centre[2], lesion.z_radius)
    if radius < 1.5:
        return np.zeros(canvas.labels.shape, dtype=bool)
    rho = canvas.radial(Blob(lesion.centre[:2], (radius, radius * 0.9), wobble=lesion.wobble))
    return (rho < 1.0) & (canvas.labels == LABEL["lesion"])
