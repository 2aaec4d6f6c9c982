"""The canvas of the simulated CT phantom: one axial slice as a pixel grid in mm, with HU values and tissue labels.

The grid spans the scanner's reconstruction field of view (``FOV_MM``), so the canvas is the truth that
``medgan.data.phantom.acquisition`` scans. Drawing primitives: shapes (``Blob``), tubes (``Vessel``) and discs.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from medgan.data.phantom.acquisition import FOV_MM
from medgan.data.phantom.anatomy import Blob, Vessel
from medgan.data.phantom.tissue import LABEL


class Canvas:
    """The slice being painted: a pixel grid in mm, HU values and tissue labels."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.spacing = FOV_MM / size
        centres = (np.arange(size, dtype=np.float32) + 0.5 - size / 2) * self.spacing
        self.y, self.x = np.meshgrid(centres, centres, indexing="ij")
        self.hu = np.full((size, size), -1000.0, dtype=np.float32)
        self.labels = np.zeros((size, size), dtype=np.uint8)

    def window(self, x: float, y: float, reach: float) -> tuple[slice, slice] | None:
        """Pixel rows/columns within ``reach`` mm of (x, y), or None when that box misses the image."""
        half = self.size / 2
        r0 = max(int((y - reach) / self.spacing + half), 0)
        r1 = min(int((y + reach) / self.spacing + half) + 2, self.size)
        c0 = max(int((x - reach) / self.spacing + half), 0)
        c1 = min(int((x + reach) / self.spacing + half) + 2, self.size)
        return (slice(r0, r1), slice(c0, c1)) if r0 < r1 and c0 < c1 else None

    def radial(self, blob: Blob) -> np.ndarray:
        """Normalized radius of ``blob`` at every pixel: < 1 inside, 1 on the boundary, inf far outside."""
        rho = np.full(self.hu.shape, np.inf, dtype=np.float32)
        box = self.window(blob.centre[0], blob.centre[1], blob.reach())
        if box is None:
            return rho
        dx, dy = self.x[box] - blob.centre[0], self.y[box] - blob.centre[1]
        cos_a, sin_a = math.cos(blob.angle), math.sin(blob.angle)
        u = (dx * cos_a + dy * sin_a) / blob.radii[0]
        v = (-dx * sin_a + dy * cos_a) / blob.radii[1]
        if blob.power == 2.0:
            local = np.hypot(u, v)
        else:
            local = (np.abs(u) ** blob.power + np.abs(v) ** blob.power) ** (1.0 / blob.power)
        if blob.wobble:
            local = local / blob.boundary(np.arctan2(v, u))
        rho[box] = local
        return rho

    def paint(self, mask: np.ndarray, label: str, hu: float | np.ndarray) -> None:
        """Sets the ``mask`` pixels to tissue ``label`` with value(s) ``hu`` (a scalar or a full image)."""
        self.labels[mask] = LABEL[label]
        self.hu[mask] = hu if np.isscalar(hu) else hu[mask]

    def paint_organ(self, mask: np.ndarray, label: str, hu: float, fat_hu: float, gap_mm: float = 1.5) -> None:
        """Paints an organ over other viscera with a thin fat plane around it, as organs are separated by fat."""
        if not mask.any():
            return
        distance = ndimage.distance_transform_edt(~mask) * self.spacing
        viscera = np.isin(self.labels, [LABEL[name] for name in ("liver", "spleen", "bowel", "gas", "pancreas")])
        self.paint((distance > 0) & (distance <= gap_mm) & viscera, "fat", fat_hu)
        self.paint(mask, label, hu)

    def tube(self, vessel: Vessel, scale: float) -> np.ndarray:
        """Mask of a tapered Bezier tube, stamped as discs along the curve on small boxes."""
        mask = np.zeros(self.hu.shape, dtype=bool)
        (x0, y0), (x1, y1), (x2, y2) = vessel.points
        length = math.hypot(x1 - x0, y1 - y0) + math.hypot(x2 - x1, y2 - y1)
        for t in np.linspace(0.0, 1.0, max(8, int(length / (0.5 * self.spacing + 0.5)))):
            x = (1 - t) ** 2 * x0 + 2 * (1 - t) * t * x1 + t**2 * x2
            y = (1 - t) ** 2 * y0 + 2 * (1 - t) * t * y1 + t**2 * y2
            radius = (vessel.radii[0] + t * (vessel.radii[1] - vessel.radii[0])) * scale
            self.disc(mask, x, y, radius)
        return mask

    def disc(self, mask: np.ndarray, x: float, y: float, radius: float) -> None:
        """Sets the pixels of ``mask`` whose centres lie within ``radius`` mm of (x, y)."""
        box = self.window(x, y, radius + self.spacing)
        if box is not None:
            mask[box] |= (self.x[box] - x) ** 2 + (self.y[box] - y) ** 2 <= radius * radius
