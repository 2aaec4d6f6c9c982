"""A procedural abdominal CT phantom: simulated patients, liver lesions and a simulated CT acquisition.

Everything here is **simulated data**, made for offline demos and tests; it is not patient data and supports
no clinical conclusion. Each phantom "patient" is a seed: the seed fixes the anatomy (habitus, organ sizes,
positions and shapes, vessels, bowel loops, liver lesions) and the tissue texture, so the same patient can be
rendered at any slice height, dose or resolution.

A slice is made in two stages:

1. **Anatomy** (``_paint``): an axial slice at the level of the liver (about T11-L2) is painted in Hounsfield
   units (HU) from smooth random shapes laid out in millimetres: body outline, subcutaneous fat, abdominal wall
   and rectus muscles, ribs, visceral fat with mesenteric vessels, liver with portal and hepatic veins and the
   gallbladder, spleen, stomach with an air-fluid level, pancreas with the splenic vein, kidneys (cortex,
   medulla, sinus fat), aorta, inferior vena cava, vertebra (cortical shell, cancellous bone, canal, posterior
   elements) or disc, paraspinal and psoas muscles and diaphragmatic crura, bowel loops with gas, fluid or
   faeces, and liver lesions. Radiological convention: image top is anterior, image left is the patient's
   right (so the liver is on the image left).
2. **Acquisition** (``simulate_acquisition``): HU -> linear attenuation ``mu = mu_water * (1 + HU / 1000)`` ->
   parallel-beam forward projection (``skimage.transform.radon``) -> Poisson photon counts with ``I0``
   photons per ray -> log -> filtered back-projection (``skimage.transform.iradon``) -> HU. Noise follows the
   physics: a quarter of the dose doubles it.

Contrast phase. Tissue values follow a **portal-venous phase** (about 70 s after iodinated contrast) by
default, because the three lesion types are told apart by how they enhance (rim-enhancing metastasis,
peripheral nodular hemangioma) and because the liver-lesion GAN study this mirrors (Frid-Adar et al. 2018)
used portal-phase CT. In that phase the liver is about 100-110 HU (55-65 HU unenhanced), the kidneys
130-180 HU (30-40 HU unenhanced) and the aorta about 165 HU (about 40 HU unenhanced).
``phase="unenhanced"`` gives non-contrast values. See ``TISSUE_HU``.

Lesions (portal phase): **cyst** round, sharp, water density (about 8 HU); **metastasis** lobulated,
hypodense core (about 30-40 HU) with a 2-3 mm enhancing rim (about 145 HU, brighter than the 105 HU liver, so
"enhancing" relative to the liver of this phase); **hemangioma** hypodense body (about 50 HU) with globular
nodules on its margin at blood-pool density (like the aorta, about 150-165 HU).

Noise: at dose 1.0 (256 px, 1.56 mm pixels) the liver noise is about 11-12 HU, 0.25 gives about 24 HU.

Sources (registered in ``medgan.data.sources.SOURCES``; generated once per process, then cached):

* ``"ct-phantom"``: 32 patients x 2 whole slices (unlabelled), rendered at 128 px (256 px for resolution 256);
* ``"ct-lesions"``: 60 lesion-centred 64 x 64 ROIs per class (cyst, metastasis, hemangioma) from 256 px slices.

Not simulated: beam hardening, scatter, a polychromatic spectrum, the patient table, motion, fan-beam or
helical geometry and slice thickness. The body stays inside the reconstruction circle, so the parallel-beam
geometry sees every ray through it and the reconstruction has no truncation artefacts.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
from scipy import ndimage
from skimage.transform import iradon, radon

if TYPE_CHECKING:
    from medgan.config import DataConfig
    from medgan.data.datasets import SliceSet
    from medgan.data.readers import Volume

FOV_MM = 400.0  # reconstruction field of view (a typical abdominal display FOV)
MU_WATER_PER_MM = 0.0193  # linear attenuation of water at ~70 keV, the effective energy of a 120 kVp beam
REFERENCE_SIZE = 256  # image side at which FULL_DOSE_PHOTONS is defined
REFERENCE_VIEWS = 360  # projection count at which FULL_DOSE_PHOTONS is defined
# Incident photons per ray at dose 1.0 (256 px over 400 mm, 360 views). Chosen so that the liver noise at
# dose 1.0 is about 12 HU with the ramp kernel, like routine-dose abdominal CT with a soft-tissue kernel.
FULL_DOSE_PHOTONS = 2.0e6
LESION_CLASSES = ("cyst", "metastasis", "hemangioma")
PHASES = ("portal", "unenhanced")
KERNELS = ("ramp", "shepp-logan", "cosine", "hamming", "hann")

# Values of PhantomCase.organ_labels; the index is the label.
ORGANS = (
    "air",
    "fat",
    "muscle",
    "liver",
    "spleen",
    "kidney",
    "aorta",
    "ivc",
    "liver-vessel",
    "bone-cortical",
    "bone-cancellous",
    "bowel",
    "gas",
    "spinal-canal",
    "gallbladder",
    "lesion",
    "disc",
    "pancreas",
    "vessel",
    "skin",
)
LABEL = {name: index for index, name in enumerate(ORGANS)}

# Mean HU per tissue and phase; each patient varies around these (see _sample_tissue_hu). Typical values from
# abdominal CT practice; portal-venous phase about 70 s after contrast, enhancement scaled per patient.
TISSUE_HU: dict[str, dict[str, float]] = {
    "portal": {
        "fat": -100.0,
        "skin": 40.0,
        "muscle": 55.0,
        "liver": 105.0,
        "spleen": 115.0,
        "pancreas": 100.0,
        "kidney-cortex": 170.0,
        "kidney-medulla": 135.0,
        "aorta": 165.0,
        "ivc": 145.0,
        "portal-vein": 175.0,
        "hepatic-vein": 160.0,
        "bone-cortical": 900.0,
        "bone-cancellous": 250.0,
        "rib-cortical": 750.0,
        "rib-marrow": 280.0,
        "cartilage": 130.0,
        "disc": 85.0,
        "spinal-canal": 15.0,
        "bowel-wall": 85.0,
        "bowel-fluid": 15.0,
        "stomach-fluid": 10.0,
        "gas": -1000.0,
        "bile": 10.0,
        "cyst": 8.0,
        "metastasis-centre": 38.0,
        "metastasis-rim": 145.0,
        "hemangioma-centre": 50.0,
    },
    "unenhanced": {
        "fat": -100.0,
        "skin": 40.0,
        "muscle": 45.0,
        "liver": 60.0,
        "spleen": 48.0,
        "pancreas": 42.0,
        "kidney-cortex": 35.0,
        "kidney-medulla": 30.0,
        "aorta": 42.0,
        "ivc": 40.0,
        "portal-vein": 40.0,
        "hepatic-vein": 38.0,
        "bone-cortical": 900.0,
        "bone-cancellous": 250.0,
        "rib-cortical": 750.0,
        "rib-marrow": 280.0,
        "cartilage": 130.0,
        "disc": 85.0,
        "spinal-canal": 15.0,
        "bowel-wall": 40.0,
        "bowel-fluid": 15.0,
        "stomach-fluid": 10.0,
        "gas": -1000.0,
        "bile": 10.0,
        "cyst": 8.0,
        "metastasis-centre": 35.0,
        "metastasis-rim": 45.0,
        "hemangioma-centre": 38.0,
    },
}
# Ranges that the median HU inside each (eroded) tissue label of a reconstructed slice falls in, over patients,
# at high dose (4.0); checked by tests/test_phantom.py. Thin structures (cortical bone, 1-2 mm) read lower
# than painted because of partial volume: the vertebral cortex (painted 900 +/- 80 HU) peaks at 650-850 HU.
EXPECTED_MEDIAN_HU: dict[str, dict[str, tuple[float, float]]] = {
    "portal": {
        "fat": (-120.0, -80.0),
        "muscle": (40.0, 70.0),
        "liver": (85.0, 125.0),
        "spleen": (95.0, 135.0),
        "pancreas": (80.0, 120.0),
        "kidney": (125.0, 200.0),
        "aorta": (130.0, 200.0),
        "ivc": (115.0, 180.0),
        "bone-cancellous": (180.0, 330.0),
        "spinal-canal": (0.0, 30.0),
    },
    "unenhanced": {
        "fat": (-120.0, -80.0),
        "muscle": (35.0, 55.0),
        "liver": (52.0, 68.0),
        "spleen": (38.0, 58.0),
        "kidney": (25.0, 45.0),
        "aorta": (30.0, 55.0),
        "bone-cancellous": (180.0, 330.0),
    },
}

# Contrast-enhanced tissues, scaled together per patient (contrast timing and cardiac output differ).
ENHANCING = (
    "kidney-cortex", "kidney-medulla", "aorta", "ivc", "portal-vein", "hepatic-vein", "spleen", "pancreas", "liver",
)

# Standard deviation (HU) of the fine random texture inside each tissue label (parenchyma is not flat).
TEXTURE_HU = {
    "fat": 6.0, "muscle": 6.0, "liver": 4.0, "spleen": 4.0, "pancreas": 8.0, "kidney": 5.0, "bone-cancellous": 45.0,
    "lesion": 3.0,
}
TEXTURE_MM = 2.0  # correlation length of that texture
SKIN_MM = 2.0  # skin thickness
SEPTA_MM = 5.0  # spacing scale of the fibrous septa in subcutaneous fat
PARTIAL_VOLUME_PIXELS = 0.6  # Gaussian blur (pixels) of the painted truth: partial volume and focal spot size


@dataclass
class PhantomCase:
    """One simulated axial CT slice of one phantom patient.

    Attributes:
        image_hu: reconstructed slice in HU, float32 [H, W] (photon noise and FBP blur included).
        truth_hu: the noise-free painted slice in HU before the scan, float32 [H, W].
        lesion_masks: one boolean [H, W] mask per liver lesion visible in the slice.
        lesion_classes: class name per lesion, one of LESION_CLASSES.
        organ_labels: uint8 [H, W] tissue labels; the names are ORGANS (lesion pixels are "lesion").
        patient: patient id, e.g. "phantom-00012"; the key for patient-level splits.
        pixel_spacing_mm: in-plane pixel size in mm (square pixels).
        z_mm: slice height in mm relative to the patient's liver hilum (superior is positive).
        dose: relative dose, or None when no noise was simulated.
        phase: contrast phase of the tissue values.
    """

    image_hu: np.ndarray
    truth_hu: np.ndarray
    lesion_masks: list[np.ndarray]
    lesion_classes: list[str]
    organ_labels: np.ndarray
    patient: str
    pixel_spacing_mm: float
    z_mm: float = 0.0
    dose: float | None = 1.0
    phase: str = "portal"


@dataclass
class PhantomVolume:
    """A short stack of axial phantom slices with a LiTS-style segmentation.

    Attributes:
        image_hu: float32 [X, Y, Z] volume in HU; X runs to the patient's left, Y to posterior, Z to superior.
        segmentation: uint8 [X, Y, Z]: 0 background, 1 liver (with its vessels), 2 lesion (the LiTS convention).
        affine: 4x4 voxel -> RAS+ world (mm) matrix, as a NIfTI file stores it.
        patient: patient id.
        lesion_classes: class of each lesion that appears in the volume.
    """

    image_hu: np.ndarray
    segmentation: np.ndarray
    affine: np.ndarray
    patient: str
    lesion_classes: list[str] = field(default_factory=list)


@dataclass
class LesionRois:
    """Lesion-centred regions of interest cut from phantom slices.

    Attributes:
        images_hu: float32 [N, R, R] in HU.
        masks: bool [N, R, R], each ROI's own lesion.
        labels: int64 [N] class index into class_names.
        class_names: the lesion classes (LESION_CLASSES).
        patients: patient id per ROI (a patient can give several ROIs).
        pixel_spacing_mm: in-plane pixel size in mm.
    """

    images_hu: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    patients: list[str]
    pixel_spacing_mm: float


# --------------------------------------------------------------------------------------------------------
# Shapes (all lengths in mm; image x to the patient's left, image y to posterior)

Wobble = tuple[tuple[int, float, float], ...]  # (harmonic, relative amplitude, phase) of a boundary


@dataclass(frozen=True)
class _Blob:
    """A smooth closed shape: a rotated superellipse whose radius wobbles with angle."""

    centre: tuple[float, float]
    radii: tuple[float, float]
    angle: float = 0.0  # radians
    power: float = 2.0  # 2 = ellipse, larger = boxier
    wobble: Wobble = ()

    def boundary(self, theta: float | np.ndarray) -> float | np.ndarray:
        """Relative boundary radius at angle ``theta`` (in the blob's own frame)."""
        scale = 1.0
        for harmonic, amplitude, phase in self.wobble:
            scale = scale + amplitude * np.cos(harmonic * theta + phase)
        return scale

    def reach(self) -> float:
        """A radius (mm) that contains the whole shape."""
        return max(self.radii) * (1.0 + sum(abs(a) for _, a, _ in self.wobble)) * 1.2


def _wobble(rng: np.random.Generator, amplitude: float, harmonics: Sequence[int] = (2, 3, 4, 5)) -> Wobble:
    """Random boundary harmonics with amplitudes falling as 1 / harmonic (smooth outlines)."""
    return tuple((k, float(rng.normal(0.0, amplitude / k)), float(rng.uniform(0, 2 * math.pi))) for k in harmonics)


def _bump(z: float, centre: float, half: float) -> float:
    """Cross-section profile of a round organ: 1 at ``centre``, falling to 0 at ``half`` mm away."""
    t = (z - centre) / half
    return math.sqrt(max(0.0, 1.0 - t * t))


@dataclass(frozen=True)
class _Vessel:
    """A tapered tube along a quadratic Bezier curve, visible over a range of slice heights."""

    points: tuple[tuple[float, float], ...]  # start, control, end (mm)
    radii: tuple[float, float]  # radius at start and end (mm)
    z_centre: float
    z_half: float
    kind: str  # "portal-vein" or "hepatic-vein"


@dataclass(frozen=True)
class _Lesion:
    """A liver lesion: a roughly spherical 3D shape with class-specific internal structure."""

    kind: str  # one of LESION_CLASSES
    centre: tuple[float, float, float]  # x, y, z (mm)
    radius: float  # in-plane radius at its widest (mm)
    z_radius: float  # half extent along z (mm)
    wobble: Wobble
    nodules: tuple[tuple[float, float], ...]  # hemangioma: (angle, relative size) of peripheral nodules
    contrast: tuple[float, float]  # (centre HU, rim or nodule HU)


@dataclass(frozen=True)
class _Loop:
    """A bowel loop crossing the slice: a wall around gas, fluid or faecal content."""

    where: tuple[float, float]  # centre as a fraction of the abdominal cavity half-axes
    radius: float
    aspect: float  # short / long axis: loops cut obliquely look oval
    angle: float
    z_centre: float
    z_half: float
    content: str  # "gas", "fluid" or "faeces"


@dataclass(frozen=True)
class _Frame:
    """Body layers and landmarks of one patient, derived from the habitus."""

    body: _Blob
    wall: _Blob  # outer boundary of the abdominal wall muscles (inside the subcutaneous fat)
    cavity: _Blob  # inner boundary of the wall: the abdominal cavity
    canal: tuple[float, float]
    vertebra: tuple[float, float]
    vertebra_radii: tuple[float, float]
    aorta: tuple[float, float]
    aorta_radius: float
    ivc: tuple[float, float]


@dataclass(frozen=True)
class _Anatomy:
    """Every random choice that defines one phantom patient."""

    seed: int
    frame: _Frame
    fat_mm: float
    wall_mm: float
    liver_scale: float
    liver_shift: tuple[float, float]
    liver_wobble: Wobble
    spleen_scale: float
    spleen_wobble: Wobble
    stomach_scale: float
    kidney_z: tuple[float, float]  # centre height of the right and left kidney
    kidney_radii: tuple[float, float]
    gallbladder: bool
    tissue_hu: dict[str, float]
    vessels: tuple[_Vessel, ...]
    loops: tuple[_Loop, ...]
    mesenteric: tuple[tuple[float, float, float], ...]  # (x fraction, y fraction, radius mm) of small vessels
    ribs: tuple[tuple[float, float, float], ...]  # (angle from anterior midline, size, elongation); odd = left


# --------------------------------------------------------------------------------------------------------
# Sampling a patient


def _sample_tissue_hu(rng: np.random.Generator, phase: str) -> dict[str, float]:
    """Per-patient tissue values: the phase means plus patient-to-patient variation."""
    values = dict(TISSUE_HU[phase])
    spread = {"fat": 6.0, "muscle": 4.0, "liver": 3.0, "spleen": 3.0, "bone-cortical": 80.0, "bone-cancellous": 20.0}
    for name, sigma in spread.items():
        values[name] += float(rng.normal(0.0, sigma))
    gain = float(np.clip(rng.normal(1.0, 0.1), 0.8, 1.2))
    if phase == "portal":
        unenhanced = TISSUE_HU["unenhanced"]
        for name in ENHANCING:
            values[name] = unenhanced[name] + gain * (values[name] - unenhanced[name])
    return values


def _sample_frame(rng: np.random.Generator, fat_mm: float, wall_mm: float) -> _Frame:
    """Body outline, wall layers, spine and great vessels."""
    rx = rng.uniform(140.0, 170.0)
    ry = rx * rng.uniform(0.68, 0.78)
    body = _Blob((0.0, float(rng.uniform(-8.0, 2.0))), (rx, ry), power=rng.uniform(2.1, 2.5), wobble=_wobble(rng, 0.05))
    fat_anterior = rng.uniform(0.0, 0.6) * fat_mm  # extra anterior fat (pannus) in some patients
    wall = _Blob(
        (body.centre[0], body.centre[1] + fat_anterior / 2),
        (rx - fat_mm, ry - fat_mm - fat_anterior / 2),
        power=body.power,
        wobble=body.wobble,
    )
    cavity_radii = (wall.radii[0] - wall_mm, wall.radii[1] - wall_mm)
    cavity = _Blob(wall.centre, cavity_radii, power=body.power, wobble=body.wobble)
    skin_posterior = body.centre[1] + ry * float(body.boundary(math.pi / 2))
    canal = (0.0, skin_posterior - 0.8 * fat_mm - rng.uniform(42.0, 52.0))
    half_width, half_depth = rng.uniform(19.0, 23.0), rng.uniform(14.0, 17.0)
    vertebra = (0.0, canal[1] - 8.0 - half_depth - 2.0)
    aorta_radius = rng.uniform(9.5, 12.5)
    aorta = (vertebra[0] + rng.uniform(8.0, 18.0), vertebra[1] - half_depth - aorta_radius - 2.0)
    ivc = (vertebra[0] - rng.uniform(22.0, 30.0), vertebra[1] - half_depth - rng.uniform(10.0, 16.0))
    return _Frame(body, wall, cavity, canal, vertebra, (half_width, half_depth), aorta, aorta_radius, ivc)


def _sample_anatomy(seed: int, phase: str) -> _Anatomy:
    """Draws one patient from ``seed`` (the same seed and phase always give the same patient)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 11]))
    fat_mm, wall_mm = rng.uniform(8.0, 32.0), rng.uniform(7.0, 12.0)
    frame = _sample_frame(rng, fat_mm, wall_mm)
    liver_scale = rng.uniform(0.88, 1.12)
    liver_shift = (float(rng.normal(0, 5.0)), float(rng.normal(0, 4.0)))
    loops = tuple(
        _Loop(
            where=(float(rng.uniform(-0.7, 0.95)), float(rng.uniform(-0.95, 0.55))),
            radius=float(rng.uniform(8.0, 20.0)),
            aspect=float(rng.uniform(0.55, 1.0)),
            angle=float(rng.uniform(0.0, math.pi)),
            z_centre=float(rng.uniform(-100.0, 40.0)),
            z_half=float(rng.uniform(15.0, 45.0)),
            content=str(rng.choice(["gas", "fluid", "faeces"], p=[0.25, 0.45, 0.3])),
        )
        for _ in range(140)
    )
    count = int(rng.integers(4, 6))  # ribs per side, spread from the costal margin to the back
    sides = [np.linspace(0.95, 2.6, count) + rng.uniform(-0.12, 0.12, count) for _ in range(2)]
    # (angle, size, elongation): a rib cut obliquely by the axial plane shows as a longer bar.
    angles = [angle for pair in zip(*sides) for angle in pair]
    ribs = tuple((float(angle), float(rng.uniform(0.65, 1.1)), float(rng.uniform(1.0, 2.2))) for angle in angles)
    return _Anatomy(
        seed=seed,
        frame=frame,
        fat_mm=fat_mm,
        wall_mm=wall_mm,
        liver_scale=liver_scale,
        liver_shift=liver_shift,
        liver_wobble=_wobble(rng, 0.08),
        spleen_scale=rng.uniform(0.8, 1.2),
        spleen_wobble=_wobble(rng, 0.06),
        stomach_scale=rng.uniform(0.7, 1.2),
        kidney_z=(float(rng.uniform(-80.0, -55.0)), float(rng.uniform(-60.0, -35.0))),
        kidney_radii=(float(rng.uniform(24.0, 30.0)), float(rng.uniform(18.0, 23.0))),
        gallbladder=bool(rng.uniform() < 0.7),
        tissue_hu=_sample_tissue_hu(rng, phase),
        vessels=_sample_vessels(rng, frame, liver_scale, liver_shift),
        loops=loops,
        mesenteric=tuple(
            (float(rng.uniform(-0.8, 0.8)), float(rng.uniform(-0.8, 0.5)), float(rng.uniform(1.0, 2.5)))
            for _ in range(40)
        ),
        ribs=ribs,
    )


def _sample_vessels(
    rng: np.random.Generator, frame: _Frame, scale: float, shift: tuple[float, float]
) -> tuple[_Vessel, ...]:
    """Branching portal veins from the hilum and hepatic veins draining into the IVC."""
    cx, cy = frame.cavity.centre
    width, depth = frame.cavity.radii
    hilum = (cx - 0.12 * width + shift[0], cy - 0.02 * depth + shift[1])
    vessels: list[_Vessel] = []
    for direction, z_centre in (((-1.0, 0.35), -8.0), ((-0.8, -0.6), 0.0), ((0.55, -0.85), 8.0)):
        radius = rng.uniform(5.5, 7.0)
        _branch(rng, vessels, hilum, direction, 38.0 * scale, radius, z_centre, depth=3, kind="portal-vein")
    for direction in ((-1.0, -0.25), (-0.45, -1.0), (0.3, -1.0)):
        radius, z_centre = rng.uniform(4.5, 6.0), rng.uniform(28.0, 42.0)
        _branch(rng, vessels, frame.ivc, direction, 45.0 * scale, radius, z_centre, depth=2, kind="hepatic-vein")
    return tuple(vessels)


def _branch(
    rng: np.random.Generator,
    out: list[_Vessel],
    start: tuple[float, float],
    direction: tuple[float, float],
    length: float,
    radius: float,
    z_centre: float,
    depth: int,
    kind: str,
) -> None:
    """Appends one curved segment and, recursively, its two thinner daughter branches."""
    angle = math.atan2(direction[1], direction[0]) + rng.normal(0.0, 0.2)
    end = (start[0] + length * math.cos(angle), start[1] + length * math.sin(angle))
    bend = rng.normal(0.0, 0.25 * length)
    control = ((start[0] + end[0]) / 2 - bend * math.sin(angle), (start[1] + end[1]) / 2 + bend * math.cos(angle))
    end_radius = radius * 0.75
    out.append(_Vessel((start, control, end), (radius, end_radius), z_centre, 6.0 + 2.2 * radius, kind))
    if depth <= 1:
        return
    for sign in (-1.0, 1.0):
        turn = angle + sign * rng.uniform(0.35, 0.9)
        child_length, child_z = length * rng.uniform(0.55, 0.8), z_centre + rng.normal(0, 8.0)
        direction = (math.cos(turn), math.sin(turn))
        _branch(rng, out, end, direction, child_length, end_radius * 0.75, child_z, depth - 1, kind)


# --------------------------------------------------------------------------------------------------------
# Painting one slice


class _Canvas:
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

    def radial(self, blob: _Blob) -> np.ndarray:
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

    def tube(self, vessel: _Vessel, scale: float) -> np.ndarray:
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


def _paint(anatomy: _Anatomy, z: float, size: int) -> _Canvas:
    """Paints the noise-free slice at height ``z`` (mm) of ``anatomy`` on a ``size`` x ``size`` grid (no lesions)."""
    canvas = _Canvas(size)
    hu, frame = anatomy.tissue_hu, anatomy.frame
    body_rho = canvas.radial(frame.body)
    canvas.paint(body_rho < 1.0, "skin", hu["skin"])
    canvas.paint(body_rho < 1.0 - SKIN_MM / max(frame.body.radii), "fat", hu["fat"])
    _paint_septa(canvas, anatomy, z)
    canvas.paint(canvas.radial(frame.wall) < 1.0, "muscle", hu["muscle"])
    cavity_rho = canvas.radial(frame.cavity)
    canvas.paint(cavity_rho < 1.0, "fat", hu["fat"])
    _paint_wall(canvas, anatomy, z)
    _paint_liver(canvas, anatomy, cavity_rho, z)
    _paint_left_upper_quadrant(canvas, anatomy, cavity_rho, z)
    _paint_retroperitoneum(canvas, anatomy, z)
    _paint_spine(canvas, anatomy, z)
    _paint_bowel(canvas, anatomy, cavity_rho, z)
    return canvas


def _paint_septa(canvas: _Canvas, anatomy: _Anatomy, z: float) -> None:
    """Thin fibrous septa criss-crossing the subcutaneous fat: the zero lines of a smooth random field."""
    rng = np.random.default_rng(np.random.SeedSequence([anatomy.seed, 19, *_key(z)]))
    field = ndimage.gaussian_filter(rng.standard_normal(canvas.hu.shape).astype(np.float32), SEPTA_MM / canvas.spacing)
    field /= field.std() + 1e-6
    fat = canvas.labels == LABEL["fat"]
    strength = np.exp(-((field / 0.07) ** 2)) * 0.5 * (anatomy.tissue_hu["muscle"] - anatomy.tissue_hu["fat"])
    canvas.hu[fat] += strength[fat]


def _paint_wall(canvas: _Canvas, anatomy: _Anatomy, z: float) -> None:
    """Rectus muscles anteriorly, ribs (and costal cartilage) in the lateral wall."""
    hu, frame = anatomy.tissue_hu, anatomy.frame
    wall, cavity = frame.wall, frame.cavity
    anterior = wall.centre[1] - wall.radii[1] * float(wall.boundary(-math.pi / 2))
    for side in (-1.0, 1.0):
        rectus = _Blob(
            (side * 38.0, anterior + anatomy.wall_mm * 0.7), (30.0, anatomy.wall_mm * 0.8 + 2.0), angle=side * 0.12
        )
        canvas.paint((canvas.radial(rectus) < 1.0) & (canvas.radial(frame.body) < 1.0), "muscle", hu["muscle"])
    for index, (angle, size, elongation) in enumerate(anatomy.ribs):
        side = 1.0 if index % 2 else -1.0
        theta = angle + 0.003 * z  # ribs slope, so their section drifts with height
        # Points on the wall and cavity boundaries in this direction; the rib sits between them.
        direction = (side * math.sin(theta), -math.cos(theta))
        outer = _boundary_point(wall, direction)
        inner = _boundary_point(cavity, direction)
        x, y = (outer[0] + inner[0]) / 2, (outer[1] + inner[1]) / 2
        tangent = math.atan2(direction[0], -direction[1])
        cartilage = theta < 1.15
        rib = _Blob((x, y), (6.5 * size * elongation, 4.5 * size), angle=tangent)
        rho = canvas.radial(rib)
        canvas.paint(rho < 1.0, "bone-cortical", hu["cartilage"] if cartilage else hu["rib-cortical"])
        if not cartilage:
            canvas.paint(rho < 0.55, "bone-cancellous", hu["rib-marrow"])


def _boundary_point(blob: _Blob, direction: tuple[float, float]) -> tuple[float, float]:
    """Where a ray from the blob centre along ``direction`` leaves the (unrotated) blob."""
    u, v = direction[0] / blob.radii[0], direction[1] / blob.radii[1]
    norm = (abs(u) ** blob.power + abs(v) ** blob.power) ** (1.0 / blob.power)
    distance = float(blob.boundary(math.atan2(v, u))) / norm
    return blob.centre[0] + distance * direction[0], blob.centre[1] + distance * direction[1]


def _liver_mask(canvas: _Canvas, anatomy: _Anatomy, cavity_rho: np.ndarray, z: float) -> np.ndarray:
    """The liver at height ``z``: a right lobe filling the right upper quadrant, a left lobe across the midline."""
    frame, scale = anatomy.frame, anatomy.liver_scale
    right, left = _bump(z, 5.0, 105.0), _bump(z, 35.0, 70.0)
    cx, cy = frame.cavity.centre
    width, depth = frame.cavity.radii
    sx, sy = anatomy.liver_shift
    mask = np.zeros(canvas.hu.shape, dtype=bool)
    if right > 0.05:
        lobe = _Blob(
            (cx - 0.5 * width + sx, cy + 0.05 * depth + sy),
            (0.6 * width * scale * right, 0.95 * depth * scale * math.sqrt(right)),
            wobble=anatomy.liver_wobble,
        )
        mask |= canvas.radial(lobe) < 1.0
    if left > 0.05:
        lobe = _Blob(
            (cx - 0.1 * width + sx, cy - 0.5 * depth + sy),
            (0.42 * width * scale * left, 0.3 * depth * scale * left),
            angle=-0.3,
            wobble=anatomy.liver_wobble[:2],
        )
        mask |= canvas.radial(lobe) < 1.0
    # The liver reaches the wall (diaphragm) but stays off the spine, the crura and the paraspinal muscles.
    (vx, vy), (a, b) = frame.vertebra, frame.vertebra_radii
    spine = _Blob((vx, vy + 20.0), (a + 22.0, b + 45.0))
    return mask & (cavity_rho < 0.985) & (canvas.radial(spine) > 1.0)


def _paint_liver(canvas: _Canvas, anatomy: _Anatomy, cavity_rho: np.ndarray, z: float) -> None:
    """Liver parenchyma, the gallbladder at its inferior surface, and the portal and hepatic veins inside."""
    hu, frame = anatomy.tissue_hu, anatomy.frame
    liver = _liver_mask(canvas, anatomy, cavity_rho, z)
    canvas.paint(liver, "liver", hu["liver"])
    gallbladder = _bump(z, -45.0, 35.0)
    if anatomy.gallbladder and gallbladder > 0.2:
        cx, cy = frame.cavity.centre
        centre = (cx - 0.22 * frame.cavity.radii[0], cy - 0.5 * frame.cavity.radii[1])
        blob = _Blob(centre, (16.0 * gallbladder + 3, 11.0 * gallbladder + 3), angle=0.6)
        canvas.paint((canvas.radial(blob) < 1.0) & liver, "gallbladder", hu["bile"])
    parenchyma = canvas.labels == LABEL["liver"]
    for vessel in anatomy.vessels:
        visible = _bump(z, vessel.z_centre, vessel.z_half)
        if visible > 0.2:
            canvas.paint(canvas.tube(vessel, 0.4 + 0.6 * visible) & parenchyma, "liver-vessel", hu[vessel.kind])


def _paint_left_upper_quadrant(canvas: _Canvas, anatomy: _Anatomy, cavity_rho: np.ndarray, z: float) -> None:
    """Spleen against the left posterolateral wall, and the stomach with an air-fluid level."""
    hu, frame = anatomy.tissue_hu, anatomy.frame
    cx, cy = frame.cavity.centre
    width, depth = frame.cavity.radii
    spleen = _bump(z, 40.0, 65.0) * anatomy.spleen_scale
    if spleen > 0.1:
        radii = (0.2 * width * spleen + 5, 0.42 * depth * spleen + 5)
        blob = _Blob((cx + 0.7 * width, cy + 0.35 * depth), radii, angle=-0.5, wobble=anatomy.spleen_wobble)
        canvas.paint_organ((canvas.radial(blob) < 1.0) & (cavity_rho < 0.985), "spleen", hu["spleen"], hu["fat"])
    stomach = _bump(z, 35.0, 60.0) * anatomy.stomach_scale
    if stomach > 0.1:
        centre = (cx + 0.35 * width, cy - 0.3 * depth)
        radii = (0.32 * width * stomach + 8, 0.34 * depth * stomach + 8)
        blob = _Blob(centre, radii, angle=0.4, wobble=((6, 0.02, 0.0), (9, 0.015, 1.0)))
        rho = canvas.radial(blob)
        canvas.paint_organ((rho < 1.0) & (cavity_rho < 0.95), "bowel", hu["bowel-wall"], hu["fat"])
        lumen = (rho < 1.0 - 4.0 / min(radii)) & (cavity_rho < 0.92)
        canvas.paint(lumen, "bowel", hu["stomach-fluid"])
        # Gas rises to the anterior (top) side of a supine patient's stomach.
        canvas.paint(lumen & _above_level(canvas, centre, 0.35 * radii[1], anatomy.seed), "gas", hu["gas"])


def _paint_retroperitoneum(canvas: _Canvas, anatomy: _Anatomy, z: float) -> None:
    """Pancreas and splenic vein, kidneys, aorta and inferior vena cava."""
    hu, frame = anatomy.tissue_hu, anatomy.frame
    (vx, vy), (a, b) = frame.vertebra, frame.vertebra_radii
    pancreas = _bump(z, -15.0, 30.0)
    if pancreas > 0.2:
        # Head beside the IVC, body arching over the aorta, tail reaching towards the splenic hilum.
        width = frame.cavity.radii[0]
        head, tail = (vx - 12.0, vy - b - 32.0), (vx + 0.55 * width, vy - 8.0)
        arch = (vx + 25.0, vy - b - 62.0)
        gland = _Vessel((head, arch, tail), (13.0, 9.0), z, 30.0, "pancreas")
        mask = canvas.tube(gland, 0.5 + 0.5 * pancreas)
        canvas.paint_organ(mask, "pancreas", hu["pancreas"], hu["fat"])
        behind = tuple((x + 2.0, y + 11.0 * (0.5 + 0.5 * pancreas)) for x, y in (head, arch, tail))
        vein = _Vessel(behind, (4.5, 3.5), z, 30.0, "portal-vein")
        canvas.paint(canvas.tube(vein, 1.0) & ~mask, "vessel", hu["portal-vein"])
    for side, z_centre in ((-1.0, anatomy.kidney_z[0]), (1.0, anatomy.kidney_z[1])):
        profile = _bump(z, z_centre, 55.0)
        if profile < 0.15:
            continue
        long_axis, short_axis = anatomy.kidney_radii
        centre = (vx + side * (long_axis + 40.0), vy + 5.0)
        angle = side * 0.6
        radii = (long_axis * profile + 2, short_axis * profile + 2)
        kidney = _Blob(centre, radii, angle=angle, wobble=((2, 0.04, 0.3),))
        rho = canvas.radial(kidney)
        canvas.paint_organ(rho < 1.0, "kidney", hu["kidney-cortex"], hu["fat"], gap_mm=2.5)
        # Medullary pyramids (less enhanced than cortex) and renal sinus fat at the medial hilum.
        theta = np.arctan2(canvas.y - centre[1], canvas.x - centre[0])
        canvas.paint((rho < 0.72) & (rho > 0.3) & (np.cos(6 * theta) > -0.2), "kidney", hu["kidney-medulla"])
        hilum = _Blob(
            (centre[0] - side * long_axis * 0.55 * profile, centre[1] - short_axis * 0.1),
            (long_axis * 0.4 * profile, short_axis * 0.35 * profile),
            angle=angle,
        )
        canvas.paint(canvas.radial(hilum) < 1.0, "fat", hu["fat"])
    radius = frame.aorta_radius
    canvas.paint(canvas.radial(_Blob(frame.aorta, (radius, radius))) < 1.0, "aorta", hu["aorta"])
    canvas.paint(canvas.radial(_Blob(frame.ivc, (13.0, 9.0), angle=0.3)) < 1.0, "ivc", hu["ivc"])


def _paint_spine(canvas: _Canvas, anatomy: _Anatomy, z: float) -> None:
    """Vertebra or disc, posterior elements, canal, paraspinal and psoas muscles and the crura."""
    hu, frame = anatomy.tissue_hu, anatomy.frame
    (vx, vy), (cx, cy) = frame.vertebra, frame.canal
    a, b = frame.vertebra_radii
    inside_body = canvas.radial(frame.wall) < 1.0
    posterior_bone = hu["bone-cortical"] * 0.6  # thin cortex around marrow, seen at this pixel size as one value
    for side in (-1.0, 1.0):
        paraspinal = _Blob((cx + side * 30.0, cy + 16.0), (22.0, 24.0), angle=side * 0.25)
        canvas.paint((canvas.radial(paraspinal) < 1.0) & inside_body, "muscle", hu["muscle"])
        psoas = _bump(z, -130.0, 110.0)
        if psoas > 0.1:
            blob = _Blob((vx + side * (a + 8.0 * psoas), vy + 2.0), (13.0 * psoas + 2, 11.0 * psoas + 2))
            canvas.paint(canvas.radial(blob) < 1.0, "muscle", hu["muscle"])
        crus = _Blob((vx + side * a * 0.8, vy - b - 4.0), (5.0, 14.0), angle=-side * 0.45)
        canvas.paint(canvas.radial(crus) < 1.0, "muscle", hu["muscle"])
        transverse = _Blob((cx + side * 19.0, cy - 3.0), (11.0, 3.0), angle=side * 0.3)
        canvas.paint(canvas.radial(transverse) < 1.0, "bone-cortical", posterior_bone)
    canvas.paint(canvas.radial(_Blob((cx, cy + 1.0), (12.0, 11.0))) < 1.0, "bone-cortical", posterior_bone)
    spinous = canvas.radial(_Blob((cx, cy + 20.0), (2.5, 12.0))) < 1.0
    canvas.paint(spinous & inside_body, "bone-cortical", posterior_bone)
    canvas.paint(canvas.radial(_Blob((cx, cy), (8.0, 7.0))) < 1.0, "spinal-canal", hu["spinal-canal"])
    rho = canvas.radial(_Blob((vx, vy), (a, b), power=2.3))
    if (z + 200.0) % 32.0 < 7.0:  # an intervertebral disc every ~32 mm: fibrocartilage, no cortical shell
        canvas.paint(rho < 1.0, "disc", hu["disc"])
        return
    canvas.paint(rho < 1.0, "bone-cortical", hu["bone-cortical"])
    canvas.paint(rho < 1.0 - 2.0 / b, "bone-cancellous", hu["bone-cancellous"])


def _paint_bowel(canvas: _Canvas, anatomy: _Anatomy, cavity_rho: np.ndarray, z: float) -> None:
    """Mesenteric vessels and bowel loops, placed last into whatever visceral fat is left."""
    hu, frame = anatomy.tissue_hu, anatomy.frame
    cx, cy = frame.cavity.centre
    width, depth = frame.cavity.radii
    free = (canvas.labels == LABEL["fat"]) & (cavity_rho < 0.97)
    room = ndimage.distance_transform_edt(free) * canvas.spacing  # mm to the nearest non-fat pixel
    rng = np.random.default_rng(np.random.SeedSequence([anatomy.seed, 23, int(round(z * 10)) & 0xFFFFFFFF]))
    for loop in anatomy.loops:
        profile = _bump(z, loop.z_centre, loop.z_half)
        if profile <= 0.0:
            continue
        centre = (cx + loop.where[0] * width, cy + loop.where[1] * depth)
        row, column = _pixel(canvas, centre)
        if row is None:
            continue
        # Bowel is soft: a loop squeezed between organs is narrower; with no room at all it is elsewhere.
        radius = min(loop.radius * (0.5 + 0.5 * profile), room[row, column] - 1.5)
        if radius < 6.0:
            continue
        outline = _Blob(centre, (radius, radius * loop.aspect), angle=loop.angle, wobble=((3, 0.04, loop.radius),))
        rho = canvas.radial(outline)
        inside = rho < 1.0
        lumen = rho < 1.0 - 2.5 / radius
        canvas.paint(inside, "bowel", hu["bowel-wall"])
        if loop.content == "gas":
            canvas.paint(lumen, "gas", hu["gas"])
        elif loop.content == "fluid":
            canvas.paint(lumen, "bowel", hu["bowel-fluid"])
            canvas.paint(lumen & _above_level(canvas, centre, radius * 0.55, loop.angle), "gas", hu["gas"])
        else:
            _paint_faeces(canvas, lumen, rng)
        room = np.minimum(room, np.hypot(canvas.x - centre[0], canvas.y - centre[1]) - radius)
    for fx, fy, radius in anatomy.mesenteric:
        x, y = cx + fx * width, cy + fy * depth
        row, column = _pixel(canvas, (x, y))
        if row is not None and room[row, column] > radius + 1.0:
            mask = np.zeros(canvas.hu.shape, dtype=bool)
            canvas.disc(mask, x, y, radius)
            canvas.paint(mask, "vessel", hu["portal-vein"])


def _above_level(canvas: _Canvas, centre: tuple[float, float], height: float, key: float) -> np.ndarray:
    """Pixels above an air-fluid level ``height`` mm above ``centre``, gently tilted.

    A perfectly horizontal gas edge lines up with one projection angle and leaves a streak along it; a real
    level is rarely exactly level with the scanner (the patient lies slightly rotated).
    """
    tilt = 0.04 + 0.05 * abs(math.sin(7.0 * key))
    sign = 1.0 if math.cos(3.0 * key) > 0 else -1.0
    return canvas.y < centre[1] - height + sign * tilt * (canvas.x - centre[0])


def _pixel(canvas: _Canvas, point: tuple[float, float]) -> tuple[int | None, int | None]:
    """Row and column of the pixel containing ``point`` (mm), or (None, None) outside the image."""
    row = int(point[1] / canvas.spacing + canvas.size / 2)
    column = int(point[0] / canvas.spacing + canvas.size / 2)
    if 0 <= row < canvas.size and 0 <= column < canvas.size:
        return row, column
    return None, None


def _paint_faeces(canvas: _Canvas, lumen: np.ndarray, rng: np.random.Generator) -> None:
    """Mottled colonic content: soft material holding many small gas pockets."""
    rows, columns = np.nonzero(lumen)
    if not len(rows):
        return
    box = (slice(rows.min(), rows.max() + 1), slice(columns.min(), columns.max() + 1))
    noise = rng.standard_normal(lumen[box].shape).astype(np.float32)
    noise = ndimage.gaussian_filter(noise, 1.5 / canvas.spacing + 0.5)
    noise /= noise.std() + 1e-6
    values = np.full(canvas.hu.shape, 0.0, dtype=np.float32)
    values[box] = np.where(noise > 0.7, -1000.0, 25.0 + 20.0 * np.clip(noise, -2, 2))
    canvas.paint(lumen & (values > -500), "bowel", values)
    canvas.paint(lumen & (values <= -500), "gas", values)


def _paint_lesion(canvas: _Canvas, lesion: _Lesion, z: float) -> None:
    """Paints one lesion's cross-section at ``z``, over liver tissue only."""
    radius = lesion.radius * _bump(z, lesion.centre[2], lesion.z_radius)
    if radius < 1.5:
        return
    rho = canvas.radial(_Blob(lesion.centre[:2], (radius, radius * 0.9), wobble=lesion.wobble))
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
        nodule = _Blob(position, (size * radius * 0.7, size * radius), angle=angle)
        values[canvas.radial(nodule) < 1.0] = outer_hu
    canvas.paint(inside, "lesion", values.astype(np.float32))


# --------------------------------------------------------------------------------------------------------
# Lesions


def _sample_lesion(
    rng: np.random.Generator, kind: str, centre: tuple[float, float, float], radius: float, tissue: dict[str, float]
) -> _Lesion:
    """Class-specific outline and contrast of one lesion."""
    if kind == "cyst":
        wobble = _wobble(rng, 0.03, (2, 3))  # round and smooth
        contrast = (tissue["cyst"] + rng.normal(0, 3), tissue["cyst"])
    elif kind == "metastasis":
        wobble = _wobble(rng, 0.16, (2, 3, 4, 5, 6))  # lobulated, irregular
        contrast = (tissue["metastasis-centre"] + rng.normal(0, 5), tissue["metastasis-rim"] + rng.normal(0, 8))
    elif kind == "hemangioma":
        wobble = _wobble(rng, 0.1, (2, 3, 4))
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
    return _Lesion(kind, centre, radius, radius * rng.uniform(0.8, 1.2), wobble, nodules, values)


def _lesion_radius(rng: np.random.Generator, kind: str) -> float:
    """In-plane radius (mm): cysts are often small; metastases and hemangiomas range to 4 cm across."""
    if kind == "cyst":
        return float(rng.uniform(5.0, 13.0))
    return float(rng.uniform(8.0, 20.0) if kind == "metastasis" else rng.uniform(10.0, 22.0))


PLACEMENT_SIZE = 128  # grid on which lesions are placed, whatever the render size


def _place_lesions(
    anatomy: _Anatomy, z: float, kinds: Sequence[str], rng: np.random.Generator, canvas: _Canvas | None = None
) -> list[_Lesion]:
    """Places lesions of ``kinds`` inside the liver at height ``z`` without overlaps; drops those that do not fit.

    Placement works on a fixed PLACEMENT_SIZE grid, so a patient's lesions do not depend on the render size;
    ``canvas`` is that slice already painted (without lesions), when the caller has it.
    """
    if canvas is None or canvas.size != PLACEMENT_SIZE:
        canvas = _paint(anatomy, z, PLACEMENT_SIZE)
    liver = np.isin(canvas.labels, [LABEL["liver"], LABEL["liver-vessel"]])
    room = ndimage.distance_transform_edt(liver) * canvas.spacing  # mm to the nearest non-liver pixel
    lesions: list[_Lesion] = []
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


# --------------------------------------------------------------------------------------------------------
# Acquisition


def simulate_acquisition(
    truth_hu: np.ndarray,
    pixel_spacing_mm: float,
    dose: float | None,
    rng: np.random.Generator,
    n_views: int | None = None,
    kernel: str = "ramp",
) -> np.ndarray:
    """Simulates a CT scan of a HU image: projection, Poisson photon noise, filtered back-projection.

    Args:
        truth_hu: square float image in HU; everything outside its inscribed circle must be air.
        pixel_spacing_mm: pixel size in mm (sets the path lengths through tissue).
        dose: relative dose: ``FULL_DOSE_PHOTONS * dose`` photons per ray at the reference geometry, scaled
            with detector width and view count so that a dose means the same photon fluence at any size.
            None skips the noise (an ideal scan that still has the reconstruction blur).
        rng: random generator of the photon counts.
        n_views: projections over 180 degrees; default ``size`` (256 views at 256 px: view-aliasing
            error about 2 HU RMS in soft tissue, far below the photon noise; 0.4 s per slice).
        kernel: ``iradon`` reconstruction filter; "ramp" is the sharpest, "hann" the smoothest.

    Returns:
        The reconstructed slice in HU, float32, shaped like ``truth_hu``; -1000 outside the circle.
    """
    if dose is not None and not dose > 0:
        raise ValueError(f"dose must be positive or None, got {dose}")
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; choose one of {KERNELS}")
    size = truth_hu.shape[0]
    n_views = n_views or size
    # Half-step offset: no view is exactly axis-aligned. Rotation-based projection does not interpolate at 0
    # and 90 degrees, so those views are sharper than the rest and would leave faint lines through bright edges.
    angles = (np.arange(n_views) + 0.5) * 180.0 / n_views
    mu = MU_WATER_PER_MM * np.clip(1.0 + truth_hu.astype(np.float64) / 1000.0, 0.0, None)
    line_integrals = radon(mu * pixel_spacing_mm, angles, circle=True)
    if dose is not None:
        # Wider detector bins and fewer views each collect more photons for the same patient dose.
        photons = FULL_DOSE_PHOTONS * dose * (pixel_spacing_mm * REFERENCE_SIZE / FOV_MM) * (REFERENCE_VIEWS / n_views)
        counts = rng.poisson(photons * np.exp(-line_integrals))
        # A ray with no detected photon has no finite log; scanners clamp such readings the same way.
        line_integrals = -np.log(np.maximum(counts, 1) / photons)
    mu_image = iradon(line_integrals, angles, circle=True, filter_name=kernel) / pixel_spacing_mm
    return (1000.0 * (mu_image / MU_WATER_PER_MM - 1.0)).astype(np.float32)


def _textured(canvas: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """Truth HU: the painting plus fine correlated texture inside tissues, then a partial-volume blur."""
    sigma = TEXTURE_MM / canvas.spacing
    texture = ndimage.gaussian_filter(rng.standard_normal(canvas.hu.shape).astype(np.float32), sigma)
    texture /= texture.std() + 1e-6
    amplitude = np.zeros(len(ORGANS), dtype=np.float32)
    for name, value in TEXTURE_HU.items():
        amplitude[LABEL[name]] = value
    textured = canvas.hu + amplitude[canvas.labels] * texture
    return ndimage.gaussian_filter(textured, PARTIAL_VOLUME_PIXELS).astype(np.float32)


# --------------------------------------------------------------------------------------------------------
# Public API


def patient_id(seed: int) -> str:
    """The patient id of phantom seed ``seed`` (used as the subject key for patient-level splits)."""
    return f"phantom-{seed:05d}"


@functools.lru_cache(maxsize=256)
def _anatomy(seed: int, phase: str) -> _Anatomy:
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}; choose one of {PHASES}")
    return _sample_anatomy(seed, phase)


def _key(*values: float) -> list[int]:
    """Integer entropy for a SeedSequence from floats (slice height, dose)."""
    return [int(round(value * 1000)) & 0xFFFFFFFF for value in values]


def render_patient(
    seed: int,
    size: int = 256,
    dose: float | None = 1.0,
    n_lesions: int | tuple[int, int] = (1, 3),
    z_mm: float | None = None,
    phase: str = "portal",
    lesion_classes: Sequence[str] | None = None,
    n_views: int | None = None,
    kernel: str = "ramp",
) -> PhantomCase:
    """Renders one simulated axial abdominal CT slice of phantom patient ``seed``.

    The seed fixes the anatomy, the lesions and the tissue texture; the dose changes only the photon noise:
    ``render_patient(7, dose=1.0)`` and ``render_patient(7, dose=0.25)`` are the same slice of the same
    patient scanned at full and at quarter dose (their ``truth_hu`` are identical).

    Args:
        seed: patient seed (a non-negative int).
        size: image side in pixels over a 400 mm field of view (256 gives 1.56 mm pixels).
        dose: relative dose (1.0 routine, 0.25 quarter dose), or None for a noise-free scan.
        n_lesions: number of liver lesions, or an inclusive (min, max) range drawn from the seed.
        z_mm: slice height in mm relative to the liver hilum; default drawn from the seed, within the liver.
        phase: "portal" (portal-venous contrast phase) or "unenhanced".
        lesion_classes: class of each lesion (overrides ``n_lesions``); default drawn from the seed.
        n_views: projections over 180 degrees (see ``simulate_acquisition``).
        kernel: FBP filter (see ``simulate_acquisition``).

    Returns:
        The slice, its noise-free truth, lesion masks and classes, and tissue labels.
    """
    anatomy = _anatomy(seed, phase)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 31]))
    z = float(rng.uniform(-40.0, 25.0)) if z_mm is None else float(z_mm)
    if lesion_classes is None:
        low, high = (n_lesions, n_lesions) if isinstance(n_lesions, int) else n_lesions
        lesion_classes = [str(rng.choice(LESION_CLASSES)) for _ in range(int(rng.integers(low, high + 1)))]
    canvas = _paint(anatomy, z, size)
    lesions = []
    if lesion_classes:
        lesion_rng = np.random.default_rng(np.random.SeedSequence([seed, 37, *_key(z)]))
        lesions = _place_lesions(anatomy, z, list(lesion_classes), lesion_rng, canvas)
    case = _scan(anatomy, canvas, z, lesions, dose, n_views, kernel)
    case.phase = phase
    return case


