"""Simulated MR of the CT phantom: T1- and T2-weighted images of the same painted anatomy.

Simulated data, not patient data, and a deliberately simple MR model. A slice's MR image is derived from its
painted CT slice (``PhantomCase.organ_labels``, ``painted_hu``, lesion masks), not rendered again: each pixel
gets an MR tissue (``MR_TISSUES``), each tissue its relaxation times and proton density at 3 T
(``RELAXATION``), and the pixel the signal of its tissue in the sequence. In order:

1. **Tissue parameters** per patient: the table's T1, T2 and proton density, each scaled per tissue and patient
   by a random factor (standard deviation 5 % for T1 and T2, 2 % for proton density).
2. **Texture**: a fine correlated fluctuation of proton density (3 %, 2 mm correlation), the same field for
   T1 and T2 (it stands for tissue microstructure).
3. **Signal** (``SEQUENCES``): T1-weighted = spoiled gradient echo, TR 150 ms, TE 2.3 ms (fat and water in
   phase at 3 T), flip 70 degrees: ``S = PD sin(a) (1 - E1) / (1 - cos(a) E1) exp(-TE / T2)``, ``E1 =
   exp(-TR / T1)``, T2 standing in for T2*; T2-weighted = spin echo, TR 4000 ms, TE 90 ms:
   ``S = PD (1 - exp(-TR / T1)) exp(-TE / T2)`` (the TR >> TE form). Then a 0.6-pixel Gaussian blur (partial
   volume, as the CT truth).
4. **Bias field**: the signal times ``exp(p(x, y, z))``, ``p`` a second-order polynomial in body coordinates
   with coefficients drawn per patient (``bias_field``): smooth, the same for T1 and T2 and continuous along
   z; over the body it spans about 0.85-1.2 (median over the 16 test patients; 0.67-1.57 at the extremes).
5. **Rician noise**: the magnitude of the signal plus complex Gaussian noise, ``|S + n_re + i n_im|``, with
   ``sigma`` set so that the liver's signal-to-noise ratio is ``Sequence.liver_snr`` (T1w 30, T2w 15); the
   air background therefore reads ``sigma * sqrt(pi / 2)`` on average (Rayleigh), never zero, never negative.
6. **Receiver gain**: the image times ``1000 * g``, ``g`` log-normal per patient and sequence (sigma 0.25):
   the units are arbitrary and differ between patients, as real MR intensities do (hence per-scan
   normalisation).

Not realistic (on purpose or for lack of a model): no flow effects (blood, aorta and veins, has static blood
relaxation: no flow voids on spin echo, no inflow brightening); no chemical shift, no fat/water phase effects
and no J-coupling (fast spin echo makes fat brighter on T2w than this); no susceptibility, T2* or motion
(breathing, peristalsis) artefacts; no k-space effects (Gibbs ringing, partial Fourier); single-coil noise
(uniform sigma, not the spatially varying noise of a parallel-imaging reconstruction); bowel content is one
fluid-like tissue; gas and cortical bone give no signal but the noise floor (cortical bone's T2 of about
0.4 ms is gone long before any echo here).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from medgan.data.phantom.anatomy import seed_key
from medgan.data.phantom.cases import PhantomCase
from medgan.data.phantom.paint import PARTIAL_VOLUME_PIXELS, TEXTURE_MM
from medgan.data.phantom.tissue import LABEL, LESION_CLASSES

FIELD_STRENGTH_T = 3.0

_BAZELAIRE = "de Bazelaire et al., Radiology 2004;230:652-659 (in vivo, 3.0 T)"
_STANISZ = "Stanisz et al., Magn Reson Med 2005;54:507-512 (3 T, 37 C)"
_APPROX = "approximate (no single reference; of the order reported at 3 T, chosen for plausible contrast)"


@dataclass(frozen=True)
class Relaxation:
    """MR parameters of one tissue: relaxation times in ms, proton density relative to water, and their source."""

    t1_ms: float
    t2_ms: float
    pd: float
    source: str


# Mean relaxation times at 3 T. Proton densities are approximate everywhere (about the tissue's water content;
# fat's lipid protons about 0.9 of water), as none of the sources measured them.
RELAXATION: dict[str, Relaxation] = {
    "air": Relaxation(1.0, 1.0, 0.0, "no protons"),
    "fat": Relaxation(382.0, 68.0, 0.90, _BAZELAIRE + ", subcutaneous fat"),
    "muscle": Relaxation(898.0, 29.0, 0.75, _BAZELAIRE + ", paravertebral muscle"),
    "liver": Relaxation(809.0, 34.0, 0.71, _BAZELAIRE),
    "spleen": Relaxation(1328.0, 61.0, 0.79, _BAZELAIRE),
    "pancreas": Relaxation(725.0, 43.0, 0.72, _BAZELAIRE),
    "kidney-cortex": Relaxation(1142.0, 76.0, 0.81, _BAZELAIRE),
    "kidney-medulla": Relaxation(1545.0, 81.0, 0.83, _BAZELAIRE),
    "bone-marrow": Relaxation(586.0, 49.0, 0.80, _BAZELAIRE + ", L4 vertebral marrow"),
    "blood": Relaxation(1932.0, 275.0, 0.85, _STANISZ + ", human blood"),
    "cartilage": Relaxation(1240.0, 37.0, 0.70, _STANISZ + ", bovine cartilage"),
    "bone-cortical": Relaxation(1000.0, 0.4, 0.20, "T2 about 0.4 ms (ultrashort-TE studies); T1 " + _APPROX),
    "skin": Relaxation(1000.0, 40.0, 0.70, _APPROX),
    "csf": Relaxation(4300.0, 1500.0, 1.00, _APPROX + "; free water-like"),
    "bile": Relaxation(2500.0, 500.0, 0.95, _APPROX),
    "disc": Relaxation(1200.0, 90.0, 0.80, _APPROX),
    "bowel-wall": Relaxation(1000.0, 40.0, 0.75, _APPROX + "; like smooth muscle"),
    "bowel-content": Relaxation(2500.0, 250.0, 0.90, _APPROX + "; fluid and chyme"),
    # Liver lesions: cysts are water-like, hemangiomas very bright on T2 (longer T2 than metastases), as in
    # the liver-lesion T2 literature at 1.5 T (cyst > 500 ms, hemangioma > metastasis > liver).
    "cyst": Relaxation(3500.0, 700.0, 0.98, _APPROX),
    "hemangioma": Relaxation(1800.0, 150.0, 0.90, _APPROX),
    "metastasis": Relaxation(1300.0, 85.0, 0.85, _APPROX),
}
MR_TISSUES = tuple(RELAXATION)
_INDEX = {name: index for index, name in enumerate(MR_TISSUES)}

# Phantom label -> MR tissue, for labels with a single MR tissue ("kidney", "bone-cortical", "bowel" and
# "lesion" are split in ``tissue_map``).
_LABEL_TISSUE = {
    "air": "air", "gas": "air", "fat": "fat", "skin": "skin", "muscle": "muscle", "liver": "liver",
    "spleen": "spleen", "pancreas": "pancreas", "aorta": "blood", "ivc": "blood", "liver-vessel": "blood",
    "vessel": "blood", "bone-cancellous": "bone-marrow", "spinal-canal": "csf", "gallbladder": "bile",
    "disc": "disc", "kidney": "kidney-cortex", "bone-cortical": "bone-cortical", "bowel": "bowel-wall",
    "lesion": "metastasis",
}
# Labels holding several painted tissues: the painted HU nearest to each candidate's HU decides the MR tissue.
_SPLITS = {
    "kidney": {"kidney-cortex": "kidney-cortex", "kidney-medulla": "kidney-medulla"},
    "bone-cortical": {"bone-cortical": "bone-cortical", "rib-cortical": "bone-cortical", "cartilage": "cartilage"},
    "bowel": {"bowel-wall": "bowel-wall", "bowel-fluid": "bowel-content", "stomach-fluid": "bowel-content"},
}


@dataclass(frozen=True)
class Sequence:
    """An acquisition: kind (``"spin-echo"`` or ``"spoiled-gradient-echo"``), repetition and echo time (ms),
    flip angle (degrees; 90 for spin echo) and the liver's signal-to-noise ratio."""

    name: str
    kind: str
    tr_ms: float
    te_ms: float
    flip_deg: float
    liver_snr: float


