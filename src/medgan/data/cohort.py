"""A synthetic brain cohort made from the one MNI152 template: subjects that differ in pose, size, shape, side,
contrast, bias field and noise, with known subject ids.

medgan ships no real patient volumes, and the MNI ICBM152 2009a T1 (nilearn's wheel) is one brain. Subject ``k``
of the cohort is that template at 2 mm, put through a random affine (per-axis scale 0.92-1.08, rotations up to 6
degrees about each axis, shifts up to 6 mm), a left-right flip for half of them, a gamma in [0.8, 1.25], a smooth
multiplicative bias field (a random quadratic, up to about +/-20%) and Gaussian noise (1-3% of the intensity
range). The anatomy is one person's, deformed: these subjects test data handling and 3D training, not how well a
model generalizes across real people. Figures made with them say so.

The embedded source ``mni152-cohort`` (2D slices and, with ``data.dims: 3``, volumes) holds subjects
0 .. ``COHORT_SUBJECTS`` - 1; evaluations hold out subjects from ``HELD_OUT`` on, which no training source draws.
``write_mni_cohort`` writes any range of subjects as NIfTI files (marked synthetic) for bigger cohorts.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from medgan.config import DataConfig
from medgan.data.datasets import SliceSet, slices_from_volumes
from medgan.data.readers import Volume, read_volume
from medgan.data.readers.base import centred_affine
from medgan.data.sources import SOURCES, VOLUME_SOURCES, mni152_path

COHORT_SUBJECTS = 48  # subjects of the embedded source
HELD_OUT = 10_000  # first subject index of held-out subjects (benchmarks, evaluation)
VOXEL_MM = 2.0  # the cohort's isotropic voxel size
SCALE_RANGE = 0.08  # per-axis scale in [1 - r, 1 + r]
ROTATION_DEGREES = 6.0  # about each axis
SHIFT_MM = 6.0  # along each axis
GAMMA_RANGE = (0.8, 1.25)
BIAS_RANGE = 0.1  # each of the six quadratic coefficients in [-r, r]
NOISE_RANGE = (0.01, 0.03)  # noise std as a fraction of the 99.9th intensity percentile
SYNTHETIC_DESCRIPTION = "SYNTHETIC medgan mni152-cohort (deformed MNI152 template)"


@lru_cache(maxsize=1)
def _template() -> tuple[np.ndarray, float]:
    """The template at ``VOXEL_MM`` (2 x 2 x 2 block means of the 1 mm file), [X, Y, Z] RAS, and its 99.9th
    intensity percentile. Read-only: every subject is drawn from it."""
    volume = read_volume(mni152_path())
    tensor = torch.from_numpy(np.asarray(volume.array, dtype=np.float32))[None, None]
    factor = round(VOXEL_MM / min(volume.spacing))
    pooled = F.avg_pool3d(tensor, factor, ceil_mode=True)[0, 0].numpy() if factor > 1 else tensor[0, 0].numpy()
    pooled.flags.writeable = False
    return pooled, float(np.percentile(pooled, 99.9))


def _rotation(angles: np.ndarray) -> np.ndarray:
    """The 3 x 3 rotation by ``angles`` (radians) about x, then y, then z."""
    matrix = np.eye(3)
    for axis, angle in enumerate(angles):
        c, s = math.cos(angle), math.sin(angle)
        turn = np.eye(3)
        i, j = [k for k in range(3) if k != axis]
        turn[i, i], turn[i, j], turn[j, i], turn[j, j] = c, -s, s, c
        matrix = turn @ matrix
    return matrix


def mni_subject(index: int, seed: int = 0) -> Volume:
    """Subject ``index`` of the cohort (module docstring): a ``Volume`` in the template's intensity units, 2 mm.

    Args:
        index: the subject; the same (index, seed) gives the same volume on every machine.
        seed: the cohort's seed.
    """
    base, peak = _template()
    rng = np.random.default_rng([seed, index])
    scale = rng.uniform(1 - SCALE_RANGE, 1 + SCALE_RANGE, 3)
    rotation = _rotation(np.radians(rng.uniform(-ROTATION_DEGREES, ROTATION_DEGREES, 3)))
    extent = np.array(base.shape, dtype=np.float64) * VOXEL_MM / 2.0  # half-extent in mm per axis
    shift = rng.uniform(-SHIFT_MM, SHIFT_MM, 3) / extent  # in normalized [-1, 1] units
    # Output point p (normalized, x y z) samples the template at (R diag(1/scale)) p + shift: the brain grows by
    # ``scale``. affine_grid orders grid columns as (W, H, D) = (z, y, x) for a [D, H, W] = [X, Y, Z] tensor.
    matrix = (rotation @ np.diag(1.0 / scale))[::-1, ::-1]
    theta = torch.tensor(np.concatenate([matrix, shift[::-1, None]], axis=1), dtype=torch.float32)[None]
    source = torch.from_numpy(base.copy())[None, None]
    grid = F.affine_grid(theta, list(source.shape), align_corners=False)
    volume = F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0, 0].numpy()
    if rng.random() < 0.5:
        volume = volume[::-1]  # x is left-right
    volume = peak * np.clip(volume / peak, 0, None) ** rng.uniform(*GAMMA_RANGE)
    axes = np.meshgrid(*[np.linspace(-1, 1, n, dtype=np.float32) for n in volume.shape], indexing="ij")
    coefficients = rng.uniform(-BIAS_RANGE, BIAS_RANGE, 6)
    bias = 1 + sum(c * a for c, a in zip(coefficients[:3], axes)) + sum(c * a**2 for c, a in zip(coefficients[3:], axes))
    noise = rng.normal(0.0, rng.uniform(*NOISE_RANGE) * peak, volume.shape)
    array = np.clip(volume * bias + noise, 0, None).astype(np.float32)
    name = f"sub-{index:05d}"
    return Volume(array, centred_affine(array.shape, (VOXEL_MM,) * 3), (VOXEL_MM,) * 3, "MR",
                  Path("mni152-cohort") / name, name)


def mni_cohort(count: int, first: int = 0, seed: int = 0) -> list[Volume]:
    """Subjects ``first`` .. ``first + count - 1`` of the cohort."""
    return [mni_subject(index, seed) for index in range(first, first + count)]


def write_mni_cohort(folder: str | Path, count: int, first: int = 0, seed: int = 0) -> list[Path]:
    """Writes subjects ``first`` .. ``first + count - 1`` as ``sub-NNNNN.nii.gz`` (int16, 2 mm, RAS), each
    marked synthetic in its header description; existing files are kept. Writes are atomic per file.

    Returns:
        The files, in subject order.
    """
    import nibabel as nib

    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(first, first + count):
        path = folder / f"sub-{index:05d}.nii.gz"
        paths.append(path)
        if path.exists():
            continue
        volume = mni_subject(index, seed)
        image = nib.Nifti1Image(np.clip(np.round(volume.array), 0, 32767).astype(np.int16), volume.affine)
        image.header["descrip"] = SYNTHETIC_DESCRIPTION.encode()[:79]
        image.header["intent_name"] = b"synthetic"
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp.nii.gz")
        nib.save(image, str(temporary))
        os.replace(temporary, path)
    return paths


@VOLUME_SOURCES.register("mni152-cohort")
def mni_cohort_volumes(config: DataConfig) -> list[Volume]:
    """The embedded cohort as volumes (``data.dims: 3``): subjects 0 .. COHORT_SUBJECTS - 1."""
    return mni_cohort(COHORT_SUBJECTS)


@SOURCES.register("mni152-cohort")
def mni_cohort_slices(config: DataConfig) -> SliceSet:
    """The embedded cohort as slices (2D): every kept slice of subjects 0 .. COHORT_SUBJECTS - 1, one subject key
    per volume (so ``split_by_subject`` splits by subject)."""
    return slices_from_volumes(mni_cohort(COHORT_SUBJECTS), config)