def _render(
    anatomy: _Anatomy,
    z: float,
    size: int,
    lesions: Sequence[_Lesion],
    dose: float | None,
    n_views: int | None,
    kernel: str,
) -> PhantomCase:
    """Paints, textures and scans one slice of ``anatomy`` with the given lesions."""
    return _scan(anatomy, _paint(anatomy, z, size), z, lesions, dose, n_views, kernel)


def _scan(
    anatomy: _Anatomy,
    canvas: _Canvas,
    z: float,
    lesions: Sequence[_Lesion],
    dose: float | None,
    n_views: int | None,
    kernel: str,
) -> PhantomCase:
    """Adds the lesions to a painted slice, then textures and scans it."""
    for lesion in lesions:
        _paint_lesion(canvas, lesion, z)
    truth = _textured(canvas, np.random.default_rng(np.random.SeedSequence([anatomy.seed, 41, *_key(z)])))
    noise_key = [anatomy.seed, 43, *_key(z, 0.0 if dose is None else dose), canvas.size]
    noise_rng = np.random.default_rng(np.random.SeedSequence(noise_key))
    image = simulate_acquisition(truth, canvas.spacing, dose, noise_rng, n_views, kernel)
    masks, classes = [], []
    for lesion in lesions:
        mask = _lesion_mask(canvas, lesion, z)
        if mask.any():
            masks.append(mask)
            classes.append(lesion.kind)
    return PhantomCase(image, truth, masks, classes, canvas.labels, patient_id(anatomy.seed), canvas.spacing, z, dose)


