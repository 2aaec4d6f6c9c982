"""Whole phantom patients as contiguous volumes: CT at every dose and phase, T1w and T2w MR, and their masks.

Simulated data, not patient data. ``phantom_patient_volume`` renders one phantom patient (a seed) as
``n_slices`` contiguous axial slices ``slice_mm`` apart, centred ``centre_z_mm`` from the liver hilum, so that
3D models have known truth:

* **3D anatomy**: the patient's smooth shapes (``anatomy``) painted at each height; organs change smoothly from
  slice to slice.
* **3D lesions**: liver lesions (``lesions``) placed once for the whole volume, centred inside the liver and
  away from the volume's ends; each is a lobulated ellipsoid crossing several slices, its cross-section growing
  then shrinking.
* **Texture continuous through the plane** (``fields``): fat septa, faecal content, CT tissue texture and MR
  proton-density texture are cuts through 3D random fields, not drawn per slice as in the 2D sources.
* **Renderings of one painting**: CT per contrast phase (``PHASES``) and relative dose, each dose a separate
  scan with its own photon noise, independent from slice to slice as in axial CT (dose None: the noise-free
  scan, FBP blur only); MR per sequence (``mr.SEQUENCES``) from the portal painting's tissue map, with the
  patient's tissue parameters, one smooth bias field over x, y and z, and Rician noise independent per voxel.
* **Truth**: the tissue label map (``ORGANS``; the same for every rendering and phase), the MR tissue map
  (``MR_TISSUES``), and a lesion instance map with each lesion's class and geometry.

Default geometry: 64 slices of 2.5 mm (160 mm, from 89 mm below to 69 mm above the hilum: the phantom's liver
with gallbladder, pancreas, kidneys and spleen) at 128 px (3.125 mm pixels). 2.5 mm is a routine reading
thickness of abdominal CT, gives nearly isotropic voxels at 128 px (what 3D networks want), and is just above the
2 mm correlation length of tissue texture, so adjacent slices are correlated but not copies. Not simulated
through the plane: slice thickness (each slice samples the painting at its height; no slice sensitivity
profile), partial volume along z, helical or cone-beam geometry. Bowel loops are painted per height from smooth
shapes, so a loop squeezed out by its neighbours can appear or vanish between slices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medgan.data.phantom.acquisition import FOV_MM, KERNELS, project, reconstruct
from medgan.data.phantom.anatomy import Anatomy, patient_anatomy, seed_key
from medgan.data.phantom.canvas import Canvas
from medgan.data.phantom.cases import PhantomCase, PhantomVolume, patient_id, volume_affine
from medgan.data.phantom.fields import patient_fields
from medgan.data.phantom.lesions import Lesion, lesion_mask, paint_lesion, place_lesions
from medgan.data.phantom.mr import SEQUENCES, render_mr, tissue_map
from medgan.data.phantom.paint import paint_slice, textured
from medgan.data.phantom.tissue import LABEL, LESION_CLASSES, PHASES
from medgan.data.readers import progress_over

LESION_HEIGHTS_MM = (-40.0, 25.0)  # lesion centres lie in the liver's bulk (render_patient's slice heights)
LESION_END_SLICES = 3  # ... and at least this many slices inside the volume's ends, where the volume allows


@dataclass(frozen=True)
class Rendering:
    """What one image of a ``PatientVolume`` shows.

    Attributes:
        modality: ``"CT"`` or ``"MR"``.
        unit: ``"HU"`` (CT) or ``"a.u."`` (MR: arbitrary units, a patient's receiver gain included).
        phase: CT contrast phase (one of ``PHASES``); None for MR.
        dose: CT relative dose (1.0 routine); None for MR and for the noise-free CT scan.
        sequence: MR sequence (a key of ``mr.SEQUENCES``); None for CT.
        noise_sigma: MR Rician noise sigma in the image's units; None for CT.
    """

    modality: str
    unit: str
    phase: str | None = None
    dose: float | None = None
    sequence: str | None = None
    noise_sigma: float | None = None


@dataclass(frozen=True)
class PatientVolume:
    """One simulated phantom patient as contiguous axial slices, every rendering on one voxel grid.

    Arrays are ``[X, Y, Z]`` as ``PhantomVolume`` and NIfTI store them: X (image columns) runs to the patient's
    left, Y (image rows) to posterior, Z to superior.

    Attributes:
        images: rendering name -> float32 ``[X, Y, Z]`` (HU for CT, arbitrary units >= 0 for MR).
        renderings: rendering name -> what it is (same keys as ``images``).
        labels: uint8 ``[X, Y, Z]`` tissue labels, indices into ``ORGANS`` (lesion voxels are "lesion").
        mr_tissues: uint8 ``[X, Y, Z]`` indices into ``MR_TISSUES``, or None when no MR was rendered.
        lesion_map: uint8 ``[X, Y, Z]``: 0 no lesion, k the k-th lesion (``lesion_classes[k - 1]``).
        lesion_classes: class of each lesion in the volume (``LESION_CLASSES``).
        lesions: each lesion's 3D shape in mm (centre relative to the image centre and the hilum).
        spacing_mm: voxel size along X, Y, Z in mm (= row, column, slice spacing: pixels are square).
        affine: 4x4 voxel -> RAS+ mm (``cases.volume_affine``, the ``save_lits_pair`` convention).
        heights_mm: height of each slice above the liver hilum in mm.
        patient: patient id (``patient_id(seed)``).
        seed: patient seed.
    """

    images: dict[str, np.ndarray]
    renderings: dict[str, Rendering]
    labels: np.ndarray
    mr_tissues: np.ndarray | None
    lesion_map: np.ndarray
    lesion_classes: tuple[str, ...]
    lesions: tuple[Lesion, ...]
    spacing_mm: tuple[float, float, float]
    affine: np.ndarray
    heights_mm: tuple[float, ...]
    patient: str
    seed: int

    @property
    def lesion_class_map(self) -> np.ndarray:
        """uint8 ``[X, Y, Z]``: 0 no lesion, else 1 + the lesion's index in ``LESION_CLASSES``."""
        lookup = np.array([0] + [1 + LESION_CLASSES.index(kind) for kind in self.lesion_classes], dtype=np.uint8)
        return lookup[self.lesion_map]

    @property
    def segmentation(self) -> np.ndarray:
        """uint8 ``[X, Y, Z]`` LiTS-style: 0 background, 1 liver (with its vessels), 2 lesion."""
        liver = np.isin(self.labels, [LABEL["liver"], LABEL["liver-vessel"], LABEL["lesion"]])
        return liver.astype(np.uint8) + (self.labels == LABEL["lesion"]).astype(np.uint8)

    def lits_volume(self, name: str) -> PhantomVolume:
        """CT rendering ``name`` with the LiTS segmentation, for ``cases.save_lits_pair``."""
        if self.renderings[name].modality != "CT":
            raise ValueError(f"rendering {name!r} is not CT; a LiTS pair holds CT")
        return PhantomVolume(self.images[name], self.segmentation, self.affine, self.patient, list(self.lesion_classes))


def ct_rendering_name(phase: str, dose: float | None) -> str:
    """The name of a CT rendering: ``"ct-portal-dose1"``, ``"ct-unenhanced-dose0.25"``, ``"ct-portal-noisefree"``."""
    return f"ct-{phase}-noisefree" if dose is None else f"ct-{phase}-dose{dose:g}"


def volume_lesions(
    anatomy: Anatomy, heights_mm: np.ndarray, seed: int, n_lesions: int | tuple[int, int], kinds: Sequence[str] | None
) -> list[Lesion]:
    """Lesions of a volume: centred at slice heights inside the liver, apart from each other by more than 4 mm.

    The draws depend on the seed and the liver's shape only, so every contrast phase of one patient gets the same
    lesions (with the phase's contrast).
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 97]))
    if kinds is None:
        low, high = (n_lesions, n_lesions) if isinstance(n_lesions, int) else n_lesions
        kinds = [str(rng.choice(LESION_CLASSES)) for _ in range(int(rng.integers(low, high + 1)))]
    inner = heights_mm[LESION_END_SLICES:-LESION_END_SLICES] if len(heights_mm) > 2 * LESION_END_SLICES else heights_mm
    candidates = inner[(inner >= LESION_HEIGHTS_MM[0]) & (inner <= LESION_HEIGHTS_MM[1])]
    candidates = candidates if len(candidates) else inner
    lesions: list[Lesion] = []
    for kind in kinds:
        for lesion in place_lesions(anatomy, float(rng.choice(candidates)), [kind], rng):
            gaps = [np.linalg.norm(np.subtract(lesion.centre, other.centre)) - lesion.radius - other.radius
                    for other in lesions]
            if all(gap > 4.0 for gap in gaps):
                lesions.append(lesion)
    return lesions


def _checked(
    n_slices: int, slice_mm: float, size: int, doses: Sequence[float | None], phases: Sequence[str],
    sequences: Sequence[str], kernel: str,
) -> None:
    """ValueError naming the first bad argument of ``phantom_patient_volume``."""
    if n_slices < 1 or not slice_mm > 0 or size < 16:
        raise ValueError(f"need n_slices >= 1, slice_mm > 0 and size >= 16; got {n_slices}, {slice_mm}, {size}")
    unknown = [phase for phase in phases if phase not in PHASES] + [name for name in sequences if name not in SEQUENCES]
    if unknown:
        raise ValueError(f"unknown phase or MR sequence {unknown[0]!r}; phases: {PHASES}, sequences: {tuple(SEQUENCES)}")
    if any(dose is not None and not dose > 0 for dose in doses) or len(set(doses)) != len(doses):
        raise ValueError(f"doses must be distinct, positive or None; got {tuple(doses)}")
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; choose one of {KERNELS}")
    if not (phases and doses) and not sequences:
        raise ValueError("nothing to render: give at least one phase and dose, or an MR sequence")


def phantom_patient_volume(
    seed: int,
    n_slices: int = 64,
    slice_mm: float = 2.5,
    size: int = 128,
    doses: Sequence[float | None] = (1.0, 0.25),
    phases: Sequence[str] = PHASES,
    sequences: Sequence[str] = tuple(SEQUENCES),
    n_lesions: int | tuple[int, int] = (1, 3),
    lesion_classes: Sequence[str] | None = None,
    centre_z_mm: float = -10.0,
    n_views: int | None = None,
    kernel: str = "ramp",
    progress: bool = False,
) -> PatientVolume:
    """Renders one phantom patient as a contiguous volume in every requested CT dose and phase and MR sequence.

    Every rendering shows the same anatomy, lesions and texture on one voxel grid, with one label map. The
    default six renderings of 64 slices took 11 s at 128 px and 73 s at 256 px (54 s with ``n_views=180``) on one
    core of a loaded 2-core CPU; the CT scans (one projection per phase, one reconstruction per dose) dominate.

    Args:
        seed: patient seed (the same seed is the same patient as in ``render_patient``: anatomy and tissue values).
        n_slices: number of axial slices.
        slice_mm: slice spacing in mm (module docstring: why 2.5).
        size: in-plane pixels over the 400 mm field of view (128: 3.125 mm pixels; 256: 1.5625 mm).
        doses: CT relative doses, each scanned in every phase (1.0 routine, 0.25 quarter dose, None noise-free).
        phases: CT contrast phases, of ``PHASES``; empty for MR only.
        sequences: MR sequences, of ``mr.SEQUENCES`` (``"t1"``, ``"t2"``); empty for CT only.
        n_lesions: number of liver lesions, or an inclusive (min, max) range drawn from the seed.
        lesion_classes: class of each lesion (overrides ``n_lesions``); lesions that find no room are dropped.
        centre_z_mm: height of the volume's middle above the liver hilum in mm.
        n_views: CT projections per slice over 180 degrees (default ``size``; see ``simulate_acquisition``).
        kernel: CT reconstruction filter (``KERNELS``).
        progress: a progress bar over the slices.

    Returns:
        The volume: images by rendering name (``ct_rendering_name``; MR by sequence name), labels, lesion map,
        spacing and affine.

    Raises:
        ValueError: an unknown phase, sequence or kernel, a dose that is not positive, or an empty request.
    """
    _checked(n_slices, slice_mm, size, doses, phases, sequences, kernel)
    heights = centre_z_mm + (np.arange(n_slices) - (n_slices - 1) / 2) * slice_mm
    spacing = FOV_MM / size
    fields = patient_fields(seed, heights, size)
    # MR comes from the portal painting (its tissue HU tell sub-tissues apart); labels from the first painting.
    painted = tuple(dict.fromkeys([*(phases if doses else ()), *(("portal",) if sequences else ())]))
    anatomies = {phase: patient_anatomy(seed, phase) for phase in painted}
    lesions = {phase: volume_lesions(anatomies[phase], heights, seed, n_lesions, lesion_classes) for phase in painted}
    shape = (n_slices, size, size)
    ct_names = {(phase, dose): ct_rendering_name(phase, dose) for phase in (phases if doses else ()) for dose in doses}
    stacks = {name: np.empty(shape, dtype=np.float32) for name in [*ct_names.values(), *sequences]}
    labels, lesion_map = np.empty(shape, dtype=np.uint8), np.zeros(shape, dtype=np.uint8)
    mr_tissues = np.empty(shape, dtype=np.uint8) if sequences else None
    sigmas: dict[str, float] = {}
    for index, z in progress_over(list(enumerate(heights.tolist())), progress, "rendering phantom volume", "slice"):
        for phase in painted:
            canvas = paint_slice(anatomies[phase], z, size, fields.at(index))
            masks = _paint_lesions(canvas, lesions[phase], z)
            if phase == painted[0]:
                labels[index] = canvas.labels
                for number, mask in enumerate(masks, start=1):
                    lesion_map[index][mask] = number  # later lesions are painted over earlier ones
            truth = textured(canvas, None, fields.texture[index])
            if doses and phase in phases:
                sinogram = project(truth, spacing, n_views)
                for dose in doses:
                    key = [seed, 43, 1 + PHASES.index(phase), *seed_key(z, 0.0 if dose is None else dose), size]
                    noise = np.random.default_rng(np.random.SeedSequence(key))
                    stacks[ct_names[phase, dose]][index] = reconstruct(sinogram, spacing, dose, noise, kernel)
            if phase == "portal" and mr_tissues is not None:
                mr_tissues[index] = _mr_tissues(anatomies[phase], canvas, lesions[phase], masks, z)
                mr = render_mr(mr_tissues[index], seed, z, spacing, tuple(sequences), fields.mr_texture[index])
                for name, (image, sigma) in mr.items():
                    stacks[name][index] = image
                    sigmas[name] = sigma
    renderings = {name: Rendering("CT", "HU", phase=phase, dose=dose) for (phase, dose), name in ct_names.items()}
    renderings.update({name: Rendering("MR", "a.u.", sequence=name, noise_sigma=sigmas[name]) for name in sequences})
    present, lesion_map = _renumbered(lesion_map, len(lesions[painted[0]]))
    kept = tuple(lesions[painted[0]][number - 1] for number in present)
    return PatientVolume(
        images={name: _to_xyz(stack) for name, stack in stacks.items()},
        renderings=renderings,
        labels=_to_xyz(labels),
        mr_tissues=None if mr_tissues is None else _to_xyz(mr_tissues),
        lesion_map=_to_xyz(lesion_map),
        lesion_classes=tuple(lesion.kind for lesion in kept),
        lesions=kept,
        spacing_mm=(spacing, spacing, float(slice_mm)),
        affine=volume_affine(size, slice_mm, float(heights[0])),
        heights_mm=tuple(heights.tolist()),
        patient=patient_id(seed),
        seed=seed,
    )


def _paint_lesions(canvas: Canvas, lesions: Sequence[Lesion], z: float) -> list[np.ndarray]:
    """Paints the lesions' cross-sections at ``z``; returns each lesion's mask (empty where it misses)."""
    for lesion in lesions:
        paint_lesion(canvas, lesion, z)
    return [lesion_mask(canvas, lesion, z) for lesion in lesions]


def _mr_tissues(
    anatomy: Anatomy, canvas: Canvas, lesions: Sequence[Lesion], masks: Sequence[np.ndarray], z: float
) -> np.ndarray:
    """The MR tissue map (``mr.tissue_map``) of a painted portal slice with its lesions' masks."""
    seen = [(lesion.kind, mask) for lesion, mask in zip(lesions, masks) if mask.any()]
    case = PhantomCase(canvas.hu, canvas.hu, [mask for _, mask in seen], [kind for kind, _ in seen], canvas.labels,
                       patient_id(anatomy.seed), canvas.spacing, z, None, "portal", canvas.hu)
    return tissue_map(case, anatomy.tissue_hu)


def _renumbered(lesion_map: np.ndarray, count: int) -> tuple[list[int], np.ndarray]:
    """The lesion numbers seen in ``lesion_map`` (in order) and the map renumbered 1, 2, ... over them."""
    present = [number for number in range(1, count + 1) if (lesion_map == number).any()]
    lookup = np.zeros(count + 1, dtype=np.uint8)
    lookup[present] = np.arange(1, len(present) + 1, dtype=np.uint8)
    return present, lookup[lesion_map]


def _to_xyz(stack: np.ndarray) -> np.ndarray:
    """``[Z, rows, columns]`` slices -> ``[X, Y, Z]`` (X follows columns, Y rows), contiguous."""
    return np.ascontiguousarray(stack.transpose(2, 1, 0))