SEQUENCES: dict[str, Sequence] = {
    "t1": Sequence("T1-weighted spoiled gradient echo", "spoiled-gradient-echo", 150.0, 2.3, 70.0, 30.0),
    "t2": Sequence("T2-weighted spin echo", "spin-echo", 4000.0, 90.0, 90.0, 15.0),
}
RELAXATION_SPREAD = 0.05  # per-patient relative spread of each tissue's T1 and T2
PD_SPREAD = 0.02  # ... and of its proton density
TEXTURE = 0.03  # relative proton-density texture inside tissues
BIAS_SPREAD = 0.2  # standard deviation of each bias-field polynomial coefficient (log scale)
GAIN_SPREAD = 0.25  # log-normal spread of the receiver gain per patient and sequence
UNIT_SCALE = 1000.0  # signal of fully relaxed water at gain 1 (arbitrary units)


def mr_signal(t1_ms: np.ndarray, t2_ms: np.ndarray, pd: np.ndarray, sequence: Sequence) -> np.ndarray:
    """Steady-state signal of tissues (elementwise) in ``sequence``: spin echo ``PD (1 - E1) exp(-TE / T2)``
    (the TR >> TE form), spoiled gradient echo ``PD sin(a) (1 - E1) / (1 - cos(a) E1) exp(-TE / T2)``, with
    ``E1 = exp(-TR / T1)``."""
    e1 = np.exp(-sequence.tr_ms / np.asarray(t1_ms, dtype=np.float64))
    decay = np.exp(-sequence.te_ms / np.asarray(t2_ms, dtype=np.float64))
    if sequence.kind == "spin-echo":
        return pd * (1.0 - e1) * decay
    if sequence.kind == "spoiled-gradient-echo":
        angle = math.radians(sequence.flip_deg)
        return pd * math.sin(angle) * (1.0 - e1) / (1.0 - math.cos(angle) * e1) * decay
    raise ValueError(f"unknown MR sequence kind {sequence.kind!r}")