def _lesion_mask(canvas: _Canvas, lesion: _Lesion, z: float) -> np.ndarray:
    """The painted pixels of one lesion: its outline at ``z`` intersected with the lesion label."""
    radius = lesion.radius * _bump(z, lesion.centre[2], lesion.z_radius)
    if radius < 1.5:
        return np.zeros(canvas.labels.shape, dtype=bool)
    rho = canvas.radial(_Blob(lesion.centre[:2], (radius, radius * 0.9), wobble=lesion.wobble))
    return (rho < 1.0) & (canvas.labels == LABEL["lesion"])


def _patient_seed(dataset_seed: int, index: int) -> int:
    """Seed of the ``index``-th patient of a dataset: datasets with different seeds share no patient."""
    if not 0 <= index < PATIENTS_PER_SEED:
        raise ValueError(f"a phantom dataset holds at most {PATIENTS_PER_SEED} patients, asked for patient {index}")
    return dataset_seed * PATIENTS_PER_SEED + index


PATIENTS_PER_SEED = 1000


def lesion_rois(
    n_per_class: int = 32,
    roi_size: int = 64,
    seed: int = 1,
    dose: float | None = 1.0,
    phase: str = "portal",
    size: int = 256,
    n_views: int | None = 180,
) -> LesionRois:
    """Lesion-centred ROIs, balanced over LESION_CLASSES, from simulated portal-phase liver CT.

    Each patient has 3-6 lesions of one class (multiple metastases, cysts or hemangiomas are the common
    pattern), so a patient gives several ROIs; split by ``patients`` to keep a patient on one side.

    Args:
        n_per_class: ROIs per class.
        roi_size: ROI side in pixels, centred on the lesion's centroid (64 px is 100 mm at ``size=256``).
        seed: dataset seed; patients are ``seed * 1000 + index``, so different seeds share no patient.
        dose: relative dose (see ``render_patient``).
        phase: contrast phase.
        size: render size of the whole slice (sets the pixel size: 400 mm / size).
        n_views: projections per slice; 180 keeps view aliasing (about 4 HU RMS) below the noise and the
            generation fast.

    Returns:
        The ROIs in HU with their masks, labels and patient ids.
    """
    counts = {kind: 0 for kind in LESION_CLASSES}
    images, masks, labels, patients = [], [], [], []
    index = 0
    spacing = FOV_MM / size
    while min(counts.values()) < n_per_class:
        kind = min(LESION_CLASSES, key=lambda name: (counts[name], LESION_CLASSES.index(name)))
        patient = _patient_seed(seed, index)
        index += 1
        wanted = int(np.random.default_rng(np.random.SeedSequence([patient, 53])).integers(3, 7))
        case = render_patient(patient, size, dose, phase=phase, lesion_classes=[kind] * wanted, n_views=n_views)
        for mask, found in zip(case.lesion_masks, case.lesion_classes):
            if counts[found] >= n_per_class:
                continue
            row, column = (int(round(v)) for v in ndimage.center_of_mass(mask))
            images.append(_crop(case.image_hu, row, column, roi_size, -1000.0))
            masks.append(_crop(mask, row, column, roi_size, False))
            labels.append(LESION_CLASSES.index(found))
            patients.append(case.patient)
            counts[found] += 1
    stack, labels_array = np.stack(images).astype(np.float32), np.asarray(labels, dtype=np.int64)
    return LesionRois(stack, np.stack(masks), labels_array, LESION_CLASSES, patients, spacing)


