"""Simulated glioma-like brain tumours painted into the synthetic MNI152 cohort: the anatomy (tissue fractions
and the tumour label map) of one "patient". Simulated data, not patient data; the MR rendering is in
``medgan.data.brain_tumour_mr`` and the sources in ``medgan.data.brain_tumour_sources``.

Patient ``k`` (with the cohort's ``seed``) is made in the MNI152 template space at 2 mm, then moved to the
patient's space:

1. **Tissues**: grey- and white-matter fractions from nilearn's bundled probability maps (2 x 2 x 2 block means
   of the 1 mm maps), and CSF as the rest of the skull-stripped template's brain mask (nilearn ships no CSF map):
   ``csf = clip(brain - grey - white, 0, 1)``, which holds the ventricles, sulci and the rim of the brain.
2. **Tumour or not** (``has_tumour``): of each pair of patients (2m, 2m + 1) one, drawn from the seed, has a
   tumour, so ``TUMOUR_FRACTION`` (one half) of any even-sized range from an even index are tumour patients.
3. **Placement**: the centre is a drawn voxel of one hemisphere (drawn) with white-matter fraction at least
   ``CENTRE_WHITE_MATTER``, at least ``MIDLINE_MM`` from the midline and deep enough that the tumour stays inside
   the brain. Mean radius ``RADIUS_MM`` (uniform), semi-axes that radius times ``AXIS_RANGE`` factors, randomly
   rotated; the surface is perturbed by a smooth random field (``SURFACE_WOBBLE`` of the radius, correlation
   ``WOBBLE_MM``).
4. **Mass effect**: a radial displacement that pushes anatomy away from the centre as if a ball of
   ``DISPLACED_FRACTION`` times the tumour's volume had been inserted (incompressible: a point at ``r`` moves to
   ``(r^3 + V)^(1/3)``), tapered by ``exp(-(d / MASS_EFFECT_MM)^2)`` with ``d`` the distance beyond the tumour
   radius, so the skull and far anatomy stay put. Applied to the tissue maps before painting.
5. **Compartments**, all partial-volume fractions: necrotic core inside ``CORE_RANGE`` of the (perturbed)
   radius, enhancing rim out to the tumour surface, oedema around it, reaching ``OEDEMA_MM`` (drawn) from the
   surface in white matter and ``OEDEMA_GREY`` of that in grey matter (so it spreads along white matter), never
   into CSF. Tumour and oedema replace the tissues they cover.
6. **Patient space**: every fraction goes through the cohort's deformation of subject ``k`` (the same random
   affine and left-right flip as ``medgan.data.cohort.mni_subject(k, seed)``, same grid and affine).

Label map (``LABELS``, nested, BraTS-like regions): 0 background and normal tissue, 1 oedema, 2 enhancing tumour,
3 necrotic core. A voxel is necrosis where its necrosis fraction reaches 0.5, else enhancing where necrosis plus
enhancing reach 0.5, else oedema where all three reach 0.5. (BraTS 2021 files use 1 necrosis, 2 oedema, 4
enhancing; its regions map as whole tumour = labels >= 1, tumour core = labels >= 2, enhancing = label 2.)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from medgan.data.cohort import ROTATION_DEGREES, SCALE_RANGE, SHIFT_MM, VOXEL_MM, _rotation
from medgan.data.readers.nifti import read_nifti
from medgan.data.sources import mni152_path
from medgan.errors import DataError

TUMOUR_FRACTION = 0.5  # one patient of each pair (2m, 2m + 1) has a tumour (``has_tumour``)
RADIUS_MM = (8.0, 25.0)  # mean tumour radius, uniform
AXIS_RANGE = (0.75, 1.25)  # each semi-axis is the radius times a factor from this range
SURFACE_WOBBLE = 0.2  # relative perturbation of the surface (standard deviation of the smooth field)
WOBBLE_MM = 6.0  # correlation length (Gaussian sigma) of the surface and oedema fields
CORE_RANGE = (0.3, 0.7)  # necrotic core radius as a fraction of the tumour's (uniform)
OEDEMA_MM = (4.0, 20.0)  # oedema reach beyond the tumour surface in white matter, uniform
OEDEMA_GREY = 0.2  # ... times this in grey matter
DISPLACED_FRACTION = (0.5, 0.9)  # fraction of the tumour's volume that displaces anatomy (the rest infiltrates)
MASS_EFFECT_MM = 25.0  # taper length of the displacement beyond the tumour radius
CENTRE_WHITE_MATTER = 0.9  # the centre voxel's least white-matter fraction
MIDLINE_MM = 12.0  # the centre's least distance from the midline
TISSUES = ("grey-matter", "white-matter", "csf", "oedema", "enhancing", "necrosis")  # fraction channels
LABELS = {"background": 0, "oedema": 1, "enhancing": 2, "necrosis": 3}
MNI152_TISSUE_FILES = (  # nilearn's grey- and white-matter maps next to the T1 (as paired_sources.mni152_tissue)
    "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
)
_STREAM = 2801  # tumour draws use the generator of [seed, index, _STREAM], apart from the cohort's


@dataclass(frozen=True)
class TumourPlan:
    """One tumour, in template world millimetres (RAS, MNI152 space): centre, semi-axes and their rotation,
    necrotic core fraction, oedema reach, displaced fraction."""

    centre_mm: tuple[float, float, float]
    semi_axes_mm: tuple[float, float, float]
    rotation: np.ndarray  # [3, 3], columns are the semi-axis directions
    core: float
    oedema_mm: float
    displaced: float

    @property
    def radius_mm(self) -> float:
        return float(np.mean(self.semi_axes_mm))


@dataclass(frozen=True)
class PatientAnatomy:
    """One patient in the cohort's patient space (``mni_subject``'s grid).

    Attributes:
        index: the patient.
        fractions: uint8 ``[len(TISSUES), X, Y, Z]``, each tissue's fraction of the voxel times 255.
        labels: uint8 ``[X, Y, Z]`` label map (``LABELS``).
        plan: the tumour, or None for a normal patient.
        flipped: the cohort flipped this subject left-right (then the tumour's side is mirrored too).
    """

    index: int
    fractions: np.ndarray
    labels: np.ndarray
    plan: TumourPlan | None
    flipped: bool

    def fraction(self, tissue: str) -> np.ndarray:
        """The float32 fraction map of one of ``TISSUES``."""
        return self.fractions[TISSUES.index(tissue)].astype(np.float32) / 255.0


@lru_cache(maxsize=1)
def tissue_templates() -> np.ndarray:
    """Grey matter, white matter and CSF fractions of the template at ``VOXEL_MM``: float32 ``[3, X, Y, Z]``,
    on the grid of ``medgan.data.cohort``'s template (read-only)."""
    folder = mni152_path().parent
    maps = []
    for name in MNI152_TISSUE_FILES:
        if not (folder / name).is_file():
            raise DataError("the brain-tumour sources need nilearn's bundled grey/white-matter maps; reinstall "
                            "nilearn", folder / name)
        maps.append(np.asarray(read_nifti(folder / name).array, dtype=np.float32) / 255.0)
    maps.append((np.asarray(read_nifti(mni152_path()).array) > 0).astype(np.float32))
    pooled = F.avg_pool3d(torch.from_numpy(np.stack(maps)), round(VOXEL_MM), ceil_mode=True).numpy()
    grey, white, brain = pooled
    scale = np.maximum(1.0, (grey + white) / np.maximum(brain, 1e-6))  # keep grey + white within the brain mask
    grey, white = grey * brain / scale, white * brain / scale
    fractions = np.stack([grey, white, np.clip(brain - grey - white, 0.0, 1.0)]).astype(np.float32)
    fractions.flags.writeable = False
    return fractions


@lru_cache(maxsize=1)
def _origin_mm() -> tuple[float, float, float]:
    """World mm of the 1 mm template's first voxel (x -98, y -134, z -72)."""
    return tuple(float(v) for v in read_nifti(mni152_path()).affine[:3, 3])


@lru_cache(maxsize=1)
def _depth_mm() -> np.ndarray:
    """Distance (mm) of each template voxel from outside the brain (read-only)."""
    depth = ndimage.distance_transform_edt(tissue_templates().sum(axis=0) >= 0.5) * VOXEL_MM
    depth.flags.writeable = False
    return depth


def _world_mm(shape: tuple[int, ...]) -> list[np.ndarray]:
    """Template world coordinates (mm) of the 2 mm voxel centres along each axis (1 mm voxels pooled in pairs)."""
    origin = _origin_mm()
    return [origin[axis] + VOXEL_MM * np.arange(n) + (VOXEL_MM - 1.0) / 2.0 for axis, n in enumerate(shape)]


def has_tumour(index: int, seed: int = 0) -> bool:
    """Whether patient ``index`` has a tumour: of each pair of patients (2m, 2m + 1), one drawn from the seed has
    one, so any even-sized range from an even index holds ``TUMOUR_FRACTION`` tumour patients exactly."""
    member = int(np.random.default_rng([seed, index // 2, _STREAM, 2]).integers(2))
    return index % 2 == member


def tumour_plan(index: int, seed: int = 0) -> TumourPlan | None:
    """Patient ``index``'s tumour (module docstring), or None when the seeded draw gives a normal patient."""
    if not has_tumour(index, seed):
        return None
    rng = np.random.default_rng([seed, index, _STREAM])
    radius = rng.uniform(*RADIUS_MM)
    axes = radius * rng.uniform(*AXIS_RANGE, 3)
    axes *= radius / axes.mean()
    rotation = _rotation(rng.uniform(-np.pi, np.pi, 3))
    white, depth = tissue_templates()[1], _depth_mm()
    x, _, _ = np.meshgrid(*_world_mm(white.shape), indexing="ij", sparse=True)
    side = 1.0 if rng.random() < 0.5 else -1.0
    candidates = (white >= CENTRE_WHITE_MATTER) & (side * x >= MIDLINE_MM)
    for margin in (radius + 6.0, radius, 0.5 * radius, 0.0):
        chosen = np.flatnonzero(candidates & (depth >= margin))
        if chosen.size:
            break
    centre = np.unravel_index(chosen[rng.integers(chosen.size)], white.shape)
    world = _world_mm(white.shape)
    centre_mm = tuple(float(world[axis][centre[axis]]) for axis in range(3))
    return TumourPlan(centre_mm, tuple(float(a) for a in axes), rotation, float(rng.uniform(*CORE_RANGE)),
                      float(rng.uniform(*OEDEMA_MM)), float(rng.uniform(*DISPLACED_FRACTION)))


def _normalized(coordinates_mm: np.ndarray, world: list[np.ndarray]) -> np.ndarray:
    """World mm -> grid_sample's normalized coordinates (align_corners=False), per axis (last dimension)."""
    out = np.empty_like(coordinates_mm)
    for axis in range(3):
        size = len(world[axis])
        index = (coordinates_mm[..., axis] - world[axis][0]) / VOXEL_MM
        out[..., axis] = (2.0 * index + 1.0) / size - 1.0
    return out


def mass_effect(maps: np.ndarray, plan: TumourPlan) -> np.ndarray:
    """``maps`` (``[C, X, Y, Z]`` on the template grid) pushed away from the tumour centre (module docstring):
    each output point samples the point ``r_source = (r^3 - V)^(1/3)`` along its ray from the centre, the
    displacement ``r - r_source`` tapered beyond the tumour radius."""
    world = _world_mm(maps.shape[1:])
    grid = np.stack(np.meshgrid(*world, indexing="ij"), axis=-1).astype(np.float64)  # [X, Y, Z, 3] mm
    offset = grid - np.asarray(plan.centre_mm)
    r = np.linalg.norm(offset, axis=-1)
    volume = plan.displaced * plan.radius_mm**3
    source = np.cbrt(np.clip(r**3 - volume, 0.0, None))
    taper = np.exp(-(np.clip(r - plan.radius_mm, 0.0, None) / MASS_EFFECT_MM) ** 2)
    shrink = np.where(r > 1e-6, (r - (r - source) * taper) / np.maximum(r, 1e-6), 0.0)
    sampled = np.asarray(plan.centre_mm) + offset * shrink[..., None]
    # grid_sample on [1, C, D, H, W] = [1, C, X, Y, Z] wants its last dimension as (W, H, D) = (z, y, x).
    coords = torch.from_numpy(_normalized(sampled, world)[..., ::-1].copy()).float()[None]
    moved = F.grid_sample(torch.from_numpy(np.ascontiguousarray(maps))[None], coords, mode="bilinear",
                          padding_mode="zeros", align_corners=False)
    return moved[0].numpy()


def paint_tumour(maps: np.ndarray, plan: TumourPlan, rng: np.random.Generator) -> np.ndarray:
    """Tissue fractions ``[3, X, Y, Z]`` (grey, white, CSF) -> ``[6, X, Y, Z]`` with the oedema, enhancing and
    necrosis fractions (module docstring), tumour and oedema replacing the tissue they cover."""
    world = _world_mm(maps.shape[1:])
    reach = max(plan.semi_axes_mm) * (1 + 3 * SURFACE_WOBBLE) + plan.oedema_mm + 3 * VOXEL_MM
    box = []
    for axis in range(3):
        centre = (plan.centre_mm[axis] - world[axis][0]) / VOXEL_MM
        half = int(np.ceil(reach / VOXEL_MM))
        box.append(slice(max(0, int(centre) - half), min(len(world[axis]), int(centre) + half + 2)))
    grey, white, csf = (channel[tuple(box)] for channel in maps)
    shape = grey.shape
    sigma = WOBBLE_MM / VOXEL_MM
    fields = [ndimage.gaussian_filter(rng.standard_normal(shape), sigma) for _ in range(2)]
    wobble, spread = (field / (field.std() + 1e-9) for field in fields)
    local = np.stack(np.meshgrid(*[world[a][box[a]] for a in range(3)], indexing="ij"), axis=-1)
    along = (local - np.asarray(plan.centre_mm)) @ plan.rotation / np.asarray(plan.semi_axes_mm)
    radius = np.linalg.norm(along, axis=-1) / (1.0 + SURFACE_WOBBLE * np.clip(wobble, -2.5, 2.5))
    pixels = plan.radius_mm / VOXEL_MM  # normalized radius -> voxels, for partial-volume edges one voxel wide
    brain = np.clip(grey + white + csf, 0.0, 1.0)
    tumour = np.clip((1.0 - radius) * pixels + 0.5, 0.0, 1.0) * brain
    necrosis = np.clip((plan.core - radius) * pixels + 0.5, 0.0, 1.0) * tumour
    distance = ndimage.distance_transform_edt(tumour < 0.5) * VOXEL_MM
    smooth_white = white / np.maximum(grey + white, 1e-6)
    extent = plan.oedema_mm * (OEDEMA_GREY + (1 - OEDEMA_GREY) * smooth_white) * (1 + 0.3 * np.clip(spread, -2, 2))
    oedema_share = np.clip((extent - distance) / VOXEL_MM + 0.5, 0.0, 1.0) * (1.0 - tumour)
    oedema = oedema_share * (grey + white)  # oedema is swollen parenchyma: never CSF
    keep = 1.0 - tumour
    out = np.zeros((len(TISSUES), *maps.shape[1:]), dtype=np.float32)
    out[:3] = maps
    region = (slice(None), *box)
    out[region][:3] = np.stack([grey * keep * (1 - oedema_share), white * keep * (1 - oedema_share), csf * keep])
    out[region][3:] = np.stack([oedema, tumour - necrosis, necrosis])
    return out


def cohort_warp(channels: np.ndarray, index: int, seed: int = 0) -> tuple[np.ndarray, bool]:
    """``channels`` ``[C, X, Y, Z]`` on the template grid through the cohort's deformation of subject ``index``:
    the random affine and flip of ``medgan.data.cohort.mni_subject``, drawn in its order from its generator.

    Returns:
        ``(warped [C, X, Y, Z] float32, flipped)``.
    """
    rng = np.random.default_rng([seed, index])
    scale = rng.uniform(1 - SCALE_RANGE, 1 + SCALE_RANGE, 3)
    rotation = _rotation(np.radians(rng.uniform(-ROTATION_DEGREES, ROTATION_DEGREES, 3)))
    extent = np.array(channels.shape[1:], dtype=np.float64) * VOXEL_MM / 2.0
    shift = rng.uniform(-SHIFT_MM, SHIFT_MM, 3) / extent
    matrix = (rotation @ np.diag(1.0 / scale))[::-1, ::-1]
    theta = torch.tensor(np.concatenate([matrix, shift[::-1, None]], axis=1), dtype=torch.float32)[None]
    source = torch.from_numpy(np.ascontiguousarray(channels, dtype=np.float32))[None]
    grid = F.affine_grid(theta, list(source.shape), align_corners=False)
    warped = F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0].numpy()
    flipped = bool(rng.random() < 0.5)
    return (np.ascontiguousarray(warped[:, ::-1]) if flipped else warped), flipped


def label_map(fractions: np.ndarray) -> np.ndarray:
    """The nested label map (``LABELS``) of float fractions ``[6, X, Y, Z]`` (module docstring)."""
    oedema, enhancing, necrosis = fractions[3], fractions[4], fractions[5]
    labels = np.zeros(fractions.shape[1:], dtype=np.uint8)
    labels[oedema + enhancing + necrosis >= 0.5] = LABELS["oedema"]
    labels[enhancing + necrosis >= 0.5] = LABELS["enhancing"]
    labels[necrosis >= 0.5] = LABELS["necrosis"]
    return labels


@lru_cache(maxsize=16)
def patient_anatomy(index: int, seed: int = 0) -> PatientAnatomy:
    """Patient ``index``'s tissue fractions and label map in patient space (module docstring; cached)."""
    maps = np.array(tissue_templates())
    plan = tumour_plan(index, seed)
    if plan is None:
        fractions = np.concatenate([maps, np.zeros((3, *maps.shape[1:]), dtype=np.float32)])
    else:
        painter = np.random.default_rng([seed, index, _STREAM, 1])
        fractions = paint_tumour(mass_effect(maps, plan), plan, painter)
    warped, flipped = cohort_warp(fractions, index, seed)
    warped = np.clip(warped, 0.0, 1.0)
    quantized = np.round(warped * 255.0).astype(np.uint8)
    quantized.flags.writeable = False
    labels = label_map(warped)
    labels.flags.writeable = False
    return PatientAnatomy(index, quantized, labels, plan, flipped)