def rician(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of ``signal`` plus complex Gaussian noise of standard deviation ``sigma`` per channel."""
    real = signal + rng.normal(0.0, sigma, signal.shape)
    imaginary = rng.normal(0.0, sigma, signal.shape)
    return np.hypot(real, imaginary)


def tissue_map(case: PhantomCase, tissue_hu: dict[str, float]) -> np.ndarray:
    """The MR tissue of every pixel of a painted phantom slice, as indices into ``MR_TISSUES`` (uint8).

    Args:
        case: the slice, with ``painted_hu`` (``render_patient`` sets it).
        tissue_hu: the HU its tissues were painted with (``patient_anatomy(seed, case.phase).tissue_hu``),
            to tell apart sub-tissues of one label (kidney cortex and medulla, rib and cartilage, bowel wall
            and content).
    """
    if case.painted_hu is None:
        raise ValueError("the phantom case has no painted_hu; render it with render_patient")
    labels = case.organ_labels
    lookup = np.zeros(max(LABEL.values()) + 1, dtype=np.uint8)
    for label, tissue in _LABEL_TISSUE.items():
        lookup[LABEL[label]] = _INDEX[tissue]
    tissues = lookup[labels]
    for label, candidates in _SPLITS.items():
        inside = labels == LABEL[label]
        if not inside.any():
            continue
        values = np.array([tissue_hu[name] for name in candidates], dtype=np.float32)
        nearest = np.abs(case.painted_hu[inside][:, None] - values[None, :]).argmin(axis=1)
        tissues[inside] = np.array([_INDEX[tissue] for tissue in candidates.values()], dtype=np.uint8)[nearest]
    for mask, kind in zip(case.lesion_masks, case.lesion_classes):  # later lesions are painted over earlier ones
        if kind in LESION_CLASSES:
            tissues[mask] = _INDEX[kind]
    return tissues


@dataclass(frozen=True)
class PatientMR:
    """One patient's MR parameters: per-tissue T1, T2 (ms) and proton density, bias and gains."""

    t1_ms: np.ndarray  # [len(MR_TISSUES)]
    t2_ms: np.ndarray
    pd: np.ndarray
    bias: np.ndarray  # coefficients of the log bias field on (x, y, z, x^2, y^2, xy, xz, yz)
    gain: dict[str, float]  # receiver gain per sequence


@functools.lru_cache(maxsize=256)
def patient_mr(seed: int) -> PatientMR:
    """The MR parameters of phantom patient ``seed`` (deterministic, cached)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 71]))
    return PatientMR(*patient_spread(rng, [RELAXATION[name] for name in MR_TISSUES], 8, tuple(SEQUENCES)))


def patient_spread(rng: np.random.Generator, table: list, bias_terms: int,
                   sequences: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
    """One patient's draws, in this order: T1, T2 and proton density per tissue of ``table`` (each spread around
    its table value, clipped), ``bias_terms`` bias-field coefficients and a receiver gain per sequence."""
    count = len(table)
    t1 = np.array([r.t1_ms for r in table]) * np.clip(rng.normal(1.0, RELAXATION_SPREAD, count), 0.8, 1.2)
    t2 = np.array([r.t2_ms for r in table]) * np.clip(rng.normal(1.0, RELAXATION_SPREAD, count), 0.8, 1.2)
    pd = np.array([r.pd for r in table]) * np.clip(rng.normal(1.0, PD_SPREAD, count), 0.9, 1.1)
    bias = rng.normal(0.0, BIAS_SPREAD, bias_terms)
    gain = {name: float(math.exp(rng.normal(0.0, GAIN_SPREAD))) for name in sequences}
    return t1, t2, pd, bias, gain


def bias_field(seed: int, z_mm: float, size: int, spacing_mm: float) -> np.ndarray:
    """Patient ``seed``'s multiplicative bias field on the ``size`` x ``size`` slice at height ``z_mm``.

    ``exp`` of a second-order polynomial in x, y, z (each in units of 200 mm, origin at the image centre and the
    liver hilum) without constant term: 1 at the centre, smooth, the same for both sequences.
    """
    centres = (np.arange(size, dtype=np.float64) + 0.5 - size / 2) * spacing_mm / 200.0
    y, x = np.meshgrid(centres, centres, indexing="ij")
    z = z_mm / 200.0
    terms = (x, y, np.full_like(x, z), x * x, y * y, x * y, x * z, y * z)
    coefficients = patient_mr(seed).bias
    return np.exp(sum(c * t for c, t in zip(coefficients, terms))).astype(np.float32)


def noise_sigma(sequence: str) -> float:
    """Rician noise sigma of ``sequence`` before the gain: the nominal liver signal over ``liver_snr``."""
    spec, liver = SEQUENCES[sequence], RELAXATION["liver"]
    return float(mr_signal(liver.t1_ms, liver.t2_ms, liver.pd, spec)) / spec.liver_snr


def render_mr(
    tissues: np.ndarray,
    seed: int,
    z_mm: float,
    spacing_mm: float,
    sequences: tuple[str, ...] = tuple(SEQUENCES),
    texture: np.ndarray | None = None,
) -> dict[str, tuple[np.ndarray, float]]:
    """MR images of one phantom slice from its tissue map (``tissue_map``), one per sequence.

    Args:
        tissues: uint8 ``[S, S]`` indices into ``MR_TISSUES``.
        seed: patient seed (tissue parameters, bias field, gains, noise).
        z_mm: slice height (bias field, texture and noise streams).
        spacing_mm: pixel size.
        sequences: names in ``SEQUENCES``.
        texture: the slice's cut through the patient's 3D proton-density texture field (zero mean, unit
            variance, ``[S, S]``), so that a volume's texture continues through the plane; None draws this
            slice's own (2D sources).

    Returns:
        Per sequence, ``(image float32 [S, S] in arbitrary units >= 0, Rician sigma in those units)``.
    """
    patient, size = patient_mr(seed), tissues.shape[0]
    if texture is None:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 73, *seed_key(z_mm), size]))
        field = ndimage.gaussian_filter(rng.standard_normal(tissues.shape), TEXTURE_MM / spacing_mm)
        fluctuation = TEXTURE * field / (field.std() + 1e-6)
    else:
        fluctuation = TEXTURE * texture
    pd = patient.pd[tissues] * (1.0 + fluctuation)
    bias = bias_field(seed, z_mm, size, spacing_mm)
    out = {}
    for name in sequences:
        spec = SEQUENCES[name]
        signal = mr_signal(patient.t1_ms[tissues], patient.t2_ms[tissues], pd, spec)
        signal = ndimage.gaussian_filter(signal, PARTIAL_VOLUME_PIXELS) * bias
        stream = [seed, 79, list(SEQUENCES).index(name), *seed_key(z_mm), size]
        noise_rng = np.random.default_rng(np.random.SeedSequence(stream))
        scale = UNIT_SCALE * patient.gain[name]
        sigma = noise_sigma(name)
        out[name] = ((scale * rician(signal, sigma, noise_rng)).astype(np.float32), float(scale * sigma))
    return out