def _crop(image: np.ndarray, row: int, column: int, size: int, fill: float | bool) -> np.ndarray:
    """The ``size`` x ``size`` window of ``image`` centred at (row, column), padded with ``fill`` at the edges."""
    half = size // 2
    padded = np.pad(image, half + 1, constant_values=fill)
    top, left = row - half + half + 1, column - half + half + 1
    return padded[top : top + size, left : left + size].copy()


def phantom_volume(
    seed: int,
    n_slices: int = 8,
    slice_mm: float = 5.0,
    size: int = 256,
    dose: float | None = 1.0,
    n_lesions: int | tuple[int, int] = (1, 3),
    centre_z_mm: float = -10.0,
    phase: str = "portal",
    n_views: int | None = None,
) -> PhantomVolume:
    """A short axial stack of one phantom patient with a LiTS-style segmentation (0 / 1 liver / 2 lesion).

    Anatomy varies smoothly from slice to slice; lesions are roughly spherical and appear on the slices they
    cross. Bowel content and texture are drawn per slice.

    Args:
        seed: patient seed.
        n_slices: number of axial slices.
        slice_mm: slice spacing in mm.
        size: in-plane size in pixels (400 mm field of view).
        dose: relative dose, or None for no noise.
        n_lesions: number of lesions, or an inclusive (min, max) range drawn from the seed.
        centre_z_mm: height of the middle of the stack relative to the liver hilum.
        phase: contrast phase.
        n_views: projections per slice.

    Returns:
        The volume (X to the patient's left, Y posterior, Z superior) with its NIfTI affine.
    """
    anatomy = _anatomy(seed, phase)
    heights = centre_z_mm + (np.arange(n_slices) - (n_slices - 1) / 2) * slice_mm
    rng = np.random.default_rng(np.random.SeedSequence([seed, 59]))
    low, high = (n_lesions, n_lesions) if isinstance(n_lesions, int) else n_lesions
    lesions: list[_Lesion] = []
    for _ in range(int(rng.integers(low, high + 1))):
        kind = str(rng.choice(LESION_CLASSES))
        for lesion in _place_lesions(anatomy, float(rng.choice(heights)), [kind], rng):
            gaps = [math.dist(lesion.centre, other.centre) - lesion.radius - other.radius for other in lesions]
            if all(gap > 4.0 for gap in gaps):
                lesions.append(lesion)
    images, segmentations, present = [], [], set()
    for z in heights:
        case = _render(anatomy, float(z), size, lesions, dose, n_views, "ramp")
        liver = np.isin(case.organ_labels, [LABEL["liver"], LABEL["liver-vessel"], LABEL["lesion"]])
        segmentation = liver.astype(np.uint8) + (case.organ_labels == LABEL["lesion"]).astype(np.uint8)
        images.append(case.image_hu)
        segmentations.append(segmentation)
        present.update(case.lesion_classes)
    spacing = FOV_MM / size
    offset = (size / 2 - 0.5) * spacing
    # Array axis 0 runs to the patient's left and axis 1 to posterior, so both point against RAS+ x and y.
    affine = np.array(
        [[-spacing, 0, 0, offset], [0, -spacing, 0, offset], [0, 0, slice_mm, float(heights[0])], [0, 0, 0, 1]],
        dtype=np.float64,
    )
    # Slice [row, column] -> volume [column, row]: X follows image columns, Y follows image rows.
    image_hu = np.stack(images, axis=-1).transpose(1, 0, 2)
    segmentation = np.stack(segmentations, axis=-1).transpose(1, 0, 2)
    kinds = [lesion.kind for lesion in lesions if lesion.kind in present]
    image_hu, segmentation = np.ascontiguousarray(image_hu), np.ascontiguousarray(segmentation)
    return PhantomVolume(image_hu, segmentation, affine, patient_id(seed), kinds)


