"""Smooth 3D random fields of a phantom patient, so that a volume's texture continues through the plane.

Simulated data, not patient data. The 2D sources draw each slice's random texture (fat septa, faecal content,
CT tissue texture, MR proton-density texture) from a stream keyed by the slice height alone, so slices 2.5 mm
apart have unrelated texture, which no real scan shows. Here each texture is one field over x, y and z: white
noise on the volume's voxel lattice (one plane per slice height, each plane drawn from a stream keyed by the
patient, the field, the image size and the height), smoothed by a Gaussian of the field's correlation length in
mm along every axis and scaled to unit variance. The planes beyond the volume's ends that the Gaussian reaches
are drawn too, and the scale is the smoothing's own (not the sample's), so the field at a height does not depend
on where the volume starts or ends: two volumes of one patient on the same lattice (size, slice spacing and
heights on one grid) agree where they overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from medgan.data.phantom.acquisition import FOV_MM
from medgan.data.phantom.anatomy import seed_key
from medgan.data.phantom.paint import FAECES_MM, SEPTA_MM, TEXTURE_MM, SliceFields

TRUNCATE = 4.0  # Gaussian kernels reach this many standard deviations (scipy's default)
# Field -> (correlation length in mm, extra smoothing in voxels), as the 2D path draws it per slice (``paint``,
# ``mr``); the stream index keeps the fields independent.
FIELDS: dict[str, tuple[float, float]] = {
    "septa": (SEPTA_MM, 0.0),
    "faeces": (FAECES_MM, 0.5),
    "texture": (TEXTURE_MM, 0.0),
    "mr-texture": (TEXTURE_MM, 0.0),
}


@dataclass(frozen=True)
class PatientFields:
    """A patient's smooth random fields on a volume's lattice: float32 ``[Z, size, size]`` each (slice, row,
    column), zero mean and unit variance (``FIELDS`` names them)."""

    septa: np.ndarray
    faeces: np.ndarray
    texture: np.ndarray
    mr_texture: np.ndarray

    def at(self, index: int) -> SliceFields:
        """The CT painting's fields on slice ``index`` (``paint.paint_slice``, ``paint.textured``)."""
        return SliceFields(self.septa[index], self.faeces[index], self.texture[index])


def _kernel_norm(sigma: float) -> float:
    """Standard deviation of unit white noise after a 1D Gaussian of ``sigma`` samples (scipy's kernel)."""
    radius = int(TRUNCATE * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    weights /= weights.sum()
    return float(np.sqrt(np.sum(weights**2)))


def smooth_field(
    seed: int, stream: int, heights_mm: Sequence[float], size: int, sigma_mm: float, extra_voxels: float = 0.0
) -> np.ndarray:
    """One unit-variance 3D Gaussian random field, sampled on ``size`` x ``size`` slices at ``heights_mm``.

    Args:
        seed: patient seed.
        stream: which field (keeps fields of one patient independent).
        heights_mm: slice heights in mm, equally spaced and increasing (one height: a single slice).
        size: in-plane pixels over the 400 mm field of view.
        sigma_mm: the Gaussian's standard deviation (the field's correlation length) in mm along x, y and z.
        extra_voxels: added to the Gaussian's standard deviation in voxels along each axis.

    Returns:
        float32 ``[len(heights_mm), size, size]`` (slice, row, column).
    """
    heights = np.asarray(heights_mm, dtype=np.float64)
    step = float(heights[1] - heights[0]) if len(heights) > 1 else 1.0
    spacing = FOV_MM / size
    sigma_z, sigma_xy = sigma_mm / step + extra_voxels, sigma_mm / spacing + extra_voxels
    margin = int(TRUNCATE * sigma_z + 0.5)  # planes beyond each end that the z kernel reaches
    lattice = heights[0] + np.arange(-margin, len(heights) + margin) * step
    noise = np.empty((len(lattice), size, size), dtype=np.float32)
    for index, z in enumerate(lattice):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 89, stream, size, *seed_key(float(z))]))
        noise[index] = rng.standard_normal((size, size), dtype=np.float32)
    field = ndimage.gaussian_filter(noise, (sigma_z, sigma_xy, sigma_xy), truncate=TRUNCATE)
    scale = _kernel_norm(sigma_z) * _kernel_norm(sigma_xy) ** 2
    return np.ascontiguousarray(field[margin : margin + len(heights)] / np.float32(scale))


def patient_fields(seed: int, heights_mm: Sequence[float], size: int) -> PatientFields:
    """The fields of patient ``seed`` on slices at ``heights_mm`` (equally spaced, increasing) of ``size`` px."""
    made = [
        smooth_field(seed, stream, heights_mm, size, sigma_mm, extra)
        for stream, (sigma_mm, extra) in enumerate(FIELDS.values())
    ]
    return PatientFields(*made)
