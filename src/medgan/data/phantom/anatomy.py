"""The sampled anatomy of one simulated CT phantom patient: shapes in millimetres, drawn from the patient's seed.

Simulated data, not patient data. Each phantom "patient" is a seed: the seed fixes the anatomy (habitus, organ
sizes, positions and shapes, vessels, bowel loops) and the tissue values, so the same patient can be painted at
any slice height or resolution (``medgan.data.phantom.paint``). All lengths are in mm; image x runs to the
patient's left, image y to posterior.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from medgan.data.phantom.tissue import ENHANCING, PHASES, TISSUE_HU

# --------------------------------------------------------------------------------------------------------
# Shapes (all lengths in mm; image x to the patient's left, image y to posterior)

Wobble = tuple[tuple[int, float, float], ...]  # (harmonic, relative amplitude, phase) of a boundary


@dataclass(frozen=True)
class Blob:
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


def random_wobble(rng: np.random.Generator, amplitude: float, harmonics: Sequence[int] = (2, 3, 4, 5)) -> Wobble:
    """Random boundary harmonics with amplitudes falling as 1 / harmonic (smooth outlines)."""
    return tuple((k, float(rng.normal(0.0, amplitude / k)), float(rng.uniform(0, 2 * math.pi))) for k in harmonics)


def bump(z: float, centre: float, half: float) -> float:
    """Cross-section profile of a round organ: 1 at ``centre``, falling to 0 at ``half`` mm away."""
    t = (z - centre) / half
    return math.sqrt(max(0.0, 1.0 - t * t))


@dataclass(frozen=True)
class Vessel:
    """A tapered tube along a quadratic Bezier curve, visible over a range of slice heights."""

    points: tuple[tuple[float, float], ...]  # start, control, end (mm)
    radii: tuple[float, float]  # radius at start and end (mm)
    z_centre: float
    z_half: float
    kind: str  # "portal-vein" or "hepatic-vein"


@dataclass(frozen=True)
class Loop:
    """A bowel loop crossing the slice: a wall around gas, fluid or faecal content."""

    where: tuple[float, float]  # centre as a fraction of the abdominal cavity half-axes
    radius: float
    aspect: float  # short / long axis: loops cut obliquely look oval
    angle: float
    z_centre: float
    z_half: float
    content: str  # "gas", "fluid" or "faeces"


@dataclass(frozen=True)
class Frame:
    """Body layers and landmarks of one patient, derived from the habitus."""

    body: Blob
    wall: Blob  # outer boundary of the abdominal wall muscles (inside the subcutaneous fat)
    cavity: Blob  # inner boundary of the wall: the abdominal cavity
    canal: tuple[float, float]
    vertebra: tuple[float, float]
    vertebra_radii: tuple[float, float]
    aorta: tuple[float, float]
    aorta_radius: float
    ivc: tuple[float, float]


@dataclass(frozen=True)
class Anatomy:
    """Every random choice that defines one phantom patient."""

    seed: int
    frame: Frame
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
    vessels: tuple[Vessel, ...]
    loops: tuple[Loop, ...]
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


def _sample_frame(rng: np.random.Generator, fat_mm: float, wall_mm: float) -> Frame:
    """Body outline, wall layers, spine and great vessels."""
    rx = rng.uniform(140.0, 170.0)
    ry = rx * rng.uniform(0.68, 0.78)
    body = Blob(
        (0.0, float(rng.uniform(-8.0, 2.0))), (rx, ry), power=rng.uniform(2.1, 2.5), wobble=random_wobble(rng, 0.05)
    )
    fat_anterior = rng.uniform(0.0, 0.6) * fat_mm  # extra anterior fat (pannus) in some patients
    wall = Blob(
        (body.centre[0], body.centre[1] + fat_anterior / 2),
        (rx - fat_mm, ry - fat_mm - fat_anterior / 2),
        power=body.power,
        wobble=body.wobble,
    )
    cavity_radii = (wall.radii[0] - wall_mm, wall.radii[1] - wall_mm)
    cavity = Blob(wall.centre, cavity_radii, power=body.power, wobble=body.wobble)
    skin_posterior = body.centre[1] + ry * float(body.boundary(math.pi / 2))
    canal = (0.0, skin_posterior - 0.8 * fat_mm - rng.uniform(42.0, 52.0))
    half_width, half_depth = rng.uniform(19.0, 23.0), rng.uniform(14.0, 17.0)
    vertebra = (0.0, canal[1] - 8.0 - half_depth - 2.0)
    aorta_radius = rng.uniform(9.5, 12.5)
    aorta = (vertebra[0] + rng.uniform(8.0, 18.0), vertebra[1] - half_depth - aorta_radius - 2.0)
    ivc = (vertebra[0] - rng.uniform(22.0, 30.0), vertebra[1] - half_depth - rng.uniform(10.0, 16.0))
    return Frame(body, wall, cavity, canal, vertebra, (half_width, half_depth), aorta, aorta_radius, ivc)


def _sample_anatomy(seed: int, phase: str) -> Anatomy:
    """Draws one patient from ``seed`` (the same seed and phase always give the same patient)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 11]))
    fat_mm, wall_mm = rng.uniform(8.0, 32.0), rng.uniform(7.0, 12.0)
    frame = _sample_frame(rng, fat_mm, wall_mm)
    liver_scale = rng.uniform(0.88, 1.12)
    liver_shift = (float(rng.normal(0, 5.0)), float(rng.normal(0, 4.0)))
    loops = tuple(
        Loop(
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
    return Anatomy(
        seed=seed,
        frame=frame,
        fat_mm=fat_mm,
        wall_mm=wall_mm,
        liver_scale=liver_scale,
        liver_shift=liver_shift,
        liver_wobble=random_wobble(rng, 0.08),
        spleen_scale=rng.uniform(0.8, 1.2),
        spleen_wobble=random_wobble(rng, 0.06),
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
    rng: np.random.Generator, frame: Frame, scale: float, shift: tuple[float, float]
) -> tuple[Vessel, ...]:
    """Branching portal veins from the hilum and hepatic veins draining into the IVC."""
    cx, cy = frame.cavity.centre
    width, depth = frame.cavity.radii
    hilum = (cx - 0.12 * width + shift[0], cy - 0.02 * depth + shift[1])
    vessels: list[Vessel] = []
    for direction, z_centre in (((-1.0, 0.35), -8.0), ((-0.8, -0.6), 0.0), ((0.55, -0.85), 8.0)):
        radius = rng.uniform(5.5, 7.0)
        _branch(rng, vessels, hilum, direction, 38.0 * scale, radius, z_centre, depth=3, kind="portal-vein")
    for direction in ((-1.0, -0.25), (-0.45, -1.0), (0.3, -1.0)):
        radius, z_centre = rng.uniform(4.5, 6.0), rng.uniform(28.0, 42.0)
        _branch(rng, vessels, frame.ivc, direction, 45.0 * scale, radius, z_centre, depth=2, kind="hepatic-vein")
    return tuple(vessels)


def _branch(
    rng: np.random.Generator,
    out: list[Vessel],
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
    out.append(Vessel((start, control, end), (radius, end_radius), z_centre, 6.0 + 2.2 * radius, kind))
    if depth <= 1:
        return
    for sign in (-1.0, 1.0):
        turn = angle + sign * rng.uniform(0.35, 0.9)
        child_length, child_z = length * rng.uniform(0.55, 0.8), z_centre + rng.normal(0, 8.0)
        direction = (math.cos(turn), math.sin(turn))
        _branch(rng, out, end, direction, child_length, end_radius * 0.75, child_z, depth - 1, kind)


@functools.lru_cache(maxsize=256)
def patient_anatomy(seed: int, phase: str) -> Anatomy:
    """The anatomy of phantom patient ``seed`` in contrast ``phase``, cached (sampling is deterministic).

    Args:
        seed: patient seed.
        phase: one of PHASES.

    Returns:
        The patient's anatomy.
    """
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}; choose one of {PHASES}")
    return _sample_anatomy(seed, phase)


def seed_key(*values: float) -> list[int]:
    """Integer entropy for a SeedSequence from floats (slice height, dose)."""
    return [int(round(value * 1000)) & 0xFFFFFFFF for value in values]