def save_lits_pair(volume: PhantomVolume, folder: str | Path, index: int, compress: bool = False) -> tuple[Path, Path]:
    """Writes a phantom volume as a LiTS-style pair ``volume-N.nii[.gz]`` / ``segmentation-N.nii[.gz]``.

    The image is stored as int16 HU (scl_slope 1, scl_inter 0) like LiTS, the segmentation as uint8.

    Args:
        volume: from ``phantom_volume``.
        folder: output folder (created if needed).
        index: the case number N.
        compress: write ``.nii.gz`` instead of ``.nii``.

    Returns:
        The image and segmentation paths.
    """
    import nibabel as nib

    from medgan.utils import atomic_path

    suffix = ".nii.gz" if compress else ".nii"
    folder = Path(folder)
    image_path, segmentation_path = folder / f"volume-{index}{suffix}", folder / f"segmentation-{index}{suffix}"
    hu = np.clip(np.round(volume.image_hu), -1024, 3071).astype(np.int16)
    for path, array in ((image_path, hu), (segmentation_path, volume.segmentation.astype(np.uint8))):
        image = nib.Nifti1Image(array, volume.affine)
        image.header.set_data_dtype(array.dtype)
        image.header.set_slope_inter(1.0, 0.0)
        image.header.set_xyzt_units("mm")
        with atomic_path(path) as temporary:
            nib.save(image, str(temporary))
    return image_path, segmentation_path


# --------------------------------------------------------------------------------------------------------
# Embedded sources: "ct-phantom" (whole slices) and "ct-lesions" (labelled lesion ROIs)

PHANTOM_PATIENTS = 32  # patients of the "ct-phantom" source
PHANTOM_SLICES_PER_PATIENT = 2  # axial slices per patient, one upper and one lower in the liver
PHANTOM_SEED = 0  # dataset seed of "ct-phantom" (patients 0..31)
# ROIs per lesion class in "ct-lesions": 180 in all, about the 182 ROIs of the Frid-Adar et al. study. With 24 per
# class a 4-minute conditional run's samples were recognised at chance (0.32), with 60 (and the portal liver
# window, the auxiliary classifier and no intensity augmentation) at 0.89; generating them takes about 20 s,
# once per process.
LESION_ROIS_PER_CLASS = 60
LESION_SEED = 1  # dataset seed of "ct-lesions" (patients from 1000 on: none shared with "ct-phantom")


def render_size(resolution: int) -> int:
    """Render size for whole slices fitted to ``resolution``: 128 up to 128 (so 64 and 32 are anti-aliased
    downsamplings), 256 above."""
    return 128 if resolution <= 128 else 256


@functools.lru_cache(maxsize=8)
def phantom_slices(
    n_patients: int = PHANTOM_PATIENTS,
    slices_per_patient: int = PHANTOM_SLICES_PER_PATIENT,
    size: int = 128,
    seed: int = PHANTOM_SEED,
    dose: float | None = 1.0,
    phase: str = "portal",
) -> tuple[np.ndarray, tuple[str, ...], tuple[float, ...]]:
    """Whole simulated abdominal slices in HU, cached in-process (generation is deterministic).

    Each patient gets 0-2 liver lesions and ``slices_per_patient`` slices spread between 35 mm below and
    20 mm above the liver hilum.

    Args:
        n_patients: number of patients.
        slices_per_patient: slices per patient.
        size: render size in pixels (400 mm field of view).
        seed: dataset seed; patients are ``seed * 1000 + index``.
        dose: relative dose.
        phase: contrast phase.

    Returns:
        ``(images [N, size, size] float32 HU (read-only), patient id per image, slice height per image)``.
    """
    images, patients, heights = [], [], []
    for index in range(n_patients):
        patient = _patient_seed(seed, index)
        rng = np.random.default_rng(np.random.SeedSequence([patient, 61]))
        base = np.linspace(-35.0, 20.0, slices_per_patient) if slices_per_patient > 1 else np.array([-10.0])
        for z in base + rng.uniform(-8.0, 8.0, len(base)):
            case = render_patient(patient, size, dose, n_lesions=(0, 2), z_mm=float(z), phase=phase)
            images.append(case.image_hu)
            patients.append(case.patient)
            heights.append(float(z))
    stack = np.stack(images).astype(np.float32)
    stack.flags.writeable = False  # shared by every caller through the cache
    return stack, tuple(patients), tuple(heights)


@functools.lru_cache(maxsize=4)
def _cached_lesion_rois(n_per_class: int, roi_size: int, seed: int) -> LesionRois:
    rois = lesion_rois(n_per_class, roi_size, seed)
    rois.images_hu.flags.writeable = False
    rois.masks.flags.writeable = False
    return rois


def slice_volume(image_hu: np.ndarray, spacing: float, name: str, subject: str) -> "Volume":
    """A 2D HU image as a CT ``Volume`` for the shared slicing pipeline."""
    from medgan.data.readers import Volume

    affine = np.diag([spacing, spacing, 1.0, 1.0])
    return Volume(np.array(image_hu, dtype=np.float32), affine, (spacing, spacing), "CT", Path(name), subject)


def _register_sources() -> None:
    """Registers "ct-phantom" and "ct-lesions" in ``medgan.data.sources.SOURCES``."""
    from medgan.data.sources import SOURCES

    if "ct-phantom" not in SOURCES:
        SOURCES.register("ct-phantom")(ct_phantom_source)
    if "ct-lesions" not in SOURCES:
        SOURCES.register("ct-lesions")(ct_lesions_source)


def ct_phantom_source(config: "DataConfig") -> "SliceSet":
    """The "ct-phantom" source: simulated whole abdominal CT slices (unlabelled), for unconditional training.

    32 patients x 2 axial slices at the liver level, portal-venous phase, routine dose, windowed with the
    config's CT window (abdomen W400 L50 by default). Subjects are patient ids, so ``split_by_subject`` splits
    by patient. Simulated data, see ``medgan.data.phantom``.

    Args:
        config: data config (resolution, window, fit).

    Returns:
        The slice set (64 images).
    """
    from medgan.data.datasets import slices_from_volumes

    size = render_size(config.resolution)
    images, patients, heights = phantom_slices(PHANTOM_PATIENTS, PHANTOM_SLICES_PER_PATIENT, size)
    spacing = FOV_MM / size
    volumes = [
        slice_volume(image, spacing, f"ct-phantom/{patient}/z{z:+.0f}mm", patient)
        for image, patient, z in zip(images, patients, heights)
    ]
    return slices_from_volumes(volumes, config)


def ct_lesions_source(config: "DataConfig") -> "SliceSet":
    """The "ct-lesions" source: simulated liver-lesion ROIs labelled cyst / metastasis / hemangioma.

    60 ROIs per class (180), 64 x 64 pixels of 1.56 mm (100 mm) centred on each lesion, from 3-6 lesions per
    patient; portal-venous phase, routine dose; windowed with the config's CT window. The layout of the
    Frid-Adar et al. 2018 liver-lesion GAN study, on simulated data. Subjects are patient ids.

    Args:
        config: data config (resolution, window, fit; ``roi_size`` when the config has it).

    Returns:
        The labelled slice set with ``class_names == LESION_CLASSES``.
    """
    from medgan.data.datasets import slices_from_volumes

    roi_size = int(config.roi_size)
    rois = _cached_lesion_rois(LESION_ROIS_PER_CLASS, roi_size, LESION_SEED)
    volumes, counters = [], {}
    for image, label, patient in zip(rois.images_hu, rois.labels, rois.patients):
        counters[patient] = counters.get(patient, 0) + 1
        name = f"ct-lesions/{patient}/lesion{counters[patient]}-{rois.class_names[label]}"
        volumes.append(slice_volume(image, rois.pixel_spacing_mm, name, patient))
    return slices_from_volumes(volumes, config, [int(v) for v in rois.labels], rois.class_names)


_register_sources()


# --------------------------------------------------------------------------------------------------------
# Preview grids (the pictures in docs/)


def _window_to_bytes(image_hu: np.ndarray, level: float, width: float) -> np.ndarray:
    """HU -> uint8 grey through a CT window."""
    low = level - width / 2
    return (np.clip((image_hu - low) / width, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def save_previews(
    folder: str | Path, tile: int = 192, window: tuple[float, float] = (50.0, 400.0)
) -> tuple[Path, Path]:
    """Writes ``phantom.png`` (4 x 4 whole slices) and ``phantom_lesions.png`` (6 ROIs per lesion class).

    Args:
        folder: output folder (``docs/`` for the README pictures).
        tile: side in pixels of each whole-slice tile (slices are cropped to the body, then resized).
        window: CT window (level, width) in HU; abdomen W400 L50 by default.

    Returns:
        The two paths.
    """
    from PIL import Image, ImageDraw

    from medgan.utils import atomic_path

    folder = Path(folder)
    gap = 4
    sheet = Image.new("L", (4 * tile + 5 * gap, 4 * tile + 5 * gap), 255)
    for index in range(16):
        case = render_patient(100 + index, size=256, dose=1.0, n_lesions=(0, 3))
        crop = _window_to_bytes(case.image_hu[24:232, 24:232], *window)
        picture = Image.fromarray(crop).resize((tile, tile), Image.Resampling.LANCZOS)
        sheet.paste(picture, (gap + (index % 4) * (tile + gap), gap + (index // 4) * (tile + gap)))
    slices_path = folder / "phantom.png"
    with atomic_path(slices_path) as temporary:
        sheet.save(temporary, optimize=True)
    rois = lesion_rois(n_per_class=6, roi_size=64, seed=7)
    scale, label_width = 2, 96
    roi_sheet = Image.new("L", (label_width + 6 * (64 * scale + gap) + gap, 3 * (64 * scale + gap) + gap), 255)
    draw = ImageDraw.Draw(roi_sheet)
    for row, name in enumerate(rois.class_names):
        draw.text((6, gap + row * (64 * scale + gap) + 56), name, fill=0)
        for column, index in enumerate(np.flatnonzero(rois.labels == row)[:6]):
            picture = Image.fromarray(_window_to_bytes(rois.images_hu[index], *window))
            picture = picture.resize((64 * scale, 64 * scale), Image.Resampling.NEAREST)
            roi_sheet.paste(picture, (label_width + gap + column * (64 * scale + gap), gap + row * (64 * scale + gap)))
    lesions_path = folder / "phantom_lesions.png"
    with atomic_path(lesions_path) as temporary:
        roi_sheet.save(temporary, optimize=True)
    return slices_path, lesions_path
